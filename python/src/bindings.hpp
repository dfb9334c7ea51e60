// bindings.hpp — what the files of the Python module share: the pure-Python classes (enums,
// exceptions) the extension hands out, conversions of strings, times and enums, and Record,
// the one way a model struct is bound.
//
// Files: module.cpp (the module, in order), cpu_set.cpp (CpuMap, VcpuSet, parse options),
// matrix.cpp (AffinityMatrix, the buffer protocol), model.cpp (HostInfo, DomainInfo,
// VcpuMetrics, snapshots, pin results), errors.cpp (C++ errors -> vcpumap.Error and its
// subclasses), hypervisor.cpp (Hypervisor: AnyHypervisor, the GIL released), open.cpp (the one
// file that knows which backends were built).
#pragma once

#include <chrono>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <pybind11/pybind11.h>

#include <vcpumap/any_hypervisor.hpp>
#include <vcpumap/vcpumap.hpp>

namespace vcpumap::python {

namespace py = pybind11;

// ---- the pure-Python side (vcpumap/_types.py), fetched once at import ----

/// A Python enum.Enum class whose values are the C++ enumerators' names, and the member of
/// each C++ value (indexed by its integer value).
struct EnumClass {
  py::object cls;
  std::vector<py::object> members;
};

struct Types {
  EnumClass vcpu_state, error_code, dialect, text_form, exclusion, snapshot_scope;
  py::object error_classes;  // dict ErrorCode -> class
  py::object parse_error, pin_error, transaction_error;
  py::object timedelta, datetime, utc_epoch;
};
/// Filled by load_types() at import; never freed (the interpreter outlives nothing here).
const Types& types();
void load_types();

/// The names of a C++ enum's values, in the order of their integer values (0, 1, ...).
template <class E>
std::span<const std::string_view> enum_names();

/// The Python member of a C++ enum value.
template <class E>
py::object enum_to_py(E value);
/// The C++ value of a Python member (or of its value string: "running"); TypeError or
/// ValueError otherwise.
template <class E>
E enum_from_py(py::handle value);

// ---- strings and times ----

/// Bytes from a hypervisor or a user as str: UTF-8, each invalid byte replaced by U+FFFD, so
/// the result always encodes (and prints). The exact bytes: py::bytes(s).
py::str text(std::string_view s);
/// nanoseconds as datetime.timedelta (to the microsecond, rounded half to even).
py::object timedelta(std::chrono::nanoseconds ns);
/// A time point as an aware UTC datetime (to the microsecond).
py::object utc_datetime(std::chrono::system_clock::time_point t);
/// Nanoseconds since the epoch of a time point.
std::int64_t epoch_ns(std::chrono::system_clock::time_point t);

// ---- numbers from Python ----

/// An int, or anything with __index__ (numpy's integers) as one; nothing for bool or others.
std::optional<py::int_> as_int(py::handle value);
/// A Python int (or __index__) as a size_t; InvalidArgumentError naming `what` when it is negative, above
/// `max`, or too large for a size_t; TypeError when it is not an int.
std::size_t to_index(py::handle value, std::string_view what, std::size_t max);

// ---- errors ----

/// The Python exception for a vcpumap::Error (its subclass by code; PinError, ParseError,
/// TransactionError with their fields), not raised.
py::object exception_for(const Error& error);
void register_errors(py::module_& m);

// ---- sets and matrices from Python arguments ----

/// A CpuMap from a CpuMap, a cpulist (str or bytes, read with `options`) or an iterable of
/// CPU numbers (in options' universe when it has one, else the smallest that holds them).
CpuMap cpu_map_from(py::handle value, const ParseOptions& options);
VcpuSet vcpu_set_from(py::handle value, const ParseOptions& options);
/// A matrix from an AffinityMatrix, a (rows, cols) array of bools (any object with the
/// buffer protocol: numpy), or a sequence of rows, each read as cpu_map_from reads it (a matrix
/// of row_options' universe columns). Its shape is checked by whoever uses it (the front layer
/// checks a pin's against the domain and host).
AffinityMatrix matrix_from(py::handle value, const ParseOptions& row_options);

// ---- binding ----

void bind_enums_and_sets(py::module_& m);
void bind_matrix(py::module_& m);
void bind_model(py::module_& m);
void bind_hypervisor(py::module_& m);

/// Which backends this build has, and opening one (open.cpp).
std::vector<std::string> built_backends();
struct OpenRequest {
  std::string kind = "auto";
  std::optional<std::string> fixture_path;
  std::optional<std::string> fixture_text;
  std::vector<std::string> qmp;
};
/// Opens the backend; called without the GIL. Returns the kind opened (auto resolved).
std::pair<AnyHypervisor, std::string> open_backend(const OpenRequest& request);

// ---- Record: a model struct as a read-only Python value ----

/// The Python value of a model field. One overload per C++ type the model uses: a new kind
/// of field (a new struct) needs one more overload here and its own Record.
py::object to_py(bool v);
py::object to_py(unsigned v);
py::object to_py(std::size_t v);
py::object to_py(const std::string& v);
py::object to_py(DomainId v);
py::object to_py(VcpuState v);
py::object to_py(SnapshotScope v);
py::object to_py(const CpuMap& v);
py::object to_py(const VcpuSet& v);
py::object to_py(const NodeSet& v);
py::object to_py(const CpuPool& v);
py::object to_py(const NodeMemory& v);
py::object to_py(const DomainFlags& v);
py::object to_py(const Capabilities& v);
py::object to_py(const DomainInfo& v);
py::object to_py(const VcpuMetrics& v);
template <class T>
py::object to_py(const std::optional<T>& v) {
  return v ? to_py(*v) : py::none();
}
template <class T>
py::object to_py(const std::vector<T>& v) {
  py::list out(v.size());
  for (std::size_t i = 0; i < v.size(); ++i) out[i] = to_py(v[i]);
  return out;
}

/// A model struct bound as an immutable Python value: each field a read-only attribute (one
/// line: field(...)), listed in _fields in declaration order; repr() names them all, ==
/// compares with the C++ operator==, _asdict() gives {field: value}. Values are converted on
/// each access (copies: the Python side never changes the C++ struct).
template <class T, class... Options>
class Record {
 public:
  Record(py::module_& m, const char* name, const char* doc) : cls_(m, name, doc) {}

