// vcpumap/mock.hpp — MockHypervisor: an in-memory host that behaves like Xen.
//
//   vcpumap::MockHypervisor hv = vcpumap::MockHypervisor::demo();   // the 2006 thread's host
//   auto snap = hv.snapshot(vcpumap::DomainId{3});                  // xperf2, 4 vcpus
//   hv.pin_vcpu(vcpumap::DomainId{3}, 0, {.hard = hv.host_info().parse("2-3")});
//
// Like libvirt's test driver, this is a first-class backend: for tests, for trying tools
// without a hypervisor, and as the reference the Xen backend is checked against.
//
// - Deterministic: any number of CPUs (present ≠ online allowed), NUMA nodes, domains with
//   any number of vcpus; CPU times advance only on a virtual clock (advance()), or with
//   real time when follow_real_time(true) is set. Snapshots are stamped with the virtual
//   clock, which starts at 2006-06-26 16:20:43 UTC.
// - Built from code (add_domain, set_affinity, ...) or from a text fixture (from_fixture;
//   format below). demo() is the host of the libvir-list thread.
// - Counts backend calls as Xen's calls are made one by one (libxl's way, and
//   XenHypervisor's with XenOptions::multicall false; see last_call_count): host_info 3
//   (physinfo, cputopoinfo, numainfo) + on a host with cpupools P + 1 (xc_cpupool_getinfo
//   iterated: one call per pool, then the one that finds no more); list_domains 1 per 1024
//   domains + 1; snapshot 1 + V (metrics) + V (affinity, scope full) + 1 (node affinity,
//   scope full on a host with Capabilities::node_affinity); pin_vcpu 2 (domain info +
//   setaffinity) with both maps, 3 with one (Xen writes back only the maps it sets: the
//   other is read); set_online_vcpus 2 (domain info + the xenstore write).
//   Each call is one place a fault can be injected. XenHypervisor by default batches the
//   vcpu reads in multicalls, so its own count for a snapshot is lower (see xen.hpp).
// - Fault injection: fail_call(k, code) fails the k-th backend call from now;
//   vanish_after(domain, k) removes a domain after k more calls; set_cpu_online().
// - Xen's rules: an empty hard map is rejected (EINVAL → invalid_argument), a vcpu beyond
//   max_vcpus is an error, the stored hard/soft maps are the requested ones, and a pin
//   reports hard ∩ online and soft ∩ that (which can be empty) as effective.
// - Cpupools (HostInfo::pools) as Xen has them: every domain of a host with pools is in one
//   (add_domain puts a domain that names none in pool 0, as Xen creates domains in Pool-0);
//   a hard map with no online CPU of the domain's pool is refused (Xen's EINVAL), and a pin
//   reports hard ∩ pool ∩ online, soft ∩ that; snapshots' limit rows are the pool's CPUs;
//   CpuPool::domains counts the domains in each pool. set_domain_pool moves a domain
//   (resetting its affinity to every CPU, as Xen's cpupool-migrate does), set_pool_cpus
//   changes a pool's CPUs (pools stay disjoint).
// - Node affinity (Capabilities::node_affinity): each domain's NUMA node affinity (every
//   node unless set_node_affinity says otherwise) is in its full snapshots.
// - Online vcpus (Capabilities::set_online): set_online_vcpus is a xenstore write the
//   mock's guest acts on at once.
//
// The fixture format, its limits and its errors: fixture.hpp.
#pragma once

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cstddef>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <fmt/format.h>

#include "affinity_matrix.hpp"
#include "cpu_map.hpp"
#include "error.hpp"
#include "fixture.hpp"
#include "backend.hpp"
#include "hypervisor.hpp"
#include "model.hpp"

namespace vcpumap {

class MockHypervisor : public HypervisorFront<MockHypervisor> {
 public:
  using clock = std::chrono::system_clock;

  /// A host of `cpus` CPUs, all present and online, one socket, one NUMA node, no domains.
  explicit MockHypervisor(std::size_t cpus = 4) {
    host_.possible = host_.present = host_.online = CpuMap::full(cpus);
    host_.cores_per_socket = static_cast<unsigned>(cpus);
    host_.numa_nodes = {CpuMap::full(cpus)};
    refresh_topology();
  }
  MockHypervisor(MockHypervisor&&) noexcept = default;
  MockHypervisor& operator=(MockHypervisor&&) noexcept = default;
  /// A host described by `host`: its maps share one universe of at most limits::max_cpus,
  /// online CPUs are present, node maps lie within the universe, topology counts are 1 or
  /// more, cpupools and node memory as check_host wants them (else Error, invalid_argument).
  /// Its cpu_socket, cpu_core and cpu_node are derived from the counts and the node maps, its
  /// pools' CpuPool::domains from the domains added.
  explicit MockHypervisor(HostInfo host) : host_(std::move(host)) {
    detail::check_host(host_, "mock host");
    if (host_.numa_nodes.empty()) {
      host_.numa_nodes = {host_.present};
      if (!host_.node_memory.empty()) host_.node_memory.resize(1);
    }
    for (CpuPool& p : host_.pools) p.domains = 0;  // no domain yet
    refresh_topology();
  }

