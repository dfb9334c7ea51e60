// tests/conformance/hypervisor_test.cpp — the Hypervisor contract (vcpumap/hypervisor.hpp),
// one set of cases for every backend. Each TEMPLATE_TEST_CASE runs once per harness of
// support.hpp (CONFORMANCE_BACKENDS) and its name ends with the harness: "... - Mock",
// "... - XenMulticall". The cases use the concept's operations only (no default arguments,
// no backend-specific call), check results against the true state the harness reads out
// of band, and leave exact call counts, errno mapping and other backend details to the
// backend's own tests (mock_test.cpp, xen_fake/xen_shim_test.cpp).
//
// Tags: [faults] cases need Harness::can_inject_faults, [vanish] cases Harness::can_vanish,
// [pools] cases Harness::holds_pools (a host with cpupools: support.hpp's pool_host), [online]
// cases Harness::can_set_online_vcpus; they are skipped with a warning for a backend that
// cannot.
//
// What a backend has (HostInfo::caps) changes what some pins do: without soft affinity
// (Linux) a pin with a soft map is refused (unsupported) and soft rows hold every CPU; with
// vcpu limits (Linux's cpusets) the hypervisor keeps a hard row within the vcpu's limit (a
// pin naming CPUs outside it beside some inside stores the intersection, and so does a
// rollback putting back a row read wider than the limit: support.hpp's with_row and
// restored). Those cases branch on the capabilities the backend reports (checked against the
// harness's in the host_info case), with the expected outcome of each branch spelled out; no
// backend is skipped for them.
#include "support.hpp"

#include <catch2/catch.hpp>

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

using namespace conformance;
using vcpumap::MatrixPin;
using vcpumap::MatrixPinResult;
using vcpumap::PinResult;
using vcpumap::PinPlan;
using vcpumap::VcpuPin;
using vcpumap::VcpusPin;

namespace {

constexpr DomainId dom0{0}, xperf2{3}, web{7}, building{12}, missing{42};

/// A cpulist of the standard host ("5-8", "node:1", "all").
CpuMap cpus(std::string_view list) {
  static const HostSnapshot host = standard_host();
  return host.host.parse(list);
}

bool contains(std::string_view text, std::string_view part) { return text.find(part) != std::string_view::npos; }

/// A full snapshot as a snapshot of `scope` reports it (metrics only: 0x0 matrices).
DomainSnapshot as_scope(DomainSnapshot s, SnapshotScope scope) {
  if (scope == SnapshotScope::metrics_only) {
    s.hard.reshape(0, 0);
    s.soft.reshape(0, 0);
    s.effective.reshape(0, 0);
    s.limit.reshape(0, 0);
  }
  s.scope = scope;
  return s;
}

const char* name_of(SnapshotScope scope) { return scope == SnapshotScope::full ? "full" : "metrics_only"; }

/// Every vcpu of xperf2 moved: hard and soft row v = CPU 5 + v (each row differs from the
/// standard host's). Without soft affinity, pass soft = caps.soft_affinity: hard rows only.
MatrixPin xperf2_to_5_8(bool soft = true) {
  MatrixPin plan;
  plan.hard = AffinityMatrix(4, 9);
  if (soft) plan.soft = AffinityMatrix(4, 9);
  for (unsigned v = 0; v < 4; ++v) {
    plan.hard->set(v, 5 + v);
    if (soft) plan.soft->set(v, 5 + v);
  }
  return plan;
}

/// `before` with xperf2's rows replaced by a plan's.
HostSnapshot with_plan(HostSnapshot s, const MatrixPin& plan) {
  for (unsigned v = 0; v < 4; ++v)
    s = with_row(std::move(s), xperf2, v, plan.hard ? std::optional(plan.hard->row(v)) : std::nullopt,
                 plan.soft ? std::optional(plan.soft->row(v)) : std::nullopt);
  return s;
}

/// Checks that `pin` fails before any change (the state as `before`): with `code` and a
/// message holding `says`.
template <class H, class Pin>
void check_refused(H& h, const HostSnapshot& before, Pin&& pin, ErrorCode code, std::string_view says) {
  auto e = error_of(std::forward<Pin>(pin));
  REQUIRE(e);
  CHECK(e->code() == code);
  CHECK(contains(e->what(), says));
  CHECK(dump_domains(h.truth()) == dump_domains(before));
}

/// What a backend without soft affinity says of a pin with a soft map.
constexpr std::string_view no_soft = "no soft affinity";


}  // namespace

