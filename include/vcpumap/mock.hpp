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
//   (physinfo, cputopoinfo, numainfo); list_domains 1 per 1024 domains + 1; snapshot
//   1 + V (metrics) + V (affinity, scope full); pin_vcpu 2 (domain info + setaffinity)
//   with both maps, 3 with one (Xen writes back only the maps it sets: the other is read).
//   Each call is one place a fault can be injected. XenHypervisor by default batches the
//   vcpu reads in multicalls, so its own count for a snapshot is lower (see xen.hpp).
// - Fault injection: fail_call(k, code) fails the k-th backend call from now;
//   vanish_after(domain, k) removes a domain after k more calls; set_cpu_online().
// - Xen's rules: an empty hard map is rejected (EINVAL → invalid_argument), a vcpu beyond
//   max_vcpus is an error, the stored hard/soft maps are the requested ones, and a pin
//   reports hard ∩ online and soft ∩ that (which can be empty) as effective.
//
// Fixture format: one statement per line, '#' starts a comment, key=value options:
//   host cpus=8 [present=0-7] [online=0-5] [threads_per_core=2] [cores_per_socket=2] [sockets=2]
//   node 0 0-3                      NUMA node 0 holds CPUs 0-3 (default: one node, every CPU)
//   domain 3 xperf2 [vcpus=4] [flags=running,paused] [time=1.5]
//   vcpu 0 [state=running|blocked|runnable|offline] [cpu=2] [time=20.0 | time_ns=...]
//          [hard=0-3] [soft=all]     (applies to the last domain; cpulists in this host's terms)
// Vcpus not listed are offline with affinity "all"; a domain's time defaults to the sum of
// its vcpus'. Errors name the line: Error(invalid_argument, "fixture line 4: ...").
#pragma once

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cstddef>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include <fmt/format.h>

#include "affinity_matrix.hpp"
#include "cpu_map.hpp"
#include "error.hpp"
#include "hypervisor.hpp"
#include "model.hpp"

namespace vcpumap {

class MockHypervisor {
 public:
  using clock = std::chrono::system_clock;

