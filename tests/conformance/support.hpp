// tests/conformance/support.hpp — the conformance suite's shared helpers: the test host,
// readable dumps of what backends report, and one harness per backend.
//
// hypervisor_test.cpp runs every case once per harness (TEMPLATE_TEST_CASE over
// CONFORMANCE_BACKENDS, below), through the public Hypervisor concept only. A harness
// (see the Harness concept) is what a backend needs to be put under test:
//   - built from a host description (a HostSnapshot, here read from fixture text);
//   - faults, where the backend can have them: the n-th set-affinity call of the next
//     pin_matrix failing, the host read failing, a domain vanishing while it is read;
//   - the true state read out of band (not through the backend under test).
// Proving a new backend is adding one harness here and one executable in meson.build; the
// cases branch only on what the backend reports it has (HostInfo::caps) and on the
// harness's traits below (what the backend cannot hold or fake), as they do for Linux.
//
// Harnesses: Mock (MockHypervisor), AnyOfMock (AnyHypervisor holding a MockHypervisor),
// when built with VCPUMAP_CONFORMANCE_XEN, XenMulticall / XenOneCallEach (XenHypervisor
// compiled against tests/xen_fake's fake libxenctrl, XenOptions::multicall true / false),
// and when built with VCPUMAP_CONFORMANCE_LINUX, LinuxFake (LinuxHypervisor over a fake
// /proc and /sys tree and a fake scheduler, tests/linux/fake_tree.hpp).
//
// Backends differ in what they have (HostInfo::caps: soft affinity, vcpu limits): the cases
// branch on the capabilities the backend reports (and the host_info case checks that report
// against the harness's), never skip a backend for them.
// Two kinds of cases need what a harness may not fake yet, and are skipped with a warning
// where its traits say so: [pools] (holds_pools: a host with cpupools) and [online]
// (can_set_online_vcpus). Where they run, they still branch on the capabilities reported.
#pragma once

#include <catch2/catch.hpp>

#include <cerrno>
#include <chrono>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include <vcpumap/affinity_matrix.hpp>
#include <vcpumap/any_hypervisor.hpp>
#include <vcpumap/cpu_map.hpp>
#include <vcpumap/error.hpp>
#include <vcpumap/fixture.hpp>
#include <vcpumap/format.hpp>
#include <vcpumap/hypervisor.hpp>
#include <vcpumap/mock.hpp>
#include <vcpumap/model.hpp>
#include <vcpumap/text.hpp>

#if VCPUMAP_CONFORMANCE_XEN
#include <vcpumap/xen.hpp>

#include "fake_xen.hpp"
#endif

#if VCPUMAP_CONFORMANCE_LINUX
#include <unistd.h>

#include <functional>
#include <set>

#include <vcpumap/linux.hpp>

#include "fake_tree.hpp"
#endif

