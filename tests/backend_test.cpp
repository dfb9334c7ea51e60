// The front layer (backend.hpp): sparse pins, plans, transactions across domains, and what
// every backend gets from its primitives; exercised on the mock (the conformance suite runs
// the shared contract against every backend).
#include <vcpumap/backend.hpp>
#include <vcpumap/mock.hpp>

#include <catch2/catch.hpp>

#include <functional>
#include <set>
#include <string>

using namespace vcpumap;

namespace {

/// 8 CPUs, 6 and 7 not present; "g" (id 1) with 200 vcpus, "h" (id 2) with 3.
MockHypervisor holes() {
  return MockHypervisor::from_fixture("host cpus=8 present=0-5\ndomain 1 g vcpus=200\ndomain 2 h vcpus=3\n");
}

std::string error_of(auto&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "no error";
}

/// A backend whose reads are a mock's and whose set_affinity is the test's: to see what the
/// front does with a backend that batches (a failure does not stop the batch, as Xen's
/// multicall) or that breaks its word.
struct Scripted : HypervisorFront<Scripted> {
  using SetMany = std::function<std::vector<PinOutcome>(std::span<const VcpuPinRequest>)>;
  explicit Scripted(MockHypervisor m) : mock(std::move(m)) {}
  MockHypervisor mock;
  SetMany set_many;
  std::shared_ptr<const HostInfo> known_host() { return mock.known_host(); }
  std::shared_ptr<const HostInfo> read_host() { return mock.read_host(); }
  void read_domain_list(std::vector<DomainInfo>& out) { mock.read_domain_list(out); }
  std::optional<DomainInfo> read_domain(DomainId id) { return mock.read_domain(id); }
  void read_vcpus(const HostInfo& h, std::span<VcpuRead> r, SnapshotScope s) { mock.read_vcpus(h, r, s); }
  std::vector<PinOutcome> set_affinity(const HostInfo&, const DomainInfo&, const DomainSnapshot*,
                                       std::span<const VcpuPinRequest> pins, AfterFailure) {
    return set_many(pins);
  }
  void set_online(const HostInfo& h, const DomainInfo& d, const VcpuSet& o) { mock.set_online(h, d, o); }
  std::size_t call_count() const noexcept { return mock.call_count(); }
  std::chrono::system_clock::time_point now() { return mock.now(); }
};
static_assert(Backend<Scripted> && Hypervisor<Scripted>);

}  // namespace

TEST_CASE("a batching backend: every vcpu applied or left unknown is restored", "[front][rollback]") {
  Scripted hv(MockHypervisor::from_fixture("host cpus=16\ndomain 7 guest vcpus=6\n"));
  const DomainId g{7};
  const DomainSnapshot before = hv.snapshot(g);
  std::vector<std::vector<unsigned>> batches;
  auto batching = [&](std::set<unsigned> fail, bool whole_batch_fails) {
    return [&, fail, whole_batch_fails](std::span<const VcpuPinRequest> pins) {
      std::vector<PinOutcome> out(pins.size());
      batches.emplace_back();
      for (std::size_t i = 0; i < pins.size(); ++i) {
        batches.back().push_back(pins[i].vcpu);
        const bool restoring = batches.size() > 1;
        if (!restoring && fail.count(pins[i].vcpu)) {
          out[i].state = PinOutcome::State::failed;
          out[i].error = Error(ErrorCode::busy, "vcpu " + std::to_string(pins[i].vcpu) + ": busy");
          continue;
        }
        out[i].result = hv.mock.pin_vcpu(g, pins[i].vcpu, pins[i].pin);
        out[i].state = !restoring && whole_batch_fails ? PinOutcome::State::unknown : PinOutcome::State::applied;
        if (out[i].state == PinOutcome::State::unknown) out[i].error = Error(ErrorCode::internal, "lost");
      }
      return out;
    };
  };
  MatrixPin plan{.hard = AffinityMatrix(6, 16)};
  for (unsigned v = 0; v < 6; ++v) plan.hard->set(v, 8 + v);

  SECTION("failures at vcpus 1 and 4: 0, 2, 3 and 5 restored in one batch") {
    hv.set_many = batching({1, 4}, false);
    try {
      (void)hv.pin_matrix(g, plan);
      FAIL("no error");
    } catch (const PinError& e) {
      CHECK(e.failed_vcpu() == 1);
      CHECK(e.rolled_back());
      CHECK(e.code() == ErrorCode::busy);
      CHECK(std::string(e.what()) == "domain 7 (guest): pin failed at vcpu 1: vcpu 1: busy; vcpus 0,2-3,5 restored");
    }
    REQUIRE(batches.size() == 2);
    CHECK(batches[1] == std::vector<unsigned>{0, 2, 3, 5});
    CHECK(hv.snapshot(g).hard == before.hard);
  }
  SECTION("a batch lost as a whole: every vcpu restored, the first named") {
    hv.set_many = batching({}, true);
    try {
      (void)hv.pin_matrix(g, plan);
      FAIL("no error");
    } catch (const PinError& e) {
      CHECK(e.failed_vcpu() == 0);
      CHECK(e.code() == ErrorCode::internal);
      CHECK(std::string(e.what()).ends_with("vcpus 0-5 restored"));
    }
    CHECK(hv.snapshot(g).hard == before.hard);
  }
  SECTION("a backend that reports nothing for a vcpu is an error, not a silent success") {
    hv.set_many = [](std::span<const VcpuPinRequest> pins) {
      return std::vector<PinOutcome>(pins.size());  // every pin "not attempted"
    };
    CHECK_THROWS_WITH(hv.pin_matrix(g, plan), "domain 7 (guest): vcpu 0 was not pinned, and no error said why");
    hv.set_many = [](std::span<const VcpuPinRequest> pins) { return std::vector<PinOutcome>(pins.size() - 1); };
    CHECK_THROWS_WITH(hv.pin_matrix(g, plan), "domain 7 (guest): the backend reported 5 outcomes for 6 pins");
    hv.set_many = [](std::span<const VcpuPinRequest> pins) {
      std::vector<PinOutcome> out(pins.size());
      if (!out.empty()) out[0].state = PinOutcome::State::failed;  // and no error
      return out;
    };
    CHECK_THROWS_WITH(hv.pin_matrix(g, plan),
                      "domain 7 (guest): pin failed at vcpu 0: vcpu 0: failed, no error given; nothing was changed");
  }
}

