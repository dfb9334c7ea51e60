// The mock backend, and through it the Hypervisor contract every backend keeps.
#include <vcpumap/mock.hpp>

#include <catch2/catch.hpp>

#include <set>
#include <span>
#include <string>
#include <vector>

using namespace vcpumap;
using namespace std::chrono_literals;

namespace {

constexpr DomainId xperf2{3};

/// A 16-CPU host, 2 NUMA nodes, CPUs 14-15 offline, and one domain of `vcpus` vcpus.
MockHypervisor host16(unsigned vcpus = 4) {
  auto hv = MockHypervisor::from_fixture(
      "host cpus=16 online=0-13 threads_per_core=2 cores_per_socket=4 sockets=2\n"
      "node 0 0-7\n"
      "node 1 8-15\n");
  DomainInfo d;
  d.id = DomainId{7};
  d.name = "guest";
  d.max_vcpus = vcpus;
  std::vector<VcpuMetrics> m;
  for (unsigned v = 0; v < vcpus; ++v) m.push_back({v, VcpuState::blocked, std::chrono::nanoseconds(v * 1000), v % 14, std::nullopt});
  hv.add_domain(d, m);
  return hv;
}

AffinityMatrix hard_of(MockHypervisor& hv, DomainId id) { return hv.snapshot(id).hard; }

}  // namespace

TEST_CASE("the demo host is the 2006 thread's", "[mock]") {
  MockHypervisor hv = MockHypervisor::demo();
  const HostSnapshot all = hv.snapshot_all();
  REQUIRE(all.domains.size() == 3);
  CHECK(all.host.cpu_universe() == 4);
  const DomainSnapshot& dom0 = all.domains[0];
  CHECK(dom0.domain.id == control_domain);
  CHECK(dom0.domain.name == "Domain-0");
  CHECK(dom0.vcpus.size() == 4);
  CHECK(dom0.vcpus[0].cpu_time == 636800000000ns);
  CHECK(dom0.vcpus[2].state == VcpuState::running);
  CHECK(dom0.vcpus[3].cpu == 3u);
  const DomainSnapshot& x2 = all.domains[2];
  CHECK(x2.domain.id == xperf2);
  CHECK(x2.domain.name == "xperf2");
  CHECK(x2.vcpus[2].cpu == 0u);
  CHECK(x2.vcpus[3].cpu_time == 17800000000ns);
  CHECK(x2.hard == AffinityMatrix::full(4, 4));  // "any cpu"
  CHECK(x2.soft == AffinityMatrix::full(4, 4));
  CHECK(all.domains[1].domain.name == "xperf1");
  CHECK(all.taken_at == MockHypervisor::epoch());
  // host info 3 + domain list 1 + 2 per vcpu (9 vcpus)
  CHECK(hv.last_call_count() == 3 + 1 + 2 * 9);
}

TEST_CASE("a snapshot costs 1 + 2V calls, 1 + V for metrics only", "[mock][calls]") {
  MockHypervisor hv = host16(64);
  const DomainSnapshot full = hv.snapshot(DomainId{7});
  CHECK(hv.last_call_count() == 1 + 2 * 64);
  CHECK(full.hard.rows() == 64);
  CHECK(full.hard.cols() == 16);
  const DomainSnapshot metrics = hv.snapshot(DomainId{7}, SnapshotScope::metrics_only);
  CHECK(hv.last_call_count() == 1 + 64);
  CHECK(metrics.scope == SnapshotScope::metrics_only);
  CHECK(metrics.vcpus == full.vcpus);
  CHECK(metrics.hard.rows() == 0);  // no affinity read, none reported
  CHECK(metrics.effective.cols() == 0);
  (void)hv.host_info();
  CHECK(hv.last_call_count() == 3);
  (void)hv.list_domains();
  CHECK(hv.last_call_count() == 1);
}

TEST_CASE("host info: maps sized by max CPU id + 1, present != online", "[mock][host]") {
  MockHypervisor hv = host16();
  const HostInfo host = hv.host_info();
  CHECK(host.possible.universe() == 16);
  CHECK(host.present.universe() == 16);
  CHECK(host.online.universe() == 16);  // never the online count (14)
  CHECK(host.online == CpuMap::parse("0-13", {.universe = 16}));
  CHECK(host.numa_nodes.size() == 2);
  CHECK(host.cpu_node[9] == 1u);
  CHECK(host.cpu_socket[9] == 1u);
  CHECK(host.threads_per_core == 2);
  hv.set_cpu_online(3, false);
  CHECK(!hv.host_info().online.test(3));
  // Effective affinity leaves offline CPUs out.
  const DomainSnapshot s = hv.snapshot(DomainId{7});
  CHECK(s.effective.row(0) == CpuMap::parse("0-2,4-13", {.universe = 16}));
}

TEST_CASE("pin one vcpu: hard, soft, both; Xen's effective maps come back", "[mock][pin]") {
  MockHypervisor hv = host16();
  const HostInfo host = hv.host_info();
  const DomainId g{7};
  PinResult r = hv.pin_vcpu(g, 1, {.hard = host.parse("2-3,14"), .soft = std::nullopt, .force = false});
  CHECK(hv.last_call_count() == 3);  // domain info, the soft map left alone, setaffinity
  CHECK(r.hard == host.parse("2-3"));  // 14 is offline: not effective
  CHECK(r.soft == host.parse("2-3"));  // soft "all" ∩ effective hard
  CHECK(hard_of(hv, g).row(1) == host.parse("2-3,14"));  // the stored map is the requested one

  // Soft only (xl vcpu-pin crashed on this): hard stays.
  r = hv.pin_vcpu(g, 1, {.hard = std::nullopt, .soft = host.parse("8-9")});
  CHECK(r.hard == host.parse("2-3"));
  CHECK(r.soft.empty());  // soft ∩ hard is empty: allowed, as in Xen
  CHECK(hv.snapshot(g).soft.row(1) == host.parse("8-9"));
  CHECK(hv.snapshot(g).effective.row(1) == host.parse("2-3"));  // soft ignored when it leaves nothing

  r = hv.pin_vcpu(g, 0, {.hard = host.parse("node:1"), .soft = host.parse("8"), .force = true});
  CHECK(r.hard == host.parse("8-13"));
  CHECK(r.soft == host.parse("8"));
}

