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
      // one call for the whole family: the kernels share their common first steps
      static constexpr WindowBlockParams kParams{{1, 2, 5, 10}, {1, 2}, 2, {3, 4}, 1, kWaveletLevels};
      WindowBlockOut o;
      k.window_block(x, n, kParams, o);
      c[f_acf_1 - f_acf_1] = o.acf[0];
      c[f_acf_2 - f_acf_1] = o.acf[1];
      c[f_acf_5 - f_acf_1] = o.acf[2];
      c[f_acf_10 - f_acf_1] = o.acf[3];
      c[f_c3_1 - f_acf_1] = o.c3[0];
      c[f_c3_2 - f_acf_1] = o.c3[1];
      c[f_cid_ce - f_acf_1] = o.cid_ce;
      c[f_hurst_rs - f_acf_1] = o.hurst_rs;
      c[f_dfa_alpha - f_acf_1] = o.dfa;
      c[f_sample_entropy - f_acf_1] = o.sample_entropy;
      c[f_perm_entropy_3 - f_acf_1] = o.perm_entropy[0];
      c[f_perm_entropy_4 - f_acf_1] = o.perm_entropy[1];
      c[f_spectral_entropy - f_acf_1] = o.spectral_entropy;
      for (int i = 0; i <= kWaveletLevels; ++i) c[f_wavelet_d1 - f_acf_1 + i] = o.wavelet[i];
    }
  }
  return true;
}

void WindowFeatures::write(const WindowKernels& k, const SampleWindow& returns, double* row) {
  refresh(k, returns);
  for (int i = 0; i < kColumns; ++i) row[f_acf_1 + i] = cache_[i];
}

}  // namespace bot4::features
