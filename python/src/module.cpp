// module.cpp — the extension vcpumap._vcpumap: loads the pure-Python classes, binds the rest
// in order (sets, matrices, the model, the hypervisor), and the helpers every file shares.
#include <Python.h>

#include <climits>
#include <string>

#include <vcpumap/version.hpp>

#include "bindings.hpp"

namespace vcpumap::python {

namespace {
Types* loaded = nullptr;

EnumClass load_enum(py::module_& from, const char* name, std::span<const std::string_view> values) {
  EnumClass e{from.attr(name), {}};
  for (std::string_view v : values) e.members.push_back(e.cls(py::str(v.data(), v.size())));
  return e;
}

template <class E>
const EnumClass& enum_class();
template <>
const EnumClass& enum_class<VcpuState>() { return types().vcpu_state; }
template <>
const EnumClass& enum_class<ErrorCode>() { return types().error_code; }
template <>
const EnumClass& enum_class<Dialect>() { return types().dialect; }
template <>
const EnumClass& enum_class<TextForm>() { return types().text_form; }
template <>
const EnumClass& enum_class<Exclusion>() { return types().exclusion; }
template <>
const EnumClass& enum_class<SnapshotScope>() { return types().snapshot_scope; }
}  // namespace

// The C++ enumerators in the order of their values: the values of the Python enums.
template <>
std::span<const std::string_view> enum_names<VcpuState>() {
  static constexpr std::string_view names[] = {"offline", "running", "blocked", "runnable", "unknown"};
  return names;
}
template <>
std::span<const std::string_view> enum_names<ErrorCode>() {
  static constexpr std::string_view names[] = {"not_found", "invalid_argument", "permission_denied", "hypervisor_unavailable",
          "busy",      "internal",         "unsupported"};
  return names;
}
template <>
std::span<const std::string_view> enum_names<Dialect>() {
  static constexpr std::string_view names[] = {"strict", "standard", "compat"};
  return names;
}
template <>
std::span<const std::string_view> enum_names<TextForm>() {
  static constexpr std::string_view names[] = {"list", "xl_list", "sysfs_mask", "hex", "yn"};
  return names;
}
template <>
std::span<const std::string_view> enum_names<Exclusion>() {
  static constexpr std::string_view names[] = {"in_order", "after_inclusions"};
  return names;
}
template <>
std::span<const std::string_view> enum_names<SnapshotScope>() {
  static constexpr std::string_view names[] = {"metrics_only", "full"};
  return names;
}

const Types& types() { return *loaded; }

void load_types() {
  py::module_ t = py::module_::import("vcpumap._types");
  py::module_ dt = py::module_::import("datetime");
  auto* x = new Types;  // kept for the process: Python objects must not be freed after finalization
  x->vcpu_state = load_enum(t, "VcpuState", enum_names<VcpuState>());
  x->error_code = load_enum(t, "ErrorCode", enum_names<ErrorCode>());
  x->dialect = load_enum(t, "Dialect", enum_names<Dialect>());
  x->text_form = load_enum(t, "TextForm", enum_names<TextForm>());
  x->exclusion = load_enum(t, "Exclusion", enum_names<Exclusion>());
  x->snapshot_scope = load_enum(t, "SnapshotScope", enum_names<SnapshotScope>());
  x->error_classes = t.attr("ERROR_CLASSES");
  x->parse_error = t.attr("ParseError");
  x->pin_error = t.attr("PinError");
  x->transaction_error = t.attr("TransactionError");
  x->timedelta = dt.attr("timedelta");
  x->datetime = dt.attr("datetime");
  x->utc_epoch = x->datetime(1970, 1, 1, py::arg("tzinfo") = dt.attr("timezone").attr("utc"));
  loaded = x;
}

template <class E>
py::object enum_to_py(E value) {
  const auto& members = enum_class<E>().members;
  const auto i = static_cast<std::size_t>(value);
  if (i >= members.size()) throw Error(ErrorCode::internal, "an enum value the Python module does not know");
  return members[i];
}

template <class E>
E enum_from_py(py::handle value) {
  const EnumClass& e = enum_class<E>();
  // Enum(x) takes a member or its value, and raises ValueError for anything else.
  const py::object member = e.cls(value);
  for (std::size_t i = 0; i < e.members.size(); ++i)
    if (member.is(e.members[i])) return static_cast<E>(i);
  throw Error(ErrorCode::internal, "an enum member the C++ library does not know");
}

#define VCPUMAP_PY_ENUM(E)                     \
  template py::object enum_to_py<E>(E value); \
  template E enum_from_py<E>(py::handle value);
VCPUMAP_PY_ENUM(VcpuState)
VCPUMAP_PY_ENUM(ErrorCode)
VCPUMAP_PY_ENUM(Dialect)
VCPUMAP_PY_ENUM(TextForm)
VCPUMAP_PY_ENUM(Exclusion)
VCPUMAP_PY_ENUM(SnapshotScope)
#undef VCPUMAP_PY_ENUM

py::str text(std::string_view s) {
  PyObject* o = PyUnicode_DecodeUTF8(s.data(), static_cast<Py_ssize_t>(s.size()), "replace");
  if (!o) throw py::error_already_set();
  return py::reinterpret_steal<py::str>(o);
}

py::object timedelta(std::chrono::nanoseconds ns) {
  // timedelta(microseconds=float) rounds half to even; an int of microseconds would truncate.
  const auto us = std::chrono::round<std::chrono::microseconds>(ns);
  return types().timedelta(py::arg("microseconds") = us.count());
}

std::int64_t epoch_ns(std::chrono::system_clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
}

py::object utc_datetime(std::chrono::system_clock::time_point t) {
  return types().utc_epoch + timedelta(std::chrono::nanoseconds(epoch_ns(t)));
}

std::optional<py::int_> as_int(py::handle value) {
  if (PyBool_Check(value.ptr())) return std::nullopt;  // True is no CPU number
  if (PyLong_Check(value.ptr())) return py::reinterpret_borrow<py::int_>(value);
  if (!PyIndex_Check(value.ptr())) return std::nullopt;  // numpy's integers have __index__
  PyObject* n = PyNumber_Index(value.ptr());
  if (!n) throw py::error_already_set();
  return py::reinterpret_steal<py::int_>(n);
}

std::size_t to_index(py::handle original, std::string_view what, std::size_t max) {
  const std::optional<py::int_> as = as_int(original);
  if (!as)
    throw py::type_error(std::string(what) + " must be an int, not " +
                         std::string(py::str(py::type::handle_of(original).attr("__name__"))));
  const py::handle value = *as;
  int overflow = 0;
  const long long n = PyLong_AsLongLongAndOverflow(value.ptr(), &overflow);
  if (n == -1 && PyErr_Occurred()) throw py::error_already_set();
  if (overflow != 0 || n < 0 || static_cast<unsigned long long>(n) > max) {
    // The number as Python prints it, unless it is huge: a hostile 10**100000 must not fill a
    // message (and Python refuses to print ints of more than 4300 digits).
    const auto bits = py::cast<std::size_t>(value.attr("bit_length")());
    std::string digits = bits <= 128 ? std::string(py::str(value)) : fmt::format("(a number of {} bits)", bits);
    throw Error(ErrorCode::invalid_argument,
                fmt::format("{} {} is {}", what, digits,
                            n < 0 || overflow < 0 ? std::string("negative") : fmt::format("beyond the limit of {}", max)));
  }
  return static_cast<std::size_t>(n);
}

}  // namespace vcpumap::python

PYBIND11_MODULE(_vcpumap, m) {
  namespace vp = vcpumap::python;
  m.doc() = "The compiled part of the vcpumap package: import vcpumap, not this.";
  vp::load_types();
  vp::register_errors(m);
  vp::bind_enums_and_sets(m);
  vp::bind_matrix(m);
  vp::bind_model(m);
  vp::bind_hypervisor(m);
  m.attr("__version__") = VCPUMAP_VERSION_STRING;
  pybind11::tuple backends(vp::built_backends().size());
  for (std::size_t i = 0; i < vp::built_backends().size(); ++i) backends[i] = vp::built_backends()[i];
  m.attr("backends") = backends;
}
