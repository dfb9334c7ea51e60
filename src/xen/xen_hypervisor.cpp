// src/xen/xen_hypervisor.cpp — XenHypervisor on libxenctrl (see include/vcpumap/xen.hpp).
//
// The backend: XenHypervisor::Impl (the host, the domain list, the vcpus read per call or
// in multicalls, the pins) and the public operations, each counting its privileged calls.
// Beside it in src/xen/: xenctrl.hpp (the Xen headers; compiled with -std=gnu++20),
// errors.hpp (errno → Error), xenstore.hpp (domain names), domctl_batch.hpp (one multicall
// of domctls).
//
// tests/xen_fake compiles this file again against a fake libxenctrl and libxencall (same C
// signatures): keep every call here to functions that fake provides.
#include "vcpumap/xen.hpp"

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdarg>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <limits>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <fcntl.h>
#include <unistd.h>

#include <fmt/format.h>

#include "domctl_batch.hpp"
#include "errors.hpp"
#include "xenctrl.hpp"
#include "xenstore.hpp"

namespace vcpumap {

static_assert(Backend<XenHypervisor> && Hypervisor<XenHypervisor>);

using xen_detail::DomctlBatch;
using xen_detail::domctls_per_multicall;
using xen_detail::XenstoreReader;
using xen_detail::domain_error;
using xen_detail::domain_name;
using xen_detail::errno_text;
using xen_detail::raise_domain;
using xen_detail::raise_host;

namespace {

// ---- limits on what a reply may claim before anything is sized by it ----

constexpr std::size_t domains_per_batch = 1024;  // what libxl and xl ask for
constexpr std::size_t max_cpu_ids = 65536;       // Xen's NR_CPUS tops out at 16383
constexpr std::size_t max_vcpus_per_domain = 32768;  // Xen 4.17: 8192 (x86 PV), 128 (HVM)
constexpr std::size_t max_numa_nodes = 4096;     // Xen: MAX_NUMNODES, 64 by default
constexpr std::size_t default_node_slots = 64;   // numainfo's slots in the host multicall
constexpr std::size_t max_pools = 4096;          // cpupools listed before the list is not believed

// ---- libxenctrl's logger: keep it off stderr, remember the last message ----

// The last error libxenctrl logged in this thread (xencall's reason when the open fails).
thread_local char last_log[256];

__attribute__((format(printf, 5, 0))) void quiet_vmessage(xentoollog_logger*, xentoollog_level level, int,
                                                          const char* context, const char* format, va_list args) {
  if (level < XTL_ERROR || format == nullptr) return;
  int used = 0;
  if (context != nullptr) used = std::snprintf(last_log, sizeof last_log, "%s: ", context);
  if (used < 0 || static_cast<std::size_t>(used) >= sizeof last_log) used = 0;
  std::vsnprintf(last_log + used, sizeof last_log - static_cast<std::size_t>(used), format, args);
}
void quiet_destroy(xentoollog_logger*) {}

xentoollog_logger quiet_logger = {quiet_vmessage, nullptr, quiet_destroy};

// ---- conversions: Xen's values as vcpumap's, a pin in words ----

std::chrono::nanoseconds to_ns(std::uint64_t ns) {
  constexpr auto top = static_cast<std::uint64_t>(std::numeric_limits<std::chrono::nanoseconds::rep>::max());
  return std::chrono::nanoseconds(static_cast<std::chrono::nanoseconds::rep>(std::min(ns, top)));
}

/// "hard affinity 0-3 and soft affinity 4-5, forced"
std::string describe(const VcpuPin& pin) {
  std::string text;
  if (pin.hard) text = fmt::format("hard affinity {:a}", *pin.hard);
  if (pin.soft) text += fmt::format("{}soft affinity {:a}", text.empty() ? "" : " and ", *pin.soft);
  if (pin.force) text += ", forced";
  return text;
}

DomainInfo to_info(const xc_domaininfo_t& d, std::string name) {
  DomainInfo info;
  info.id = DomainId{d.domain};
  info.name = std::move(name);
  info.flags.running = (d.flags & XEN_DOMINF_running) != 0;
  info.flags.blocked = (d.flags & XEN_DOMINF_blocked) != 0;
  info.flags.paused = (d.flags & XEN_DOMINF_paused) != 0;
  info.flags.shutdown = (d.flags & XEN_DOMINF_shutdown) != 0;  // the code bits are noise otherwise
  info.flags.dying = (d.flags & XEN_DOMINF_dying) != 0;
  info.online_vcpus = d.nr_online_vcpus;
  // XEN_INVALID_MAX_VCPU_ID (~0U): a domain with no vcpus (yet). Any other value + 1 fits.
  info.max_vcpus = d.max_vcpu_id == XEN_INVALID_MAX_VCPU_ID ? 0u : d.max_vcpu_id + 1u;
  info.cpu_time = to_ns(d.cpu_time);
  if (d.cpupool != XC_CPUPOOL_POOLID_ANY) info.pool = d.cpupool;  // every live domain has one
  return info;
}

/// A node map Xen filled, as a set of the host's `nodes` nodes (bits beyond are nodes
/// without memory or CPUs, which the host does not list: left out).
NodeSet nodes_from(std::span<const std::uint8_t> bytes, std::size_t nodes) {
  NodeSet out(nodes);
  for (std::size_t n = 0; n < nodes && n / 8 < bytes.size(); ++n)
    if ((bytes[n / 8] >> (n % 8)) & 1u) out.set(static_cast<unsigned>(n));
  return out;
}

// ---- counting the privileged calls ----

/// Counts the privileged calls of one primitive and adds them to the object's total when it
/// ends, thrown or not (the front layer's last_call_count() is the change of that total).
struct Calls {
  std::size_t n = 0;
};
class CallCounter {
 public:
  explicit CallCounter(std::atomic<std::size_t>& sink) : sink_(sink) {}
  ~CallCounter() { sink_.fetch_add(calls.n, std::memory_order_relaxed); }
  CallCounter(const CallCounter&) = delete;
  CallCounter& operator=(const CallCounter&) = delete;
  Calls calls;

 private:
  std::atomic<std::size_t>& sink_;
};

/// libxenctrl's xc_get_max_cpus caches its answer in a process-wide static, reading it with
/// one physinfo the first time; the first construction in a process counts that call.
std::atomic<bool> max_cpus_cached{false};
std::atomic<bool> max_nodes_cached{false};  // xc_get_max_nodes's, the same way

}  // namespace

// ---- the implementation ----

struct XenHypervisor::Impl {
  XenOptions options;
  xc_interface* xch = nullptr;
  std::size_t map_bytes = 0;  // libxenctrl's CPU map size: the buffers of the affinity calls
  xencall_handle* xcall = nullptr;  // xch's own (not ours to close); null: no multicall
  std::atomic<bool> multicall_refused{false};  // Xen refused a multicall of domctls once
  std::atomic<bool> host_multicall_refused{false};  // ... or of the host's sysctls
  std::atomic<std::size_t> pool_slots{4};  // cpupool ids the host multicall asks for
  std::size_t node_map_bytes = 0;  // libxenctrl's node map size (node affinity)
  mutable std::mutex host_mutex;
  std::shared_ptr<const HostInfo> host;
  std::atomic<std::size_t> total_calls{0};