#define SKIP_UNLESS(capability)                                                           \
  if (!TestType::capability) {                                                            \
    WARN(TestType::name << " cannot " #capability ": case skipped for this backend");     \
    return;                                                                               \
  }

// ---- reading ----

TEMPLATE_TEST_CASE("host_info: universe, present and online CPUs, topology, NUMA nodes", "[conformance][host]",
                   CONFORMANCE_BACKENDS) {
  TestType h{standard_host()};
  const HostInfo want = standard_host().host;
  const HostInfo got = h.hv().host_info();
  CHECK(h.hv().last_call_count() > 0);

  CHECK(got.cpu_universe() == 9);  // max CPU id + 1, not the 7 online CPUs
  CHECK(got.possible == want.possible);
  CHECK(got.present == cpus("0-3,5-8"));  // CPU 4 is a hole
  CHECK(got.online == cpus("0-2,5-8"));   // CPU 3 is present, offline
  CHECK(got.threads_per_core == 2);
  CHECK(got.cores_per_socket == 2);
  CHECK(got.sockets == 2);
  REQUIRE(got.numa_nodes.size() == 2);
  CHECK(got.numa_nodes[0] == cpus("0-3"));
  CHECK(got.numa_nodes[1] == cpus("5-8"));
  CHECK(got.parse("node:1") == cpus("5-8"));
  // What the backend says it has, which the other cases branch on, is what it has.
  CHECK(got.caps == h.truth().host.caps);
  REQUIRE(got.cpu_node.size() == 9);
  REQUIRE(got.cpu_socket.size() == 9);
  for (std::size_t cpu = 0; cpu < 9; ++cpu) {
    INFO("CPU " << cpu);
    CHECK(dump(got.cpu_node[cpu]) == dump(want.cpu_node[cpu]));
    if (!want.present.test(cpu) || want.online.test(cpu) || TestType::knows_socket_of_offline_cpus) {
      CHECK(dump(got.cpu_socket[cpu]) == dump(want.cpu_socket[cpu]));
    } else {
      // BACKEND DIFFERENCE (reported, not a weakened check): model.hpp says cpu_socket is
      // empty "for CPUs not present", but Xen's cputopoinfo gives a present, offline CPU
      // no core and no socket, so XenHypervisor reports none for CPU 3 where the mock
      // (and the description) has socket 0. Either model.hpp's promise or the Xen backend
      // must change; until then the Xen harness declares knows_socket_of_offline_cpus false.
      CHECK_FALSE(got.cpu_socket[cpu].has_value());
    }
  }
}

TEMPLATE_TEST_CASE("list_domains: every domain ascending by id, with names, flags, vcpu counts and times",
                   "[conformance][list]", CONFORMANCE_BACKENDS) {
  TestType h{standard_host()};
  const std::vector<DomainInfo> list = h.hv().list_domains();
  CHECK(h.hv().last_call_count() > 0);
  const HostSnapshot truth = h.truth();
  REQUIRE(list.size() == 4);
  REQUIRE(truth.domains.size() == 4);
  for (std::size_t i = 0; i < list.size(); ++i) {
    CHECK(dump(list[i]) == dump(truth.domains[i].domain));
    if (i > 0) CHECK(vcpumap::to_integer(list[i - 1].id) < vcpumap::to_integer(list[i].id));
  }
  CHECK(list[0].name == "Domain-0");
  CHECK(list[0].id == TestType::id_of(dom0));
  CHECK(list[1].name == "xperf2");
  CHECK(list[2].name == "web");
  CHECK(list[3].name == "building");
  CHECK(list[1].max_vcpus == 4);
  // vcpu 2 is offline; Linux's offline vcpu (an exiting thread) is still plugged in.
  CHECK(list[1].online_vcpus == (TestType::online_counts_exiting_vcpus ? 4u : 3u));
  CHECK(list[1].cpu_time == std::chrono::milliseconds(56'500));  // the vcpus' 20.0 + 18.2 + 0.5 + 17.8 s
  CHECK(list[2].flags == vcpumap::DomainFlags{false, false, true, false, false});
  // QEMU has at least one vcpu: "building" is a guest whose one vcpu is not plugged in yet.
  CHECK(list[3].max_vcpus == (TestType::holds_domains_without_vcpus ? 0u : 1u));
  CHECK(list[3].online_vcpus == 0);
}

TEMPLATE_TEST_CASE("snapshot: full holds every vcpu and max_vcpus x universe matrices; metrics_only 0x0 matrices",
                   "[conformance][snapshot]", CONFORMANCE_BACKENDS) {
  TestType h{standard_host()};
  const HostSnapshot truth = h.truth();
  for (const DomainSnapshot& want : truth.domains) {
    INFO(vcpumap::describe(want.domain));
    const DomainSnapshot full = h.hv().snapshot(want.domain.id, SnapshotScope::full);
    CHECK(h.hv().last_call_count() > 0);
    CHECK(full.scope == SnapshotScope::full);
    CHECK(full.vcpus.size() == want.domain.max_vcpus);
    for (const AffinityMatrix* m : {&full.hard, &full.soft, &full.effective}) {
      CHECK(m->rows() == want.domain.max_vcpus);
      CHECK(m->cols() == 9);
    }
    CHECK(dump(full) == dump(want));

    const DomainSnapshot metrics = h.hv().snapshot(want.domain.id, SnapshotScope::metrics_only);
    CHECK(metrics.scope == SnapshotScope::metrics_only);
    CHECK(dump(metrics.domain) == dump(want.domain));
    CHECK(dump(metrics.vcpus) == dump(full.vcpus));
    for (const AffinityMatrix* m : {&metrics.hard, &metrics.soft, &metrics.effective}) {
      CHECK(m->rows() == 0);
      CHECK(m->cols() == 0);
    }
  }
  // The states, times and CPUs of the description, as every backend must report them.
  const DomainSnapshot s = h.hv().snapshot(xperf2, SnapshotScope::full);
  const vcpumap::Capabilities caps = h.hv().host_info().caps;
  REQUIRE(s.vcpus.size() == 4);
  CHECK(s.vcpus[0].state == VcpuState::blocked);
  // Online, neither running nor blocked; Linux's state R is running or runnable alike.
  CHECK(s.vcpus[1].state == (TestType::tells_runnable_from_running ? VcpuState::runnable : VcpuState::running));
  CHECK(s.vcpus[1].cpu == 5u);
  CHECK(s.vcpus[2].state == VcpuState::offline);
  CHECK_FALSE(s.vcpus[2].cpu.has_value());  // an offline vcpu has no current CPU
  CHECK(s.vcpus[3].state == VcpuState::running);
  CHECK(s.vcpus[3].cpu_time == std::chrono::milliseconds(17'800));
  CHECK(s.hard.row(0) == cpus("0-2"));
  CHECK(s.soft.row(3) == (caps.soft_affinity ? cpus("node:1") : cpus("all")));  // no soft affinity: every CPU
  CHECK(s.hard.row(3) == cpus("all"));  // names the absent CPU 4: the map as stored
  // The limit: every CPU where nothing confines a vcpu, else the vcpu's (here the online CPUs).
  CHECK(s.limit.row(3) == (caps.vcpu_limit.empty() ? cpus("all") : cpus("0-2,5-8")));
}

TEMPLATE_TEST_CASE("snapshot: effective is hard ∩ soft ∩ online, or hard ∩ online when that is empty",
                   "[conformance][snapshot][effective]", CONFORMANCE_BACKENDS) {
  TestType h{standard_host()};
  const HostInfo host = h.hv().host_info();
  const CpuMap online = host.online;
  for (const DomainInfo& d : h.hv().list_domains()) {
    INFO(vcpumap::describe(d));
    const DomainSnapshot s = h.hv().snapshot(d.id, SnapshotScope::full);
    if (host.caps.vcpu_limit.empty()) CHECK(s.limit == AffinityMatrix::full(s.hard.rows(), 9));
    CHECK(s.effective == expected_effective(s.hard, s.soft, s.limit, online));
  }
  const DomainSnapshot x = h.hv().snapshot(xperf2, SnapshotScope::full);
  if (host.caps.soft_affinity) {
    CHECK(x.effective.row(0) == cpus("1"));    // 0-2 ∩ 1 ∩ online
    CHECK(x.effective.row(3) == cpus("5-8"));  // all ∩ node 1 ∩ online
  } else {
    CHECK(x.effective.row(0) == cpus("0-2"));      // no soft affinity: hard ∩ limit ∩ online
    CHECK(x.effective.row(3) == cpus("0-2,5-8"));  // all ∩ online
  }
  CHECK(x.effective.row(1) == cpus("5-8"));  // 5-8 ∩ 0-1 is empty: hard ∩ online
  CHECK(x.effective.row(2) == cpus("2"));    // 2-3 ∩ 3 ∩ online is empty (3 is offline): 2-3 ∩ online
  const DomainSnapshot w = h.hv().snapshot(web, SnapshotScope::full);
  CHECK(w.effective.row(0) == cpus("0-2,5-8"));  // "all" without the absent and the offline CPU
  CHECK(w.effective.row(2).empty());             // 3-4: no online CPU at all
}

TEMPLATE_TEST_CASE("snapshot into caller storage: equal to a fresh one, storage reused, cleared on error",
                   "[conformance][snapshot][into]", CONFORMANCE_BACKENDS) {
  TestType h{standard_host()};
  auto& hv = h.hv();
  const DomainSnapshot fresh = hv.snapshot(xperf2, SnapshotScope::full);
  DomainSnapshot into;
  hv.snapshot(xperf2, SnapshotScope::full, into);
  CHECK(hv.last_call_count() > 0);
  CHECK(dump(into) == dump(fresh));
  const auto* vcpus = into.vcpus.data();
  const auto* hard = into.hard.words().data();
  const auto* soft = into.soft.words().data();
  const auto* effective = into.effective.words().data();
  hv.snapshot(xperf2, SnapshotScope::full, into);
  CHECK(dump(into) == dump(fresh));
  CHECK(into.vcpus.data() == vcpus);  // the second call allocates nothing
  CHECK(into.hard.words().data() == hard);
  CHECK(into.soft.words().data() == soft);
  CHECK(into.effective.words().data() == effective);

  SECTION("metrics only into a full one: 0x0 matrices, the same vcpus") {
    hv.snapshot(xperf2, SnapshotScope::metrics_only, into);
    CHECK(dump(into) == dump(as_scope(fresh, SnapshotScope::metrics_only)));
  }
  SECTION("another domain into the same storage") {
    hv.snapshot(web, SnapshotScope::full, into);
    CHECK(dump(into) == dump(hv.snapshot(web, SnapshotScope::full)));
    hv.snapshot(building, SnapshotScope::full, into);
    CHECK(dump(into) == dump(hv.snapshot(building, SnapshotScope::full)));
  }
  SECTION("an error leaves it clear()ed, not half old") {
    auto e = error_of([&] { hv.snapshot(missing, SnapshotScope::full, into); });
    REQUIRE(e);
    CHECK(e->code() == ErrorCode::not_found);
    CHECK(dump(into) == dump(DomainSnapshot{}));
  }
}

TEMPLATE_TEST_CASE("snapshot into caller storage: a domain vanishing midway leaves it clear()ed",
                   "[conformance][snapshot][into][vanish]", CONFORMANCE_BACKENDS) {
  SKIP_UNLESS(can_vanish)
  TestType h{standard_host()};
  auto& hv = h.hv();
  DomainSnapshot into;
  hv.snapshot(xperf2, SnapshotScope::full, into);
  h.vanish_in_snapshot(xperf2, 2);
  auto e = error_of([&] { hv.snapshot(xperf2, SnapshotScope::full, into); });
  REQUIRE(e);
  CHECK(e->code() == ErrorCode::not_found);
  CHECK(contains(e->what(), "domain 3"));
  CHECK(dump(into) == dump(DomainSnapshot{}));
  CHECK_THROWS_AS(domain_of(h.truth(), xperf2), std::logic_error);  // it really is gone
}

TEMPLATE_TEST_CASE("snapshot_all: the host and every domain, equal to host_info and per-domain snapshots",
                   "[conformance][snapshot_all]", CONFORMANCE_BACKENDS) {
  for (const SnapshotScope scope : {SnapshotScope::full, SnapshotScope::metrics_only}) {
    DYNAMIC_SECTION("scope " << name_of(scope)) {
      TestType h{standard_host()};
      auto& hv = h.hv();
      const HostSnapshot all = hv.snapshot_all(scope);
      CHECK(hv.last_call_count() > 0);
      CHECK(dump(all.host) == dump(hv.host_info()));
      const std::vector<DomainInfo> list = hv.list_domains();
      REQUIRE(all.domains.size() == list.size());
      for (std::size_t i = 0; i < list.size(); ++i) {
        INFO(vcpumap::describe(list[i]));
        CHECK(all.domains[i].domain.id == list[i].id);
        CHECK(dump(all.domains[i]) == dump(hv.snapshot(list[i].id, scope)));
        CHECK(dump(all.domains[i]) == dump(as_scope(h.truth().domains[i], scope)));
      }
    }
  }
}

TEMPLATE_TEST_CASE("snapshot_all into caller storage: equal to a fresh one, storage reused",
                   "[conformance][snapshot_all][into]", CONFORMANCE_BACKENDS) {
  TestType h{standard_host()};
  auto& hv = h.hv();
  HostSnapshot into;
  hv.snapshot_all(SnapshotScope::full, into);
  const HostSnapshot fresh = hv.snapshot_all(SnapshotScope::full);
  CHECK(dump(into.host) == dump(fresh.host));
  CHECK(dump_domains(into) == dump_domains(fresh));
  REQUIRE(into.domains.size() == 4);
  const auto* slots = into.domains.data();
  const auto* hard = into.domains[1].hard.words().data();
  const auto* vcpus = into.domains[1].vcpus.data();
  hv.snapshot_all(SnapshotScope::full, into);
  CHECK(dump_domains(into) == dump_domains(fresh));
  CHECK(into.domains.data() == slots);
  CHECK(into.domains[1].hard.words().data() == hard);
  CHECK(into.domains[1].vcpus.data() == vcpus);
  hv.snapshot_all(SnapshotScope::metrics_only, into);
  CHECK(dump_domains(into) == dump_domains(hv.snapshot_all(SnapshotScope::metrics_only)));
}

TEMPLATE_TEST_CASE("errors while reading the host: host_info and snapshot_all throw the code, into is clear()ed",
                   "[conformance][snapshot_all][into][faults]", CONFORMANCE_BACKENDS) {
  SKIP_UNLESS(can_inject_faults)
  TestType h{standard_host()};
  auto& hv = h.hv();
  // The failure to inject, and the code the backend then reports: the code asked for where
  // the host read can fail once (fail_host_read), else the harness breaks the host's
  // description until repaired (Linux: its sysfs CPU list), a code of the backend's own.
  auto fail = [&](ErrorCode code) {
    return TestType::can_fail_host_read ? (h.fail_host_read(code), code) : h.break_host_read();
  };
  auto repair = [&] {
    if (!TestType::can_fail_host_read) h.repair_host_read();
  };
  const ErrorCode first = fail(ErrorCode::permission_denied);
  auto e = error_of([&] { (void)hv.host_info(); });
  REQUIRE(e);
  CHECK(e->code() == first);
  repair();
  CHECK(hv.host_info().cpu_universe() == 9);  // one failure, not a broken backend

  HostSnapshot into;
  hv.snapshot_all(SnapshotScope::full, into);
  REQUIRE(into.domains.size() == 4);
  const ErrorCode second = fail(ErrorCode::busy);
  e = error_of([&] { hv.snapshot_all(SnapshotScope::full, into); });
  REQUIRE(e);
  CHECK(e->code() == second);
  CHECK(into.domains.empty());
  CHECK(dump(into.host) == dump(HostInfo{}));
  repair();
  hv.snapshot_all(SnapshotScope::full, into);
  CHECK(into.domains.size() == 4);
}

TEMPLATE_TEST_CASE("errors while reading a domain: thrown with their code, never swallowed, into is clear()ed",
                   "[conformance][snapshot][snapshot_all][into][faults]", CONFORMANCE_BACKENDS) {
  SKIP_UNLESS(can_inject_faults)
  TestType h{standard_host()};
  auto& hv = h.hv();
  DomainSnapshot into;
  hv.snapshot(xperf2, SnapshotScope::full, into);
  h.fail_in_snapshot(xperf2, 2, ErrorCode::busy);
  auto e = error_of([&] { hv.snapshot(xperf2, SnapshotScope::full, into); });
  REQUIRE(e);
  CHECK(e->code() == ErrorCode::busy);
  CHECK(dump(into) == dump(DomainSnapshot{}));
  CHECK(dump(hv.snapshot(xperf2, SnapshotScope::full)) == dump(domain_of(h.truth(), xperf2)));

  for (const SnapshotScope scope : {SnapshotScope::full, SnapshotScope::metrics_only}) {
    INFO("scope " << name_of(scope));
    if (scope == SnapshotScope::metrics_only && !TestType::can_fail_metrics_reads) {
      WARN(TestType::name << " cannot fail a metrics-only read on demand: that scope is not checked here");
      continue;
    }
    HostSnapshot all;
    hv.snapshot_all(scope, all);
    REQUIRE(all.domains.size() == 4);
    h.fail_in_snapshot_all(xperf2, 1, scope, ErrorCode::busy);  // only a vanishing domain is left out
    e = error_of([&] { hv.snapshot_all(scope, all); });
    REQUIRE(e);
    CHECK(e->code() == ErrorCode::busy);
    CHECK(all.domains.empty());
    CHECK(dump(all.host) == dump(HostInfo{}));
  }
}

TEMPLATE_TEST_CASE("snapshot_all: a domain vanishing midway is left out, never torn",
                   "[conformance][snapshot_all][vanish]", CONFORMANCE_BACKENDS) {
  SKIP_UNLESS(can_vanish)
  for (const SnapshotScope scope : {SnapshotScope::full, SnapshotScope::metrics_only}) {
    for (const bool reuse : {false, true}) {
      DYNAMIC_SECTION("scope " << name_of(scope) << (reuse ? ", into storage that held every domain" : "")) {
        TestType h{standard_host()};
        auto& hv = h.hv();
        HostSnapshot all;
        if (reuse) hv.snapshot_all(scope, all);
        h.vanish_in_snapshot_all(xperf2, 1, scope);  // while its vcpu 1 is read
        hv.snapshot_all(scope, all);
        const HostSnapshot truth = h.truth();
        REQUIRE(truth.domains.size() == 3);  // the harness did remove it
        REQUIRE(all.domains.size() == 3);
        for (std::size_t i = 0; i < 3; ++i) {
          const DomainSnapshot& d = all.domains[i];
          INFO(vcpumap::describe(d.domain));
          CHECK(d.domain.id != xperf2);
          CHECK(d.vcpus.size() == d.domain.max_vcpus);  // whole, not half read
          CHECK(dump(d) == dump(as_scope(truth.domains[i], scope)));
        }
      }
    }
  }
}

TEMPLATE_TEST_CASE("not_found: a missing domain, named in the message, by every operation",
                   "[conformance][errors]", CONFORMANCE_BACKENDS) {
  TestType h{standard_host()};
  auto& hv = h.hv();
  const HostSnapshot before = h.truth();
  auto check_missing = [](const std::optional<Error>& e) {
    REQUIRE(e);
    CHECK(e->code() == ErrorCode::not_found);
    CHECK(contains(e->what(), "domain 42"));
  };
  check_missing(error_of([&] { (void)hv.snapshot(missing, SnapshotScope::full); }));
  check_missing(error_of([&] { (void)hv.snapshot(missing, SnapshotScope::metrics_only); }));
  DomainSnapshot into;
  check_missing(error_of([&] { hv.snapshot(missing, SnapshotScope::full, into); }));
  check_missing(error_of([&] { (void)hv.pin_vcpu(missing, 0, VcpuPin{cpus("1"), std::nullopt, false}); }));
  MatrixPin plan;
  plan.hard = AffinityMatrix::full(1, 9);
  check_missing(error_of([&] { (void)hv.pin_matrix(missing, plan); }));
  CHECK(dump_domains(h.truth()) == dump_domains(before));
}

// ---- pinning one vcpu ----

TEMPLATE_TEST_CASE("pin_vcpu: hard and soft, hard only (soft kept), soft only (hard kept)", "[conformance][pin]",
                   CONFORMANCE_BACKENDS) {
  TestType h{standard_host()};
  auto& hv = h.hv();
  const HostSnapshot before = h.truth();
  const vcpumap::Capabilities caps = hv.host_info().caps;
  // Where there is no soft affinity, each pin with a soft map is refused before any change.
  // Where vcpus have limits (here the online CPUs), a hard row is stored ∩ the limit
  // (with_row): the offline CPU 3 a pin names is not kept.

  SECTION("hard and soft: hard ∩ online, soft ∩ that, the requested maps stored") {
    const VcpuPin pin{cpus("1-3,5"), cpus("2-3"), false};
    if (!caps.soft_affinity) {
      check_refused(h, before, [&] { (void)hv.pin_vcpu(xperf2, 1, pin); }, ErrorCode::unsupported, no_soft);
      return;
    }
    const PinResult r = hv.pin_vcpu(xperf2, 1, pin);
    CHECK(hv.last_call_count() > 0);
    CHECK(r.hard == cpus("1-2,5"));  // 3 is offline
    CHECK(r.soft == cpus("2"));
    CHECK(dump_domains(h.truth()) == dump_domains(with_row(before, xperf2, 1, cpus("1-3,5"), cpus("2-3"))));
    CHECK(hv.snapshot(xperf2, SnapshotScope::full).effective.row(1) == cpus("2"));
  }
  SECTION("hard and soft, forced: the same") {
    const VcpuPin pin{cpus("1-3,5"), cpus("2-3"), true};
    if (!caps.soft_affinity) {
      check_refused(h, before, [&] { (void)hv.pin_vcpu(xperf2, 1, pin); }, ErrorCode::unsupported, no_soft);
      return;
    }
    const PinResult r = hv.pin_vcpu(xperf2, 1, pin);
    CHECK(r.hard == cpus("1-2,5"));
    CHECK(r.soft == cpus("2"));
    CHECK(dump_domains(h.truth()) == dump_domains(with_row(before, xperf2, 1, cpus("1-3,5"), cpus("2-3"))));
  }
  SECTION("hard only: the soft map kept, reported against the new hard (here empty)") {
    const PinResult r = hv.pin_vcpu(xperf2, 0, VcpuPin{cpus("3,5-7"), std::nullopt, false});
    CHECK(r.hard == cpus("5-7"));  // the offline CPU 3 may be named, it is not effective
    // soft 1 ∩ 5-7; without soft affinity every CPU ∩ 5-7.
    CHECK(r.soft == (caps.soft_affinity ? CpuMap(9) : cpus("5-7")));
    CHECK(r.soft.universe() == 9);
    CHECK(dump_domains(h.truth()) == dump_domains(with_row(before, xperf2, 0, cpus("3,5-7"), std::nullopt)));
    CHECK(hv.snapshot(xperf2, SnapshotScope::full).effective.row(0) == cpus("5-7"));
  }
  SECTION("soft only: the hard map kept") {
    const VcpuPin pin{std::nullopt, cpus("0-2"), false};
    if (!caps.soft_affinity) {
      check_refused(h, before, [&] { (void)hv.pin_vcpu(xperf2, 3, pin); }, ErrorCode::unsupported, no_soft);
      return;
    }
    const PinResult r = hv.pin_vcpu(xperf2, 3, pin);
    CHECK(r.hard == cpus("0-2,5-8"));  // "all" ∩ online
    CHECK(r.soft == cpus("0-2"));
    CHECK(dump_domains(h.truth()) == dump_domains(with_row(before, xperf2, 3, std::nullopt, cpus("0-2"))));
  }
  SECTION("maps of another universe: accepted when their CPUs fit, stored and reported in the host's") {
    const PinResult r = hv.pin_vcpu(xperf2, 0, VcpuPin{CpuMap(4, {1, 2}), std::nullopt, false});
    CHECK(r.hard == cpus("1-2"));
    CHECK(r.soft == (caps.soft_affinity ? cpus("1") : cpus("1-2")));
    CHECK(dump_domains(h.truth()) == dump_domains(with_row(before, xperf2, 0, cpus("1-2"), std::nullopt)));
  }
  SECTION("soft only on a vcpu whose hard map holds no online CPU: allowed, nothing effective") {
    const VcpuPin pin{std::nullopt, cpus("6"), false};
    if (!caps.soft_affinity) {
      check_refused(h, before, [&] { (void)hv.pin_vcpu(web, 2, pin); }, ErrorCode::unsupported, no_soft);
      return;
    }
    const PinResult r = hv.pin_vcpu(web, 2, pin);
    CHECK(r.hard.empty());
    CHECK(r.soft.empty());
    CHECK(dump_domains(h.truth()) == dump_domains(with_row(before, web, 2, std::nullopt, cpus("6"))));
  }
}

TEMPLATE_TEST_CASE("pin_vcpu: refused before any change, the state unchanged", "[conformance][pin][errors]",
                   CONFORMANCE_BACKENDS) {
  TestType h{standard_host()};
  auto& hv = h.hv();
  const HostSnapshot before = h.truth();
  struct Bad {
    const char* what;
    unsigned vcpu;
    VcpuPin pin;
    const char* message;
  };
  const Bad bad[] = {
      {"vcpu out of range", 4, {cpus("1"), std::nullopt, false}, "vcpu 4 is beyond its 4 vcpus"},
      {"no map", 0, {std::nullopt, std::nullopt, false}, "a pin needs a hard or a soft map"},
      {"empty hard map", 0, {CpuMap(9), std::nullopt, false}, "empty hard affinity"},
      {"empty hard map, forced", 0, {CpuMap(9), cpus("1"), true}, "empty hard affinity"},
      {"hard CPU beyond the host", 0, {CpuMap(16, {1, 12}), std::nullopt, false}, "names CPU 12, beyond the host's 9"},
      {"soft CPU beyond the host", 0, {std::nullopt, CpuMap(16, {10}), false}, "names CPU 10, beyond the host's 9"},
      {"hard CPU not present", 0, {cpus("4-5"), std::nullopt, false}, "hard affinity names CPUs 4 that are not present"},
      {"soft CPU not present", 0, {std::nullopt, cpus("4"), false}, "soft affinity names CPUs 4 that are not present"},
      {"no online CPU", 0, {cpus("3"), cpus("1"), false}, "holds no online CPU"},
  };
  const bool soft_affinity = hv.host_info().caps.soft_affinity;
  for (const Bad& b : bad) {
    INFO(b.what);
    auto e = error_of([&] { (void)hv.pin_vcpu(xperf2, b.vcpu, b.pin); });
    REQUIRE(e);
    CHECK(contains(e->what(), "domain 3 (xperf2)"));
    if (b.pin.soft && !soft_affinity && b.vcpu < 4) {
      // No soft affinity: a soft map is refused as such, before the maps are looked at.
      CHECK(e->code() == ErrorCode::unsupported);
      CHECK(contains(e->what(), no_soft));
    } else {
      CHECK(e->code() == ErrorCode::invalid_argument);
      CHECK(contains(e->what(), b.message));
    }
    CHECK(dump_domains(h.truth()) == dump_domains(before));
  }
}

// ---- pinning a whole domain ----

TEMPLATE_TEST_CASE("pin_matrix: every row set, the effective matrices returned", "[conformance][matrix]",
                   CONFORMANCE_BACKENDS) {
  TestType h{standard_host()};
  auto& hv = h.hv();
  const HostSnapshot before = h.truth();
  const vcpumap::Capabilities caps = hv.host_info().caps;

  SECTION("hard and soft") {
    const MatrixPin plan = xperf2_to_5_8();
    if (!caps.soft_affinity) {
      check_refused(h, before, [&] { (void)hv.pin_matrix(xperf2, plan); }, ErrorCode::unsupported, no_soft);
      return;
    }
    const MatrixPinResult r = hv.pin_matrix(xperf2, plan);
    CHECK(hv.last_call_count() > 0);
    CHECK(r.hard == *plan.hard);
    CHECK(r.soft == *plan.soft);
    CHECK(dump_domains(h.truth()) == dump_domains(with_plan(before, plan)));
  }
  SECTION("hard only: the soft rows kept, reported against the new hard rows") {
    const MatrixPin plan = xperf2_to_5_8(false);
    const MatrixPinResult r = hv.pin_matrix(xperf2, plan);
    CHECK(r.hard == *plan.hard);
    AffinityMatrix soft(4, 9);
    soft.set(3, 8);  // soft 1, 0-1, 3, node 1 ∩ CPUs 5, 6, 7, 8
    CHECK(r.soft == (caps.soft_affinity ? soft : *plan.hard));  // without soft affinity: every CPU ∩ the hard rows
    CHECK(dump_domains(h.truth()) == dump_domains(with_plan(before, plan)));
  }
  SECTION("hard rows naming offline CPUs: the effective rows without them") {
    MatrixPin plan;
    plan.hard = AffinityMatrix(4, 9);
    for (unsigned v = 0; v < 4; ++v) plan.hard->set_row(v, cpus("2-3"));
    const MatrixPinResult r = hv.pin_matrix(xperf2, plan);
    for (unsigned v = 0; v < 4; ++v) CHECK(r.hard.row(v) == cpus("2"));
    CHECK(dump_domains(h.truth()) == dump_domains(with_plan(before, plan)));
  }
  SECTION("a domain with no vcpus: a 0-row plan") {
    MatrixPin plan;
    plan.hard = AffinityMatrix(0, 9);
    if (!TestType::holds_domains_without_vcpus) {
      // "building" has one vcpu there (not plugged in): a 0-row plan does not fit it.
      check_refused(h, before, [&] { (void)hv.pin_matrix(building, plan); }, ErrorCode::invalid_argument,
                    "domain 12 (building): the matrix has 0 rows for 1 vcpus");
      return;
    }
    const MatrixPinResult r = hv.pin_matrix(building, plan);
    CHECK(r.hard.rows() == 0);
    CHECK(dump_domains(h.truth()) == dump_domains(before));
  }
  SECTION("refused before any change: a plan of the wrong shape, an empty hard row, a CPU not present") {
    MatrixPin rows3;
    rows3.hard = AffinityMatrix::full(3, 9);
    MatrixPin empty_row = xperf2_to_5_8(caps.soft_affinity);
    empty_row.hard->set_row(2, CpuMap(9));
    MatrixPin absent = xperf2_to_5_8(caps.soft_affinity);
    if (caps.soft_affinity) absent.soft->set_row(1, cpus("4"));
    else absent.hard->set_row(1, cpus("4-5"));
    MatrixPin nothing;
    for (const MatrixPin* plan : {&rows3, &empty_row, &absent, &nothing}) {
      auto e = error_of([&] { (void)hv.pin_matrix(xperf2, *plan); });
      REQUIRE(e);
      CHECK(e->code() == ErrorCode::invalid_argument);
      CHECK(contains(e->what(), "domain 3 (xperf2)"));
      CHECK(dump_domains(h.truth()) == dump_domains(before));
    }
  }
}

TEMPLATE_TEST_CASE("pin_matrix: a failure at vcpu k rolls every change back", "[conformance][matrix][faults]",
                   CONFORMANCE_BACKENDS) {
  SKIP_UNLESS(can_inject_faults)
  for (unsigned k = 0; k < 4; ++k) {
    DYNAMIC_SECTION("failing at vcpu " << k) {
      TestType h{standard_host()};
      auto& hv = h.hv();
      const HostSnapshot before = h.truth();
      const MatrixPin plan = xperf2_to_5_8(hv.host_info().caps.soft_affinity);
      h.fail_pin_call(xperf2, k, ErrorCode::busy);  // every row changes: the k-th pin is vcpu k's
      auto e = pin_error_of([&] { (void)hv.pin_matrix(xperf2, plan); });
      REQUIRE(e);
      CHECK(e->code() == ErrorCode::busy);
      CHECK(e->failed_vcpu() == k);
      CHECK(e->rolled_back());
      CHECK(contains(e->what(), "domain 3 (xperf2): pin failed at vcpu " + std::to_string(k)));
      // Vcpus 0..k-1 (all four with a batch) were set and put back: as they were, or, where
      // vcpus have limits, within them (xperf2's vcpu 2 was 2-3, its cpuset holds 2).
      std::vector<unsigned> back;
      for (unsigned v = 0; v < (TestType::batches_pins ? 4 : k); ++v)
        if (v != k) back.push_back(v);
      CHECK(dump_domains(h.truth()) == dump_domains(restored(before, before, xperf2, back)));
      CHECK(hv.last_call_count() > 0);
      // Nothing stuck: the same plan goes through afterwards.
      (void)hv.pin_matrix(xperf2, plan);
      CHECK(dump_domains(h.truth()) == dump_domains(with_plan(before, plan)));
    }
  }
}

TEMPLATE_TEST_CASE("pin_matrix: a restore that fails too is reported, not hidden", "[conformance][matrix][faults]",
                   CONFORMANCE_BACKENDS) {
  SKIP_UNLESS(can_inject_faults)
  TestType h{standard_host()};
  auto& hv = h.hv();
  const HostSnapshot before = h.truth();
  const MatrixPin plan = xperf2_to_5_8(hv.host_info().caps.soft_affinity);
  // vcpu 2's pin fails; the first restore is vcpu 0's. A backend pinning one by one has
  // made 3 pins by then, a batching one all 4 (PinError's contract).
  const std::size_t first_restore = TestType::batches_pins ? 4 : 3;
  h.fail_pin_call(xperf2, 2, ErrorCode::busy);
  h.fail_pin_call(xperf2, first_restore, ErrorCode::internal);
  auto e = pin_error_of([&] { (void)hv.pin_matrix(xperf2, plan); });
  REQUIRE(e);
  CHECK(e->code() == ErrorCode::internal);
  CHECK_FALSE(e->rolled_back());
  CHECK(e->failed_vcpu() == 2);
  CHECK(contains(e->what(), "pin failed at vcpu 2"));
  CHECK(contains(e->what(), "restoring vcpus 0 failed"));
  // vcpu 0 is left as pinned, every other vcpu as it was (vcpu 1 put back: 5-8 fits any limit).
  CHECK(dump_domains(h.truth()) ==
        dump_domains(with_row(before, xperf2, 0, plan.hard->row(0),
                              plan.soft ? std::optional(plan.soft->row(0)) : std::nullopt)));
}

TEMPLATE_TEST_CASE("pin_matrix: only the rows a plan changes are checked and set (a host with holes)",
                   "[conformance][matrix]", CONFORMANCE_BACKENDS) {
  // web's rows 0-1 are "all", which names the absent CPU 4; row 2 is 3-4, no online CPU.
  // A new pin of any of them would be refused.
  TestType h{standard_host()};
  auto& hv = h.hv();
  const HostSnapshot before = h.truth();
  const DomainSnapshot& was = domain_of(before, web);
  const vcpumap::Capabilities caps = hv.host_info().caps;

  SECTION("a hard plan changing row 1 only: rows 0 and 2 are neither refused nor touched") {
    MatrixPin plan;
    plan.hard = was.hard;
    plan.hard->set_row(1, cpus("5"));
    const MatrixPinResult r = hv.pin_matrix(web, plan);
    CHECK(r.hard.row(0) == cpus("0-2,5-8"));  // a row left alone: hard ∩ online
    CHECK(r.hard.row(1) == cpus("5"));
    CHECK(r.hard.row(2).empty());
    CHECK(r.soft.row(0) == cpus("0-2,5-8"));  // soft ∩ that
    CHECK(r.soft.row(1) == cpus("5"));
    const HostSnapshot expected = with_row(before, web, 1, cpus("5"), std::nullopt);
    CHECK(dump_domains(h.truth()) == dump_domains(expected));
    // The same plan again changes nothing, and is not refused either.
    (void)hv.pin_matrix(web, plan);
    CHECK(dump_domains(h.truth()) == dump_domains(expected));
  }
  SECTION("a soft plan changing row 2 only, whose hard map holds no online CPU") {
    MatrixPin plan;
    plan.soft = was.soft;
    plan.soft->set_row(2, cpus("6"));
    if (!caps.soft_affinity) {
      check_refused(h, before, [&] { (void)hv.pin_matrix(web, plan); }, ErrorCode::unsupported,
                    "domain 7 (web): vcpu 2: this hypervisor has no soft affinity");
      return;
    }
    const MatrixPinResult r = hv.pin_matrix(web, plan);
    CHECK(r.soft.row(2).empty());  // 6 ∩ (3-4 ∩ online)
    CHECK(dump_domains(h.truth()) == dump_domains(with_row(before, web, 2, std::nullopt, cpus("6"))));
  }
  SECTION("a changed row naming an absent CPU is still refused, nothing changed") {
    MatrixPin plan;
    plan.hard = was.hard;
    plan.hard->set_row(0, cpus("1"));
    plan.hard->set_row(1, cpus("4-5"));
    auto e = error_of([&] { (void)hv.pin_matrix(web, plan); });
    REQUIRE(e);
    CHECK(e->code() == ErrorCode::invalid_argument);
    CHECK(contains(e->what(), "domain 7 (web): vcpu 1: hard affinity names CPUs 4 that are not present"));
    CHECK(dump_domains(h.truth()) == dump_domains(before));
  }
  SECTION("restore: rows put back as read, without the checks of a new pin") {
    MatrixPin plan;
    plan.hard = was.hard;
    plan.hard->set_row(1, cpus("5"));
    (void)hv.pin_matrix(web, plan);
    // Back to "all" (CPU 4 absent) is refused as a new pin... (soft rows only where there
    // is soft affinity: elsewhere a soft map is refused whatever it holds)
    MatrixPin back{was.hard, caps.soft_affinity ? std::optional(was.soft) : std::nullopt, false, false};
    auto e = error_of([&] { (void)hv.pin_matrix(web, back); });
    REQUIRE(e);
    CHECK(e->code() == ErrorCode::invalid_argument);
    CHECK(dump_domains(h.truth()) == dump_domains(with_row(before, web, 1, cpus("5"), std::nullopt)));
    // ...and set as a restore: as it was, or within the vcpu's limit where there are limits
    // (a cpuset holds no absent or offline CPU: "all" comes back as 0-2,5-8).
    back.restore = true;
    (void)hv.pin_matrix(web, back);
    CHECK(dump_domains(h.truth()) == dump_domains(restored(before, before, web, {1})));
  }
}

// ---- call counts ----

TEMPLATE_TEST_CASE("pin_vcpus: the vcpus named, and no other, set; all or nothing", "[conformance][sparse]",
                   CONFORMANCE_BACKENDS) {
  TestType h{standard_host()};
  auto& hv = h.hv();
  const HostSnapshot before = h.truth();
  const bool soft_affinity = hv.host_info().caps.soft_affinity;
  // The soft map only where there is soft affinity (else its refusal is checked first).
  const VcpusPin two{vcpumap::VcpuSet(4, {1, 3}), cpus("5-6"), soft_affinity ? std::optional(cpus("6")) : std::nullopt};
  if (!soft_affinity)
    check_refused(h, before, [&] { (void)hv.pin_vcpus(xperf2, VcpusPin{two.vcpus, two.hard, cpus("6")}); },
                  ErrorCode::unsupported, no_soft);

  SECTION("success: rows 1 and 3 changed, 0 and 2 as they were") {
    const MatrixPinResult r = hv.pin_vcpus(xperf2, two);
    HostSnapshot expected = with_row(before, xperf2, 1, cpus("5-6"), cpus("6"));
    expected = with_row(std::move(expected), xperf2, 3, cpus("5-6"), cpus("6"));
    CHECK(dump_domains(h.truth()) == dump_domains(expected));
    CHECK(r.hard.row(1) == cpus("5-6"));
    CHECK(r.soft.row(1) == (soft_affinity ? cpus("6") : cpus("5-6")));
    for (const DomainSnapshot& d : before.domains)
      if (d.domain.id == xperf2) CHECK(r.before_hard == d.hard);  // as read: what a rollback puts back
  }
  SECTION("refused before any change: a CPU not present, a vcpu beyond the domain, no vcpu") {
    const VcpusPin absent{vcpumap::VcpuSet(4, {1}), cpus("4")};
    const VcpusPin beyond{vcpumap::VcpuSet(5, {4}), cpus("5")};
    const VcpusPin none{vcpumap::VcpuSet(4), cpus("5")};
    for (const VcpusPin* pin : {&absent, &beyond, &none}) {
      auto e = error_of([&] { (void)hv.pin_vcpus(xperf2, *pin); });
      REQUIRE(e);
      CHECK(e->code() == ErrorCode::invalid_argument);
      CHECK(contains(e->what(), "domain 3 (xperf2)"));
      CHECK(dump_domains(h.truth()) == dump_domains(before));
    }
  }
}

TEMPLATE_TEST_CASE("pin_vcpus: a failure at the second vcpu puts the first back", "[conformance][sparse][faults]",
                   CONFORMANCE_BACKENDS) {
  SKIP_UNLESS(can_inject_faults)
  TestType h{standard_host()};
  auto& hv = h.hv();
  const HostSnapshot before = h.truth();
  h.fail_pin_call(xperf2, 1, ErrorCode::busy);
  auto e = pin_error_of([&] { (void)hv.pin_vcpus(xperf2, {vcpumap::VcpuSet(4, {1, 3}), cpus("5-6")}); });
  REQUIRE(e);
  CHECK(e->failed_vcpu() == 3);
  CHECK(e->rolled_back());
  CHECK(dump_domains(h.truth()) == dump_domains(before));
}

TEMPLATE_TEST_CASE("plan: what a pin would do, and nothing changed", "[conformance][plan]", CONFORMANCE_BACKENDS) {
  TestType h{standard_host()};
  auto& hv = h.hv();
  const HostSnapshot before = h.truth();
  const bool soft_affinity = hv.host_info().caps.soft_affinity;
  const std::optional<CpuMap> soft = soft_affinity ? std::optional(cpus("6")) : std::nullopt;
  const PinPlan sparse = hv.plan(xperf2, VcpusPin{vcpumap::VcpuSet(4, {1, 3}), cpus("5-6"), soft});
  CHECK(!sparse.refusal);
  CHECK(sparse.changed == vcpumap::VcpuSet(4, {1, 3}));
  CHECK(sparse.hard.row(1) == cpus("5-6"));
  CHECK(sparse.hard.row(0) == sparse.before.hard.row(0));
  CHECK(sparse.effective == expected_effective(sparse.hard, sparse.soft, limit_of(sparse.before), before.host.online));
  if (!soft_affinity) {
    // A soft map would be refused, and the plan says so.
    const PinPlan with_soft = hv.plan(xperf2, VcpusPin{vcpumap::VcpuSet(4, {1}), cpus("5-6"), cpus("6")});
    REQUIRE(with_soft.refusal);
    CHECK(with_soft.refusal->code() == ErrorCode::unsupported);
  }
  const PinPlan whole = hv.plan(xperf2, xperf2_to_5_8(soft_affinity));
  CHECK((!whole.refusal && whole.changed == vcpumap::VcpuSet::full(4) && whole.hard == *xperf2_to_5_8().hard));

  const PinPlan refused = hv.plan(xperf2, VcpusPin{vcpumap::VcpuSet(4, {1}), cpus("4")});
  REQUIRE(refused.refusal);
  CHECK(contains(refused.refusal->what(), "domain 3 (xperf2): vcpu 1"));
  CHECK(refused.hard == refused.before.hard);
  CHECK(dump_domains(h.truth()) == dump_domains(before));
}

TEMPLATE_TEST_CASE("last_call_count: every operation reports the backend calls it made", "[conformance][calls]",
                   CONFORMANCE_BACKENDS) {
  TestType h{standard_host()};
  auto& hv = h.hv();
  const DomainId dom0_id = TestType::id_of(dom0);
  const bool soft_affinity = hv.host_info().caps.soft_affinity;
  (void)hv.host_info();
  CHECK(hv.last_call_count() > 0);
  (void)hv.list_domains();
  CHECK(hv.last_call_count() > 0);
  (void)hv.snapshot(dom0_id, SnapshotScope::full);
  CHECK(hv.last_call_count() > 0);
  (void)hv.snapshot(dom0_id, SnapshotScope::metrics_only);
  CHECK(hv.last_call_count() > 0);
  DomainSnapshot into;
  hv.snapshot(dom0_id, SnapshotScope::full, into);
  CHECK(hv.last_call_count() > 0);
  (void)hv.snapshot_all(SnapshotScope::full);
  CHECK(hv.last_call_count() > 0);
  HostSnapshot all;
  hv.snapshot_all(SnapshotScope::metrics_only, all);
  CHECK(hv.last_call_count() > 0);
  (void)hv.pin_vcpu(dom0_id, 1, VcpuPin{cpus("0"), std::nullopt, false});
  CHECK(hv.last_call_count() > 0);
  (void)hv.pin_matrix(xperf2, xperf2_to_5_8(soft_affinity));
  CHECK(hv.last_call_count() > 0);
  (void)hv.pin_matrix(xperf2, xperf2_to_5_8(soft_affinity));  // changes nothing, still reads the domain
  CHECK(hv.last_call_count() > 0);
}

// ---- cpupools (Xen): a domain runs on its pool's CPUs only ----

TEMPLATE_TEST_CASE("cpupools: the host's pools; a domain's limit rows are its pool's CPUs, its effective rows within",
                   "[conformance][pools]", CONFORMANCE_BACKENDS) {
  SKIP_UNLESS(holds_pools)
  TestType h{pool_host()};
  auto& hv = h.hv();
  const HostInfo host = hv.host_info();
  REQUIRE(host.pools.size() == 2);
  CHECK(host.pools[0].id == 0);
  CHECK(host.pools[0].cpus == cpus("0-3"));
  CHECK(host.pools[0].domains == 2);  // Domain-0 and web
  CHECK(host.pools[1].id == 1);
  CHECK(host.pools[1].name == "pool1");
  CHECK(host.pools[1].scheduler == "credit");
  CHECK(host.pools[1].cpus == cpus("5-8"));
  CHECK(host.pools[1].domains == 1);
  CHECK(host.pools == h.truth().host.pools);
  const std::vector<DomainInfo> list = hv.list_domains();
  REQUIRE(list.size() == 3);
  CHECK(list[0].pool == 0u);
  CHECK(list[1].pool == 1u);
  CHECK(list[2].pool == 0u);

  const HostSnapshot truth = h.truth();
  for (const DomainInfo& d : list) {
    INFO(vcpumap::describe(d));
    const DomainSnapshot s = hv.snapshot(d.id, SnapshotScope::full);
    const CpuMap pool = d.id == xperf2 ? cpus("5-8") : cpus("0-3");
    REQUIRE(s.limit.rows() == d.max_vcpus);
    for (unsigned v = 0; v < d.max_vcpus; ++v) {
      CHECK(s.limit.row(v) == pool);
      CHECK(s.effective.row(v).is_subset_of(pool));
    }
    CHECK(s.effective == expected_effective(s.hard, s.soft, s.limit, host.online));
    CHECK(dump(s) == dump(domain_of(truth, d.id)));
  }
  const DomainSnapshot x = hv.snapshot(xperf2, SnapshotScope::full);
  CHECK(x.hard.row(0) == cpus("2,5-6"));   // stored as given, CPU 2 outside the pool too
  CHECK(x.effective.row(0) == cpus("6"));  // 2,5-6 ∩ pool ∩ online ∩ soft 6
  CHECK(x.effective.row(3) == cpus("5-8"));  // "all" ∩ pool 5-8 ∩ online
  const DomainSnapshot w = hv.snapshot(web, SnapshotScope::full);
  CHECK(w.effective.row(0) == cpus("0-2"));  // "all" ∩ Pool-0 0-3 ∩ online (3 is offline)
}

TEMPLATE_TEST_CASE("cpupools: a pin with no CPU of the domain's pool is refused before any change, naming the pool",
                   "[conformance][pools][errors]", CONFORMANCE_BACKENDS) {
  SKIP_UNLESS(holds_pools)
  TestType h{pool_host()};
  auto& hv = h.hv();
  const HostSnapshot before = h.truth();
  const DomainSnapshot& was = domain_of(before, xperf2);
  constexpr std::string_view pool1 = "cpupool 1 (pool1)";

  SECTION("pin_vcpu, pin_vcpus, pin_matrix, plan") {
    check_refused(h, before, [&] { (void)hv.pin_vcpu(xperf2, 1, VcpuPin{cpus("0-2"), std::nullopt, false}); },
                  ErrorCode::invalid_argument, pool1);
    check_refused(h, before, [&] { (void)hv.pin_vcpu(xperf2, 1, VcpuPin{cpus("0-3"), std::nullopt, true}); },
                  ErrorCode::invalid_argument, pool1);  // forced too
    check_refused(h, before, [&] { (void)hv.pin_vcpus(xperf2, VcpusPin{vcpumap::VcpuSet(4, {1, 3}), cpus("1-2")}); },
                  ErrorCode::invalid_argument, pool1);
    MatrixPin plan{was.hard, std::nullopt, false, false};
    plan.hard->set_row(1, cpus("7")).set_row(2, cpus("0-1"));
    check_refused(h, before, [&] { (void)hv.pin_matrix(xperf2, plan); }, ErrorCode::invalid_argument,
                  "domain 3 (xperf2): vcpu 2: hard affinity 0-1 holds no online CPU of the vcpu's cpupool 1 (pool1)");
    const PinPlan p = hv.plan(xperf2, plan);
    REQUIRE(p.refusal);
    CHECK(contains(p.refusal->what(), pool1));
    // Pool-0's domains are checked against Pool-0.
    check_refused(h, before, [&] { (void)hv.pin_vcpu(web, 0, VcpuPin{cpus("5-8"), std::nullopt, false}); },
                  ErrorCode::invalid_argument, "cpupool 0 (Pool-0)");
  }
  SECTION("no set-affinity call is made (one armed to fail would change the error)") {
    if (!TestType::can_inject_faults) {
      WARN(TestType::name << " cannot inject faults: the absence of a set-affinity call is not checked");
      return;
    }
    MatrixPin plan{was.hard, std::nullopt, false, false};
    plan.hard->set_row(1, cpus("0-2"));
    h.fail_pin_call(xperf2, 0, ErrorCode::busy);  // the first set-affinity call of this pin_matrix
    auto e = error_of([&] { (void)hv.pin_matrix(xperf2, plan); });
    REQUIRE(e);
    CHECK(e->code() == ErrorCode::invalid_argument);  // not busy: no call was made
    CHECK(contains(e->what(), pool1));
    CHECK(dump_domains(h.truth()) == dump_domains(before));
  }
}

TEMPLATE_TEST_CASE("cpupools: a pin partly outside the pool is accepted; what it reports lies within the pool",
                   "[conformance][pools][pin]", CONFORMANCE_BACKENDS) {
  SKIP_UNLESS(holds_pools)
  TestType h{pool_host()};
  auto& hv = h.hv();
  const HostSnapshot before = h.truth();
  const vcpumap::Capabilities caps = hv.host_info().caps;

  SECTION("pin_vcpu: the map stored as asked, the write-back hard ∩ pool ∩ online") {
    const PinResult r = hv.pin_vcpu(xperf2, 1, VcpuPin{cpus("2-3,5-6"), std::nullopt, false});
    CHECK(r.hard == cpus("5-6"));
    CHECK(r.soft == (caps.soft_affinity ? CpuMap(9) : cpus("5-6")));  // soft 0-1 ∩ 5-6
    CHECK(dump_domains(h.truth()) == dump_domains(with_row(before, xperf2, 1, cpus("2-3,5-6"), std::nullopt)));
    const DomainSnapshot s = hv.snapshot(xperf2, SnapshotScope::full);
    CHECK(s.effective.row(1) == cpus("5-6"));
  }
  SECTION("pin_matrix: rows left alone reported within the pool too") {
    MatrixPin plan{domain_of(before, xperf2).hard, std::nullopt, false, false};
    plan.hard->set_row(0, cpus("1,7"));
    const MatrixPinResult r = hv.pin_matrix(xperf2, plan);
    CHECK(r.hard.row(0) == cpus("7"));
    CHECK(r.hard.row(3) == cpus("5-8"));  // "all", left alone: ∩ pool ∩ online
    CHECK(r.hard.row(1) == cpus("5-8"));
    CHECK(dump_domains(h.truth()) == dump_domains(with_row(before, xperf2, 0, cpus("1,7"), std::nullopt)));
  }
}

// ---- online vcpus (`xl vcpu-set`) ----

TEMPLATE_TEST_CASE("set_online_vcpus: refused before any change: no vcpu, a vcpu beyond max_vcpus, a missing domain",
                   "[conformance][online][errors]", CONFORMANCE_BACKENDS) {
  SKIP_UNLESS(can_set_online_vcpus)
  TestType h{online_host()};
  auto& hv = h.hv();
  const HostSnapshot before = h.truth();
  const DomainId x = TestType::id_of(xperf2);
  if (!hv.host_info().caps.set_online) {
    // A hypervisor that cannot (Linux): unsupported, whatever the set.
    check_refused(h, before, [&] { hv.set_online_vcpus(x, vcpumap::VcpuSet(4, {0})); }, ErrorCode::unsupported,
                  "domain 3 (xperf2)");
    return;
  }
  check_refused(h, before, [&] { hv.set_online_vcpus(x, vcpumap::VcpuSet(4)); }, ErrorCode::invalid_argument,
                "domain 3 (xperf2): at least one vcpu must stay online");
  check_refused(h, before, [&] { hv.set_online_vcpus(x, vcpumap::VcpuSet(5, {0, 4})); }, ErrorCode::invalid_argument,
                "domain 3 (xperf2): vcpus 0,4 asked online, but it has 4 vcpus (maxvcpus)");
  check_refused(h, before, [&] { hv.set_online_vcpus(missing, vcpumap::VcpuSet(1, {0})); }, ErrorCode::not_found,
                "domain 42");
}

TEMPLATE_TEST_CASE("set_online_vcpus: exactly the vcpus named come online, the others go offline",
                   "[conformance][online]", CONFORMANCE_BACKENDS) {
  SKIP_UNLESS(can_set_online_vcpus)
  TestType h{online_host()};
  auto& hv = h.hv();
  const HostSnapshot before = h.truth();
  const DomainId x = TestType::id_of(xperf2);
  if (!hv.host_info().caps.set_online) {
    check_refused(h, before, [&] { hv.set_online_vcpus(x, vcpumap::VcpuSet::full(4)); }, ErrorCode::unsupported,
                  "cannot set");
    return;
  }
  // vcpu 2 was offline; 0, 1 and 3 online.
  hv.set_online_vcpus(x, vcpumap::VcpuSet(4, {0, 2}));
  CHECK(hv.last_call_count() > 0);
  const HostSnapshot after = h.truth();
  const DomainSnapshot& was = domain_of(before, x);
  const DomainSnapshot& now = domain_of(after, x);
  CHECK(now.hard == was.hard);  // affinity is not touched
  CHECK(now.soft == was.soft);
  for (const DomainSnapshot& d : before.domains)
    if (d.domain.id != x) CHECK(dump(domain_of(after, d.domain.id)) == dump(d));
  if (!TestType::guest_acts_on_online_at_once) {
    WARN(TestType::name << ": the guest acts on its online vcpus later: only the call's success is checked");
    return;
  }
  const DomainSnapshot s = hv.snapshot(x, SnapshotScope::full);
  CHECK(dump(s) == dump(now));
  CHECK(s.domain.online_vcpus == 2);
  CHECK(s.vcpus[0].state != VcpuState::offline);
  CHECK(s.vcpus[1].state == VcpuState::offline);
  CHECK_FALSE(s.vcpus[1].cpu.has_value());
  CHECK(s.vcpus[2].state != VcpuState::offline);
  REQUIRE(s.vcpus[2].cpu.has_value());  // an online vcpu has a CPU
  CHECK(s.hard.row(2).test(*s.vcpus[2].cpu));  // one it may run on (its hard map 2-3: CPU 2)
  CHECK(s.vcpus[3].state == VcpuState::offline);
  CHECK(hv.list_domains()[1].online_vcpus == 2);
  // A count N is VcpuSet::full(N).
  hv.set_online_vcpus(x, vcpumap::VcpuSet::full(4));
  CHECK(hv.snapshot(x, SnapshotScope::metrics_only).domain.online_vcpus == 4);
}
