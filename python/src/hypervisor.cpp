// hypervisor.cpp — vcpumap.open() and Hypervisor: AnyHypervisor (the front layer) with the GIL
// released around every backend call.
//
// Threads: a call releases the GIL, then takes the object's mutex, so other Python threads
// run meanwhile and calls on one Hypervisor take turns (the backends are not thread-safe);
// Python arguments are converted before the GIL is released, results after it is taken back.
#include <pybind11/stl.h>

#include <limits>
#include <mutex>

#include "bindings.hpp"

namespace vcpumap::python {

namespace {

struct PyHypervisor {
  std::optional<AnyHypervisor> hv;
  std::string kind;
  std::mutex mu;
};

/// Runs f(AnyHypervisor&) without the GIL, alone on this object.
template <class F>
auto locked(PyHypervisor& h, F&& f) {
  py::gil_scoped_release nogil;
  std::lock_guard lock(h.mu);
  if (!h.hv) throw Error(ErrorCode::internal, "this Hypervisor is closed");
  return f(*h.hv);
}

/// A domain as the caller names it: an id (int, DomainInfo, DomainSnapshot) or a name (str,
/// compared as UTF-8 bytes; bytes, compared as they are).
struct DomainRef {
  std::optional<DomainId> id;
  std::string name;
};

DomainRef domain_ref(py::handle d) {
  if (py::isinstance<DomainInfo>(d)) return {d.cast<const DomainInfo&>().id, {}};
  if (py::isinstance<DomainSnapshot>(d)) return {d.cast<const DomainSnapshot&>().domain.id, {}};
  if (py::isinstance<py::str>(d)) return {std::nullopt, std::string(py::str(d))};
  if (py::isinstance<py::bytes>(d)) return {std::nullopt, std::string(py::reinterpret_borrow<py::bytes>(d))};
  if (as_int(d))
    return {DomainId{static_cast<std::uint32_t>(to_index(d, "domain id", std::numeric_limits<std::uint32_t>::max()))}, {}};
  throw py::type_error("a domain is an id (int), a name (str or bytes), a DomainInfo or a DomainSnapshot");
}

/// The domain a reference names, read when it is a name (one list_domains call). Without the GIL.
DomainInfo find_by_name(AnyHypervisor& hv, const std::string& name) {
  std::optional<DomainInfo> found;
  for (DomainInfo& d : hv.list_domains()) {
    if (d.name != name) continue;
    if (found)
      throw Error(ErrorCode::invalid_argument,
                  fmt::format("more than one domain is named '{}': name it by id", escape_terminal(name)));
    found = std::move(d);
  }
  if (!found) throw Error(ErrorCode::not_found, fmt::format("no domain is named '{}'", escape_terminal(name)));
  return std::move(*found);
}
DomainId resolve(AnyHypervisor& hv, const DomainRef& r) { return r.id ? *r.id : find_by_name(hv, r.name).id; }
/// The domain's max_vcpus (for a vcpu list that says "all"). Without the GIL.
unsigned max_vcpus_of(AnyHypervisor& hv, DomainId id) {
  for (const DomainInfo& d : hv.list_domains())
    if (d.id == id) return d.max_vcpus;
  throw Error(ErrorCode::not_found, fmt::format("no domain {}", id));
}

SnapshotScope scope_of(py::handle s) { return s.is_none() ? SnapshotScope::full : enum_from_py<SnapshotScope>(s); }

/// The host as last read, for reading maps given as text ("node:1", "all") in its terms.
std::shared_ptr<const HostInfo> known_host(PyHypervisor& h) {
  return locked(h, [](AnyHypervisor& hv) {
    std::shared_ptr<const HostInfo> host = hv.known_host();
    return host ? host : hv.read_host();
  });
}

std::optional<CpuMap> optional_map(py::handle v, const ParseOptions& o) {
  if (v.is_none()) return std::nullopt;
  return cpu_map_from(v, o);
}
std::optional<AffinityMatrix> optional_matrix(py::handle v, const ParseOptions& o) {
  if (v.is_none()) return std::nullopt;
  return matrix_from(v, o);
}

/// The vcpus of a sparse pin: a VcpuSet, an iterable of numbers, or a list ("0-3", "all")
/// read in the domain's vcpus.
struct SparseArgs {
  DomainId domain;
  VcpusPin pin;
};
SparseArgs sparse_args(PyHypervisor& h, py::handle domain, py::handle vcpus, py::handle hard, py::handle soft,
                       bool force) {
  const DomainRef ref = domain_ref(domain);
  const std::shared_ptr<const HostInfo> host = known_host(h);
  const ParseOptions o = host->parse_options();
  SparseArgs a{DomainId{}, VcpusPin{VcpuSet{}, optional_map(hard, o), optional_map(soft, o), force}};
  if (py::isinstance<py::str>(vcpus) || py::isinstance<py::bytes>(vcpus)) {
    const auto [id, max] = locked(h, [&](AnyHypervisor& hv) {
      const DomainId id = resolve(hv, ref);
      return std::pair(id, max_vcpus_of(hv, id));
    });
    ParseOptions v;
    v.universe = max;
    a.domain = id;
    a.pin.vcpus = vcpu_set_from(vcpus, v);
  } else {
    a.pin.vcpus = vcpu_set_from(vcpus, ParseOptions{});
    a.domain = locked(h, [&](AnyHypervisor& hv) { return resolve(hv, ref); });
  }
  return a;
}

struct MatrixArgs {
  DomainRef domain;
  MatrixPin pin;
};
MatrixArgs matrix_args(PyHypervisor& h, py::handle domain, py::handle hard, py::handle soft, bool force,
                       bool restore) {
  const DomainRef ref = domain_ref(domain);
  const std::shared_ptr<const HostInfo> host = known_host(h);
  const ParseOptions o = host->parse_options();
  return {ref, MatrixPin{optional_matrix(hard, o), optional_matrix(soft, o), force, restore}};
}

/// vcpumap.open's fixture: a path (os.PathLike, or str without a newline) or the text itself
/// (bytes, or str with a newline).
void fixture_of(py::handle fixture, OpenRequest& r) {
  if (fixture.is_none()) return;
  if (py::isinstance<py::bytes>(fixture)) {
    r.fixture_text = std::string(py::reinterpret_borrow<py::bytes>(fixture));
  } else if (py::isinstance<py::str>(fixture)) {
    std::string s = py::str(fixture);
    if (s.find('\n') != std::string::npos)
      r.fixture_text = std::move(s);
    else
      r.fixture_path = std::move(s);
  } else if (py::hasattr(fixture, "__fspath__")) {
    const py::object path = py::module_::import("os").attr("fsencode")(fixture);
    r.fixture_path = std::string(py::bytes(path));
  } else {
    throw py::type_error("fixture= is a path (str or os.PathLike) or the fixture's text (str with a newline, or bytes)");
  }
}

constexpr const char* map_args_doc =
    "hard, soft: a CpuMap, a cpulist read in the host's terms (HostInfo.parse: 'all', '^0', "
    "'node:1') or an iterable of CPU numbers; at least one. force: Xen's XEN_VCPUAFFINITY_FORCE.";

}  // namespace

void bind_hypervisor(py::module_& m) {
  py::class_<PyHypervisor> cls(
      m, "Hypervisor",
      "A hypervisor opened by vcpumap.open(): every backend through vcpumap::AnyHypervisor, the "
      "front layer, so results and errors are the same whatever the backend.\n\n"
      "A domain argument is an id (int), a name (str, compared as UTF-8; bytes, exactly: one more "
      "list call), a DomainInfo or a DomainSnapshot. Calls release the GIL; calls on one Hypervisor "
      "take turns. Usable as a context manager (close() at the end).");
  cls.def_property_readonly(
      "kind", [](const PyHypervisor& h) { return h.kind; }, "The backend opened: 'xen', 'linux' or 'mock'.");
  cls.def(
      "host_info", [](PyHypervisor& h) { return locked(h, [](AnyHypervisor& hv) { return hv.host_info(); }); },
      "The host's CPUs and topology (read now).");
  cls.def(
      "domains", [](PyHypervisor& h) { return locked(h, [](AnyHypervisor& hv) { return hv.list_domains(); }); },
      "Every domain, ascending by id: a list of DomainInfo.");
  cls.def(
      "snapshot",
      [](PyHypervisor& h, py::handle domain, py::handle scope) {
        const DomainRef ref = domain_ref(domain);
        const SnapshotScope s = scope_of(scope);
        return locked(h, [&](AnyHypervisor& hv) { return hv.snapshot(resolve(hv, ref), s); });
      },
      py::arg("domain"), py::arg("scope") = py::none(),
      "One domain's vcpus: metrics and (scope FULL, the default) its affinity matrices. NotFoundError "
      "when there is no such domain.");
  cls.def(
      "snapshot_all",
      [](PyHypervisor& h, py::handle scope) {
        const SnapshotScope s = scope_of(scope);
        return locked(h, [&](AnyHypervisor& hv) { return hv.snapshot_all(s); });
      },
      py::arg("scope") = py::none(),
      "The host and every domain in one call (a domain that vanishes meanwhile is left out).");
  cls.def(
      "pin",
      [](PyHypervisor& h, py::handle domain, py::handle vcpu, py::handle hard, py::handle soft, bool force) {
        const DomainRef ref = domain_ref(domain);
        const auto v = static_cast<unsigned>(to_index(vcpu, "vcpu", std::numeric_limits<unsigned>::max()));
        const std::shared_ptr<const HostInfo> host = known_host(h);
        const ParseOptions o = host->parse_options();
        const VcpuPin pin{optional_map(hard, o), optional_map(soft, o), force};
        return locked(h, [&](AnyHypervisor& hv) { return hv.pin_vcpu(resolve(hv, ref), v, pin); });
      },
      py::arg("domain"), py::arg("vcpu"), py::kw_only(), py::arg("hard") = py::none(), py::arg("soft") = py::none(),
      py::arg("force") = false,
      (std::string("Pins one vcpu; returns the effective maps (PinResult). Checked before any call: "
                   "InvalidArgumentError for a vcpu or CPU beyond the domain or host, an empty hard map; "
                   "UnsupportedError for a soft map where there is none (Linux). ") +
       map_args_doc)
          .c_str());
  cls.def(
      "pin_vcpus",
      [](PyHypervisor& h, py::handle domain, py::handle vcpus, py::handle hard, py::handle soft, bool force) {
        const SparseArgs a = sparse_args(h, domain, vcpus, hard, soft, force);
        return locked(h, [&](AnyHypervisor& hv) { return hv.pin_vcpus(a.domain, a.pin); });
      },
      py::arg("domain"), py::arg("vcpus"), py::kw_only(), py::arg("hard") = py::none(), py::arg("soft") = py::none(),
      py::arg("force") = false,
      (std::string("Pins the vcpus named (a VcpuSet, an iterable of numbers, or a list such as '0-3' or "
                   "'all' read in the domain's vcpus) to the same maps, all or nothing: the others are not "
                   "read twice, checked or touched. Returns a MatrixPinResult. A failure part-way raises "
                   "PinError after restoring what was changed. ") +
       map_args_doc)
          .c_str());
  cls.def(
      "set_online_vcpus",
      [](PyHypervisor& h, py::handle domain, py::handle vcpus) {
        const DomainRef ref = domain_ref(domain);
        if (py::isinstance<py::int_>(vcpus)) {  // a count, as xl vcpu-set
          const auto n = static_cast<std::size_t>(to_index(vcpus, "vcpus", limits::max_vcpus));
          locked(h, [&](AnyHypervisor& hv) { hv.set_online_vcpus(resolve(hv, ref), VcpuSet::full(n)); });
          return;
        }
        const std::pair<DomainId, std::size_t> found = locked(h, [&](AnyHypervisor& hv) {
          const DomainId id = resolve(hv, ref);
          return std::pair(id, max_vcpus_of(hv, id));
        });
        ParseOptions v;
        v.universe = found.second;
        const VcpuSet set = vcpu_set_from(vcpus, v);
        locked(h, [&](AnyHypervisor& hv) { hv.set_online_vcpus(found.first, set); });
      },
      py::arg("domain"), py::arg("vcpus"),
      "Makes exactly these vcpus the domain's online ones, as xl vcpu-set: an int N (vcpus 0..N-1), a "
      "VcpuSet, an iterable of numbers or a list ('0-1'). On Xen the guest acts on it (a later snapshot "
      "shows it). InvalidArgumentError for none or a vcpu beyond max_vcpus; UnsupportedError where the "
      "hypervisor cannot (Linux, an HVM guest).");
  cls.def(
      "pin_matrix",
      [](PyHypervisor& h, py::handle domain, py::handle hard, py::handle soft, bool force, bool restore) {
        const MatrixArgs a = matrix_args(h, domain, hard, soft, force, restore);
        return locked(h, [&](AnyHypervisor& hv) { return hv.pin_matrix(resolve(hv, a.domain), a.pin); });
      },
      py::arg("domain"), py::kw_only(), py::arg("hard") = py::none(), py::arg("soft") = py::none(),
      py::arg("force") = false, py::arg("restore") = false,
      "Pins every vcpu of a domain, all or nothing. hard, soft: an AffinityMatrix, a (vcpus, cpus) "
      "array of bools, or a sequence with one map per vcpu (CpuMap, cpulist or iterable); max_vcpus "
      "rows. Only rows that differ are checked and set. restore: the matrices were read earlier (a "
      "rollback): set as they are, unchecked. A failure part-way raises PinError (failed_vcpu, "
      "rolled_back); a refusal before any change the Error of its code.");
  cls.def(
      "plan_matrix",
      [](PyHypervisor& h, py::handle domain, py::handle hard, py::handle soft, bool force) {
        const MatrixArgs a = matrix_args(h, domain, hard, soft, force, false);
        return locked(h, [&](AnyHypervisor& hv) { return hv.plan(resolve(hv, a.domain), a.pin); });
      },
      py::arg("domain"), py::kw_only(), py::arg("hard") = py::none(), py::arg("soft") = py::none(),
      py::arg("force") = false,
      "The dry run of pin_matrix: what it would do (PinPlan: the matrices after, the vcpus changed, "
      "the refusal it would meet), changing nothing.");
  cls.def(
      "plan_vcpus",
      [](PyHypervisor& h, py::handle domain, py::handle vcpus, py::handle hard, py::handle soft, bool force) {
        const SparseArgs a = sparse_args(h, domain, vcpus, hard, soft, force);
        return locked(h, [&](AnyHypervisor& hv) { return hv.plan(a.domain, a.pin); });
      },
      py::arg("domain"), py::arg("vcpus"), py::kw_only(), py::arg("hard") = py::none(), py::arg("soft") = py::none(),
      py::arg("force") = false, "The dry run of pin_vcpus (a PinPlan), changing nothing.");
  cls.def_property_readonly(
      "last_call_count", [](PyHypervisor& h) { return locked(h, [](AnyHypervisor& hv) { return hv.last_call_count(); }); },
      "Backend calls (Xen: privileged hypercalls) the last operation made.");
  cls.def(
      "mock_advance",
      [](PyHypervisor& h, py::handle ns) {
        const auto n = std::chrono::nanoseconds(
            static_cast<std::int64_t>(to_index(ns, "nanoseconds", std::numeric_limits<std::int64_t>::max())));
        locked(h, [&](AnyHypervisor& hv) {
          auto* mock = hv.target<MockHypervisor>();
          if (!mock) throw Error(ErrorCode::unsupported, "mock_advance: not a mock hypervisor");
          mock->advance(n);
          return 0;
        });
      },
      py::arg("nanoseconds"), "Mock only: advances its virtual clock (running vcpus accrue CPU time).");
  cls.def(
      "mock_fail_call",
      [](PyHypervisor& h, py::handle k, py::handle code) {
        const std::size_t n = to_index(k, "call", std::size_t{1} << 32);
        const ErrorCode c = enum_from_py<ErrorCode>(code);
        locked(h, [&](AnyHypervisor& hv) {
          auto* mock = hv.target<MockHypervisor>();
          if (!mock) throw Error(ErrorCode::unsupported, "mock_fail_call: not a mock hypervisor");
          mock->fail_call(n, c);
          return 0;
        });
      },
      py::arg("k"), py::arg("code"),
      "Mock only: the k-th backend call from now (1 = the next) fails with the ErrorCode given.");
  cls.def(
      "close",
      [](PyHypervisor& h) {
        py::gil_scoped_release nogil;
        std::lock_guard lock(h.mu);
        h.hv.reset();
      },
      "Closes the backend (Xen: its privcmd handle); later calls raise InternalError. Idempotent.");
  cls.def(
      "__enter__", [](py::object self) { return self; }, "with vcpumap.open(...) as hv: closed at the end.");
  cls.def(
      "__exit__",
      [](PyHypervisor& h, py::args) {
        py::gil_scoped_release nogil;
        std::lock_guard lock(h.mu);
        h.hv.reset();
      },
      "Closes the backend.");
  cls.def("__repr__", [](const PyHypervisor& h) { return fmt::format("<vcpumap.Hypervisor {}>", h.kind); });

  m.def(
      "open",
      [](const std::string& kind, py::handle fixture, std::vector<std::string> qmp) {
        OpenRequest r;
        r.kind = kind;
        r.qmp = std::move(qmp);
        fixture_of(fixture, r);
        auto h = std::make_unique<PyHypervisor>();
        {
          py::gil_scoped_release nogil;
          auto [hv, opened] = open_backend(r);
          h->hv.emplace(std::move(hv));
          h->kind = std::move(opened);
        }
        return h;
      },
      py::arg("kind") = "auto", py::kw_only(), py::arg("fixture") = py::none(),
      py::arg("qmp") = std::vector<std::string>{},
      "Opens a hypervisor: 'xen' (libxenctrl, in dom0), 'linux' (QEMU/KVM guests from /proc; qmp= "
      "sockets of guests you started), 'mock' (in memory: the 2006 libvir-list demo host, or "
      "fixture=), or 'auto' (the default): Xen when /dev/xen/privcmd is usable, else Linux when "
      "QEMU guests run here, else UnavailableError (never the demo host); with fixture=, the mock.\n\n"
      "fixture: a path (os.PathLike, or a str without a newline) or the fixture's text (a str with "
      "a newline, or bytes); the format is in include/vcpumap/fixture.hpp. vcpumap.backends lists "
      "the backends this build has; opening another raises UnavailableError.");
}

}  // namespace vcpumap::python
