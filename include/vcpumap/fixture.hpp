// vcpumap/fixture.hpp — a whole host as text: the fixture format, its reader and its writer.
//
//   vcpumap::HostSnapshot host = vcpumap::read_fixture_file("host.txt");   // or read_fixture(text)
//   std::string text = vcpumap::write_fixture(hv.snapshot_all());          // any backend's host
//   auto mock = vcpumap::MockHypervisor::from_snapshot(host);              // mock.hpp
//
// The reader and the writer are each other's inverse: read_fixture(write_fixture(s)) == s for
// every snapshot the reader can produce (a property the tests and the fuzzer check), so a
// host read from Xen can be saved and replayed by the mock, and tools chain commands through
// a file (--persist).
//
// Format: one statement per line, '#' starts a comment (outside quotes), key=value options:
//   host cpus=8 [present=0-7] [online=0-5] [threads_per_core=2] [cores_per_socket=2] [sockets=2]
//        [soft=no] [limit=cpuset] [vcpu_set=yes] [node_affinity=yes] [system=0-1]
//        (Capabilities: soft_affinity, vcpu_limit, set_online, node_affinity; HostInfo::system_cpus.
//        A Xen host says limit=cpupool vcpu_set=yes node_affinity=yes)
//   node 0 0-3 [mem=BYTES] [free=BYTES]
//        NUMA node 0 holds CPUs 0-3 (default: one node, every present CPU); nodes come in id
//        order. mem/free: HostInfo::node_memory, which has an entry for every node as soon as
//        one node gives mem= (the others 0); free= needs mem= and free <= mem.
//   pool 1 pool1 [sched=credit2] [cpus=4-7]
//        A cpupool (HostInfo::pools, ascending by id whatever the order of the lines): id
//        32-bit, each once; the name quoted like a domain's; sched= credit, credit2 (the
//        default), rtds, arinc653, null, or a number N for Xen's "scheduler N"; cpus= present
//        CPUs that no other pool holds (default none). A host with pools has pool 0 (Xen's
//        Pool-0 always exists). CpuPool::domains is derived (the domains in the pool), never
//        written. Nodes and pools come after 'host' and before domains.
//   domain 3 xperf2 [vcpus=4] [flags=running,paused] [time=1.5] [uuid=4a5b...] [pool=1] [nodes=0-1]
//   domain 9 "name with spaces\x1b" a name that is not a plain word is quoted: \" \\ \xHH
//        pool=ID names a pool line. On a host with pools a domain without pool= is in pool 0,
//        as Xen creates domains in Pool-0; on a host without, pool= is an error. The limit
//        of every vcpu of a domain in a pool is its pool's CPUs (no limit= on its vcpus).
//        nodes=NODELIST: its node affinity (DomainSnapshot::node_affinity), only on a host
//        with node_affinity=yes, nodes below the node count ("none" for no node); there a
//        domain without nodes= has every node.
//   problem "why its vcpus cannot be read"   (DomainInfo::vcpu_problem of the last domain)
//   vcpu 0 [state=running|blocked|runnable|offline|unknown] [cpu=2] [time=20.0 | time_ns=...]
//          [wait_ns=...] [hard=0-3] [soft=all] [limit=0-1]
//          (applies to the last domain; cpulists in this host's terms; soft only on a host
//          with soft affinity, limit only on one with a vcpu limit)
// Domains are read into ascending id order. Vcpus not listed are offline with affinity
// "all" (and limit "all"); a domain's time defaults to the sum of its vcpus'. Without a host line the host has 4 CPUs. Unlisted topology: 1 thread per core, 1
// socket, cores_per_socket = present CPUs / (threads_per_core × sockets).
// The writer writes every option it has a value for (pool= and nodes= whenever the domain
// has them, mem= and free= for every node when the host has node memory, sched= and cpus=
// for every pool), so its output is one canonical text.
//
// Every number is bounded (vcpumap/limits.hpp): CPUs, NUMA nodes, node memory, cpupools,
// topology counts, vcpus per domain, domains, affinity-matrix cells of the whole host, name bytes, CPU times (a vcpu's
// and a domain's sum), the file's size; domain ids are 32-bit. Anything out of range, a
// key given twice, a vcpu listed twice, a NUL byte, is an Error(invalid_argument) naming the
// line: "fixture line 4: vcpus 4294967298 is beyond the limit of 16384". Quoted bytes from the
// file are escaped in messages (escape_terminal).
//
// Files: read_fixture_file reads at most limits::max_fixture_bytes; write_fixture_file
// replaces a file whole or not at all (a temporary file in the same folder, written, flushed
// to disk, renamed over it); FixtureFile holds a file locked from its read to its
// replacement, so processes that change the same file take turns instead of losing changes.
#pragma once

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include "affinity_matrix.hpp"
#include "atomic_file.hpp"
#include "cpu_map.hpp"
#include "error.hpp"
#include "format.hpp"
#include "limits.hpp"
#include "model.hpp"
#include "text.hpp"