TEST_CASE("bad pins are rejected before any change, with typed errors", "[mock][pin][errors]") {
  MockHypervisor hv = host16();
  const DomainId g{7};
  const AffinityMatrix before = hard_of(hv, g);
  auto code_of = [&](DomainId id, unsigned vcpu, VcpuPin pin) {
    try {
      (void)hv.pin_vcpu(id, vcpu, pin);
    } catch (const Error& e) {
      return std::pair{e.code(), std::string(e.what())};
    }
    FAIL("no error");
    return std::pair{ErrorCode::internal, std::string()};
  };
  auto [c1, m1] = code_of(g, 4, {.hard = CpuMap(16, {1})});
  CHECK(c1 == ErrorCode::invalid_argument);
  CHECK(m1 == "domain 7 (guest): vcpu 4 is beyond its 4 vcpus");
  auto [c2, m2] = code_of(g, 0, {.hard = CpuMap(16)});
  CHECK(m2 == "domain 7 (guest): vcpu 0: empty hard affinity");
  auto [c3, m3] = code_of(g, 0, {.hard = CpuMap(40, {1, 33})});
  CHECK(m3 == "domain 7 (guest): vcpu 0: hard affinity 1,33 names CPU 33, beyond the host's 16 CPUs");
  auto [c4, m4] = code_of(g, 0, {.hard = CpuMap(16, {14, 15})});
  CHECK(m4 == "domain 7 (guest): vcpu 0: hard affinity 14-15 holds no online CPU (online: 0-13)");
  auto [c5, m5] = code_of(DomainId{99}, 0, {.hard = CpuMap(16, {1})});
  CHECK(c5 == ErrorCode::not_found);
  CHECK(m5 == "domain 99: no such domain");
  auto [c6, m6] = code_of(g, 0, {});
  CHECK(m6 == "domain 7 (guest): vcpu 0: a pin needs a hard or a soft map");
  CHECK(hard_of(hv, g) == before);
}

TEST_CASE("not-present CPUs are refused", "[mock][pin][errors]") {
  auto hv = MockHypervisor::from_fixture("host cpus=8 present=0-5 online=0-3\ndomain 1 g vcpus=1\n");
  REQUIRE_THROWS_WITH(hv.pin_vcpu(DomainId{1}, 0, {.hard = CpuMap(8, {0, 6, 7})}),
                      "domain 1 (g): vcpu 0: hard affinity names CPUs 6-7 that are not present");
  // Present but offline CPUs may be named, as long as one is online.
  CHECK(hv.pin_vcpu(DomainId{1}, 0, {.hard = CpuMap(8, {3, 4})}).hard == CpuMap(8, {3}));
}

TEST_CASE("whole-matrix pin: validated first, applied, effective maps returned", "[mock][matrix-pin]") {
  MockHypervisor hv = host16(4);
  const HostInfo host = hv.host_info();
  const DomainId g{7};
  AffinityMatrix hard(4, 16);
  for (unsigned v = 0; v < 4; ++v) hard.set(v, v).set(v, v + 8);
  const MatrixPinResult r = hv.pin_matrix(g, {.hard = hard, .soft = std::nullopt});
  CHECK(hv.last_call_count() == (1 + 2 * 4) + 4);
  CHECK(r.hard == hard);
  CHECK(hard_of(hv, g) == hard);

  // One bad row: nothing is applied, and no set call is made.
  AffinityMatrix bad = AffinityMatrix::full(4, 16);
  bad.set_row(2, CpuMap(16));
  const std::size_t calls_before = hv.total_calls();
  REQUIRE_THROWS_WITH(hv.pin_matrix(g, {.hard = bad}), "domain 7 (guest): vcpu 2: empty hard affinity");
  CHECK(hv.total_calls() - calls_before == 1 + 2 * 4);  // the read, no setaffinity
  CHECK(hard_of(hv, g) == hard);
  REQUIRE_THROWS_WITH(hv.pin_matrix(g, {.hard = AffinityMatrix::full(3, 16)}),
                      "domain 7 (guest): the matrix has 3 rows for 4 vcpus");
  AffinityMatrix wide = AffinityMatrix::full(4, 20);
  REQUIRE_THROWS_WITH(hv.pin_matrix(g, {.hard = wide}), "domain 7 (guest): vcpu 0: CPU 19 is beyond the host's 16 CPUs");
  CHECK(hard_of(hv, g) == hard);
}

TEST_CASE("whole-matrix pin rolls back exactly when vcpu k fails", "[mock][matrix-pin][rollback]") {
  constexpr unsigned n = 8;
  for (unsigned k : {0u, 1u, 3u, 7u}) {
    MockHypervisor hv = host16(n);
    const DomainId g{7};
    // Distinct starting rows so a wrong restore shows.
    for (unsigned v = 0; v < n; ++v) hv.set_affinity(g, v, CpuMap(16, {v, v + 1}), CpuMap(16, {v}));
    const DomainSnapshot before = hv.snapshot(g);
    AffinityMatrix hard(n, 16), soft(n, 16);
    for (unsigned v = 0; v < n; ++v) hard.set(v, 13 - v), soft.set(v, 13 - v);
    // The read takes 1 + 2n calls; the set of vcpu k is call 1 + 2n + k + 1.
    hv.fail_call(1 + 2 * n + k + 1, ErrorCode::busy);
    try {
      (void)hv.pin_matrix(g, {.hard = hard, .soft = soft});
      FAIL("no PinError");
    } catch (const PinError& e) {
      CHECK(e.failed_vcpu() == k);
      CHECK(e.rolled_back());
      CHECK(e.code() == ErrorCode::busy);
      CHECK_THAT(e.what(), Catch::Contains(fmt::format("pin failed at vcpu {}", k)));
    }
    const DomainSnapshot after = hv.snapshot(g);
    CHECK(after.hard == before.hard);
    CHECK(after.soft == before.soft);
  }
}

