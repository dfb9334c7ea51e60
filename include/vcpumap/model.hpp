// vcpumap/model.hpp — what a hypervisor reports: hosts, domains, vcpu metrics, snapshots.
//
//   vcpumap::DomainSnapshot s = hv.snapshot(vcpumap::control_domain);
//   for (const auto& v : s.vcpus) fmt::print("{} {} {}\n", v.vcpu, v.state, s.hard.row(v.vcpu));
//
// Runtime data (VcpuMetrics: state, CPU time, last CPU) is kept apart from configuration
// (the hard and soft AffinityMatrix), as the 2006 libvir-list design asked; a snapshot
// carries both, read in one library call and stamped with when it was taken.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstring>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <fmt/format.h>

#include "affinity_matrix.hpp"
#include "cpu_map.hpp"
#include "cpulist.hpp"
#include "error.hpp"
#include "text.hpp"

namespace vcpumap {

/// What a vcpu is doing. Xen reports `online`, `running` and `blocked` as three booleans,
/// and running and blocked can both be set (a vcpu caught blocking on its CPU). The
/// mapping, see vcpu_state_from_flags: not online → offline; running (whatever blocked
/// says) → running; blocked → blocked; online and neither → runnable (waiting for a CPU;
/// libvirt's Xen driver wrongly called this OFFLINE). `unknown` is for backends that
/// cannot tell.
enum class VcpuState { offline, running, blocked, runnable, unknown };

constexpr VcpuState vcpu_state_from_flags(bool online, bool running, bool blocked) noexcept {
  if (!online) return VcpuState::offline;
  if (running) return VcpuState::running;
  if (blocked) return VcpuState::blocked;
  return VcpuState::runnable;
}

constexpr std::string_view to_string(VcpuState s) noexcept {
  switch (s) {
    case VcpuState::offline: return "offline";
    case VcpuState::running: return "running";
    case VcpuState::blocked: return "blocked";
    case VcpuState::runnable: return "runnable";
    case VcpuState::unknown: return "unknown";
  }
  return "unknown";
}

/// Runtime data of one vcpu.
struct VcpuMetrics {
  unsigned vcpu = 0;
  VcpuState state = VcpuState::unknown;
  std::chrono::nanoseconds cpu_time{0};
  /// The physical CPU the vcpu last ran on; empty when offline or unknown.
  std::optional<unsigned> cpu;
  /// Time spent ready to run but waiting for a CPU (Linux: the run-queue wait of schedstat,
  /// what the guest sees as steal); empty where the hypervisor does not report it (Xen's
  /// getvcpuinfo).
  std::optional<std::chrono::nanoseconds> wait_time;
  friend bool operator==(const VcpuMetrics&, const VcpuMetrics&) = default;
};

/// A domain's id. A distinct type, so a vcpu number is never taken for a domain.
enum class DomainId : std::uint32_t {};
/// The control domain (Xen's domain 0, "Domain-0"): name it explicitly, nothing is implied.
inline constexpr DomainId control_domain{0};
constexpr std::uint32_t to_integer(DomainId id) noexcept { return static_cast<std::uint32_t>(id); }

struct DomainFlags {
  bool running = false;
  bool blocked = false;
  bool paused = false;
  bool shutdown = false;
  bool dying = false;
  friend bool operator==(const DomainFlags&, const DomainFlags&) = default;
};

struct DomainInfo {
  DomainId id{};
  /// Any bytes (guest owners choose it): escape it for a terminal (text.hpp, describe()).
  std::string name;
  DomainFlags flags;
  unsigned online_vcpus = 0;
  /// Vcpus the domain can have (Xen: max_vcpu_id + 1; 0 for a domain with no vcpus).
  unsigned max_vcpus = 0;
  std::chrono::nanoseconds cpu_time{0};
  /// The domain's UUID in its canonical text form ("4a5b…-…"), lowercase; empty when the
  /// hypervisor does not give one (a QEMU started without -uuid).
  std::string uuid;
  /// Empty, unless the backend cannot see this domain's vcpus; then why (Linux: a QEMU
  /// started without `-name debug-threads=on` and no QMP socket given, so its vcpu threads
  /// cannot be told from its other threads). Such a domain's snapshot has every vcpu in
  /// state unknown with empty affinity rows (nothing is guessed), and pins are refused with
  /// this reason.
  std::string vcpu_problem;
  /// The cpupool the domain runs in (Xen: getdomaininfo's cpupool; see CpuPool), where the
  /// hypervisor has pools; empty otherwise.
  std::optional<unsigned> pool;
  friend bool operator==(const DomainInfo&, const DomainInfo&) = default;
};

/// "domain 3 (xperf2)": how messages name a domain, the name escaped for a terminal
/// (escape_terminal), so an error message never carries a control character from it.
inline std::string describe(const DomainInfo& d) {
  const std::uint32_t id = to_integer(d.id);
  return d.name.empty() ? fmt::format("domain {}", id) : fmt::format("domain {} ({})", id, escape_terminal(d.name));
}

/// What a kind of hypervisor has, so code need not guess it from the backend's name.
struct Capabilities {
  /// A soft affinity (preferred CPUs within the hard ones): Xen's credit schedulers have it.
  /// Linux's scheduler has none: there a snapshot's soft rows hold every CPU (no preference,
  /// which leaves the effective affinity to the hard one) and a pin with a soft map is
  /// refused (ErrorCode::unsupported) before any call.
  bool soft_affinity = true;
  /// What confines a vcpu beyond its pin, named as users know it ("cpuset" on Linux: the
  /// cpuset cgroup of the vcpu's thread); empty when nothing does. When set, snapshots fill
  /// DomainSnapshot::limit per vcpu and a pin naming CPUs outside it is refused.
  /// Xen: "cpupool", each domain's limit being its pool's CPUs (HostInfo::pools).
  std::string vcpu_limit;
  /// Which vcpus are online can be set (Hypervisor set_online_vcpus, `xl vcpu-set`): Xen
  /// through xenstore's cpu/N/availability, acted on by the guest.
  bool set_online = false;
  /// Snapshots carry each domain's NUMA node affinity (DomainSnapshot::node_affinity).
  bool node_affinity = false;
  friend bool operator==(const Capabilities&, const Capabilities&) = default;
};

/// A cpupool (Xen): CPUs with a scheduler of their own; every domain runs in exactly one
/// pool, on its CPUs only, whatever its affinity says (`xl cpupool-list -c`).
struct CpuPool {
  unsigned id = 0;
  /// Any bytes (xenstore's /local/pool/<id>/name, written by the toolstack: "Pool-0");
  /// escape it for a terminal. Empty when the hypervisor does not say.
  std::string name;
  /// The pool's scheduler ("credit2", "credit", "rtds", "arinc653", "null"), or
  /// "scheduler N" for an id vcpumap does not know.
  std::string scheduler;
  /// The pool's CPUs (the host's universe). A pool may have none.
  CpuMap cpus;
  /// How many domains run in it.
  unsigned domains = 0;
  friend bool operator==(const CpuPool&, const CpuPool&) = default;
};

/// "cpupool 1 (pool1)": how messages name a pool, the name escaped for a terminal.
inline std::string describe(const CpuPool& p) {
  return p.name.empty() ? fmt::format("cpupool {}", p.id) : fmt::format("cpupool {} ({})", p.id, escape_terminal(p.name));
}

/// The memory of one NUMA node, in bytes (Xen: xc_numainfo's memsize and memfree).
struct NodeMemory {
  std::uint64_t size = 0;
  std::uint64_t free = 0;
  friend bool operator==(const NodeMemory&, const NodeMemory&) = default;
};

/// The host's CPUs and topology. Every CpuMap here has the host's universe, max CPU id + 1
/// (never the online count: with CPUs offline or SMT off, ids have holes).
struct HostInfo {
  CpuMap possible;  // every id the hypervisor could bring up
  CpuMap present;   // physically there
  CpuMap online;    // usable now
  unsigned threads_per_core = 1;
  unsigned cores_per_socket = 1;
  unsigned sockets = 1;
  std::vector<CpuMap> numa_nodes;  // the CPUs of each node, by node id
  /// CPU -> socket and CPU -> node, by CPU id; empty optionals for CPUs not present, and
  /// where the hypervisor does not say (Xen reports no socket for an offline CPU).
  std::vector<std::optional<unsigned>> cpu_socket;
  std::vector<std::optional<unsigned>> cpu_node;
  /// CPU -> core id within its socket, by CPU id (Xen: xc_cputopoinfo's core; Linux:
  /// topology/core_id); empty where unknown. Two CPUs with the same socket and core are SMT
  /// siblings (siblings()).
  std::vector<std::optional<unsigned>> cpu_core;
  /// The memory of each node, by node id, where the hypervisor reports it (else empty).
  std::vector<NodeMemory> node_memory;
  /// The cpupools, ascending by id (Xen); empty where the hypervisor has none.
  std::vector<CpuPool> pools;
  /// What this hypervisor has (soft affinity, vcpu limits).
  Capabilities caps;
  /// Where the host's own processes may run, when the host OS is not itself a domain
  /// (Linux: the CPUs of the root cpuset outside the guests' cgroups, or systemd's
  /// AllowedCPUs of system.slice), to show housekeeping CPUs beside the guests' pins. Empty
  /// where the host OS is a domain (Xen's domain 0) or the backend cannot tell.
  std::optional<CpuMap> system_cpus;

