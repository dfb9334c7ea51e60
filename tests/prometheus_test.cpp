// vcpumap/prometheus.hpp: the exposition parsed back by a strict reader of the text format
// 0.0.4 (names, label escapes, families announced once and contiguous, no duplicate series,
// UTF-8), and its values checked against the snapshot they came from.
#include <catch2/catch.hpp>

#include <charconv>
#include <map>
#include <set>
#include <string>
#include <vector>

#include <vcpumap/mock.hpp>
#include <vcpumap/prometheus.hpp>

namespace {

using namespace vcpumap;

struct Sample {
  std::string name;
  std::map<std::string, std::string> labels;
  double value = 0;
  std::string value_text;
};

struct Parsed {
  std::map<std::string, std::string> type, help;
  std::vector<Sample> samples;

  /// The samples of a family whose labels include `match`.
  std::vector<Sample> find(const std::string& name, const std::map<std::string, std::string>& match = {}) const {
    std::vector<Sample> out;
    for (const Sample& s : samples) {
      if (s.name != name) continue;
      bool ok = true;
      for (const auto& [k, v] : match) ok = ok && s.labels.count(k) && s.labels.at(k) == v;
      if (ok) out.push_back(s);
    }
    return out;
  }
  double value(const std::string& name, const std::map<std::string, std::string>& match = {}) const {
    const auto found = find(name, match);
    REQUIRE(found.size() == 1);
    return found[0].value;
  }
};

bool name_char(char c, bool first, bool colon) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || (colon && c == ':') ||
         (!first && c >= '0' && c <= '9');
}

std::string read_name(std::string_view line, std::size_t& at, bool colon) {
  const std::size_t start = at;
  while (at < line.size() && name_char(line[at], at == start, colon)) ++at;
  if (at == start) FAIL("no name at column " << start << " of: " << line);
  return std::string(line.substr(start, at - start));
}

/// Reads an exposition as strictly as the format allows; any deviation fails the test.
Parsed parse(const std::string& text) {
  Parsed p;
  REQUIRE((text.empty() || text.back() == '\n'));
  std::size_t bad = text.size();  // the first byte that is not UTF-8, or a control character but newline
  for (std::size_t i = 0; i < text.size();) {
    const auto u = detail::decode_utf8(text, i);
    if (u.length == 0 || (u.code != '\n' && detail::is_control(u.code))) {
      bad = i;
      break;
    }
    i += u.length;
  }
  REQUIRE(bad == text.size());
  std::set<std::string> closed;  // families whose samples are over
  std::string current;
  std::set<std::pair<std::string, std::map<std::string, std::string>>> series;
  std::size_t pos = 0;
  while (pos < text.size()) {
    const std::size_t end = text.find('\n', pos);
    const std::string line = text.substr(pos, end - pos);
    pos = end + 1;
    INFO(line);
    if (line.rfind("# HELP ", 0) == 0 || line.rfind("# TYPE ", 0) == 0) {
      std::size_t at = 7;
      const std::string name = read_name(line, at, true);
      REQUIRE(at < line.size());
      REQUIRE(line[at] == ' ');
      const std::string rest = line.substr(at + 1);
      if (line[2] == 'H') {
        REQUIRE(p.help.count(name) == 0);
        REQUIRE(p.type.count(name) == 0);  // HELP comes first
        REQUIRE(!rest.empty());
        p.help[name] = rest;
      } else {
        REQUIRE(p.type.count(name) == 0);
        REQUIRE((rest == "counter" || rest == "gauge"));
        p.type[name] = rest;
      }
      REQUIRE(closed.count(name) == 0);
      if (!current.empty() && current != name) closed.insert(current);
      current = name;
      continue;
    }
    REQUIRE(line.rfind('#', 0) != 0);
    Sample s;
    std::size_t at = 0;
    s.name = read_name(line, at, true);
    REQUIRE(s.name == current);  // samples follow their family's TYPE, contiguous
    REQUIRE(p.type.count(s.name) == 1);
    if (at < line.size() && line[at] == '{') {
      ++at;
      while (true) {
        const std::string label = read_name(line, at, false);
        REQUIRE(line.substr(at, 2) == "=\"");
        at += 2;
        std::string value;
        while (true) {
          REQUIRE(at < line.size());
          const char c = line[at++];
          if (c == '"') break;
          if (c == '\\') {
            REQUIRE(at < line.size());
            const char e = line[at++];
            REQUIRE((e == '\\' || e == '"' || e == 'n'));
            value += e == 'n' ? '\n' : e;
          } else {
            value += c;
          }
        }
        REQUIRE(s.labels.count(label) == 0);
        REQUIRE(!value.empty());  // an empty label is an absent one: the writer leaves it out
        s.labels[label] = value;
        REQUIRE(at < line.size());
        if (line[at] == '}') {
          ++at;
          break;
        }
        REQUIRE(line[at] == ',');
        ++at;
      }
    }
    REQUIRE(at < line.size());
    REQUIRE(line[at] == ' ');
    s.value_text = line.substr(at + 1);
    const auto [ptr, ec] = std::from_chars(s.value_text.data(), s.value_text.data() + s.value_text.size(), s.value);
    REQUIRE(ec == std::errc());
    REQUIRE(ptr == s.value_text.data() + s.value_text.size());  // no timestamp
    REQUIRE(series.insert({s.name, s.labels}).second);
    if (p.type[s.name] == "counter") CHECK(s.name.ends_with("_total"));
    p.samples.push_back(std::move(s));
  }
  return p;
}