namespace conformance {

using vcpumap::AffinityMatrix;
using vcpumap::AnyHypervisor;
using vcpumap::CpuMap;
using vcpumap::CpuPool;
using vcpumap::DomainId;
using vcpumap::DomainInfo;
using vcpumap::DomainSnapshot;
using vcpumap::Error;
using vcpumap::ErrorCode;
using vcpumap::HostInfo;
using vcpumap::HostSnapshot;
using vcpumap::MockHypervisor;
using vcpumap::SnapshotScope;
using vcpumap::VcpuMetrics;
using vcpumap::VcpuState;

// ---- the test host ----

/// The host every case starts from. Holes and edges on purpose:
/// - 9 CPU ids (maps of two bytes); CPU 4 is not present, CPU 3 is present but offline;
///   2 sockets of 2 cores × 2 threads, 2 NUMA nodes;
/// - every vcpu state (running, blocked, runnable, offline), distinct times and last CPUs;
/// - affinity: "all" (which names the absent CPU 4) by default, rows whose hard ∩ soft ∩
///   online is empty (the effective rule falls back to hard ∩ online), a row whose hard map
///   holds no online CPU at all (web's vcpu 2: 3-4), soft maps given by NUMA node;
/// - a domain with no vcpus (building).
/// The last online CPU is the last id: Xen describes ids up to the last online CPU only.
inline constexpr std::string_view standard_host_text =
    "host cpus=9 present=0-3,5-8 online=0-2,5-8 threads_per_core=2 cores_per_socket=2 sockets=2\n"
    "node 0 0-3\n"
    "node 1 5-8\n"
    "domain 0 Domain-0 vcpus=2 flags=running\n"
    "vcpu 0 state=running cpu=0 time=636.8\n"
    "vcpu 1 state=blocked cpu=1 time=396.8 hard=0-1\n"
    "domain 3 xperf2 vcpus=4 flags=blocked\n"
    "vcpu 0 state=blocked cpu=2 time=20.0 hard=0-2 soft=1\n"
    "vcpu 1 state=runnable cpu=5 time=18.2 hard=5-8 soft=0-1\n"
    "vcpu 2 state=offline time=0.5 hard=2-3 soft=3\n"
    "vcpu 3 state=running cpu=6 time=17.8 soft=node:1\n"
    "domain 7 web vcpus=3 flags=paused\n"
    "vcpu 0 state=blocked cpu=7 time=1.5\n"
    "vcpu 1 state=running cpu=8 time=2.5\n"
    "vcpu 2 state=offline hard=3-4\n"
    "domain 12 building vcpus=0 flags=paused\n";

inline HostSnapshot standard_host() { return vcpumap::read_fixture(standard_host_text); }

/// The standard host as Xen with cpupools has it: Pool-0 holds node 0's CPUs 0-3, "pool1"
/// (credit) node 1's 5-8; xperf2 runs in pool1 (its vcpu 0's hard map 2,5-6 names CPU 2,
/// outside the pool; its vcpu 3 is "all"), the other domains in Pool-0. The cases of
/// [pools] run on it (Harness::holds_pools).
inline constexpr std::string_view pool_host_text =
    "host cpus=9 present=0-3,5-8 online=0-2,5-8 threads_per_core=2 cores_per_socket=2 sockets=2 limit=cpupool\n"
    "node 0 0-3\n"
    "node 1 5-8\n"
    "pool 0 Pool-0 cpus=0-3\n"
    "pool 1 pool1 sched=credit cpus=5-8\n"
    "domain 0 Domain-0 vcpus=2 flags=running\n"
    "vcpu 0 state=running cpu=0 time=636.8\n"
    "vcpu 1 state=blocked cpu=1 time=396.8 hard=0-1\n"
    "domain 3 xperf2 vcpus=4 flags=blocked pool=1\n"
    "vcpu 0 state=blocked cpu=5 time=20.0 hard=2,5-6 soft=6\n"
    "vcpu 1 state=runnable cpu=6 time=18.2 hard=5-8 soft=0-1\n"
    "vcpu 2 state=offline time=0.5 hard=5-6\n"
    "vcpu 3 state=running cpu=8 time=17.8 soft=node:1\n"
    "domain 7 web vcpus=3 flags=paused\n"
    "vcpu 0 state=blocked cpu=1 time=1.5\n"
    "vcpu 1 state=running cpu=2 time=2.5\n"
    "vcpu 2 state=offline hard=1-2\n";

inline HostSnapshot pool_host() { return vcpumap::read_fixture(pool_host_text); }

/// The standard host where online vcpus can be set (Capabilities::set_online, `xl
/// vcpu-set`): the cases of [online] run on it (Harness::can_set_online_vcpus). A backend
/// reports its own capabilities: one that cannot (Linux) refuses, and the cases check that.
inline HostSnapshot online_host() {
  HostSnapshot s = standard_host();
  s.host.caps.set_online = true;
  return s;
}

// ---- dumps: what a backend reported, as text a failed CHECK prints in full ----
// Every field the contract promises, nothing else (not taken_at: the mock stamps its
// virtual clock, Xen the real one).

inline std::string dump(const CpuMap& m) { return fmt::format("{{{}}}/{}", m, m.universe()); }

inline std::string dump(const std::optional<unsigned>& v) { return v ? std::to_string(*v) : std::string("none"); }

inline std::string dump(const AffinityMatrix& m) {
  std::string out = fmt::format("{}x{}", m.rows(), m.cols());
  for (std::size_t v = 0; v < m.rows(); ++v) out += fmt::format(" {}:{{{}}}", v, m.row(v));
  return out;
}

inline std::string dump(const DomainInfo& d) {
  const vcpumap::DomainFlags& f = d.flags;
  return fmt::format("domain {} name \"{}\" flags{}{}{}{}{} online_vcpus {} max_vcpus {} time_ns {}",
                     vcpumap::to_integer(d.id), vcpumap::escape_terminal(d.name), f.running ? " running" : "",
                     f.blocked ? " blocked" : "", f.paused ? " paused" : "", f.shutdown ? " shutdown" : "",
                     f.dying ? " dying" : "", d.online_vcpus, d.max_vcpus, d.cpu_time.count());
}

inline std::string dump(const VcpuMetrics& m) {
  return fmt::format("vcpu {} {} cpu {} time_ns {}", m.vcpu, m.state, dump(m.cpu), m.cpu_time.count());
}

inline std::string dump(const std::vector<VcpuMetrics>& vcpus) {
  std::string out;
  for (const VcpuMetrics& m : vcpus) out += dump(m) + "\n";
  return out;
}

inline std::string dump(const DomainSnapshot& s) {
  return fmt::format("{}\nscope {}\n{}hard {}\nsoft {}\nlimit {}\neffective {}\n", dump(s.domain),
                     s.scope == SnapshotScope::full ? "full" : "metrics_only", dump(s.vcpus), dump(s.hard),
                     dump(s.soft), dump(s.limit), dump(s.effective));
}

inline std::string dump(const HostInfo& h) {
  std::string out = fmt::format("possible {} present {} online {} threads_per_core {} cores_per_socket {} sockets {}\n",
                                dump(h.possible), dump(h.present), dump(h.online), h.threads_per_core,
                                h.cores_per_socket, h.sockets);
  for (std::size_t n = 0; n < h.numa_nodes.size(); ++n) out += fmt::format("node {} {}\n", n, dump(h.numa_nodes[n]));
  for (std::size_t c = 0; c < h.cpu_socket.size(); ++c) out += fmt::format("cpu {} socket {}\n", c, dump(h.cpu_socket[c]));
  for (std::size_t c = 0; c < h.cpu_node.size(); ++c) out += fmt::format("cpu {} node {}\n", c, dump(h.cpu_node[c]));
  return out;
}

/// The domains of a host (the host itself is left to host_info's case: see
/// Harness::knows_socket_of_offline_cpus).
inline std::string dump_domains(const HostSnapshot& s) {
  std::string out;
  for (const DomainSnapshot& d : s.domains) out += dump(d) + "--\n";
  return out;
}

// ---- small helpers ----

/// The domain `id` of a host snapshot; throws when it is not there.
inline const DomainSnapshot& domain_of(const HostSnapshot& s, DomainId id) {
  for (const DomainSnapshot& d : s.domains)
    if (d.domain.id == id) return d;
  throw std::logic_error(fmt::format("conformance: domain {} is not in the snapshot", id));
}
inline DomainSnapshot& domain_of(HostSnapshot& s, DomainId id) {
  return const_cast<DomainSnapshot&>(domain_of(std::as_const(s), id));
}

/// Xen's effective rule, computed row by row from CpuMap operations (not by
/// vcpumap::effective_affinity, which the backends use): hard ∩ soft ∩ online, or hard ∩
/// online when that is empty.
inline AffinityMatrix expected_effective(const AffinityMatrix& hard, const AffinityMatrix& soft, const CpuMap& online) {
  AffinityMatrix e(hard.rows(), hard.cols());
  for (std::size_t v = 0; v < hard.rows(); ++v) {
    CpuMap row = hard.row(v) & soft.row(v) & online;
    if (row.empty()) row = hard.row(v) & online;
    e.set_row(v, row);
  }
  return e;
}

/// The effective rule where vcpus have limits (model.hpp), row by row: with allowed = hard ∩
/// limit ∩ online, allowed ∩ soft, or allowed when that is empty.
inline AffinityMatrix expected_effective(const AffinityMatrix& hard, const AffinityMatrix& soft,
                                         const AffinityMatrix& limit, const CpuMap& online) {
  AffinityMatrix e(hard.rows(), hard.cols());
  for (std::size_t v = 0; v < hard.rows(); ++v) {
    const CpuMap allowed = hard.row(v) & limit.row(v) & online;
    CpuMap row = allowed & soft.row(v);
    if (row.empty()) row = allowed;
    row.resize(hard.cols());
    e.set_row(v, row);
  }
  return e;
}

/// Whether the hypervisor stores a hard map narrowed to the vcpu's limit: Linux's kernel
/// stores a thread's mask ∩ its cpuset; Xen stores a map as asked, its cpupool confining
/// only where the vcpu runs (the effective rows and a pin's write-back).
inline bool stores_hard_within_limit(const HostInfo& host) { return host.caps.vcpu_limit == "cpuset"; }

/// A snapshot's limit matrix, or every CPU where it has none of the matrices' shape.
inline AffinityMatrix limit_of(const DomainSnapshot& d) {
  return d.limit.rows() == d.hard.rows() && d.limit.cols() == d.hard.cols()
             ? d.limit
             : AffinityMatrix::full(d.hard.rows(), d.hard.cols());
}

/// `s` (a true state) with vcpu `v` of `domain` set to the maps given (the others kept),
/// its effective matrix recomputed. A soft map is ignored where the host has no soft
/// affinity (its soft rows hold every CPU whatever a pin tries); where vcpus have limits the
/// hard map is kept ∩ the vcpu's limit (the kernel stores a thread's mask ∩ its cpuset, and
/// sched_getaffinity reads that back, whatever the kernel's version).
inline HostSnapshot with_row(HostSnapshot s, DomainId domain, unsigned v, const std::optional<CpuMap>& hard,
                             const std::optional<CpuMap>& soft) {
  DomainSnapshot& d = domain_of(s, domain);
  if (hard) {
    CpuMap row = *hard;
    if (stores_hard_within_limit(s.host)) row &= limit_of(d).row(v);
    d.hard.set_row(v, row);
  }
  if (soft && s.host.caps.soft_affinity) d.soft.set_row(v, *soft);
  d.effective = expected_effective(d.hard, d.soft, limit_of(d), s.host.online);
  return s;
}

/// `s` after a rollback set the hard rows of `vcpus` of `domain` back to their rows in
/// `before`. Where vcpus have limits the hypervisor keeps a map within the vcpu's limit (the
/// kernel stores a thread's mask ∩ its cpuset), so a row read wider than the limit comes
/// back narrowed to it; elsewhere it comes back as it was.
inline HostSnapshot restored(HostSnapshot s, const HostSnapshot& before, DomainId domain,
                             const std::vector<unsigned>& vcpus) {
  const DomainSnapshot& was = domain_of(before, domain);
  DomainSnapshot& d = domain_of(s, domain);
  for (unsigned v : vcpus) {
    CpuMap row = was.hard.row(v);
    if (stores_hard_within_limit(before.host)) row &= limit_of(was).row(v);
    d.hard.set_row(v, row);
  }
  d.effective = expected_effective(d.hard, d.soft, limit_of(d), s.host.online);
  return s;
}

/// The errno a fake hypervisor fails with to make a backend report `code`.
inline int errno_for(ErrorCode code) {
  switch (code) {
    case ErrorCode::not_found: return ESRCH;
    case ErrorCode::invalid_argument: return EINVAL;
    case ErrorCode::permission_denied: return EPERM;
    case ErrorCode::busy: return EBUSY;
    case ErrorCode::internal: return EIO;
    case ErrorCode::unsupported: return EOPNOTSUPP;
    case ErrorCode::hypervisor_unavailable: break;
  }
  throw std::logic_error("conformance: no errno stands for hypervisor_unavailable");
}

/// The Error f() throws (a PinError included, sliced), or nothing.
template <class F>
std::optional<Error> error_of(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e;
  }
  return std::nullopt;
}
/// The PinError f() throws, or nothing (any other Error propagates).
template <class F>
std::optional<vcpumap::PinError> pin_error_of(F&& f) {
  try {
    f();
  } catch (const vcpumap::PinError& e) {
    return e;
  }
  return std::nullopt;
}