  Impl() = default;
  Impl(const Impl&) = delete;
  Impl& operator=(const Impl&) = delete;
  ~Impl() {
    if (xch != nullptr) xc_interface_close(xch);
  }

  std::shared_ptr<const HostInfo> cached_host() const {
    std::lock_guard lock(host_mutex);
    return host;
  }
  void store_host(const HostInfo& h) {
    auto copy = std::make_shared<const HostInfo>(h);
    std::lock_guard lock(host_mutex);
    host = std::move(copy);
  }

  /// What read_host works from, however it was read: physinfo, the CPU topology (entries
  /// Xen filled), the nodes' memory (entries Xen filled) and the cpupools.
  struct RawPool {
    std::uint32_t id = 0, sched_id = 0, n_dom = 0;
    std::vector<std::uint8_t> cpus;  // map_bytes
  };
  struct HostReplies {
    xc_physinfo_t phys{};
    std::vector<xc_cputopo_t> topo;
    std::vector<xc_meminfo_t> mem;
    std::vector<RawPool> pools;
  };

  /// The host: one multicall of sysctls (physinfo, cputopoinfo, numainfo and cpupool infos
  /// of ids 0..pool_slots-1) when multicalls work, else one call each (libxl's way).
  HostInfo read_host(Calls& calls) {
    HostReplies r;
    if (!(host_multicall_usable() && read_host_multicall(calls, r))) read_host_per_call(calls, r);
    XenstoreReader xenstore(options);
    return build_host(r, xenstore);
  }

  bool host_multicall_usable() const {
    return xcall != nullptr && !host_multicall_refused.load(std::memory_order_relaxed);
  }

  /// The CPU slots cputopoinfo is given: libxenctrl's map size, which covers max_cpu_id.
  std::size_t cpu_slots() const { return map_bytes * 8; }

  bool read_host_multicall(Calls& calls, HostReplies& r) {
    const std::size_t cpus = cpu_slots(), nodes = default_node_slots;
    const std::size_t slots = pool_slots.load(std::memory_order_relaxed);
    const std::size_t map_stride = (map_bytes + 7) / 8 * 8;
    const std::size_t topo_bytes = cpus * sizeof(xc_cputopo_t), mem_bytes = nodes * sizeof(xc_meminfo_t);
    DomctlBatch mc(xcall, 3 + slots, 0, map_bytes, topo_bytes + mem_bytes + slots * map_stride);
    mc.clear();
    std::uint8_t* const extra = mc.extra().data();
    auto* const topo = reinterpret_cast<xc_cputopo_t*>(extra);
    auto* const mem = reinterpret_cast<xc_meminfo_t*>(extra + topo_bytes);
    std::uint8_t* const pool_maps = extra + topo_bytes + mem_bytes;
    mc.add_sysctl(0, XEN_SYSCTL_physinfo);
    xen_sysctl_cputopoinfo& ti = mc.add_sysctl(1, XEN_SYSCTL_cputopoinfo).u.cputopoinfo;
    ti.num_cpus = static_cast<std::uint32_t>(cpus);
    set_xen_guest_handle_raw(ti.cputopo, topo);
    xen_sysctl_numainfo& ni = mc.add_sysctl(2, XEN_SYSCTL_numainfo).u.numainfo;
    ni.num_nodes = static_cast<std::uint32_t>(nodes);
    set_xen_guest_handle_raw(ni.meminfo, mem);
    for (std::size_t k = 0; k < slots; ++k) {
      xen_sysctl_cpupool_op& po = mc.add_sysctl(3 + k, XEN_SYSCTL_cpupool_op).u.cpupool_op;
      po.op = XEN_SYSCTL_CPUPOOL_OP_INFO;
      po.cpupool_id = static_cast<std::uint32_t>(k);  // Xen answers the first pool from this id on
      set_xen_guest_handle_raw(po.cpumap.bitmap, pool_maps + k * map_stride);
      po.cpumap.nr_bits = static_cast<std::uint32_t>(map_bytes * 8);
    }
    ++calls.n;
    const auto refused_here = [&](int err) {
      if (err != ENOSYS && err != EPERM && err != EACCES && err != EINVAL && err != EFAULT) return false;
      host_multicall_refused.store(true, std::memory_order_relaxed);
      return true;
    };
    if (const int err = mc.run(3 + slots)) {
      if (refused_here(err)) return false;
      raise_host(err, "reading the host (a multicall of physinfo, cputopoinfo, numainfo and cpupool sysctls)");
    }
    // An entry Xen does not run inside a multicall says ENOSYS; any other error of physinfo
    // is the host's (as EPERM outside the control domain), the same one call would get.
    if (const int err = mc.error(0)) {
      if (err == ENOSYS && refused_here(err)) return false;
      raise_host(err, "reading the host's CPUs (XEN_SYSCTL_physinfo in a multicall)");
    }
    r.phys = mc.sysctl(0).u.physinfo;
    // A host beyond the slots given (ENOBUFS) is read again alone, sized by physinfo.
    if (const int err = mc.error(1); err == ENOBUFS) {
      read_topology_per_call(calls, r);
    } else if (err != 0) {
      raise_host(err, "reading the CPU topology (XEN_SYSCTL_cputopoinfo in a multicall)");
    } else {
      r.topo.assign(topo, topo + std::min<std::size_t>(ti.num_cpus, cpus));
    }
    if (const int err = mc.error(2); err == ENOBUFS) {
      read_nodes_per_call(calls, r);
    } else if (err != 0) {
      raise_host(err, "reading the NUMA nodes (XEN_SYSCTL_numainfo in a multicall)");
    } else {
      r.mem.assign(mem, mem + std::min<std::size_t>(ni.num_nodes, nodes));
    }
    bool more = false;  // the last slot found a pool: there may be pools beyond it
    for (std::size_t k = 0; k < slots; ++k) {
      const int err = mc.error(3 + k);
      if (err == ENOENT) break;  // no pool from id k on
      if (err != 0) raise_host(err, fmt::format("reading cpupool {} (XEN_SYSCTL_cpupool_op in a multicall)", k));
      const xen_sysctl_cpupool_op& po = mc.sysctl(3 + k).u.cpupool_op;
      if (po.cpupool_id < k)
        throw Error(ErrorCode::internal, fmt::format("Xen answered cpupool {} when asked for the first from id {}",
                                                     po.cpupool_id, k));
      if (r.pools.empty() || r.pools.back().id != po.cpupool_id) {
        const std::uint8_t* map = pool_maps + k * map_stride;
        r.pools.push_back({po.cpupool_id, po.sched_id, po.n_dom, std::vector<std::uint8_t>(map, map + map_bytes)});
      }
      more = k + 1 == slots;
    }
    if (more) read_pools_per_call(calls, r, r.pools.back().id + 1);
    remember_pool_ids(r);
    return true;
  }