  /// The host of the 2006 libvir-list thread: 4 CPUs; Domain-0 (4 vcpus), xperf1 (1),
  /// xperf2 (4), with the CPUs, states and times of its `xm vcpu-list` table.
  static MockHypervisor demo() { return from_fixture(demo_fixture); }
  static constexpr std::string_view demo_fixture =
      "# The host of the libvir-list thread of 2006-06-26 ('xm vcpu-list')\n"
      "host cpus=4\n"
      "domain 0 Domain-0 vcpus=4 flags=running\n"
      "vcpu 0 state=blocked cpu=0 time=636.8\n"
      "vcpu 1 state=blocked cpu=1 time=396.8\n"
      "vcpu 2 state=running cpu=2 time=319.5\n"
      "vcpu 3 state=blocked cpu=3 time=369.4\n"
      "domain 1 xperf1 vcpus=1 flags=blocked\n"
      "vcpu 0 state=blocked cpu=3 time=545.6\n"
      "domain 3 xperf2 vcpus=4 flags=blocked\n"
      "vcpu 0 state=blocked cpu=2 time=20.0\n"
      "vcpu 1 state=blocked cpu=3 time=18.2\n"
      "vcpu 2 state=blocked cpu=0 time=18.6\n"
      "vcpu 3 state=blocked cpu=1 time=17.8\n";

  /// A host read from fixture text or a fixture file (fixture.hpp: the format, its limits
  /// and its errors).
  static MockHypervisor from_fixture(std::string_view text) { return from_snapshot(read_fixture(text)); }
  static MockHypervisor from_fixture_file(const std::string& path) { return from_snapshot(read_fixture_file(path)); }
  /// A host as a snapshot describes it (any backend's, or read_fixture's): its host info
  /// (checked as by MockHypervisor(HostInfo)), domains with their pools, vcpu metrics and,
  /// for snapshots of scope full, hard and soft affinity (else "all"), vcpu limits (a domain
  /// in a pool: its pool's CPUs) and node affinity (on a host with node affinity; else every
  /// node). A domain time that is not the sum of
  /// its vcpus' stays as given; otherwise it follows the vcpus as they advance.
  static MockHypervisor from_snapshot(const HostSnapshot& snap);

  // ---- building the host (not backend calls: never counted, never failing) ----