  /// A host of `cpus` CPUs, all present and online, one socket, one NUMA node, no domains.
  explicit MockHypervisor(std::size_t cpus = 4) {
    host_.possible = host_.present = host_.online = CpuMap::full(cpus);
    host_.cores_per_socket = static_cast<unsigned>(cpus);
    host_.numa_nodes = {CpuMap::full(cpus)};
    refresh_topology();
  }
  /// A host described by `host` (its maps must share one universe).
  explicit MockHypervisor(HostInfo host) : host_(std::move(host)) {
    const std::size_t n = host_.cpu_universe();
    if (host_.present.size() != n || host_.online.size() != n)
      throw Error(ErrorCode::invalid_argument, "mock host: possible, present and online maps need one universe");
    if (host_.numa_nodes.empty()) host_.numa_nodes = {host_.present};
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

  static MockHypervisor from_fixture(std::string_view text);
  static MockHypervisor from_fixture_file(const std::string& path) {
    std::ifstream in(path);
    if (!in) throw Error(ErrorCode::not_found, fmt::format("mock fixture {}: cannot open", path));
    std::stringstream ss;
    ss << in.rdbuf();
    try {
      return from_fixture(ss.str());
    } catch (const Error& e) {
      throw Error(e.code(), fmt::format("{}: {}", path, e.what()));
    }
  }

  // ---- building the host (not backend calls: never counted, never failing) ----

  /// Adds a domain of info.max_vcpus vcpus; `vcpus` may list some of them (by vcpu
  /// number); the rest are offline. Affinity starts as "all" (hard and soft).
  void add_domain(DomainInfo info, std::vector<VcpuMetrics> vcpus = {}) {
    if (domains_.count(info.id))
      throw Error(ErrorCode::invalid_argument, fmt::format("mock: domain {} exists already", info.id));
    MockDomain d;
    d.vcpus.resize(info.max_vcpus);
    for (unsigned v = 0; v < info.max_vcpus; ++v) d.vcpus[v] = {v, VcpuState::offline, {}, std::nullopt};
    for (const VcpuMetrics& m : vcpus) {
      if (m.vcpu >= info.max_vcpus)
        throw Error(ErrorCode::invalid_argument, fmt::format("mock: {}: vcpu {} is beyond its {} vcpus",
                                                             detail::describe(info), m.vcpu, info.max_vcpus));
      if (m.cpu && *m.cpu >= host_.cpu_universe())
        throw Error(ErrorCode::invalid_argument, fmt::format("mock: {}: vcpu {} last ran on CPU {}, beyond the host",
                                                             detail::describe(info), m.vcpu, *m.cpu));
      d.vcpus[m.vcpu] = m;
    }
    d.hard = d.soft = AffinityMatrix::full(info.max_vcpus, host_.cpu_universe());
    d.explicit_time = info.cpu_time.count() != 0;
    const DomainId id = info.id;
    d.info = std::move(info);
    sync_domain(domains_.emplace(id, std::move(d)).first->second);
  }
  void remove_domain(DomainId id) { domains_.erase(id); }
  /// Sets a vcpu's stored affinity directly (no Xen rules, no call counted).
  void set_affinity(DomainId id, unsigned vcpu, const CpuMap& hard, const CpuMap& soft) {
    MockDomain& d = domain(id);
    check_vcpu(d, vcpu);
    d.hard.set_row(vcpu, hard);
    d.soft.set_row(vcpu, soft);
  }
  void set_vcpu(DomainId id, const VcpuMetrics& metrics) {
    MockDomain& d = domain(id);
    check_vcpu(d, metrics.vcpu);
    d.vcpus[metrics.vcpu] = metrics;
    sync_domain(d);
  }
  /// Takes a CPU online or offline (it stays present). Vcpus that last ran there keep
  /// the number, as Xen's `cpu` field does.
  void set_cpu_online(std::size_t cpu, bool online) {
    if (!host_.present.test(cpu))
      throw Error(ErrorCode::invalid_argument, fmt::format("mock: CPU {} is not present", cpu));
    if (online) host_.online.set(cpu);
    else host_.online.reset(cpu);
  }

  // ---- the virtual clock ----

  /// Moves the clock: every running vcpu accrues dt of CPU time.
  void advance(std::chrono::nanoseconds dt) {
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

  // ---- the Hypervisor concept ----

  HostInfo host_info() {
    begin_operation();
    call("physinfo");
    call("cputopoinfo");
    call("numainfo");
    return host_;
  }

  std::vector<DomainInfo> list_domains() {
    begin_operation();
    std::vector<DomainInfo> out;
    list_domains_counted(out);
    return out;
  }

  DomainSnapshot snapshot(DomainId id, SnapshotScope scope = SnapshotScope::full) {
    DomainSnapshot s;
    snapshot(id, scope, s);
    return s;
  }
  void snapshot(DomainId id, SnapshotScope scope, DomainSnapshot& into) {
    begin_operation();
    try {
      read_vcpus(read_info(id), scope, into);
    } catch (...) {
      into.clear();
      throw;
    }
  }

  HostSnapshot snapshot_all(SnapshotScope scope = SnapshotScope::full) {
    HostSnapshot all;
    snapshot_all(scope, all);
    return all;
  }
  void snapshot_all(SnapshotScope scope, HostSnapshot& into) {
    begin_operation();
    try {
      call("physinfo");
      call("cputopoinfo");
      call("numainfo");
      into.host = host_;
      list_domains_counted(listed_);
      into.domains.reserve(listed_.size());
      std::size_t kept = 0;
      for (const DomainInfo& info : listed_) {
        if (kept == into.domains.size()) into.domains.emplace_back();
        // A domain that vanishes while being read is left out, never half-read: its slot
        // is refilled by the next domain or dropped at the end.
        try {
          read_vcpus(info, scope, into.domains[kept]);
          ++kept;
        } catch (const Error& e) {
          if (e.code() != ErrorCode::not_found) throw;
        }
      }
      into.domains.resize(kept);
      into.taken_at = now();
    } catch (...) {
      into.clear();
      throw;
    }
  }

  PinResult pin_vcpu(DomainId id, unsigned vcpu, const VcpuPin& pin) {
    begin_operation();
    const DomainInfo info = read_info(id);
    detail::validate_pin(host_, info, vcpu, pin);
    if (!pin.hard || !pin.soft) call("getvcpuaffinity", id);  // the map the pin leaves alone
    return set_affinity_call(id, vcpu, pin);
  }

  MatrixPinResult pin_matrix(DomainId id, const MatrixPin& plan) {
    begin_operation();
    DomainSnapshot before;
    read_vcpus(read_info(id), SnapshotScope::full, before);
    return detail::apply_matrix_pin(
        host_, before, plan, [&](std::span<const detail::VcpuPinOf> pins, detail::AfterFailure after) {
          return detail::pin_one_by_one(pins, after,
                                        [&](unsigned vcpu, const VcpuPin& pin) { return set_affinity_call(id, vcpu, pin); });
        });
  }

  std::size_t last_call_count() const noexcept { return calls_last_; }

 private:
  struct MockDomain {
    DomainInfo info;
    std::vector<VcpuMetrics> vcpus;
    AffinityMatrix hard, soft;
    bool explicit_time = false;  // the fixture gave the domain's time: don't sum vcpus
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
                  fmt::format("{}: vcpu {} is beyond its {} vcpus", detail::describe(d.info), vcpu, d.vcpus.size()));
  }
  void sync_domain(MockDomain& d) {
    d.info.online_vcpus = static_cast<unsigned>(
        std::count_if(d.vcpus.begin(), d.vcpus.end(), [](const VcpuMetrics& m) { return m.state != VcpuState::offline; }));
    if (!d.explicit_time) {
      d.info.cpu_time = {};
      for (const VcpuMetrics& m : d.vcpus) d.info.cpu_time += m.cpu_time;
    }
  }
  void refresh_topology() {
    const std::size_t n = host_.cpu_universe();
    host_.cpu_node.assign(n, std::nullopt);
    host_.cpu_socket.assign(n, std::nullopt);
    const std::size_t per_socket = std::max<std::size_t>(1, std::size_t{host_.threads_per_core} * host_.cores_per_socket);
    for (std::size_t node = 0; node < host_.numa_nodes.size(); ++node)
      for (std::size_t cpu : host_.numa_nodes[node])
        if (cpu < n) host_.cpu_node[cpu] = static_cast<unsigned>(node);
    std::size_t rank = 0;  // present CPUs fill sockets in id order
    for (std::size_t cpu : host_.present) host_.cpu_socket[cpu] = static_cast<unsigned>(rank++ / per_socket);
  }

  void begin_operation() {
    calls_last_ = 0;
    if (follow_real_time_) {
      const auto t = std::chrono::steady_clock::now();
      advance(std::chrono::duration_cast<std::chrono::nanoseconds>(t - last_real_));
      last_real_ = t;
    }
  }
  /// One backend call: counted, then vanishings and injected faults take effect.
  void call(std::string_view what, std::optional<DomainId> about = std::nullopt) {
    ++calls_last_;
    ++calls_total_;
    for (auto it = vanishing_.begin(); it != vanishing_.end();) {
      if (it->at < calls_total_) {
        domains_.erase(it->id);
        it = vanishing_.erase(it);
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

  /// The domain list (1 call per 1024 domains + 1), into `out`.
  void list_domains_counted(std::vector<DomainInfo>& out) {
    for (std::size_t batch = 0; batch <= domains_.size() / 1024; ++batch) call("getdomaininfolist");
    out.clear();
    out.reserve(domains_.size());
    for (const auto& [id, d] : domains_) out.push_back(d.info);
  }
  DomainInfo read_info(DomainId id) {
    call("getdomaininfo", id);
    return domain(id).info;
  }

  /// Metrics (V calls) and, for scope full, affinity (V calls) of a domain whose info was
  /// read, into `s` (its storage reused).
  void read_vcpus(const DomainInfo& info, SnapshotScope scope, DomainSnapshot& s) {
    calls("getvcpuinfo", info.max_vcpus, info.id);
    const MockDomain& d = domain(info.id);
    s.vcpus.assign(d.vcpus.begin(), d.vcpus.begin() + info.max_vcpus);
    if (scope == SnapshotScope::full) {
      calls("getvcpuaffinity", info.max_vcpus, info.id);
      const MockDomain& d2 = domain(info.id);
      s.hard = d2.hard;
      s.soft = d2.soft;
      effective_affinity(s.hard, s.soft, host_.online, s.effective);
    } else {
      s.hard.reshape(0, 0);
      s.soft.reshape(0, 0);
      s.effective.reshape(0, 0);
    }
    s.domain = info;
    s.scope = scope;
    s.taken_at = now();
  }
  /// k backend calls about one domain: one at a time while faults or vanishings are pending
  /// (they take effect at an exact call), else counted at once after one existence check.
  void calls(std::string_view what, std::size_t k, DomainId about) {
    if (!faults_.empty() || !vanishing_.empty()) {
      for (std::size_t i = 0; i < k; ++i) call(what, about);
      return;
    }
    if (k == 0) return;
    calls_last_ += k;
    calls_total_ += k;
    if (!domains_.count(about)) throw Error(ErrorCode::not_found, fmt::format("domain {}: no such domain", about));
  }

  /// xc_vcpu_setaffinity: stores the requested maps, returns the effective ones.
  PinResult set_affinity_call(DomainId id, unsigned vcpu, const VcpuPin& pin) {
    call("setvcpuaffinity", id);
    MockDomain& d = domain(id);
    if (vcpu >= d.vcpus.size())
      throw Error(ErrorCode::invalid_argument,
                  fmt::format("{}: vcpu {} is beyond its {} vcpus", detail::describe(d.info), vcpu, d.vcpus.size()));
    if (pin.hard && !(*pin.hard & host_.online).any())
      throw Error(ErrorCode::invalid_argument,
                  fmt::format("{}: vcpu {}: hard affinity {} holds no online CPU", detail::describe(d.info), vcpu,
                              *pin.hard));
    if (pin.hard) d.hard.set_row(vcpu, *pin.hard);
    if (pin.soft) d.soft.set_row(vcpu, *pin.soft);
    PinResult r{d.hard.row(vcpu) & host_.online, {}};
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
  std::size_t calls_last_ = 0;
  std::vector<DomainInfo> listed_;  // snapshot_all's domain list, kept for its storage
};

static_assert(Hypervisor<MockHypervisor>);

namespace detail {

/// Reads the fixture text of MockHypervisor::from_fixture.
class MockFixtureReader {
 public:
  explicit MockFixtureReader(std::string_view text) : text_(text) {}

  MockHypervisor read() {
    std::size_t start = 0;
    while (start <= text_.size()) {
      std::size_t end = text_.find('\n', start);
      if (end == std::string_view::npos) end = text_.size();
      ++line_;
      statement(text_.substr(start, end - start));
      start = end + 1;
    }
    flush_domain();
    if (!hv_) build_host();
    return std::move(*hv_);
  }

 private:
  [[noreturn]] void fail(const std::string& what) const {
    throw Error(ErrorCode::invalid_argument, fmt::format("fixture line {}: {}", line_, what));
  }

  void statement(std::string_view line) {
    if (auto hash = line.find('#'); hash != std::string_view::npos) line = line.substr(0, hash);
    std::vector<std::string_view> words;
    std::size_t i = 0;
    while (i < line.size()) {
      while (i < line.size() && (line[i] == ' ' || line[i] == '\t' || line[i] == '\r')) ++i;
      const std::size_t begin = i;
      while (i < line.size() && line[i] != ' ' && line[i] != '\t' && line[i] != '\r') ++i;
      if (i > begin) words.push_back(line.substr(begin, i - begin));
    }
    if (words.empty()) return;
    const std::string_view kind = words[0];
    if (kind == "host") return host(words);
    if (kind == "node") return node(words);
    if (kind == "domain") return domain(words);
    if (kind == "vcpu") return vcpu(words);
    fail(fmt::format("unknown statement '{}' (host, node, domain or vcpu)", kind));
  }

  /// key=value words after the first `positional` ones.
  std::map<std::string_view, std::string_view> options(const std::vector<std::string_view>& words,
                                                       std::size_t positional,
                                                       std::initializer_list<std::string_view> allowed) const {
    if (words.size() < positional + 1) fail(fmt::format("'{}' needs {} argument(s)", words[0], positional));
    std::map<std::string_view, std::string_view> out;
    for (std::size_t i = positional + 1; i < words.size(); ++i) {
      const auto eq = words[i].find('=');
      if (eq == std::string_view::npos) fail(fmt::format("expected key=value, found '{}'", words[i]));
      const std::string_view key = words[i].substr(0, eq);
      if (std::find(allowed.begin(), allowed.end(), key) == allowed.end())
        fail(fmt::format("unknown key '{}' for '{}'", key, words[0]));
      out[key] = words[i].substr(eq + 1);
    }
    return out;
  }

  std::uint64_t number(std::string_view text, std::string_view what) const {
    std::uint64_t v = 0;
    auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
    if (ec != std::errc() || ptr != text.data() + text.size() || text.empty())
      fail(fmt::format("{} '{}' is not a number", what, text));
    return v;
  }

  /// Seconds with up to 9 decimals ("636.8"), exactly, as nanoseconds.
  std::chrono::nanoseconds seconds(std::string_view text) const {
    const auto dot = text.find('.');
    std::uint64_t ns = number(text.substr(0, dot), "time") * 1'000'000'000ULL;
    if (dot != std::string_view::npos) {
      std::string_view frac = text.substr(dot + 1);
      if (frac.empty() || frac.size() > 9) fail(fmt::format("time '{}' needs 1 to 9 decimals", text));
      std::uint64_t f = number(frac, "time");
      for (std::size_t i = frac.size(); i < 9; ++i) f *= 10;
      ns += f;
    }
    return std::chrono::nanoseconds(static_cast<std::int64_t>(ns));
  }

  CpuMap cpus(std::string_view text, std::size_t universe) const {
    ParseOptions o;
    o.universe = universe;
    o.numa_nodes = nodes_;
    ParseFailure failure;
    auto map = CpuMap::try_parse(text, o, &failure);
    if (!map) fail(ParseError(text, failure).what());
    return *map;
  }

  void host(const std::vector<std::string_view>& words) {
    if (saw_host_ || hv_) fail("'host' must come once, before nodes and domains");
    saw_host_ = true;
    auto o = options(words, 0, {"cpus", "present", "online", "threads_per_core", "cores_per_socket", "sockets"});
    if (!o.count("cpus")) fail("'host' needs cpus=N");
    universe_ = number(o["cpus"], "cpus");
    host_.possible = CpuMap::full(universe_);
    host_.present = o.count("present") ? cpus(o["present"], universe_) : host_.possible;
    host_.online = o.count("online") ? cpus(o["online"], universe_) : host_.present;
    if (!host_.online.is_subset_of(host_.present)) fail("online CPUs must be present");
    host_.threads_per_core = static_cast<unsigned>(o.count("threads_per_core") ? number(o["threads_per_core"], "threads_per_core") : 1);
    host_.sockets = static_cast<unsigned>(o.count("sockets") ? number(o["sockets"], "sockets") : 1);
    host_.cores_per_socket = static_cast<unsigned>(
        o.count("cores_per_socket") ? number(o["cores_per_socket"], "cores_per_socket")
                                    : std::max<std::size_t>(1, host_.present.count() / (host_.threads_per_core * std::max(1u, host_.sockets))));
  }

  void node(const std::vector<std::string_view>& words) {
    if (!saw_host_ || hv_) fail("'node' must come after 'host' and before domains");
    if (words.size() != 3) fail("'node' needs an id and a cpulist: node 0 0-3");
    const std::uint64_t id = number(words[1], "node id");
    if (id != nodes_.size()) fail(fmt::format("node {} out of order (expected node {})", id, nodes_.size()));
    nodes_.push_back(cpus(words[2], universe_));
  }

  void build_host() {
    if (!saw_host_) {
      universe_ = 4;
      host_.possible = host_.present = host_.online = CpuMap::full(4);
      host_.cores_per_socket = 4;
    }
    host_.numa_nodes = nodes_;
    hv_.emplace(host_);
  }

  void domain(const std::vector<std::string_view>& words) {
    flush_domain();
    if (!hv_) build_host();
    auto o = options(words, 2, {"vcpus", "flags", "time"});
    pending_ = PendingDomain{};
    DomainInfo& info = pending_->info;
    info.id = DomainId{static_cast<std::uint32_t>(number(words[1], "domain id"))};
    info.name = std::string(words[2]);
    info.max_vcpus = static_cast<unsigned>(o.count("vcpus") ? number(o["vcpus"], "vcpus") : 1);
    if (o.count("time")) info.cpu_time = seconds(o["time"]);
    std::string_view flags = o.count("flags") ? o["flags"] : "";
    while (!flags.empty()) {
      const auto comma = flags.find(',');
      const std::string_view f = flags.substr(0, comma);
      if (f == "running") info.flags.running = true;
      else if (f == "blocked") info.flags.blocked = true;
      else if (f == "paused") info.flags.paused = true;
      else if (f == "shutdown") info.flags.shutdown = true;
      else if (f == "dying") info.flags.dying = true;
      else fail(fmt::format("unknown domain flag '{}'", f));
      flags = comma == std::string_view::npos ? std::string_view{} : flags.substr(comma + 1);
    }
    pending_->line = line_;
  }

  void vcpu(const std::vector<std::string_view>& words) {
    if (!pending_) fail("'vcpu' must follow a 'domain'");
    auto o = options(words, 1, {"state", "cpu", "time", "time_ns", "hard", "soft"});
    VcpuMetrics m;
    m.vcpu = static_cast<unsigned>(number(words[1], "vcpu"));
    if (m.vcpu >= pending_->info.max_vcpus)
      fail(fmt::format("vcpu {} is beyond the domain's {} vcpus", m.vcpu, pending_->info.max_vcpus));
    const std::string_view state = o.count("state") ? o["state"] : "blocked";
    if (state == "running") m.state = VcpuState::running;
    else if (state == "blocked") m.state = VcpuState::blocked;
    else if (state == "runnable") m.state = VcpuState::runnable;
    else if (state == "offline") m.state = VcpuState::offline;
    else fail(fmt::format("unknown vcpu state '{}'", state));
    if (o.count("cpu")) {
      const std::uint64_t cpu = number(o["cpu"], "cpu");
      if (cpu >= universe_) fail(fmt::format("cpu {} is beyond the host's {} CPUs", cpu, universe_));
      if (m.state != VcpuState::offline) m.cpu = static_cast<unsigned>(cpu);
    }
    if (o.count("time")) m.cpu_time = seconds(o["time"]);
    if (o.count("time_ns")) m.cpu_time = std::chrono::nanoseconds(number(o["time_ns"], "time_ns"));
    pending_->vcpus.push_back(m);
    pending_->hard.push_back(o.count("hard") ? cpus(o["hard"], universe_) : CpuMap::full(universe_));
    pending_->soft.push_back(o.count("soft") ? cpus(o["soft"], universe_) : CpuMap::full(universe_));
  }

  void flush_domain() {
    if (!pending_) return;
    const std::size_t saved = line_;
    line_ = pending_->line;
    try {
      const DomainId id = pending_->info.id;
      hv_->add_domain(pending_->info, pending_->vcpus);
      for (std::size_t i = 0; i < pending_->vcpus.size(); ++i)
        hv_->set_affinity(id, pending_->vcpus[i].vcpu, pending_->hard[i], pending_->soft[i]);
    } catch (const Error& e) {
      fail(e.what());
    }
    line_ = saved;
    pending_.reset();
  }

  struct PendingDomain {
    DomainInfo info;
    std::vector<VcpuMetrics> vcpus;
    std::vector<CpuMap> hard, soft;
    std::size_t line = 0;
  };

  std::string_view text_;
  std::size_t line_ = 0;
  bool saw_host_ = false;
  std::size_t universe_ = 0;
  HostInfo host_;
  std::vector<CpuMap> nodes_;
  std::optional<MockHypervisor> hv_;
  std::optional<PendingDomain> pending_;
};

}  // namespace detail

inline MockHypervisor MockHypervisor::from_fixture(std::string_view text) {
  return detail::MockFixtureReader(text).read();
}

}  // namespace vcpumap
