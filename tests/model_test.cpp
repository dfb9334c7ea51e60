#include <vcpumap/format.hpp>
#include <vcpumap/model.hpp>
#include <random>
#include <type_traits>

#include <catch2/catch.hpp>

using namespace vcpumap;

TEST_CASE("Xen's vcpu flags map to one state", "[model]") {
  CHECK(vcpu_state_from_flags(false, false, false) == VcpuState::offline);
  CHECK(vcpu_state_from_flags(false, true, true) == VcpuState::offline);
  CHECK(vcpu_state_from_flags(true, true, false) == VcpuState::running);
  CHECK(vcpu_state_from_flags(true, true, true) == VcpuState::running);  // both set: running wins
  CHECK(vcpu_state_from_flags(true, false, true) == VcpuState::blocked);
  // Online, neither running nor blocked: waiting for a CPU. libvirt's Xen driver called
  // this OFFLINE (a bug noted in anchors.md); it is runnable.
  CHECK(vcpu_state_from_flags(true, false, false) == VcpuState::runnable);
  CHECK(fmt::format("{}", VcpuState::runnable) == "runnable");
  CHECK(to_string(VcpuState::unknown) == "unknown");
}

TEST_CASE("domain ids are their own type", "[model]") {
  static_assert(!std::is_convertible_v<unsigned, DomainId>);
  static_assert(!std::is_convertible_v<DomainId, unsigned>);
  CHECK(to_integer(control_domain) == 0);
  CHECK(fmt::format("{}", DomainId{42}) == "42");
}

TEST_CASE("the host's cpulists: universe and the node: hook", "[model]") {
  HostInfo host;
  host.possible = CpuMap::full(8);
  host.present = CpuMap::full(8);
  host.online = CpuMap(8, {0, 1, 2, 3, 4, 5});
  host.numa_nodes = {CpuMap(8, {0, 1, 2, 3}), CpuMap(8, {4, 5, 6, 7})};
  CHECK(host.cpu_universe() == 8);
  CHECK(host.parse("all") == CpuMap::full(8));
  CHECK(host.parse("node:1,^5") == CpuMap(8, {4, 6, 7}));
  CHECK(host.parse("^node:0") == CpuMap(8, {4, 5, 6, 7}));
  CHECK(host.parse("5-", Dialect::compat) == CpuMap(8, {5, 6, 7}));
  REQUIRE_THROWS_AS(host.parse("8"), ParseError);
  REQUIRE_THROWS_WITH(host.parse("node:2"), "cpulist \"node:2\": column 6: no such NUMA node");
}

TEST_CASE("effective affinity follows Xen's rule", "[model]") {
  const CpuMap online(8, {0, 1, 2, 3, 4, 5});
  AffinityMatrix hard(3, 8), soft(3, 8);
  hard.set_row(0, CpuMap(8, {0, 1, 2, 3})).set_row(1, CpuMap(8, {0, 1})).set_row(2, CpuMap(8, {5, 6, 7}));
  soft.set_row(0, CpuMap(8, {2, 3, 4})).set_row(1, CpuMap(8, {6})).set_row(2, CpuMap(8, {6, 7}));
  const AffinityMatrix eff = effective_affinity(hard, soft, online);
  CHECK(eff.row(0) == CpuMap(8, {2, 3}));  // hard ∩ soft ∩ online
  CHECK(eff.row(1) == CpuMap(8, {0, 1}));  // soft leaves nothing: hard ∩ online
  CHECK(eff.row(2) == CpuMap(8, {5}));     // soft only offline CPUs: hard ∩ online
}

TEST_CASE("effective affinity into a matrix: reuses it, any online width, no aliasing", "[model]") {
  const CpuMap online(8, {0, 1, 2, 3, 4, 5});
  AffinityMatrix hard(2, 8), soft(2, 8);
  hard.set_row(0, CpuMap(8, {0, 1, 2, 3})).set_row(1, CpuMap(8, {5, 6, 7}));
  soft.set_row(0, CpuMap(8, {2, 3, 4})).set_row(1, CpuMap(8, {6, 7}));
  const AffinityMatrix expect = effective_affinity(hard, soft, online);

  AffinityMatrix into(2, 8);
  into.set(1, 7);  // stale bits are overwritten
  const auto* storage = into.words().data();
  effective_affinity(hard, soft, online, into);
  CHECK(into == expect);
  CHECK(into.words().data() == storage);  // same shape: no new allocation

  AffinityMatrix reshaped(40, 200);  // another shape: takes the inputs' shape
  effective_affinity(hard, soft, online, reshaped);
  CHECK(reshaped == expect);

  // online maps narrower or wider than the matrices: missing columns are offline.
  effective_affinity(hard, soft, CpuMap(3, {0, 1, 2}), into);
  CHECK(into.row(0) == CpuMap(8, {2}));
  CHECK(into.row(1).empty());
  effective_affinity(hard, soft, CpuMap(300, {3, 6, 299}), into);
  CHECK(into.row(0) == CpuMap(8, {3}));
  CHECK(into.row(1) == CpuMap(8, {6}));

  CHECK_THROWS_WITH(effective_affinity(hard, soft, online, hard),
                    "effective_affinity: the result cannot be one of the inputs");
  CHECK_THROWS_WITH(effective_affinity(hard, AffinityMatrix(3, 8), online, into),
                    "effective_affinity: hard and soft matrices differ in shape");
}