TEST_CASE("a matrix pin checks and sets only the rows it changes", "[mock][matrix-pin]") {
  // CPUs 6-7 are not present: the untouched default "all" (0-7) of every vcpu names them.
  MockHypervisor hv = MockHypervisor::from_fixture("host cpus=8 present=0-5\ndomain 1 g vcpus=3\n");
  const DomainId g{1};
  const DomainSnapshot before = hv.snapshot(g);
  MatrixPin plan{before.hard, std::nullopt};
  plan.hard->set_row(1, CpuMap(8, {1})).set_row(2, CpuMap(8, {2}));
  const MatrixPinResult r = hv.pin_matrix(g, plan);
  CHECK(hv.last_call_count() == 1 + 6 + 2);  // info, the snapshot to roll back to, two sets
  CHECK(r.hard.row(0) == CpuMap::parse("0-5", {.universe = 8}));  // a row left alone: hard ∩ online
  CHECK(r.hard.row(2) == CpuMap(8, {2}));
  CHECK(hv.snapshot(g).hard.row(0) == CpuMap::full(8));
  // The same matrix again changes nothing and makes no set call.
  (void)hv.pin_matrix(g, plan);
  CHECK(hv.last_call_count() == 1 + 6);
  // A new pin naming an absent CPU is refused; put back as read (restore), it is set.
  plan.hard->set_row(1, CpuMap(8, {1, 7}));
  REQUIRE_THROWS_WITH(hv.pin_matrix(g, plan), "domain 1 (g): vcpu 1: hard affinity names CPUs 7 that are not present");
  (void)hv.pin_matrix(g, {.hard = before.hard, .soft = before.soft, .restore = true});
  CHECK(hv.snapshot(g).hard == before.hard);
}

TEST_CASE("the mock refuses what no host has", "[mock]") {
  HostInfo h;
  h.possible = h.present = CpuMap::full(4);
  h.online = CpuMap::full(4);
  h.present.reset(3);
  REQUIRE_THROWS_WITH(MockHypervisor(h), "mock host: online CPUs 3 are not present");
  MockHypervisor hv = MockHypervisor::from_fixture(
      "host cpus=2\ndomain 1 a vcpus=2\nvcpu 0 state=running time_ns=9223372036854775000\n");
  hv.advance(std::chrono::nanoseconds(800));
  REQUIRE_THROWS_AS(hv.advance(std::chrono::nanoseconds(8)), Error);  // the vcpu's time would overflow
  CHECK(hv.snapshot(DomainId{1}).vcpus[0].cpu_time.count() == limits::max_cpu_time_ns - 7);  // unchanged
  MockHypervisor idle = MockHypervisor::from_fixture("host cpus=2\ndomain 1 a vcpus=1\n");
  const auto room = std::chrono::nanoseconds(limits::max_cpu_time_ns) - MockHypervisor::epoch().time_since_epoch();
  idle.advance(room);  // the clock's last instant, representable
  CHECK(idle.now().time_since_epoch().count() == limits::max_cpu_time_ns);
  REQUIRE_THROWS_AS(idle.advance(std::chrono::nanoseconds(1)), Error);  // past system_clock's range
  CHECK(idle.snapshot(DomainId{1}).taken_at == idle.now());
  REQUIRE_THROWS_AS(hv.advance(std::chrono::nanoseconds(-1)), Error);
  REQUIRE_THROWS_AS(hv.set_vcpu(DomainId{1}, {1, VcpuState::blocked, std::chrono::nanoseconds(8), 0u, std::nullopt}), Error);
  CHECK(hv.snapshot(DomainId{1}).vcpus[1].state == VcpuState::offline);  // unchanged
  MockHypervisor none(0);  // a host of no CPUs: every operation works, nothing is UB
  DomainInfo a;
  a.id = DomainId{1};
  a.max_vcpus = 2;
  none.add_domain(a);
  CHECK(none.snapshot(DomainId{1}).hard.rows() == 2);
  CHECK(write_fixture(none.state()).find("host cpus=0") == 0);
}

TEST_CASE("a rollback that fails too is reported, not hidden", "[mock][matrix-pin][rollback]") {
  MockHypervisor hv = host16(4);
  const DomainId g{7};
  hv.fail_call(1 + 8 + 3, ErrorCode::busy);      // vcpu 2's set fails
  hv.fail_call(1 + 8 + 3 + 1, ErrorCode::busy);  // then restoring vcpu 0 fails
  AffinityMatrix one_each(4, 16);
  for (unsigned v = 0; v < 4; ++v) one_each.set(v, v);
  try {
    (void)hv.pin_matrix(g, {.hard = one_each});
    FAIL("no PinError");
  } catch (const PinError& e) {
    CHECK(e.code() == ErrorCode::internal);
    CHECK(!e.rolled_back());
    CHECK(e.failed_vcpu() == 2);
    CHECK_THAT(e.what(), Catch::Contains("restoring vcpus 0 failed"));
  }
}

TEST_CASE("a domain vanishing mid-listing: a clean error or a consistent snapshot", "[mock][vanish]") {
  SECTION("snapshot_all leaves it out, never torn") {
    MockHypervisor hv = MockHypervisor::demo();
    // Calls: 3 host, 1 list, Domain-0 8, xperf1 2, xperf2 from call 15 on.
    hv.vanish_after(xperf2, 15);
    const HostSnapshot all = hv.snapshot_all();
    REQUIRE(all.domains.size() == 2);
    CHECK(all.domains[0].domain.name == "Domain-0");
    CHECK(all.domains[1].domain.name == "xperf1");
    for (const auto& d : all.domains) {
      CHECK(d.hard.rows() == d.domain.max_vcpus);
      CHECK(d.vcpus.size() == d.domain.max_vcpus);
    }
  }
  SECTION("snapshot of the vanished domain is not_found") {
    MockHypervisor hv = MockHypervisor::demo();
    hv.vanish_after(xperf2, 3);
    try {
      (void)hv.snapshot(xperf2);
      FAIL("no error");
    } catch (const Error& e) {
      CHECK(e.code() == ErrorCode::not_found);
      CHECK(std::string(e.what()) == "domain 3 (xperf2): no such domain");
    }
  }
  SECTION("a pin racing a destroy") {
    MockHypervisor hv = MockHypervisor::demo();
    hv.vanish_after(xperf2, 1);
    REQUIRE_THROWS_WITH(hv.pin_vcpu(xperf2, 0, {.hard = CpuMap(4, {1})}), "domain 3: no such domain");
  }
}