  /// The number of CPU ids: the universe of every host-wide CpuMap.
  std::size_t cpu_universe() const noexcept { return possible.universe(); }

  /// The pool of that id, or null.
  const CpuPool* pool(unsigned id) const noexcept {
    for (const CpuPool& p : pools)
      if (p.id == id) return &p;
    return nullptr;
  }
  /// The SMT siblings of a CPU, itself included: the CPUs of its socket and core. Just the
  /// CPU when its core or socket is unknown; empty for a CPU id beyond the host.
  CpuMap siblings(std::size_t cpu) const {
    CpuMap out(cpu_universe());
    if (cpu >= cpu_universe()) return out;
    out.set(cpu);
    const auto at = [](const std::vector<std::optional<unsigned>>& v, std::size_t i) {
      return i < v.size() ? v[i] : std::nullopt;
    };
    const std::optional<unsigned> core = at(cpu_core, cpu), socket = at(cpu_socket, cpu);
    if (!core || !socket) return out;
    for (std::size_t c = 0; c < cpu_universe(); ++c)
      if (at(cpu_core, c) == core && at(cpu_socket, c) == socket) out.set(c);
    return out;
  }
  /// Whether a hard affinity row is an explicit pin: it leaves out a present CPU (what `xl`
  /// shows as hard affinity other than "all"). A vcpu confined only by its cpupool keeps hard
  /// "all" on Xen and is not pinned; on Linux a cpuset narrower than the host narrows the
  /// thread's affinity too, so a vcpu in such a cpuset counts as pinned. An empty row (a
  /// vcpu whose affinity is unknown) is not a pin.
  bool is_pinned(const CpuMap& hard) const {
    if (hard.empty()) return false;
    for (std::size_t cpu : present)
      if (!hard.test(cpu)) return true;
    return false;
  }
  /// The CPUs of a set of NUMA nodes (nodes beyond the host's are ignored).
  CpuMap cpus_of(const NodeSet& nodes) const {
    CpuMap out(cpu_universe());
    for (unsigned n : nodes)
      if (n < numa_nodes.size()) out |= numa_nodes[n];
    return out;
  }