std::map<std::string, std::string> vcpu(const DomainSnapshot& d, unsigned v) {
  return {{"domain_id", std::to_string(to_integer(d.domain.id))}, {"vcpu", std::to_string(v)}};
}

}  // namespace

TEST_CASE("the demo host's exposition parses and says what the snapshot says", "[prometheus]") {
  MockHypervisor hv = MockHypervisor::demo();
  const HostSnapshot snap = hv.snapshot_all();
  ExpositionStats stats;
  stats.read_duration = std::chrono::microseconds(1500);
  stats.read_calls = 3;
  const Parsed p = parse(to_prometheus(snap, stats));

  std::size_t vcpus = 0;
  for (const DomainSnapshot& d : snap.domains) {
    const std::map<std::string, std::string> dom{{"domain_id", std::to_string(to_integer(d.domain.id))},
                                                 {"domain", escape_terminal(d.domain.name)}};
    CHECK(p.value("vcpumap_domain_vcpus", dom) == d.domain.max_vcpus);
    CHECK(p.value("vcpumap_domain_vcpus_online", dom) == d.domain.online_vcpus);
    bool pinned = false;
    for (const VcpuMetrics& m : d.vcpus) {
      ++vcpus;
      const auto labels = vcpu(d, m.vcpu);
      const auto seconds = p.find("vcpumap_vcpu_cpu_seconds_total", labels);
      REQUIRE(seconds.size() == 1);
      // Exact: whole seconds, a point and nine digits of nanoseconds.
      CHECK(seconds[0].value_text ==
            fmt::format("{}.{:09}", m.cpu_time.count() / 1'000'000'000, m.cpu_time.count() % 1'000'000'000));
      for (const Sample& s : p.find("vcpumap_vcpu_state", labels))
        CHECK(s.value == (s.labels.at("state") == to_string(m.state) ? 1 : 0));
      CHECK(p.find("vcpumap_vcpu_state", labels).size() == 5);
      const auto last = p.find("vcpumap_vcpu_last_cpu", labels);
      if (m.cpu && m.state != VcpuState::offline) {
        REQUIRE(last.size() == 1);
        CHECK(last[0].value == *m.cpu);
      } else {
        CHECK(last.empty());
      }
      const bool pin = snap.host.is_pinned(d.hard.row(m.vcpu));
      pinned = pinned || pin;
      CHECK(p.value("vcpumap_vcpu_pinned", labels) == (pin ? 1 : 0));
      CHECK(p.value("vcpumap_vcpu_hard_affinity_cpus", labels) == d.hard.row(m.vcpu).count());
      CHECK(p.value("vcpumap_vcpu_soft_affinity_cpus", labels) == d.soft.row(m.vcpu).count());
      CHECK(p.value("vcpumap_vcpu_effective_affinity_cpus", labels) == d.effective.row(m.vcpu).count());
      const auto info = p.find("vcpumap_vcpu_affinity_info", labels);
      REQUIRE(info.size() == 1);
      CHECK(info[0].labels.at("hard") == d.hard.row(m.vcpu).to_string());
      CHECK(info[0].labels.at("soft") == d.soft.row(m.vcpu).to_string());
      CHECK(info[0].labels.at("effective") == d.effective.row(m.vcpu).to_string());
      // The map is read back exactly: the label is the canonical cpulist.
      CHECK(snap.host.parse(info[0].labels.at("hard")) == d.hard.row(m.vcpu));
    }
    CHECK(p.value("vcpumap_domain_pinned", dom) == (pinned ? 1 : 0));
  }
  CHECK(p.find("vcpumap_vcpu_cpu_seconds_total").size() == vcpus);
  CHECK(p.find("vcpumap_vcpu_affinity_info").size() == vcpus);
  CHECK(p.value("vcpumap_host_cpus") == snap.host.cpu_universe());
  CHECK(p.value("vcpumap_read_duration_seconds") == Approx(0.0015));
  CHECK(p.value("vcpumap_read_calls") == 3);
  CHECK(p.value("vcpumap_read_timestamp_seconds") ==
        Approx(std::chrono::duration<double>(snap.taken_at.time_since_epoch()).count()));
  CHECK(p.type.at("vcpumap_vcpu_cpu_seconds_total") == "counter");
  CHECK(p.type.at("vcpumap_domain_cpu_seconds_total") == "counter");
  // The mock has no run-queue wait: no family for it.
  CHECK(p.type.count("vcpumap_vcpu_wait_seconds_total") == 0);
}