namespace vcpumap {

HostSnapshot read_fixture(std::string_view text);
HostSnapshot read_fixture_file(const std::string& path);
std::string write_fixture(const HostSnapshot& host);
void write_fixture_file(const std::string& path, const HostSnapshot& host);

namespace detail {

/// The CPU -> socket, core and node maps a host described by counts implies: the node of a
/// present CPU from numa_nodes; present CPUs fill sockets of threads_per_core × cores_per_socket
/// in id order, threads_per_core consecutive CPUs sharing a core.
inline void derive_cpu_topology(HostInfo& host) {
  const std::size_t n = host.cpu_universe();
  host.cpu_node.assign(n, std::nullopt);
  host.cpu_socket.assign(n, std::nullopt);
  host.cpu_core.assign(n, std::nullopt);
  const std::size_t per_socket = std::max<std::size_t>(1, std::size_t{host.threads_per_core} * host.cores_per_socket);
  for (std::size_t node = 0; node < host.numa_nodes.size(); ++node)
    for (std::size_t cpu : host.numa_nodes[node])
      if (cpu < n && host.present.test(cpu)) host.cpu_node[cpu] = static_cast<unsigned>(node);
  std::size_t rank = 0;
  const std::size_t threads = std::max<std::size_t>(1, host.threads_per_core);
  for (std::size_t cpu : host.present) {
    host.cpu_socket[cpu] = static_cast<unsigned>(rank / per_socket);
    host.cpu_core[cpu] = static_cast<unsigned>(rank % per_socket / threads);
    ++rank;
  }
}

/// The schedulers Xen names (CpuPool::scheduler): credit, credit2, rtds, arinc653, null, or
/// "scheduler N" (N decimal, 32-bit) for an id vcpumap does not know.
inline bool is_pool_scheduler(std::string_view s) noexcept {
  for (std::string_view known : {"credit", "credit2", "rtds", "arinc653", "null"})
    if (s == known) return true;
  constexpr std::string_view prefix = "scheduler ";
  if (s.substr(0, prefix.size()) != prefix) return false;
  const std::string_view digits = s.substr(prefix.size());
  std::uint32_t id = 0;
  auto [ptr, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), id);
  return !digits.empty() && ec == std::errc() && ptr == digits.data() + digits.size() &&
         (digits.size() == 1 || digits[0] != '0');
}

/// Throws Error(invalid_argument, what + ": ...") unless `host` is consistent and within the
/// limits: one universe of at most limits::max_cpus, online ⊆ present, node maps within the
/// universe and at most limits::max_numa_nodes, topology counts from 1 to their limit; node
/// memory for every node or none, free ≤ size ≤ limits::max_node_memory_bytes; at most
/// limits::max_cpupools cpupools, ascending by id, pool 0 among them, names within
/// limits::max_name_bytes, known schedulers, CPUs of the host's universe, present, and
/// in one pool at most (as Xen's are).
inline void check_host(const HostInfo& host, std::string_view what) {
  const std::size_t n = host.cpu_universe();
  auto fail = [&](const std::string& why) { throw Error(ErrorCode::invalid_argument, fmt::format("{}: {}", what, why)); };
  if (n > limits::max_cpus) fail(fmt::format("{} CPUs is beyond the limit of {}", n, limits::max_cpus));
  if (host.present.universe() != n || host.online.universe() != n)
    fail("possible, present and online maps need one universe");
  if (!host.online.is_subset_of(host.present))
    fail(fmt::format("online CPUs {} are not present", host.online - host.present));
  if (host.numa_nodes.size() > limits::max_numa_nodes)
    fail(fmt::format("{} NUMA nodes is beyond the limit of {}", host.numa_nodes.size(), limits::max_numa_nodes));
  for (std::size_t i = 0; i < host.numa_nodes.size(); ++i)
    if (auto top = host.numa_nodes[i].last(); top && *top >= n)
      fail(fmt::format("NUMA node {} holds CPU {}, beyond the host's {} CPUs", i, *top, n));
  const std::pair<unsigned, std::string_view> counts[] = {
      {host.threads_per_core, "threads_per_core"}, {host.cores_per_socket, "cores_per_socket"}, {host.sockets, "sockets"}};
  for (auto [value, name] : counts)
    if (value == 0 || value > limits::max_topology_count)
      fail(fmt::format("{} is {}: it must be 1 to {}", name, value, limits::max_topology_count));
  if (!host.node_memory.empty() && host.node_memory.size() != host.numa_nodes.size())
    fail(fmt::format("memory of {} nodes for {} NUMA nodes", host.node_memory.size(), host.numa_nodes.size()));
  for (std::size_t i = 0; i < host.node_memory.size(); ++i) {
    const NodeMemory& m = host.node_memory[i];
    if (m.size > limits::max_node_memory_bytes)
      fail(fmt::format("node {} has {} bytes, beyond the limit of {}", i, m.size, limits::max_node_memory_bytes));
    if (m.free > m.size) fail(fmt::format("node {} has {} bytes free of {}", i, m.free, m.size));
  }
  if (host.pools.size() > limits::max_cpupools)
    fail(fmt::format("{} cpupools is beyond the limit of {}", host.pools.size(), limits::max_cpupools));
  if (!host.pools.empty() && !host.pool(0)) fail("a host with cpupools needs cpupool 0 (Xen's Pool-0 always exists)");
  CpuMap pooled(n);
  for (std::size_t i = 0; i < host.pools.size(); ++i) {
    const CpuPool& p = host.pools[i];
    if (i > 0 && host.pools[i - 1].id >= p.id) fail("cpupools must be ascending by id, each id once");
    if (p.name.size() > limits::max_name_bytes)
      fail(fmt::format("cpupool {}: a name of {} bytes is beyond the limit of {}", p.id, p.name.size(),
                       limits::max_name_bytes));
    if (!is_pool_scheduler(p.scheduler))
      fail(fmt::format("cpupool {}: unknown scheduler '{}' (credit, credit2, rtds, arinc653, null or 'scheduler N')",
                       p.id, escape_terminal(p.scheduler.substr(0, 80))));
    if (p.cpus.universe() != n) fail(fmt::format("cpupool {}: its CPU map is not of the host's universe", p.id));
    if (!p.cpus.is_subset_of(host.present))
      fail(fmt::format("cpupool {}: CPUs {} are not present", p.id, p.cpus - host.present));
    if (p.cpus.intersects(pooled)) fail(fmt::format("cpupool {}: CPUs {} are in another pool", p.id, p.cpus & pooled));
    pooled |= p.cpus;
  }
}

/// a + b for CPU times, or nothing when the sum would pass limits::max_cpu_time_ns (or
/// either is negative).
inline std::optional<std::chrono::nanoseconds> add_cpu_time(std::chrono::nanoseconds a, std::chrono::nanoseconds b) {
  if (a.count() < 0 || b.count() < 0 || a.count() > limits::max_cpu_time_ns - b.count()) return std::nullopt;
  return a + b;
}

/// The sum of the vcpus' CPU times, or nothing when it passes limits::max_cpu_time_ns.
inline std::optional<std::chrono::nanoseconds> sum_cpu_time(const std::vector<VcpuMetrics>& vcpus) {
  std::chrono::nanoseconds sum{0};
  for (const VcpuMetrics& m : vcpus) {
    auto next = add_cpu_time(sum, m.cpu_time);
    if (!next) return std::nullopt;
    sum = *next;
  }
  return sum;
}

/// Reads all of an open file, refusing more than `limit` bytes, a directory, and read errors;
/// messages name `path`.
inline std::string read_bounded(int fd, const std::string& path, std::size_t limit) {
  const std::string who = fmt::format("fixture {}", escape_terminal(path));
  struct stat st {};
  if (::fstat(fd, &st) != 0) throw_file_error(ErrorCode::invalid_argument, path, "cannot stat", errno, "fixture ");
  if (S_ISDIR(st.st_mode)) throw Error(ErrorCode::invalid_argument, fmt::format("{}: is a directory", who));
  std::string text;
  char buf[65536];
  for (;;) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw_file_error(ErrorCode::invalid_argument, path, "cannot read", errno, "fixture ");
    if (n == 0) return text;
    if (text.size() + static_cast<std::size_t>(n) > limit)
      throw Error(ErrorCode::invalid_argument, fmt::format("{}: larger than the limit of {} bytes", who, limit));
    text.append(buf, static_cast<std::size_t>(n));
  }
}