  /// Asks for pool ids up to the highest seen + 2 next time (within 4..64).
  void remember_pool_ids(const HostReplies& r) {
    const std::size_t top = r.pools.empty() ? 0 : std::size_t{r.pools.back().id} + 2;
    pool_slots.store(std::clamp<std::size_t>(top, 4, 64), std::memory_order_relaxed);
  }

  void read_host_per_call(Calls& calls, HostReplies& r) {
    ++calls.n;
    errno = 0;
    if (xc_physinfo(xch, &r.phys) != 0) raise_host(errno, "reading the host's CPUs (xc_physinfo)");
    read_topology_per_call(calls, r);
    read_nodes_per_call(calls, r);
    read_pools_per_call(calls, r, 0);
  }

  void read_topology_per_call(Calls& calls, HostReplies& r) {
    const std::size_t universe = std::min<std::size_t>(std::size_t{r.phys.max_cpu_id} + 1, max_cpu_ids);
    read_array_per_call(calls, r.topo, universe, "reading the CPU topology (xc_cputopoinfo)",
                        [&](unsigned* count, xc_cputopo_t* out) { return xc_cputopoinfo(xch, count, out); });
  }

  void read_nodes_per_call(Calls& calls, HostReplies& r) {
    // The nodes with memory (memsize XEN_INVALID_MEM_SZ: no such node); no distance matrix.
    const std::size_t slots = std::min<std::size_t>(std::size_t{r.phys.max_node_id} + 1, max_numa_nodes);
    read_array_per_call(calls, r.mem, slots, "reading the NUMA nodes (xc_numainfo)",
                        [&](unsigned* count, xc_meminfo_t* out) { return xc_numainfo(xch, count, out, nullptr); });
  }

  /// One libxc call that fills up to `slots` entries and says how many it wrote: `out` keeps
  /// those (never more than asked for); a failure raises with `doing`.
  template <class T, class Call>
  void read_array_per_call(Calls& calls, std::vector<T>& out, std::size_t slots, const char* doing, Call call) {
    out.assign(slots, T{});
    unsigned count = static_cast<unsigned>(slots);
    ++calls.n;
    errno = 0;
    if (call(&count, out.data()) != 0) raise_host(errno, doing);
    out.resize(std::min<std::size_t>(count, slots));
  }

  /// xc_cpupool_getinfo from id `from` on, one call a pool and one that finds none.
  void read_pools_per_call(Calls& calls, HostReplies& r, std::uint32_t from) {
    for (std::size_t n = 0; n < max_pools; ++n) {
      ++calls.n;
      errno = 0;
      xc_cpupoolinfo_t* info = xc_cpupool_getinfo(xch, from);
      if (info == nullptr) {
        if (errno == ENOENT) return;
        raise_host(errno, fmt::format("reading the cpupools from id {} (xc_cpupool_getinfo)", from));
      }
      RawPool p{info->cpupool_id, info->sched_id, info->n_dom, std::vector<std::uint8_t>(map_bytes)};
      if (info->cpumap != nullptr) std::memcpy(p.cpus.data(), info->cpumap, map_bytes);
      xc_cpupool_infofree(xch, info);
      if (p.id < from)
        throw Error(ErrorCode::internal,
                    fmt::format("xc_cpupool_getinfo answered cpupool {} when asked for the first from id {}", p.id,
                                from));
      r.pools.push_back(std::move(p));
      if (r.pools.back().id == std::numeric_limits<std::uint32_t>::max()) return;
      from = r.pools.back().id + 1;
    }
    throw Error(ErrorCode::internal, fmt::format("Xen lists more than {} cpupools", max_pools));
  }

  static std::string scheduler_name(std::uint32_t id) {
    switch (id) {
      case XEN_SCHEDULER_CREDIT: return "credit";
      case XEN_SCHEDULER_CREDIT2: return "credit2";
      case XEN_SCHEDULER_ARINC653: return "arinc653";
      case XEN_SCHEDULER_RTDS: return "rtds";
      case XEN_SCHEDULER_NULL: return "null";
      default: return fmt::format("scheduler {}", id);
    }
  }