TEST_CASE("injected failures surface with their code", "[mock][faults]") {
  MockHypervisor hv = MockHypervisor::demo();
  hv.fail_call(2, ErrorCode::permission_denied);
  try {
    (void)hv.host_info();
    FAIL("no error");
  } catch (const Error& e) {
    CHECK(e.code() == ErrorCode::permission_denied);
    CHECK(std::string(e.what()) == "mock: injected failure of call 2 (cputopoinfo)");
  }
  CHECK(hv.host_info().cpu_universe() == 4);  // one-shot
}

TEST_CASE("a domain with no vcpus", "[mock][regression]") {
  // xl tried to allocate ~4 billion entries for such a domain (max_vcpu_id "invalid").
  MockHypervisor hv = MockHypervisor::from_fixture("host cpus=8\ndomain 5 empty vcpus=0\n");
  const DomainSnapshot s = hv.snapshot(DomainId{5});
  CHECK(s.vcpus.empty());
  CHECK(s.hard.rows() == 0);
  CHECK(s.hard.cols() == 8);
  CHECK(hv.last_call_count() == 1);
  CHECK(hv.snapshot_all().domains.size() == 1);
  const MatrixPinResult r = hv.pin_matrix(DomainId{5}, {.hard = AffinityMatrix(0, 8)});
  CHECK(r.hard.rows() == 0);
}

TEST_CASE("hosts with more than 8 CPUs print the right maps", "[mock][regression]") {
  // xl vcpu-list printed wrong maps on hosts with more than 8 CPUs.
  MockHypervisor hv = host16();
  const HostInfo host = hv.host_info();
  (void)hv.pin_vcpu(DomainId{7}, 2, {.hard = host.parse("7-9,12")});
  CHECK(hv.snapshot(DomainId{7}).hard.row(2).to_string() == "7-9,12");
}

TEST_CASE("a runnable vcpu is not offline, and every vcpu is reported", "[mock][regression]") {
  // libvirt's Xen driver reported runnable vcpus as OFFLINE and the requested count.
  auto hv = MockHypervisor::from_fixture(
      "host cpus=4\ndomain 2 g vcpus=3\nvcpu 0 state=runnable cpu=1\nvcpu 1 state=running cpu=2\n");
  const DomainSnapshot s = hv.snapshot(DomainId{2});
  REQUIRE(s.vcpus.size() == 3);
  CHECK(s.vcpus[0].state == VcpuState::runnable);
  CHECK(s.vcpus[0].cpu == 1u);
  CHECK(s.vcpus[2].state == VcpuState::offline);
  CHECK(!s.vcpus[2].cpu);
  CHECK(s.domain.online_vcpus == 2);
  CHECK(s.domain.max_vcpus == 3);
}

TEST_CASE("the virtual clock advances running vcpus only", "[mock][clock]") {
  MockHypervisor hv = MockHypervisor::demo();
  hv.advance(2500ms);
  const DomainSnapshot dom0 = hv.snapshot(control_domain);
  CHECK(dom0.vcpus[2].cpu_time == 319500000000ns + 2500ms);  // running
  CHECK(dom0.vcpus[0].cpu_time == 636800000000ns);           // blocked
  CHECK(dom0.domain.cpu_time == (636800000000ns + 396800000000ns + 319500000000ns + 369400000000ns + 2500ms));
  CHECK(dom0.taken_at == MockHypervisor::epoch() + 2500ms);
}

TEST_CASE("16384 CPUs and 4096 vcpus", "[mock][large]") {
  auto hv = MockHypervisor::from_fixture("host cpus=16384 online=0-16000\nnode 0 0-8191\nnode 1 8192-16383\n");
  DomainInfo big;
  big.id = DomainId{1};
  big.name = "big";
  big.max_vcpus = 4096;
  hv.add_domain(big);
  const HostInfo host = hv.host_info();
  AffinityMatrix hard(4096, 16384);
  for (std::size_t v = 0; v < 4096; ++v) hard.set(v, v * 3);
  const MatrixPinResult r = hv.pin_matrix(DomainId{1}, {.hard = hard});
  CHECK(r.hard.row(4095) == host.parse("12285"));
  const DomainSnapshot s = hv.snapshot(DomainId{1});
  CHECK(s.hard == hard);
  CHECK(hv.last_call_count() == 1 + 2 * 4096);
  CHECK(s.effective.column(16002).empty());  // offline
}

TEST_CASE("fixtures: errors name the line", "[mock][fixture]") {
  auto error_of = [](std::string_view text) {
    try {
      (void)MockHypervisor::from_fixture(text);
    } catch (const Error& e) {
      CHECK(e.code() == ErrorCode::invalid_argument);
      return std::string(e.what());
    }
    return std::string("no error");
  };
  CHECK(error_of("host cpus=4\nfrob 1\n") == "fixture line 2: unknown statement 'frob' (host, node, pool, domain, problem or vcpu)");
  CHECK(error_of("host cpus=4 colour=red\n") == "fixture line 1: unknown key 'colour' for 'host'");
  CHECK(error_of("host cpus=x\n") == "fixture line 1: cpus 'x' is not a number");
  CHECK(error_of("host cpus=4\ndomain 1 a vcpus=2\nvcpu 2\n") == "fixture line 3: vcpu 2 is beyond the domain's 2 vcpus");
  CHECK(error_of("host cpus=4\nvcpu 0\n") == "fixture line 2: 'vcpu' must follow a 'domain'");
  CHECK(error_of("host cpus=4\ndomain 1 a\nvcpu 0 hard=0-9\n") ==
        "fixture line 3: cpulist \"0-9\": column 3: CPU number beyond the universe");
  CHECK(error_of("host cpus=4\ndomain 1 a\ndomain 1 b\n") == "fixture line 3: domain 1 is listed twice");
  CHECK(error_of("host cpus=4\ndomain 1 a\nvcpu 0 time=1.2345678901\n") ==
        "fixture line 3: time '1.2345678901' needs 1 to 9 decimals");
  CHECK(error_of("host cpus=4 online=0-5\n") == "fixture line 1: cpulist \"0-5\": column 3: CPU number beyond the universe");
  REQUIRE_THROWS_WITH(MockHypervisor::from_fixture_file("/nonexistent/fixture"),
                      "fixture /nonexistent/fixture: cannot open: No such file or directory");
}