  /// Adds a domain of info.max_vcpus vcpus; `vcpus` may list some of them (by vcpu
  /// number); the rest are offline. Affinity starts as "all" (hard and soft). On a host with
  /// cpupools info.pool names one of them, or none: then pool 0 (Xen's Pool-0); on a host
  /// without, it names none.
  void add_domain(DomainInfo info, std::vector<VcpuMetrics> vcpus = {}) {
    if (domains_.count(info.id))
      throw Error(ErrorCode::invalid_argument, fmt::format("mock: domain {} exists already", info.id));
    if (info.pool && !host_.pool(*info.pool))
      throw Error(ErrorCode::invalid_argument,
                  fmt::format("mock: {}: cpupool {} is not a pool of the host", describe(info), *info.pool));
    if (!info.pool && !host_.pools.empty()) info.pool = 0u;
    MockDomain d;
    d.vcpus.resize(info.max_vcpus);
    for (unsigned v = 0; v < info.max_vcpus; ++v) d.vcpus[v] = {v, VcpuState::offline, {}, std::nullopt, std::nullopt};
    for (const VcpuMetrics& m : vcpus) {
      if (m.vcpu >= info.max_vcpus)
        throw Error(ErrorCode::invalid_argument, fmt::format("mock: {}: vcpu {} is beyond its {} vcpus",
                                                             describe(info), m.vcpu, info.max_vcpus));
      if (m.cpu && *m.cpu >= host_.cpu_universe())
        throw Error(ErrorCode::invalid_argument, fmt::format("mock: {}: vcpu {} last ran on CPU {}, beyond the host",
                                                             describe(info), m.vcpu, *m.cpu));
      if (m.cpu_time.count() < 0)
        throw Error(ErrorCode::invalid_argument, fmt::format("mock: {}: vcpu {} has a negative CPU time",
                                                             describe(info), m.vcpu));
      d.vcpus[m.vcpu] = m;
    }
    if (!detail::sum_cpu_time(d.vcpus))
      throw Error(ErrorCode::invalid_argument, fmt::format("mock: {}: the vcpus' CPU times add up past {} ns",
                                                           describe(info), limits::max_cpu_time_ns));
    d.hard = d.soft = d.limit = AffinityMatrix::full(info.max_vcpus, host_.cpu_universe());
    d.explicit_time = info.cpu_time.count() != 0;
    const DomainId id = info.id;
    d.info = std::move(info);
    sync_domain(domains_.emplace(id, std::move(d)).first->second);
    recount_pools();
  }
  void remove_domain(DomainId id) {
    domains_.erase(id);
    recount_pools();
  }
  /// The whole host as it stands, scope full: what snapshot_all() returns, but not a backend
  /// call (never counted, never failing, no fault or vanishing takes effect). For saving the
  /// host (write_fixture) and for tests.
  HostSnapshot state() const {
    HostSnapshot all;
    all.host = host_;
    all.domains.reserve(domains_.size());
    for (const auto& [id, d] : domains_) {
      DomainSnapshot& s = all.domains.emplace_back();
      s.domain = d.info;
      s.vcpus = d.vcpus;
      s.hard = d.hard;
      s.soft = d.soft;
      fill_limit(d, s.limit);
      effective_affinity(s.hard, s.soft, s.limit, host_.online, s.effective);
      if (host_.caps.node_affinity) s.node_affinity = node_affinity_of(d);
      s.taken_at = now();
    }
    all.taken_at = now();
    return all;
  }
  /// Sets a vcpu's stored affinity directly (no Xen rules, no call counted).
  void set_affinity(DomainId id, unsigned vcpu, const CpuMap& hard, const CpuMap& soft) {
    MockDomain& d = domain(id);
    check_vcpu(d, vcpu);
    d.hard.set_row(vcpu, hard);
    d.soft.set_row(vcpu, soft);
  }
  /// Sets a vcpu's limit (its cpuset) directly, on a host whose HostInfo::caps names a
  /// vcpu limit (else Error(invalid_argument)); no call counted.
  void set_limit(DomainId id, unsigned vcpu, const CpuMap& limit) {
    if (host_.caps.vcpu_limit.empty())
      throw Error(ErrorCode::invalid_argument, "mock: this host has no vcpu limits (HostInfo::caps.vcpu_limit)");
    MockDomain& d = domain(id);
    check_vcpu(d, vcpu);
    d.limit.set_row(vcpu, limit);
  }
  /// Replaces a vcpu's metrics; refused (nothing changed) when its CPU time is negative or
  /// the domain's vcpus would add up past limits::max_cpu_time_ns.
  void set_vcpu(DomainId id, const VcpuMetrics& metrics) {
    MockDomain& d = domain(id);
    check_vcpu(d, metrics.vcpu);
    std::vector<VcpuMetrics> next = d.vcpus;
    next[metrics.vcpu] = metrics;
    if (metrics.cpu_time.count() < 0 || !detail::sum_cpu_time(next))
      throw Error(ErrorCode::invalid_argument,
                  fmt::format("mock: {}: vcpu {}: CPU time {} ns is negative or makes the domain's pass {} ns",
                              describe(d.info), metrics.vcpu, metrics.cpu_time.count(), limits::max_cpu_time_ns));
    d.vcpus = std::move(next);
    sync_domain(d);
  }
  /// Moves a domain to another cpupool, as `xl cpupool-migrate` does: its vcpus' hard and
  /// soft affinity become every CPU (Xen resets them) and its online vcpus move to CPUs of
  /// the pool. Refused (invalid_argument, nothing changed) for a pool the host lacks or one
  /// without CPUs (Xen moves no domain there). No call counted.
  void set_domain_pool(DomainId id, unsigned pool) {
    MockDomain& d = domain(id);
    const CpuPool* p = host_.pool(pool);
    if (!p) throw Error(ErrorCode::invalid_argument, fmt::format("mock: cpupool {} is not a pool of the host", pool));
    if (d.info.pool == pool) return;
    if (p->cpus.empty())
      throw Error(ErrorCode::invalid_argument,
                  fmt::format("mock: {}: {} has no CPUs: Xen moves no domain there", describe(d.info), describe(*p)));
    d.info.pool = pool;
    d.hard = d.soft = AffinityMatrix::full(d.vcpus.size(), host_.cpu_universe());
    place_vcpus(d);
    recount_pools();
  }
  /// Gives a cpupool these CPUs (a map of any universe whose CPUs the host has), as
  /// `xl cpupool-cpu-add` / `-cpu-remove` do; online vcpus of its domains on CPUs it loses
  /// move to CPUs it keeps. Refused (invalid_argument, nothing changed): a pool the host
  /// lacks, CPUs beyond the host or not present, CPUs of another pool (Xen adds free CPUs
  /// only: pools stay disjoint), no CPU left in a pool that has domains (Xen keeps one).
  /// No call counted.
  void set_pool_cpus(unsigned pool, CpuMap cpus) {
    auto it = std::find_if(host_.pools.begin(), host_.pools.end(), [&](const CpuPool& p) { return p.id == pool; });
    if (it == host_.pools.end())
      throw Error(ErrorCode::invalid_argument, fmt::format("mock: cpupool {} is not a pool of the host", pool));
    const std::size_t n = host_.cpu_universe();
    if (auto top = cpus.last(); top && *top >= n)
      throw Error(ErrorCode::invalid_argument,
                  fmt::format("mock: {}: CPU {} is beyond the host's {} CPUs", describe(*it), *top, n));
    cpus.resize(n);
    if (!cpus.is_subset_of(host_.present))
      throw Error(ErrorCode::invalid_argument,
                  fmt::format("mock: {}: CPUs {} are not present", describe(*it), cpus - host_.present));
    for (const CpuPool& other : host_.pools)
      if (other.id != pool && cpus.intersects(other.cpus))
        throw Error(ErrorCode::invalid_argument, fmt::format("mock: {}: CPUs {} are in {}", describe(*it),
                                                             cpus & other.cpus, describe(other)));
    if (cpus.empty() && it->domains > 0)
      throw Error(ErrorCode::invalid_argument,
                  fmt::format("mock: {} has {} domain(s): Xen keeps at least one CPU in it", describe(*it), it->domains));
    it->cpus = std::move(cpus);
    for (auto& [id, d] : domains_)
      if (d.info.pool == pool) place_vcpus(d);
    publish();
  }
  /// Sets a domain's NUMA node affinity (xc_domain_node_setaffinity), on a host whose
  /// HostInfo::caps has node_affinity: nodes below the host's node count, at least one
  /// (Xen's EINVAL otherwise). Else Error(invalid_argument), nothing changed; no call counted.
  void set_node_affinity(DomainId id, NodeSet nodes) {
    if (!host_.caps.node_affinity)
      throw Error(ErrorCode::invalid_argument, "mock: this host has no node affinity (HostInfo::caps.node_affinity)");
    MockDomain& d = domain(id);
    const std::size_t count = host_.numa_nodes.size();
    if (auto top = nodes.last(); top && *top >= count)
      throw Error(ErrorCode::invalid_argument,
                  fmt::format("mock: {}: node {} is beyond the host's {} NUMA nodes", describe(d.info), *top, count));
    if (nodes.empty())
      throw Error(ErrorCode::invalid_argument, fmt::format("mock: {}: a node affinity needs a node", describe(d.info)));
    nodes.resize(count);
    d.node_affinity = std::move(nodes);
  }
  /// Takes a CPU online or offline (it stays present). Vcpus that last ran there keep
  /// the number, as Xen's `cpu` field does.
  void set_cpu_online(std::size_t cpu, bool online) {
    if (!host_.present.test(cpu))
      throw Error(ErrorCode::invalid_argument, fmt::format("mock: CPU {} is not present", cpu));
    if (online) host_.online.set(cpu);
    else host_.online.reset(cpu);
    publish();
  }

