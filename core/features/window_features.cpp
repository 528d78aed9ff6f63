#include "features/window_features.hpp"

#include "features/book_snapshot.hpp"

namespace bot4::features {

bool WindowFeatures::refresh(const WindowKernels& k, const SampleWindow& returns) {
  if (returns.count() == cached_count_) return false;
  {
    cached_count_ = returns.count();
    double* c = cache_;
    if (!returns.full()) {
      for (int i = 0; i < kColumns; ++i) c[i] = kNaN;
    } else {
      const double* x = returns.data();
      const size_t n = returns.size();
      c[f_acf_1 - f_acf_1] = k.acf(x, n, 1);
      c[f_acf_2 - f_acf_1] = k.acf(x, n, 2);
      c[f_acf_5 - f_acf_1] = k.acf(x, n, 5);
      c[f_acf_10 - f_acf_1] = k.acf(x, n, 10);
      c[f_c3_1 - f_acf_1] = k.c3(x, n, 1);
      c[f_c3_2 - f_acf_1] = k.c3(x, n, 2);
      c[f_cid_ce - f_acf_1] = k.cid_ce(x, n);
      c[f_hurst_rs - f_acf_1] = k.hurst_rs(x, n);
      c[f_dfa_alpha - f_acf_1] = k.dfa(x, n);
      c[f_sample_entropy - f_acf_1] = k.sample_entropy(x, n, 2);
      c[f_perm_entropy_3 - f_acf_1] = k.perm_entropy(x, n, 3, 1);
      c[f_perm_entropy_4 - f_acf_1] = k.perm_entropy(x, n, 4, 1);
      c[f_spectral_entropy - f_acf_1] = k.spectral_entropy(x, n);
      k.wavelet_energies(x, n, kWaveletLevels, &c[f_wavelet_d1 - f_acf_1]);
    }
  }
  return true;
}

void WindowFeatures::write(const WindowKernels& k, const SampleWindow& returns, double* row) {
  refresh(k, returns);
  for (int i = 0; i < kColumns; ++i) row[f_acf_1 + i] = cache_[i];
}

}  // namespace bot4::features
