#pragma once
// Zero-copy access to numpy record arrays: exact dtype, C-contiguous, one dimension. A mismatch
// raises TypeError naming the dtype that was expected.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <string>

namespace bot4::ext {

namespace py = pybind11;

template <typename Record>
const Record* record_buffer(const py::array& array, const char* dtype_name, size_t& n) {
  const py::dtype expected = py::dtype::of<Record>();
  if (!array.dtype().equal(expected) || array.dtype().itemsize() != expected.itemsize()) {
    throw py::type_error(std::string("expected a numpy array of dtype bot4.events.") + dtype_name +
                         ", got dtype " + py::str(array.dtype()).cast<std::string>());
  }
  if (array.ndim() != 1) {
    throw py::type_error(std::string("expected a 1-D array of ") + dtype_name);
  }
  if (!(array.flags() & py::array::c_style)) {
    throw py::type_error(std::string("expected a C-contiguous array of ") + dtype_name);
  }
  n = static_cast<size_t>(array.shape(0));
  return static_cast<const Record*>(array.data());
}

template <typename Record>
Record* mutable_record_buffer(py::array& array, const char* dtype_name, size_t& n) {
  const Record* data = record_buffer<Record>(array, dtype_name, n);
  if (!array.writeable()) throw py::type_error(std::string("array of ") + dtype_name + " is read-only");
  return const_cast<Record*>(data);
}

// int64 index arrays (positions, ids): exact dtype and contiguous, no silent conversion.
inline const int64_t* int64_buffer(const py::array& array, const char* what, size_t& n) {
  if (!array.dtype().equal(py::dtype::of<int64_t>()) || array.ndim() != 1 ||
      !(array.flags() & py::array::c_style)) {
    throw py::type_error(std::string(what) + ": expected a C-contiguous 1-D int64 array");
  }
  n = static_cast<size_t>(array.shape(0));
  return static_cast<const int64_t*>(array.data());
}

}  // namespace bot4::ext