TEST_CASE("a sparse pin reads the domain once and sets only the vcpus it names", "[front][sparse]") {
  MockHypervisor hv = holes();
  const DomainId g{1};
  const MatrixPinResult r = hv.pin_vcpus(g, {VcpuSet(200, {3}), CpuMap(8, {2}), std::nullopt});
  // getdomaininfo, the snapshot it may roll back to (200 getvcpuinfo + 200 getvcpuaffinity), one set
  CHECK(hv.last_call_count() == 1 + 400 + 1);
  CHECK(r.hard.row(3) == CpuMap(8, {2}));
  CHECK(r.before_hard.row(3) == CpuMap::full(8));  // what a rollback would put back
  const DomainSnapshot after = hv.snapshot(g);
  for (unsigned v = 0; v < 200; ++v) CHECK(after.hard.row(v) == (v == 3 ? CpuMap(8, {2}) : CpuMap::full(8)));
  CHECK(error_of([&] { (void)hv.pin_vcpus(g, {VcpuSet(200), CpuMap(8, {2})}); }) == "domain 1 (g): no vcpu to pin");
  CHECK(error_of([&] { (void)hv.pin_vcpus(g, {VcpuSet(201, {200}), CpuMap(8, {2})}); }) ==
        "domain 1 (g): vcpu 200 is beyond its 200 vcpus");
  CHECK(error_of([&] { (void)hv.pin_vcpus(g, {VcpuSet(200, {1}), CpuMap(8, {7})}); }) ==
        "domain 1 (g): vcpu 1: hard affinity names CPUs 7 that are not present");
}

TEST_CASE("a sparse pin failing at one vcpu puts back the ones before it", "[front][sparse][rollback]") {
  MockHypervisor hv = holes();
  const DomainId h{2};
  const DomainSnapshot before = hv.snapshot(h);
  hv.fail_call(1 + 6 + 3, ErrorCode::busy);  // the third set (vcpu 2)
  try {
    (void)hv.pin_vcpus(h, {VcpuSet::full(3), CpuMap(8, {1}), CpuMap(8, {1})});
    FAIL("no PinError");
  } catch (const PinError& e) {
    CHECK(e.failed_vcpu() == 2);
    CHECK(e.rolled_back());
    CHECK_THAT(e.what(), Catch::Contains("vcpus 0-1 restored"));
  }
  CHECK(hv.snapshot(h).hard == before.hard);
  CHECK(hv.snapshot(h).soft == before.soft);
}