  /// Options that read cpulists for this host: its universe ("all", "^N" and "N-" work)
  /// and its NUMA nodes ("node:1", "nodes:0-1", "^node:0"). The options borrow this
  /// HostInfo's node maps: keep it alive while they are used. Asking a temporary HostInfo
  /// (`hv.host_info().parse_options()`) does not compile: the options would dangle.
  ParseOptions parse_options(Dialect dialect = Dialect::standard) const& {
    ParseOptions o;
    o.dialect = dialect;
    o.universe = cpu_universe();
    o.numa_nodes = numa_nodes;
    return o;
  }
  ParseOptions parse_options(Dialect dialect = Dialect::standard) const&& = delete;
  /// Reads a cpulist for this host (see parse_options); throws ParseError.
  CpuMap parse(std::string_view cpulist, Dialect dialect = Dialect::standard) const {
    return CpuMap::parse(cpulist, parse_options(dialect));
  }
  friend bool operator==(const HostInfo&, const HostInfo&) = default;
};

/// Which parts of a domain a snapshot reads. Affinity costs a privileged call per vcpu on
/// Xen, so asking for metrics only skips it.
enum class SnapshotScope { metrics_only, full };

/// One domain's vcpus as of `taken_at`: metrics of every vcpu (indexed by vcpu number,
/// offline ones included) and, for SnapshotScope::full, its affinity matrices, all
/// max_vcpus rows × host-universe columns (for metrics_only they are empty, 0×0).
///
/// hard is the affinity the vcpu was given (Xen's hard affinity; Linux: its thread's
/// sched_getaffinity), soft the preferred CPUs (every CPU where the hypervisor has no soft
/// affinity: Capabilities::soft_affinity), limit where the vcpu is confined whatever its
/// pin (Linux: its cpuset; Xen: its domain's cpupool's CPUs; every CPU where nothing
/// confines it: Capabilities::vcpu_limit).
///
/// effective is where a vcpu may actually run, Xen's rule extended by the limit: with
/// allowed = hard ∩ limit ∩ online, it is allowed ∩ soft when that is not empty, else
/// allowed (the scheduler ignores a soft affinity that leaves nothing). Xen itself also
/// stores soft ∩ hard as the "effective soft" it writes back on a pin; that can be empty,
/// and is reported in PinResult.
struct DomainSnapshot {
  DomainInfo domain;
  std::vector<VcpuMetrics> vcpus;
  AffinityMatrix hard;
  AffinityMatrix soft;
  AffinityMatrix effective;
  AffinityMatrix limit;
  /// The NUMA nodes the domain's memory is placed on (Xen: xc_domain_node_getaffinity;
  /// universe: the host's node count), for scope full where the hypervisor reports it
  /// (Capabilities::node_affinity); else empty.
  std::optional<NodeSet> node_affinity;
  SnapshotScope scope = SnapshotScope::full;
  std::chrono::system_clock::time_point taken_at;

