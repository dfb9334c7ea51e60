// cpu_set.cpp — CpuMap and VcpuSet (one template, two classes) as immutable, hashable Python
// sets with a universe, and the parse options as keyword arguments.
#include <pybind11/operators.h>
#include <pybind11/stl.h>

#include <functional>
#include <limits>

#include "bindings.hpp"

namespace vcpumap::python {

namespace {

/// ParseOptions from the keyword arguments every parsing entry point takes (None: the default).
ParseOptions options_from(py::handle universe, py::handle dialect, py::handle form, py::handle exclusion,
                          py::handle limit) {
  ParseOptions o;
  if (!limit.is_none()) o.limit = to_index(limit, "limit", std::size_t{1} << 40);
  if (!universe.is_none()) o.universe = to_index(universe, "universe", o.limit);
  if (!dialect.is_none()) o.dialect = enum_from_py<Dialect>(dialect);
  if (!form.is_none()) o.form = enum_from_py<TextForm>(form);
  if (!exclusion.is_none()) o.exclusion = enum_from_py<Exclusion>(exclusion);
  return o;
}

template <class Set>
Set set_from(py::handle value, const ParseOptions& options) {
  if (py::isinstance<Set>(value)) {
    Set s = value.cast<const Set&>();
    if (options.universe && s.universe() != *options.universe) {
      if (auto top = s.last(); top && *top >= *options.universe)
        throw Error(ErrorCode::invalid_argument,
                    fmt::format("{} {} is beyond the {} {}s of the universe", Set::tag_type::noun, *top,
                                *options.universe, Set::tag_type::noun));
      s.resize(*options.universe);
    }
    return s;
  }
  if (py::isinstance<py::str>(value) || py::isinstance<py::bytes>(value)) {
    const std::string text = py::isinstance<py::str>(value) ? std::string(py::str(value)) : std::string(py::reinterpret_borrow<py::bytes>(value));
    return Set::parse(text, options);
  }
  if (py::isinstance<py::int_>(value))
    throw py::type_error("a set is a cpulist or an iterable of numbers, not a single int (write [n])");
  // An iterable of numbers: bounded like a cpulist (the universe, else the parse limit).
  const std::size_t bound = options.universe ? *options.universe : options.limit;
  const std::string noun(Set::tag_type::noun);
  std::vector<std::size_t> members;
  std::size_t top = 0;
  for (py::handle item : py::iter(value)) {
    if (!as_int(item))
      throw py::type_error(noun + " numbers must be ints, not " +
                           std::string(py::str(py::type::handle_of(item).attr("__name__"))));
    const std::size_t n = to_index(item, noun, std::numeric_limits<long long>::max());
    if (n >= bound)
      throw Error(ErrorCode::invalid_argument,
                  options.universe ? fmt::format("{} {} is beyond the {} {}s of the universe", noun, n, bound, noun)
                                   : fmt::format("{} {} is beyond the parse limit of {}", noun, n, bound));
    members.push_back(n);
    top = std::max(top, n + 1);
  }
  Set s(options.universe ? *options.universe : top);
  for (std::size_t n : members) s.set(n);
  return s;
}

template <class Set>
std::string repr_of(const Set& s, const char* name) {
  return fmt::format("vcpumap.{}('{}', universe={})", name, s.to_string(), s.universe());
}

TextForm form_of_spec(const std::string& spec) {
  if (spec.empty() || spec == "l") return TextForm::list;
  if (spec == "a") return TextForm::xl_list;
  if (spec == "m") return TextForm::sysfs_mask;
  if (spec == "x") return TextForm::hex;
  if (spec == "y") return TextForm::yn;
  throw py::value_error("a set's format spec is one of '', 'l', 'a', 'm', 'x', 'y', not '" + spec + "'");
}

constexpr const char* parse_kwargs_doc =
    "universe: the CPUs 0..universe-1 the set belongs to (needed by 'all', '^N' first, 'N-'); "
    "without it, the smallest that holds the members, and numbers at or beyond `limit` (default "
    "2**24) are refused. dialect: a Dialect (default STANDARD). form: a TextForm (default LIST; "
    "SYSFS_MASK, HEX, YN read those forms). exclusion: an Exclusion (default IN_ORDER). Raises "
    "ParseError (with .column) for text that does not read, InvalidArgumentError for a number "
    "beyond the universe or the limit, TypeError for anything that is not a set, text or iterable "
    "of ints.";

template <class Set>
void bind_set(py::module_& m, const char* name, const char* doc) {
  using Number = typename Set::value_type;
  py::class_<Set> cls(m, name, doc);
  const std::string init_doc = std::string(name) +
                               "(members=(), *, universe=None, dialect=None, form=None, exclusion=None, limit=None)\n\n"
                               "members: a cpulist (str or bytes) or an iterable of ints. " +
                               parse_kwargs_doc;
  cls.def(py::init([](py::handle members, py::handle universe, py::handle dialect, py::handle form,
                      py::handle exclusion, py::handle limit) {
            return set_from<Set>(members, options_from(universe, dialect, form, exclusion, limit));
          }),
          py::arg("members") = py::tuple(), py::kw_only(), py::arg("universe") = py::none(),
          py::arg("dialect") = py::none(), py::arg("form") = py::none(), py::arg("exclusion") = py::none(),
          py::arg("limit") = py::none(), init_doc.c_str());
  cls.def_static(
      "parse",
      [](py::handle text, py::handle universe, py::handle dialect, py::handle form, py::handle exclusion,
         py::handle limit) {
        if (!py::isinstance<py::str>(text) && !py::isinstance<py::bytes>(text))
          throw py::type_error("parse() reads a str or bytes");
        return set_from<Set>(text, options_from(universe, dialect, form, exclusion, limit));
      },
      py::arg("text"), py::kw_only(), py::arg("universe") = py::none(), py::arg("dialect") = py::none(),
      py::arg("form") = py::none(), py::arg("exclusion") = py::none(), py::arg("limit") = py::none(),
      (std::string("Reads a cpulist (or mask, or y- string). ") + parse_kwargs_doc).c_str());
  cls.def_static(
      "full", [](py::handle universe) { return Set::full(to_index(universe, "universe", std::size_t{1} << 40)); },
      py::arg("universe"), "Every CPU of the universe.");
  cls.def_static(
      "from_bytes",
      [](py::bytes data, py::handle universe) {
        const std::string b = data;
        return Set::from_bytes(std::span(reinterpret_cast<const std::uint8_t*>(b.data()), b.size()),
                               to_index(universe, "universe", std::size_t{1} << 40));
      },
      py::arg("data"), py::arg("universe"),
      "Reads libvirt's / libxenctrl's byte map (CPU n is bit n%8 of byte n//8); a set bit beyond the "
      "universe raises ParseError naming the byte.");
  cls.def(
      "to_bytes",
      [](const Set& s) {
        const auto b = s.to_bytes();
        return py::bytes(reinterpret_cast<const char*>(b.data()), b.size());
      },
      "The libvirt byte map: (universe + 7) // 8 bytes, CPU n is bit n%8 of byte n//8.");
  cls.def(
      "to_string", [](const Set& s, py::handle form) { return s.to_string(enum_from_py<TextForm>(form)); },
      py::arg("form") = enum_to_py(TextForm::list),
      "The set in a TextForm (default the canonical list, what str() gives).");
  cls.def("__str__", [](const Set& s) { return s.to_string(); }, "The canonical cpulist: '0-3,8'; '' when empty.");
  cls.def("__repr__", [name](const Set& s) { return repr_of(s, name); },
          "vcpumap.CpuMap('0-3', universe=8): evaluates back to an equal set (after `import vcpumap`).");
  cls.def(
      "__format__", [](const Set& s, const std::string& spec) { return s.to_string(form_of_spec(spec)); },
      "format(m, spec): '' or 'l' the list, 'a' xl's ('all'/'none'), 'm' sysfs mask, 'x' taskset hex, "
      "'y' virsh y- string.");
  cls.def_property_readonly("universe", &Set::universe, "How many CPUs the set can hold: 0..universe-1.");
  cls.def("count", &Set::count, "The number of members (len()).");
  cls.def("__len__", &Set::count, "The number of members.");
  cls.def("__bool__", &Set::any, "True when the set has a member.");
  cls.def(
      "__contains__",
      [](const Set& s, py::handle item) {
        const std::optional<py::int_> n = as_int(item);
        if (!n) return false;
        int overflow = 0;
        const long long v = PyLong_AsLongLongAndOverflow(n->ptr(), &overflow);
        if (v == -1 && PyErr_Occurred()) throw py::error_already_set();
        return overflow == 0 && v >= 0 && s.test(static_cast<std::size_t>(v));
      },
      "True when n is a member (False for anything but a member's int).");
  cls.def(
      "__iter__", [](const Set& s) { return py::make_iterator(s.begin(), s.end()); }, py::keep_alive<0, 1>(),
      "The members, ascending.");
  cls.def_property_readonly("first", [](const Set& s) -> std::optional<Number> { return s.first(); },
                            "The lowest member, or None.");
  cls.def_property_readonly("last", [](const Set& s) -> std::optional<Number> { return s.last(); },
                            "The highest member, or None.");
  cls.def("issubset", &Set::is_subset_of, py::arg("other"), "Every member is in other (universes aside).");
  cls.def(
      "issuperset", [](const Set& a, const Set& b) { return b.is_subset_of(a); }, py::arg("other"),
      "Every member of other is in this set (universes aside).");
  cls.def("intersects", &Set::intersects, py::arg("other"), "A member in both.");
  cls.def(
      "isdisjoint", [](const Set& a, const Set& b) { return !a.intersects(b); }, py::arg("other"), "No member in both.");
  cls.def(
      "same_members", [](const Set& a, const Set& b) { return same_members(a, b); }, py::arg("other"),
      "The same members, whatever the universes (== also compares the universes).");
  cls.def(
      "resized", [](Set s, py::handle universe) {
        s.resize(to_index(universe, "universe", std::size_t{1} << 40));
        return s;
      },
      py::arg("universe"), "A copy in another universe (members beyond it dropped).");
  cls.def(
      "__eq__", [](const Set& a, const Set& b) { return a == b; }, py::is_operator(),
      "Same universe and members (see same_members).");
  cls.def(
      "__eq__", [](const Set&, py::handle) { return py::reinterpret_borrow<py::object>(Py_NotImplemented); },
      py::is_operator());
  cls.def(
      "__le__", [](const Set& a, const Set& b) { return a.is_subset_of(b); }, py::is_operator());
  cls.def(
      "__ge__", [](const Set& a, const Set& b) { return b.is_subset_of(a); }, py::is_operator());
  cls.def(
      "__lt__", [](const Set& a, const Set& b) { return a.is_subset_of(b) && !same_members(a, b); },
      py::is_operator());
  cls.def(
      "__gt__", [](const Set& a, const Set& b) { return b.is_subset_of(a) && !same_members(a, b); },
      py::is_operator());
  cls.def("__hash__", [](const Set& s) { return std::hash<Set>{}(s); },
          "Sets are immutable: hashable, equal sets hash equal.");
  // Binary operators take sets of any universes and return one of the larger.
  cls.def(py::self & py::self);
  cls.def(py::self | py::self);
  cls.def(py::self ^ py::self);
  cls.def(py::self - py::self);
  cls.def(~py::self);
  cls.def(py::pickle([](const Set& s) { return py::make_tuple(s.to_string(), s.universe()); },
                     [](py::tuple t) {
                       ParseOptions o;
                       o.universe = t[1].cast<std::size_t>();
                       o.limit = std::max(o.limit, *o.universe);
                       return Set::parse(t[0].cast<std::string>(), o);
                     }));
}

}  // namespace

CpuMap cpu_map_from(py::handle value, const ParseOptions& options) { return set_from<CpuMap>(value, options); }
VcpuSet vcpu_set_from(py::handle value, const ParseOptions& options) { return set_from<VcpuSet>(value, options); }

void bind_enums_and_sets(py::module_& m) {
  bind_set<CpuMap>(m, "CpuMap",
                   "A set of physical CPUs (vcpumap::CpuMap), immutable and hashable.\n\n"
                   "    >>> m = vcpumap.CpuMap('0-7,^3'); str(m), format(m, 'x'), len(m), 3 in m\n"
                   "    ('0-2,4-7', '0xf7', 7, False)\n\n"
                   "Every set has a universe: the CPUs 0..universe-1 it can hold. == compares the universe "
                   "too ({0} of 4 CPUs != {0} of 8: use same_members()); & | ^ - take any universes and "
                   "return a set of the larger; ~ complements within the universe. Iteration yields the "
                   "members ascending. Does not mix with VcpuSet.");
  bind_set<VcpuSet>(m, "VcpuSet",
                    "A set of one domain's vcpus (vcpumap::VcpuSet): as CpuMap, for vcpu numbers. Does not "
                    "mix with CpuMap.");
  bind_set<NodeSet>(m, "NodeSet",
                    "A set of NUMA nodes (vcpumap::NodeSet): as CpuMap, for node ids (a domain's node "
                    "affinity). Does not mix with CpuMap or VcpuSet.");
}

}  // namespace vcpumap::python
