#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include "simd/simd_level.hpp"

namespace py = pybind11;

namespace bot4::ext {

void bind_simd(py::module_& m) {
  auto s = m.def_submodule("simd", "CPU SIMD levels and the active dispatch level");
  s.def("available_levels", [] {
    std::vector<std::string> names;
    for (auto level : simd::available_levels()) names.emplace_back(simd::level_name(level));
    return names;
  });
  s.def("active_level", [] {
    const auto& active = simd::active_level();
    if (!active.ok) throw py::value_error(active.error);
    return std::string(simd::level_name(active.level));
  });
  s.def("is_overridden", [] { return simd::active_level().overridden; });
  s.def("force_level", [](const std::string& name) {
    simd::SimdLevel level{};
    std::string error;
    if (!simd::parse_level(name, level, error) || !simd::force_level(level, error))
      throw py::value_error(error);
  });
}

}  // namespace bot4::ext