// ---- the harness interface ----

// clang-format off
/// What hypervisor_test.cpp needs of a backend's harness H.
template <class H>
concept Harness = std::constructible_from<H, const HostSnapshot&> &&
    requires(H& h, const H& ch, DomainId domain, std::size_t n, unsigned vcpu, ErrorCode code, SnapshotScope scope) {
  /// How reports name the backend.
  { H::name } -> std::convertible_to<std::string_view>;
  /// The backend under test, built from the host given to the constructor.
  requires vcpumap::Hypervisor<std::remove_cvref_t<decltype(h.hv())>>;
  /// The true state, read out of band (not through hv()), scope full, domains ascending.
  { ch.truth() } -> std::same_as<HostSnapshot>;
  /// Whether fail_pin_call and fail_host_read work; cases that need them are tagged
  /// [faults] and skipped (with a warning) when false.
  { H::can_inject_faults } -> std::convertible_to<bool>;
  /// The n-th (from 0) set-affinity call the next pin_matrix of `domain` makes (its pins,
  /// then its restores) fails with `code`. Arm it right before that pin_matrix.
  { h.fail_pin_call(domain, n, code) } -> std::same_as<void>;
  /// The next host read (the first call of host_info or snapshot_all) fails with `code`.
  { h.fail_host_read(code) } -> std::same_as<void>;
  /// Reading the state of `vcpu` of `domain` fails with `code` (not not_found) in the next
  /// snapshot(domain, ...) / snapshot_all(scope).
  { h.fail_in_snapshot(domain, vcpu, code) } -> std::same_as<void>;
  { h.fail_in_snapshot_all(domain, vcpu, scope, code) } -> std::same_as<void>;
  /// Whether the vanish_* work; cases that need them are tagged [vanish].
  { H::can_vanish } -> std::convertible_to<bool>;
  /// `domain` vanishes while the next snapshot(domain, ...) reads the state of `vcpu`.
  { h.vanish_in_snapshot(domain, vcpu) } -> std::same_as<void>;
  /// `domain` vanishes while the next snapshot_all(scope) reads the state of its `vcpu`.
  { h.vanish_in_snapshot_all(domain, vcpu, scope) } -> std::same_as<void>;
  /// The backend pins a matrix in batches (PinError: "with a backend that pins in batches,
  /// like Xen's multicall, any [vcpu] after it" was changed and is restored): every pin of
  /// the batch is attempted, so the restores start after the last pin, not after the
  /// failed one.
  { H::batches_pins } -> std::convertible_to<bool>;
  /// The backend reports the socket of a present but offline CPU. Xen cannot: its
  /// cputopoinfo gives offline CPUs no core and no socket (see the report in
  /// hypervisor_test.cpp's host_info case). Neither can Linux: an offline CPU has no
  /// topology folder in sysfs.
  { H::knows_socket_of_offline_cpus } -> std::convertible_to<bool>;
  /// fail_host_read works (the host read fails once, then works). Linux reads its host
  /// from sysfs and makes no call that can fail on demand there: its harness breaks the
  /// CPU list instead (break_host_read), and the case checks that path.
  { H::can_fail_host_read } -> std::convertible_to<bool>;
  /// The host read fails until repair_host_read(); returns the code the backend then
  /// reports (Linux: hypervisor_unavailable). For harnesses without can_fail_host_read.
  { h.break_host_read() } -> std::same_as<ErrorCode>;
  { h.repair_host_read() } -> std::same_as<void>;
  /// fail_in_snapshot_all works for scope metrics_only too. Linux reads a metrics-only
  /// snapshot from files it keeps open (stat, schedstat), with no call a fault can be
  /// injected into: there only the full scope (its affinity calls) can fail on demand.
  { H::can_fail_metrics_reads } -> std::convertible_to<bool>;
  /// The id the backend gives the description's domain `domain`: the same, except where the
  /// backend cannot (Linux: a domain is a process, and no process has pid 0).
  { H::id_of(domain) } -> std::same_as<DomainId>;
  /// The backend tells a runnable vcpu (online, waiting for a CPU) from a running one.
  /// Linux cannot: state R means either; a runnable vcpu of the description is running.
  { H::tells_runnable_from_running } -> std::convertible_to<bool>;
  /// The backend can hold a domain with no vcpus (the description's "building"). QEMU has
  /// at least one: there it is a guest of one vcpu not plugged in yet (offline).
  { H::holds_domains_without_vcpus } -> std::convertible_to<bool>;
  /// DomainInfo::online_vcpus counts an offline vcpu that still has a thread. On Linux a
  /// vcpu is a thread: the description's offline vcpus are exiting threads (state Z, the
  /// only offline vcpu that can be pinned, as the cases pin them), which online_vcpus
  /// counts, as it counts every vcpu plugged in.
  { H::online_counts_exiting_vcpus } -> std::convertible_to<bool>;
  /// The harness builds a host with cpupools (HostInfo::pools, DomainInfo::pool: the
  /// description's pool lines) and its truth() reports them, each domain's limit rows its
  /// pool's CPUs. False skips the [pools] cases (with a warning).
  { H::holds_pools } -> std::convertible_to<bool>;
  /// set_online_vcpus can be exercised: the backend reports Capabilities::set_online false
  /// and must refuse (unsupported), or true and makes the change through what the harness
  /// fakes. False skips the [online] cases (with a warning).
  { H::can_set_online_vcpus } -> std::convertible_to<bool>;
  /// After set_online_vcpus the vcpus named are online and the others offline at once
  /// (the mock's guest acts at once). Xen's guest acts on xenstore's cpu/N/availability
  /// later (and may ignore it): where false, the [online] cases check only that the call
  /// succeeds and that affinity is untouched.
  { H::guest_acts_on_online_at_once } -> std::convertible_to<bool>;
};
// clang-format on

// ---- the mock: MockHypervisor's fault injection counts every call, in an order mock.hpp
// documents; these turn the harness's faults into call numbers ----

