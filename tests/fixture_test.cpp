// The fixture format (fixture.hpp): the reader and writer round trip, every limit, hostile
// files, and the file operations (atomic replacement, the locked read-modify-write).
#include <vcpumap/fixture.hpp>
#include <vcpumap/mock.hpp>

#include <catch2/catch.hpp>

#include <sys/resource.h>
#include <sys/stat.h>

#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <string>

#include "random_maps.hpp"

using namespace vcpumap;

namespace {

std::string error_of(std::string_view text) {
  try {
    (void)read_fixture(text);
  } catch (const Error& e) {
    CHECK(e.code() == ErrorCode::invalid_argument);
    return e.what();
  }
  return "no error";
}

/// A name of hostile bytes: controls, quotes, '#', blanks, invalid UTF-8, bidi controls.
std::string random_name(std::mt19937_64& rng) {
  static const std::string pieces[] = {"web", "db-1", " ", "\t", "#", "\"", "\\", "\x1b]0;pwned\x07", "\r", "\xff",
                                       "\xc3\xa9", "\xe2\x80\xae", "<&>", "]]>", "x=1", "\x7f", "\xc2\x9b"};
  std::string name;
  for (std::size_t i = rng() % 5; i > 0; --i) name += pieces[rng() % std::size(pieces)];
  return name;
}

/// A random host as read_fixture could produce it: derived fields filled the reader's way.
HostSnapshot random_host(std::mt19937_64& rng) {
  HostSnapshot s;
  HostInfo& h = s.host;
  const std::size_t n = 1 + rng() % 200;
  h.possible = CpuMap::full(n);
  h.present = test::random_set(rng, n);
  h.online = h.present & test::random_set(rng, n);
  h.threads_per_core = 1 + static_cast<unsigned>(rng() % 4);
  h.cores_per_socket = 1 + static_cast<unsigned>(rng() % 8);
  h.sockets = 1 + static_cast<unsigned>(rng() % 3);
  for (std::size_t i = 1 + rng() % 3; i > 0; --i) h.numa_nodes.push_back(test::random_set(rng, n));
  detail::derive_cpu_topology(h);
  h.caps.soft_affinity = rng() % 2 == 0;  // Xen-like or Linux-like hosts
  if (rng() % 2) h.caps.vcpu_limit = "cpuset";
  if (rng() % 2) h.system_cpus = test::random_set(rng, n);
  // Xen-like hosts: online vcpus settable, node memory, node affinity, cpupools.
  h.caps.set_online = rng() % 3 == 0;
  h.caps.node_affinity = rng() % 3 == 0;
  if (rng() % 3 == 0) {
    for (std::size_t node = 0; node < h.numa_nodes.size(); ++node) {
      NodeMemory& m = h.node_memory.emplace_back();
      m.size = rng() % 2 ? rng() % (std::uint64_t{1} << 45) : limits::max_node_memory_bytes;
      m.free = rng() % 3 == 0 ? m.size : rng() % (m.size + 1);
    }
  }
  if (rng() % 3 == 0) {
    static const std::string schedulers[] = {"credit", "credit2", "rtds", "arinc653", "null", "scheduler 9", "scheduler 4294967295"};
    CpuMap unpooled = h.present;
    unsigned pool_id = 0;
    for (std::size_t k = 1 + rng() % 3; k > 0; --k) {
      CpuPool& p = h.pools.emplace_back();
      p.id = pool_id;
      pool_id += 1 + static_cast<unsigned>(rng() % 1000);
      p.name = random_name(rng);
      p.scheduler = schedulers[rng() % std::size(schedulers)];
      p.cpus = unpooled & test::random_set(rng, n);
      unpooled -= p.cpus;
    }
    if (h.pools.size() > 1 && rng() % 8 == 0) h.pools.back().id = UINT32_MAX;  // the largest id
  }
  std::uint32_t id = 0;
  for (std::size_t i = rng() % 5; i > 0; --i) {
    DomainSnapshot& d = s.domains.emplace_back();
    d.domain.id = DomainId{id += 1 + static_cast<std::uint32_t>(rng() % 1000)};
    d.domain.name = random_name(rng);
    d.domain.max_vcpus = static_cast<unsigned>(rng() % 6);
    d.domain.flags = {rng() % 2 == 0, rng() % 2 == 0, rng() % 2 == 0, rng() % 2 == 0, rng() % 2 == 0};
    if (rng() % 2) d.domain.uuid = fmt::format("{:08x}-0000-4000-8000-{:012x}", rng() % 0xffffffff, rng() % 0xffffffffffff);
    if (rng() % 4 == 0) d.domain.vcpu_problem = random_name(rng) + "no thread names";
    d.hard = AffinityMatrix(d.domain.max_vcpus, n);
    d.soft = AffinityMatrix::full(d.domain.max_vcpus, n);
    d.limit = AffinityMatrix::full(d.domain.max_vcpus, n);
    if (!h.pools.empty()) d.domain.pool = h.pools[rng() % h.pools.size()].id;
    if (h.caps.node_affinity) d.node_affinity = test::random_set<NodeSet>(rng, h.numa_nodes.size());
    for (unsigned v = 0; v < d.domain.max_vcpus; ++v) {
      VcpuMetrics& m = d.vcpus.emplace_back();
      m.vcpu = v;
      m.state = static_cast<VcpuState>(rng() % 5);
      if (m.state != VcpuState::offline && rng() % 2) m.cpu = static_cast<unsigned>(rng() % n);
      m.cpu_time = std::chrono::nanoseconds(static_cast<std::int64_t>(rng() % (std::uint64_t{1} << 50)));
      if (rng() % 2) m.wait_time = std::chrono::nanoseconds(static_cast<std::int64_t>(rng() % (std::uint64_t{1} << 40)));
      d.hard.set_row(v, test::random_set(rng, n));
      if (h.caps.soft_affinity) d.soft.set_row(v, test::random_set(rng, n));
      if (d.domain.pool) d.limit.set_row(v, h.pool(*d.domain.pool)->cpus);  // a pool's CPUs confine its domains
      else if (!h.caps.vcpu_limit.empty()) d.limit.set_row(v, test::random_set(rng, n));
    }
    d.domain.online_vcpus = static_cast<unsigned>(
        std::count_if(d.vcpus.begin(), d.vcpus.end(), [](const VcpuMetrics& m) { return m.state != VcpuState::offline; }));
    d.domain.cpu_time = rng() % 2 ? *detail::sum_cpu_time(d.vcpus)
                                  : std::chrono::nanoseconds(static_cast<std::int64_t>(rng() % 1'000'000'000'000));
    effective_affinity(d.hard, d.soft, d.limit, h.online, d.effective);
  }
  for (CpuPool& p : h.pools)
    p.domains = static_cast<unsigned>(std::count_if(s.domains.begin(), s.domains.end(),
                                                    [&](const DomainSnapshot& d) { return d.domain.pool == p.id; }));
  return s;
}

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string temp_dir() {
  char dir[] = "/tmp/vcpumap-fixture-test.XXXXXX";
  REQUIRE(::mkdtemp(dir) != nullptr);
  return dir;
}

}  // namespace