TEST_CASE("clear() empties a snapshot and keeps its storage", "[model]") {
  DomainSnapshot s;
  s.domain.name = "guest";
  s.domain.max_vcpus = 2;
  s.vcpus.resize(2);
  s.hard = AffinityMatrix::full(2, 64);
  s.scope = SnapshotScope::metrics_only;
  const auto capacity = s.vcpus.capacity();
  s.clear();
  CHECK(s.domain == DomainInfo{});
  CHECK(s.vcpus.empty());
  CHECK(s.vcpus.capacity() == capacity);
  CHECK((s.hard.rows() == 0 && s.hard.cols() == 0 && s.hard.words().empty()));
  CHECK(s.scope == SnapshotScope::full);
  s.hard.reshape(2, 64);
  CHECK(s.hard == AffinityMatrix(2, 64));  // no stale bits come back
}

TEST_CASE("effective affinity: every row width agrees with the rule bit by bit", "[model][property]") {
  std::mt19937_64 rng(20061 * 26);
  for (std::size_t cols : {1u, 63u, 64u, 65u, 128u, 200u, 256u, 300u, 512u, 600u}) {
    for (std::size_t online_cols : {cols, cols / 2 + 1, cols + 70}) {
      const std::size_t rows = 1 + rng() % 9;
      AffinityMatrix hard(rows, cols), soft(rows, cols);
      CpuMap online(online_cols);
      for (std::size_t c = 0; c < online_cols; ++c)
        if (rng() % 4 != 0) online.set(c);
      for (std::size_t v = 0; v < rows; ++v)
        for (std::size_t c = 0; c < cols; ++c) {
          if (rng() % 3 == 0) hard.set(v, c);
          if (rng() % (v % 2 ? 50 : 3) == 0) soft.set(v, c);  // odd rows: soft mostly empty
        }
      const AffinityMatrix eff = effective_affinity(hard, soft, online);
      REQUIRE((eff.rows() == rows && eff.cols() == cols));
      for (std::size_t v = 0; v < rows; ++v) {
        auto on = [&](std::size_t c) { return c < online_cols && online.test(c); };
        bool any = false;
        for (std::size_t c = 0; c < cols; ++c) any = any || (hard.test(v, c) && soft.test(v, c) && on(c));
        for (std::size_t c = 0; c < cols; ++c) {
          const bool expect = hard.test(v, c) && on(c) && (!any || soft.test(v, c));
          if (eff.test(v, c) != expect) FAIL("cols " << cols << " online " << online_cols << " vcpu " << v << " CPU " << c);
        }
      }
    }
  }
}

// One type for vcpu numbers: the model's and VcpuSet's members agree.
static_assert(std::is_same_v<decltype(vcpumap::VcpuMetrics::vcpu), vcpumap::VcpuSet::value_type>);

TEST_CASE("HostInfo::siblings: the CPUs of a CPU's socket and core", "[model][topology]") {
  HostInfo h;
  h.possible = h.present = h.online = CpuMap::full(8);
  h.cpu_socket = {0u, 0u, 0u, 0u, 1u, 1u, 1u, 1u};
  h.cpu_core = {0u, 0u, 1u, 1u, 0u, 0u, 1u, 1u};  // core ids restart in each socket
  CHECK(h.siblings(0) == CpuMap(8, {0, 1}));
  CHECK(h.siblings(1) == CpuMap(8, {0, 1}));
  CHECK(h.siblings(5) == CpuMap(8, {4, 5}));  // core 0 of socket 1, not socket 0's CPUs 0-1
  CHECK(h.siblings(6) == CpuMap(8, {6, 7}));
  CHECK(h.siblings(8) == CpuMap(8));          // beyond the host: empty, of the host's universe
  h.cpu_core[3] = std::nullopt;                // an offline CPU: Xen reports no core
  CHECK(h.siblings(3) == CpuMap(8, {3}));     // itself only
  CHECK(h.siblings(2) == CpuMap(8, {2}));     // and not counted with its former sibling
  h.cpu_socket[6] = std::nullopt;
  CHECK(h.siblings(6) == CpuMap(8, {6}));
  CHECK(h.siblings(7) == CpuMap(8, {7}));
  h.cpu_core.resize(2);                        // shorter maps: the rest unknown
  CHECK(h.siblings(5) == CpuMap(8, {5}));
  CHECK(h.siblings(0) == CpuMap(8, {0, 1}));
  HostInfo none;
  CHECK(none.siblings(0) == CpuMap());
}