namespace mock_faults {

inline unsigned vcpus_of(const MockHypervisor& m, DomainId domain) {
  return domain_of(m.state(), domain).domain.max_vcpus;
}
/// Calls of a full read of a domain's vcpus: V getvcpuinfo, V getvcpuaffinity, and where
/// the host reports node affinity 1 getnodeaffinity.
inline std::size_t full_read_calls(const MockHypervisor& m, unsigned vcpus) {
  return 2 * std::size_t{vcpus} + (m.state().host.caps.node_affinity ? 1 : 0);
}
/// pin_matrix: getdomaininfo, a full read (the state it may roll back to), then one
/// setvcpuaffinity per pin, then per restore.
inline void fail_pin_call(MockHypervisor& m, DomainId domain, std::size_t n, ErrorCode code) {
  m.fail_call(1 + full_read_calls(m, vcpus_of(m, domain)) + n + 1, code);
}
/// host_info and snapshot_all start with physinfo.
inline void fail_host_read(MockHypervisor& m, ErrorCode code) { m.fail_call(1, code); }
/// snapshot: getdomaininfo, then getvcpuinfo of vcpu 0, 1, ...: the calls before the read
/// of `vcpu`'s state.
inline std::size_t calls_before_in_snapshot(unsigned vcpu) { return 1 + std::size_t{vcpu}; }
/// snapshot_all: physinfo, cputopoinfo, numainfo (and with cpupools one call per pool +
/// 1), the list (1 call per 1024 domains + 1), then each domain in turn: V getvcpuinfo, and
/// for scope full the rest of a full read.
inline std::size_t calls_before_in_snapshot_all(const MockHypervisor& m, DomainId domain, unsigned vcpu,
                                                SnapshotScope scope) {
  const HostSnapshot s = m.state();
  const std::size_t pools = s.host.pools.empty() ? 0 : s.host.pools.size() + 1;
  std::size_t before = 3 + pools + s.domains.size() / 1024 + 1;
  for (const DomainSnapshot& d : s.domains) {
    if (d.domain.id == domain) return before + vcpu;
    before += scope == SnapshotScope::full ? full_read_calls(m, d.domain.max_vcpus) : d.domain.max_vcpus;
  }
  throw std::logic_error(fmt::format("conformance: no domain {} in the mock", domain));
}
inline void vanish_in_snapshot(MockHypervisor& m, DomainId domain, unsigned vcpu) {
  m.vanish_after(domain, calls_before_in_snapshot(vcpu));
}
inline void vanish_in_snapshot_all(MockHypervisor& m, DomainId domain, unsigned vcpu, SnapshotScope scope) {
  m.vanish_after(domain, calls_before_in_snapshot_all(m, domain, vcpu, scope));
}
inline void fail_in_snapshot(MockHypervisor& m, unsigned vcpu, ErrorCode code) {
  m.fail_call(calls_before_in_snapshot(vcpu) + 1, code);
}
inline void fail_in_snapshot_all(MockHypervisor& m, DomainId domain, unsigned vcpu, SnapshotScope scope,
                                 ErrorCode code) {
  m.fail_call(calls_before_in_snapshot_all(m, domain, vcpu, scope) + 1, code);
}

}  // namespace mock_faults

/// What the mock can do, the same whether used directly or through AnyHypervisor.
struct MockTraits {
  static constexpr bool can_inject_faults = true;
  static constexpr bool can_vanish = true;
  static constexpr bool batches_pins = false;
  static constexpr bool knows_socket_of_offline_cpus = true;
  static constexpr bool can_fail_host_read = true;
  static constexpr bool can_fail_metrics_reads = true;
  static constexpr bool tells_runnable_from_running = true;
  static constexpr bool holds_domains_without_vcpus = true;
  static constexpr bool online_counts_exiting_vcpus = false;
  static constexpr bool holds_pools = true;
  static constexpr bool can_set_online_vcpus = true;
  static constexpr bool guest_acts_on_online_at_once = true;
  static constexpr DomainId id_of(DomainId d) noexcept { return d; }
  static ErrorCode break_host_read() { throw std::logic_error("conformance: fail_host_read works here: use it"); }
  static void repair_host_read() {}
};

/// MockHypervisor itself.
class Mock : public MockTraits {
 public:
  static constexpr std::string_view name = "MockHypervisor";

  explicit Mock(const HostSnapshot& host) : hv_(MockHypervisor::from_snapshot(host)) {}

  MockHypervisor& hv() { return hv_; }
  HostSnapshot truth() const { return hv_.state(); }
  void fail_pin_call(DomainId d, std::size_t n, ErrorCode code) { mock_faults::fail_pin_call(hv_, d, n, code); }
  void fail_host_read(ErrorCode code) { mock_faults::fail_host_read(hv_, code); }
  void fail_in_snapshot(DomainId, unsigned vcpu, ErrorCode code) { mock_faults::fail_in_snapshot(hv_, vcpu, code); }
  void fail_in_snapshot_all(DomainId d, unsigned vcpu, SnapshotScope scope, ErrorCode code) {
    mock_faults::fail_in_snapshot_all(hv_, d, vcpu, scope, code);
  }
  void vanish_in_snapshot(DomainId d, unsigned vcpu) { mock_faults::vanish_in_snapshot(hv_, d, vcpu); }
  void vanish_in_snapshot_all(DomainId d, unsigned vcpu, SnapshotScope scope) {
    mock_faults::vanish_in_snapshot_all(hv_, d, vcpu, scope);
  }

 private:
  MockHypervisor hv_;
};

/// AnyHypervisor holding a MockHypervisor: the type-erased path (faults reach the mock
/// through target<>()).
class AnyOfMock : public MockTraits {
 public:
  static constexpr std::string_view name = "AnyHypervisor(MockHypervisor)";

  explicit AnyOfMock(const HostSnapshot& host) : hv_(MockHypervisor::from_snapshot(host)) {}

  AnyHypervisor& hv() { return hv_; }
  HostSnapshot truth() const { return held().state(); }
  void fail_pin_call(DomainId d, std::size_t n, ErrorCode code) { mock_faults::fail_pin_call(held(), d, n, code); }
  void fail_host_read(ErrorCode code) { mock_faults::fail_host_read(held(), code); }
  void fail_in_snapshot(DomainId, unsigned vcpu, ErrorCode code) { mock_faults::fail_in_snapshot(held(), vcpu, code); }
  void fail_in_snapshot_all(DomainId d, unsigned vcpu, SnapshotScope scope, ErrorCode code) {
    mock_faults::fail_in_snapshot_all(held(), d, vcpu, scope, code);
  }
  void vanish_in_snapshot(DomainId d, unsigned vcpu) { mock_faults::vanish_in_snapshot(held(), d, vcpu); }
  void vanish_in_snapshot_all(DomainId d, unsigned vcpu, SnapshotScope scope) {
    mock_faults::vanish_in_snapshot_all(held(), d, vcpu, scope);
  }

 private:
  MockHypervisor& held() { return *hv_.target<MockHypervisor>(); }
  const MockHypervisor& held() const { return *hv_.target<MockHypervisor>(); }
  AnyHypervisor hv_;
};

static_assert(Harness<Mock>);
static_assert(Harness<AnyOfMock>);

#if VCPUMAP_CONFORMANCE_XEN