  // ---- the virtual clock ----

  /// Moves the clock: every running vcpu accrues dt of CPU time. Refused (nothing changed)
  /// when dt is negative, a CPU time would pass limits::max_cpu_time_ns, or the clock
  /// system_clock's range (about 2262).
  void advance(std::chrono::nanoseconds dt) {
    // The clock stops where epoch() + elapsed would leave system_clock's range.
    const auto clock_room = std::chrono::nanoseconds(limits::max_cpu_time_ns) -
                            std::chrono::duration_cast<std::chrono::nanoseconds>(epoch().time_since_epoch());
    bool fits = dt.count() >= 0 && dt <= clock_room - elapsed_;
    for (const auto& [id, d] : domains_) {
      std::size_t running = 0;
      for (const VcpuMetrics& m : d.vcpus) {
        running += m.state == VcpuState::running;
        fits = fits && (m.state != VcpuState::running || detail::add_cpu_time(m.cpu_time, dt));
      }
      // the domain's sum grows by running × dt
      fits = fits && (running == 0 || dt.count() <= (limits::max_cpu_time_ns - d.info.cpu_time.count()) /
                                                        static_cast<std::int64_t>(running));
    }
    if (!fits)
      throw Error(ErrorCode::invalid_argument,
                  fmt::format("mock: advancing the clock by {} ns would pass the CPU time limit", dt.count()));
    elapsed_ += dt;
    for (auto& [id, d] : domains_) {
      for (VcpuMetrics& m : d.vcpus)
        if (m.state == VcpuState::running) m.cpu_time += dt;
      sync_domain(d);
    }
  }
  /// When on, every backend call first advances the clock by the real time since the last.
  void follow_real_time(bool on) {
    follow_real_time_ = on;
    last_real_ = std::chrono::steady_clock::now();
  }
  clock::time_point now() const noexcept { return epoch() + std::chrono::duration_cast<clock::duration>(elapsed_); }
  static clock::time_point epoch() noexcept { return clock::from_time_t(1151338843); }  // 2006-06-26 16:20:43 UTC