TEST_CASE("fixtures round trip: read(write(s)) == s for random hosts with hostile names", "[fixture][property]") {
  std::mt19937_64 rng(20061026);
  for (int i = 0; i < 2000; ++i) {
    const HostSnapshot s = random_host(rng);
    const std::string text = write_fixture(s);
    INFO(text);
    const HostSnapshot back = read_fixture(text);
    REQUIRE(back == s);
    REQUIRE(write_fixture(back) == text);
  }
}

TEST_CASE("fixtures: a name that is not a plain word is quoted, and the rest of the line still reads",
          "[fixture]") {
  HostSnapshot s = read_fixture("host cpus=2\ndomain 1 \"a b#c\\\"d\\\\e\\x1b\" vcpus=1 # comment\nvcpu 0 cpu=1\n");
  REQUIRE(s.domains.size() == 1);
  CHECK(s.domains[0].domain.name == "a b#c\"d\\e\x1b");
  CHECK(s.domains[0].vcpus[0].cpu == 1u);
  CHECK(write_fixture(s).find("domain 1 \"a b#c\\\"d\\\\e\\x1b\" vcpus=1") != std::string::npos);
  CHECK(read_fixture("domain 5 \"\" vcpus=0\n").domains[0].domain.name.empty());
  const HostSnapshot unordered = read_fixture("domain 7 b\ndomain 2 a\n");
  CHECK((unordered.domains[0].domain.name == "a" && unordered.domains[1].domain.name == "b"));
  CHECK(read_fixture("host cpus=8 present=0-5\n").host.numa_nodes == std::vector{CpuMap::parse("0-5", {.universe = 8})});
}