/// XenHypervisor (src/xen/xen_hypervisor.cpp) over tests/xen_fake's fake libxenctrl and
/// xenstored. The fake is process-wide: one harness at a time. Faults go through the
/// fake's call hook, which counts each domain's setvcpuaffinity calls (alone or inside a
/// multicall) and fails the armed one, and removes a domain at its vcpu's getvcpuinfo.
template <bool Multicall>
class XenOverFake {
 public:
  static constexpr std::string_view name =
      Multicall ? "XenHypervisor (multicall)" : "XenHypervisor (multicall false: one call each)";
  static constexpr bool can_inject_faults = true;
  static constexpr bool can_vanish = true;
  static constexpr bool batches_pins = Multicall;
  static constexpr bool knows_socket_of_offline_cpus = false;
  static constexpr bool can_fail_host_read = true;
  static constexpr bool can_fail_metrics_reads = true;
  static constexpr bool tells_runnable_from_running = true;
  static constexpr bool holds_domains_without_vcpus = true;
  static constexpr bool online_counts_exiting_vcpus = false;
  // The fake holds the description's cpupools (or Xen's one Pool-0 of every online CPU) and
  // takes xenstore's cpu/N/availability writes; its guests do not act on them.
  static constexpr bool holds_pools = true;
  static constexpr bool can_set_online_vcpus = true;
  static constexpr bool guest_acts_on_online_at_once = false;
  static constexpr DomainId id_of(DomainId d) noexcept { return d; }
  ErrorCode break_host_read() { throw std::logic_error("conformance: fail_host_read works here: use it"); }
  void repair_host_read() {}

  explicit XenOverFake(const HostSnapshot& host) : host_(xen_view(host.host)), armed_(std::make_shared<Armed>()) {
    build(host);
    fake_xen::on_call([armed = armed_](fake_xen::Call call, std::uint32_t domain, std::uint32_t vcpu) {
      armed->on_call(call, domain, vcpu);
    });
    vcpumap::XenOptions options;
    options.multicall = Multicall;
    xen_.emplace(options);
  }
  ~XenOverFake() { fake_xen::on_call(nullptr); }
  XenOverFake(const XenOverFake&) = delete;
  XenOverFake& operator=(const XenOverFake&) = delete;

  vcpumap::XenHypervisor& hv() { return *xen_; }

  /// Read from the fake's own host. The CPUs are the description's (the suite never
  /// changes them); the domains are the fake's, as they are now.
  HostSnapshot truth() const {
    HostSnapshot t;
    t.host = host_;
    for (std::uint32_t id : ids_)
      if (fake_xen::has_domain(id)) t.domains.push_back(read_fake(id));
    for (CpuPool& p : t.host.pools)
      p.domains = static_cast<unsigned>(std::count_if(t.domains.begin(), t.domains.end(), [&](const DomainSnapshot& d) {
        return d.domain.pool == p.id;
      }));
    return t;
  }

  void fail_pin_call(DomainId d, std::size_t n, ErrorCode code) {
    const std::uint32_t id = vcpumap::to_integer(d);
    armed_->pins.push_back({id, armed_->set_calls[id] + n, errno_for(code)});
  }
  void fail_host_read(ErrorCode code) { fake_xen::inject({fake_xen::Call::physinfo, {}, {}, errno_for(code)}); }
  void fail_in_snapshot(DomainId d, unsigned vcpu, ErrorCode code) {
    fake_xen::inject({fake_xen::Call::getvcpuinfo, vcpumap::to_integer(d), vcpu, errno_for(code)});
  }
  void fail_in_snapshot_all(DomainId d, unsigned vcpu, SnapshotScope, ErrorCode code) { fail_in_snapshot(d, vcpu, code); }
  void vanish_in_snapshot(DomainId d, unsigned vcpu) { armed_->vanishes.push_back({vcpumap::to_integer(d), vcpu}); }
  void vanish_in_snapshot_all(DomainId d, unsigned vcpu, SnapshotScope) { vanish_in_snapshot(d, vcpu); }

 private:
  struct Armed {
    struct PinFailure {
      std::uint32_t domain;
      std::size_t at;  // the domain's set-affinity call number (from 0, since the harness began)
      int error;
    };
    struct Vanish {
      std::uint32_t domain;
      std::uint32_t vcpu;
    };
    std::vector<PinFailure> pins;
    std::vector<Vanish> vanishes;
    std::map<std::uint32_t, std::size_t> set_calls;  // setvcpuaffinity calls so far, per domain

    void on_call(fake_xen::Call call, std::uint32_t domain, std::uint32_t vcpu) {
      if (call == fake_xen::Call::setvcpuaffinity) {
        const std::size_t seen = set_calls[domain]++;
        for (auto it = pins.begin(); it != pins.end(); ++it)
          if (it->domain == domain && it->at == seen) {
            // The hook runs before the fake's faults: this one fails this very call.
            fake_xen::inject({fake_xen::Call::setvcpuaffinity, domain, vcpu, it->error});
            pins.erase(it);
            break;
          }
      }
      if (call == fake_xen::Call::getvcpuinfo)
        for (auto it = vanishes.begin(); it != vanishes.end(); ++it)
          if (it->domain == domain && it->vcpu == vcpu) {
            fake_xen::remove_domain(domain);
            vanishes.erase(it);
            break;
          }
    }
  };

  /// The description as Xen reports it: its capabilities, its pools (or Xen's one Pool-0
  /// of every online CPU), core ids of online CPUs only, the fake's node memory.
  static HostInfo xen_view(HostInfo h) {
    h.caps.soft_affinity = true;
    h.caps.vcpu_limit = "cpupool";
    h.caps.set_online = true;
    h.caps.node_affinity = true;
    if (h.pools.empty()) h.pools = {CpuPool{0, "Pool-0", "credit2", h.online, 0}};
    for (std::size_t cpu = 0; cpu < h.cpu_core.size(); ++cpu)
      if (!h.online.test(cpu)) h.cpu_core[cpu].reset();
    h.node_memory.assign(h.numa_nodes.size(), vcpumap::NodeMemory{1ull << 30, 1ull << 29});
    return h;
  }
  static std::uint32_t sched_id(const std::string& name) {
    if (name == "credit") return 5;
    if (name == "credit2") return 6;
    if (name == "arinc653") return 7;
    if (name == "rtds") return 8;
    if (name == "null") return 9;
    cannot("scheduler " + name);
  }

  static std::vector<bool> bits(const CpuMap& m) {
    std::vector<bool> out(m.universe());
    for (std::size_t cpu : m) out[cpu] = true;
    return out;
  }
  [[noreturn]] static void cannot(const std::string& why) {
    throw std::invalid_argument("conformance: the fake Xen cannot hold this host: " + why);
  }