TEST_CASE("per host CPU: the pinned vcpus and domains that may run there", "[prometheus]") {
  MockHypervisor hv = MockHypervisor::from_fixture(R"(host cpus=8 threads_per_core=2 sockets=2
node 0 0-3
node 1 4-7
domain 1 db vcpus=2
vcpu 0 state=running cpu=4 hard=4
vcpu 1 state=blocked cpu=5 hard=5
domain 2 web vcpus=3
vcpu 0 state=running cpu=5 hard=4-5
vcpu 1 state=runnable cpu=0 hard=all
vcpu 2 state=offline hard=0-7
domain 3 batch vcpus=1
vcpu 0 state=running cpu=1 hard=0-6
)");
  const HostSnapshot snap = hv.snapshot_all();
  const Parsed p = parse(to_prometheus(snap));
  const std::vector<int> vcpus{1, 1, 1, 1, 3, 3, 1, 0}, domains{1, 1, 1, 1, 3, 3, 1, 0};
  for (unsigned cpu = 0; cpu < 8; ++cpu) {
    INFO("cpu " << cpu);
    CHECK(p.value("vcpumap_cpu_pinned_vcpus", {{"cpu", std::to_string(cpu)}}) == vcpus[cpu]);
    CHECK(p.value("vcpumap_cpu_pinned_domains", {{"cpu", std::to_string(cpu)}}) == domains[cpu]);
    const auto info = p.find("vcpumap_cpu_info", {{"cpu", std::to_string(cpu)}});
    REQUIRE(info.size() == 1);
    CHECK(info[0].labels.at("node") == (cpu < 4 ? "0" : "1"));
    CHECK(info[0].labels.at("socket") == (cpu < 4 ? "0" : "1"));
    CHECK(info[0].labels.at("core") == std::to_string(cpu % 4 / 2));
  }
  CHECK(p.value("vcpumap_domain_pinned", {{"domain", "db"}}) == 1);
  CHECK(p.value("vcpumap_domain_pinned", {{"domain", "web"}}) == 1);   // vcpu 0 only
  CHECK(p.value("vcpumap_domain_pinned", {{"domain", "batch"}}) == 1);  // 0-6 leaves CPU 7 out
  CHECK(p.value("vcpumap_vcpu_pinned", {{"domain", "web"}, {"vcpu", "1"}}) == 0);
  CHECK(p.value("vcpumap_vcpu_pinned", {{"domain", "web"}, {"vcpu", "2"}}) == 0);  // 0-7 is every CPU
  CHECK(p.find("vcpumap_vcpu_last_cpu", {{"domain", "web"}, {"vcpu", "2"}}).empty());  // offline
  CHECK(p.value("vcpumap_vcpu_state", {{"domain", "web"}, {"vcpu", "2"}, {"state", "offline"}}) == 1);
}