TEST_CASE("HostInfo::pool and describe(CpuPool)", "[model][pools]") {
  HostInfo h;
  h.possible = h.present = h.online = CpuMap::full(4);
  CHECK(h.pool(0) == nullptr);  // no pools (not Xen)
  h.pools = {CpuPool{0, "Pool-0", "credit2", CpuMap(4, {0, 1}), 2}, CpuPool{4, "", "null", CpuMap(4, {3}), 0},
             CpuPool{7, "evil\x1b[2J", "scheduler 9", CpuMap(4), 0}};
  REQUIRE(h.pool(0) != nullptr);
  CHECK(h.pool(0)->name == "Pool-0");
  CHECK(h.pool(4) == &h.pools[1]);
  CHECK(h.pool(1) == nullptr);
  CHECK(h.pool(8) == nullptr);
  CHECK(describe(*h.pool(0)) == "cpupool 0 (Pool-0)");
  CHECK(describe(*h.pool(4)) == "cpupool 4");  // no name: the id alone
  CHECK(describe(*h.pool(7)) == "cpupool 7 (evil\\x1b[2J)");
  HostInfo copy = h;
  CHECK(copy == h);
  copy.pools[1].domains = 1;
  CHECK_FALSE(copy == h);  // pools are part of the host's value
}

TEST_CASE("HostInfo::cpus_of: the CPUs of a set of NUMA nodes", "[model][numa]") {
  HostInfo h;
  h.possible = h.present = h.online = CpuMap::full(10);
  h.numa_nodes = {CpuMap(10, {0, 1, 2, 3}), CpuMap(10, {4, 5, 6, 7}), CpuMap(10)};
  CHECK(h.cpus_of(NodeSet(3, {1})) == CpuMap(10, {4, 5, 6, 7}));
  CHECK(h.cpus_of(NodeSet(3, {0, 1})) == CpuMap(10, {0, 1, 2, 3, 4, 5, 6, 7}));
  CHECK(h.cpus_of(NodeSet::full(3)) == CpuMap(10, {0, 1, 2, 3, 4, 5, 6, 7}));  // CPUs 8-9 are on no node
  CHECK(h.cpus_of(NodeSet(3, {2})) == CpuMap(10));  // a node without CPUs
  CHECK(h.cpus_of(NodeSet(3)) == CpuMap(10));       // no node: no CPU, of the host's universe
  CHECK(h.cpus_of(NodeSet(64, {1, 3, 63})) == CpuMap(10, {4, 5, 6, 7}));  // nodes beyond the host are ignored
}

TEST_CASE("NodeSet prints and parses like VcpuSet, and is its own type", "[model][numa]") {
  static_assert(!std::is_same_v<NodeSet, CpuMap> && !std::is_same_v<NodeSet, VcpuSet>);
  static_assert(!std::is_convertible_v<NodeSet, CpuMap> && !std::is_convertible_v<CpuMap, NodeSet>);
  static_assert(std::is_same_v<NodeSet::value_type, unsigned>);
  const NodeSet n = NodeSet::parse("0-2,5");
  CHECK(n.count() == 4);
  CHECK(n.to_string() == "0-2,5");
  CHECK(fmt::format("{}", n) == "0-2,5");
  CHECK(fmt::format("{:a}", NodeSet::full(4)) == "all");
  CHECK(fmt::format("{:a}", NodeSet(4)) == "none");
  CHECK(fmt::format("{:x}", NodeSet(8, {0, 3})) == "0x9");
  CHECK(fmt::format("{:y}", NodeSet(4, {1, 2})) == "-yy-");
  ParseOptions four;
  four.universe = 4;
  CHECK(NodeSet::parse("all", four) == NodeSet::full(4));
  CHECK(NodeSet::parse("^1", four) == NodeSet(4, {0, 2, 3}));
  CHECK_THROWS_AS(NodeSet::parse("0-4", four), ParseError);
  const std::vector<CpuMap> nodes{CpuMap(8, {0, 1, 2, 3}), CpuMap(8, {4, 5, 6, 7})};
  ParseOptions topo;
  topo.universe = 2;
  topo.numa_nodes = nodes;
  try {
    (void)NodeSet::parse("node:0", topo);  // "node:" names physical CPUs: not for a set of nodes
    FAIL("a set of nodes parsed a node: item");
  } catch (const ParseError& e) {
    CHECK_THAT(e.what(), Catch::Contains("'node:' names physical CPUs"));
  }
  NodeSet two(2);
  REQUIRE_THROWS_WITH(two.set(2), "node 2 is beyond the set's 2 nodes");
  CHECK(n.first() == 0u);
  CHECK(n.last() == 5u);
}