  /// The fake's host and domains from the description; refuses what Xen cannot report.
  void build(const HostSnapshot& host) {
    const HostInfo& h = host.host;
    const std::size_t n = h.cpu_universe();
    if (n == 0) cannot("no CPUs");
    fake_xen::reset(n);
    fake_xen::Host& fh = fake_xen::host();
    fh.threads_per_core = h.threads_per_core;
    fh.cores_per_socket = h.cores_per_socket;
    const auto last_online = h.online.last();
    if (!last_online) cannot("no online CPU");
    std::size_t rank = 0;
    for (std::size_t cpu = 0; cpu < n; ++cpu) {
      fake_xen::Cpu& c = fh.cpus[cpu];
      c.present = h.present.test(cpu);
      c.online = h.online.test(cpu);
      if (cpu > *last_online && !c.present)
        cannot(fmt::format("CPU {} is absent after the last online CPU: Xen reports those ids present", cpu));
      if (!c.present) continue;
      if (!h.cpu_node[cpu]) cannot(fmt::format("present CPU {} is on no NUMA node", cpu));
      c.node = *h.cpu_node[cpu];
      c.socket = h.cpu_socket[cpu].value_or(0);
      c.core = static_cast<std::uint32_t>(rank++ / h.threads_per_core % h.cores_per_socket);
    }
    for (std::size_t node = 0; node < h.numa_nodes.size(); ++node)
      if (!h.numa_nodes[node].is_subset_of(h.present) || h.numa_nodes[node].empty())
        cannot(fmt::format("NUMA node {} is empty or holds CPUs that are not present", node));

    fh.pools.clear();
    for (const CpuPool& p : host_.pools) fh.pools.push_back({p.id, p.name, sched_id(p.scheduler), bits(p.cpus)});

    for (const DomainSnapshot& ds : host.domains) {
      const DomainInfo& info = ds.domain;
      const std::uint32_t id = vcpumap::to_integer(info.id);
      if (info.name.empty()) cannot(fmt::format("domain {} has no name", id));
      fake_xen::Domain& d = fake_xen::add_domain(id, info.max_vcpus, info.name);
      d.cpupool = info.pool.value_or(0);
      if (ds.node_affinity) {
        d.node_affinity.assign(h.numa_nodes.size(), false);
        for (unsigned node : *ds.node_affinity) d.node_affinity.at(node) = true;
      }
      d.running = info.flags.running;
      d.blocked = info.flags.blocked;
      d.paused = info.flags.paused;
      d.shutdown = info.flags.shutdown;
      d.dying = info.flags.dying;
      d.shutdown_code = 0;
      d.cpu_time = static_cast<std::uint64_t>(info.cpu_time.count());
      const bool maps = ds.hard.rows() == info.max_vcpus && ds.soft.rows() == info.max_vcpus;
      for (unsigned v = 0; v < info.max_vcpus; ++v) {
        const VcpuMetrics& m = ds.vcpus.at(v);
        fake_xen::Vcpu& x = d.vcpus[v];
        x.online = m.state != VcpuState::offline;
        x.running = m.state == VcpuState::running;
        x.blocked = m.state == VcpuState::blocked;
        if (m.state == VcpuState::unknown) cannot(fmt::format("domain {} vcpu {}: Xen has no 'unknown' state", id, v));
        if (x.online && !m.cpu) cannot(fmt::format("domain {} vcpu {}: Xen always reports an online vcpu's CPU", id, v));
        x.cpu = m.cpu.value_or(0);
        x.cpu_time = static_cast<std::uint64_t>(m.cpu_time.count());
        if (maps) {
          x.hard = bits(ds.hard.row(v));
          x.soft = bits(ds.soft.row(v));
        }
      }
      ids_.push_back(id);
    }
  }

  /// One domain as the fake holds it, scope full.
  DomainSnapshot read_fake(std::uint32_t id) const {
    const fake_xen::Domain& d = fake_xen::domain(id);
    const std::size_t universe = host_.cpu_universe();
    DomainSnapshot s;
    s.domain.id = DomainId{id};
    s.domain.name = !d.name.empty() ? d.name : id == 0 ? std::string("Domain-0") : std::to_string(id);
    s.domain.flags = {d.running, d.blocked, d.paused, d.shutdown, d.dying};
    s.domain.max_vcpus = static_cast<unsigned>(d.vcpus.size());
    s.domain.cpu_time = std::chrono::nanoseconds(static_cast<std::int64_t>(d.cpu_time));
    s.domain.pool = d.cpupool;
    s.hard = AffinityMatrix(d.vcpus.size(), universe);
    s.soft = AffinityMatrix(d.vcpus.size(), universe);
    for (unsigned v = 0; v < d.vcpus.size(); ++v) {
      const fake_xen::Vcpu& x = d.vcpus[v];
      s.domain.online_vcpus += x.online ? 1 : 0;
      VcpuMetrics m;
      m.vcpu = v;
      m.state = vcpumap::vcpu_state_from_flags(x.online, x.running, x.blocked);
      m.cpu_time = std::chrono::nanoseconds(static_cast<std::int64_t>(x.cpu_time));
      if (x.online && x.cpu < universe) m.cpu = x.cpu;
      s.vcpus.push_back(m);
      for (std::size_t cpu = 0; cpu < universe; ++cpu) {
        if (cpu < x.hard.size() && x.hard[cpu]) s.hard.set(v, cpu);
        if (cpu < x.soft.size() && x.soft[cpu]) s.soft.set(v, cpu);
      }
    }
    // Every vcpu's limit is its domain's pool's CPUs (every CPU for a pool the host lacks).
    s.limit = AffinityMatrix::full(d.vcpus.size(), universe);
    if (const CpuPool* pool = host_.pool(d.cpupool))
      for (unsigned v = 0; v < d.vcpus.size(); ++v) s.limit.set_row(v, pool->cpus);
    vcpumap::effective_affinity(s.hard, s.soft, s.limit, host_.online, s.effective);
    if (!d.vcpus.empty()) {
      vcpumap::NodeSet nodes(host_.numa_nodes.size());
      for (std::size_t n = 0; n < host_.numa_nodes.size(); ++n)
        if (d.node_affinity.empty() || (n < d.node_affinity.size() && d.node_affinity[n]))
          nodes.set(static_cast<unsigned>(n));
      s.node_affinity = nodes;
    }
    s.scope = SnapshotScope::full;
    return s;
  }

  HostInfo host_;
  std::vector<std::uint32_t> ids_;  // the described domains, ascending
  std::shared_ptr<Armed> armed_;
  std::optional<vcpumap::XenHypervisor> xen_;
};

using XenMulticall = XenOverFake<true>;
using XenOneCallEach = XenOverFake<false>;
static_assert(Harness<XenMulticall>);
static_assert(Harness<XenOneCallEach>);

#endif

#if VCPUMAP_CONFORMANCE_LINUX

/// LinuxHypervisor (src/linux/linux_hypervisor.cpp) over a fake /proc and /sys tree and a
/// fake scheduler (tests/linux/fake_tree.hpp), built to hold the description as far as
/// Linux can:
/// - the host's CPU lists, topology folders for the online CPUs (Linux has none for an
///   offline CPU), NUMA nodes; cgroup v2 with the cpuset controller, every guest thread in a
///   cgroup under /machine.slice whose cpuset.cpus.effective is the online CPUs, as a
///   kernel keeps it (so caps.vcpu_limit is "cpuset", and a pin naming an offline CPU is
///   refused); PID 1 (systemd) beside the guests;
/// - each domain a QEMU process (pid = id, domain 0 as pid 2: id_of) started with
///   `-name guest=NAME,debug-threads=on -smp V`, its main thread in the state of its flags
///   (running R, blocked S, paused T, none P; a dying one, a zombie, is no guest on Linux)
///   and its CPU time in clock ticks;
/// - each vcpu a thread "CPU v/KVM": running and runnable R, blocked S, offline Z (an
///   exiting thread: Linux's only offline vcpu that can still be pinned), its CPU time and
///   wait in schedstat, its last CPU in stat, its hard row as the scheduler's mask (as the
///   description has it: the fake does not narrow the initial masks to the cpuset, only
///   what is set later, as the kernel does on sched_setaffinity). Soft rows are not held:
///   Linux has none (the truth's soft rows hold every CPU). A domain of no vcpus is a guest
///   of one vcpu not plugged in (no thread: the emulator's maps).
/// Faults: a set-affinity call fails through the scheduler's hook; a read fails at the
/// vcpu's sched_getaffinity (scope full only: can_fail_metrics_reads); a domain vanishes
/// (files emptied and removed, threads gone from the scheduler) at the vcpu's
/// sched_getaffinity for scope full, and for metrics_only — which makes no scheduler call
/// between the listing and the reading — at the host read's (PID 1's) one, before the
/// listing: the outcome is checked, the midway path for metrics_only is linux_test.cpp's.
/// The host read cannot fail once on demand: break_host_read removes the CPU list.
class LinuxFake {
 public:
  static constexpr std::string_view name = "LinuxHypervisor (fake /proc, /sys and scheduler; cgroup v2 cpusets)";
  static constexpr bool can_inject_faults = true;
  static constexpr bool can_fail_host_read = false;
  static constexpr bool can_fail_metrics_reads = false;
  static constexpr bool can_vanish = true;
  static constexpr bool batches_pins = false;
  static constexpr bool knows_socket_of_offline_cpus = false;
  static constexpr bool tells_runnable_from_running = false;
  static constexpr bool holds_domains_without_vcpus = false;
  static constexpr bool online_counts_exiting_vcpus = true;
  static constexpr bool holds_pools = false;                   // Linux has no cpupools
  static constexpr bool can_set_online_vcpus = true;           // the backend refuses (caps.set_online false)
  static constexpr bool guest_acts_on_online_at_once = false;
  static constexpr DomainId id_of(DomainId d) noexcept { return vcpumap::to_integer(d) == 0 ? DomainId{2} : d; }

