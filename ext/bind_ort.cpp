// Test-only binding of the raw ONNX Runtime session (core/inference/ort_session.hpp): _core.ort.
// The model wrapper used by the engine is bound separately (bind_inference.cpp).
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "inference/ort_session.hpp"

namespace py = pybind11;

namespace bot4::ext {

namespace {

using inference::OrtSession;

const float* float_matrix(const py::array& x, size_t& rows, size_t& cols) {
  if (!x.dtype().equal(py::dtype::of<float>()) || x.ndim() != 2 || !(x.flags() & py::array::c_style))
    throw py::type_error("expected a C-contiguous 2-D float32 array");
  rows = static_cast<size_t>(x.shape(0));
  cols = static_cast<size_t>(x.shape(1));
  return static_cast<const float*>(x.data());
}

}  // namespace

void bind_ort(py::module_& m) {
  auto o = m.def_submodule("ort", "ONNX Runtime session driven through its C API (test harness)");
  py::class_<OrtSession, std::unique_ptr<OrtSession>>(o, "OrtSession")
      .def_static(
          "open",
          [](const std::string& library_path, const py::bytes& model, int intra_op_threads) {
            std::string_view bytes = model;  // keeps pointing into the bytes object
            std::string error;
            std::unique_ptr<OrtSession> s;
            {
              py::gil_scoped_release release;
              s = OrtSession::open(library_path, bytes.data(), bytes.size(), intra_op_threads, error);
            }
            if (!s) throw py::value_error(error);
            return s;
          },
          py::arg("library_path"), py::arg("model_bytes"), py::arg("intra_op_threads") = 1)
      .def(
          "run",
          [](OrtSession& s, const py::array& x) {
            size_t rows = 0, cols = 0;
            const float* data = float_matrix(x, rows, cols);
            std::vector<float> out;
            std::vector<int64_t> shape;
            std::string error;
            bool good;
            {
              py::gil_scoped_release release;
              good = s.run(data, rows, cols, out, shape, error);
            }
            if (!good) throw py::value_error(error);
            std::vector<py::ssize_t> dims(shape.begin(), shape.end());
            py::array_t<float> result(dims);
            std::copy(out.begin(), out.end(), result.mutable_data());
            return result;
          },
          py::arg("x"))
      .def_property_readonly("input_features", &OrtSession::input_features)
      .def_property_readonly("input_name", &OrtSession::input_name)
      .def_property_readonly("output_name", &OrtSession::output_name)
      .def_property_readonly("library_version", &OrtSession::library_version)
      .def(
          "time_batch1",
          [](OrtSession& s, const py::array& row, int repeats) {
            size_t rows = 0, cols = 0;
            py::array row2 = row.ndim() == 1 ? py::array(row.attr("reshape")(1, -1)) : row;
            const float* data = float_matrix(row2, rows, cols);
            if (rows != 1) throw py::value_error("time_batch1 expects one row");
            if (repeats <= 0) throw py::value_error("repeats must be positive");
            py::array_t<int64_t> times(repeats);
            int64_t* t = times.mutable_data();
            std::string error;
            bool good = true;
            {
              py::gil_scoped_release release;
              std::vector<float> out;
              std::vector<int64_t> shape;
              for (int i = 0; i < repeats && good; ++i) {
                const auto start = std::chrono::steady_clock::now();
                good = s.run(data, 1, cols, out, shape, error);
                t[i] = std::chrono::duration_cast<std::chrono::nanoseconds>(
                           std::chrono::steady_clock::now() - start)
                           .count();
              }
            }
            if (!good) throw py::value_error(error);
            return times;
          },
          py::arg("row"), py::arg("repeats"));
}

}  // namespace bot4::ext
