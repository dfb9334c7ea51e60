// tests/xen_fake/xen_shim_test.cpp — XenHypervisor (src/xen/xen_hypervisor.cpp, compiled
// into this test) against the fake libxenctrl of fake_xen.cpp: what is Xen's own. Call
// counts, errno mapping, hostile replies, xenstore names, batching sizes, the multicall
// fallback, retries of vanished domains, threads. The Hypervisor contract itself (what
// every operation reports and changes, refusals, rollback, storage reuse, vanishing
// domains left out), with multicall on and off, is tests/conformance's, for every backend.
#include <catch2/catch.hpp>

#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <vcpumap/xen.hpp>

#include "fake_xen.hpp"

using namespace vcpumap;
using fake_xen::Call;

namespace {

constexpr std::uint32_t flag_hard = 1, flag_soft = 2, flag_force = 4;  // XEN_VCPUAFFINITY_*

/// libxl's way, one call per vcpu read: the tests that count calls one by one use it; the
/// multicall tests below check that batching changes the counts and nothing else.
const XenOptions per_call{.multicall = false};

CpuMap cpus(std::size_t universe, std::string_view list) {
  ParseOptions o;
  o.universe = universe;
  return CpuMap::parse(list, o);
}

bool contains(std::string_view text, std::string_view part) { return text.find(part) != std::string_view::npos; }

template <class F>
std::optional<Error> error_of(F&& f) {
  try {
    f();
  } catch (const PinError&) {
    throw;  // use pin_error_of
  } catch (const Error& e) {
    return e;
  }
  return std::nullopt;
}

template <class F>
std::optional<PinError> pin_error_of(F&& f) {
  try {
    f();
  } catch (const PinError& e) {
    return e;
  }
  return std::nullopt;
}

/// The matrix-pin tests' host: 8 CPUs, xperf2 (domain 3) with vcpu v pinned to CPU v and
/// vcpu 1's soft affinity 1-2.
void add_pinned_xperf2() {
  fake_xen::reset(8);
  auto& d = fake_xen::add_domain(3, 4, "xperf2");
  for (std::size_t v = 0; v < 4; ++v) d.vcpus[v].hard = fake_xen::cpus({v});
  d.vcpus[1].soft = fake_xen::cpus({1, 2});
}
/// Their plan: every vcpu of xperf2 to CPUs 4-7, soft 5.
MatrixPin move_to_4_7() {
  MatrixPin plan;
  plan.hard = AffinityMatrix(4, 8);
  plan.soft = AffinityMatrix(4, 8);
  for (unsigned v = 0; v < 4; ++v) {
    plan.hard->set_row(v, cpus(8, "4-7"));
    plan.soft->set_row(v, cpus(8, "5"));
  }
  return plan;
}

}  // namespace

TEST_CASE("constructor: an unusable interface is hypervisor_unavailable, quietly, naming what to check") {
  fake_xen::reset(4);
  fake_xen::host().open_fails = true;
  auto e = error_of([] { XenHypervisor xen; });
  REQUIRE(e);
  CHECK(e->code() == ErrorCode::hypervisor_unavailable);
  CHECK(contains(e->what(),
                 "/dev/xen/privcmd missing or not usable: run in dom0 as root with the xen-privcmd module loaded "
                 "and xenfs mounted"));
  CHECK(contains(e->what(), "Could not obtain handle on privileged command interface"));  // from the logger
  CHECK(contains(e->what(), "ENOENT"));
  CHECK(fake_xen::open_handles() == 0);

  SECTION("a host read refused after the open closes the handle again") {
    fake_xen::reset(4);
    fake_xen::inject({Call::physinfo, {}, {}, EPERM});
    auto refused = error_of([] { XenHypervisor xen; });
    REQUIRE(refused);
    CHECK(refused->code() == ErrorCode::permission_denied);
    CHECK(contains(refused->what(), "XEN_SYSCTL_physinfo"));
    CHECK(contains(refused->what(), "dom0"));
    CHECK(fake_xen::open_handles() == 0);
  }
  SECTION("libxenctrl unable to size CPU maps") {
    fake_xen::reset(4);
    fake_xen::host().cpumap_size_fails = true;
    auto e = error_of([] { XenHypervisor xen; });
    REQUIRE(e);
    CHECK(e->code() == ErrorCode::permission_denied);
    CHECK(contains(e->what(), "xc_get_cpumap_size"));
    CHECK(fake_xen::open_handles() == 0);
  }
  SECTION("available() probes the device without throwing or printing") {
    CHECK_NOTHROW(XenHypervisor::available());
  }
}

TEST_CASE("constructor: the handle lives as long as the object, moves with it") {
  fake_xen::reset(4);
  {
    XenHypervisor xen;
    CHECK(xen.last_call_count() >= 1);  // the host's multicall (+2 physinfo the first time in a process)
    CHECK(fake_xen::open_handles() == 1);
    XenHypervisor moved = std::move(xen);
    CHECK(fake_xen::open_handles() == 1);
    auto e = error_of([&] { xen.host_info(); });  // NOLINT(bugprone-use-after-move): the point
    REQUIRE(e);
    CHECK(e->code() == ErrorCode::internal);
    CHECK(xen.last_call_count() == 0);
    CHECK(moved.host_info().cpu_universe() == 4);
  }
  CHECK(fake_xen::open_handles() == 0);
}

TEST_CASE("host_info: universe max_cpu_id + 1 with holes; topology from cputopoinfo and numainfo") {
  fake_xen::reset(16);
  auto& h = fake_xen::host();
  h.threads_per_core = 2;
  h.cores_per_socket = 4;
  for (std::uint32_t i = 0; i < 16; ++i) h.cpus[i] = {true, true, (i / 2) % 4, i / 8, i / 8};
  h.cpus[5].online = false;   // offline: no core/socket, keeps its node
  h.cpus[9].present = false;  // absent: no topology at all
  for (std::size_t i = 12; i < 16; ++i) h.cpus[i].online = false;  // beyond the last online: undescribed
  XenHypervisor xen;
  fake_xen::reset_counts();
  const HostInfo host = xen.host_info();
  CHECK(xen.last_call_count() == 1);  // one multicall of sysctls
  CHECK(fake_xen::calls(Call::physinfo) == 1);
  CHECK(fake_xen::calls(Call::cputopoinfo) == 1);
  CHECK(fake_xen::calls(Call::numainfo) == 1);
  CHECK(fake_xen::calls(Call::cpupool_info) == 4);  // ids 0-3 asked: Pool-0, then none
  CHECK(fake_xen::total_calls() == 1);
  CHECK(host.cpu_core[2] == 1u);
  CHECK(host.siblings(2) == cpus(16, "2-3"));
  CHECK(host.siblings(4) == cpus(16, "4"));  // its sibling 5 is offline: no core reported
  REQUIRE(host.node_memory.size() == 2);
  CHECK(host.node_memory[1].size == (1ull << 30));
  CHECK(host.node_memory[1].free == (1ull << 29));
  REQUIRE(host.pools.size() == 1);
  CHECK(host.pools[0].name == "Pool-0");
  CHECK(host.pools[0].scheduler == "credit2");
  CHECK(host.pools[0].cpus == host.online);
  CHECK(host.caps.vcpu_limit == "cpupool");
  CHECK(host.caps.set_online);
  CHECK(host.caps.node_affinity);
  XenHypervisor one_each(per_call);
  fake_xen::reset_counts();
  CHECK(one_each.host_info() == host);
  CHECK(one_each.last_call_count() == 3 + 2);  // physinfo, cputopoinfo, numainfo, Pool-0, none from 1

  CHECK(host.cpu_universe() == 16);  // not nr_cpus (10)
  CHECK(host.possible == CpuMap::full(16));
  CHECK(host.present == cpus(16, "0-8,10-15"));  // 12-15: Xen says nothing of them, so maybe parked
  CHECK(host.online == cpus(16, "0-4,6-8,10-11"));
  CHECK(host.sockets == 2);
  CHECK(host.threads_per_core == 2);
  CHECK(host.cores_per_socket == 4);
  REQUIRE(host.numa_nodes.size() == 2);
  CHECK(host.numa_nodes[0] == cpus(16, "0-7"));
  CHECK(host.numa_nodes[1] == cpus(16, "8,10-11"));
  REQUIRE(host.cpu_socket.size() == 16);
  REQUIRE(host.cpu_node.size() == 16);
  CHECK(host.cpu_socket[10] == 1u);
  CHECK_FALSE(host.cpu_socket[5].has_value());
  CHECK(host.cpu_node[5] == 0u);
  CHECK_FALSE(host.cpu_socket[9].has_value());
  CHECK_FALSE(host.cpu_node[9].has_value());
  CHECK_FALSE(host.cpu_socket[12].has_value());
  CHECK_FALSE(host.cpu_node[12].has_value());
  CHECK(host.parse("node:1") == cpus(16, "8,10-11"));
}