/// Reads fixture text into a HostSnapshot (see the top of this header).
class FixtureReader {
 public:
  explicit FixtureReader(std::string_view text) : text_(text) {}

  HostSnapshot read() {
    if (text_.size() > limits::max_fixture_bytes)
      throw Error(ErrorCode::invalid_argument,
                  fmt::format("fixture of {} bytes is larger than the limit of {}", text_.size(),
                              limits::max_fixture_bytes));
    std::size_t start = 0;
    while (start <= text_.size()) {
      std::size_t end = text_.find('\n', start);
      if (end == std::string_view::npos) end = text_.size();
      ++line_;
      statement(text_.substr(start, end - start));
      start = end + 1;
    }
    flush_domain();
    if (!host_done_) finish_host();
    // Ascending by id, as every backend lists domains (the ids are distinct).
    std::sort(out_.domains.begin(), out_.domains.end(),
              [](const DomainSnapshot& a, const DomainSnapshot& b) { return a.domain.id < b.domain.id; });
    for (CpuPool& p : out_.host.pools)  // derived, as Xen counts them
      p.domains = static_cast<unsigned>(std::count_if(out_.domains.begin(), out_.domains.end(),
                                                      [&](const DomainSnapshot& d) { return d.domain.pool == p.id; }));
    return std::move(out_);
  }

 private:
  [[noreturn]] void fail(const std::string& what) const {
    throw Error(ErrorCode::invalid_argument, fmt::format("fixture line {}: {}", line_, what));
  }
  /// A word of the file as messages quote it: escaped, at most 80 bytes.
  static std::string quoted(std::string_view word) {
    constexpr std::size_t most = 80;
    return fmt::format("'{}{}'", escape_terminal(word.substr(0, most)), word.size() > most ? "..." : "");
  }

  // ---- words ----

  static bool is_blank(char c) noexcept { return c == ' ' || c == '\t' || c == '\r'; }

  /// Splits a line into words: blanks separate, '#' outside quotes ends the line, a word
  /// starting with '"' is quoted (\" \\ \xHH escapes) and is returned unescaped.
  std::vector<std::string> words_of(std::string_view line) const {
    std::vector<std::string> words;
    std::size_t i = 0;
    while (i < line.size()) {
      while (i < line.size() && is_blank(line[i])) ++i;
      if (i == line.size() || line[i] == '#') break;
      if (line[i] == '"') {
        words.push_back(unquote(line, i));
        if (i < line.size() && !is_blank(line[i]) && line[i] != '#') fail("expected a blank after a quoted word");
        continue;
      }
      const std::size_t begin = i;
      while (i < line.size() && !is_blank(line[i]) && line[i] != '#') ++i;
      words.emplace_back(line.substr(begin, i - begin));
    }
    return words;
  }
  /// The quoted word at line[i] (a '"'); moves i past the closing quote.
  std::string unquote(std::string_view line, std::size_t& i) const {
    std::string out;
    for (++i;; ++i) {
      if (i == line.size()) fail("unterminated quoted word");
      const char c = line[i];
      if (c == '"') {
        ++i;
        return out;
      }
      if (c != '\\') {
        out += c;
        continue;
      }
      if (++i == line.size()) fail("unterminated quoted word");
      if (line[i] == '\\' || line[i] == '"') {
        out += line[i];
      } else if (line[i] == 'x' && i + 2 < line.size() && hex(line[i + 1]) >= 0 && hex(line[i + 2]) >= 0) {
        out += static_cast<char>(hex(line[i + 1]) * 16 + hex(line[i + 2]));
        i += 2;
      } else {
        fail("bad escape in a quoted word (\\\\, \\\" or \\xHH)");
      }
    }
  }
  static int hex(char c) noexcept {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  }

  void statement(std::string_view line) {
    if (line.find('\0') != std::string_view::npos) fail("NUL byte");
    const std::vector<std::string> words = words_of(line);
    if (words.empty()) return;
    const std::string& kind = words[0];
    if (kind == "host") return host(words);
    if (kind == "node") return node(words);
    if (kind == "pool") return pool(words);
    if (kind == "domain") return domain(words);
    if (kind == "vcpu") return vcpu(words);
    if (kind == "problem") return problem(words);
    fail(fmt::format("unknown statement {} (host, node, pool, domain, problem or vcpu)", quoted(kind)));
  }