  /// No domain, no vcpus, 0x0 matrices; keeps the storage for the next snapshot into it.
  void clear() {
    domain = DomainInfo{};
    vcpus.clear();
    hard.reshape(0, 0);
    soft.reshape(0, 0);
    effective.reshape(0, 0);
    limit.reshape(0, 0);
    node_affinity.reset();
    scope = SnapshotScope::full;
    taken_at = {};
  }
  friend bool operator==(const DomainSnapshot&, const DomainSnapshot&) = default;
};

/// The whole host in one call: what `xm vcpu-list` / `xl vcpu-list` print.
struct HostSnapshot {
  HostInfo host;
  std::vector<DomainSnapshot> domains;
  std::chrono::system_clock::time_point taken_at;

  /// No host, no domains (the list keeps its capacity).
  void clear() {
    host = HostInfo{};
    domains.clear();
    taken_at = {};
  }
  friend bool operator==(const HostSnapshot&, const HostSnapshot&) = default;
};

namespace detail {
/// effective_affinity's loop over rows of n words, of which the first k meet the online map.
/// Width > 0: n == k == Width, a constant the compiler unrolls; 0: any n and k. The four
/// matrices never overlap (the caller checks), which __restrict tells the compiler.
template <std::size_t Width>
void effective_rows(const Block* __restrict h, const Block* __restrict s, const Block* __restrict m,
                    Block* __restrict e, std::size_t rows, std::size_t n, std::size_t k) {
  if constexpr (Width > 0) n = k = Width;
  for (std::size_t v = 0; v < rows; ++v, h += n, s += n, e += n) {
    Block any = 0;
    for (std::size_t i = 0; i < k; ++i) {
      const Block x = h[i] & s[i] & m[i];
      e[i] = x;
      any |= x;
    }
    for (std::size_t i = k; i < n; ++i) e[i] = 0;
    if (!any)
      for (std::size_t i = 0; i < k; ++i) e[i] = h[i] & m[i];
  }
}

/// effective_rows for rows of an even number of words (2, 4, 8), two words at a time
/// (GCC/Clang vector types: SSE2 on x86-64, NEON on arm64), the online words kept in
/// registers. The same rule, the same result.
template <std::size_t Width>
void effective_rows_pairs(const Block* __restrict h, const Block* __restrict s, const Block* __restrict m,
                          Block* __restrict e, std::size_t rows) {
  static_assert(Width >= 2 && Width % 2 == 0);
  using Pair = Block __attribute__((vector_size(2 * sizeof(Block))));
  constexpr std::size_t pairs = Width / 2;
  auto load = [](const Block* p) {
    Pair x;
    std::memcpy(&x, p, sizeof x);
    return x;
  };
  Pair online[pairs];
  for (std::size_t j = 0; j < pairs; ++j) online[j] = load(m + 2 * j);
  for (std::size_t v = 0; v < rows; ++v, h += Width, s += Width, e += Width) {
    Pair x[pairs];
    Pair any = {0, 0};
    for (std::size_t j = 0; j < pairs; ++j) {
      x[j] = load(h + 2 * j) & load(s + 2 * j) & online[j];
      any |= x[j];
    }
    if ((any[0] | any[1]) == 0)
      for (std::size_t j = 0; j < pairs; ++j) x[j] = load(h + 2 * j) & online[j];
    for (std::size_t j = 0; j < pairs; ++j) std::memcpy(e + 2 * j, &x[j], sizeof x[j]);
  }
}

#if VCPUMAP_X86_DISPATCH
/// The rule on rows of any width (n words, the first k meeting the online map), four words
/// at a time with AVX2, for CPUs that have it (see detail::usable_isa); `l`, the limit
/// matrix, may be null (no limit). The same rule, the same result as effective_rows and
/// effective_affinity's limited loop. No lambdas: they would not inherit the target.
template <bool Limited>
__attribute__((target("avx2"))) inline void effective_rows_avx2(const Block* __restrict h, const Block* __restrict s,
                                                                const Block* __restrict l, const Block* __restrict m,
                                                                Block* __restrict e, std::size_t rows, std::size_t n,
                                                                std::size_t k) {
  using Quad = Block __attribute__((vector_size(4 * sizeof(Block))));
  const std::size_t quads = k / 4;
  for (std::size_t v = 0; v < rows; ++v, h += n, s += n, e += n) {
    Quad any_q = {0, 0, 0, 0};
    Block any = 0;
    for (std::size_t j = 0; j < quads; ++j) {
      Quad a, b, c;
      __builtin_memcpy(&a, h + 4 * j, sizeof a);
      __builtin_memcpy(&b, s + 4 * j, sizeof b);
      __builtin_memcpy(&c, m + 4 * j, sizeof c);
      Quad x = a & b & c;
      if constexpr (Limited) {
        Quad d;
        __builtin_memcpy(&d, l + 4 * j, sizeof d);
        x &= d;
      }
      __builtin_memcpy(e + 4 * j, &x, sizeof x);
      any_q |= x;
    }
    for (std::size_t i = 4 * quads; i < k; ++i) {
      Block x = h[i] & s[i] & m[i];
      if constexpr (Limited) x &= l[i];
      e[i] = x;
      any |= x;
    }
    for (std::size_t i = k; i < n; ++i) e[i] = 0;
    if ((any | any_q[0] | any_q[1] | any_q[2] | any_q[3]) == 0) {
      for (std::size_t j = 0; j < quads; ++j) {
        Quad a, c;
        __builtin_memcpy(&a, h + 4 * j, sizeof a);
        __builtin_memcpy(&c, m + 4 * j, sizeof c);
        Quad x = a & c;
        if constexpr (Limited) {
          Quad d;
          __builtin_memcpy(&d, l + 4 * j, sizeof d);
          x &= d;
        }
        __builtin_memcpy(e + 4 * j, &x, sizeof x);
      }
      for (std::size_t i = 4 * quads; i < k; ++i) e[i] = h[i] & m[i] & (Limited ? l[i] : ~Block{0});
    }
    if constexpr (Limited) l += n;
  }
}
#endif

/// Whether effective_affinity takes the AVX2 loop: rows of at least 4 words (narrower ones
/// have their own unrolled loops), on a CPU with AVX2.
inline bool effective_rows_use_avx2(std::size_t k) noexcept {
#if VCPUMAP_X86_DISPATCH
  return k >= 4 && usable_isa().avx2;
#else
  (void)k;
  return false;
#endif
}
}  // namespace detail

/// Xen's effective affinity of every vcpu (see DomainSnapshot), written into `into`, whose
/// storage is reused when it has the shape already (or room for it). Online CPUs beyond the
/// matrices' columns are ignored; columns beyond `online` count as offline.
inline void effective_affinity(const AffinityMatrix& hard, const AffinityMatrix& soft, const CpuMap& online,
                               AffinityMatrix& into) {
  if (hard.rows() != soft.rows() || hard.cols() != soft.cols())
    throw Error(ErrorCode::invalid_argument, "effective_affinity: hard and soft matrices differ in shape");
  if (&into == &hard || &into == &soft)
    throw Error(ErrorCode::invalid_argument, "effective_affinity: the result cannot be one of the inputs");
  const std::size_t n = hard.row_words(), rows = hard.rows();
  // Every word of the result is written below: no need to clear a matrix of the right shape.
  if (into.rows() != rows || into.cols() != hard.cols()) into.reshape(rows, hard.cols());
  const auto on = online.words();
  const std::size_t k = std::min(n, on.size());  // words n-k.. of each row: no online CPU
  const detail::Block* h = hard.words().data();
  const detail::Block* s = soft.words().data();
  detail::Block* e = into.mutable_words().data();
#if VCPUMAP_X86_DISPATCH
  if (detail::effective_rows_use_avx2(k)) return detail::effective_rows_avx2<false>(h, s, nullptr, on.data(), e, rows, n, k);
#endif
  if (k == n) {  // the online map covers every column: rows of a width the compiler knows
    switch (n) {
      case 1: return detail::effective_rows<1>(h, s, on.data(), e, rows, n, k);
      case 2: return detail::effective_rows_pairs<2>(h, s, on.data(), e, rows);
      case 4: return detail::effective_rows_pairs<4>(h, s, on.data(), e, rows);
      case 8: return detail::effective_rows_pairs<8>(h, s, on.data(), e, rows);
      default: break;
    }
  }
  detail::effective_rows<0>(h, s, on.data(), e, rows, n, k);
}

/// The effective affinity of vcpus confined by a limit (see DomainSnapshot): with
/// allowed = hard ∩ limit ∩ online per row, allowed ∩ soft when not empty, else allowed.
/// All three matrices have one shape (else Error(invalid_argument)); `into` may not be one
/// of them.
inline void effective_affinity(const AffinityMatrix& hard, const AffinityMatrix& soft, const AffinityMatrix& limit,
                               const CpuMap& online, AffinityMatrix& into) {
  if (hard.rows() != soft.rows() || hard.cols() != soft.cols() || limit.rows() != hard.rows() ||
      limit.cols() != hard.cols())
    throw Error(ErrorCode::invalid_argument, "effective_affinity: the hard, soft and limit matrices differ in shape");
  if (&into == &hard || &into == &soft || &into == &limit)
    throw Error(ErrorCode::invalid_argument, "effective_affinity: the result cannot be one of the inputs");
  if (into.rows() != hard.rows() || into.cols() != hard.cols()) into.reshape(hard.rows(), hard.cols());
  const std::size_t n = hard.row_words();
  const auto on = online.words();
  const detail::Block* h = hard.words().data();
  const detail::Block* s = soft.words().data();
  const detail::Block* l = limit.words().data();
  detail::Block* e = into.mutable_words().data();
#if VCPUMAP_X86_DISPATCH
  if (const std::size_t k = std::min(n, on.size()); detail::effective_rows_use_avx2(k))
    return detail::effective_rows_avx2<true>(h, s, l, on.data(), e, hard.rows(), n, k);
#endif
  for (std::size_t v = 0; v < hard.rows(); ++v, h += n, s += n, l += n, e += n) {
    detail::Block any = 0;
    for (std::size_t i = 0; i < n; ++i) {
      const detail::Block allowed = h[i] & l[i] & (i < on.size() ? on[i] : 0);
      e[i] = allowed & s[i];
      any |= e[i];
    }
    if (!any)
      for (std::size_t i = 0; i < n; ++i) e[i] = h[i] & l[i] & (i < on.size() ? on[i] : 0);
  }
}

/// Xen's effective affinity of every vcpu (see DomainSnapshot), as a new matrix.
inline AffinityMatrix effective_affinity(const AffinityMatrix& hard, const AffinityMatrix& soft,
                                         const CpuMap& online) {
  AffinityMatrix effective;
  effective_affinity(hard, soft, online, effective);
  return effective;
}

}  // namespace vcpumap

template <>
struct fmt::formatter<vcpumap::VcpuState> : fmt::formatter<std::string_view> {
  template <class FormatContext>
  auto format(vcpumap::VcpuState s, FormatContext& ctx) const -> decltype(ctx.out()) {
    return fmt::formatter<std::string_view>::format(vcpumap::to_string(s), ctx);
  }
};

template <>
struct fmt::formatter<vcpumap::DomainId> : fmt::formatter<std::uint32_t> {
  template <class FormatContext>
  auto format(vcpumap::DomainId id, FormatContext& ctx) const -> decltype(ctx.out()) {
    return fmt::formatter<std::uint32_t>::format(vcpumap::to_integer(id), ctx);
  }
};
