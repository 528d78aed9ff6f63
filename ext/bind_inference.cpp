// _core.inference: the loaded model (tree path or ONNX Runtime) with its calibration table.
// Errors from loading map onto bot4.errors.ModelError; wrong input dtypes onto TypeError.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <chrono>
#include <cmath>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "config_dict.hpp"
#include "inference/ensemble.hpp"
#include "inference/model.hpp"
#include "simd/simd_level.hpp"

namespace py = pybind11;

namespace bot4::ext {
namespace {

using inference::Model;

// Messages can quote names read from a corrupt file; escape non-ASCII bytes so the text is always
// valid UTF-8 for Python.
[[noreturn]] void raise_model_error(const std::string& message) {
  std::string text;
  text.reserve(message.size());
  for (unsigned char c : message) {
    if (c >= 0x20 && c < 0x7f) {
      text.push_back(static_cast<char>(c));
    } else {
      static const char* hex = "0123456789abcdef";
      text += "\\x";
      text.push_back(hex[c >> 4]);
      text.push_back(hex[c & 15]);
    }
  }
  py::object cls = py::module_::import("bot4.errors").attr("ModelError");
  PyErr_SetString(cls.ptr(), text.c_str());
  throw py::error_already_set();
}

// A 2-D C-contiguous float32 or float64 matrix, no silent conversion of other dtypes.
struct Matrix {
  const void* data = nullptr;
  bool f64 = false;
  size_t rows = 0;
  size_t cols = 0;
};

Matrix matrix_arg(const py::array& a, size_t n_features) {
  const bool f32 = a.dtype().equal(py::dtype::of<float>());
  const bool f64 = a.dtype().equal(py::dtype::of<double>());
  if (!f32 && !f64)
    throw py::type_error("expected a numpy array of dtype float32 or float64, got dtype " +
                         py::str(a.dtype()).cast<std::string>());
  if (a.ndim() != 2) throw py::type_error("expected a 2-D matrix [rows, features]");
  // The column count first: a column slice is also non-contiguous, and its real problem is width.
  if (static_cast<size_t>(a.shape(1)) != n_features)
    raise_model_error("feature-count mismatch: matrix has " + std::to_string(a.shape(1)) + " columns, model expects " +
                      std::to_string(n_features));
  if (!(a.flags() & py::array::c_style))
    throw py::type_error("expected a C-contiguous matrix (a strided view, e.g. a row slice with a step); "
                         "pass np.ascontiguousarray(matrix)");
  return Matrix{a.data(), f64, static_cast<size_t>(a.shape(0)), static_cast<size_t>(a.shape(1))};
}

// float64 input is rounded to float32 here, as the model's float32 input would be.
const float* as_float(const Matrix& m, std::vector<float>& scratch) {
  if (!m.f64) return static_cast<const float*>(m.data);
  const auto* src = static_cast<const double*>(m.data);
  scratch.resize(m.rows * m.cols);
  for (size_t i = 0; i < scratch.size(); ++i) scratch[i] = static_cast<float>(src[i]);
  return scratch.data();
}

py::array_t<double> run_predict(Model& model, const py::array& matrix, bool calibrated) {
  const Matrix m = matrix_arg(matrix, model.n_features());
  py::array_t<double> out(static_cast<py::ssize_t>(m.rows));
  double* dst = out.mutable_data();
  std::string error;
  bool ok = true;
  {
    py::gil_scoped_release release;
    std::vector<float> scratch;
    const float* rows = as_float(m, scratch);
    ok = calibrated ? model.predict(rows, m.rows, m.cols, dst, error) : model.predict_raw(rows, m.rows, m.cols, dst, error);
  }
  if (!ok) raise_model_error(error);
  return out;
}

}  // namespace

void bind_inference(py::module_& m) {
  py::class_<Model>(m, "Model", "A loaded model: compiled tree path or ONNX Runtime, plus isotonic calibration")
      .def_static(
          "from_bytes",
          [](const py::bytes& data, long n_features, const std::string& ort_library, std::optional<std::vector<double>> cx,
             std::optional<std::vector<double>> cy, bool force_ort, bool force_tree, int intra_op_threads) {
            if (n_features <= 0) throw py::value_error("n_features must be > 0");
            if (force_ort && force_tree) throw py::value_error("force_ort and force_tree are exclusive");
            if (cx.has_value() != cy.has_value()) throw py::value_error("calibration_x and calibration_y go together");
            const std::string_view bytes = data;
            const Model::Path path = force_ort ? Model::Path::OnnxRuntime : force_tree ? Model::Path::Tree : Model::Path::Auto;
            std::string error;
            std::unique_ptr<Model> model;
            {
              py::gil_scoped_release release;
              model = Model::load(bytes.data(), bytes.size(), static_cast<size_t>(n_features), ort_library, error, path,
                                  intra_op_threads);
            }
            if (!model) raise_model_error(error);
            if (cx && !model->set_calibration(std::move(*cx), std::move(*cy), error)) raise_model_error(error);
            return model;
          },
          py::arg("data"), py::arg("n_features"), py::arg("ort_library") = "", py::arg("calibration_x") = py::none(),
          py::arg("calibration_y") = py::none(), py::arg("force_ort") = false, py::arg("force_tree") = false,
          py::arg("intra_op_threads") = 1)
      .def("predict_proba", [](Model& self, const py::array& matrix) { return run_predict(self, matrix, true); },
           py::arg("matrix"), "Calibrated probability of class 1 per row (float64[n]); GIL released")
      .def("raw_proba", [](Model& self, const py::array& matrix) { return run_predict(self, matrix, false); },
           py::arg("matrix"), "Uncalibrated model output per row")
      .def(
          "predict_one",
          [](Model& self, const py::array& row) {
            const bool f32 = row.dtype().equal(py::dtype::of<float>());
            const bool f64 = row.dtype().equal(py::dtype::of<double>());
            if ((!f32 && !f64) || row.ndim() != 1 || !(row.flags() & py::array::c_style))
              throw py::type_error("expected a C-contiguous 1-D float32 or float64 row");
            if (static_cast<size_t>(row.shape(0)) != self.n_features())
              raise_model_error("feature-count mismatch: row has " + std::to_string(row.shape(0)) +
                                " values, model expects " + std::to_string(self.n_features()));
            std::vector<float> scratch;
            const float* x = static_cast<const float*>(row.data());
            if (f64) {
              const auto* src = static_cast<const double*>(row.data());
              scratch.assign(src, src + self.n_features());
              x = scratch.data();
            }
            const double p = self.predict_one(x);
            if (std::isnan(p) && self.kind() == Model::Kind::OnnxRuntime && !self.last_error().empty())
              raise_model_error(self.last_error());
            return p;
          },
          py::arg("row"))
      .def(
          "predict_proba_level",
          [](Model& self, const py::array& matrix, const std::string& level_name) {
            if (!self.trees()) throw py::value_error("SIMD levels apply to the tree path only");
            simd::SimdLevel level{};
            std::string error;
            if (!simd::parse_level(level_name, level, error)) throw py::value_error(error);
            const Matrix m = matrix_arg(matrix, self.n_features());
            py::array_t<double> out(static_cast<py::ssize_t>(m.rows));
            double* dst = out.mutable_data();
            {
              py::gil_scoped_release release;
              std::vector<float> scratch;
              self.trees()->predict_level(level, as_float(m, scratch), m.rows, dst);
            }
            return out;
          },
          py::arg("matrix"), py::arg("level"), "Raw tree-path output at a given SIMD level (tests)")
      .def(
          "time_batch1",
          [](Model& self, const py::array& matrix, long repeats) {
            const Matrix m = matrix_arg(matrix, self.n_features());
            if (repeats <= 0) throw py::value_error("repeats must be > 0");
            py::array_t<int64_t> out(static_cast<py::ssize_t>(m.rows * static_cast<size_t>(repeats)));
            int64_t* dst = out.mutable_data();
            {
              py::gil_scoped_release release;
              std::vector<float> scratch;
              const float* rows = as_float(m, scratch);
              volatile double sink = 0.0;  // keeps the calls from being optimised away
              size_t k = 0;
              for (long r = 0; r < repeats; ++r) {
                for (size_t i = 0; i < m.rows; ++i) {
                  const auto t0 = std::chrono::steady_clock::now();
                  const double p = self.predict_one(rows + i * m.cols);
                  const auto t1 = std::chrono::steady_clock::now();
                  sink = sink + p;
                  dst[k++] = std::chrono::duration_cast<std::chrono::nanoseconds>(t1 - t0).count();
                }
              }
            }
            return out;
          },
          py::arg("matrix"), py::arg("repeats") = 1, "ns per predict_one call, measured in C++ (benchmarks)")
      .def(
          "time_batch",
          [](Model& self, const py::array& matrix, long repeats) {
            const Matrix m = matrix_arg(matrix, self.n_features());
            if (repeats <= 0) throw py::value_error("repeats must be > 0");
            py::array_t<int64_t> out(repeats);
            int64_t* dst = out.mutable_data();
            std::string error;
            bool ok = true;
            {
              py::gil_scoped_release release;
              std::vector<float> scratch;
              std::vector<double> probs(m.rows);
              const float* rows = as_float(m, scratch);
              for (long r = 0; r < repeats && ok; ++r) {
                const auto t0 = std::chrono::steady_clock::now();
                ok = self.predict(rows, m.rows, m.cols, probs.data(), error);
                const auto t1 = std::chrono::steady_clock::now();
                dst[r] = std::chrono::duration_cast<std::chrono::nanoseconds>(t1 - t0).count();
              }
            }
            if (!ok) raise_model_error(error);
            return out;
          },
          py::arg("matrix"), py::arg("repeats") = 1, "ns per whole-matrix predict call (throughput benchmarks)")
      .def_property_readonly("kind", [](const Model& self) { return std::string(self.kind_name()); })
      .def_property_readonly("n_features", &Model::n_features)
      .def_property_readonly("n_trees", [](const Model& self) { return self.trees() ? self.trees()->n_trees() : size_t{0}; })
      .def_property_readonly("max_depth", [](const Model& self) { return self.trees() ? self.trees()->max_depth() : 0; })
      .def_property_readonly("fallback_reason", &Model::fallback_reason)
      .def_property_readonly("has_calibration", [](const Model& self) { return !self.calibration().empty(); });

  using inference::Ensemble;
  py::class_<Ensemble>(m, "Ensemble",
                       "The engine's ensemble stage on its own (inference/ensemble.hpp): one instrument's model "
                       "slots combined per decision, with the disagreement breaker and the adaptive weights")
      .def(py::init([](const py::dict& config, size_t n_slots) {
             const auto cfg = config_from<inference::EnsembleConfig>(config, "ensemble");
             auto e = std::make_unique<Ensemble>();
             std::string error;
             if (!e->configure(cfg, n_slots, error)) config_error(error);
             return e;
           }),
           py::arg("config"), py::arg("n_slots"), "ConfigError for a config that does not fit n_slots slots")
      .def(
          "combine",
          [](Ensemble& self, const std::vector<double>& p, int64_t t, double mid, double vol_bp) {
            if (p.size() != self.slots())
              throw py::value_error("combine: " + std::to_string(p.size()) + " outputs for " + std::to_string(self.slots()) +
                                    " slots");
            const auto o = self.combine(p.data(), t, mid, vol_bp);
            static const char* states[] = {"calm", "scaled", "fallback", "undefined"};
            static const char* refreshes[] = {"", "normal", "fast"};
            py::dict d;
            d["p"] = o.p;
            d["combined"] = o.combined;
            d["scale"] = o.scale;
            d["dispersion"] = o.dispersion;
            d["state"] = states[static_cast<int>(o.state)];
            d["refresh"] = refreshes[static_cast<int>(o.refresh)];
            return d;
          },
          py::arg("p"), py::arg("t") = 0, py::arg("mid") = 0.0, py::arg("vol_bp") = 0.0,
          "one decision: {p, combined, scale, dispersion, state, refresh} from the slots' outputs at local time t "
          "(ns), the book mid (<= 0: none) and the row's ewma_vol (bp)")
      .def("refresh", &Ensemble::refresh, "adaptive: weights recomputed now (False in the other modes)")
      .def_property_readonly("weights", &Ensemble::weights, "the normalised weights (weighted, adaptive)")
      .def_property_readonly("mean_losses", &Ensemble::mean_losses, "adaptive: mean loss per slot (NaN before a label)")
      .def_property_readonly("resolved", &Ensemble::resolved, "adaptive: predictions resolved with a label")
      .def_property_readonly("n_slots", &Ensemble::slots);
}

}  // namespace bot4::ext
