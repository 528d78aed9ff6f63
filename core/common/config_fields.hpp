#pragma once
// One declaration per config: each stage lists its fields once as an X-macro
//   X(type, name, default, min, max, unit, doc)
// and everything else is made from that list: the C++ struct (BOT4_CONFIG_STRUCT), a visitor over
// the fields (for the Python binding, which builds the dict <-> struct conversion and the schema
// from which bot4.config makes its msgspec Structs and checks its stubs). min/max are inclusive
// bounds: cfg::ge(x), cfg::gt(x) (min), cfg::le(x), cfg::lt(x) (max) or cfg::any.
#include <string>
#include <type_traits>
#include <vector>

namespace bot4 {

struct Bound {
  double value;
  bool exclusive;
  bool set;
};
namespace cfg {
constexpr Bound ge(double v) { return {v, false, true}; }
constexpr Bound gt(double v) { return {v, true, true}; }
constexpr Bound le(double v) { return {v, false, true}; }
constexpr Bound lt(double v) { return {v, true, true}; }
inline constexpr Bound any{0.0, false, false};
}  // namespace cfg

struct FieldInfo {
  const char* name;
  const char* type;  // "float", "int", "bool", "str", "float_list" (min/max bound each element)
  const char* unit;
  const char* doc;
  Bound min;
  Bound max;
};

template <typename T>
constexpr const char* field_type_name() {
  if constexpr (std::is_same_v<T, bool>) return "bool";
  else if constexpr (std::is_same_v<T, std::vector<double>>) return "float_list";
  else if constexpr (std::is_floating_point_v<T>) return "float";
  else if constexpr (std::is_integral_v<T>) return "int";
  else return "str";
}

}  // namespace bot4

#define BOT4_CONFIG_MEMBER(type, name, def, lo, hi, unit, doc) type name = def;
#define BOT4_CONFIG_VISIT(type, name, def, lo, hi, unit, doc) \
  v(::bot4::FieldInfo{#name, ::bot4::field_type_name<type>(), unit, doc, ::bot4::cfg::lo, ::bot4::cfg::hi}, c.name);

// struct NAME { fields... }; plus `template <class C, class V> void visit_fields(C& c, V&& v)`
// calling v(FieldInfo, member&) for every field in declaration order (C may be const).
#define BOT4_CONFIG_STRUCT(NAME, FIELDS)                      \
  struct NAME {                                               \
    FIELDS(BOT4_CONFIG_MEMBER)                                \
    template <typename C, typename V>                         \
    static void visit_fields(C& c, V&& v) { FIELDS(BOT4_CONFIG_VISIT) } \
  };