TEST_CASE("hostile domain names stay inside their label, as the tools print them", "[prometheus]") {
  const std::vector<std::string> names{"quote\"d", "back\\slash", "new\nline", "esc\x1b]0;pwned\x07",
                                       std::string("bad\xff\xfe utf8"), "bidi\u202eevil", "}\" 1\nfake_metric 2",
                                       "ünïcödé ✓"};
  MockHypervisor hv(4);
  for (std::size_t i = 0; i < names.size(); ++i) {
    DomainInfo info;
    info.id = DomainId(static_cast<std::uint32_t>(i + 1));
    info.name = names[i];
    info.max_vcpus = 1;
    hv.add_domain(info);
  }
  const HostSnapshot snap = hv.snapshot_all();
  const Parsed p = parse(to_prometheus(snap));
  CHECK(p.find("fake_metric").empty());
  for (std::size_t i = 0; i < names.size(); ++i) {
    INFO(escape_terminal(names[i]));
    const auto found = p.find("vcpumap_domain_vcpus", {{"domain_id", std::to_string(i + 1)}});
    REQUIRE(found.size() == 1);
    CHECK(found[0].labels.at("domain") == escape_terminal(names[i]));
  }
}

TEST_CASE("cardinality: series per vcpu and per CPU, whatever the pins", "[prometheus]") {
  // 4,096 CPUs, 2 domains of 8 vcpus: the series count must not grow with the CPUs a pin names.
  const auto series = [](std::string_view hard) {
    MockHypervisor hv = MockHypervisor::from_fixture(fmt::format(
        "host cpus=4096 sockets=4\ndomain 1 a vcpus=8\nvcpu 0 state=running cpu=0 hard={}\ndomain 2 b vcpus=8\n", hard));
    const Parsed p = parse(to_prometheus(hv.snapshot_all()));
    return p.samples.size();
  };
  const std::size_t one = series("7"), wide = series("0-4094"), every = series("all");
  CHECK(one == wide);
  CHECK(one == every);
  // 16 vcpus x 12 series (13 less the run-queue wait the mock does not report), less the last
  // CPU of the 15 offline vcpus; 4,096 CPUs x 4; 2 domains x 5; the CPU counts and the read time.
  CHECK(one == 16 * 12 - 15 + 4096 * 4 + 2 * 5 + 3);
}