  /// key=value words after the first `positional` ones.
  std::map<std::string, std::string> options(const std::vector<std::string>& words, std::size_t positional,
                                             std::initializer_list<std::string_view> allowed) const {
    if (words.size() < positional + 1) fail(fmt::format("'{}' needs {} argument(s)", words[0], positional));
    std::map<std::string, std::string> out;
    for (std::size_t i = positional + 1; i < words.size(); ++i) {
      const auto eq = words[i].find('=');
      if (eq == std::string::npos) fail(fmt::format("expected key=value, found {}", quoted(words[i])));
      std::string key = words[i].substr(0, eq);
      if (std::find(allowed.begin(), allowed.end(), key) == allowed.end())
        fail(fmt::format("unknown key {} for '{}'", quoted(key), words[0]));
      if (!out.emplace(key, words[i].substr(eq + 1)).second) fail(fmt::format("key '{}' given twice", key));
    }
    return out;
  }

  /// A decimal number from 0 to `max`.
  std::uint64_t number(std::string_view text, std::string_view what, std::uint64_t max) const {
    std::uint64_t v = 0;
    auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
    const bool digits = !text.empty() && ptr == text.data() + text.size();
    if (digits && (ec == std::errc::result_out_of_range || (ec == std::errc() && v > max)))
      fail(fmt::format("{} {} is beyond the limit of {}", what, escape_terminal(text.substr(0, 80)), max));
    if (ec != std::errc() || !digits) fail(fmt::format("{} {} is not a number", what, quoted(text)));
    return v;
  }
  template <class T>
  T bounded(const std::map<std::string, std::string>& o, std::string_view key, std::uint64_t max, T otherwise) const {
    auto it = o.find(std::string(key));
    return it == o.end() ? otherwise : static_cast<T>(number(it->second, key, max));
  }