TEST_CASE("fixtures: every number is bounded, and errors name the line and the key", "[fixture][limits]") {
  CHECK(error_of("host cpus=1000000000\n") == "fixture line 1: cpus 1000000000 is beyond the limit of 65536");
  CHECK(error_of("host cpus=18446744073709551616\n") ==
        "fixture line 1: cpus 18446744073709551616 is beyond the limit of 65536");
  CHECK(error_of("host cpus=4 threads_per_core=0\n") ==
        "fixture line 1: host: threads_per_core is 0: it must be 1 to 65536");
  CHECK(error_of("host cpus=4 sockets=0\n") == "fixture line 1: host: sockets is 0: it must be 1 to 65536");
  CHECK(error_of("host cpus=4 threads_per_core=65537\n") ==
        "fixture line 1: threads_per_core 65537 is beyond the limit of 65536");
  // Counts whose 32-bit product wraps to 0 are fine: nothing multiplies them in 32 bits.
  const HostSnapshot wide = read_fixture("host cpus=4 threads_per_core=65536 sockets=65536\n");
  CHECK(wide.host.cores_per_socket == 1);
  CHECK(error_of("host cpus=4\ndomain 1 a vcpus=4294967298\n") ==
        "fixture line 2: vcpus 4294967298 is beyond the limit of 16384");
  CHECK(error_of("host cpus=4\ndomain 4294967296 a\n") ==
        "fixture line 2: domain id 4294967296 is beyond the limit of 4294967295");
  CHECK(error_of("host cpus=4\ndomain 1 a vcpus=2\nvcpu 4294967296\n") ==
        "fixture line 3: vcpu 4294967296 is beyond the limit of 16384");
  CHECK(error_of("host cpus=4\ndomain 1 a\nvcpu 0 time_ns=9223372036854775808\n") ==
        "fixture line 3: time_ns 9223372036854775808 is beyond the limit of 9223372036854775807");
  CHECK(error_of("host cpus=4\ndomain 1 a\nvcpu 0 time=9223372037\n") ==
        "fixture line 3: time 9223372037 is beyond the limit of 9223372036");
  CHECK(error_of("host cpus=4\ndomain 1 a\nvcpu 0 time=9223372036.9\n") ==
        "fixture line 3: time '9223372036.9' is beyond the limit of 9223372036854775807 ns");
  CHECK(error_of("host cpus=4\ndomain 1 a vcpus=2\nvcpu 0 time_ns=9223372036854775807\nvcpu 1 time_ns=1\n") ==
        "fixture line 2: the vcpus' CPU times add up past the limit of 9223372036854775807 ns");
  CHECK(error_of("host cpus=65536\ndomain 1 a vcpus=4096\ndomain 2 b vcpus=1\n") ==
        "fixture line 3: 1 vcpus × 65536 CPUs: the host's affinity matrices would pass the limit of 268435456 cells");
  CHECK(error_of("host cpus=4\nnode 1024 0\n") == "fixture line 2: node id 1024 is beyond the limit of 1023");
  CHECK(error_of("host cpus=4\ndomain 1 " + std::string(4097, 'n') + "\n") ==
        "fixture line 2: a name of 4097 bytes is beyond the limit of 4096");
  CHECK(error_of("host cpus=4 cpus=8\n") == "fixture line 1: key 'cpus' given twice");
  CHECK(error_of("host cpus=4\ndomain 1 a vcpus=2\nvcpu 1\nvcpu 1\n") == "fixture line 4: vcpu 1 is listed twice");
  CHECK(error_of("host cpus=4\ndomain 1 a\nvcpu 0 time=1 time_ns=1\n") == "fixture line 3: give time or time_ns, not both");
  CHECK(error_of(std::string("host cpus=4\ndomain 1 a\0b\n", 23)) == "fixture line 2: NUL byte");
  CHECK(error_of("domain 1 \"abc\n") == "fixture line 1: unterminated quoted word");
  CHECK(error_of("domain 1 \"a\\qb\"\n") == "fixture line 1: bad escape in a quoted word (\\\\, \\\" or \\xHH)");
  CHECK(error_of("domain 1 \"a\"b\n") == "fixture line 1: expected a blank after a quoted word");
  CHECK(error_of("host cpus=4\n\x1b]0;x\x07 1\n") ==
        "fixture line 2: unknown statement '\\x1b]0;x\\x07' (host, node, pool, domain, problem or vcpu)");
  CHECK(error_of("node 0 0\n") == "fixture line 1: 'node' needs a 'host' line before it");
  CHECK(error_of("host cpus=8 present=0-3 online=0-5\n") == "fixture line 1: online CPUs must be present");
}