  // ---- fault injection ----

  /// The k-th backend call from now (k >= 1) throws Error(code).
  void fail_call(std::size_t k, ErrorCode code) { faults_.push_back({calls_total_ + k, code}); }
  /// The domain disappears after k more backend calls (k = 0: before the next call).
  void vanish_after(DomainId id, std::size_t k) { vanishing_.push_back({calls_total_ + k, id}); }
  /// Backend calls since construction.
  std::size_t total_calls() const noexcept { return calls_total_; }

  // ---- the backend primitives (backend.hpp); applications use HypervisorFront's members ----

  /// The host as it stands (no call).
  std::shared_ptr<const HostInfo> known_host() const { return published_; }
  /// physinfo, cputopoinfo, numainfo: 3 calls; on a host with cpupools, xc_cpupool_getinfo
  /// for each pool and once more (the call that finds no pool beyond the last).
  std::shared_ptr<const HostInfo> read_host() {
    start_operation();
    call("physinfo");
    call("cputopoinfo");
    call("numainfo");
    if (!host_.pools.empty())
      for (std::size_t i = 0; i <= host_.pools.size(); ++i) call("cpupool_getinfo");
    return published_;
  }
  /// getdomaininfolist: 1 call per 1024 domains + 1.
  void read_domain_list(std::vector<DomainInfo>& out) {
    start_operation();
    for (std::size_t batch = 0; batch <= domains_.size() / 1024; ++batch) call("getdomaininfolist");
    out.clear();
    out.reserve(domains_.size());
    for (const auto& [id, d] : domains_) out.push_back(d.info);
  }
  /// getdomaininfo: 1 call.
  std::optional<DomainInfo> read_domain(DomainId id) {
    start_operation();
    call("getdomaininfo");
    const auto it = domains_.find(id);
    if (it == domains_.end()) return std::nullopt;
    return it->second.info;
  }
  /// Each domain's V getvcpuinfo and, for scope full, V getvcpuaffinity calls and, on a host
  /// with node affinity, 1 getnodeaffinity.
  void read_vcpus(const HostInfo&, std::span<VcpuRead> reads, SnapshotScope scope) {
    for (VcpuRead& r : reads) {
      const DomainInfo& info = *r.info;
      DomainSnapshot& s = *r.into;
      s.domain = info;
      s.scope = scope;
      if (!calls("getvcpuinfo", info.max_vcpus, info.id)) {
        r.vanished = true;
        continue;
      }
      const MockDomain& d = domains_.at(info.id);
      s.vcpus.assign(d.vcpus.begin(), d.vcpus.begin() + std::min<std::size_t>(info.max_vcpus, d.vcpus.size()));
      if (scope == SnapshotScope::full) {
        if (!calls("getvcpuaffinity", info.max_vcpus, info.id)) {
          r.vanished = true;
          continue;
        }
        const MockDomain& d2 = domains_.at(info.id);
        s.hard = d2.hard;  // the mock's universe never changes: the rows fit any host it gave
        s.soft = d2.soft;
        // The pool's CPUs or the vcpus' limits; else (no limits) the front fills it.
        if (d2.info.pool || !host_.caps.vcpu_limit.empty()) fill_limit(d2, s.limit);
        if (host_.caps.node_affinity) {
          if (!calls("getnodeaffinity", 1, info.id)) {
            r.vanished = true;
            continue;
          }
          s.node_affinity = node_affinity_of(domains_.at(info.id));
        } else {
          s.node_affinity.reset();
        }
      } else {
        s.hard.reshape(0, 0);
        s.soft.reshape(0, 0);
        s.node_affinity.reset();
      }
    }
  }
  /// setvcpuaffinity: 1 call a pin (+ 1 getvcpuaffinity for a pin of one map with no
  /// `current`: Xen writes back only the maps it sets, the other is read), one by one.
  std::vector<PinOutcome> set_affinity(const HostInfo&, const DomainInfo& domain, const DomainSnapshot* current,
                                       std::span<const VcpuPinRequest> pins, AfterFailure after) {
    return pin_one_by_one(pins, after, [&](unsigned vcpu, const VcpuPin& pin) {
      if ((!pin.hard || !pin.soft) && !current) call("getvcpuaffinity", domain.id);
      return set_affinity_call(domain.id, vcpu, pin);
    });
  }
  /// The xenstore write of cpu/N/availability: 1 call (a place for a fault). The mock's
  /// guest acts on it at once: a vcpu taken offline is offline (no last CPU), one brought
  /// online is blocked on the first CPU it may run on (its effective row; any online CPU of
  /// its pool, or of the host, when that is empty), as Xen always gives an online vcpu a CPU.
  /// Vcpus already online stay as they are. Refused (invalid_argument, nothing changed)
  /// where the host has no Capabilities::set_online, for no vcpu or one beyond max_vcpus
  /// (the front checks these first).
  void set_online(const HostInfo&, const DomainInfo& info, const VcpuSet& online) {
    call("xenstore write", info.id);
    MockDomain& d = domain(info.id);
    if (!host_.caps.set_online)
      throw Error(ErrorCode::unsupported, fmt::format("{}: this host cannot set online vcpus", describe(d.info)));
    if (online.empty() || (online.last() && *online.last() >= d.vcpus.size()))
      throw Error(ErrorCode::invalid_argument, fmt::format("{}: vcpus {} asked online, of {} vcpus", describe(d.info),
                                                           online, d.vcpus.size()));
    for (unsigned v = 0; v < d.vcpus.size(); ++v) {
      VcpuMetrics& m = d.vcpus[v];
      if (!online.test(v)) {
        m.state = VcpuState::offline;
        m.cpu.reset();
      } else if (m.state == VcpuState::offline) {
        m.state = VcpuState::blocked;
        m.cpu = first_cpu_for(d, v);
      }
    }
    sync_domain(d);
  }
  /// Backend calls since construction.
  std::size_t call_count() const noexcept { return calls_total_; }

