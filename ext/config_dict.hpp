#pragma once
// Config structs declared with BOT4_CONFIG_STRUCT <-> Python dicts, and their schema, made from
// the one field list (visit_fields). Unknown keys, wrong types and values outside the declared
// bounds raise bot4.errors.ConfigError naming section and key.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cmath>
#include <string>
#include <type_traits>
#include <vector>

#include "common/config_fields.hpp"

namespace bot4::ext {

namespace py = pybind11;

[[noreturn]] inline void config_error(const std::string& msg) {
  py::object cls = py::module_::import("bot4.errors").attr("ConfigError");
  PyErr_SetString(cls.ptr(), msg.c_str());
  throw py::error_already_set();
}

template <typename T>
T cast_field(py::handle v, const std::string& where) {
  if constexpr (std::is_same_v<T, bool>) {
    if (!py::isinstance<py::bool_>(v)) config_error(where + " must be true or false");
    return v.cast<bool>();
  } else if constexpr (std::is_arithmetic_v<T>) {
    // bool is an int in Python; refuse it for numeric fields so a typo'd `true` is caught.
    if (py::isinstance<py::bool_>(v)) config_error(where + " must be a number, got a bool");
    if constexpr (std::is_integral_v<T>) {
      if (!py::isinstance<py::int_>(v)) config_error(where + " must be an integer");
    } else {
      if (!py::isinstance<py::int_>(v) && !py::isinstance<py::float_>(v)) config_error(where + " must be a number");
    }
    try {
      return v.cast<T>();
    } catch (const py::cast_error&) {
      config_error(where + " is out of range for a 64-bit value");
    }
  } else {
    if (!py::isinstance<py::str>(v)) config_error(where + " must be a string");
    return v.cast<T>();
  }
}

// A float_list field: a list (or tuple) of numbers, each checked as a float field.
template <>
inline std::vector<double> cast_field<std::vector<double>>(py::handle v, const std::string& where) {
  if (!py::isinstance<py::list>(v) && !py::isinstance<py::tuple>(v)) config_error(where + " must be a list of numbers");
  std::vector<double> out;
  size_t i = 0;
  for (auto x : v) out.push_back(cast_field<double>(x, where + "[" + std::to_string(i++) + "]"));
  return out;
}

template <typename T>
void check_bounds(const FieldInfo& f, const T& value, const std::string& where) {
  if constexpr (std::is_same_v<T, std::vector<double>>) {
    for (size_t i = 0; i < value.size(); ++i) check_bounds(f, value[i], where + "[" + std::to_string(i) + "]");
  } else if constexpr (std::is_arithmetic_v<T> && !std::is_same_v<T, bool>) {
    const double x = static_cast<double>(value);
    if (!std::isfinite(x)) config_error(where + " must be finite");
    if (f.min.set && (f.min.exclusive ? !(x > f.min.value) : !(x >= f.min.value)))
      config_error(where + " must be " + (f.min.exclusive ? "> " : ">= ") + py::str(py::float_(f.min.value)).cast<std::string>() +
                   " (got " + py::str(py::cast(value)).cast<std::string>() + ")");
    if (f.max.set && (f.max.exclusive ? !(x < f.max.value) : !(x <= f.max.value)))
      config_error(where + " must be " + (f.max.exclusive ? "< " : "<= ") + py::str(py::float_(f.max.value)).cast<std::string>() +
                   " (got " + py::str(py::cast(value)).cast<std::string>() + ")");
  }
}

// Missing keys keep the defaults.
template <typename Cfg>
Cfg config_from(const py::handle& obj, const std::string& section) {
  Cfg cfg{};
  if (obj.is_none()) return cfg;
  if (!py::isinstance<py::dict>(obj)) config_error(section + ": config must be a dict");
  const py::dict d = py::reinterpret_borrow<py::dict>(obj);
  size_t used = 0;
  Cfg::visit_fields(cfg, [&](const FieldInfo& f, auto& member) {
    if (!d.contains(f.name)) return;
    ++used;
    const std::string where = section + "." + f.name;
    member = cast_field<std::decay_t<decltype(member)>>(d[f.name], where);
    check_bounds(f, member, where);
  });
  if (used != d.size()) {
    for (auto item : d) {
      const std::string key = py::str(item.first).cast<std::string>();
      bool known = false;
      Cfg::visit_fields(cfg, [&](const FieldInfo& f, auto&) { known = known || key == f.name; });
      if (!known) config_error(section + ": unknown key '" + key + "'");
    }
  }
  return cfg;
}

template <typename Cfg>
py::dict config_to(const Cfg& cfg) {
  py::dict d;
  Cfg::visit_fields(cfg, [&](const FieldInfo& f, const auto& member) { d[f.name] = py::cast(member); });
  return d;
}

// [{name, type, default, min, min_exclusive, max, max_exclusive, unit, doc}, ...]
template <typename Cfg>
py::list config_schema() {
  const Cfg cfg{};
  py::list out;
  Cfg::visit_fields(cfg, [&](const FieldInfo& f, const auto& member) {
    py::dict d;
    d["name"] = f.name;
    d["type"] = f.type;
    d["default"] = py::cast(member);
    d["min"] = f.min.set ? py::object(py::float_(f.min.value)) : py::object(py::none());
    d["min_exclusive"] = f.min.exclusive;
    d["max"] = f.max.set ? py::object(py::float_(f.max.value)) : py::object(py::none());
    d["max_exclusive"] = f.max.exclusive;
    d["unit"] = f.unit;
    d["doc"] = f.doc;
    out.append(d);
  });
  return out;
}

}  // namespace bot4::ext