TEST_CASE("fixtures: the limits themselves are accepted", "[fixture][limits]") {
  const HostSnapshot s = read_fixture("host cpus=65536\ndomain 1 a vcpus=4096\nvcpu 4095 cpu=65535 time_ns=9223372036854775807\n");
  REQUIRE(s.domains.size() == 1);
  CHECK(s.domains[0].hard.rows() == 4096);
  CHECK(s.domains[0].domain.cpu_time.count() == limits::max_cpu_time_ns);
  CHECK(read_fixture("host cpus=4\ndomain 4294967295 " + std::string(4096, 'n') + " vcpus=0\n").domains.size() == 1);
}

TEST_CASE("fixture files: bounded reads, no directories, names escaped in messages", "[fixture][files]") {
  REQUIRE_THROWS_WITH(read_fixture_file("/dev/zero"),
                      "fixture /dev/zero: larger than the limit of 67108864 bytes");
  REQUIRE_THROWS_WITH(read_fixture_file("/tmp"), "fixture /tmp: is a directory");
  REQUIRE_THROWS_WITH(read_fixture_file(""), "fixture: the file name is empty");
  REQUIRE_THROWS_WITH(read_fixture_file("/nonexistent/\x1b[2J"),
                      "fixture /nonexistent/\\x1b[2J: cannot open: No such file or directory");
  try {
    (void)read_fixture_file("/nonexistent/x");
  } catch (const Error& e) {
    CHECK(e.code() == ErrorCode::not_found);
  }
}

TEST_CASE("write_fixture_file replaces a file whole or not at all", "[fixture][files]") {
  const std::string dir = temp_dir(), path = dir + "/host.txt";
  const std::string original = "# a comment the writer would drop\nhost cpus=4\ndomain 1 a vcpus=2\n";
  std::ofstream(path) << original;
  ::chmod(path.c_str(), 0640);

  HostSnapshot big = read_fixture(original);
  big.domains[0].domain.name = std::string(4000, 'x');
  SECTION("a file size limit: the write fails, the old file stays byte for byte") {
    rlimit old{};
    REQUIRE(::getrlimit(RLIMIT_FSIZE, &old) == 0);
    const auto previous = std::signal(SIGXFSZ, SIG_IGN);
    rlimit small = old;
    small.rlim_cur = 1000;
    REQUIRE(::setrlimit(RLIMIT_FSIZE, &small) == 0);
    std::string message;
    try {
      write_fixture_file(path, big);
    } catch (const Error& e) {
      message = e.what();
    }
    REQUIRE(::setrlimit(RLIMIT_FSIZE, &old) == 0);
    std::signal(SIGXFSZ, previous);
    CHECK(message == path + ": cannot write; the file is unchanged: File too large");
    CHECK(slurp(path) == original);
  }
  SECTION("success: the new text, the old permissions, no temporary file left") {
    write_fixture_file(path, big);
    CHECK(read_fixture(slurp(path)) == big);
    struct stat st {};
    REQUIRE(::stat(path.c_str(), &st) == 0);
    CHECK((st.st_mode & 07777) == 0640);
  }
  std::string listing;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) listing += entry.path().filename().string() + ";";
  CHECK(listing == "host.txt;");  // no temporary file left behind
  std::remove(path.c_str());
  ::rmdir(dir.c_str());
}

TEST_CASE("FixtureFile writes back only a changed host, keeping comments otherwise", "[fixture][files]") {
  const std::string dir = temp_dir(), path = dir + "/host.txt";
  const std::string original = "# comment\nhost cpus=4\ndomain 1 a vcpus=2 # another\nvcpu 0 hard=1\n";
  std::ofstream(path) << original;
  {
    FixtureFile file(path);
    MockHypervisor mock = MockHypervisor::from_snapshot(file.host());
    CHECK_FALSE(file.commit(mock.state()));
    CHECK(slurp(path) == original);
    mock.set_affinity(DomainId{1}, 1, CpuMap(4, {2}), CpuMap::full(4));
    CHECK(file.commit(mock.state()));
    CHECK_FALSE(file.commit(mock.state()));
  }
  const HostSnapshot back = read_fixture_file(path);
  CHECK(back.domains[0].hard.row(0) == CpuMap(4, {1}));
  CHECK(back.domains[0].hard.row(1) == CpuMap(4, {2}));
  REQUIRE_THROWS_WITH(FixtureFile("/dev/null"), "fixture /dev/null: not a regular file: it cannot be written back");
  std::remove(path.c_str());
  ::rmdir(dir.c_str());
}

