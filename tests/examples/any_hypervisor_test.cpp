// AnyHypervisor: a type-erased backend behaves exactly like the backend it holds.
#include <catch2/catch.hpp>

#include <type_traits>
#include <utility>
#include <vector>

#include <vcpumap/any_hypervisor.hpp>
#include <vcpumap/mock.hpp>

using namespace vcpumap;

namespace {

/// A backend that cannot be moved: AnyHypervisor builds it in place. Its primitives are the
/// mock's (a backend is its primitives; the rest comes from the front layer).
struct Pinned {
  explicit Pinned(std::size_t cpus) : mock(cpus) {}
  Pinned(const Pinned&) = delete;
  Pinned(Pinned&&) = delete;
  std::shared_ptr<const HostInfo> known_host() { return mock.known_host(); }
  std::shared_ptr<const HostInfo> read_host() { return mock.read_host(); }
  void read_domain_list(std::vector<DomainInfo>& out) { mock.read_domain_list(out); }
  std::optional<DomainInfo> read_domain(DomainId id) { return mock.read_domain(id); }
  void read_vcpus(const HostInfo& h, std::span<VcpuRead> r, SnapshotScope s) { mock.read_vcpus(h, r, s); }
  std::vector<PinOutcome> set_affinity(const HostInfo& h, const DomainInfo& d, const DomainSnapshot* c,
                                       std::span<const VcpuPinRequest> p, AfterFailure a) {
    return mock.set_affinity(h, d, c, p, a);
  }
  void set_online(const HostInfo& h, const DomainInfo& d, const VcpuSet& o) { mock.set_online(h, d, o); }
  std::size_t call_count() const noexcept { return mock.call_count(); }
  std::chrono::system_clock::time_point now() { return mock.now(); }
  MockHypervisor mock;
};

template <Hypervisor H>
std::size_t count_vcpus(H& hv) {
  std::size_t n = 0;
  for (const auto& d : hv.snapshot_all(SnapshotScope::metrics_only).domains) n += d.vcpus.size();
  return n;
}

}  // namespace

static_assert(Hypervisor<AnyHypervisor>);
static_assert(!std::is_copy_constructible_v<AnyHypervisor> && std::is_nothrow_move_constructible_v<AnyHypervisor>);
static_assert(!std::is_constructible_v<AnyHypervisor, int>, "only backends are accepted");

TEST_CASE("AnyHypervisor forwards every operation to the backend it holds") {
  MockHypervisor reference = MockHypervisor::demo();
  AnyHypervisor hv(MockHypervisor::demo());
  REQUIRE(static_cast<bool>(hv));
  CHECK(count_vcpus(hv) == 9);  // usable where the concept is asked for

  CHECK(hv.host_info().online == reference.host_info().online);
  CHECK(hv.last_call_count() == reference.last_call_count());
  CHECK(hv.list_domains() == reference.list_domains());
  const DomainSnapshot s = hv.snapshot(DomainId{3});
  CHECK(s.vcpus == reference.snapshot(DomainId{3}).vcpus);
  CHECK(hv.last_call_count() == 9);
  DomainSnapshot into;
  hv.snapshot(DomainId{3}, SnapshotScope::full, into);
  CHECK((into.vcpus == s.vcpus && into.hard == s.hard && into.effective == s.effective));
  HostSnapshot host_into;
  hv.snapshot_all(SnapshotScope::metrics_only, host_into);
  CHECK(host_into.domains.size() == 3);
  CHECK(hv.last_call_count() == 3 + 1 + 9);  // host, list, 4 + 1 + 4 getvcpuinfo

  const HostInfo host = hv.host_info();
  const PinResult one = hv.pin_vcpu(DomainId{3}, 1, {.hard = host.parse("2-3")});
  CHECK(one.hard == host.parse("2-3"));
  const MatrixPinResult all = hv.pin_matrix(DomainId{1}, {.hard = AffinityMatrix::full(1, 4)});
  CHECK(all.hard == AffinityMatrix::full(1, 4));
  CHECK(hv.snapshot(DomainId{3}).hard.row(1) == host.parse("2-3"));
}

TEST_CASE("AnyHypervisor passes errors through unchanged") {
  AnyHypervisor hv(MockHypervisor::demo());
  try {
    (void)hv.snapshot(DomainId{2});
    FAIL("no error");
  } catch (const Error& e) {
    CHECK(e.code() == ErrorCode::not_found);
  }
  hv.target<MockHypervisor>()->fail_call(1 + 4 + 4 + 3, ErrorCode::busy);  // xperf2's 3rd setaffinity
  AffinityMatrix one_each(4, 4);
  for (unsigned v = 0; v < 4; ++v) one_each.set(v, v);
  try {
    (void)hv.pin_matrix(DomainId{3}, {.hard = one_each});
    FAIL("no error");
  } catch (const PinError& e) {
    CHECK(e.code() == ErrorCode::busy);
    CHECK(e.failed_vcpu() == 2);
    CHECK(e.rolled_back());
  }
}

TEST_CASE("AnyHypervisor: target, in-place construction, moved-from state") {
  AnyHypervisor hv(std::in_place_type<Pinned>, std::size_t{8});
  CHECK(hv.target<MockHypervisor>() == nullptr);
  REQUIRE(hv.target<Pinned>() != nullptr);
  CHECK(hv.host_info().cpu_universe() == 8);
  const AnyHypervisor& const_hv = hv;
  CHECK(const_hv.target<Pinned>() == hv.target<Pinned>());

  AnyHypervisor moved = std::move(hv);
  CHECK(static_cast<bool>(moved));
  CHECK_FALSE(static_cast<bool>(hv));  // NOLINT(bugprone-use-after-move): the documented empty state
  CHECK(hv.target<Pinned>() == nullptr);
  CHECK(hv.last_call_count() == 0);
  try {
    (void)hv.list_domains();
    FAIL("no error");
  } catch (const Error& e) {
    CHECK(e.code() == ErrorCode::internal);
  }
  CHECK(moved.list_domains().empty());
}