TEST_CASE("a host without soft affinity, with run-queue waits and a domain whose vcpus are unseen", "[prometheus]") {
  MockHypervisor hv = MockHypervisor::from_fixture(R"(host cpus=4 soft=no limit=cpuset
domain 4242 qemu-guest vcpus=2 uuid=4a5b0000-0000-4000-8000-000000000001
vcpu 0 state=running cpu=2 time_ns=1500000000 wait_ns=250000000 hard=2-3 limit=2-3
vcpu 1 state=blocked cpu=3 time_ns=1 wait_ns=0 hard=0-3 limit=2-3
domain 4343 blind vcpus=2
problem "started without debug-threads=on"
)");
  const HostSnapshot snap = hv.snapshot_all();
  const Parsed p = parse(to_prometheus(snap));
  CHECK(p.type.count("vcpumap_vcpu_soft_affinity_cpus") == 0);
  CHECK(p.find("vcpumap_vcpu_affinity_info", {{"vcpu", "0"}})[0].labels.count("soft") == 0);
  CHECK(p.find("vcpumap_vcpu_wait_seconds_total", {{"vcpu", "0"}})[0].value_text == "0.250000000");
  CHECK(p.find("vcpumap_vcpu_cpu_seconds_total", {{"vcpu", "1"}})[0].value_text == "0.000000001");
  CHECK(p.find("vcpumap_vcpu_affinity_info", {{"vcpu", "1"}})[0].labels.at("limit") == "2-3");
  // Hard 0-3 names every CPU: not pinned, though the cpuset confines it.
  CHECK(p.value("vcpumap_vcpu_pinned", {{"vcpu", "1"}}) == 0);
  CHECK(p.value("vcpumap_cpu_pinned_vcpus", {{"cpu", "2"}}) == 1);
  CHECK(p.find("vcpumap_domain_info", {{"domain", "qemu-guest"}})[0].labels.at("uuid") ==
        "4a5b0000-0000-4000-8000-000000000001");
  // The blind domain: its domain series, a problem label, no vcpu series.
  CHECK(p.find("vcpumap_domain_info", {{"domain", "blind"}})[0].labels.at("problem") ==
        "started without debug-threads=on");
  CHECK(p.find("vcpumap_vcpu_cpu_seconds_total", {{"domain", "blind"}}).empty());
  CHECK(p.value("vcpumap_domain_pinned", {{"domain", "blind"}}) == 0);
}

TEST_CASE("a Xen host: the domain's cpupool and node affinity label its info series", "[prometheus]") {
  MockHypervisor hv = MockHypervisor::from_fixture(R"(host cpus=4 limit=cpupool vcpu_set=yes node_affinity=yes
node 0 0-1
node 1 2-3
pool 0 Pool-0 cpus=0-1
pool 1 "fast pool" cpus=2-3
domain 0 Domain-0 vcpus=1
vcpu 0 state=running cpu=0
domain 5 g vcpus=1 pool=1 nodes=1
vcpu 0 state=running cpu=2
)");
  const Parsed p = parse(to_prometheus(hv.snapshot_all()));
  const auto info = p.find("vcpumap_domain_info", {{"domain", "g"}});
  REQUIRE(info.size() == 1);
  CHECK(info[0].labels.at("pool") == "fast pool");
  CHECK(info[0].labels.at("node_affinity") == "1");
  CHECK(p.find("vcpumap_domain_info", {{"domain", "Domain-0"}})[0].labels.at("pool") == "Pool-0");
  // Confined by its pool only, hard stays all: not a pin.
  CHECK(p.value("vcpumap_vcpu_pinned", {{"domain", "g"}}) == 0);
  CHECK(p.find("vcpumap_vcpu_affinity_info", {{"domain", "g"}})[0].labels.at("limit") == "2-3");
  CHECK(p.find("vcpumap_vcpu_affinity_info", {{"domain", "g"}})[0].labels.at("effective") == "2-3");
}

TEST_CASE("a subset of domains, and no domains at all", "[prometheus]") {
  MockHypervisor hv = MockHypervisor::demo();
  const HostSnapshot snap = hv.snapshot_all();
  REQUIRE(snap.domains.size() >= 2);
  const std::vector<const DomainSnapshot*> one{&snap.domains[1]};
  const Parsed p = parse(to_prometheus(snap.host, one));
  CHECK(p.find("vcpumap_domain_vcpus").size() == 1);
  CHECK(p.find("vcpumap_vcpu_cpu_seconds_total").size() == snap.domains[1].vcpus.size());
  CHECK(p.type.count("vcpumap_read_timestamp_seconds") == 0);
  const Parsed none = parse(to_prometheus(snap.host, std::vector<const DomainSnapshot*>{}));
  CHECK(none.find("vcpumap_vcpu_cpu_seconds_total").empty());
  CHECK(none.value("vcpumap_host_cpus") == snap.host.cpu_universe());
}