TEST_CASE("a mock from a snapshot is the host the snapshot describes", "[fixture][mock]") {
  std::mt19937_64 rng(7);
  for (int i = 0; i < 200; ++i) {
    const HostSnapshot s = random_host(rng);
    MockHypervisor mock = MockHypervisor::from_snapshot(s);
    HostSnapshot state = mock.state();
    state.taken_at = s.taken_at;
    for (DomainSnapshot& d : state.domains) d.taken_at = {};
    REQUIRE(state == s);
  }
}

TEST_CASE("random hosts have pools, node memory and node affinity often enough to test them", "[fixture][property]") {
  // The generator behind the round-trip properties: a check that it reaches the new fields.
  std::mt19937_64 rng(20061026);
  int pools = 0, memory = 0, affinity = 0, online = 0, pooled_domains = 0;
  for (int i = 0; i < 2000; ++i) {
    const HostSnapshot s = random_host(rng);
    pools += !s.host.pools.empty();
    memory += !s.host.node_memory.empty();
    affinity += s.host.caps.node_affinity;
    online += s.host.caps.set_online;
    for (const DomainSnapshot& d : s.domains) pooled_domains += d.domain.pool.has_value();
  }
  CHECK(pools > 300);
  CHECK(memory > 300);
  CHECK(affinity > 300);
  CHECK(online > 300);
  CHECK(pooled_domains > 300);
}