TEST_CASE("snapshots into caller storage: the same data, no new allocation, cleared on error", "[mock][into]") {
  MockHypervisor hv = host16(64);
  const DomainSnapshot fresh = hv.snapshot(DomainId{7});
  DomainSnapshot into;
  hv.snapshot(DomainId{7}, SnapshotScope::full, into);
  CHECK(hv.last_call_count() == 1 + 2 * 64);
  CHECK(into.domain == fresh.domain);
  CHECK(into.vcpus == fresh.vcpus);
  CHECK((into.hard == fresh.hard && into.soft == fresh.soft && into.effective == fresh.effective));
  CHECK(into.taken_at == fresh.taken_at);

  // Refilled: same storage, new data.
  const auto* hard = into.hard.words().data();
  const auto* effective = into.effective.words().data();
  const auto* vcpus = into.vcpus.data();
  hv.set_affinity(DomainId{7}, 5, CpuMap(16, {9}), CpuMap(16, {9}));
  hv.snapshot(DomainId{7}, SnapshotScope::full, into);
  CHECK(into.hard.row(5) == CpuMap(16, {9}));
  CHECK(into.effective.row(5) == CpuMap(16, {9}));
  CHECK((into.hard.words().data() == hard && into.effective.words().data() == effective && into.vcpus.data() == vcpus));

  // Metrics only into a full snapshot: the matrices become 0x0.
  hv.snapshot(DomainId{7}, SnapshotScope::metrics_only, into);
  CHECK(into.scope == SnapshotScope::metrics_only);
  CHECK((into.hard.rows() == 0 && into.soft.rows() == 0 && into.effective.rows() == 0));
  CHECK(into.vcpus == fresh.vcpus);

  // A failure part-way leaves it cleared, never half old, half new.
  hv.snapshot(DomainId{7}, SnapshotScope::full, into);
  hv.fail_call(1 + 64 + 3, ErrorCode::busy);  // the 3rd getvcpuaffinity
  CHECK_THROWS_AS(hv.snapshot(DomainId{7}, SnapshotScope::full, into), Error);
  CHECK(into.vcpus.empty());
  CHECK(into.domain == DomainInfo{});
  CHECK((into.hard.rows() == 0 && into.effective.rows() == 0));
  REQUIRE_THROWS_WITH(hv.snapshot(DomainId{99}, SnapshotScope::full, into), "domain 99: no such domain");
  CHECK(into.vcpus.empty());
}

TEST_CASE("snapshot_all into caller storage: equal to a fresh one, slots reused, vanished domains dropped",
          "[mock][into]") {
  MockHypervisor hv = MockHypervisor::demo();
  HostSnapshot into;
  hv.snapshot_all(SnapshotScope::full, into);
  const HostSnapshot fresh = hv.snapshot_all();
  REQUIRE(into.domains.size() == 3);
  for (std::size_t i = 0; i < 3; ++i) {
    CHECK(into.domains[i].domain == fresh.domains[i].domain);
    CHECK(into.domains[i].vcpus == fresh.domains[i].vcpus);
    CHECK(into.domains[i].effective == fresh.domains[i].effective);
  }
  CHECK(into.host.online == fresh.host.online);

  // xperf1 (the 2nd domain) vanishes while read: xperf2 takes its slot, the last is dropped.
  const auto* first = into.domains[0].hard.words().data();
  hv.vanish_after(DomainId{1}, 3 + 1 + 8 + 1);  // host, list, Domain-0, xperf1's getvcpuinfo
  hv.snapshot_all(SnapshotScope::full, into);
  REQUIRE(into.domains.size() == 2);
  CHECK(into.domains[0].hard.words().data() == first);
  CHECK(into.domains[1].domain.name == "xperf2");
  CHECK(into.domains[1].vcpus == fresh.domains[2].vcpus);
  CHECK(into.domains[1].hard == fresh.domains[2].hard);

  hv.fail_call(2, ErrorCode::permission_denied);
  CHECK_THROWS_AS(hv.snapshot_all(SnapshotScope::full, into), Error);
  CHECK(into.domains.empty());
  CHECK(into.host.cpu_universe() == 0);
}

// ---- Xen's cpupools, node affinity and online vcpus ----

namespace {

/// 8 CPUs (7 offline), 2 nodes with memory, Pool-0 on node 0, pool1 on node 1; web in pool1.
constexpr std::string_view pool_host_text =
    "host cpus=8 online=0-6 threads_per_core=2 limit=cpupool vcpu_set=yes node_affinity=yes\n"
    "node 0 0-3 mem=8589934592 free=4294967296\n"
    "node 1 4-7 mem=8589934592 free=0\n"
    "pool 0 Pool-0 cpus=0-3\n"
    "pool 1 pool1 sched=credit cpus=4-7\n"
    "domain 0 Domain-0 vcpus=2\n"
    "vcpu 0 state=running cpu=0\n"
    "vcpu 1 state=blocked cpu=1\n"
    "domain 5 web vcpus=3 pool=1 nodes=1\n"
    "vcpu 0 state=running cpu=4 hard=2-5 soft=5\n"
    "vcpu 1 state=blocked cpu=6\n";
constexpr DomainId web{5};

template <class F>
Error error_from(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e;
  }
  FAIL("no error");
  return Error(ErrorCode::internal, "");
}

}  // namespace

TEST_CASE("cpupools: host_info reads each pool (xc_cpupool_getinfo iterated), domains counted", "[mock][pools][calls]") {
  MockHypervisor hv = MockHypervisor::from_fixture(pool_host_text);
  const HostInfo host = hv.host_info();
  CHECK(hv.last_call_count() == 3 + 2 + 1);  // physinfo, cputopoinfo, numainfo, 2 pools + the last call
  REQUIRE(host.pools.size() == 2);
  CHECK(host.pools[0] == CpuPool{0, "Pool-0", "credit2", CpuMap(8, {0, 1, 2, 3}), 1});
  CHECK(host.pools[1] == CpuPool{1, "pool1", "credit", CpuMap(8, {4, 5, 6, 7}), 1});
  CHECK(host.node_memory == std::vector<NodeMemory>{{8589934592ULL, 4294967296ULL}, {8589934592ULL, 0}});
  CHECK(host.siblings(5) == CpuMap(8, {4, 5}));  // cpu_core derived: 2 threads a core
  // A snapshot: getdomaininfo, V getvcpuinfo, V getvcpuaffinity, 1 getnodeaffinity.
  (void)hv.snapshot(web);
  CHECK(hv.last_call_count() == 1 + 3 + 3 + 1);
  (void)hv.snapshot(web, SnapshotScope::metrics_only);
  CHECK(hv.last_call_count() == 1 + 3);
  (void)hv.snapshot_all();
  CHECK(hv.last_call_count() == 6 + 1 + (2 * 2 + 1) + (2 * 3 + 1));
  // A host without pools: 3 calls, as before.
  MockHypervisor plain = host16();
  (void)plain.host_info();
  CHECK(plain.last_call_count() == 3);
  CHECK(plain.host_info().pools.empty());
}