  /// A field converted by to_py.
  template <class M>
  Record& field(const char* name, M T::*member, const char* doc) {
    cls_.def_property_readonly(name, [member](const T& self) { return to_py(self.*member); }, doc);
    names_.append(name);
    return *this;
  }
  /// A duration (or optional one): `<name>_ns` an int of nanoseconds (in _fields) and `<name>`
  /// a datetime.timedelta (microseconds).
  template <class M>
  Record& duration(const char* name, M T::*member, const char* doc) {
    const std::string ns = std::string(name) + "_ns";
    cls_.def_property_readonly(ns.c_str(), [member](const T& self) { return ns_of(self.*member); },
                               (std::string(doc) + " In nanoseconds.").c_str());
    cls_.def_property_readonly(name, [member](const T& self) { return delta_of(self.*member); },
                               (std::string(doc) + " A datetime.timedelta (to the microsecond).").c_str());
    names_.append(ns);
    return *this;
  }
  /// A time point: `<name>` an aware UTC datetime and `<name>_ns` ns since the epoch.
  Record& time_point(const char* name, std::chrono::system_clock::time_point T::*member, const char* doc) {
    const std::string ns = std::string(name) + "_ns";
    cls_.def_property_readonly(name, [member](const T& self) { return utc_datetime(self.*member); },
                               (std::string(doc) + " An aware UTC datetime.").c_str());
    cls_.def_property_readonly(ns.c_str(), [member](const T& self) { return epoch_ns(self.*member); },
                               (std::string(doc) + " In nanoseconds since the Unix epoch.").c_str());
    names_.append(name);
    return *this;
  }
  /// A member handed out without a copy (a matrix of a snapshot): it keeps the owner alive.
  template <class M>
  Record& view(const char* name, M T::*member, const char* doc) {
    cls_.def_property_readonly(
        name, py::cpp_function([member](const T& self) -> const M& { return self.*member; },
                               py::return_value_policy::reference_internal),
        doc);
    names_.append(name);
    return *this;
  }
  /// Anything else, computed by f(const T&) -> py::object; in _fields when listed is true.
  template <class F>
  Record& computed(const char* name, F f, const char* doc, bool listed = false) {
    cls_.def_property_readonly(name, std::move(f), doc);
    if (listed) names_.append(name);
    return *this;
  }

  /// Adds repr, == (when T has one), _fields and _asdict; returns the class for anything more.
  py::class_<T, Options...>& finish() {
    py::tuple names(names_);
    cls_.attr("_fields") = names;
    cls_.def("__repr__", [names](py::handle self) {
      std::string out = py::str(py::type::handle_of(self).attr("__name__"));
      out += '(';
      bool first = true;
      for (py::handle n : names) {
        if (!first) out += ", ";
        first = false;
        out += std::string(py::str(n)) + "=" + std::string(py::repr(self.attr(n)));
      }
      return out + ')';
    });
    if constexpr (std::equality_comparable<T>) {  // the pin results have no ==: identity
      cls_.def(
          "__eq__", [](const T& a, const T& b) { return a == b; }, py::is_operator());
      cls_.def(
          "__eq__", [](const T&, py::handle) { return py::reinterpret_borrow<py::object>(Py_NotImplemented); },
          py::is_operator());
    }
    cls_.def(
        "_asdict",
        [names](py::handle self) {
          py::dict out;
          for (py::handle n : names) out[n] = self.attr(n);
          return out;
        },
        "The fields as a dict, in order.");
    return cls_;
  }

 private:
  static py::object ns_of(std::chrono::nanoseconds d) { return py::int_(d.count()); }
  static py::object ns_of(const std::optional<std::chrono::nanoseconds>& d) {
    return d ? ns_of(*d) : py::none();
  }
  static py::object delta_of(std::chrono::nanoseconds d) { return timedelta(d); }
  static py::object delta_of(const std::optional<std::chrono::nanoseconds>& d) {
    return d ? timedelta(*d) : py::none();
  }

  py::class_<T, Options...> cls_;
  py::list names_;
};

}  // namespace vcpumap::python