  /// Seconds with up to 9 decimals ("636.8"), exactly, as nanoseconds up to the limit.
  std::chrono::nanoseconds seconds(std::string_view text) const {
    constexpr auto max_ns = static_cast<std::uint64_t>(limits::max_cpu_time_ns);
    const auto dot = text.find('.');
    const std::uint64_t whole = number(text.substr(0, dot), "time", max_ns / 1'000'000'000ULL);
    std::uint64_t ns = whole * 1'000'000'000ULL;
    if (dot != std::string_view::npos) {
      std::string_view frac = text.substr(dot + 1);
      if (frac.empty() || frac.size() > 9) fail(fmt::format("time {} needs 1 to 9 decimals", quoted(text)));
      std::uint64_t f = number(frac, "time", 999'999'999);
      for (std::size_t i = frac.size(); i < 9; ++i) f *= 10;
      if (f > max_ns - ns) fail(fmt::format("time {} is beyond the limit of {} ns", quoted(text), max_ns));
      ns += f;
    }
    return std::chrono::nanoseconds(static_cast<std::int64_t>(ns));
  }

  CpuMap cpus(std::string_view text, std::size_t universe) const {
    ParseOptions o;
    o.universe = universe;
    o.numa_nodes = out_.host.numa_nodes;
    ParseFailure failure;
    auto map = CpuMap::try_parse(text, o, &failure);
    if (!map) fail(ParseError(text, failure).what());
    return *map;
  }

  // ---- statements ----

  void host(const std::vector<std::string>& words) {
    if (saw_host_ || host_done_) fail("'host' must come once, before nodes and domains");
    saw_host_ = true;
    auto o = options(words, 0,
                     {"cpus", "present", "online", "threads_per_core", "cores_per_socket", "sockets", "soft", "limit",
                      "vcpu_set", "node_affinity", "system"});
    if (!o.count("cpus")) fail("'host' needs cpus=N");
    HostInfo& h = out_.host;
    universe_ = number(o["cpus"], "cpus", limits::max_cpus);
    h.possible = CpuMap::full(universe_);
    h.present = o.count("present") ? cpus(o["present"], universe_) : h.possible;
    h.online = o.count("online") ? cpus(o["online"], universe_) : h.present;
    if (!h.online.is_subset_of(h.present)) fail("online CPUs must be present");
    if (o.count("soft")) h.caps.soft_affinity = yes_no(o, "soft");
    if (o.count("vcpu_set")) h.caps.set_online = yes_no(o, "vcpu_set");
    if (o.count("node_affinity")) h.caps.node_affinity = yes_no(o, "node_affinity");
    if (o.count("limit")) {
      const std::string& name = o["limit"];
      if (name.empty() || name.size() > 64 ||
          !std::all_of(name.begin(), name.end(), [](char c) {
            return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
          }))
        fail(fmt::format("limit {} is not a name (letters, digits, - and _, at most 64)", quoted(name)));
      h.caps.vcpu_limit = name;
    }
    if (o.count("system")) h.system_cpus = cpus(o["system"], universe_);
    constexpr std::uint64_t most = limits::max_topology_count;
    h.threads_per_core = bounded<unsigned>(o, "threads_per_core", most, 1);
    h.sockets = bounded<unsigned>(o, "sockets", most, 1);
    const std::size_t per_socket = std::size_t{h.threads_per_core} * h.sockets;
    h.cores_per_socket = bounded<unsigned>(
        o, "cores_per_socket", most,
        static_cast<unsigned>(std::max<std::size_t>(1, per_socket == 0 ? 0 : h.present.count() / per_socket)));
    try {
      check_host(h, "host");
    } catch (const Error& e) {
      fail(e.what());
    }
  }

  bool yes_no(std::map<std::string, std::string>& o, const std::string& key) const {
    const std::string& v = o[key];
    if (v != "yes" && v != "no") fail(fmt::format("{} is yes or no, not {}", key, quoted(v)));
    return v == "yes";
  }

  void node(const std::vector<std::string>& words) {
    if (host_done_) fail("'node' must come before domains");
    if (!saw_host_) fail("'node' needs a 'host' line before it");
    if (words.size() < 3 || words[2].find('=') != std::string::npos)
      fail("'node' needs an id and a cpulist: node 0 0-3 [mem=BYTES] [free=BYTES]");
    auto o = options(words, 2, {"mem", "free"});
    const std::uint64_t id = number(words[1], "node id", limits::max_numa_nodes - 1);
    if (id != out_.host.numa_nodes.size())
      fail(fmt::format("node {} out of order (expected node {})", id, out_.host.numa_nodes.size()));
    CpuMap cpus_of_node = cpus(words[2], universe_);
    std::optional<NodeMemory> memory;
    if (o.count("free") && !o.count("mem")) fail("free= needs mem= (the node's size)");
    if (o.count("mem")) {
      memory.emplace();
      memory->size = number(o["mem"], "mem", limits::max_node_memory_bytes);
      memory->free = bounded<std::uint64_t>(o, "free", limits::max_node_memory_bytes, 0);
      if (memory->free > memory->size)
        fail(fmt::format("node {}: free {} is more than its mem {}", id, memory->free, memory->size));
    }
    out_.host.numa_nodes.push_back(std::move(cpus_of_node));
    node_memory_.push_back(memory);
  }

  void pool(const std::vector<std::string>& words) {
    if (host_done_) fail("'pool' must come before domains");
    if (!saw_host_) fail("'pool' needs a 'host' line before it");
    auto o = options(words, 2, {"sched", "cpus"});
    std::vector<CpuPool>& pools = out_.host.pools;
    if (pools.size() == limits::max_cpupools) fail(fmt::format("more than {} cpupools (the limit)", limits::max_cpupools));
    CpuPool p;
    p.id = static_cast<unsigned>(number(words[1], "pool id", UINT32_MAX));
    for (const CpuPool& q : pools)
      if (q.id == p.id) fail(fmt::format("pool {} is listed twice", p.id));
    if (words[2].size() > limits::max_name_bytes)
      fail(fmt::format("a name of {} bytes is beyond the limit of {}", words[2].size(), limits::max_name_bytes));
    p.name = words[2];
    p.scheduler = "credit2";  // Xen's default scheduler
    if (o.count("sched")) {
      const std::string& sched = o["sched"];
      if (!sched.empty() && sched[0] >= '0' && sched[0] <= '9')
        p.scheduler = fmt::format("scheduler {}", number(sched, "sched", UINT32_MAX));
      else if (is_pool_scheduler(sched))
        p.scheduler = sched;
      else
        fail(fmt::format("unknown scheduler {} (credit, credit2, rtds, arinc653, null, or Xen's scheduler id)",
                         quoted(sched)));
    }
    p.cpus = o.count("cpus") ? cpus(o["cpus"], universe_) : CpuMap(universe_);
    if (!p.cpus.is_subset_of(out_.host.present))
      fail(fmt::format("pool {}: CPUs {} are not present", p.id, p.cpus - out_.host.present));
    for (const CpuPool& q : pools)
      if (p.cpus.intersects(q.cpus)) fail(fmt::format("pool {}: CPUs {} are in pool {} already", p.id, p.cpus & q.cpus, q.id));
    if (pools.empty()) first_pool_line_ = line_;
    pools.push_back(std::move(p));
  }

  void finish_host() {
    host_done_ = true;
    HostInfo& h = out_.host;
    if (!saw_host_) {
      universe_ = 4;
      h.possible = h.present = h.online = CpuMap::full(4);
      h.cores_per_socket = 4;
    }
    if (h.numa_nodes.empty()) h.numa_nodes = {h.present};
    if (std::any_of(node_memory_.begin(), node_memory_.end(), [](const auto& m) { return m.has_value(); })) {
      h.node_memory.assign(h.numa_nodes.size(), NodeMemory{});
      for (std::size_t n = 0; n < node_memory_.size(); ++n)
        if (node_memory_[n]) h.node_memory[n] = *node_memory_[n];
    }
    std::sort(h.pools.begin(), h.pools.end(), [](const CpuPool& a, const CpuPool& b) { return a.id < b.id; });
    if (!h.pools.empty() && !h.pool(0)) {
      line_ = first_pool_line_;  // the message names the first pool line
      fail("a host with pools needs pool 0 (Xen's Pool-0 always exists)");
    }
    derive_cpu_topology(h);
    try {
      check_host(h, "host");
    } catch (const Error& e) {
      fail(e.what());
    }
  }

  void domain(const std::vector<std::string>& words) {
    flush_domain();
    if (!host_done_) finish_host();
    auto o = options(words, 2, {"vcpus", "flags", "time", "uuid", "pool", "nodes"});
    if (out_.domains.size() == limits::max_domains)
      fail(fmt::format("more than {} domains (the limit)", limits::max_domains));
    const auto id = DomainId{static_cast<std::uint32_t>(number(words[1], "domain id", UINT32_MAX))};
    if (!ids_.insert(to_integer(id)).second) fail(fmt::format("domain {} is listed twice", id));
    if (words[2].size() > limits::max_name_bytes)
      fail(fmt::format("a name of {} bytes is beyond the limit of {}", words[2].size(), limits::max_name_bytes));
    DomainSnapshot& d = out_.domains.emplace_back();
    pending_ = true;
    pending_line_ = line_;
    DomainInfo& info = d.domain;
    info.id = id;
    info.name = words[2];
    info.max_vcpus = bounded<unsigned>(o, "vcpus", limits::max_vcpus, 1);
    if (info.max_vcpus > (limits::max_matrix_cells - cells_) / std::max<std::size_t>(1, universe_))
      fail(fmt::format("{} vcpus × {} CPUs: the host's affinity matrices would pass the limit of {} cells",
                       info.max_vcpus, universe_, limits::max_matrix_cells));
    cells_ += std::size_t{info.max_vcpus} * universe_;
    if (o.count("uuid")) {
      if (!is_uuid(o["uuid"])) fail(fmt::format("uuid {} is not a lowercase UUID (8-4-4-4-12 hex digits)", quoted(o["uuid"])));
      info.uuid = o["uuid"];
    }
    explicit_time_ = o.count("time") != 0;
    if (explicit_time_) info.cpu_time = seconds(o["time"]);
    std::string_view flags = o.count("flags") ? std::string_view(o["flags"]) : std::string_view{};
    while (!flags.empty()) {
      const auto comma = flags.find(',');
      const std::string_view f = flags.substr(0, comma);
      if (f == "running") info.flags.running = true;
      else if (f == "blocked") info.flags.blocked = true;
      else if (f == "paused") info.flags.paused = true;
      else if (f == "shutdown") info.flags.shutdown = true;
      else if (f == "dying") info.flags.dying = true;
      else fail(fmt::format("unknown domain flag {}", quoted(f)));
      flags = comma == std::string_view::npos ? std::string_view{} : flags.substr(comma + 1);
    }
    d.vcpus.resize(info.max_vcpus);
    for (unsigned v = 0; v < info.max_vcpus; ++v) d.vcpus[v] = {v, VcpuState::offline, {}, std::nullopt, std::nullopt};
    d.hard = AffinityMatrix::full(info.max_vcpus, universe_);
    d.soft = AffinityMatrix::full(info.max_vcpus, universe_);
    d.limit = AffinityMatrix::full(info.max_vcpus, universe_);
    const HostInfo& h = out_.host;
    if (o.count("pool")) {
      const auto pool = static_cast<unsigned>(number(o["pool"], "pool", UINT32_MAX));
      if (!h.pool(pool)) fail(fmt::format("pool={} names no pool (no 'pool {}' line)", pool, pool));
      info.pool = pool;
    } else if (!h.pools.empty()) {
      info.pool = 0u;  // Xen creates domains in Pool-0
    }
    if (info.pool)
      for (unsigned v = 0; v < info.max_vcpus; ++v) d.limit.set_row(v, h.pool(*info.pool)->cpus);
    if (o.count("nodes")) {
      if (!h.caps.node_affinity) fail("nodes= on a host without node affinity (host node_affinity=yes)");
      ParseOptions po;
      po.universe = h.numa_nodes.size();
      ParseFailure failure;
      auto nodes = NodeSet::try_parse(o["nodes"], po, &failure);
      if (!nodes) fail(ParseError(o["nodes"], failure).what());
      d.node_affinity = std::move(*nodes);
    } else if (h.caps.node_affinity) {
      d.node_affinity = NodeSet::full(h.numa_nodes.size());
    }
    listed_.assign(info.max_vcpus, false);
  }

  void problem(const std::vector<std::string>& words) {
    if (!pending_) fail("'problem' must follow a 'domain'");
    if (words.size() != 2) fail("'problem' needs one (quoted) text: problem \"why\"");
    DomainInfo& info = out_.domains.back().domain;
    if (!info.vcpu_problem.empty()) fail("'problem' given twice for one domain");
    if (words[1].empty()) fail("'problem' needs a text that is not empty");
    if (words[1].size() > limits::max_name_bytes)
      fail(fmt::format("a problem of {} bytes is beyond the limit of {}", words[1].size(), limits::max_name_bytes));
    info.vcpu_problem = words[1];
  }

  /// xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx in lowercase hex.
  static bool is_uuid(std::string_view t) noexcept {
    if (t.size() != 36) return false;
    for (std::size_t i = 0; i < t.size(); ++i) {
      const bool dash = i == 8 || i == 13 || i == 18 || i == 23;
      if (dash ? t[i] != '-' : !((t[i] >= '0' && t[i] <= '9') || (t[i] >= 'a' && t[i] <= 'f'))) return false;
    }
    return true;
  }

  void vcpu(const std::vector<std::string>& words) {
    if (!pending_) fail("'vcpu' must follow a 'domain'");
    DomainSnapshot& d = out_.domains.back();
    auto o = options(words, 1, {"state", "cpu", "time", "time_ns", "wait_ns", "hard", "soft", "limit"});
    VcpuMetrics m;
    m.vcpu = static_cast<unsigned>(number(words[1], "vcpu", limits::max_vcpus));
    if (m.vcpu >= d.domain.max_vcpus)
      fail(fmt::format("vcpu {} is beyond the domain's {} vcpus", m.vcpu, d.domain.max_vcpus));
    if (listed_[m.vcpu]) fail(fmt::format("vcpu {} is listed twice", m.vcpu));
    listed_[m.vcpu] = true;
    const std::string state = o.count("state") ? o["state"] : "blocked";
    if (state == "running") m.state = VcpuState::running;
    else if (state == "blocked") m.state = VcpuState::blocked;
    else if (state == "runnable") m.state = VcpuState::runnable;
    else if (state == "offline") m.state = VcpuState::offline;
    else if (state == "unknown") m.state = VcpuState::unknown;
    else fail(fmt::format("unknown vcpu state {}", quoted(state)));
    if (o.count("cpu")) {
      const std::uint64_t cpu = number(o["cpu"], "cpu", limits::max_cpus);
      if (cpu >= universe_) fail(fmt::format("cpu {} is beyond the host's {} CPUs", cpu, universe_));
      if (m.state != VcpuState::offline) m.cpu = static_cast<unsigned>(cpu);
    }
    if (o.count("time") && o.count("time_ns")) fail("give time or time_ns, not both");
    if (o.count("time")) m.cpu_time = seconds(o["time"]);
    if (o.count("time_ns"))
      m.cpu_time = std::chrono::nanoseconds(
          static_cast<std::int64_t>(number(o["time_ns"], "time_ns", static_cast<std::uint64_t>(limits::max_cpu_time_ns))));
    if (o.count("wait_ns"))
      m.wait_time = std::chrono::nanoseconds(
          static_cast<std::int64_t>(number(o["wait_ns"], "wait_ns", static_cast<std::uint64_t>(limits::max_cpu_time_ns))));
    d.vcpus[m.vcpu] = m;
    if (o.count("hard")) d.hard.set_row(m.vcpu, cpus(o["hard"], universe_));
    if (o.count("soft")) {
      if (!out_.host.caps.soft_affinity) fail("soft= on a host without soft affinity (host soft=no)");
      d.soft.set_row(m.vcpu, cpus(o["soft"], universe_));
    }
    if (o.count("limit")) {
      if (out_.host.caps.vcpu_limit.empty()) fail("limit= on a host without vcpu limits (host limit=NAME)");
      if (d.domain.pool) fail(fmt::format("limit= on a vcpu of a domain in pool {}: its limit is the pool's CPUs", *d.domain.pool));
      d.limit.set_row(m.vcpu, cpus(o["limit"], universe_));
    }
  }

  /// The last domain is complete: derived fields, and checks that need all its vcpus.
  void flush_domain() {
    if (!pending_) return;
    pending_ = false;
    DomainSnapshot& d = out_.domains.back();
    const std::size_t saved = line_;
    line_ = pending_line_;
    const auto sum = sum_cpu_time(d.vcpus);
    if (!sum) fail(fmt::format("the vcpus' CPU times add up past the limit of {} ns", limits::max_cpu_time_ns));
    if (!explicit_time_) d.domain.cpu_time = *sum;
    line_ = saved;
    d.domain.online_vcpus = static_cast<unsigned>(std::count_if(
        d.vcpus.begin(), d.vcpus.end(), [](const VcpuMetrics& m) { return m.state != VcpuState::offline; }));
    effective_affinity(d.hard, d.soft, d.limit, out_.host.online, d.effective);
    d.scope = SnapshotScope::full;
  }

  std::string_view text_;
  std::size_t line_ = 0;
  bool saw_host_ = false;
  bool host_done_ = false;  // the host is complete: domains may follow
  std::size_t universe_ = 0;
  std::size_t cells_ = 0;   // matrix cells of the domains so far
  HostSnapshot out_;
  std::set<std::uint32_t> ids_;  // domain ids so far
  bool pending_ = false;  // the last domain still takes vcpu lines
  std::size_t pending_line_ = 0;
  bool explicit_time_ = false;
  std::vector<bool> listed_;  // vcpus of the last domain that had a line
  std::vector<std::optional<NodeMemory>> node_memory_;  // by node: what its line gave
  std::size_t first_pool_line_ = 0;
};

/// "name" or "\"quoted name\"": a domain name as the fixture writes it.
inline void append_fixture_word(std::string& out, std::string_view word) {
  const bool plain = !word.empty() && std::all_of(word.begin(), word.end(), [](char c) {
    return c > ' ' && c < 0x7f && c != '"' && c != '#' && c != '\\';
  });
  if (plain) {
    out += word;
    return;
  }
  out += '"';
  for (std::size_t i = 0; i < word.size();) {
    const Utf8Char u = decode_utf8(word, i);
    const std::size_t n = u.length == 0 ? 1 : u.length;
    const std::string_view bytes = word.substr(i, n);
    i += n;
    if (u.length == 0 || is_control(u.code) || is_bidi_control(u.code)) append_hex_bytes(out, bytes);
    else if (u.code == '"' || u.code == '\\') out += '\\', out += bytes;
    else out += bytes;
  }
  out += '"';
}

}  // namespace detail