TEST_CASE("host_info: hostile sizes are refused or clipped, never trusted") {
  SECTION("max_cpu_id beyond libxenctrl's CPU maps") {
    fake_xen::reset(8);
    fake_xen::host().max_cpu_id = 63;  // the maps hold 8 CPUs
    auto e = error_of([] { XenHypervisor xen; });
    REQUIRE(e);
    CHECK(e->code() == ErrorCode::internal);
    CHECK(contains(e->what(), "max_cpu_id 63"));
    CHECK(contains(e->what(), "hold 8 CPUs"));
    CHECK(fake_xen::open_handles() == 0);
  }
  SECTION("max_cpu_id ~0: no wrap to 0, no 4-billion-bit maps") {
    fake_xen::reset(8);
    fake_xen::host().max_cpu_id = 0xffffffffu;
    auto e = error_of([] { XenHypervisor xen; });
    REQUIRE(e);
    CHECK(e->code() == ErrorCode::internal);
    CHECK(contains(e->what(), "max_cpu_id 4294967295"));
  }
  SECTION("cputopoinfo claiming more entries than asked") {
    fake_xen::reset(8);
    fake_xen::host().cputopo_count = 100000;
    XenHypervisor xen;
    CHECK(xen.host_info().online == CpuMap::full(8));
  }
  SECTION("maps larger than the universe are fine while Xen keeps their tail clear") {
    fake_xen::reset(6);
    fake_xen::host().map_cpus = 16;
    fake_xen::add_domain(1, 1, "one");
    XenHypervisor xen;
    auto s = xen.snapshot(DomainId{1});
    CHECK(s.hard.cols() == 6);
    CHECK(s.hard.row(0) == CpuMap::full(6));
    SECTION("a bit beyond max_cpu_id in a reply is Xen breaking its word") {
      fake_xen::domain(1).vcpus[0].hard[0] = false;
      fake_xen::domain(1).vcpus[0].hard.resize(16);
      fake_xen::domain(1).vcpus[0].hard[12] = true;
      auto e = error_of([&] { xen.snapshot(DomainId{1}); });
      REQUIRE(e);
      CHECK(e->code() == ErrorCode::internal);
      CHECK(contains(e->what(), "domain 1 (one): vcpu 0: Xen reported a hard affinity beyond the host's 6 CPUs"));
    }
  }
}