TEST_CASE("cpupools: a domain's limit is its pool, its effective rows lie within it", "[mock][pools]") {
  MockHypervisor hv = MockHypervisor::from_fixture(pool_host_text);
  const DomainSnapshot s = hv.snapshot(web);
  CHECK(s.domain.pool == 1u);
  for (unsigned v = 0; v < 3; ++v) {
    CHECK(s.limit.row(v) == CpuMap(8, {4, 5, 6, 7}));
    CHECK(s.effective.row(v).is_subset_of(CpuMap(8, {4, 5, 6})));  // the pool's online CPUs
  }
  CHECK(s.hard.row(0) == CpuMap(8, {2, 3, 4, 5}));  // stored as given, CPUs outside the pool too
  CHECK(s.effective.row(0) == CpuMap(8, {5}));      // 2-5 ∩ pool ∩ online, ∩ soft 5
  CHECK(s.effective.row(1) == CpuMap(8, {4, 5, 6}));
  CHECK(hv.snapshot(control_domain).limit.row(0) == CpuMap(8, {0, 1, 2, 3}));
  CHECK(hv.snapshot(control_domain).domain.pool == 0u);
}

TEST_CASE("cpupools: pins are checked against the pool; Xen's write-back is hard ∩ pool ∩ online", "[mock][pools][pin]") {
  MockHypervisor hv = MockHypervisor::from_fixture(pool_host_text);
  const HostSnapshot before = hv.state();
  // No CPU of the pool: refused before any setvcpuaffinity (only getdomaininfo is made).
  std::size_t calls = hv.total_calls();
  Error e = error_from([&] { (void)hv.pin_vcpu(web, 1, {.hard = CpuMap(8, {0, 1, 2, 3})}); });
  CHECK(e.code() == ErrorCode::invalid_argument);
  CHECK(std::string(e.what()) ==
        "domain 5 (web): vcpu 1: hard affinity 0-3 holds no online CPU of the vcpu's cpupool 1 (pool1) 4-7");
  CHECK(hv.total_calls() - calls == 1);
  // The pool's CPUs but only offline ones: refused as well.
  e = error_from([&] { (void)hv.pin_vcpu(web, 1, {.hard = CpuMap(8, {3, 7})}); });
  CHECK(std::string(e.what()).find("cpupool 1 (pool1)") != std::string::npos);
  // A matrix or a sparse pin: the same check per row, nothing set.
  e = error_from([&] { (void)hv.pin_vcpus(web, {VcpuSet(3, {0, 2}), CpuMap(8, {1, 2})}); });
  CHECK(std::string(e.what()) ==
        "domain 5 (web): vcpu 0: hard affinity 1-2 holds no online CPU of the vcpu's cpupool 1 (pool1) 4-7");
  CHECK(hv.state() == before);

  // Partly outside the pool: accepted, stored as asked, the write-back within the pool.
  const PinResult r = hv.pin_vcpu(web, 1, {.hard = CpuMap(8, {2, 3, 4, 5, 7}), .soft = CpuMap(8, {3, 4})});
  CHECK(r.hard == CpuMap(8, {4, 5}));  // ∩ pool 4-7 ∩ online 0-6
  CHECK(r.soft == CpuMap(8, {4}));
  const DomainSnapshot s = hv.snapshot(web);
  CHECK(s.hard.row(1) == CpuMap(8, {2, 3, 4, 5, 7}));
  CHECK(s.effective.row(1) == CpuMap(8, {4}));
  // A matrix pin reports rows left alone the same way: hard ∩ pool ∩ online.
  MatrixPin plan{s.hard, std::nullopt};
  plan.hard->set_row(0, CpuMap(8, {0, 6}));
  const MatrixPinResult m = hv.pin_matrix(web, plan);
  CHECK(m.hard.row(0) == CpuMap(8, {6}));
  CHECK(m.hard.row(2) == CpuMap(8, {4, 5, 6}));  // "all", left alone
  // The mock's setvcpuaffinity refuses a map with no CPU of the pool itself (Xen's EINVAL),
  // as a restore, which skips the front's checks, shows.
  MatrixPin back{s.hard, std::nullopt, false, true};
  back.hard->set_row(2, CpuMap(8, {0, 1}));
  try {
    (void)hv.pin_matrix(web, back);
    FAIL("no PinError");
  } catch (const PinError& p) {
    CHECK(p.code() == ErrorCode::invalid_argument);
    CHECK(p.failed_vcpu() == 2);
    CHECK_THAT(p.what(), Catch::Contains("hard affinity 0-1 holds no online CPU of its cpupool 1 (pool1)"));
  }
}