 private:
  struct MockDomain {
    DomainInfo info;
    std::vector<VcpuMetrics> vcpus;
    AffinityMatrix hard, soft;
    AffinityMatrix limit;  // every CPU unless the host has vcpu limits (a domain in a pool: its CPUs instead)
    bool explicit_time = false;  // the fixture gave the domain's time: don't sum vcpus
    std::optional<NodeSet> node_affinity;  // empty: every node
  };
  struct Fault {
    std::size_t at;
    ErrorCode code;
  };
  struct Vanish {
    std::size_t at;
    DomainId id;
  };

  MockDomain& domain(DomainId id) {
    auto it = domains_.find(id);
    if (it == domains_.end()) throw Error(ErrorCode::not_found, fmt::format("domain {}: no such domain", id));
    return it->second;
  }
  static void check_vcpu(const MockDomain& d, unsigned vcpu) {
    if (vcpu >= d.vcpus.size())
      throw Error(ErrorCode::invalid_argument,
                  fmt::format("{}: vcpu {} is beyond its {} vcpus", describe(d.info), vcpu, d.vcpus.size()));
  }
  void sync_domain(MockDomain& d) {
    d.info.online_vcpus = static_cast<unsigned>(
        std::count_if(d.vcpus.begin(), d.vcpus.end(), [](const VcpuMetrics& m) { return m.state != VcpuState::offline; }));
    if (!d.explicit_time) d.info.cpu_time = detail::sum_cpu_time(d.vcpus).value();  // checked by every caller
  }
  /// The CPUs of the domain's pool in the host's universe, or null for a domain in none.
  const CpuPool* pool_of(const MockDomain& d) const { return d.info.pool ? host_.pool(*d.info.pool) : nullptr; }
  /// Vcpu v's limit: its pool's CPUs, else its row of d.limit.
  CpuMap limit_row(const MockDomain& d, unsigned v) const {
    if (const CpuPool* p = pool_of(d)) {
      CpuMap cpus = p->cpus;
      cpus.resize(host_.cpu_universe());
      return cpus;
    }
    return d.limit.row(v);
  }
  /// Every vcpu's limit into `into` (its storage reused).
  void fill_limit(const MockDomain& d, AffinityMatrix& into) const {
    if (!pool_of(d)) {
      into = d.limit;
      return;
    }
    into.reshape(d.vcpus.size(), host_.cpu_universe());
    const CpuMap cpus = limit_row(d, 0);
    for (unsigned v = 0; v < d.vcpus.size(); ++v) into.set_row(v, cpus);
  }
  NodeSet node_affinity_of(const MockDomain& d) const {
    return d.node_affinity ? *d.node_affinity : NodeSet::full(host_.numa_nodes.size());
  }
  /// The CPU a vcpu coming online runs on: the first of its effective row, else the first
  /// online CPU of its limit, else of the host; none on a host with no online CPU.
  std::optional<unsigned> first_cpu_for(const MockDomain& d, unsigned v) const {
    const CpuMap limit = limit_row(d, v);
    const CpuMap allowed = d.hard.row(v) & limit & host_.online;
    const CpuMap preferred = allowed & d.soft.row(v);
    for (const CpuMap* m : {&preferred, &allowed}) {
      if (auto c = m->first()) return static_cast<unsigned>(*c);
    }
    const CpuMap in_limit = limit & host_.online;
    if (auto c = in_limit.first()) return static_cast<unsigned>(*c);
    if (auto c = host_.online.first()) return static_cast<unsigned>(*c);
    return std::nullopt;
  }
  /// Online vcpus of a domain in a pool whose last CPU is not the pool's move to the pool's
  /// CPUs (its online ones first), in turn, as Xen moves them.
  void place_vcpus(MockDomain& d) {
    const CpuPool* p = pool_of(d);
    if (!p) return;
    CpuMap targets = p->cpus & host_.online;
    if (targets.empty()) targets = p->cpus;
    std::vector<unsigned> cpus;
    for (std::size_t c : targets) cpus.push_back(static_cast<unsigned>(c));
    if (cpus.empty()) return;
    for (VcpuMetrics& m : d.vcpus)
      if (m.state != VcpuState::offline && (!m.cpu || !p->cpus.test(*m.cpu))) m.cpu = cpus[m.vcpu % cpus.size()];
  }
  /// CpuPool::domains from the domains now in each pool; publishes a change.
  void recount_pools() {
    bool changed = false;
    for (CpuPool& p : host_.pools) {
      const auto n = static_cast<unsigned>(std::count_if(domains_.begin(), domains_.end(), [&](const auto& entry) {
        return entry.second.info.pool == p.id;
      }));
      changed = changed || n != p.domains;
      p.domains = n;
    }
    if (changed) publish();
  }
  void refresh_topology() {
    detail::derive_cpu_topology(host_);
    publish();
  }