/// Reads fixture text (see the top of this header): the host, and every domain with all its
/// vcpus, hard, soft and effective matrices (scope full). Throws Error(invalid_argument)
/// naming the line.
inline HostSnapshot read_fixture(std::string_view text) { return detail::FixtureReader(text).read(); }

/// Reads a fixture file: at most limits::max_fixture_bytes (a device that never ends is
/// refused, not read for ever), not a directory; not_found when it cannot be opened. Errors
/// name the path.
inline HostSnapshot read_fixture_file(const std::string& path) {
  const std::string who = escape_terminal(path);
  if (path.empty()) throw Error(ErrorCode::invalid_argument, "fixture: the file name is empty");
  const detail::Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0) detail::throw_file_error(ErrorCode::not_found, path, "cannot open", errno, "fixture ");
  const std::string text = detail::read_bounded(fd.get(), path, limits::max_fixture_bytes);
  try {
    return read_fixture(text);
  } catch (const Error& e) {
    throw Error(e.code(), fmt::format("{}: {}", who, e.what()));
  }
}

/// Replaces the file at `path` by `host` written as a fixture, whole or not at all
/// (write_file_atomically: the file is as it was after any failure, and Error says why).
inline void write_fixture_file(const std::string& path, const HostSnapshot& host) {
  write_file_atomically(path, write_fixture(host));
}