  HostInfo build_host(const HostReplies& r, XenstoreReader& xenstore) {
    const xc_physinfo_t& phys = r.phys;
    const std::size_t universe = std::size_t{phys.max_cpu_id} + 1;
    if (universe > max_cpu_ids)
      throw Error(ErrorCode::internal, fmt::format("xc_physinfo reports max_cpu_id {}: more CPU ids than any Xen "
                                                   "build has ({})",
                                                   phys.max_cpu_id, max_cpu_ids));
    if (universe > map_bytes * 8)
      throw Error(ErrorCode::internal,
                  fmt::format("xc_physinfo reports max_cpu_id {} but libxenctrl's CPU maps hold {} CPUs ({} bytes): "
                              "CPUs {}-{} could not be read or pinned",
                              phys.max_cpu_id, map_bytes * 8, map_bytes, map_bytes * 8, phys.max_cpu_id));
    // One entry per CPU id; Xen fills ids up to the last online CPU.
    const std::size_t topo_filled = std::min<std::size_t>(r.topo.size(), universe);

    HostInfo h;
    h.possible = CpuMap::full(universe);
    h.present = CpuMap(universe);
    h.online = CpuMap(universe);
    h.cpu_socket.assign(universe, std::nullopt);
    h.cpu_core.assign(universe, std::nullopt);
    h.cpu_node.assign(universe, std::nullopt);
    std::size_t nodes = 0;
    for (std::size_t n = 0; n < std::min<std::size_t>(r.mem.size(), max_numa_nodes); ++n)
      if (r.mem[n].memsize != XEN_INVALID_MEM_SZ) nodes = n + 1;
    std::vector<unsigned> sockets;
    for (std::size_t cpu = 0; cpu < topo_filled; ++cpu) {
      const xc_cputopo_t& t = r.topo[cpu];
      // Xen reports core and socket of online CPUs only (an offline CPU loses its sibling
      // info) and the node of every present one; absent CPUs have all three invalid.
      // (XEN_SYSCTL_cputopoinfo in xen/common/sysctl.c; x86 remove_siblinginfo.)
      const bool online = t.core != XEN_INVALID_CORE_ID && t.socket != XEN_INVALID_SOCKET_ID;
      const bool has_node = t.node != XEN_INVALID_NODE_ID;
      if (online) {
        h.online.set(cpu);
        h.cpu_socket[cpu] = t.socket;
        h.cpu_core[cpu] = t.core;
        sockets.push_back(t.socket);
      }
      if (online || has_node) h.present.set(cpu);
      if (has_node && t.node < max_numa_nodes) {
        h.cpu_node[cpu] = t.node;
        nodes = std::max<std::size_t>(nodes, std::size_t{t.node} + 1);
      }
    }
    // Xen describes CPU ids up to the last online one only. The ids beyond may be parked
    // (smt=0 parks the last sibling), offline or hotplug slots: count them present and
    // offline, as Xen accepts them in affinity maps (the effective rule drops them).
    if (topo_filled < universe) h.present.set(topo_filled, universe - 1);
    h.numa_nodes.assign(nodes, CpuMap(universe));
    for (std::size_t cpu = 0; cpu < universe; ++cpu)
      if (h.cpu_node[cpu]) h.numa_nodes[*h.cpu_node[cpu]].set(cpu);
    h.node_memory.assign(nodes, NodeMemory{});
    for (std::size_t n = 0; n < std::min(nodes, r.mem.size()); ++n)
      if (r.mem[n].memsize != XEN_INVALID_MEM_SZ)
        h.node_memory[n] = {r.mem[n].memsize, std::min(r.mem[n].memfree, r.mem[n].memsize)};
    std::sort(sockets.begin(), sockets.end());
    h.sockets = std::max(1u, static_cast<unsigned>(std::unique(sockets.begin(), sockets.end()) - sockets.begin()));
    h.threads_per_core = std::max(1u, phys.threads_per_core);
    h.cores_per_socket = std::max(1u, phys.cores_per_socket);

    // Every domain runs in a cpupool: its CPUs are the domain's limit.
    for (const RawPool& p : r.pools) {
      CpuPool pool;
      pool.id = p.id;
      pool.scheduler = scheduler_name(p.sched_id);
      pool.domains = p.n_dom;
      try {
        pool.cpus = CpuMap::from_bytes(p.cpus, universe);
      } catch (const Error& e) {
        throw Error(ErrorCode::internal,
                    fmt::format("cpupool {}: Xen reported CPUs beyond the host's {}: {}", p.id, universe, e.what()));
      }
      pool.name = xenstore.read(fmt::format("/local/pool/{}/name", p.id)).value_or("");
      h.pools.push_back(std::move(pool));
    }
    h.caps.vcpu_limit = "cpupool";
    h.caps.set_online = true;
    h.caps.node_affinity = true;
    return h;
  }

  /// Every domain, ascending by id, in batches of 1024.
  std::vector<xc_domaininfo_t> list_raw(Calls& calls) {
    std::vector<xc_domaininfo_t> all;
    std::vector<xc_domaininfo_t> batch(domains_per_batch);
    std::uint32_t first = 0;
    for (;;) {
      ++calls.n;
      errno = 0;
      const int n = xc_domain_getinfolist(xch, first, domains_per_batch, batch.data());
      if (n < 0) raise_host(errno, fmt::format("listing the domains from id {} (xc_domain_getinfolist)", first));
      if (static_cast<std::size_t>(n) > domains_per_batch)
        throw Error(ErrorCode::internal, fmt::format("xc_domain_getinfolist returned {} domains for {} asked", n,
                                                     domains_per_batch));
      for (std::size_t i = 0; i < static_cast<std::size_t>(n); ++i) {
        const std::uint32_t id = batch[i].domain;
        if (id < first || (!all.empty() && id <= all.back().domain))
          throw Error(ErrorCode::internal,
                      fmt::format("xc_domain_getinfolist listed domain {} after domain {} (asked from id {}): "
                                  "the list is not ascending",
                                  id, all.empty() ? 0u : std::uint32_t{all.back().domain}, first));
        all.push_back(batch[i]);
      }
      if (static_cast<std::size_t>(n) < domains_per_batch) break;
      const std::uint32_t next = std::uint32_t{all.back().domain} + 1;
      if (next >= DOMID_FIRST_RESERVED) break;  // and domid_t would wrap
      first = next;
    }
    return all;
  }

  /// One domain's info: getdomaininfolist(id, 1) returns the next domain from id on, so
  /// the id is checked. Nothing when there is no such domain.
  std::optional<xc_domaininfo_t> domain_raw(Calls& calls, std::uint32_t id) {
    if (id >= DOMID_FIRST_RESERVED) return std::nullopt;  // DOMID_SELF & co: never a domain here
    xc_domaininfo_t d{};
    ++calls.n;
    errno = 0;
    const int n = xc_domain_getinfolist(xch, id, 1, &d);
    if (n < 0) {
      if (errno == ESRCH) return std::nullopt;
      raise_domain(errno, fmt::format("domain {}", id), "reading its info (xc_domain_getinfolist)");
    }
    if (n > 1)
      throw Error(ErrorCode::internal, fmt::format("xc_domain_getinfolist returned {} domains for 1 asked", n));
    if (n == 0 || d.domain != id) return std::nullopt;
    return d;
  }



  /// A CPU map Xen filled, as a set of the host's CPUs; a bit beyond them breaks Xen's word.
  CpuMap from_xen(std::span<const std::uint8_t> bytes, std::size_t universe, std::string_view who, unsigned vcpu,
                  std::string_view kind) const {
    try {
      return CpuMap::from_bytes(bytes, universe);
    } catch (const Error& e) {
      throw Error(ErrorCode::internal, fmt::format("{}: vcpu {}: Xen reported a {} affinity beyond the host's {} "
                                                   "CPUs: {}",
                                                   who, vcpu, kind, universe, e.what()));
    }
  }

  /// The plain hard and soft maps of one vcpu (xc_vcpu_getaffinity, both in one call).
  std::pair<CpuMap, CpuMap> get_affinity(Calls& calls, std::size_t universe, std::string_view who, std::uint32_t id,
                                         unsigned vcpu, std::vector<std::uint8_t>& hard,
                                         std::vector<std::uint8_t>& soft) {
    std::fill(hard.begin(), hard.end(), 0);
    std::fill(soft.begin(), soft.end(), 0);
    ++calls.n;
    errno = 0;
    if (xc_vcpu_getaffinity(xch, id, static_cast<int>(vcpu), hard.data(), soft.data(),
                            XEN_VCPUAFFINITY_HARD | XEN_VCPUAFFINITY_SOFT) != 0)
      raise_domain(errno, who, fmt::format("vcpu {}: reading its affinity (xc_vcpu_getaffinity)", vcpu));
    return {from_xen(hard, universe, who, vcpu, "hard"), from_xen(soft, universe, who, vcpu, "soft")};
  }