TEST_CASE("fixtures: Xen's cpupools, node memory, node affinity and online control", "[fixture][xen]") {
  const std::string text =
      "host cpus=8 present=0-6 online=0-5 threads_per_core=2 limit=cpupool vcpu_set=yes node_affinity=yes\n"
      "node 0 0-3 mem=17179869184 free=1048576\n"
      "node 1 4-7\n"
      "pool 3 \"web pool\" sched=credit cpus=4-5 # ids in any order\n"
      "pool 0 Pool-0 cpus=0-3\n"
      "pool 1 empty sched=7\n"
      "domain 0 Domain-0 vcpus=1\n"
      "domain 5 web vcpus=2 pool=3 nodes=1\n"
      "vcpu 0 hard=3-4\n"
      "domain 6 db vcpus=1 nodes=none\n";
  const HostSnapshot s = read_fixture(text);
  const HostInfo& h = s.host;
  CHECK(h.caps.vcpu_limit == "cpupool");
  CHECK(h.caps.set_online);
  CHECK(h.caps.node_affinity);
  REQUIRE(h.node_memory.size() == 2);
  CHECK(h.node_memory[0] == NodeMemory{17179869184ULL, 1048576});
  CHECK(h.node_memory[1] == NodeMemory{0, 0});  // sized to the nodes as soon as one gives mem
  REQUIRE(h.pools.size() == 3);
  CHECK(h.pools[0] == CpuPool{0, "Pool-0", "credit2", CpuMap(8, {0, 1, 2, 3}), 2});  // Domain-0 and db
  CHECK(h.pools[1] == CpuPool{1, "empty", "scheduler 7", CpuMap(8), 0});
  CHECK(h.pools[2] == CpuPool{3, "web pool", "credit", CpuMap(8, {4, 5}), 1});
  CHECK(h.cpu_core[1] == 0u);  // threads_per_core=2: CPUs 0 and 1 share core 0
  CHECK(h.cpu_core[2] == 1u);
  REQUIRE(s.domains.size() == 3);
  CHECK(s.domains[0].domain.pool == 0u);  // no pool=: Pool-0
  CHECK(s.domains[0].node_affinity == NodeSet::full(2));  // no nodes=: every node
  const DomainSnapshot& web = s.domains[1];
  CHECK(web.domain.pool == 3u);
  CHECK(web.node_affinity == NodeSet(2, {1}));
  CHECK(web.limit.row(0) == CpuMap(8, {4, 5}));  // the pool's CPUs, every row
  CHECK(web.limit.row(1) == CpuMap(8, {4, 5}));
  CHECK(web.effective.row(0) == CpuMap(8, {4}));  // 3-4 ∩ pool 4-5 ∩ online
  CHECK(s.domains[2].node_affinity == NodeSet(2));

  // Written canonically: every option spelled out, pools ascending, read back equal.
  const std::string written = write_fixture(s);
  CHECK(written.find("host cpus=8 present=0-6 online=0-5 threads_per_core=2 cores_per_socket=3 sockets=1 "
                     "limit=cpupool vcpu_set=yes node_affinity=yes\n") == 0);
  CHECK(written.find("node 0 0-3 mem=17179869184 free=1048576\nnode 1 4-7 mem=0 free=0\n"
                     "pool 0 Pool-0 sched=credit2 cpus=0-3\npool 1 empty sched=7 cpus=none\n"
                     "pool 3 \"web pool\" sched=credit cpus=4-5\n") != std::string::npos);
  CHECK(written.find("domain 0 Domain-0 vcpus=1 pool=0 nodes=0-1\n") != std::string::npos);
  CHECK(written.find("domain 5 web vcpus=2 pool=3 nodes=1\n") != std::string::npos);
  CHECK(written.find("domain 6 db vcpus=1 pool=0 nodes=none\n") != std::string::npos);
  CHECK(written.find("limit=") == written.find("limit=cpupool"));  // a pool's domains: no vcpu limit= lines
  CHECK(read_fixture(written) == s);
  CHECK(write_fixture(read_fixture(written)) == written);

  // Through the mock: its state is the fixture's snapshot, written back the same.
  HostSnapshot state = MockHypervisor::from_fixture(text).state();
  state.taken_at = s.taken_at;
  for (DomainSnapshot& d : state.domains) d.taken_at = {};
  CHECK(state == s);
  CHECK(write_fixture(state) == written);

  // Without the options: no node memory, no pools, no node affinity, no online control.
  const HostSnapshot plain = read_fixture("host cpus=2\nnode 0 0-1\ndomain 1 a\n");
  CHECK(plain.host.node_memory.empty());
  CHECK(plain.host.pools.empty());
  CHECK_FALSE(plain.host.caps.set_online);
  CHECK_FALSE(plain.host.caps.node_affinity);
  CHECK_FALSE(plain.domains[0].domain.pool);
  CHECK_FALSE(plain.domains[0].node_affinity);
  CHECK(write_fixture(plain).find("pool") == std::string::npos);
  CHECK(write_fixture(plain).find("mem=") == std::string::npos);
  CHECK(read_fixture("host cpus=2 vcpu_set=no node_affinity=no\n").host.caps == Capabilities{});
  // The largest pool id, and the scheduler numbers Xen may report.
  const HostSnapshot big = read_fixture("host cpus=2\npool 4294967295 x sched=4294967295\npool 0 y\n");
  CHECK(big.host.pools[1].id == 4294967295u);
  CHECK(big.host.pools[1].scheduler == "scheduler 4294967295");
  CHECK(read_fixture("host cpus=2\nnode 0 0-1 mem=1152921504606846976 free=1152921504606846976\n").host.node_memory[0].free ==
        limits::max_node_memory_bytes);
}

