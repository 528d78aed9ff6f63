// _core.features.kernel_*: the windowed time-series kernels one window at a time, at a chosen
// SIMD level, for tests and benchmarks (the FeatureEngine calls them from C++ directly).
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <chrono>
#include <string>
#include <vector>

#include "features/window_kernels.hpp"
#include "simd/simd_level.hpp"

namespace py = pybind11;

namespace bot4::ext {
namespace {

using features::WindowKernels;

// Same contract as buffers.hpp: exact dtype, one dimension, C-contiguous, else TypeError.
const double* f64_buffer(const py::array& array, const char* what, size_t& n) {
  if (!array.dtype().equal(py::dtype::of<double>())) {
    throw py::type_error(std::string(what) + ": expected a numpy array of dtype float64, got dtype " +
                         py::str(array.dtype()).cast<std::string>());
  }
  if (array.ndim() != 1) throw py::type_error(std::string(what) + ": expected a 1-D float64 array");
  if (!(array.flags() & py::array::c_style))
    throw py::type_error(std::string(what) + ": expected a C-contiguous float64 array");
  n = static_cast<size_t>(array.shape(0));
  return static_cast<const double*>(array.data());
}

const WindowKernels& kernels_for(const std::string& level) {
  if (level == "active") {
    const auto& active = simd::active_level();
    if (!active.ok) throw py::value_error(active.error);
    return features::active_window_kernels();
  }
  simd::SimdLevel parsed{};
  std::string error;
  if (!simd::parse_level(level, parsed, error)) throw py::value_error(error);
  return features::window_kernels(parsed);
}

int int_arg(long value, const char* what) {
  if (value < -(1L << 30) || value > (1L << 30)) throw py::value_error(std::string(what) + " out of range");
  return static_cast<int>(value);
}

size_t lag_arg(long lag) {
  if (lag < 0) throw py::value_error("lag must be >= 0");
  return static_cast<size_t>(lag);
}

// Kernel parameters for kernel_time / the scalar wrappers.
struct Params {
  size_t lag = 1;
  int order = -1;  // -1: the kernel's default (sample entropy 2, perm entropy 3)
  int delay = 1;
  int levels = 3;
};

// One call of the named kernel; returns a value to sink. Resolved once per name.
using Runner = double (*)(const WindowKernels&, const double*, const double*, size_t, const Params&, double*);

Runner runner_for(const std::string& name) {
  if (name == "acf")
    return [](const WindowKernels& k, const double* x, const double*, size_t n, const Params& p, double*) {
      return k.acf(x, n, p.lag);
    };
  if (name == "c3")
    return [](const WindowKernels& k, const double* x, const double*, size_t n, const Params& p, double*) {
      return k.c3(x, n, p.lag);
    };
  if (name == "cid_ce")
    return [](const WindowKernels& k, const double* x, const double*, size_t n, const Params&, double*) {
      return k.cid_ce(x, n);
    };
  if (name == "hurst_rs")
    return [](const WindowKernels& k, const double* x, const double*, size_t n, const Params&, double*) {
      return k.hurst_rs(x, n);
    };
  if (name == "dfa")
    return [](const WindowKernels& k, const double* x, const double*, size_t n, const Params&, double*) {
      return k.dfa(x, n);
    };
  if (name == "sample_entropy")
    return [](const WindowKernels& k, const double* x, const double*, size_t n, const Params& p, double*) {
      return k.sample_entropy(x, n, p.order < 0 ? 2 : p.order);
    };
  if (name == "perm_entropy")
    return [](const WindowKernels& k, const double* x, const double*, size_t n, const Params& p, double*) {
      return k.perm_entropy(x, n, p.order < 0 ? 3 : p.order, p.delay);
    };
  if (name == "spectral_entropy")
    return [](const WindowKernels& k, const double* x, const double*, size_t n, const Params&, double*) {
      return k.spectral_entropy(x, n);
    };
  if (name == "wavelet_energies")
    return [](const WindowKernels& k, const double* x, const double*, size_t n, const Params& p, double* out) {
      k.wavelet_energies(x, n, p.levels, out);
      return out[0];
    };
  if (name == "ols_slope")
    return [](const WindowKernels& k, const double* x, const double* y, size_t n, const Params&, double*) {
      return k.ols_slope(x, y, n);
    };
  throw py::value_error("unknown kernel '" + name +
                        "' (acf, c3, cid_ce, hurst_rs, dfa, sample_entropy, perm_entropy, "
                        "spectral_entropy, wavelet_energies, ols_slope)");
}

// Per-call ns of `samples` timed batches. A batch repeats the call enough times to last about
// 20 us, so clock overhead stays below ~1%; results go to a volatile sink so no call is elided.
std::vector<double> time_kernel(const std::string& name, const py::array& x_arr, long repeats,
                                const std::string& level, const Params& params, const py::object& y_obj) {
  if (repeats < 1) throw py::value_error("repeats must be >= 1");
  const Runner run = runner_for(name);
  const WindowKernels& k = kernels_for(level);
  size_t n = 0;
  const double* x = f64_buffer(x_arr, "x", n);
  std::vector<double> ramp;
  const double* y = nullptr;
  const double* xs = x;
  if (name == "ols_slope") {
    if (y_obj.is_none()) {
      // default: slope of the window on time (0, 1, ..., n-1)
      ramp.resize(n);
      for (size_t i = 0; i < n; ++i) ramp[i] = static_cast<double>(i);
      xs = ramp.data();
      y = x;
    } else {
      size_t ny = 0;
      y = f64_buffer(y_obj.cast<py::array>(), "y", ny);
      if (ny != n) throw py::value_error("x and y must have the same length");
    }
  }
  if (name == "wavelet_energies" && (params.levels < 0 || params.levels > 30))
    throw py::value_error("levels out of range");
  std::vector<double> samples(static_cast<size_t>(repeats));
  {
    py::gil_scoped_release release;
    using clock = std::chrono::steady_clock;
    double out[32];
    volatile double sink = 0.0;
    // calibrate the batch size on a warm cache
    size_t batch = 1;
    for (;;) {
      const auto t0 = clock::now();
      for (size_t i = 0; i < batch; ++i) sink = sink + run(k, xs, y, n, params, out);
      const double ns = std::chrono::duration<double, std::nano>(clock::now() - t0).count();
      if (ns > 20'000.0 || batch >= (size_t{1} << 24)) break;
      batch *= 2;
    }
    for (auto& s : samples) {
      const auto t0 = clock::now();
      for (size_t i = 0; i < batch; ++i) sink = sink + run(k, xs, y, n, params, out);
      s = std::chrono::duration<double, std::nano>(clock::now() - t0).count() / static_cast<double>(batch);
    }
    (void)sink;
  }
  return samples;
}

}  // namespace

void bind_kernels(py::module_& m) {
  m.def("kernel_levels", [] {
    std::vector<std::string> names;
    for (auto level : simd::available_levels()) names.emplace_back(simd::level_name(level));
    return names;
  }, "SIMD levels the window kernels can run at on this CPU, lowest first.");

  m.def("hurst_nvals", [](long n) {
    if (n < 0) throw py::value_error("n must be >= 0");
    size_t buf[64];
    const size_t count = features::hurst_nvals(static_cast<size_t>(n), buf, 64);
    return std::vector<size_t>(buf, buf + std::min<size_t>(count, 64));
  }, py::arg("n"), "Chunk sizes kernel_hurst_rs uses for a window of n samples.");

  m.attr("kernel_max_window") = features::kMaxWindow;

  // Each wrapper validates with the GIL held and runs the kernel without it.

  m.def("kernel_acf", [](const py::array& x, long lag, const std::string& level) {
    size_t n = 0;
    const double* data = f64_buffer(x, "x", n);
    const size_t l = lag_arg(lag);
    const WindowKernels& k = kernels_for(level);
    py::gil_scoped_release release;
    return k.acf(data, n, l);
  }, py::arg("x").noconvert(), py::arg("lag") = 1, py::arg("level") = "active",
        "statsmodels acf (biased) at one lag.");

  m.def("kernel_c3", [](const py::array& x, long lag, const std::string& level) {
    size_t n = 0;
    const double* data = f64_buffer(x, "x", n);
    const size_t l = lag_arg(lag);
    const WindowKernels& k = kernels_for(level);
    py::gil_scoped_release release;
    return k.c3(data, n, l);
  }, py::arg("x").noconvert(), py::arg("lag") = 1, py::arg("level") = "active", "tsfresh c3.");

  m.def("kernel_cid_ce", [](const py::array& x, const std::string& level) {
    size_t n = 0;
    const double* data = f64_buffer(x, "x", n);
    const WindowKernels& k = kernels_for(level);
    py::gil_scoped_release release;
    return k.cid_ce(data, n);
  }, py::arg("x").noconvert(), py::arg("level") = "active", "tsfresh cid_ce(normalize=True).");

  m.def("kernel_hurst_rs", [](const py::array& x, const std::string& level) {
    size_t n = 0;
    const double* data = f64_buffer(x, "x", n);
    const WindowKernels& k = kernels_for(level);
    py::gil_scoped_release release;
    return k.hurst_rs(data, n);
  }, py::arg("x").noconvert(), py::arg("level") = "active",
        "nolds.hurst_rs(nvals=hurst_nvals(n), fit='poly', corrected=False, unbiased=True).");

  m.def("kernel_dfa", [](const py::array& x, const std::string& level) {
    size_t n = 0;
    const double* data = f64_buffer(x, "x", n);
    const WindowKernels& k = kernels_for(level);
    py::gil_scoped_release release;
    return k.dfa(data, n);
  }, py::arg("x").noconvert(), py::arg("level") = "active", "antropy.detrended_fluctuation.");

  m.def("kernel_sample_entropy", [](const py::array& x, long order, const std::string& level) {
    size_t n = 0;
    const double* data = f64_buffer(x, "x", n);
    const int o = int_arg(order, "order");
    const WindowKernels& k = kernels_for(level);
    py::gil_scoped_release release;
    return k.sample_entropy(data, n, o);
  }, py::arg("x").noconvert(), py::arg("order") = 2, py::arg("level") = "active",
        "antropy.sample_entropy (Chebyshev, r = 0.2 std).");

  m.def("kernel_perm_entropy", [](const py::array& x, long order, long delay, const std::string& level) {
    size_t n = 0;
    const double* data = f64_buffer(x, "x", n);
    const int o = int_arg(order, "order"), d = int_arg(delay, "delay");
    const WindowKernels& k = kernels_for(level);
    py::gil_scoped_release release;
    return k.perm_entropy(data, n, o, d);
  }, py::arg("x").noconvert(), py::arg("order") = 3, py::arg("delay") = 1, py::arg("level") = "active",
        "antropy.perm_entropy(normalize=True).");

  m.def("kernel_spectral_entropy", [](const py::array& x, const std::string& level) {
    size_t n = 0;
    const double* data = f64_buffer(x, "x", n);
    const WindowKernels& k = kernels_for(level);
    py::gil_scoped_release release;
    return k.spectral_entropy(data, n);
  }, py::arg("x").noconvert(), py::arg("level") = "active",
        "antropy.spectral_entropy(sf=1, method='fft', normalize=True); n a power of two.");

  m.def("kernel_wavelet_energies", [](const py::array& x, long levels, const std::string& level) {
    size_t n = 0;
    const double* data = f64_buffer(x, "x", n);
    if (levels < 0 || levels > 30) throw py::value_error("levels must be in [0, 30]");
    const WindowKernels& k = kernels_for(level);
    py::array_t<double> out(levels + 1);
    double* o = out.mutable_data();
    {
      py::gil_scoped_release release;
      k.wavelet_energies(data, n, static_cast<int>(levels), o);
    }
    return out;
  }, py::arg("x").noconvert(), py::arg("levels") = 3, py::arg("level") = "active",
        "Relative db2 (periodization) energies [d1..dL, aL] of pywt.wavedec.");

  m.def("kernel_ols_slope", [](const py::array& x, const py::array& y, const std::string& level) {
    size_t n = 0, ny = 0;
    const double* xd = f64_buffer(x, "x", n);
    const double* yd = f64_buffer(y, "y", ny);
    if (n != ny) throw py::value_error("x and y must have the same length");
    const WindowKernels& k = kernels_for(level);
    py::gil_scoped_release release;
    return k.ols_slope(xd, yd, n);
  }, py::arg("x").noconvert(), py::arg("y").noconvert(), py::arg("level") = "active",
        "numpy.polyfit(x, y, 1)[0].");

  auto to_params = [](long lag, long order, long delay, long levels) {
    Params p;
    p.lag = lag_arg(lag);
    p.order = int_arg(order, "order");
    p.delay = int_arg(delay, "delay");
    p.levels = int_arg(levels, "levels");
    return p;
  };

  m.def("kernel_time", [to_params](const std::string& name, const py::array& x, long repeats,
                                   const std::string& level, long lag, long order, long delay, long levels,
                                   const py::object& y) {
    std::vector<double> s = time_kernel(name, x, repeats, level, to_params(lag, order, delay, levels), y);
    std::nth_element(s.begin(), s.begin() + static_cast<long>(s.size() / 2), s.end());
    double med = s[s.size() / 2];
    if (s.size() % 2 == 0) {
      const double lower = *std::max_element(s.begin(), s.begin() + static_cast<long>(s.size() / 2));
      med = 0.5 * (med + lower);
    }
    return med;
  }, py::arg("name"), py::arg("x").noconvert(), py::arg("repeats") = 101, py::arg("level") = "active",
        py::kw_only(), py::arg("lag") = 1, py::arg("order") = -1, py::arg("delay") = 1,
        py::arg("levels") = 3, py::arg("y") = py::none(),
        "Median ns per call of one kernel over `repeats` timed batches, measured in C++ with the "
        "GIL released. order=-1 means the kernel's default; ols_slope without y regresses x on time.");

  m.def("kernel_time_samples", [to_params](const std::string& name, const py::array& x, long repeats,
                                           const std::string& level, long lag, long order, long delay,
                                           long levels, const py::object& y) {
    std::vector<double> s = time_kernel(name, x, repeats, level, to_params(lag, order, delay, levels), y);
    py::array_t<double> out(static_cast<py::ssize_t>(s.size()));
    std::copy(s.begin(), s.end(), out.mutable_data());
    return out;
  }, py::arg("name"), py::arg("x").noconvert(), py::arg("repeats") = 101, py::arg("level") = "active",
        py::kw_only(), py::arg("lag") = 1, py::arg("order") = -1, py::arg("delay") = 1,
        py::arg("levels") = 3, py::arg("y") = py::none(),
        "Per-call ns of each timed batch (the samples kernel_time takes the median of).");
}

}  // namespace bot4::ext