/// A fixture file held for a read-modify-write (a tool's --persist): the constructor opens
/// it, takes an exclusive lock (flock; it waits while another holder has it), and reads it;
/// commit() writes a new host back with write_fixture_file; the lock is held until the
/// object is destroyed. Processes that change one file through FixtureFile take turns, each
/// reading what the one before wrote. A file replaced while waiting for the lock (by another
/// holder's rename) is opened again.
class FixtureFile {
 public:
  explicit FixtureFile(std::string path) : path_(std::move(path)) {
    const std::string who = escape_terminal(path_);
    if (path_.empty()) throw Error(ErrorCode::invalid_argument, "fixture: the file name is empty");
    std::string text;
    for (;;) {
      detail::Fd fd(::open(path_.c_str(), O_RDONLY | O_CLOEXEC));
      if (fd.get() < 0) detail::throw_file_error(ErrorCode::not_found, path_, "cannot open", errno, "fixture ");
      struct stat held {}, now {};
      if (::fstat(fd.get(), &held) != 0) detail::throw_file_error(ErrorCode::invalid_argument, path_, "cannot stat", errno, "fixture ");
      if (!S_ISREG(held.st_mode))
        throw Error(ErrorCode::invalid_argument,
                    fmt::format("fixture {}: not a regular file: it cannot be written back", who));
      int rc;
      do rc = ::flock(fd.get(), LOCK_EX);
      while (rc != 0 && errno == EINTR);
      if (rc != 0) detail::throw_file_error(ErrorCode::busy, path_, "cannot lock", errno, "fixture ");
      if (::stat(path_.c_str(), &now) != 0 || now.st_ino != held.st_ino || now.st_dev != held.st_dev)
        continue;  // replaced while we waited: read the new one
      text = detail::read_bounded(fd.get(), path_, limits::max_fixture_bytes);
      fd_ = std::move(fd);
      break;
    }
    try {
      host_ = read_fixture(text);
    } catch (const Error& e) {
      throw Error(e.code(), fmt::format("{}: {}", who, e.what()));
    }
    written_ = write_fixture(host_);
  }