TEST_CASE("fixtures: pools, node memory and node affinity are bounded and checked, errors naming the line",
          "[fixture][xen][limits]") {
  // Host options.
  CHECK(error_of("host cpus=4 vcpu_set=maybe\n") == "fixture line 1: vcpu_set is yes or no, not 'maybe'");
  CHECK(error_of("host cpus=4 node_affinity=1\n") == "fixture line 1: node_affinity is yes or no, not '1'");
  // node ... mem= free=
  CHECK(error_of("host cpus=4\nnode 0 0-3 mem=1152921504606846977\n") ==
        "fixture line 2: mem 1152921504606846977 is beyond the limit of 1152921504606846976");
  CHECK(error_of("host cpus=4\nnode 0 0-3 mem=18446744073709551616\n") ==
        "fixture line 2: mem 18446744073709551616 is beyond the limit of 1152921504606846976");
  CHECK(error_of("host cpus=4\nnode 0 0-3 mem=10 free=11\n") == "fixture line 2: node 0: free 11 is more than its mem 10");
  CHECK(error_of("host cpus=4\nnode 0 0-3 free=1\n") == "fixture line 2: free= needs mem= (the node's size)");
  CHECK(error_of("host cpus=4\nnode 0 0-3 mem=x\n") == "fixture line 2: mem 'x' is not a number");
  CHECK(error_of("host cpus=4\nnode 0 0-3 mem=1 mem=2\n") == "fixture line 2: key 'mem' given twice");
  CHECK(error_of("host cpus=4\nnode 0 0-3 size=1\n") == "fixture line 2: unknown key 'size' for 'node'");
  CHECK(error_of("host cpus=4\nnode 0 mem=1\n") == "fixture line 2: 'node' needs an id and a cpulist: node 0 0-3 [mem=BYTES] [free=BYTES]");
  // pool
  CHECK(error_of("pool 0 p\n") == "fixture line 1: 'pool' needs a 'host' line before it");
  CHECK(error_of("host cpus=4\ndomain 1 a\npool 0 p\n") == "fixture line 3: 'pool' must come before domains");
  CHECK(error_of("host cpus=4\npool 0\n") == "fixture line 2: 'pool' needs 2 argument(s)");
  CHECK(error_of("host cpus=4\npool 4294967296 p\n") == "fixture line 2: pool id 4294967296 is beyond the limit of 4294967295");
  CHECK(error_of("host cpus=4\npool 0 p\npool 0 q\n") == "fixture line 3: pool 0 is listed twice");
  CHECK(error_of("host cpus=4\npool 0 " + std::string(4097, 'p') + "\n") ==
        "fixture line 2: a name of 4097 bytes is beyond the limit of 4096");
  CHECK(error_of("host cpus=4\npool 0 p sched=fifo\n") ==
        "fixture line 2: unknown scheduler 'fifo' (credit, credit2, rtds, arinc653, null, or Xen's scheduler id)");
  CHECK(error_of("host cpus=4\npool 0 p sched=4294967296\n") == "fixture line 2: sched 4294967296 is beyond the limit of 4294967295");
  CHECK(error_of("host cpus=4 present=0-2\npool 0 p cpus=2-3\n") == "fixture line 2: pool 0: CPUs 3 are not present");
  CHECK(error_of("host cpus=4\npool 0 p cpus=0-2\npool 1 q cpus=2-3\n") == "fixture line 3: pool 1: CPUs 2 are in pool 0 already");
  CHECK(error_of("host cpus=4\npool 0 p cpus=4\n") == "fixture line 2: cpulist \"4\": column 1: CPU number beyond the universe");
  CHECK(error_of("host cpus=4\npool 1 p\ndomain 1 a pool=1\n") ==
        "fixture line 2: a host with pools needs pool 0 (Xen's Pool-0 always exists)");
  CHECK(error_of("host cpus=4\npool 1 p\n") == "fixture line 2: a host with pools needs pool 0 (Xen's Pool-0 always exists)");
  CHECK(error_of("host cpus=4\npool 0 p colour=red\n") == "fixture line 2: unknown key 'colour' for 'pool'");
  std::string many = "host cpus=4\n";
  for (int i = 0; i <= 4096; ++i) many += fmt::format("pool {} p\n", i);
  CHECK(error_of(many) == "fixture line 4098: more than 4096 cpupools (the limit)");
  // domain pool= and nodes=
  CHECK(error_of("host cpus=4\ndomain 1 a pool=0\n") == "fixture line 2: pool=0 names no pool (no 'pool 0' line)");
  CHECK(error_of("host cpus=4\npool 0 p\ndomain 1 a pool=2\n") == "fixture line 3: pool=2 names no pool (no 'pool 2' line)");
  CHECK(error_of("host cpus=4\npool 0 p\ndomain 1 a pool=-1\n") == "fixture line 3: pool '-1' is not a number");
  CHECK(error_of("host cpus=4 limit=cpupool\npool 0 p\ndomain 1 a\nvcpu 0 limit=1\n") ==
        "fixture line 4: limit= on a vcpu of a domain in pool 0: its limit is the pool's CPUs");
  CHECK(error_of("host cpus=4\ndomain 1 a nodes=0\n") ==
        "fixture line 2: nodes= on a host without node affinity (host node_affinity=yes)");
  CHECK(error_of("host cpus=4 node_affinity=yes\nnode 0 0-1\nnode 1 2-3\ndomain 1 a nodes=2\n") ==
        "fixture line 4: cpulist \"2\": column 1: CPU number beyond the universe");
  CHECK(error_of("host cpus=4 node_affinity=yes\ndomain 1 a nodes=node:0\n").find("fixture line 2: cpulist \"node:0\"") == 0);
}