  explicit LinuxFake(const HostSnapshot& host) : tree_(host.host.cpu_universe()) {
    build(host);
    tree_.sched().hook = [this](linux_fake::FakeScheduler::Kind kind, int tid) { return on_call(kind, tid); };
    hv_.emplace(tree_.options());
  }
  ~LinuxFake() { tree_.sched().hook = nullptr; }
  LinuxFake(const LinuxFake&) = delete;
  LinuxFake& operator=(const LinuxFake&) = delete;

  vcpumap::LinuxHypervisor& hv() { return *hv_; }

  /// Read from the harness's own record of the guests and the fake scheduler's masks.
  HostSnapshot truth() const {
    HostSnapshot t;
    t.host = host_;
    const std::size_t n = host_.cpu_universe();
    const linux_fake::FakeScheduler& sched = tree_.sched();
    for (const Guest& g : guests_) {
      if (gone_.count(g.pid)) continue;
      DomainSnapshot& s = t.domains.emplace_back();
      s.domain = g.info;
      s.vcpus = g.vcpus;
      const std::size_t V = g.info.max_vcpus;
      s.hard = AffinityMatrix(V, n);
      s.soft = AffinityMatrix::full(V, n);
      s.limit = AffinityMatrix(V, n);
      for (std::size_t v = 0; v < V; ++v) {
        const int tid = g.tids[v] != 0 ? g.tids[v] : g.pid;  // not plugged in: the emulator's maps
        CpuMap hard = sched.affinity.at(tid);
        hard.resize(n);
        s.hard.set_row(v, hard);
        s.limit.set_row(v, sched.cpuset.at(tid));
      }
      s.effective = expected_effective(s.hard, s.soft, s.limit, host_.online);
      s.scope = SnapshotScope::full;
    }
    return t;
  }

  void fail_pin_call(DomainId d, std::size_t n, ErrorCode code) {
    const int pid = static_cast<int>(vcpumap::to_integer(d));
    pin_failures_.push_back({pid, set_calls_[pid] + n, errno_for(code)});
  }
  void fail_host_read(ErrorCode) { throw std::logic_error("conformance: LinuxFake cannot fail the host read once"); }
  ErrorCode break_host_read() {
    tree_.remove("sys/devices/system/cpu/possible");
    return ErrorCode::hypervisor_unavailable;
  }
  void repair_host_read() {
    tree_.write("sys/devices/system/cpu/possible", fmt::format("0-{}\n", host_.cpu_universe() - 1));
  }
  void fail_in_snapshot(DomainId d, unsigned vcpu, ErrorCode code) {
    const int tid = tid_of(d, vcpu);
    armed_.push_back({tid, [code](LinuxFake&) { return errno_for(code); }});
  }
  void fail_in_snapshot_all(DomainId d, unsigned vcpu, SnapshotScope scope, ErrorCode code) {
    if (scope != SnapshotScope::full)
      throw std::logic_error("conformance: LinuxFake cannot fail a metrics-only read (can_fail_metrics_reads)");
    fail_in_snapshot(d, vcpu, code);
  }
  void vanish_in_snapshot(DomainId d, unsigned vcpu) { vanish_at(tid_of(d, vcpu), d); }
  void vanish_in_snapshot_all(DomainId d, unsigned vcpu, SnapshotScope scope) {
    vanish_at(scope == SnapshotScope::full ? tid_of(d, vcpu) : 1, d);
  }

 private:
  struct Guest {
    int pid = 0;
    DomainInfo info;
    std::vector<VcpuMetrics> vcpus;  // as Linux reports them
    std::vector<int> tids;           // by vcpu; 0: not plugged in
  };
  struct PinFailure {
    int pid;
    std::size_t at;  // the guest's set-affinity call number (from 0, since the harness began)
    int error;
  };
  struct Armed {
    int tid;  // at this tid's next sched_getaffinity
    std::function<int(LinuxFake&)> action;  // returns the errno of that call (0: none)
  };

  [[noreturn]] static void cannot(const std::string& why) {
    throw std::invalid_argument("conformance: the fake Linux tree cannot hold this host: " + why);
  }
  static std::string list(const CpuMap& m) { return m.to_string(); }

  int tid_of(DomainId d, unsigned vcpu) const {
    const int pid = static_cast<int>(vcpumap::to_integer(d));
    for (const Guest& g : guests_)
      if (g.pid == pid) return vcpu < g.tids.size() && g.tids[vcpu] != 0 ? g.tids[vcpu] : pid;
    throw std::logic_error(fmt::format("conformance: no guest {}", pid));
  }
  int pid_of(int tid) const {
    for (const Guest& g : guests_) {
      if (g.pid == tid) return g.pid;
      for (int t : g.tids)
        if (t == tid) return g.pid;
    }
    return 0;
  }
  void vanish_at(int tid, DomainId d) {
    const int pid = static_cast<int>(vcpumap::to_integer(d));
    armed_.push_back({tid, [pid](LinuxFake& self) {
                        self.tree_.vanish_process(pid);
                        self.gone_.insert(pid);
                        return 0;  // the scheduler answers ESRCH itself: the thread is gone
                      }});
  }

  int on_call(linux_fake::FakeScheduler::Kind kind, int tid) {
    if (kind == linux_fake::FakeScheduler::Kind::set) {
      const int pid = pid_of(tid);
      const std::size_t seen = set_calls_[pid]++;
      for (auto it = pin_failures_.begin(); it != pin_failures_.end(); ++it)
        if (it->pid == pid && it->at == seen) {
          const int err = it->error;
          pin_failures_.erase(it);
          return err;
        }
      return 0;
    }
    for (auto it = armed_.begin(); it != armed_.end(); ++it)
      if (it->tid == tid) {
        const auto action = std::move(it->action);
        armed_.erase(it);
        return action(*this);
      }
    return 0;
  }