TEST_CASE("snapshot: 1 + 2V calls for full, 1 + V for metrics; Xen's flags and stale fields decoded") {
  fake_xen::reset(8);
  auto& d = fake_xen::add_domain(3, 4, "xperf2");
  d.running = true;
  d.cpu_time = 50'000'000'000;
  d.vcpus[0] = {true, true, true, 20'000'000'000, 2, fake_xen::all_cpus(), fake_xen::all_cpus()};  // running+blocked
  d.vcpus[1] = {true, false, false, 18'200'000'000, 3, fake_xen::all_cpus(), fake_xen::all_cpus()};  // runnable
  d.vcpus[2] = {false, false, false, 1'000, 5, fake_xen::all_cpus(), fake_xen::all_cpus()};          // offline
  XenHypervisor xen(per_call);
  fake_xen::reset_counts();

  const DomainSnapshot s = xen.snapshot(DomainId{3});
  CHECK(xen.last_call_count() == 1 + 2 * 4 + 1);  // + the node affinity
  CHECK(fake_xen::total_calls() == 10);
  CHECK(fake_xen::calls(Call::getnodeaffinity) == 1);
  CHECK(fake_xen::calls(Call::getinfolist) == 1);
  CHECK(fake_xen::calls(Call::getvcpuinfo) == 4);
  CHECK(fake_xen::calls(Call::getvcpuaffinity) == 4);

  CHECK(s.domain.online_vcpus == 3);  // nr_online_vcpus
  CHECK(s.domain.flags.running);
  CHECK_FALSE(s.domain.flags.shutdown);  // the all-ones shutdown code bits are not the flag
  CHECK(s.domain.cpu_time == std::chrono::seconds(50));  // Xen's own figure, not the vcpus' sum
  REQUIRE(s.vcpus.size() == 4);
  CHECK(s.vcpus[0].state == VcpuState::running);  // running and blocked both set
  CHECK(s.vcpus[0].cpu == 2u);
  CHECK(s.vcpus[1].state == VcpuState::runnable);  // online, neither flag
  CHECK(s.vcpus[2].state == VcpuState::offline);
  CHECK_FALSE(s.vcpus[2].cpu.has_value());  // Xen's `cpu` of an offline vcpu is stale

  fake_xen::reset_counts();
  (void)xen.snapshot(DomainId{3}, SnapshotScope::metrics_only);
  CHECK(xen.last_call_count() == 1 + 4);
  CHECK(fake_xen::calls(Call::getvcpuaffinity) == 0);
}

TEST_CASE("snapshot: maps of hosts with more than 8 CPUs keep every bit in its place") {
  fake_xen::reset(20);
  auto& d = fake_xen::add_domain(2, 2, "wide");
  d.vcpus[0].hard = fake_xen::cpus({0, 8, 9, 17, 19});
  d.vcpus[1].soft = fake_xen::cpus({7, 15, 16});
  XenHypervisor xen;
  const DomainSnapshot s = xen.snapshot(DomainId{2});
  CHECK(s.hard.row(0) == cpus(20, "0,8-9,17,19"));
  CHECK(s.soft.row(1) == cpus(20, "7,15-16"));
  CHECK(s.hard.row(1) == CpuMap::full(20));
}

TEST_CASE("domains with no vcpus: max_vcpu_id invalid means 0 vcpus; absurd ones are refused") {
  fake_xen::reset(4);
  fake_xen::add_domain(0, 1, "Domain-0");
  fake_xen::add_domain(5, 0, "building");  // between createdomain and max_vcpus
  XenHypervisor xen;
  auto list = xen.list_domains();
  REQUIRE(list.size() == 2);
  CHECK(list[1].max_vcpus == 0);
  fake_xen::reset_counts();
  const DomainSnapshot s = xen.snapshot(DomainId{5});
  CHECK(xen.last_call_count() == 1);
  CHECK(s.vcpus.empty());
  CHECK(s.hard.rows() == 0);
  CHECK(s.effective.rows() == 0);

  fake_xen::add_domain(6, 1, "liar").max_vcpu_id = 0xfffffffeu;
  list = xen.list_domains();
  REQUIRE(list.size() == 3);
  CHECK(list[2].max_vcpus == 0xffffffffu);  // reported as is, nothing allocated by it
  auto e = error_of([&] { xen.snapshot(DomainId{6}); });
  REQUIRE(e);
  CHECK(e->code() == ErrorCode::internal);
  CHECK(contains(e->what(), "domain 6 (liar): Xen reports max_vcpu_id 4294967294"));
  CHECK(xen.last_call_count() == 1);  // no vcpu call either
  auto whole = error_of([&] { xen.snapshot_all(); });
  REQUIRE(whole);
  CHECK(whole->code() == ErrorCode::internal);
}

TEST_CASE("list_domains: batches of 1024 until a short one, ascending, names from xenstore") {
  fake_xen::reset(4);
  for (std::uint32_t id = 0; id < 2000; ++id)
    fake_xen::add_domain(id, 1, id == 0 ? "Domain-0" : "guest" + std::to_string(id));
  std::vector<std::uint32_t> firsts;
  XenHypervisor xen(per_call);
  fake_xen::on_call([&](Call call, std::uint32_t first, std::uint32_t) {
    if (call == Call::getinfolist) firsts.push_back(first);
  });
  const auto list = xen.list_domains();
  CHECK(xen.last_call_count() == 2);
  CHECK(firsts == std::vector<std::uint32_t>{0, 1024});
  REQUIRE(list.size() == 2000);
  for (std::size_t i = 0; i < list.size(); ++i) REQUIRE(list[i].id == DomainId{static_cast<std::uint32_t>(i)});
  CHECK(list[0].name == "Domain-0");
  CHECK(list[1999].name == "guest1999");

  SECTION("exactly 1024 domains: a second, empty batch") {
    for (std::uint32_t id = 1024; id < 2000; ++id) fake_xen::remove_domain(id);
    CHECK(xen.list_domains().size() == 1024);
    CHECK(xen.last_call_count() == 2);
  }
  SECTION("1023 domains: one batch") {
    for (std::uint32_t id = 1023; id < 2000; ++id) fake_xen::remove_domain(id);
    CHECK(xen.list_domains().size() == 1023);
    CHECK(xen.last_call_count() == 1);
  }
  SECTION("the whole host: 3 + 2 + 2 + 2000 * 3 calls") {
    fake_xen::on_call(nullptr);
    const HostSnapshot all = xen.snapshot_all();
    CHECK(all.domains.size() == 2000);
    CHECK(xen.last_call_count() == 3 + 2 + 2 + 2000 * 3);  // host + pools, lists, vcpus + node affinity
  }
}

TEST_CASE("list_domains: hostile lists are refused, not looped on") {
  fake_xen::reset(4);
  for (std::uint32_t id = 0; id < 5; ++id) fake_xen::add_domain(id, 1);
  XenHypervisor xen(per_call);
  SECTION("more domains than asked") {
    fake_xen::host().getinfolist_extra = 2000;
    auto e = error_of([&] { xen.list_domains(); });
    REQUIRE(e);
    CHECK(e->code() == ErrorCode::internal);
    CHECK(contains(e->what(), "returned 2005 domains for 1024 asked"));
  }
  SECTION("out of order") {
    fake_xen::host().getinfolist_descending = true;
    auto e = error_of([&] { xen.list_domains(); });
    REQUIRE(e);
    CHECK(e->code() == ErrorCode::internal);
    CHECK(contains(e->what(), "not ascending"));
  }
  SECTION("a single-domain query answered with several") {
    fake_xen::host().getinfolist_extra = 1;
    auto e = error_of([&] { xen.snapshot(DomainId{2}); });
    REQUIRE(e);
    CHECK(e->code() == ErrorCode::internal);
  }
}

TEST_CASE("names: xenstored absent, silent or without the node; never blocking") {
  fake_xen::reset(4);
  fake_xen::add_domain(0, 1);  // no name node
  fake_xen::add_domain(7, 1, "web");

  SECTION("running: names, and the fallback for a domain without one") {
    XenHypervisor xen;
    const auto list = xen.list_domains();
    CHECK(list[0].name == "Domain-0");
    CHECK(list[1].name == "web");
    CHECK(fake_xen::xenstore_reads() >= 2);
  }
  SECTION("absent: Domain-0 and the id") {
    fake_xen::set_xenstored(fake_xen::Xenstored::absent);
    XenHypervisor xen;
    const auto list = xen.list_domains();
    CHECK(list[0].name == "Domain-0");
    CHECK(list[1].name == "7");
    CHECK(xen.snapshot(DomainId{7}).domain.name == "7");
  }
  SECTION("silent: the operation waits at most the timeout, once") {
    fake_xen::set_xenstored(fake_xen::Xenstored::silent);
    XenOptions options;
    options.xenstore_timeout = std::chrono::milliseconds(150);
    XenHypervisor xen(options);
    const auto start = std::chrono::steady_clock::now();
    const auto list = xen.list_domains();
    const auto took = std::chrono::steady_clock::now() - start;
    CHECK(took < std::chrono::seconds(2));
    CHECK(fake_xen::xenstore_reads() <= 2);  // one each in the constructor (pool name) and list_domains
    CHECK(list[1].name == "7");
  }
  SECTION("names off: no xenstore traffic") {
    XenOptions options;
    options.domain_names = false;
    XenHypervisor xen(options);
    CHECK(xen.list_domains()[1].name == "7");
    CHECK(fake_xen::xenstore_reads() == 0);
  }
}

TEST_CASE("errors: errno mapped to codes; messages name the domain, the vcpu and the CPUs") {
  fake_xen::reset(8);
  fake_xen::add_domain(3, 2, "xperf2");
  XenHypervisor xen(per_call);

  SECTION("no such domain: told by the one getdomaininfolist") {
    CHECK(error_of([&] { xen.snapshot(DomainId{7}); }));
    CHECK(xen.last_call_count() == 1);
  }
  SECTION("ids that are no domain: DOMID_SELF is not the caller, 65539 is not domain 3") {
    auto self = error_of([&] { xen.snapshot(DomainId{0x7ff0}); });
    REQUIRE(self);
    CHECK(self->code() == ErrorCode::not_found);
    CHECK(xen.last_call_count() == 0);
    auto wrapped = error_of([&] { xen.pin_vcpu(DomainId{65536 + 3}, 0, {cpus(8, "1"), {}, false}); });
    REQUIRE(wrapped);
    CHECK(wrapped->code() == ErrorCode::not_found);
    CHECK(fake_xen::calls(Call::setvcpuaffinity) == 0);
  }
  SECTION("EPERM and EACCES: permission_denied") {
    fake_xen::inject({Call::getvcpuinfo, 3, 1, EPERM});
    auto e = error_of([&] { xen.snapshot(DomainId{3}); });
    REQUIRE(e);
    CHECK(e->code() == ErrorCode::permission_denied);
    CHECK(contains(e->what(), "domain 3 (xperf2): vcpu 1: reading its state (xc_vcpu_getinfo)"));
    CHECK(contains(e->what(), "EPERM"));
    CHECK(xen.last_call_count() == 3);  // counted up to the failure
    fake_xen::inject({Call::getinfolist, {}, {}, EACCES});
    auto list = error_of([&] { xen.list_domains(); });
    REQUIRE(list);
    CHECK(list->code() == ErrorCode::permission_denied);
    CHECK(contains(list->what(), "xc_domain_getinfolist"));
  }
  SECTION("EBUSY and EAGAIN: busy") {
    fake_xen::inject({Call::getvcpuaffinity, 3, 0, EBUSY});
    auto busy = error_of([&] { xen.snapshot(DomainId{3}); });
    REQUIRE(busy);
    CHECK(busy->code() == ErrorCode::busy);
    CHECK(contains(busy->what(), "vcpu 0: reading its affinity"));
    fake_xen::inject({Call::physinfo, {}, {}, EAGAIN});
    auto again = error_of([&] { xen.host_info(); });
    REQUIRE(again);
    CHECK(again->code() == ErrorCode::busy);
  }
  SECTION("EINVAL: invalid_argument, naming the CPUs of the pin") {
    fake_xen::inject({Call::setvcpuaffinity, 3, 1, EINVAL});
    auto e = error_of([&] { xen.pin_vcpu(DomainId{3}, 1, {cpus(8, "2-3"), cpus(8, "3"), true}); });
    REQUIRE(e);
    CHECK(e->code() == ErrorCode::invalid_argument);
    CHECK(contains(e->what(), "domain 3 (xperf2): vcpu 1: setting hard affinity 2-3 and soft affinity 3, forced "
                              "(xc_vcpu_setaffinity)"));
    CHECK(contains(e->what(), "EINVAL"));
  }
  SECTION("anything else: internal") {
    fake_xen::inject({Call::numainfo, {}, {}, EIO});
    auto e = error_of([&] { xen.host_info(); });
    REQUIRE(e);
    CHECK(e->code() == ErrorCode::internal);
    CHECK(contains(e->what(), "xc_numainfo"));
  }
}

TEST_CASE("snapshot_all: a domain vanishing midway is retried once, then left out, never torn") {
  fake_xen::reset(4);
  fake_xen::add_domain(0, 2, "Domain-0");
  fake_xen::add_domain(3, 4, "doomed");
  fake_xen::add_domain(5, 2, "other");
  XenHypervisor xen(per_call);

  SECTION("destroyed while its affinity is read: left out") {
    fake_xen::on_call([](Call call, std::uint32_t domain, std::uint32_t vcpu) {
      if (call == Call::getvcpuaffinity && domain == 3 && vcpu == 2) fake_xen::remove_domain(3);
    });
    const HostSnapshot all = xen.snapshot_all();
    REQUIRE(all.domains.size() == 2);
    CHECK(all.domains[0].domain.id == DomainId{0});
    CHECK(all.domains[1].domain.id == DomainId{5});
    // host 3 + 2 (pools) + list 1 + dom0 5 + domain 3 (4 + 3, the third failing) + retry 1 + domain 5 5
    CHECK(xen.last_call_count() == 5 + 1 + 5 + 7 + 1 + 5);
  }
  SECTION("a transient ESRCH: the retry reads it whole") {
    fake_xen::domain(3).vcpus[2].hard = fake_xen::cpus({1});
    fake_xen::inject({Call::getvcpuinfo, 3, 1, ESRCH});
    const HostSnapshot all = xen.snapshot_all();
    REQUIRE(all.domains.size() == 3);
    const DomainSnapshot& s = all.domains[1];
    CHECK(s.domain.name == "doomed");
    CHECK(s.vcpus.size() == 4);
    CHECK(s.hard.row(2) == cpus(4, "1"));
    CHECK(xen.last_call_count() == 5 + 1 + 5 + 2 + 1 + 9 + 5);
  }
  SECTION("vanishing again during the retry: left out") {
    fake_xen::inject({Call::getvcpuinfo, 3, 1, ESRCH, 0, 2});
    const HostSnapshot all = xen.snapshot_all(SnapshotScope::metrics_only);
    CHECK(all.domains.size() == 2);
    CHECK(xen.last_call_count() == 5 + 1 + 2 + 2 + 1 + 2 + 2);  // metrics only: no node affinity
  }
}

TEST_CASE("pin_vcpu: the calls and flags of each kind of pin; refusals cost no setaffinity; cpupools") {
  fake_xen::reset(8);
  fake_xen::host().cpus[6].online = false;
  fake_xen::host().cpus[7].online = false;
  fake_xen::add_domain(3, 2, "xperf2");
  XenHypervisor xen(per_call);

  SECTION("hard and soft: 2 calls (domain info, setvcpuaffinity)") {
    fake_xen::reset_counts();
    (void)xen.pin_vcpu(DomainId{3}, 1, {cpus(8, "4-7"), cpus(8, "5-6"), false});
    CHECK(xen.last_call_count() == 2);
    CHECK(fake_xen::calls(Call::setvcpuaffinity) == 1);
    CHECK(fake_xen::last_setaffinity_flags() == (flag_hard | flag_soft));
  }
  SECTION("soft only (the pin that crashed xl): 3 calls, the map left alone read first") {
    fake_xen::reset_counts();
    (void)xen.pin_vcpu(DomainId{3}, 1, {std::nullopt, cpus(8, "0-1"), false});
    CHECK(xen.last_call_count() == 3);
    CHECK(fake_xen::calls(Call::getvcpuaffinity) == 1);
    CHECK(fake_xen::last_setaffinity_flags() == flag_soft);
  }
  SECTION("hard only, forced: 3 calls, XEN_VCPUAFFINITY_FORCE passed on") {
    (void)xen.pin_vcpu(DomainId{3}, 1, {cpus(8, "0-5"), std::nullopt, true});
    CHECK(xen.last_call_count() == 3);
    CHECK(fake_xen::last_setaffinity_flags() == (flag_hard | flag_force));
  }
  SECTION("a cpupool narrower than the host, made after the host was read: read again, Xen's write-back returned") {
    fake_xen::host().pools.push_back({1, "pool1", 6, fake_xen::cpus({0, 1, 2, 3})});
    fake_xen::domain(3).cpupool = 1;
    fake_xen::reset_counts();
    const PinResult r = xen.pin_vcpu(DomainId{3}, 0, {cpus(8, "2-5"), cpus(8, "all"), false});
    CHECK(r.hard == cpus(8, "2-3"));
    CHECK(r.soft == cpus(8, "2-3"));
    CHECK(xen.last_call_count() == 1 + (3 + 3) + 1);  // domain info, the host again (2 pools), setvcpuaffinity
  }
  SECTION("a pin with no CPU of the domain's cpupool: refused before any setaffinity, naming the pool") {
    fake_xen::host().pools.push_back({1, "pool1", 6, fake_xen::cpus({2, 3})});
    fake_xen::domain(3).cpupool = 1;
    (void)xen.host_info();
    fake_xen::reset_counts();
    auto e = error_of([&] { xen.pin_vcpu(DomainId{3}, 0, {cpus(8, "0-1"), {}, false}); });
    REQUIRE(e);
    CHECK(e->code() == ErrorCode::invalid_argument);
    CHECK(contains(e->what(), "cpupool 1 (pool1) 2-3"));
    CHECK(fake_xen::calls(Call::setvcpuaffinity) == 0);
    CHECK(xen.last_call_count() == 1);
  }
  SECTION("rejected before any setaffinity: the domain's info is the only call") {
    auto reject = [&](unsigned vcpu, VcpuPin pin) {
      fake_xen::reset_counts();
      CHECK(error_of([&] { xen.pin_vcpu(DomainId{3}, vcpu, pin); }));
      CHECK(fake_xen::calls(Call::setvcpuaffinity) == 0);
      CHECK(xen.last_call_count() == 1);
    };
    reject(9, {cpus(8, "1"), {}, false});
    reject(0, {cpus(16, "9"), {}, false});
    reject(0, {cpus(8, "6-7"), {}, false});
    reject(0, {CpuMap(8), {}, false});
    reject(0, {});
  }
  SECTION("Xen's own refusal: an empty intersection with the cpupool (its CPUs moved since the host was read)") {
    fake_xen::host().pools.push_back({1, "pool1", 6, fake_xen::cpus({0, 1, 2, 3})});
    fake_xen::domain(3).cpupool = 1;
    (void)xen.host_info();
    fake_xen::host().pools.back().cpus = fake_xen::cpus({0});
    auto e = error_of([&] { xen.pin_vcpu(DomainId{3}, 0, {cpus(8, "2"), {}, false}); });
    REQUIRE(e);
    CHECK(e->code() == ErrorCode::invalid_argument);
    CHECK(contains(e->what(), "setting hard affinity 2"));
  }
}

TEST_CASE("pin_matrix, one call each: 1 + 2V + 1 + V calls; a failure at vcpu k costs k restores") {
  add_pinned_xperf2();
  XenHypervisor xen(per_call);
  MatrixPin plan = move_to_4_7();

  SECTION("success: 1 + 2V + 1 + V calls (the snapshot reads the node affinity)") {
    fake_xen::reset_counts();
    (void)xen.pin_matrix(DomainId{3}, plan);
    CHECK(xen.last_call_count() == 1 + 8 + 1 + 4);
    CHECK(fake_xen::calls(Call::setvcpuaffinity) == 4);
  }
  SECTION("hard only: the soft rows come from the snapshot, no extra read") {
    plan.soft.reset();
    fake_xen::reset_counts();
    (void)xen.pin_matrix(DomainId{3}, plan);
    CHECK(xen.last_call_count() == 1 + 8 + 1 + 4);
    CHECK(fake_xen::last_setaffinity_flags() == flag_hard);
  }
  SECTION("failure at vcpu 2: vcpus 0-1 restored, forced, the errno named") {
    fake_xen::inject({Call::setvcpuaffinity, 3, 2, EBUSY});
    fake_xen::reset_counts();
    auto e = pin_error_of([&] { xen.pin_matrix(DomainId{3}, plan); });
    REQUIRE(e);
    CHECK(contains(e->what(), "vcpus 0-1 restored"));
    CHECK(contains(e->what(), "EBUSY"));
    CHECK(xen.last_call_count() == 1 + 8 + 1 + 3 + 2);  // snapshot, vcpus 0-2, two restores
    CHECK(fake_xen::last_setaffinity_flags() == (flag_hard | flag_soft | flag_force));
  }
  SECTION("failure at vcpu 0: nothing changed, nothing to restore") {
    fake_xen::inject({Call::setvcpuaffinity, 3, 0, EPERM});
    auto e = pin_error_of([&] { xen.pin_matrix(DomainId{3}, plan); });
    REQUIRE(e);
    CHECK(e->code() == ErrorCode::permission_denied);
    CHECK(contains(e->what(), "nothing was changed"));
    CHECK(xen.last_call_count() == 1 + 8 + 1 + 1);
  }
  SECTION("the domain vanishing midway: not_found, and the restores fail too") {
    fake_xen::on_call([](Call call, std::uint32_t domain, std::uint32_t vcpu) {
      if (call == Call::setvcpuaffinity && domain == 3 && vcpu == 1) fake_xen::remove_domain(3);
    });
    auto e = pin_error_of([&] { xen.pin_matrix(DomainId{3}, plan); });
    REQUIRE(e);
    CHECK(e->code() == ErrorCode::internal);  // vcpu 0 could not be restored: the domain is gone
    CHECK_FALSE(e->rolled_back());
    CHECK(contains(e->what(), "no such domain"));
  }
}

TEST_CASE("domain flags: shutdown decoded from XEN_DOMINF_shutdown only") {
  fake_xen::reset(2);
  auto& live = fake_xen::add_domain(1, 1, "live");
  live.paused = true;
  auto& dead = fake_xen::add_domain(2, 1, "dead");
  dead.shutdown = true;
  dead.shutdown_code = 0;  // poweroff: the code bits are all zero
  dead.dying = true;
  XenHypervisor xen;
  const auto list = xen.list_domains();
  REQUIRE(list.size() == 2);
  CHECK(list[0].flags == DomainFlags{false, true, true, false, false});
  CHECK(list[1].flags == DomainFlags{false, true, false, true, true});
}

TEST_CASE("threads: concurrent readers and pins on one object") {
  fake_xen::reset(8);
  for (std::uint32_t id = 0; id < 4; ++id) fake_xen::add_domain(id, 3, "d" + std::to_string(id));
  XenHypervisor xen;
  std::atomic<int> failures{0};
  auto reader = [&] {
    for (int i = 0; i < 40; ++i) {
      try {
        const HostSnapshot all = xen.snapshot_all();
        if (all.domains.size() != 4 || all.domains[2].hard.rows() != 3) ++failures;
        if (xen.snapshot(DomainId{1}, SnapshotScope::metrics_only).vcpus.size() != 3) ++failures;
      } catch (const Error&) {
        ++failures;
      }
    }
  };
  auto writer = [&] {
    for (unsigned i = 0; i < 40; ++i) {
      try {
        const PinResult r = xen.pin_vcpu(DomainId{2}, i % 3, {cpus(8, i % 2 ? "0-3" : "4-7"), std::nullopt, false});
        if (r.hard != cpus(8, i % 2 ? "0-3" : "4-7")) ++failures;
        MatrixPin plan;
        plan.hard = AffinityMatrix::full(3, 8);
        (void)xen.pin_matrix(DomainId{3}, plan);
      } catch (const Error&) {
        ++failures;
      }
    }
  };
  std::thread a(reader), b(reader), c(writer);
  a.join();
  b.join();
  c.join();
  CHECK(failures == 0);
}

TEST_CASE("multicall: a domain's vcpus in 1 + ceil(V/128) calls, the same data as one call each") {
  fake_xen::reset(8);
  fake_xen::host().cpus[6].online = false;
  auto& d = fake_xen::add_domain(3, 4, "xperf2");
  d.vcpus[0] = {true, true, true, 20'000'000'000, 2, fake_xen::all_cpus(), fake_xen::all_cpus()};
  d.vcpus[1] = {true, false, false, 18'200'000'000, 3, fake_xen::cpus({7}), fake_xen::all_cpus()};
  d.vcpus[2] = {false, false, false, 1'000, 5, fake_xen::all_cpus(), fake_xen::cpus({})};
  d.vcpus[3] = {true, false, true, 17'800'000'000, 1, fake_xen::cpus({0, 1}), fake_xen::cpus({1, 6})};
  fake_xen::add_domain(4, 300, "wide").vcpus[299].hard = fake_xen::cpus({5});
  fake_xen::add_domain(5, 0, "empty");
  XenHypervisor batched;
  XenHypervisor one_each(per_call);

  auto same = [](const DomainSnapshot& a, const DomainSnapshot& b) {
    CHECK(a.domain == b.domain);
    CHECK(a.vcpus == b.vcpus);
    CHECK(a.hard == b.hard);
    CHECK(a.soft == b.soft);
    CHECK(a.effective == b.effective);
    CHECK(a.scope == b.scope);
  };
  for (SnapshotScope scope : {SnapshotScope::full, SnapshotScope::metrics_only}) {
    const bool full = scope == SnapshotScope::full;
    fake_xen::reset_counts();
    const DomainSnapshot s = batched.snapshot(DomainId{3}, scope);
    CHECK(batched.last_call_count() == 1 + 1);
    CHECK(fake_xen::total_calls() == 2);
    CHECK(fake_xen::calls(Call::multicall) == 1);
    CHECK(fake_xen::calls(Call::getvcpuinfo) == 4);
    CHECK(fake_xen::calls(Call::getvcpuaffinity) == (full ? 4u : 0u));
    same(s, one_each.snapshot(DomainId{3}, scope));
    if (full) CHECK(s.hard.row(1) == cpus(8, "7"));

    const DomainSnapshot wide = batched.snapshot(DomainId{4}, scope);
    CHECK(batched.last_call_count() == 1 + (full ? 3u : 2u));  // 128+128+44 vcpus, or 256+44
    same(wide, one_each.snapshot(DomainId{4}, scope));
    if (full) CHECK(wide.hard.row(299) == cpus(8, "5"));
    CHECK(wide.vcpus[299].vcpu == 299);

    CHECK(batched.snapshot(DomainId{5}, scope).vcpus.empty());
    CHECK(batched.last_call_count() == 1);  // no vcpu, no multicall
  }
  const HostSnapshot all = batched.snapshot_all();
  CHECK(batched.last_call_count() == 1 + 1 + 3);  // 4 + 300 vcpus: one domain's run on in the next
  const HostSnapshot reference = one_each.snapshot_all();
  REQUIRE(all.domains.size() == reference.domains.size());
  for (std::size_t i = 0; i < all.domains.size(); ++i) same(all.domains[i], reference.domains[i]);
  CHECK(fake_xen::open_buffers() == 0);
}

TEST_CASE("multicall: the whole host in 1 + 1 + ceil(vcpus/128) calls, whatever the number of domains") {
  fake_xen::reset(16);
  for (std::uint32_t id = 0; id < 200; ++id) fake_xen::add_domain(id, id % 7, "d" + std::to_string(id));
  fake_xen::domain(153).vcpus[5].hard = fake_xen::cpus({3, 9});  // 153 % 7 = 6 vcpus
  XenHypervisor xen;
  XenHypervisor one_each(per_call);
  std::size_t vcpus = 0;
  for (std::uint32_t id = 0; id < 200; ++id) vcpus += id % 7;
  for (SnapshotScope scope : {SnapshotScope::full, SnapshotScope::metrics_only}) {
    HostSnapshot all;
    xen.snapshot_all(scope, all);
    const std::size_t per_multicall = scope == SnapshotScope::full ? 128 : 256;
    CHECK(xen.last_call_count() == 1 + 1 + (vcpus + per_multicall - 1) / per_multicall);
    const HostSnapshot reference = one_each.snapshot_all(scope);
    const std::size_t with_vcpus = 200 - (200 + 6) / 7;  // ids 0, 7, 14...: no vcpu
    CHECK(one_each.last_call_count() ==
          5 + 1 + (scope == SnapshotScope::full ? vcpus * 2 + with_vcpus : vcpus));
    REQUIRE(all.domains.size() == 200);
    for (std::size_t i = 0; i < 200; ++i) {
      CHECK(all.domains[i].domain == reference.domains[i].domain);
      CHECK(all.domains[i].vcpus == reference.domains[i].vcpus);
      CHECK(all.domains[i].effective == reference.domains[i].effective);
      CHECK(all.domains[i].node_affinity == reference.domains[i].node_affinity);
    }
    if (scope == SnapshotScope::full) CHECK(all.domains[153].hard.row(5) == cpus(16, "3,9"));
  }
  CHECK(fake_xen::open_buffers() == 0);
}

TEST_CASE("multicall: failures inside are the domain's, named by vcpu; a refused multicall falls back") {
  fake_xen::reset(4);
  fake_xen::add_domain(0, 2, "Domain-0");
  fake_xen::add_domain(3, 4, "doomed");
  fake_xen::add_domain(5, 2, "other");
  XenHypervisor xen;

  SECTION("an error of one domctl: typed, naming the vcpu and the domctl") {
    fake_xen::inject({Call::getvcpuaffinity, 3, 2, EPERM});
    auto e = error_of([&] { xen.snapshot(DomainId{3}); });
    REQUIRE(e);
    CHECK(e->code() == ErrorCode::permission_denied);
    CHECK(contains(e->what(), "domain 3 (doomed): vcpu 2: reading its affinity (XEN_DOMCTL_getvcpuaffinity in a "
                              "multicall)"));
    fake_xen::inject({Call::getvcpuinfo, 3, 3, EINVAL});
    e = error_of([&] { xen.snapshot(DomainId{3}, SnapshotScope::metrics_only); });
    REQUIRE(e);
    CHECK(e->code() == ErrorCode::invalid_argument);
    CHECK(contains(e->what(), "vcpu 3: reading its state (XEN_DOMCTL_getvcpuinfo in a multicall)"));
    CHECK(xen.snapshot(DomainId{3}).vcpus.size() == 4);  // still batched after domain errors
    CHECK(xen.last_call_count() == 2);
  }
  SECTION("a domain vanishing inside the multicall: not_found, or retried then left out") {
    fake_xen::on_call([](Call call, std::uint32_t domain, std::uint32_t vcpu) {
      if (call == Call::getvcpuinfo && domain == 3 && vcpu == 1) fake_xen::remove_domain(3);
    });
    auto e = error_of([&] { xen.snapshot(DomainId{3}); });
    REQUIRE(e);
    CHECK(e->code() == ErrorCode::not_found);
    fake_xen::add_domain(3, 4, "doomed");
    const HostSnapshot all = xen.snapshot_all();
    REQUIRE(all.domains.size() == 2);
    CHECK(all.domains[1].domain.id == DomainId{5});
    CHECK(xen.last_call_count() == 1 + 1 + 1 + 1);  // host, list, every vcpu, doomed's retry
    CHECK(all.domains[1].vcpus.size() == 2);           // the others are read whole
    CHECK(all.domains[0].hard == AffinityMatrix::full(2, 4));
  }
  SECTION("a transient ESRCH in the shared multicall: that domain is read again, alone") {
    fake_xen::domain(3).vcpus[3].hard = fake_xen::cpus({2});
    fake_xen::inject({Call::getvcpuaffinity, 3, 3, ESRCH});
    const HostSnapshot all = xen.snapshot_all();
    REQUIRE(all.domains.size() == 3);
    CHECK(all.domains[1].hard.row(3) == cpus(4, "2"));
    CHECK(all.domains[1].effective.row(3) == cpus(4, "2"));
    CHECK(xen.last_call_count() == 1 + 1 + 1 + 1 + 1);  // host, list, every vcpu, doomed's info and vcpus
  }
  SECTION("Xen refusing the multicall: one call each, from then on") {
    const DomainSnapshot expect = XenHypervisor(per_call).snapshot(DomainId{3});
    fake_xen::inject({Call::multicall, std::nullopt, std::nullopt, ENOSYS});
    fake_xen::reset_counts();
    const DomainSnapshot s = xen.snapshot(DomainId{3});
    CHECK((s.vcpus == expect.vcpus && s.hard == expect.hard && s.soft == expect.soft));
    CHECK(xen.last_call_count() == 1 + 1 + 2 * 4 + 1);  // the refused multicall counts; + node affinity
    CHECK(fake_xen::calls(Call::multicall) == 1);
    (void)xen.snapshot(DomainId{3});
    CHECK(xen.last_call_count() == 1 + 2 * 4 + 1);
    CHECK(fake_xen::calls(Call::multicall) == 1);  // not tried again
  }
  SECTION("Xen refusing domctls inside a multicall: the same fallback") {
    fake_xen::host().domctl_in_multicall = false;
    const DomainSnapshot s = xen.snapshot(DomainId{3}, SnapshotScope::metrics_only);
    CHECK(s.vcpus.size() == 4);
    CHECK(xen.last_call_count() == 1 + 1 + 4);
    (void)xen.snapshot(DomainId{0}, SnapshotScope::metrics_only);
    CHECK(xen.last_call_count() == 1 + 2);
  }
  SECTION("a multicall failing otherwise is an error, not a fallback") {
    fake_xen::inject({Call::multicall, std::nullopt, std::nullopt, EIO});
    auto e = error_of([&] { xen.snapshot(DomainId{3}); });
    REQUIRE(e);
    CHECK(e->code() == ErrorCode::internal);
    CHECK(contains(e->what(), "domain 3 (doomed): vcpus 0-3: reading their state and affinity (multicall)"));
    CHECK(xen.snapshot(DomainId{3}).vcpus.size() == 4);
    CHECK(xen.last_call_count() == 2);
  }
  SECTION("a map with CPUs beyond the host: refused, as on the per-call path") {
    fake_xen::domain(3).vcpus[1].hard = std::vector<bool>(8, true);  // CPUs 4-7 of a 4-CPU host
    auto e = error_of([&] { xen.snapshot(DomainId{3}); });
    REQUIRE(e);
    CHECK(e->code() == ErrorCode::internal);
    CHECK(contains(e->what(), "domain 3 (doomed): vcpu 1: Xen reported a hard affinity beyond the host's 4 CPUs"));
  }
  CHECK(fake_xen::open_buffers() == 0);
}

TEST_CASE("multicall: a whole-matrix pin in one multicall; a failure restores every vcpu it changed") {
  add_pinned_xperf2();
  XenHypervisor xen;
  const DomainSnapshot before = xen.snapshot(DomainId{3});
  MatrixPin plan = move_to_4_7();
  auto unchanged = [&] {
    const DomainSnapshot after = xen.snapshot(DomainId{3});
    return after.hard == before.hard && after.soft == before.soft;
  };

  SECTION("success: domain info, one multicall to read, one to pin") {
    fake_xen::reset_counts();
    (void)xen.pin_matrix(DomainId{3}, plan);
    CHECK(xen.last_call_count() == 1 + 1 + 1);
    CHECK(fake_xen::calls(Call::multicall) == 2);
    CHECK(fake_xen::calls(Call::setvcpuaffinity) == 4);
  }
  SECTION("hard only: only the hard flag in the multicall's domctls") {
    plan.soft.reset();
    (void)xen.pin_matrix(DomainId{3}, plan);
    CHECK(fake_xen::last_setaffinity_flags() == flag_hard);
  }
  SECTION("failure at vcpu 2: Xen applied 0, 1 and 3; all three restored in one more multicall") {
    fake_xen::inject({Call::setvcpuaffinity, 3, 2, EBUSY});
    fake_xen::reset_counts();
    auto e = pin_error_of([&] { xen.pin_matrix(DomainId{3}, plan); });
    REQUIRE(e);
    CHECK(contains(e->what(), "XEN_DOMCTL_setvcpuaffinity in a multicall"));
    CHECK(contains(e->what(), "vcpus 0-1,3 restored"));
    CHECK(xen.last_call_count() == 1 + 1 + 1 + 1);
    CHECK(fake_xen::calls(Call::setvcpuaffinity) == 4 + 3);
    CHECK(fake_xen::last_setaffinity_flags() == (flag_hard | flag_soft | flag_force));
  }
  SECTION("the pin's multicall failing as a whole: every vcpu restored, whatever Xen did") {
    fake_xen::inject({Call::multicall, std::nullopt, std::nullopt, EIO, 1});  // the 2nd: the pins
    auto e = pin_error_of([&] { xen.pin_matrix(DomainId{3}, plan); });
    REQUIRE(e);
    CHECK(e->code() == ErrorCode::internal);
    CHECK(e->failed_vcpu() == 0);
    CHECK(e->rolled_back());
    CHECK(contains(e->what(), "vcpus 0-3 restored"));
    CHECK(unchanged());
  }
  SECTION("Xen refusing the pin's multicall: one call per vcpu instead, the same result") {
    fake_xen::inject({Call::multicall, std::nullopt, std::nullopt, ENOSYS, 1});
    const MatrixPinResult r = xen.pin_matrix(DomainId{3}, plan);
    CHECK(xen.last_call_count() == 1 + 1 + 1 + 4);
    CHECK(r.hard == *plan.hard);
    CHECK(xen.snapshot(DomainId{3}).hard == *plan.hard);
  }
  SECTION("300 vcpus: pinned by two multicalls (256 + 44)") {
    fake_xen::add_domain(4, 300, "wide");
    MatrixPin wide;
    wide.hard = AffinityMatrix(300, 8);
    for (unsigned v = 0; v < 300; ++v) wide.hard->set(v, v % 8);
    const MatrixPinResult r = xen.pin_matrix(DomainId{4}, wide);
    CHECK(xen.last_call_count() == 1 + 3 + 2);
    CHECK(r.hard == *wide.hard);
    CHECK(xen.snapshot(DomainId{4}).hard == *wide.hard);
  }
  CHECK(fake_xen::open_buffers() == 0);
}

TEST_CASE("cpupools: listed with the host, in the one multicall or one call each, and each domain's pool") {
  fake_xen::reset(8);
  auto& h = fake_xen::host();
  h.pools[0].cpus = fake_xen::cpus({0, 1});
  h.pools.push_back({1, "pool1", 8, fake_xen::cpus({2, 3})});            // rtds
  h.pools.push_back({6, "we\x1b[31mird", 9, fake_xen::cpus({4, 5, 6})});  // null; a hostile name
  fake_xen::add_domain(0, 2, "Domain-0");
  fake_xen::add_domain(3, 2, "guest").cpupool = 1;
  XenHypervisor xen;
  XenHypervisor one_each(per_call);

  fake_xen::reset_counts();
  const HostInfo host = xen.host_info();
  // The constructor asked ids 0-3 (id 2 and 3 answered pool 6, so one more call from 7 on
  // found none); since then ids 0-7 are asked, the last finding none: one call.
  CHECK(xen.last_call_count() == 1);
  REQUIRE(host.pools.size() == 3);
  CHECK(host.pools[0].cpus == cpus(8, "0-1"));
  CHECK(host.pools[1].name == "pool1");
  CHECK(host.pools[1].scheduler == "rtds");
  CHECK(host.pools[1].domains == 1);
  CHECK(host.pools[2].id == 6);
  CHECK(host.pools[2].scheduler == "null");
  CHECK(host.pools[2].name == "we\x1b[31mird");  // as xenstore has it; describe() escapes it
  CHECK(describe(host.pools[2]) == "cpupool 6 (we\\x1b[31mird)");
  CHECK(one_each.host_info() == host);
  CHECK(one_each.last_call_count() == 3 + 4);  // three pools and the call that finds none

  SECTION("more pools than slots: the rest one call each, and more slots next time") {
    h.pools.push_back({9, "p9", 6, fake_xen::cpus({7})});
    h.pools[2].cpus = fake_xen::cpus({4, 5});
    fake_xen::reset_counts();
    (void)xen.host_info();  // slots 0-7 now: 7 finds pool 9, so one call from 10 on
    CHECK(xen.last_call_count() == 1 + 1);
    const HostInfo again = xen.host_info();  // slots 0-10: the last finds none
    CHECK(xen.last_call_count() == 1);
    REQUIRE(again.pools.size() == 4);
    CHECK(again.pools[3].cpus == cpus(8, "7"));
  }
  SECTION("a domain's limit is its pool: effective rows within it, pins checked against it") {
    const DomainSnapshot s = xen.snapshot(DomainId{3});
    CHECK(s.domain.pool == 1u);
    CHECK(s.limit.row(0) == cpus(8, "2-3"));
    CHECK(s.effective.row(1) == cpus(8, "2-3"));
    CHECK(xen.last_call_count() == 2);  // unchanged by pools: getdomaininfo + one multicall
    auto e = error_of([&] { xen.pin_vcpu(DomainId{3}, 0, {cpus(8, "0"), {}, false}); });
    REQUIRE(e);
    CHECK(contains(e->what(), "holds no online CPU of the vcpu's cpupool 1 (pool1) 2-3"));
    CHECK(fake_xen::calls(Call::setvcpuaffinity) == 0);
    const PinResult r = xen.pin_vcpu(DomainId{3}, 0, {cpus(8, "1-2"), {}, false});
    CHECK(r.hard == cpus(8, "2"));  // Xen's write-back: hard ∩ the pool
    CHECK(r.soft == cpus(8, "2"));  // soft "all" ∩ that
  }
  SECTION("Xen refusing sysctls in a multicall: the host one call each, vcpus still batched") {
    h.sysctl_in_multicall = false;
    fake_xen::reset_counts();
    CHECK(xen.host_info() == host);
    CHECK(xen.last_call_count() == 1 + 3 + 4);  // the refused multicall, then one call each
    (void)xen.host_info();
    CHECK(xen.last_call_count() == 3 + 4);  // not tried again
    (void)xen.snapshot(DomainId{3});
    CHECK(xen.last_call_count() == 2);
  }
}

TEST_CASE("NUMA: node memory with the host, each domain's node affinity with its vcpus") {
  fake_xen::reset(4);
  auto& h = fake_xen::host();
  h.cpus[2].node = h.cpus[3].node = 1;
  fake_xen::add_domain(0, 2, "Domain-0");
  fake_xen::add_domain(3, 2, "guest").node_affinity = {false, true};
  fake_xen::add_domain(4, 0, "empty");
  XenHypervisor xen;
  XenHypervisor one_each(per_call);
  const HostSnapshot all = xen.snapshot_all();
  CHECK(xen.last_call_count() == 1 + 1 + 1);  // host, list, one multicall: vcpus and node affinities
  REQUIRE(all.domains.size() == 3);
  CHECK(all.host.node_memory.size() == 2);
  CHECK(all.domains[0].node_affinity == NodeSet::parse("0-1", {.universe = 2}));
  CHECK(all.domains[1].node_affinity == NodeSet::parse("1", {.universe = 2}));
  CHECK_FALSE(all.domains[2].node_affinity);  // no vcpu: not read
  CHECK(fake_xen::calls(Call::getnodeaffinity) == 2);
  const HostSnapshot reference = one_each.snapshot_all();
  for (std::size_t i = 0; i < 3; ++i) CHECK(all.domains[i].node_affinity == reference.domains[i].node_affinity);
  CHECK_FALSE(xen.snapshot(DomainId{3}, SnapshotScope::metrics_only).node_affinity);

  SECTION("a domain destroyed as its node affinity is read: left out") {
    fake_xen::on_call([](Call call, std::uint32_t domain, std::uint32_t) {
      if (call == Call::getnodeaffinity && domain == 3) fake_xen::remove_domain(3);
    });
    CHECK(xen.snapshot_all().domains.size() == 2);
  }
  SECTION("an error reading it: typed, naming the domctl") {
    fake_xen::inject({Call::getnodeaffinity, 3, {}, EPERM});
    auto e = error_of([&] { xen.snapshot(DomainId{3}); });
    REQUIRE(e);
    CHECK(e->code() == ErrorCode::permission_denied);
    CHECK(contains(e->what(), "domain 3 (guest): reading its node affinity (XEN_DOMCTL_getnodeaffinity"));
  }
}

TEST_CASE("set_online_vcpus: cpu/N/availability of every vcpu in one xenstore transaction, checked first") {
  fake_xen::reset(4);
  fake_xen::add_domain(0, 2, "Domain-0");
  fake_xen::add_domain(3, 4, "guest");
  XenHypervisor xen;
  auto availability = [](unsigned v) {
    return fake_xen::xenstore_value(fmt::format("/local/domain/3/cpu/{}/availability", v)).value_or("(none)");
  };

  SECTION("as xl vcpu-set: online and offline written together; no privileged call but the domain's info") {
    xen.set_online_vcpus(DomainId{3}, VcpuSet::full(2));
    CHECK(xen.last_call_count() == 1);
    CHECK(fake_xen::xenstore_commits() == 1);
    CHECK(availability(0) == "online");
    CHECK(availability(1) == "online");
    CHECK(availability(2) == "offline");
    CHECK(availability(3) == "offline");
    xen.set_online_vcpus(DomainId{3}, VcpuSet::parse("1,3", {.universe = 4}));
    CHECK(availability(0) == "offline");
    CHECK(availability(3) == "online");
  }
  SECTION("refused before any write: none, beyond max vcpus, a missing domain") {
    auto refused = [&](DomainId d, const VcpuSet& set, ErrorCode code, std::string_view says) {
      auto e = error_of([&] { xen.set_online_vcpus(d, set); });
      REQUIRE(e);
      CHECK(e->code() == code);
      CHECK(contains(e->what(), says));
      CHECK(fake_xen::xenstore_commits() == 0);
    };
    refused(DomainId{3}, VcpuSet(4), ErrorCode::invalid_argument, "at least one vcpu must stay online");
    refused(DomainId{3}, VcpuSet::full(5), ErrorCode::invalid_argument, "vcpus 0-4 asked online, but it has 4 vcpus");
    refused(DomainId{9}, VcpuSet::full(1), ErrorCode::not_found, "domain 9: no such domain");
  }
  SECTION("a domain without xenstore, an HVM guest: unsupported, nothing written") {
    fake_xen::domain(3).xenstore_home = false;
    auto e = error_of([&] { xen.set_online_vcpus(DomainId{3}, VcpuSet::full(1)); });
    REQUIRE(e);
    CHECK(e->code() == ErrorCode::unsupported);
    CHECK(contains(e->what(), "no xenstore folder (/local/domain/3)"));
    fake_xen::domain(3).xenstore_home = true;
    fake_xen::domain(3).type = "hvm";
    e = error_of([&] { xen.set_online_vcpus(DomainId{3}, VcpuSet::full(1)); });
    REQUIRE(e);
    CHECK(e->code() == ErrorCode::unsupported);
    CHECK(contains(e->what(), "HVM guest"));
    CHECK(fake_xen::xenstore_commits() == 0);
  }
  SECTION("xenstored absent: hypervisor_unavailable") {
    fake_xen::set_xenstored(fake_xen::Xenstored::absent);
    auto e = error_of([&] { xen.set_online_vcpus(DomainId{3}, VcpuSet::full(1)); });
    REQUIRE(e);
    CHECK(e->code() == ErrorCode::hypervisor_unavailable);
    CHECK(contains(e->what(), "xenstored is not reachable"));
  }
  SECTION("a commit that loses a race is retried; a refused write changes nothing") {
    fake_xen::host().xenstore_commit_eagain = 2;
    xen.set_online_vcpus(DomainId{3}, VcpuSet::full(3));
    CHECK(fake_xen::xenstore_commits() == 1);
    CHECK(availability(2) == "online");
    fake_xen::host().xenstore_write_error = "EACCES";
    auto e = error_of([&] { xen.set_online_vcpus(DomainId{3}, VcpuSet::full(1)); });
    REQUIRE(e);
    CHECK(e->code() == ErrorCode::permission_denied);
    CHECK(contains(e->what(), "nothing was changed"));
    CHECK(availability(2) == "online");  // the aborted transaction left it
  }
}