  /// The start of an operation: with follow_real_time, the clock catches up with real time.
  void start_operation() {
    if (follow_real_time_) {
      const auto t = std::chrono::steady_clock::now();
      advance(std::chrono::duration_cast<std::chrono::nanoseconds>(t - last_real_));
      last_real_ = t;
    }
  }
  void publish() { published_ = std::make_shared<const HostInfo>(host_); }

  /// One backend call: counted, then vanishings and injected faults take effect.
  void call(std::string_view what, std::optional<DomainId> about = std::nullopt) {
    ++calls_total_;
    for (auto it = vanishing_.begin(); it != vanishing_.end();) {
      if (it->at < calls_total_) {
        domains_.erase(it->id);
        it = vanishing_.erase(it);
        recount_pools();
      } else {
        ++it;
      }
    }
    for (auto it = faults_.begin(); it != faults_.end(); ++it) {
      if (it->at == calls_total_) {
        const ErrorCode code = it->code;
        faults_.erase(it);
        throw Error(code, fmt::format("mock: injected failure of call {} ({})", calls_total_, what));
      }
    }
    if (about && !domains_.count(*about))
      throw Error(ErrorCode::not_found, fmt::format("domain {}: no such domain", *about));
  }

  /// k backend calls about one domain: one at a time while faults or vanishings are pending
  /// (they take effect at an exact call), else counted at once after one existence check.
  /// Returns false when the domain is gone (Xen's ESRCH) by the end of them.
  bool calls(std::string_view what, std::size_t k, DomainId about) {
    if (!faults_.empty() || !vanishing_.empty()) {
      for (std::size_t i = 0; i < k && domains_.count(about); ++i) call(what);
    } else {
      calls_total_ += k;
    }
    return domains_.count(about) != 0;
  }