  /// The tree, the scheduler's masks and the record of the guests from the description;
  /// refuses what Linux cannot hold.
  void build(const HostSnapshot& host) {
    const HostInfo& h = host.host;
    const std::size_t n = h.cpu_universe();
    if (n == 0 || h.online.empty()) cannot("no online CPU");
    if (!h.caps.vcpu_limit.empty()) cannot("vcpu limits of its own (the harness sets the cpusets)");
    linux_fake::FakeTree& t = tree_;

    // CPUs: ids ranked over the present CPUs fill cores and sockets, as the description's
    // derived topology does; sysfs lists online siblings only.
    std::vector<std::pair<unsigned, unsigned>> core_of(n);  // (socket, core) of each present CPU
    std::size_t rank = 0;
    for (std::size_t c : h.present) {
      if (!h.cpu_socket[c]) cannot(fmt::format("present CPU {} has no socket", c));
      core_of[c] = {*h.cpu_socket[c], static_cast<unsigned>(rank++ / h.threads_per_core % h.cores_per_socket)};
    }
    std::vector<linux_fake::FakeTree::Topology> topology;
    for (std::size_t c : h.online) {
      CpuMap siblings(n);
      for (std::size_t o : h.online)
        if (core_of[o] == core_of[c]) siblings.set(o);
      topology.push_back({static_cast<unsigned>(c), core_of[c].first, core_of[c].second, list(siblings)});
    }
    t.add_cpu_host(fmt::format("0-{}", n - 1), list(h.present), list(h.online), topology);
    for (std::size_t node = 0; node < h.numa_nodes.size(); ++node)
      t.add_node(static_cast<unsigned>(node), list(h.numa_nodes[node]));
    t.add_init(std::nullopt, "0::/init.scope\n");
    t.mount_cgroup2();
    t.cpuset_v2("/", list(h.online));
    t.cpuset_v2("/machine.slice", list(h.online));

    host_ = h;
    host_.caps = vcpumap::Capabilities{false, "cpuset"};
    for (std::size_t c = 0; c < n; ++c)
      if (!h.online.test(c)) host_.cpu_socket[c].reset();  // no topology folder for it

    const std::uint64_t tick_ns = 1'000'000'000ULL / static_cast<std::uint64_t>(::sysconf(_SC_CLK_TCK));
    for (const DomainSnapshot& ds : host.domains) {
      const DomainInfo& info = ds.domain;
      const int pid = static_cast<int>(vcpumap::to_integer(id_of(info.id)));
      if (vcpumap::to_integer(info.id) > 0x3fffffff) cannot(fmt::format("domain {}: beyond Linux's pids", info.id));
      for (const Guest& g : guests_)
        if (g.pid == pid) cannot(fmt::format("domain {} and domain 0 would share pid {}", info.id, pid));
      if (!info.vcpu_problem.empty()) cannot(fmt::format("domain {} has a vcpu problem", info.id));
      if (info.name.find('\0') != std::string::npos) cannot(fmt::format("domain {}: a NUL in its name", info.id));
      if (info.flags.shutdown) cannot(fmt::format("domain {}: Linux has no shut-down flag", info.id));
      // A zombie QEMU (state Z) is no guest any more: the backend leaves it out.
      if (info.flags.dying) cannot(fmt::format("domain {}: a dying QEMU is not listed", info.id));
      const vcpumap::DomainFlags& f = info.flags;
      if (int{f.running} + int{f.blocked} + int{f.paused} > 1)
        cannot(fmt::format("domain {}: more than one of running, blocked, paused", info.id));
      const char state = f.running ? 'R' : f.blocked ? 'S' : f.paused ? 'T' : 'P';
      const auto ns = static_cast<std::uint64_t>(info.cpu_time.count());
      if (ns % tick_ns != 0)
        cannot(fmt::format("domain {}: a CPU time that is no whole number of clock ticks", info.id));

      Guest g;
      g.pid = pid;
      const unsigned V = std::max(1u, info.max_vcpus);
      std::string escaped;  // QEMU's ",," for a comma
      for (char c : info.name) escaped += c == ',' ? std::string(",,") : std::string(1, c);
      std::vector<std::string> argv = {"/usr/bin/qemu-system-x86_64", "-name", "guest=" + escaped + ",debug-threads=on",
                                       "-smp", std::to_string(V)};
      if (!info.uuid.empty()) argv.insert(argv.end(), {"-uuid", info.uuid});
      const std::string scope = fmt::format("/machine.slice/machine-qemu\\x2d{}.scope/libvirt/", pid);
      t.add_qemu(pid, argv, 1000 + static_cast<std::uint64_t>(pid),
                 linux_fake::Proc().state(state).ticks(ns / tick_ns, 0).cgroup("0::" + scope + "emulator\n"));
      t.sched().cpuset[pid] = h.online;
      g.info.id = DomainId{static_cast<std::uint32_t>(pid)};
      g.info.name = info.name;
      g.info.uuid = info.uuid;
      g.info.flags = {state == 'R', state == 'S', state == 'T', false, false};
      g.info.max_vcpus = V;
      g.info.cpu_time = info.cpu_time;
      g.tids.assign(V, 0);
      g.vcpus.resize(V);
      for (unsigned v = 0; v < V; ++v) {
        VcpuMetrics& m = g.vcpus[v];
        m = VcpuMetrics{v, VcpuState::offline, std::chrono::nanoseconds(0), std::nullopt, std::nullopt};
        if (v >= info.max_vcpus) continue;  // the vcpu of a guest the description has none for: not plugged in
        const VcpuMetrics& want = ds.vcpus.at(v);
        if (want.state == VcpuState::unknown) cannot(fmt::format("domain {} vcpu {}: state unknown", info.id, v));
        const char vs = want.state == VcpuState::offline ? 'Z' : want.state == VcpuState::blocked ? 'S' : 'R';
        const int tid = pid * 1000 + 1 + static_cast<int>(v);
        const std::uint64_t wait = want.wait_time ? static_cast<std::uint64_t>(want.wait_time->count()) : 0;
        t.add_thread(pid, linux_fake::Thread(tid)
                              .comm(fmt::format("CPU {}/KVM", v))
                              .state(vs)
                              .processor(want.cpu.value_or(0))
                              .schedstat(static_cast<std::uint64_t>(want.cpu_time.count()), wait)
                              .cgroup(fmt::format("0::{}vcpu{}\n", scope, v)));
        CpuMap hard = ds.hard.rows() == info.max_vcpus ? ds.hard.row(v) : CpuMap::full(n);
        hard.resize(n);
        t.sched().affinity[tid] = hard;
        t.sched().cpuset[tid] = h.online;
        g.tids[v] = tid;
        ++g.info.online_vcpus;  // a thread: plugged in, exiting or not
        m.state = vs == 'R' ? VcpuState::running : vs == 'S' ? VcpuState::blocked : VcpuState::offline;
        m.cpu = vs == 'Z' ? std::nullopt : want.cpu;
        m.cpu_time = want.cpu_time;
        m.wait_time = std::chrono::nanoseconds(static_cast<std::int64_t>(wait));
      }
      guests_.push_back(std::move(g));
    }
  }

  linux_fake::FakeTree tree_;
  HostInfo host_;
  std::vector<Guest> guests_;  // ascending by pid, as the description's ids (domain 0 first, as pid 2)
  std::set<int> gone_;
  std::map<int, std::size_t> set_calls_;  // set-affinity calls so far, per guest
  std::vector<PinFailure> pin_failures_;
  std::vector<Armed> armed_;
  std::optional<vcpumap::LinuxHypervisor> hv_;
};

static_assert(Harness<LinuxFake>);

#endif

}  // namespace conformance

// The harnesses each executable runs every case with (TEMPLATE_TEST_CASE's type list; a
// case's name ends with the harness's, e.g. "... - XenMulticall"). Names unqualified:
// hypervisor_test.cpp uses namespace conformance.
#if VCPUMAP_CONFORMANCE_XEN
#define CONFORMANCE_BACKENDS XenMulticall, XenOneCallEach
#elif VCPUMAP_CONFORMANCE_LINUX
#define CONFORMANCE_BACKENDS LinuxFake
#else
#define CONFORMANCE_BACKENDS Mock, AnyOfMock
#endif

// Failed CHECKs print maps and matrices, not {?}.
namespace Catch {
template <>
struct StringMaker<vcpumap::CpuMap> {
  static std::string convert(const vcpumap::CpuMap& m) { return conformance::dump(m); }
};
template <>
struct StringMaker<vcpumap::AffinityMatrix> {
  static std::string convert(const vcpumap::AffinityMatrix& m) { return conformance::dump(m); }
};
}  // namespace Catch