  /// The metrics of vcpu v from the flags and times Xen reported.
  static VcpuMetrics metrics_of(unsigned v, bool online, bool running, bool blocked, std::uint64_t cpu_time,
                                std::uint32_t cpu, std::size_t universe) {
    VcpuMetrics m;
    m.vcpu = v;
    m.state = vcpu_state_from_flags(online, running, blocked);
    m.cpu_time = to_ns(cpu_time);
    if (online && cpu < universe) m.cpu = cpu;  // Xen keeps the last CPU of offline vcpus
    return m;
  }

  /// Sizes `s` for the vcpus of `info` (its storage reused) before they are read.
  static void begin_read(const DomainInfo& info, SnapshotScope scope, std::size_t universe, DomainSnapshot& s) {
    const std::size_t vcpus = info.max_vcpus;
    if (vcpus > max_vcpus_per_domain)
      throw Error(ErrorCode::internal, fmt::format("{}: Xen reports max_vcpu_id {}: more vcpus than any Xen build "
                                                   "allows ({})",
                                                   describe(info), vcpus - 1, max_vcpus_per_domain));
    s.vcpus.resize(vcpus);
    if (scope == SnapshotScope::full) {
      s.hard.reshape(vcpus, universe);
      s.soft.reshape(vcpus, universe);
    } else {  // metrics only: the matrices stay empty (0x0)
      s.hard.reshape(0, 0);
      s.soft.reshape(0, 0);
      s.effective.reshape(0, 0);
    }
    s.domain = info;
    s.scope = scope;
    s.node_affinity.reset();
  }


  /// One domain read by a multicall: where its vcpus go, and what became of it.
  struct DomainRead {
    DomainSnapshot* into = nullptr;
    std::string who{};  // "domain 3 (xperf2)"
    bool vanished = false;      // a domctl of it returned ESRCH: `into` is incomplete
    std::string vanished_in{};  // which domctl said so
  };

  bool multicall_usable() const { return xcall != nullptr && !multicall_refused.load(std::memory_order_relaxed); }

  /// libxl's way: xc_vcpu_getinfo and xc_vcpu_getaffinity for each vcpu.
  void read_vcpus_per_call(Calls& calls, std::string_view who, std::size_t universe, std::size_t nodes,
                           DomainSnapshot& s) {
    const std::uint32_t id = to_integer(s.domain.id);
    const std::size_t vcpus = s.vcpus.size();
    for (unsigned v = 0; v < vcpus; ++v) {
      xc_vcpuinfo_t vi{};
      ++calls.n;
      errno = 0;
      if (xc_vcpu_getinfo(xch, id, v, &vi) != 0)
        raise_domain(errno, who, fmt::format("vcpu {}: reading its state (xc_vcpu_getinfo)", v));
      s.vcpus[v] = metrics_of(v, vi.online != 0, vi.running != 0, vi.blocked != 0, vi.cpu_time, vi.cpu, universe);
    }
    if (s.scope != SnapshotScope::full) return;
    std::vector<std::uint8_t> hard(map_bytes), soft(map_bytes);
    for (unsigned v = 0; v < vcpus; ++v) {
      const auto [h, so] = get_affinity(calls, universe, who, id, v, hard, soft);
      s.hard.set_row(v, h);
      s.soft.set_row(v, so);
    }
    if (vcpus == 0) return;  // as the multicall, which reads it with vcpu 0
    std::vector<std::uint8_t> nodemap(node_map_bytes);
    ++calls.n;
    errno = 0;
    if (xc_domain_node_getaffinity(xch, id, nodemap.data()) != 0)
      raise_domain(errno, who, "reading its node affinity (xc_domain_node_getaffinity)");
    s.node_affinity = nodes_from(nodemap, nodes);
  }

  /// The vcpus of every domain in `reads` (sized by begin_read, all of one scope), with
  /// the same domctls in __HYPERVISOR_multicall: each vcpu's XEN_DOMCTL_getvcpuinfo then
  /// (full) XEN_DOMCTL_getvcpuaffinity, up to domctls_per_multicall per multicall, a
  /// multicall going on from one domain's vcpus to the next's. Xen runs every entry and
  /// stores each one's return value in its `result`: ESRCH marks that domain vanished (its
  /// other entries are ignored), any other error is thrown, naming the domain and vcpu.
  /// Returns false, after counting the refused call, when Xen refuses the first multicall
  /// or the domctls in it (ENOSYS, EPERM, EACCES, EINVAL, EFAULT before any entry
  /// succeeded): the caller then reads per call, and so does every later read through
  /// this object.
  bool read_multicall(Calls& calls, std::span<DomainRead> reads, std::size_t universe, std::size_t nodes) {
    std::size_t total = 0;
    for (const DomainRead& r : reads) total += r.into->vcpus.size();
    if (total == 0) return true;
    const bool affinity = reads.front().into->scope == SnapshotScope::full;
    const std::size_t per_vcpu = affinity ? 2 : 1;
    const std::size_t batch = std::min(total, domctls_per_multicall / per_vcpu);
    // With the affinity, each domain's node affinity rides along with its vcpu 0: one more
    // entry (and node map) for each domain that starts in the multicall.
    const std::size_t node_stride = (node_map_bytes + 7) / 8 * 8;
    DomctlBatch mc(xcall, batch * per_vcpu + (affinity ? batch : 0), affinity ? batch : 0, map_bytes,
                   affinity ? batch * node_stride : 0);

    struct Slot {  // the vcpu an entry (or pair of entries) reads
      DomainRead* read;
      unsigned vcpu;
    };
    std::vector<Slot> slots(batch);
    std::size_t r = 0;  // the next vcpu to read: vcpu v of reads[r]
    unsigned v = 0;
    bool any_succeeded = false;
    for (std::size_t done = 0; done < total;) {
      std::size_t count = 0;
      for (; count < batch && done + count < total; ++count) {
        while (v >= reads[r].into->vcpus.size()) ++r, v = 0;
        slots[count] = {&reads[r], v++};
      }
      mc.clear();
      for (std::size_t i = 0; i < count; ++i) {
        const std::uint32_t id = to_integer(slots[i].read->into->domain.id);
        mc.add(i * per_vcpu, XEN_DOMCTL_getvcpuinfo, id).u.getvcpuinfo.vcpu = slots[i].vcpu;
        if (affinity) {
          xen_domctl_vcpuaffinity& aff = mc.add(i * 2 + 1, XEN_DOMCTL_getvcpuaffinity, id).u.vcpuaffinity;
          aff.vcpu = slots[i].vcpu;
          aff.flags = XEN_VCPUAFFINITY_HARD | XEN_VCPUAFFINITY_SOFT;
          mc.use_maps(aff, i);
        }
      }
      // The node affinity of each domain whose vcpu 0 is here: entries after the vcpus'.
      std::vector<std::size_t> node_reads;  // the slot of each node-affinity entry
      if (affinity)
        for (std::size_t i = 0; i < count; ++i) {
          if (slots[i].vcpu != 0) continue;
          const std::size_t e = node_reads.size();
          xen_domctl_nodeaffinity& na =
              mc.add(count * per_vcpu + e, XEN_DOMCTL_getnodeaffinity, to_integer(slots[i].read->into->domain.id))
                  .u.nodeaffinity;
          set_xen_guest_handle_raw(na.nodemap.bitmap, mc.extra().data() + e * node_stride);
          na.nodemap.nr_bits = static_cast<std::uint32_t>(node_map_bytes * 8);
          node_reads.push_back(i);
        }
      ++calls.n;
      if (const int err = mc.run(count * per_vcpu + node_reads.size())) {
        if (!any_succeeded && refused(err)) return false;
        const Slot &a = slots[0], &b = slots[count - 1];
        const std::string what = fmt::format("reading their state{} (multicall)", affinity ? " and affinity" : "");
        if (a.read == b.read) raise_domain(err, a.read->who, fmt::format("vcpus {}-{}: {}", a.vcpu, b.vcpu, what));
        raise_host(err, fmt::format("the vcpus of {} to {}: {}", a.read->who, b.read->who, what));
      }
      for (std::size_t i = 0; i < count; ++i) {
        DomainRead& d = *slots[i].read;
        const unsigned vcpu = slots[i].vcpu;
        if (d.vanished) continue;
        for (std::size_t k = 0; k < per_vcpu && !d.vanished; ++k) {
          const int err = mc.error(i * per_vcpu + k);
          if (err == 0) {
            any_succeeded = true;
            continue;
          }
          const std::string what =
              k == 0 ? fmt::format("vcpu {}: reading its state (XEN_DOMCTL_getvcpuinfo in a multicall)", vcpu)
                     : fmt::format("vcpu {}: reading its affinity (XEN_DOMCTL_getvcpuaffinity in a multicall)", vcpu);
          if (err == ESRCH) {
            d.vanished = true;
            d.vanished_in = what;
          } else if (!any_succeeded && refused(err)) {
            return false;
          } else {
            raise_domain(err, d.who, what);
          }
        }
        if (d.vanished) continue;
        DomainSnapshot& s = *d.into;
        const xen_domctl_getvcpuinfo& vi = mc.domctl(i * per_vcpu).u.getvcpuinfo;
        s.vcpus[vcpu] =
            metrics_of(vcpu, vi.online != 0, vi.running != 0, vi.blocked != 0, vi.cpu_time, vi.cpu, universe);
        if (affinity) {
          s.hard.set_row(vcpu, from_xen(mc.hard_map(i), universe, d.who, vcpu, "hard"));
          s.soft.set_row(vcpu, from_xen(mc.soft_map(i), universe, d.who, vcpu, "soft"));
        }
      }
      for (std::size_t e = 0; e < node_reads.size(); ++e) {
        DomainRead& d = *slots[node_reads[e]].read;
        if (d.vanished) continue;
        if (const int err = mc.error(count * per_vcpu + e)) {
          const std::string what = "reading its node affinity (XEN_DOMCTL_getnodeaffinity in a multicall)";
          if (err != ESRCH) raise_domain(err, d.who, what);
          d.vanished = true;
          d.vanished_in = what;
          continue;
        }
        d.into->node_affinity = nodes_from(mc.extra().subspan(e * node_stride, node_map_bytes), nodes);
      }
      done += count;
    }
    return true;
  }