TEST_CASE("cpupools: the mock's setters move domains and CPUs as Xen does, counts kept", "[mock][pools]") {
  MockHypervisor hv = MockHypervisor::from_fixture(pool_host_text);
  const std::size_t calls = hv.total_calls();
  hv.set_affinity(web, 1, CpuMap(8, {6}), CpuMap(8, {6}));
  SECTION("set_domain_pool: affinity reset to every CPU, vcpus moved into the pool") {
    hv.set_domain_pool(web, 0);
    CHECK(hv.total_calls() == calls);  // a setter is no backend call
    const HostSnapshot st = hv.state();
    const DomainSnapshot& w = st.domains[1];
    CHECK(w.domain.pool == 0u);
    CHECK(w.hard == AffinityMatrix::full(3, 8));
    CHECK(w.soft == AffinityMatrix::full(3, 8));
    CHECK(w.limit.row(0) == CpuMap(8, {0, 1, 2, 3}));
    CHECK(w.vcpus[0].cpu == 0u);  // online vcpus on CPUs of the new pool
    CHECK(w.vcpus[1].cpu == 1u);
    CHECK_FALSE(w.vcpus[2].cpu);  // offline stays without a CPU
    CHECK(st.host.pools[0].domains == 2);
    CHECK(st.host.pools[1].domains == 0);
    CHECK(hv.host_info().pools[0].domains == 2);  // what the backend reports too
    CHECK(hv.snapshot(web).effective.row(0) == CpuMap(8, {0, 1, 2, 3}));
    hv.set_domain_pool(web, 0);  // already there: nothing changes
    CHECK(hv.state().domains[1].vcpus == w.vcpus);
    // Now pool1 has no domain: it may lose every CPU, and then takes no domain.
    hv.set_pool_cpus(1, CpuMap(8));
    REQUIRE_THROWS_WITH(hv.set_domain_pool(web, 1),
                        "mock: domain 5 (web): cpupool 1 (pool1) has no CPUs: Xen moves no domain there");
  }
  SECTION("set_pool_cpus: CPUs of no other pool, present; vcpus follow") {
    hv.set_pool_cpus(0, CpuMap(8, {0, 1}));
    hv.set_pool_cpus(1, CpuMap(16, {2, 3, 4}));  // another universe: resized to the host's
    CHECK(hv.total_calls() == calls);
    const HostInfo host = hv.host_info();
    CHECK(host.pools[0].cpus == CpuMap(8, {0, 1}));
    CHECK(host.pools[1].cpus == CpuMap(8, {2, 3, 4}));
    const DomainSnapshot w = hv.snapshot(web);
    CHECK(w.limit.row(1) == CpuMap(8, {2, 3, 4}));
    CHECK(w.vcpus[1].cpu == 3u);  // it was on CPU 6, which pool1 lost
    CHECK(w.vcpus[0].cpu == 4u);  // CPU 4 it keeps
    CHECK(w.effective.row(1).empty());  // its hard map (6) holds none of the pool's CPUs now
  }
  SECTION("refused, nothing changed") {
    const HostSnapshot before = hv.state();
    REQUIRE_THROWS_WITH(hv.set_domain_pool(web, 9), "mock: cpupool 9 is not a pool of the host");
    REQUIRE_THROWS_WITH(hv.set_domain_pool(DomainId{99}, 0), "domain 99: no such domain");
    REQUIRE_THROWS_WITH(hv.set_pool_cpus(9, CpuMap(8)), "mock: cpupool 9 is not a pool of the host");
    REQUIRE_THROWS_WITH(hv.set_pool_cpus(1, CpuMap(8, {3, 4})), "mock: cpupool 1 (pool1): CPUs 3 are in cpupool 0 (Pool-0)");
    REQUIRE_THROWS_WITH(hv.set_pool_cpus(1, CpuMap(9, {8})), "mock: cpupool 1 (pool1): CPU 8 is beyond the host's 8 CPUs");
    REQUIRE_THROWS_WITH(hv.set_pool_cpus(1, CpuMap(8)),
                        "mock: cpupool 1 (pool1) has 1 domain(s): Xen keeps at least one CPU in it");
    CHECK(hv.state() == before);
    CHECK(hv.total_calls() == calls);
    auto holes = MockHypervisor::from_fixture("host cpus=4 present=0-2\npool 0 Pool-0 cpus=0\n");
    REQUIRE_THROWS_WITH(holes.set_pool_cpus(0, CpuMap(4, {2, 3})), "mock: cpupool 0 (Pool-0): CPUs 3 are not present");
  }
}

TEST_CASE("cpupools: domains added, removed and vanishing keep CpuPool::domains", "[mock][pools]") {
  MockHypervisor hv = MockHypervisor::from_fixture(pool_host_text);
  DomainInfo d;
  d.id = DomainId{9};
  d.name = "new";
  d.max_vcpus = 1;
  hv.add_domain(d);  // no pool named: Pool-0, as Xen creates domains
  CHECK(hv.state().domains.back().domain.pool == 0u);
  CHECK(hv.host_info().pools[0].domains == 2);
  d.id = DomainId{10};
  d.pool = 1;
  hv.add_domain(d);
  CHECK(hv.host_info().pools[1].domains == 2);
  d.id = DomainId{11};
  d.pool = 3;
  REQUIRE_THROWS_WITH(hv.add_domain(d), "mock: domain 11 (new): cpupool 3 is not a pool of the host");
  hv.remove_domain(DomainId{10});
  CHECK(hv.host_info().pools[1].domains == 1);
  hv.vanish_after(web, 0);
  (void)hv.list_domains();
  CHECK(hv.state().host.pools[1].domains == 0);
  // A host without pools takes no domain in one.
  MockHypervisor plain(4);
  REQUIRE_THROWS_WITH(plain.add_domain(d), "mock: domain 11 (new): cpupool 3 is not a pool of the host");
  d.pool.reset();
  plain.add_domain(d);
  CHECK_FALSE(plain.state().domains[0].domain.pool);
  // A host given as a HostInfo is checked like a fixture's.
  HostInfo h = plain.host_info();
  h.pools = {CpuPool{1, "p", "credit2", CpuMap(4), 0}};
  REQUIRE_THROWS_WITH(MockHypervisor(h), "mock host: a host with cpupools needs cpupool 0 (Xen's Pool-0 always exists)");
  h.pools = {CpuPool{0, "p", "credit2", CpuMap(4, {0, 1}), 7}, CpuPool{2, "q", "credit2", CpuMap(4, {1}), 0}};
  REQUIRE_THROWS_WITH(MockHypervisor(h), "mock host: cpupool 2: CPUs 1 are in another pool");
  h.pools[1].cpus = CpuMap(4, {2});
  h.pools[1].scheduler = "fifo";
  REQUIRE_THROWS_WITH(MockHypervisor(h),
                      "mock host: cpupool 2: unknown scheduler 'fifo' (credit, credit2, rtds, arinc653, null or 'scheduler N')");
  h.pools[1].scheduler = "scheduler 12";
  CHECK(MockHypervisor(h).host_info().pools[0].domains == 0);  // counted from the mock's domains
  h.node_memory = {NodeMemory{10, 11}};
  REQUIRE_THROWS_WITH(MockHypervisor(h), "mock host: node 0 has 11 bytes free of 10");
}