TEST_CASE("plan says what a pin would do and changes nothing", "[front][plan]") {
  MockHypervisor hv = holes();
  const DomainId h{2};
  const HostSnapshot before = hv.state();
  const PinPlan p = hv.plan(h, VcpusPin{VcpuSet(3, {0, 2}), CpuMap(8, {4, 5}), std::nullopt});
  CHECK(!p.refusal);
  CHECK(p.changed == VcpuSet(3, {0, 2}));
  CHECK(p.hard.row(0) == CpuMap(8, {4, 5}));
  CHECK(p.hard.row(1) == CpuMap::full(8));
  CHECK(p.effective.row(1) == CpuMap::parse("0-5", {.universe = 8}));  // effective: hard ∩ soft ∩ online
  CHECK(p.before.hard.row(0) == CpuMap::full(8));
  const PinPlan refused = hv.plan(h, VcpusPin{VcpuSet(3, {1}), CpuMap(8, {6})});
  REQUIRE(refused.refusal);
  CHECK(std::string(refused.refusal->what()) == "domain 2 (h): vcpu 1: hard affinity names CPUs 6 that are not present");
  CHECK(refused.hard == refused.before.hard);  // as read: nothing would happen
  const PinPlan whole = hv.plan(h, MatrixPin{AffinityMatrix::full(3, 8), std::nullopt});
  CHECK((!whole.refusal && whole.changed.empty()));  // 'all' everywhere already: no row changes
  CHECK(hv.state() == before);
  REQUIRE_THROWS_WITH(hv.plan(DomainId{9}, VcpusPin{VcpuSet(1, {0}), CpuMap(8, {1})}), "domain 9: no such domain");
}

TEST_CASE("pin_domains: all domains or none", "[front][transaction]") {
  MockHypervisor hv = holes();
  const HostSnapshot before = hv.state();
  AffinityMatrix g_plan(200, 8), h_plan(3, 8);
  for (unsigned v = 0; v < 200; ++v) g_plan.set(v, v % 6);
  for (unsigned v = 0; v < 3; ++v) h_plan.set(v, 5 - v);
  const DomainPin pins[] = {{DomainId{1}, {g_plan, std::nullopt}}, {DomainId{2}, {h_plan, std::nullopt}}};

  SECTION("success") {
    const std::vector<MatrixPinResult> r = pin_domains(hv, std::span<const DomainPin>(pins));
    REQUIRE(r.size() == 2);
    CHECK(hv.snapshot(DomainId{1}).hard == g_plan);
    CHECK(hv.snapshot(DomainId{2}).hard == h_plan);
  }
  SECTION("the second domain fails: the first is put back exactly as read (CPUs 6-7 absent and all)") {
    // g: 1 + 400 + 200 calls; h: getdomaininfo, 6 reads, then its first set fails
    hv.fail_call(601 + 1 + 6 + 1, ErrorCode::busy);
    try {
      (void)pin_domains(hv, std::span<const DomainPin>(pins));
      FAIL("no TransactionError");
    } catch (const TransactionError& e) {
      CHECK(e.failed_domain() == DomainId{2});
      CHECK(e.rolled_back());
      CHECK(e.code() == ErrorCode::busy);
      CHECK_THAT(e.what(), Catch::StartsWith("domain 2 (h): pin failed at vcpu 0") &&
                               Catch::EndsWith("; domain 1 restored"));
    }
    HostSnapshot now = hv.state();
    now.taken_at = before.taken_at;
    for (std::size_t i = 0; i < now.domains.size(); ++i) now.domains[i].taken_at = before.domains[i].taken_at;
    CHECK(now == before);
  }
  SECTION("a domain named twice is refused before any pin") {
    const DomainPin twice[] = {{DomainId{2}, {h_plan, std::nullopt}}, {DomainId{2}, {h_plan, std::nullopt}}};
    CHECK(error_of([&] { (void)pin_domains(hv, std::span<const DomainPin>(twice)); }) ==
          "domain 2 is named twice in one transaction");
    CHECK(hv.state() == before);
  }
}

TEST_CASE("a backend is its primitives: the front's calls are theirs", "[front]") {
  MockHypervisor hv = holes();
  const std::size_t start = hv.call_count();
  (void)hv.snapshot_all(SnapshotScope::metrics_only);
  CHECK(hv.last_call_count() == hv.call_count() - start);
  CHECK(hv.last_call_count() == 3 + 1 + 200 + 3);  // host, list, every vcpu's getvcpuinfo
}
