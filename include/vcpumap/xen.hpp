// vcpumap/xen.hpp — XenHypervisor: the Hypervisor backend on a real Xen host (libxenctrl).
//
//   if (!vcpumap::XenHypervisor::available()) return;          // not in dom0 / no privcmd
//   vcpumap::XenHypervisor xen;                                 // throws Error(hypervisor_unavailable)
//   for (const auto& d : xen.snapshot_all().domains)
//     fmt::print("{} {}\n", d.domain.name, d.hard);
//   xen.pin_vcpu(vcpumap::DomainId{3}, 1, {.hard = xen.host_info().parse("2-3")});
//
// Link with vcpumap_xen_dep (meson) / -lvcpumap. This header includes no Xen header: the
// libxenctrl and libxencall calls live in libvcpumap (src/xen/). XenHypervisor implements
// the backend primitives (backend.hpp); every operation comes from the front layer, the same
// as for every backend.
//
// What each operation costs, in privileged libxenctrl calls (last_call_count()):
//   constructor            1   the host (+2 physinfo the first time in a process: libxenctrl's
//                              xc_get_max_cpus and xc_get_max_nodes cache their answers)
//   host_info()            1   one multicall of sysctls: physinfo, cputopoinfo, numainfo and
//                              the cpupool infos of ids 0 to the highest seen + 1 (at least
//                              0-3); + 1 per pool beyond those and 1 that finds none, when the
//                              last id asked found a pool (the next read asks for more ids)
//   list_domains()         ⌊N/1024⌋ + 1   getdomaininfolist in batches of 1024
//   snapshot(d, full)      1 + ⌈V/128⌉   getdomaininfolist(d, 1), then multicalls of up to
//                                   128 vcpus' getvcpuinfo + getvcpuaffinity domctls, the
//                                   domain's getnodeaffinity riding along with its vcpu 0
//   snapshot(d, metrics)   1 + ⌈V/256⌉   (multicalls of up to 256 getvcpuinfo)
//   snapshot_all(scope)    1 + ⌊N/1024⌋ + 1 + ⌈ΣV/128⌉ (metrics: ⌈ΣV/256⌉): host, domain
//                          list, then every domain's vcpus in shared multicalls (a multicall
//                          goes on from one domain's vcpus to the next's); a domain that
//                          vanished meanwhile costs 1 + its own snapshot again (it is read
//                          once more, alone, then left out if it is still gone)
//     with XenOptions::multicall false, or once Xen refused a multicall (+ 1 for the refused
//     call, once), one call per read, as libxl (+ the node affinity libxl does not read):
//   host_info()            3 + P + 1   physinfo, cputopoinfo, numainfo, xc_cpupool_getinfo
//                                      per pool and one that finds none
//   snapshot(d, full)      1 + 2V + 1   getdomaininfolist(d, 1), V getvcpuinfo, V
//                                       getvcpuaffinity, xc_domain_node_getaffinity
//   snapshot(d, metrics)   1 + V
//   snapshot_all(scope)    3 + P + 1 + ⌊N/1024⌋ + 1 + Σ (2V + 1) (or Σ V), and the vanished
//                          as above
//   set_online_vcpus       1   getdomaininfolist; the rest is xenstore (not counted)
//   pin_vcpu               2 with a hard and a soft map (getdomaininfolist + setvcpuaffinity);
//                          3 with one map (+ getvcpuaffinity: see PinResult below)
//   pin_matrix, pin_vcpus  a full snapshot (the state it may roll back to) + ⌈k/256⌉
//                          multicalls of setvcpuaffinity for the k vcpus that change (one
//                          call per vcpu when multicall is off or refused); a failure costs
//                          the restores: one more multicall (or one call per changed vcpu)
//   plan                   a full snapshot
// Domain names come from xenstore (/local/domain/<id>/name), read over xenstored's unix
// socket with a deadline (XenOptions::xenstore_timeout); they are not privileged calls and
// are not counted. Without xenstored (or past the deadline) domain 0 is "Domain-0" and any
// other domain is named by its id ("7"). /dev/xen/xenbus is never used: without xenstored
// a read there blocks forever.
//
// Sizes: every host-wide CpuMap has max_cpu_id + 1 CPUs (never nr_cpus: ids have holes when
// CPUs are offline or SMT is off). A domain whose max_vcpu_id is XEN_INVALID_MAX_VCPU_ID has
// 0 vcpus. Replies beyond any Xen build (max_cpu_id >= 65536, max_vcpu_id >= 32768, a CPU
// map bit beyond max_cpu_id, domain lists out of order) throw Error(internal) instead of
// allocating or indexing on their word.
//
// Host data: snapshot() and the pins use the HostInfo read by the constructor or by the
// latest host_info() / snapshot_all() (the universe, the online CPUs and the cpupools' CPUs
// of the effective rule and of check_pin); call host_info() after CPUs went on- or offline
// or between pools. A domain in a pool the known host does not list makes the operation
// read the host again first.
//
// cpupools (Capabilities::vcpu_limit "cpupool"): each domain's DomainInfo::pool is
// getdomaininfo's cpupool, and its snapshot's limit rows are that pool's CPUs, so the
// effective matrix never names a CPU outside the pool and a pin with no online CPU of the
// pool is refused before any call, naming it (Xen would refuse it with a bare EINVAL).
// Pool names come from xenstore (/local/pool/<id>/name), schedulers from the pool's
// sched_id. NUMA: HostInfo::node_memory from numainfo; each domain's node affinity
// (DomainSnapshot::node_affinity, scope full) from XEN_DOMCTL_getnodeaffinity.
//
// set_online_vcpus (Capabilities::set_online): as libxl_set_vcpuonline for PV and PVH
// guests, "online"/"offline" written to /local/domain/<id>/cpu/<n>/availability for every
// vcpu, in one xenstore transaction (retried when another transaction wins the commit); the
// guest acts on it, so snapshots show the change once it has. Refused with
// Error(unsupported) for a domain without a xenstore folder and for an HVM guest (libxl's
// /libxl/<id>/type "hvm": QEMU plugs its vcpus, through QMP), hypervisor_unavailable when
// xenstored does not answer, and the mapped code when xenstored refuses a write (nothing is
// changed then).
//
// PinResult: Xen 4.17 writes the effective map back only for the maps a pin sets (hard ∩
// the cpupool's online CPUs; soft ∩ that). For the map a pin leaves alone the result is
// computed the same way from the vcpu's current map (read first: the extra call above) and
// the domain's pool as the host was read.
//
// Errors (vcpumap::Error, messages name the domain, vcpu and CPUs): errno ESRCH →
// not_found ("domain 7: no such domain"), EPERM/EACCES → permission_denied, EINVAL →
// invalid_argument, EBUSY/EAGAIN → busy, anything else → internal.
//
// Thread safety:
// - Readers (host_info, list_domains, snapshot, snapshot_all) may run concurrently on one
//   object from any number of threads. The handle is opened without
//   XC_OPENFLAG_NON_REENTRANT, under which libxenctrl locks its hypercall-buffer cache and
//   keeps errors per thread (tools/libs/ctrl/xc_hcall_buf.c, xc_private.c); the one
//   unsynchronised static in the calls used here (xc_get_max_cpus's cache) is filled by the
//   constructor before any other call. The cached HostInfo is guarded by a mutex. Each
//   multicall has its own hypercall buffer (libxencall locks its buffer cache).
// - Writers (pin_vcpu, pin_matrix, pin_vcpus) are serialized by the front layer's mutex:
//   a matrix pin holds it from the snapshot it may roll back to until its last restore, so
//   two pins through one object never interleave. Readers do not wait for it: a concurrent snapshot may see a
//   matrix pin half applied. Pins by other processes (xl, libvirt) are not serialized.
// - last_call_count() is the count of the operation that finished last on this object, in
//   any thread: read it from the thread that made the operation, with no other in flight.
// - After fork() the child must not use an object created by the parent (libxenctrl's
//   rule): create a new one.
#pragma once