  /// Whether errno `err` of a multicall means "not this way" rather than a domain's error:
  /// then multicalls are given up on this object.
  bool refused(int err) {
    if (err != ENOSYS && err != EPERM && err != EACCES && err != EINVAL && err != EFAULT) return false;
    multicall_refused.store(true, std::memory_order_relaxed);
    return true;
  }

  /// xc_vcpu_setaffinity for a validated pin. Xen 4.17 writes the effective map back only
  /// for the maps the flags name; the other one is computed from its current value: from
  /// `current_hard` / `current_soft` when the caller knows them, else read first.
  PinResult set_affinity(Calls& calls, const HostInfo& host, const DomainInfo& info, unsigned vcpu,
                         const VcpuPin& pin, const CpuMap* current_hard, const CpuMap* current_soft) {
    const std::string who = describe(info);
    const std::uint32_t id = to_integer(info.id);
    const std::size_t universe = host.cpu_universe();
    std::vector<std::uint8_t> hard(map_bytes), soft(map_bytes);

    std::optional<CpuMap> kept_hard, kept_soft;  // the map the pin leaves alone
    if ((!pin.hard && !current_hard) || (!pin.soft && !current_soft)) {
      auto [h, s] = get_affinity(calls, universe, who, id, vcpu, hard, soft);
      if (!pin.hard) kept_hard = std::move(h);
      if (!pin.soft) kept_soft = std::move(s);
    } else {
      if (!pin.hard) kept_hard = *current_hard;
      if (!pin.soft) kept_soft = *current_soft;
    }

    std::fill(hard.begin(), hard.end(), 0);
    std::fill(soft.begin(), soft.end(), 0);
    const std::uint32_t flags = fill_pin(pin, who, vcpu, hard, soft);
    ++calls.n;
    errno = 0;
    if (xc_vcpu_setaffinity(xch, id, static_cast<int>(vcpu), hard.data(), soft.data(), flags) != 0)
      raise_domain(errno, who, fmt::format("vcpu {}: setting {} (xc_vcpu_setaffinity)", vcpu, describe(pin)));
    return pin_result(host, reachable(host, info), who, vcpu, pin, hard, soft, kept_hard ? &*kept_hard : nullptr,
                      kept_soft ? &*kept_soft : nullptr);
  }

  /// Writes a pin's maps into zeroed buffers of map_bytes; returns its XEN_VCPUAFFINITY_ flags.
  std::uint32_t fill_pin(const VcpuPin& pin, std::string_view who, unsigned vcpu, std::span<std::uint8_t> hard,
                         std::span<std::uint8_t> soft) const {
    auto fill = [&](const CpuMap& map, std::span<std::uint8_t> buffer, std::string_view kind) {
      try {
        map.write_bytes(buffer);
      } catch (const Error&) {
        throw Error(ErrorCode::invalid_argument, fmt::format("{}: vcpu {}: {} affinity {} does not fit libxenctrl's "
                                                             "maps of {} CPUs",
                                                             who, vcpu, kind, map, map_bytes * 8));
      }
    };
    std::uint32_t flags = 0;
    if (pin.hard) {
      fill(*pin.hard, hard, "hard");
      flags |= XEN_VCPUAFFINITY_HARD;
    }
    if (pin.soft) {
      fill(*pin.soft, soft, "soft");
      flags |= XEN_VCPUAFFINITY_SOFT;
    }
    if (pin.force) flags |= XEN_VCPUAFFINITY_FORCE;
    return flags;
  }