  const std::string& path() const noexcept { return path_; }
  /// The host as read.
  const HostSnapshot& host() const noexcept { return host_; }

  /// Writes `host` back unless it writes the same text as the host read (then the file,
  /// comments and all, is left untouched); true when the file was replaced. Throws Error
  /// (the file unchanged) when writing fails.
  bool commit(const HostSnapshot& host) {
    std::string text = write_fixture(host);
    if (text == written_) return false;
    write_fixture_file(path_, host);
    written_ = std::move(text);
    return true;
  }

 private:
  std::string path_;
  detail::Fd fd_;  // open and locked until destroyed
  HostSnapshot host_;
  std::string written_;  // write_fixture of what the file holds now
};

/// Writes a host in the fixture format; read_fixture reads it back equal. Vcpu states are
/// written as they are, times in nanoseconds, maps as canonical cpulists ("none" for an
/// empty one), names quoted when they are not plain words. A domain snapshot of scope
/// metrics_only has no matrices: its vcpus are written without maps (affinity "all").
inline std::string write_fixture(const HostSnapshot& snap) {
  const HostInfo& h = snap.host;
  auto list = [](const CpuMap& m) { return m.empty() ? std::string("none") : m.to_string(); };
  std::string out = fmt::format(
      "host cpus={} present={} online={} threads_per_core={} cores_per_socket={} sockets={}", h.cpu_universe(),
      list(h.present), list(h.online), h.threads_per_core, h.cores_per_socket, h.sockets);
  if (!h.caps.soft_affinity) out += " soft=no";
  if (!h.caps.vcpu_limit.empty()) out += fmt::format(" limit={}", h.caps.vcpu_limit);
  if (h.caps.set_online) out += " vcpu_set=yes";
  if (h.caps.node_affinity) out += " node_affinity=yes";
  if (h.system_cpus) out += fmt::format(" system={}", list(*h.system_cpus));
  out += '\n';
  for (std::size_t n = 0; n < h.numa_nodes.size(); ++n) {
    out += fmt::format("node {} {}", n, list(h.numa_nodes[n]));
    if (n < h.node_memory.size()) out += fmt::format(" mem={} free={}", h.node_memory[n].size, h.node_memory[n].free);
    out += '\n';
  }
  for (const CpuPool& p : h.pools) {
    out += fmt::format("pool {} ", p.id);
    detail::append_fixture_word(out, p.name);
    constexpr std::string_view numbered = "scheduler ";
    const std::string_view sched = p.scheduler;
    out += fmt::format(" sched={} cpus={}\n", sched.substr(0, numbered.size()) == numbered ? sched.substr(numbered.size()) : sched,
                       list(p.cpus));
  }
  for (const DomainSnapshot& d : snap.domains) {
    const DomainFlags& f = d.domain.flags;
    std::string flags;
    const std::pair<bool, std::string_view> named[] = {
        {f.running, "running"}, {f.blocked, "blocked"}, {f.paused, "paused"}, {f.shutdown, "shutdown"}, {f.dying, "dying"}};
    for (auto [on, name] : named)
      if (on) flags += flags.empty() ? fmt::format(" flags={}", name) : fmt::format(",{}", name);
    out += fmt::format("domain {} ", d.domain.id);
    detail::append_fixture_word(out, d.domain.name);
    out += fmt::format(" vcpus={}{}", d.domain.max_vcpus, flags);
    if (d.domain.cpu_time != detail::sum_cpu_time(d.vcpus))  // keep a time that is not the vcpus' sum
      out += fmt::format(" time={}.{:09}", d.domain.cpu_time.count() / 1'000'000'000,
                         d.domain.cpu_time.count() % 1'000'000'000);
    if (!d.domain.uuid.empty()) out += fmt::format(" uuid={}", d.domain.uuid);
    if (d.domain.pool) out += fmt::format(" pool={}", *d.domain.pool);
    if (d.node_affinity && h.caps.node_affinity) out += fmt::format(" nodes={}", d.node_affinity->empty() ? std::string("none") : d.node_affinity->to_string());
    out += '\n';
    if (!d.domain.vcpu_problem.empty()) {
      out += "problem ";
      detail::append_fixture_word(out, d.domain.vcpu_problem);
      out += '\n';
    }
    const bool maps = d.hard.rows() == d.domain.max_vcpus && d.soft.rows() == d.domain.max_vcpus;
    // A domain in a pool has its pool's CPUs as limit: derived, not written.
    const bool limits = maps && !h.caps.vcpu_limit.empty() && d.limit.rows() == d.domain.max_vcpus && !d.domain.pool;
    for (const VcpuMetrics& m : d.vcpus) {
      out += fmt::format("vcpu {} state={}", m.vcpu, m.state);
      if (m.cpu) out += fmt::format(" cpu={}", *m.cpu);
      out += fmt::format(" time_ns={}", m.cpu_time.count());
      if (m.wait_time) out += fmt::format(" wait_ns={}", m.wait_time->count());
      if (maps) out += fmt::format(" hard={}", list(d.hard.row(m.vcpu)));
      if (maps && h.caps.soft_affinity) out += fmt::format(" soft={}", list(d.soft.row(m.vcpu)));
      if (limits) out += fmt::format(" limit={}", list(d.limit.row(m.vcpu)));
      out += '\n';
    }
  }
  return out;
}

}  // namespace vcpumap
