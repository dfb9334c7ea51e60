// model.cpp — the model (model.hpp) and the pin results (hypervisor.hpp) as read-only Python
// values: one Record per struct, one line per field.
//
// A new field of a model struct (model.hpp) is one line in its Record below: .field() for a
// value (to_py converts it: bool, unsigned, size_t, std::string as text, CpuMap, VcpuSet,
// optional and vector of those), .duration() for a std::chrono::nanoseconds (x_ns an int and x a
// timedelta), .view() for a matrix; a field of a new type needs a to_py overload
// (bindings.hpp) and, for a struct, its own Record here; then the stub (vcpumap/__init__.pyi).
#include <pybind11/stl.h>

#include "bindings.hpp"

namespace vcpumap::python {

py::object to_py(bool v) { return py::bool_(v); }
py::object to_py(unsigned v) { return py::int_(v); }
py::object to_py(std::size_t v) { return py::int_(v); }
py::object to_py(const std::string& v) { return text(v); }
py::object to_py(DomainId v) { return py::int_(to_integer(v)); }
py::object to_py(VcpuState v) { return enum_to_py(v); }
py::object to_py(SnapshotScope v) { return enum_to_py(v); }
py::object to_py(const CpuMap& v) { return py::cast(v); }
py::object to_py(const VcpuSet& v) { return py::cast(v); }
py::object to_py(const NodeSet& v) { return py::cast(v); }
py::object to_py(const CpuPool& v) { return py::cast(v); }
py::object to_py(const NodeMemory& v) { return py::cast(v); }
py::object to_py(const DomainFlags& v) { return py::cast(v); }
py::object to_py(const Capabilities& v) { return py::cast(v); }
py::object to_py(const DomainInfo& v) { return py::cast(v); }
py::object to_py(const VcpuMetrics& v) { return py::cast(v); }

void bind_model(py::module_& m) {
  Record<DomainFlags>(m, "DomainFlags", "A domain's state flags (several may be set).")
      .field("running", &DomainFlags::running, "Running on a CPU now.")
      .field("blocked", &DomainFlags::blocked, "Blocked (waiting for an event).")
      .field("paused", &DomainFlags::paused, "Paused by the toolstack (Linux: SIGSTOP or QMP 'paused').")
      .field("shutdown", &DomainFlags::shutdown, "Shut down, not yet destroyed.")
      .field("dying", &DomainFlags::dying, "Being destroyed.")
      .finish();

  Record<Capabilities>(m, "Capabilities", "What this kind of hypervisor has.")
      .field("soft_affinity", &Capabilities::soft_affinity,
             "A soft (preferred) affinity exists (Xen); False on Linux, where a soft map is refused.")
      .field("vcpu_limit", &Capabilities::vcpu_limit,
             "What confines a vcpu beyond its pin ('cpuset' on Linux, 'cpupool' on Xen), '' when nothing does.")
      .field("set_online", &Capabilities::set_online,
             "Which vcpus are online can be set (Hypervisor.set_online_vcpus; Xen through xenstore).")
      .field("node_affinity", &Capabilities::node_affinity,
             "Snapshots carry each domain's NUMA node affinity (DomainSnapshot.node_affinity).")
      .finish();

  Record<CpuPool>(m, "CpuPool", "A cpupool (Xen): CPUs with their own scheduler; every domain runs in one.")
      .field("id", &CpuPool::id, "The pool id.")
      .field("name", &CpuPool::name, "Its name (xenstore's; invalid UTF-8 replaced by U+FFFD), '' when unknown.")
      .field("scheduler", &CpuPool::scheduler, "Its scheduler ('credit2', 'credit', 'rtds', 'arinc653', 'null').")
      .field("cpus", &CpuPool::cpus, "Its CPUs (CpuMap).")
      .field("domains", &CpuPool::domains, "How many domains run in it.")
      .finish();

  Record<NodeMemory>(m, "NodeMemory", "The memory of one NUMA node, in bytes.")
      .field("size", &NodeMemory::size, "Bytes of memory.")
      .field("free", &NodeMemory::free, "Bytes free.")
      .finish();

  Record<HostInfo>(m, "HostInfo",
                   "The host's CPUs and topology. Every CpuMap has the host's universe, max CPU id + 1.")
      .field("possible", &HostInfo::possible, "Every CPU id the hypervisor could bring up.")
      .field("present", &HostInfo::present, "The CPUs physically there.")
      .field("online", &HostInfo::online, "The CPUs usable now.")
      .field("threads_per_core", &HostInfo::threads_per_core, "Threads per core.")
      .field("cores_per_socket", &HostInfo::cores_per_socket, "Cores per socket.")
      .field("sockets", &HostInfo::sockets, "Sockets.")
      .field("numa_nodes", &HostInfo::numa_nodes, "The CPUs of each NUMA node, by node id (a list of CpuMap).")
      .field("cpu_socket", &HostInfo::cpu_socket, "Each CPU's socket, by CPU id (None: not present or not said).")
      .field("cpu_node", &HostInfo::cpu_node, "Each CPU's NUMA node, by CPU id (None: not present or not said).")
      .field("cpu_core", &HostInfo::cpu_core, "Each CPU's core id in its socket, by CPU id (None: not said).")
      .field("node_memory", &HostInfo::node_memory, "Each node's memory (NodeMemory), by node id; [] if unknown.")
      .field("pools", &HostInfo::pools, "The cpupools (CpuPool), ascending by id; [] where there are none.")
      .field("caps", &HostInfo::caps, "What this hypervisor has (Capabilities).")
      .field("system_cpus", &HostInfo::system_cpus,
             "Where the host's own processes run when the host OS is not a domain (Linux), else None.")
      .finish()
      .def_property_readonly("cpu_universe", &HostInfo::cpu_universe, "The number of CPU ids: every map's universe.")
      .def(
          "parse",
          [](const HostInfo& h, py::handle text, py::handle dialect) {
            ParseOptions o = h.parse_options(dialect.is_none() ? Dialect::standard : enum_from_py<Dialect>(dialect));
            if (!py::isinstance<py::str>(text) && !py::isinstance<py::bytes>(text))
              throw py::type_error("HostInfo.parse() reads a str or bytes");
            return cpu_map_from(text, o);
          },
          py::arg("text"), py::arg("dialect") = py::none(),
          "Reads a cpulist for this host: its universe ('all', '^N', 'N-') and NUMA nodes ('node:1', "
          "'nodes:0-1'). Raises ParseError.");

  Record<DomainInfo>(m, "DomainInfo", "A domain as listed (vcpumap::DomainInfo).")
      .field("id", &DomainInfo::id, "The domain id (Linux: the QEMU process id).")
      .field("name", &DomainInfo::name,
             "The name, decoded from UTF-8 with invalid bytes replaced by U+FFFD (guest owners choose "
             "names: it may hold control characters; escape it before printing to a terminal).")
      .computed(
          "name_bytes", [](const DomainInfo& d) { return py::bytes(d.name); }, "The name's exact bytes.")
      .field("flags", &DomainInfo::flags, "State flags (DomainFlags).")
      .field("online_vcpus", &DomainInfo::online_vcpus, "Vcpus online.")
      .field("max_vcpus", &DomainInfo::max_vcpus, "Vcpus the domain can have: the rows of its matrices.")
      .duration("cpu_time", &DomainInfo::cpu_time, "CPU time of the whole domain.")
      .field("uuid", &DomainInfo::uuid, "The UUID, lowercase canonical text; '' when the hypervisor gives none.")
      .field("vcpu_problem", &DomainInfo::vcpu_problem,
             "'' unless the backend cannot see this domain's vcpus; then why (its pins are refused).")
      .field("pool", &DomainInfo::pool, "The id of the cpupool it runs in (Xen); None where there are no pools.")
      .finish();

  Record<VcpuMetrics>(m, "VcpuMetrics", "Runtime data of one vcpu (vcpumap::VcpuMetrics).")
      .field("vcpu", &VcpuMetrics::vcpu, "The vcpu number.")
      .field("state", &VcpuMetrics::state, "What it is doing: a VcpuState.")
      .duration("cpu_time", &VcpuMetrics::cpu_time, "CPU time used.")
      .field("cpu", &VcpuMetrics::cpu, "The CPU it last ran on; None when offline or unknown.")
      .duration("wait_time", &VcpuMetrics::wait_time,
                "Time ready to run but waiting for a CPU (Linux: run-queue wait); None where not reported.")
      .finish();

  Record<DomainSnapshot>(m, "DomainSnapshot",
                         "One domain's vcpus at taken_at: metrics of every vcpu (by vcpu number) and, for "
                         "SnapshotScope.FULL, its affinity matrices (max_vcpus x host universe; 0 x 0 for "
                         "METRICS_ONLY). The matrices are views into this snapshot (numpy.asarray(s.hard) "
                         "copies nothing and keeps the snapshot alive).")
      .field("domain", &DomainSnapshot::domain, "The domain as read (DomainInfo).")
      .field("vcpus", &DomainSnapshot::vcpus,
             "Metrics of every vcpu, offline ones included, indexed by vcpu number: a new list of "
             "VcpuMetrics on each access (keep it in a local in a loop).")
      .view("hard", &DomainSnapshot::hard, "The affinity each vcpu was given (AffinityMatrix).")
      .view("soft", &DomainSnapshot::soft, "The preferred CPUs (every CPU where there is no soft affinity).")
      .view("effective", &DomainSnapshot::effective,
            "Where each vcpu may run: hard & limit & online, & soft when that leaves a CPU.")
      .view("limit", &DomainSnapshot::limit,
            "What confines each vcpu whatever its pin (Linux: its cpuset; Xen: its domain's cpupool).")
      .field("node_affinity", &DomainSnapshot::node_affinity,
             "The NUMA nodes its memory is placed on (NodeSet; Xen, scope FULL); else None.")
      .field("scope", &DomainSnapshot::scope, "What was read: a SnapshotScope.")
      .time_point("taken_at", &DomainSnapshot::taken_at, "When it was read (the mock's clock is virtual).")
      .finish();

  Record<HostSnapshot>(m, "HostSnapshot", "The host and every domain in one call (what xl vcpu-list prints).")
      .view("host", &HostSnapshot::host, "The host (HostInfo).")
      .computed(
          "domains",
          [](py::object self) {
            const HostSnapshot& s = self.cast<const HostSnapshot&>();
            py::list out(s.domains.size());
            for (std::size_t i = 0; i < s.domains.size(); ++i)
              out[i] = py::cast(&s.domains[i], py::return_value_policy::reference_internal, self);
            return out;
          },
          "Every domain, ascending by id: a new list on each access of DomainSnapshots that are views "
          "into this snapshot (they keep it alive).",
          /*listed=*/true)
      .time_point("taken_at", &HostSnapshot::taken_at, "When it was read.")
      .finish()
      .def(
          "to_prometheus", [](const HostSnapshot& s) { return to_prometheus(s); },
          "The snapshot in Prometheus' text exposition format, as `vcpu-list --prometheus` prints it "
          "(vcpumap/prometheus.hpp): per vcpu CPU seconds, state, last CPU, pinned, affinity sizes and "
          "cpulists; per domain; per host CPU the pinned vcpus and domains that may run there. Domain "
          "names are escaped as the tools print them; always valid UTF-8.");

  Record<PinResult>(m, "PinResult", "What the hypervisor made of a pin of one vcpu: the effective maps.")
      .field("hard", &PinResult::hard, "The hard map as in force (Xen: hard & the cpupool's online CPUs).")
      .field("soft", &PinResult::soft, "The soft map as in force (soft & hard; may be empty).")
      .finish();

  Record<MatrixPinResult>(m, "MatrixPinResult", "The result of a whole-matrix or sparse pin.")
      .view("hard", &MatrixPinResult::hard, "The effective hard matrix after the pin.")
      .view("soft", &MatrixPinResult::soft, "The effective soft matrix after the pin.")
      .view("before_hard", &MatrixPinResult::before_hard, "The hard matrix as read before the pin.")
      .view("before_soft", &MatrixPinResult::before_soft, "The soft matrix as read before the pin.")
      .finish();

  Record<PinPlan>(m, "PinPlan", "What a pin would do (Hypervisor.plan_matrix, plan_vcpus), changing nothing.")
      .view("before", &PinPlan::before, "The domain as read (DomainSnapshot).")
      .view("hard", &PinPlan::hard, "The hard matrix after the pin.")
      .view("soft", &PinPlan::soft, "The soft matrix after the pin.")
      .view("effective", &PinPlan::effective, "The effective matrix after the pin.")
      .field("changed", &PinPlan::changed, "The vcpus the pin would change (VcpuSet).")
      .computed(
          "refusal",
          [](const PinPlan& p) { return p.refusal ? exception_for(*p.refusal) : py::none(); },
          "The error the pin would be refused with before any change (a vcpumap.Error, not raised), "
          "or None when it would be accepted.",
          /*listed=*/true)
      .finish();
}

}  // namespace vcpumap::python