TEST_CASE("node affinity: in full snapshots where the host reports it, set by the mock", "[mock][numa]") {
  MockHypervisor hv = MockHypervisor::from_fixture(pool_host_text);
  CHECK(hv.snapshot(web).node_affinity == NodeSet(2, {1}));
  CHECK(hv.snapshot(control_domain).node_affinity == NodeSet::full(2));  // the default: every node
  CHECK_FALSE(hv.snapshot(web, SnapshotScope::metrics_only).node_affinity);
  DomainSnapshot into = hv.snapshot(web);
  hv.snapshot(web, SnapshotScope::metrics_only, into);
  CHECK_FALSE(into.node_affinity);  // not left over from the full one
  hv.set_node_affinity(control_domain, NodeSet(2, {0}));
  CHECK(hv.snapshot(control_domain).node_affinity == NodeSet(2, {0}));
  CHECK(hv.snapshot_all().domains[0].node_affinity == NodeSet(2, {0}));
  hv.set_node_affinity(control_domain, NodeSet(5, {1}));  // another universe: resized
  CHECK(hv.state().domains[0].node_affinity == NodeSet(2, {1}));
  REQUIRE_THROWS_WITH(hv.set_node_affinity(control_domain, NodeSet(3, {2})),
                      "mock: domain 0 (Domain-0): node 2 is beyond the host's 2 NUMA nodes");
  REQUIRE_THROWS_WITH(hv.set_node_affinity(control_domain, NodeSet(2)),
                      "mock: domain 0 (Domain-0): a node affinity needs a node");
  // A vanishing domain during its node-affinity read is left out whole.
  hv.vanish_after(web, 3 + 2 + 1 + 1 + 5 + 6);  // host 6 calls, list 1, Domain-0 5, web's 6 vcpu reads
  const HostSnapshot all = hv.snapshot_all();
  REQUIRE(all.domains.size() == 1);
  // A host without node affinity reports none and takes none.
  MockHypervisor plain = host16();
  CHECK_FALSE(plain.snapshot(DomainId{7}).node_affinity);
  CHECK(plain.last_call_count() == 1 + 2 * 4);
  REQUIRE_THROWS_WITH(plain.set_node_affinity(DomainId{7}, NodeSet(2, {0})),
                      "mock: this host has no node affinity (HostInfo::caps.node_affinity)");
}

TEST_CASE("set_online_vcpus: the mock's guest acts at once", "[mock][online]") {
  MockHypervisor hv = MockHypervisor::from_fixture(pool_host_text);
  hv.set_online_vcpus(web, VcpuSet(3, {0, 2}));
  CHECK(hv.last_call_count() == 2);  // getdomaininfo, the xenstore write
  DomainSnapshot s = hv.snapshot(web);
  CHECK(s.domain.online_vcpus == 2);
  CHECK(s.vcpus[0].state == VcpuState::running);  // online already: as it was
  CHECK(s.vcpus[0].cpu == 4u);
  CHECK(s.vcpus[1].state == VcpuState::offline);
  CHECK_FALSE(s.vcpus[1].cpu);
  CHECK(s.vcpus[2].state == VcpuState::blocked);
  CHECK(s.vcpus[2].cpu == 4u);  // the first CPU of its effective row ("all" ∩ pool ∩ online)
  CHECK(hv.list_domains()[1].online_vcpus == 2);
  hv.set_online_vcpus(web, VcpuSet::full(3));
  CHECK(hv.snapshot(web).domain.online_vcpus == 3);
  hv.set_online_vcpus(web, VcpuSet(1, {0}));  // a narrower set: the others offline
  CHECK(hv.snapshot(web).domain.online_vcpus == 1);

  const HostSnapshot before = hv.state();
  Error e = error_from([&] { hv.set_online_vcpus(web, VcpuSet(3)); });
  CHECK(e.code() == ErrorCode::invalid_argument);
  CHECK(std::string(e.what()) == "domain 5 (web): at least one vcpu must stay online (asked for none)");
  e = error_from([&] { hv.set_online_vcpus(web, VcpuSet(4, {0, 3})); });
  CHECK(std::string(e.what()) == "domain 5 (web): vcpus 0,3 asked online, but it has 3 vcpus (maxvcpus)");
  e = error_from([&] { hv.set_online_vcpus(DomainId{99}, VcpuSet(1, {0})); });
  CHECK(e.code() == ErrorCode::not_found);
  hv.fail_call(2, ErrorCode::permission_denied);  // the xenstore write
  e = error_from([&] { hv.set_online_vcpus(web, VcpuSet(3, {1})); });
  CHECK(e.code() == ErrorCode::permission_denied);
  CHECK(hv.state() == before);  // nothing changed by any of them
  // The primitive itself refuses what the front would.
  const HostInfo host = hv.host_info();
  const DomainInfo info = hv.list_domains()[1];
  CHECK(error_from([&] { hv.set_online(host, info, VcpuSet(3)); }).code() == ErrorCode::invalid_argument);
  CHECK(hv.state() == before);

  // A host that cannot (no vcpu_set=yes): unsupported, before any write.
  MockHypervisor plain = host16();
  e = error_from([&] { plain.set_online_vcpus(DomainId{7}, VcpuSet(4, {0})); });
  CHECK(e.code() == ErrorCode::unsupported);
  CHECK(plain.last_call_count() == 1);
}

TEST_CASE("a Xen host's fixture round-trips through the mock", "[mock][fixture][pools]") {
  const HostSnapshot described = read_fixture(pool_host_text);
  MockHypervisor hv = MockHypervisor::from_fixture(pool_host_text);
  CHECK(write_fixture(hv.state()) == write_fixture(described));
  // And after changes, the written state reads back as the mock's state.
  hv.set_node_affinity(web, NodeSet(2, {0}));
  hv.set_online_vcpus(web, VcpuSet(3, {1, 2}));
  (void)hv.pin_vcpu(web, 2, {.hard = CpuMap(8, {1, 6})});
  hv.set_domain_pool(control_domain, 1);
  const HostSnapshot state = hv.state();
  HostSnapshot back = MockHypervisor::from_fixture(write_fixture(state)).state();
  CHECK(back == state);
}