  /// The CPUs Xen restricts a domain's maps to: its cpupool's online CPUs (the host's online
  /// CPUs for a pool the host does not list).
  static CpuMap reachable(const HostInfo& host, const DomainInfo& info) {
    CpuMap reach = host.online;
    if (const CpuPool* pool = info.pool ? host.pool(*info.pool) : nullptr) reach &= pool->cpus;
    reach.resize(host.cpu_universe());
    return reach;
  }

  /// The effective maps of an applied pin: what Xen wrote back for the maps the pin set,
  /// and for a map it left alone that map (`kept_*`) as Xen would restrict it (to `reach`).
  PinResult pin_result(const HostInfo& host, const CpuMap& reach, std::string_view who, unsigned vcpu,
                       const VcpuPin& pin,
                       std::span<const std::uint8_t> hard, std::span<const std::uint8_t> soft, const CpuMap* kept_hard,
                       const CpuMap* kept_soft) const {
    const std::size_t universe = host.cpu_universe();
    PinResult result;
    if (pin.hard) {
      result.hard = from_xen(hard, universe, who, vcpu, "hard");
    } else {
      result.hard = *kept_hard & reach;
      result.hard.resize(universe);
    }
    if (pin.soft) {
      result.soft = from_xen(soft, universe, who, vcpu, "soft");
    } else {
      result.soft = *kept_soft & result.hard;
      result.soft.resize(universe);
    }
    return result;
  }