#include <chrono>
#include <cstddef>
#include <memory>
#include <optional>
#include <span>
#include <vector>

#include "affinity_matrix.hpp"
#include "backend.hpp"
#include "cpu_map.hpp"
#include "error.hpp"
#include "hypervisor.hpp"
#include "model.hpp"

namespace vcpumap {

/// Options of a XenHypervisor.
struct XenOptions {
  /// Read domain names from xenstore; false: "Domain-0" for domain 0, the id for others.
  bool domain_names = true;
  /// How long one operation may wait for xenstored in all; past it the remaining names
  /// fall back as if xenstored were not running.
  std::chrono::milliseconds xenstore_timeout{500};
  /// Read and pin vcpus in batches: up to 256 domctls (128 vcpus' getvcpuinfo and
  /// getvcpuaffinity, 256 getvcpuinfo, or a matrix pin's 256 setvcpuaffinity) in one
  /// __HYPERVISOR_multicall. false: one call per vcpu and per map, as libxl does. When Xen
  /// refuses a first multicall the object falls back to one call each, for good.
  bool multicall = true;
};

class XenHypervisor : public HypervisorFront<XenHypervisor> {
 public:
  /// Opens the hypervisor interface (xc_interface_open) and reads the host. Throws
  /// Error(hypervisor_unavailable) when the interface cannot be opened, and the mapped
  /// Error when the host cannot be read (permission_denied outside the control domain).
  XenHypervisor();
  explicit XenHypervisor(XenOptions options);
  ~XenHypervisor();
  XenHypervisor(XenHypervisor&&) noexcept;
  XenHypervisor& operator=(XenHypervisor&&) noexcept;
  XenHypervisor(const XenHypervisor&) = delete;
  XenHypervisor& operator=(const XenHypervisor&) = delete;

  /// True when /dev/xen/privcmd can be opened read-write: the constructor can be expected
  /// to work. Prints nothing and makes no hypercall.
  static bool available() noexcept;

  // ---- the backend primitives (backend.hpp); applications use HypervisorFront's members ----

  std::shared_ptr<const HostInfo> known_host();
  std::shared_ptr<const HostInfo> read_host();
  void read_domain_list(std::vector<DomainInfo>& out);
  std::optional<DomainInfo> read_domain(DomainId domain);
  void read_vcpus(const HostInfo& host, std::span<VcpuRead> reads, SnapshotScope scope);
  std::vector<PinOutcome> set_affinity(const HostInfo& host, const DomainInfo& domain, const DomainSnapshot* current,
                                       std::span<const VcpuPinRequest> pins, AfterFailure after);
  void set_online(const HostInfo& host, const DomainInfo& domain, const VcpuSet& online);
  std::size_t call_count() const noexcept;
  std::chrono::system_clock::time_point now();

 private:
  struct Impl;
  Impl& impl() const;
  std::unique_ptr<Impl> impl_;
};

}  // namespace vcpumap