  /// xc_vcpu_setaffinity: stores the requested maps, returns the effective ones.
  PinResult set_affinity_call(DomainId id, unsigned vcpu, const VcpuPin& pin) {
    call("setvcpuaffinity", id);
    MockDomain& d = domain(id);
    if (vcpu >= d.vcpus.size())
      throw Error(ErrorCode::invalid_argument,
                  fmt::format("{}: vcpu {} is beyond its {} vcpus", describe(d.info), vcpu, d.vcpus.size()));
    if (pin.hard && !(*pin.hard & host_.online).any())
      throw Error(ErrorCode::invalid_argument,
                  fmt::format("{}: vcpu {}: hard affinity {} holds no online CPU", describe(d.info), vcpu,
                              *pin.hard));
    if (pin.soft && !host_.caps.soft_affinity)
      throw Error(ErrorCode::unsupported,
                  fmt::format("{}: vcpu {}: this hypervisor has no soft affinity", describe(d.info), vcpu));
    const CpuPool* pool = pool_of(d);
    const CpuMap limit = limit_row(d, vcpu);
    if (pin.hard && !(*pin.hard & limit & host_.online).any())
      throw Error(ErrorCode::invalid_argument,
                  fmt::format("{}: vcpu {}: hard affinity {} holds no online CPU of its {}", describe(d.info), vcpu,
                              *pin.hard, pool ? describe(*pool) : host_.caps.vcpu_limit));
    if (pin.hard) d.hard.set_row(vcpu, *pin.hard);
    if (pin.soft) d.soft.set_row(vcpu, *pin.soft);
    // What Xen writes back: hard ∩ the pool's CPUs ∩ online, soft ∩ that.
    PinResult r{d.hard.row(vcpu) & host_.online, {}};
    if (pool) r.hard &= limit;
    r.soft = d.soft.row(vcpu) & r.hard;
    return r;
  }

  HostInfo host_;
  std::map<DomainId, MockDomain> domains_;
  std::chrono::nanoseconds elapsed_{0};
  bool follow_real_time_ = false;
  std::chrono::steady_clock::time_point last_real_{};
  std::vector<Fault> faults_;
  std::vector<Vanish> vanishing_;
  std::size_t calls_total_ = 0;
  std::shared_ptr<const HostInfo> published_;  // host_ as known_host() gives it
};

static_assert(Backend<MockHypervisor> && Hypervisor<MockHypervisor>);

inline MockHypervisor MockHypervisor::from_snapshot(const HostSnapshot& snap) {
  MockHypervisor hv(snap.host);
  for (const DomainSnapshot& d : snap.domains) {
    hv.add_domain(d.domain, d.vcpus);
    MockDomain& m = hv.domain(d.domain.id);
    if (d.hard.rows() == d.domain.max_vcpus && d.soft.rows() == d.domain.max_vcpus) {
      for (unsigned v = 0; v < d.domain.max_vcpus; ++v) {
        m.hard.set_row(v, d.hard.row(v));
        m.soft.set_row(v, d.soft.row(v));
        if (!snap.host.caps.vcpu_limit.empty() && d.limit.rows() == d.domain.max_vcpus)
          m.limit.set_row(v, d.limit.row(v));
      }
    }
    m.explicit_time = d.domain.cpu_time != detail::sum_cpu_time(m.vcpus);
    m.info.cpu_time = d.domain.cpu_time;
    if (d.node_affinity && snap.host.caps.node_affinity) {
      const std::size_t count = hv.host_.numa_nodes.size();
      if (auto top = d.node_affinity->last(); top && *top >= count)
        throw Error(ErrorCode::invalid_argument, fmt::format("mock: {}: node {} is beyond the host's {} NUMA nodes",
                                                             describe(d.domain), *top, count));
      NodeSet nodes = *d.node_affinity;  // may be empty, as a snapshot may say
      nodes.resize(count);
      m.node_affinity = std::move(nodes);
    }
    hv.sync_domain(m);
  }
  return hv;
}

}  // namespace vcpumap