  /// A matrix pin's batch of pins of one domain as XEN_DOMCTL_setvcpuaffinity entries of
  /// multicalls (up to domctls_per_multicall each).
  /// Xen runs every entry of a multicall, so pins after a failed one are applied too: each
  /// outcome says what happened (a multicall that failed as a whole leaves its pins
  /// unknown). Nothing when Xen refuses the first multicall: nothing was applied, and the
  /// caller pins one by one.
  std::optional<std::vector<PinOutcome>> set_affinity_multicall(Calls& calls, const HostInfo& host,
                                                                        const DomainSnapshot& before,
                                                                        std::span<const VcpuPinRequest> pins) {
    using State = PinOutcome::State;
    std::vector<PinOutcome> out(pins.size());
    if (pins.empty()) return out;
    const std::string who = describe(before.domain);
    const std::uint32_t id = to_integer(before.domain.id);
    const CpuMap reach = reachable(host, before.domain);
    const std::size_t batch = std::min(pins.size(), domctls_per_multicall);
    DomctlBatch mc(xcall, batch, batch, map_bytes);
    // fill_pin cannot fail on a later batch once an earlier one is applied: apply_matrix_pin
    // validated every map within the host's CPUs, and read_host refuses a host wider than
    // libxenctrl's maps.

    for (std::size_t first = 0; first < pins.size(); first += batch) {
      const std::size_t count = std::min(batch, pins.size() - first);
      mc.clear();
      for (std::size_t i = 0; i < count; ++i) {
        const VcpuPinRequest& p = pins[first + i];
        xen_domctl_vcpuaffinity& set = mc.add(i, XEN_DOMCTL_setvcpuaffinity, id).u.vcpuaffinity;
        set.vcpu = p.vcpu;
        set.flags = fill_pin(p.pin, who, p.vcpu, mc.hard_map(i), mc.soft_map(i));
        mc.use_maps(set, i);
      }
      ++calls.n;
      if (const int err = mc.run(count)) {
        if (first == 0 && refused(err)) return std::nullopt;
        for (std::size_t i = 0; i < count; ++i) {
          const VcpuPinRequest& p = pins[first + i];
          out[first + i].state = State::unknown;
          out[first + i].error =
              domain_error(err, who, fmt::format("vcpu {}: setting {} (multicall)", p.vcpu, describe(p.pin)));
        }
        continue;
      }
      for (std::size_t i = 0; i < count; ++i) {
        const VcpuPinRequest& p = pins[first + i];
        PinOutcome& o = out[first + i];
        if (const int err = mc.error(i)) {
          o.state = State::failed;
          o.error = domain_error(err, who, fmt::format("vcpu {}: setting {} (XEN_DOMCTL_setvcpuaffinity in a multicall)",
                                                       p.vcpu, describe(p.pin)));
          continue;
        }
        const CpuMap kept_hard = before.hard.row(p.vcpu), kept_soft = before.soft.row(p.vcpu);
        try {
          o.result = pin_result(host, reach, who, p.vcpu, p.pin, mc.hard_map(i), mc.soft_map(i), &kept_hard,
                                &kept_soft);
          o.state = State::applied;
        } catch (const Error& e) {  // applied, but Xen's reply is unreadable
          o.state = State::unknown;
          o.error = e;
        }
      }
    }
    return out;
  }
};

// ---- construction ----

XenHypervisor::XenHypervisor() : XenHypervisor(XenOptions{}) {}

XenHypervisor::XenHypervisor(XenOptions options) : impl_(std::make_unique<Impl>()) {
  Impl& im = *impl_;
  im.options = options;
  {
    CallCounter op(im.total_calls);
    last_log[0] = '\0';
    errno = 0;
    im.xch = xc_interface_open(&quiet_logger, &quiet_logger, 0);
    if (im.xch == nullptr) {
      const int err = errno;
      std::string why = last_log[0] != '\0' ? fmt::format("{}; {}", last_log, errno_text(err)) : errno_text(err);
      throw Error(ErrorCode::hypervisor_unavailable,
                  fmt::format("cannot open the Xen control interface ({}): /dev/xen/privcmd missing or not usable: "
                              "run in dom0 as root with the xen-privcmd module loaded and xenfs mounted",
                              why));
    }
    // Prime libxenctrl's CPU and node count caches now, before any thread can race on them:
    // each costs one physinfo, the first time in a process.
    auto map_size = [&](std::atomic<bool>& cached, int (*size)(xc_interface*), std::string_view what) {
      const bool first = !cached.exchange(true);
      if (first) ++op.calls.n;
      errno = 0;
      const int bytes = size(im.xch);
      if (bytes <= 0) {
        if (first) cached.store(false);
        raise_host(errno, what);
      }
      return static_cast<std::size_t>(bytes);
    };
    im.map_bytes = map_size(max_cpus_cached, xc_get_cpumap_size, "sizing CPU maps (xc_get_cpumap_size)");
    im.node_map_bytes = map_size(max_nodes_cached, xc_get_nodemap_size, "sizing node maps (xc_get_nodemap_size)");
    if (options.multicall) im.xcall = xc_interface_xcall_handle(im.xch);
    im.store_host(im.read_host(op.calls));
  }
  publish_calls(im.total_calls.load());
}

XenHypervisor::~XenHypervisor() = default;
XenHypervisor::XenHypervisor(XenHypervisor&&) noexcept = default;
XenHypervisor& XenHypervisor::operator=(XenHypervisor&&) noexcept = default;

XenHypervisor::Impl& XenHypervisor::impl() const {
  if (!impl_) throw Error(ErrorCode::internal, "XenHypervisor: use of a moved-from object");
  return *impl_;
}

bool XenHypervisor::available() noexcept {
  const int fd = ::open("/dev/xen/privcmd", O_RDWR | O_CLOEXEC);
  if (fd < 0) return false;
  ::close(fd);
  return true;
}

// ---- the primitives (vcpumap/backend.hpp); the front layer makes the operations of them ----

std::shared_ptr<const HostInfo> XenHypervisor::known_host() { return impl().cached_host(); }

std::shared_ptr<const HostInfo> XenHypervisor::read_host() {
  Impl& im = impl();
  CallCounter op(im.total_calls);
  im.store_host(im.read_host(op.calls));
  return im.cached_host();
}

void XenHypervisor::read_domain_list(std::vector<DomainInfo>& out) {
  Impl& im = impl();
  CallCounter op(im.total_calls);
  const std::vector<xc_domaininfo_t> raw = im.list_raw(op.calls);
  XenstoreReader xenstore(im.options);
  out.clear();
  out.reserve(raw.size());
  for (const xc_domaininfo_t& d : raw) out.push_back(to_info(d, domain_name(xenstore, d.domain)));
}

std::optional<DomainInfo> XenHypervisor::read_domain(DomainId domain) {
  Impl& im = impl();
  CallCounter op(im.total_calls);
  const std::uint32_t id = to_integer(domain);
  const auto raw = im.domain_raw(op.calls, id);
  if (!raw) return std::nullopt;
  XenstoreReader xenstore(im.options);
  return to_info(*raw, domain_name(xenstore, id));
}

void XenHypervisor::read_vcpus(const HostInfo& host, std::span<VcpuRead> reads, SnapshotScope scope) {
  Impl& im = impl();
  CallCounter op(im.total_calls);
  const std::size_t universe = host.cpu_universe();
  std::vector<Impl::DomainRead> batch(reads.size());
  for (std::size_t i = 0; i < reads.size(); ++i) {
    Impl::begin_read(*reads[i].info, scope, universe, *reads[i].into);
    batch[i] = {reads[i].into, describe(*reads[i].info)};
  }
  if (im.multicall_usable() && im.read_multicall(op.calls, batch, universe, host.numa_nodes.size())) {
    // Every domain's vcpus in shared multicalls; a domctl's ESRCH marks its domain vanished.
    for (std::size_t i = 0; i < reads.size(); ++i) reads[i].vanished = batch[i].vanished;
    return;
  }
  for (std::size_t i = 0; i < reads.size(); ++i) {
    try {
      im.read_vcpus_per_call(op.calls, batch[i].who, universe, host.numa_nodes.size(), *reads[i].into);
    } catch (const Error& e) {
      if (e.code() != ErrorCode::not_found) throw;
      reads[i].vanished = true;
    }
  }
}

std::vector<PinOutcome> XenHypervisor::set_affinity(const HostInfo& host, const DomainInfo& domain,
                                                    const DomainSnapshot* current,
                                                    std::span<const VcpuPinRequest> pins, AfterFailure after) {
  Impl& im = impl();
  CallCounter op(im.total_calls);
  // A matrix pin (it knows the current maps) batches its setvcpuaffinity domctls; a single
  // pin is one xc_vcpu_setaffinity, as xl's.
  if (current != nullptr && im.multicall_usable())
    if (auto outcomes = im.set_affinity_multicall(op.calls, host, *current, pins)) return std::move(*outcomes);
  return pin_one_by_one(pins, after, [&](unsigned vcpu, const VcpuPin& pin) {
    if (current == nullptr) return im.set_affinity(op.calls, host, domain, vcpu, pin, nullptr, nullptr);
    const CpuMap hard = current->hard.row(vcpu), soft = current->soft.row(vcpu);
    return im.set_affinity(op.calls, host, domain, vcpu, pin, &hard, &soft);
  });
}

void XenHypervisor::set_online(const HostInfo&, const DomainInfo& domain, const VcpuSet& online) {
  Impl& im = impl();
  const std::string who = describe(domain);
  const std::uint32_t id = to_integer(domain.id);
  // xenstore writes are not privileged calls: nothing is counted. One connection for the
  // whole operation, whether or not domain names are read.
  XenOptions connect = im.options;
  connect.domain_names = true;
  XenstoreReader xenstore(connect);
  const std::string home = fmt::format("/local/domain/{}", id);
  if (!xenstore.read(home)) {
    if (!xenstore.read("/local/domain/0"))
      throw Error(ErrorCode::hypervisor_unavailable,
                  fmt::format("{}: xenstored is not reachable (its socket, within {} ms): vcpus are set online "
                              "through xenstore",
                              who, im.options.xenstore_timeout.count()));
    throw Error(ErrorCode::unsupported, fmt::format("{}: it has no xenstore folder ({}): its guest cannot be asked "
                                                    "to bring vcpus on- or offline",
                                                    who, home));
  }
  // libxl keeps the guest type in xenstore; an HVM guest's vcpus are QEMU's to plug (QMP).
  if (xenstore.read(fmt::format("/libxl/{}/type", id)).value_or("") == "hvm")
    throw Error(ErrorCode::unsupported,
                fmt::format("{}: an HVM guest's vcpus are hot-plugged by its device model (QEMU, through QMP: "
                            "xl vcpu-set does that); vcpumap asks PV and PVH guests through xenstore only",
                            who));
  // As libxl__set_vcpuonline_xenstore: every vcpu's availability, in one transaction.
  std::vector<std::pair<std::string, std::string>> writes;
  writes.reserve(domain.max_vcpus);
  for (unsigned v = 0; v < domain.max_vcpus; ++v)
    writes.emplace_back(fmt::format("{}/cpu/{}/availability", home, v),
                        v < online.universe() && online.test(v) ? "online" : "offline");
  const XenstoreReader::WriteResult r = xenstore.write_all(writes);
  if (r.done) return;
  if (r.unreachable)
    throw Error(ErrorCode::hypervisor_unavailable,
                fmt::format("{}: xenstored stopped answering while vcpus {} were set online: nothing was changed", who,
                            online));
  const ErrorCode code = r.error == "EACCES" || r.error == "EPERM" ? ErrorCode::permission_denied
                         : r.error == "EAGAIN"                        ? ErrorCode::busy
                         : r.error == "ENOENT"                        ? ErrorCode::not_found
                                                                      : ErrorCode::internal;
  throw Error(code, fmt::format("{}: xenstored refused to set vcpus {} online ({}): nothing was changed", who, online,
                                escape_terminal(r.error)));
}

std::size_t XenHypervisor::call_count() const noexcept {
  return impl_ ? impl_->total_calls.load(std::memory_order_relaxed) : 0;
}

std::chrono::system_clock::time_point XenHypervisor::now() { return std::chrono::system_clock::now(); }

}  // namespace vcpumap
