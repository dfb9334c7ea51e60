// vcpu-list — every vcpu of every domain, as `xl vcpu-list` prints them (or `xm vcpu-list`, or JSON).
//
//   $ vcpu-list --backend=mock
//   Name                                ID  VCPU   CPU State   Time(s) Affinity (Hard / Soft)
//   Domain-0                             0     0    0   -b-     636.8  all / all
//
// The whole host is read in one library call (snapshot_all), then filtered and printed.
#include <csignal>
#include <ctime>

#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <vcpumap/prometheus.hpp>

#include "backend.hpp"

namespace {

using namespace vcpumap;

constexpr std::string_view usage =
    "usage: vcpu-list [--xm | --json] [--threads] [--watch SECONDS [--count N]] [backend options] [DOMAIN...]\n"
    "       vcpu-list --prometheus [--output FILE] [--watch SECONDS [--count N]] [backend options] [DOMAIN...]\n"
    "       vcpu-list --pools [--json] [backend options]\n"
    "       vcpu-list --host [--json] [backend options]\n"
    "Lists the vcpus of every domain, or of each DOMAIN (a name or an id): the CPU each is on,\n"
    "its state, CPU time and affinity, as `xl vcpu-list` of Xen 4.17 prints them.\n"
    "  --xm            the legacy `xm vcpu-list` table (hard affinity only, 'any cpu' for every CPU)\n"
    "  --json          a JSON array, one object per vcpu: domain, id, vcpu, state, cpu (null when\n"
    "                  offline), time_ns, wait_ns (run-queue wait; null when the hypervisor does not\n"
    "                  say), hard, soft, limit, effective (canonical cpulists), problem when the\n"
    "                  domain's vcpus cannot be seen, pool and pool_name when the domain is in a\n"
    "                  cpupool, node_affinity (a node list) where the hypervisor reports it; always\n"
    "                  valid UTF-8 (bytes of a name that are not are replaced by U+FFFD)\n"
    "  --threads       linux: also the emulator thread and IOThreads of each guest, and where the\n"
    "                  host's own processes run (JSON: objects with \"thread\": \"emulator\",\n"
    "                  \"iothread\" or \"host\")\n"
    "On a host without soft affinity (Linux) the table shows the hard affinity alone, followed by\n"
    "the vcpu's cpuset in brackets where the cpuset narrows it: 0-3 [cpuset 2-3]. On a host with\n"
    "several cpupools (Xen) the affinity is followed by the domain's pool, with its CPUs where they\n"
    "narrow the hard affinity (the vcpu runs there only): all / all [cpupool fast: 4-7]; and where\n"
    "a domain's memory is on some NUMA nodes only, by its node affinity: [nodes 0-1].\n"
    "  --pools         the cpupools, as `xl cpupool-list -c` with their id, scheduler and number of\n"
    "                  domains (JSON: an array of objects id, name, scheduler, cpus, domains)\n"
    "  --host          the host: CPUs, topology and SMT siblings, NUMA nodes with their memory,\n"
    "                  cpupools, capabilities (JSON: one object; node memory in bytes, null where\n"
    "                  unknown; cpu_topology gives each present CPU's socket, core and node)\n"
    "  --watch SECONDS reprint every SECONDS with each vcpu's CPU use since the previous sample\n"
    "                  (CPU% column, JSON \"util\"); on the mock, running vcpus accrue real time\n"
    "  --count N       with --watch: stop after N samples. SIGTERM or SIGINT ends a --watch after\n"
    "                  the sample in hand (exit 0): a file is never left half written\n"
    "  --prometheus    the Prometheus text exposition format (0.0.4): per vcpu CPU seconds, state,\n"
    "                  last CPU, whether it is pinned, its affinity maps' sizes and one info series\n"
    "                  with the canonical cpulists; per domain whether it is pinned; per host CPU\n"
    "                  how many pinned vcpus and domains may run there (see vcpumap/prometheus.hpp)\n"
    "  --output FILE   with --prometheus: replace FILE atomically (temporary file + rename) instead\n"
    "                  of printing, as node_exporter's textfile collector needs (name it *.prom);\n"
    "                  with --watch, at every sample\n";

enum class Layout { xl, xm, json, prometheus };

/// Set by SIGTERM and SIGINT during --watch: stop after the sample in hand.
volatile std::sig_atomic_t stop_requested = 0;
extern "C" void request_stop(int) { stop_requested = 1; }

/// --watch stops cleanly on SIGTERM (a service manager, `kill PID`) and SIGINT (Ctrl-C).
void stop_on_signals() {
  struct sigaction action {};
  action.sa_handler = request_stop;
  sigemptyset(&action.sa_mask);
  action.sa_flags = 0;  // no SA_RESTART: the pause between samples ends at once
  sigaction(SIGTERM, &action, nullptr);
  sigaction(SIGINT, &action, nullptr);
}

/// Waits `seconds` between samples; false when a signal asked to stop.
bool pause_between_samples(double seconds) {
  const auto until = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  while (!stop_requested) {
    const auto left = until - std::chrono::steady_clock::now();
    if (left <= std::chrono::nanoseconds::zero()) return true;
    const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(left).count();
    timespec ts{static_cast<std::time_t>(ns / 1'000'000'000), static_cast<long>(ns % 1'000'000'000)};
    ::nanosleep(&ts, nullptr);  // EINTR when the signal came: the loop sees the flag
  }
  return false;
}

/// What xl prints for the time: it converts the nanoseconds to a float first.
double xl_seconds(std::chrono::nanoseconds t) { return static_cast<double>(static_cast<float>(t.count())) / 1e9; }

/// "r--", "-b-", "--p" (Xen's running, blocked, online flags; a runnable vcpu shows "---").
std::string state_chars(VcpuState s) {
  if (s == VcpuState::offline) return "--p";
  return fmt::format("{}{}-", s == VcpuState::running ? 'r' : '-', s == VcpuState::blocked ? 'b' : '-');
}

void print_header(Layout layout, bool watch, const HostInfo& host) {
  if (layout == Layout::xl)
    fmt::print("{:<32} {:>5} {:>5} {:>5} {:>5} {:>9}{} {}\n", "Name", "ID", "VCPU", "CPU", "State", "Time(s)",
               watch ? fmt::format(" {:>5}", "CPU%") : "",
               host.caps.soft_affinity ? "Affinity (Hard / Soft)"
                                       : fmt::format("Affinity (Hard [{}])", host.caps.vcpu_limit.empty()
                                                                                   ? std::string("limit")
                                                                                   : host.caps.vcpu_limit));
  else if (layout == Layout::xm)
    fmt::print("Name                              ID  VCPU  CPU  State  Time(s){}  CPU Affinity\n",
               watch ? fmt::format(" {:>5}", "CPU%") : "");
  else
    fmt::print("[\n");
}

/// The pool a domain runs in, or null (a host without pools, a pool made since the host was read).
const CpuPool* pool_of(const HostInfo& host, const DomainInfo& d) { return d.pool ? host.pool(*d.pool) : nullptr; }

/// How the table names a pool: its name escaped for the terminal, else its id.
std::string pool_label(const CpuPool& p) { return p.name.empty() ? std::to_string(p.id) : escape_terminal(p.name); }

/// What confines a vcpu beyond its hard affinity, as notes after the affinity column: the
/// domain's cpupool where the host has several (with its CPUs where they narrow the hard
/// affinity), else the vcpu's limit (Linux: its cpuset) where it narrows it; then the
/// domain's node affinity where it is not every node. Empty when there is nothing to say.
std::string confinement_notes(const HostInfo& host, const DomainSnapshot& d, const CpuMap& hard, const CpuMap& limit) {
  std::string out;
  if (const CpuPool* pool = pool_of(host, d.domain)) {
    if (host.pools.size() > 1) {
      CpuMap cpus = pool->cpus;
      cpus.resize(hard.universe());
      out += (hard - cpus).empty() ? fmt::format(" [cpupool {}]", pool_label(*pool))
                                   : fmt::format(" [cpupool {}: {}]", pool_label(*pool),
                                                 cpus.empty() ? std::string("none") : cpus.to_string());
    }
  } else if (!host.caps.vcpu_limit.empty() && !(hard - limit).empty()) {
    out += fmt::format(" [{} {:a}]", host.caps.vcpu_limit, limit);
  }
  if (d.node_affinity && !d.node_affinity->all())
    out += fmt::format(" [{} {}]", d.node_affinity->count() == 1 ? "node" : "nodes",
                       d.node_affinity->empty() ? std::string("none") : d.node_affinity->to_string());
  return out;
}

/// The affinity column of a helper thread (Linux): hard, then the limit where it narrows.
std::string hard_and_limit(const HostInfo& host, const CpuMap& hard, const CpuMap& limit) {
  std::string out = fmt::format("{:a}", hard);
  if (!host.caps.vcpu_limit.empty() && !(hard - limit).empty())
    out += fmt::format(" [{} {:a}]", host.caps.vcpu_limit, limit);
  return out;
}

/// The JSON members a vcpu object carries for its domain's pool and node affinity, each
/// where there is one: `, "pool": 1, "pool_name": "fast", "node_affinity": "0"`.
std::string domain_json_members(const HostInfo& host, const DomainSnapshot& d) {
  std::string out;
  if (d.domain.pool) {
    const CpuPool* pool = pool_of(host, d.domain);
    out += fmt::format(", \"pool\": {}, \"pool_name\": {}", *d.domain.pool,
                       pool ? escape_json(pool->name) : std::string("null"));
  }
  if (d.node_affinity) out += fmt::format(", \"node_affinity\": \"{}\"", *d.node_affinity);
  return out;
}

void print_vcpu(Layout layout, const HostInfo& host, const DomainSnapshot& d, const VcpuMetrics& m,
                std::optional<double> util, bool watch, bool first) {
  const CpuMap hard = d.hard.row(m.vcpu), soft = d.soft.row(m.vcpu), limit = d.limit.row(m.vcpu);
  const std::string cpu = m.cpu && m.state != VcpuState::offline ? std::to_string(*m.cpu) : "-";
  const std::string use = !watch ? "" : util ? fmt::format(" {:5.1f}", *util) : fmt::format(" {:>5}", "-");
  if (layout != Layout::json && !d.domain.vcpu_problem.empty()) {
    if (m.vcpu == 0)  // one line for the domain: its vcpus are unknown, and why
      fmt::print("{:<32} {:>5} {:>5}{:>5}   ??? {:>9}  vcpus unknown: {}\n", escape_terminal(d.domain.name),
                 d.domain.id, "-", "-", "-", escape_terminal(d.domain.vcpu_problem));
    return;
  }
  if (layout == Layout::xl && !host.caps.soft_affinity) {
    fmt::print("{:<32} {:>5} {:>5}{:>5}   {} {:9.1f}{}  {:a}{}\n", escape_terminal(d.domain.name), d.domain.id, m.vcpu,
               cpu, state_chars(m.state), xl_seconds(m.cpu_time), use.empty() ? "" : " " + use, hard,
               confinement_notes(host, d, hard, limit));
  } else if (layout == Layout::xl) {  // xl_vcpu.c: "%-32s %5u %5u" "%5u %3c%c%c " "%9.1f  " hard " / " soft
    fmt::print("{:<32} {:>5} {:>5}{:>5}   {} {:9.1f}{}  {:a} / {:a}{}\n", escape_terminal(d.domain.name), d.domain.id,
               m.vcpu, cpu, state_chars(m.state), xl_seconds(m.cpu_time), use.empty() ? "" : " " + use, hard, soft,
               confinement_notes(host, d, hard, limit));
  } else if (layout == Layout::xm) {  // xm: "%-32s %3d %5d %4s %5s %9.1f  %s"
    const std::string affinity = hard.all() ? "any cpu" : hard.empty() ? "no cpus" : hard.to_string();
    fmt::print("{:<32} {:>3} {:>5} {:>4} {:>5} {:9.1f}{}  {}\n", escape_terminal(d.domain.name), d.domain.id, m.vcpu, cpu,
               state_chars(m.state), static_cast<double>(m.cpu_time.count()) / 1e9, use, affinity);
  } else {
    fmt::print(
        "{}{{\"domain\": {}, \"id\": {}, \"vcpu\": {}, \"state\": \"{}\", \"cpu\": {}, \"time_ns\": {}, "
        "\"wait_ns\": {}, \"hard\": \"{}\", \"soft\": \"{}\", \"limit\": \"{}\", \"effective\": \"{}\"{}{}{}}}",
        first ? "" : ",\n", escape_json(d.domain.name), d.domain.id, m.vcpu, m.state, cpu == "-" ? "null" : cpu, m.cpu_time.count(),
        m.wait_time ? std::to_string(m.wait_time->count()) : std::string("null"), hard, soft, limit,
        d.effective.row(m.vcpu),
        d.domain.vcpu_problem.empty() ? std::string() : fmt::format(", \"problem\": {}", escape_json(d.domain.vcpu_problem)),
        domain_json_members(host, d),
        !watch ? ""
        : util ? fmt::format(", \"util\": {:.1f}", *util)
               : ", \"util\": null");
  }
}

/// A guest's emulator thread or IOThread (--threads), as a row after its vcpus.
void print_thread(Layout layout, const HostInfo& host, const DomainInfo& d, const examples::HelperThread& t,
                  bool first) {
  const VcpuMetrics& m = t.metrics;
  const std::string cpu = m.cpu ? std::to_string(*m.cpu) : "-";
  const std::string which = t.emulator ? "emulator" : "iothread";
  if (layout == Layout::json) {
    fmt::print("{}{{\"domain\": {}, \"id\": {}, \"thread\": \"{}\", {}\"tid\": {}, \"state\": \"{}\", \"cpu\": {}, "
               "\"time_ns\": {}, \"wait_ns\": {}, \"hard\": \"{}\", \"limit\": \"{}\"}}",
               first ? "" : ",\n", escape_json(d.name), d.id, which,
               t.emulator ? std::string() : fmt::format("\"iothread\": {}, ", escape_json(t.iothread)), t.tid, m.state,
               cpu == "-" ? "null" : cpu, m.cpu_time.count(),
               m.wait_time ? std::to_string(m.wait_time->count()) : std::string("null"), t.hard, t.limit);
    return;
  }
  const std::string label = t.emulator ? "emu" : fmt::format("io:{}", escape_terminal(t.iothread));
  fmt::print("{:<32} {:>5} {:>5}{:>5}   {} {:9.1f}  {}\n", escape_terminal(d.name), d.id, label, cpu,
             state_chars(m.state), xl_seconds(m.cpu_time), hard_and_limit(host, t.hard, t.limit));
}

/// Where the host's own processes run (--threads), when the backend says.
void print_system(Layout layout, const HostInfo& host, bool first) {
  if (!host.system_cpus) return;
  if (layout == Layout::json)
    fmt::print("{}{{\"thread\": \"host\", \"cpus\": \"{}\"}}", first ? "" : ",\n", *host.system_cpus);
  else
    fmt::print("{:<32} {:>5} {:>5}{:>5}   {} {:>9}  {:a}\n", "(host processes)", "-", "-", "-", "---", "-",
               *host.system_cpus);
}

/// A set as the host listing writes it: a canonical list, "none" when empty.
template <class Set>
std::string list_or_none(const Set& s) {
  return s.empty() ? std::string("none") : s.to_string();
}

/// A pool as a JSON object.
std::string pool_json(const CpuPool& p) {
  return fmt::format("{{\"id\": {}, \"name\": {}, \"scheduler\": {}, \"cpus\": \"{}\", \"domains\": {}}}", p.id,
                     escape_json(p.name), escape_json(p.scheduler), p.cpus, p.domains);
}

/// --pools: `xl cpupool-list -c` ("%-19s" name, the CPU list) with the id, scheduler and
/// domain count of `xl cpupool-list` beside it.
void print_pools(Layout layout, const HostInfo& host) {
  if (layout == Layout::json) {
    std::vector<std::string> items;
    for (const CpuPool& p : host.pools) items.push_back(pool_json(p));
    fmt::print("[{}{}{}]\n", items.empty() ? "" : "\n", fmt::join(items, ",\n"), items.empty() ? "" : "\n");
    return;
  }
  if (host.pools.empty()) {
    fmt::print("this host has no cpupools\n");
    return;
  }
  fmt::print("{:<19}{:>5}  {:<9} {:>7}  {}\n", "Name", "ID", "Sched", "Domains", "CPU list");
  for (const CpuPool& p : host.pools)
    fmt::print("{:<19}{:>5}  {:<9} {:>7}  {}\n", p.name.empty() ? std::string("-") : escape_terminal(p.name), p.id,
               escape_terminal(p.scheduler), p.domains, list_or_none(p.cpus));
}

/// Bytes for a person: "15.6 GiB", "512.0 MiB", "900 bytes".
std::string bytes_text(std::uint64_t n) {
  const double b = static_cast<double>(n);
  if (n >= (std::uint64_t{1} << 40)) return fmt::format("{:.1f} TiB", b / static_cast<double>(std::uint64_t{1} << 40));
  if (n >= (std::uint64_t{1} << 30)) return fmt::format("{:.1f} GiB", b / static_cast<double>(std::uint64_t{1} << 30));
  if (n >= (std::uint64_t{1} << 20)) return fmt::format("{:.1f} MiB", b / static_cast<double>(std::uint64_t{1} << 20));
  return fmt::format("{} bytes", n);
}

/// The SMT sibling groups of the present CPUs: CPUs of one socket and core, in the order of
/// their first CPU; a CPU whose core or socket is unknown is a group of its own.
std::vector<CpuMap> core_groups(const HostInfo& host) {
  const std::size_t n = host.cpu_universe();
  auto at = [](const std::vector<std::optional<unsigned>>& v, std::size_t i) {
    return i < v.size() ? v[i] : std::nullopt;
  };
  std::map<std::pair<unsigned, unsigned>, std::size_t> index;  // (socket, core) -> group
  std::vector<CpuMap> groups;
  for (std::size_t cpu : host.present) {
    const auto socket = at(host.cpu_socket, cpu), core = at(host.cpu_core, cpu);
    std::size_t g = groups.size();
    if (socket && core) {
      auto [it, added] = index.try_emplace({*socket, *core}, groups.size());
      g = it->second;
      if (!added) {
        groups[g].set(cpu);
        continue;
      }
    }
    groups.emplace_back(n);
    groups[g].set(cpu);
  }
  return groups;
}

/// --host: the CPUs, topology, NUMA nodes (with memory where the hypervisor says), pools,
/// capabilities.
void print_host(Layout layout, const HostInfo& host) {
  auto opt = [](const std::optional<unsigned>& v) { return v ? std::to_string(*v) : std::string("null"); };
  auto at = [](const std::vector<std::optional<unsigned>>& v, std::size_t i) {
    return i < v.size() ? v[i] : std::nullopt;
  };
  const bool memory = !host.node_memory.empty();
  if (layout == Layout::json) {
    std::vector<std::string> nodes, cpus, pools;
    for (std::size_t n = 0; n < host.numa_nodes.size(); ++n) {
      const bool known = memory && n < host.node_memory.size();
      nodes.push_back(fmt::format("{{\"id\": {}, \"cpus\": \"{}\", \"memory\": {}, \"free\": {}}}", n,
                                  host.numa_nodes[n], known ? std::to_string(host.node_memory[n].size) : "null",
                                  known ? std::to_string(host.node_memory[n].free) : "null"));
    }
    for (std::size_t c : host.present)
      cpus.push_back(fmt::format("{{\"cpu\": {}, \"online\": {}, \"socket\": {}, \"core\": {}, \"node\": {}}}", c,
                                 host.online.test(c), opt(at(host.cpu_socket, c)), opt(at(host.cpu_core, c)),
                                 opt(at(host.cpu_node, c))));
    for (const CpuPool& p : host.pools) pools.push_back(pool_json(p));
    fmt::print(
        "{{\"cpus\": {}, \"present\": \"{}\", \"online\": \"{}\", \"sockets\": {}, \"cores_per_socket\": {}, "
        "\"threads_per_core\": {},\n \"caps\": {{\"soft_affinity\": {}, \"vcpu_limit\": {}, \"set_online\": {}, "
        "\"node_affinity\": {}}},\n \"system_cpus\": {},\n \"nodes\": [{}],\n \"pools\": [{}],\n "
        "\"cpu_topology\": [{}]}}\n",
        host.cpu_universe(), host.present, host.online, host.sockets, host.cores_per_socket, host.threads_per_core,
        host.caps.soft_affinity, host.caps.vcpu_limit.empty() ? std::string("null") : escape_json(host.caps.vcpu_limit),
        host.caps.set_online, host.caps.node_affinity,
        host.system_cpus ? fmt::format("\"{}\"", *host.system_cpus) : std::string("null"), fmt::join(nodes, ", "),
        fmt::join(pools, ", "), fmt::join(cpus, ", "));
    return;
  }
  fmt::print("CPUs: {} (present {}, online {})\n", host.cpu_universe(), list_or_none(host.present),
             list_or_none(host.online));
  fmt::print("topology: {} socket{} x {} core{} x {} thread{}\n", host.sockets, host.sockets == 1 ? "" : "s",
             host.cores_per_socket, host.cores_per_socket == 1 ? "" : "s", host.threads_per_core,
             host.threads_per_core == 1 ? "" : "s");
  if (host.threads_per_core > 1 && !host.cpu_core.empty()) {
    std::vector<std::string> groups;
    for (const CpuMap& g : core_groups(host)) groups.push_back(g.to_string());
    fmt::print("SMT siblings: {}\n", fmt::join(groups, " "));
  }
  for (std::size_t n = 0; n < host.numa_nodes.size(); ++n) {
    fmt::print("node {}: CPUs {}", n, list_or_none(host.numa_nodes[n]));
    if (memory && n < host.node_memory.size())
      fmt::print(", memory {} ({} free)", bytes_text(host.node_memory[n].size), bytes_text(host.node_memory[n].free));
    fmt::print("\n");
  }
  for (const CpuPool& p : host.pools)
    fmt::print("{}: {}, CPUs {}, {} domain{}\n", describe(p), escape_terminal(p.scheduler), list_or_none(p.cpus),
               p.domains, p.domains == 1 ? "" : "s");
  std::vector<std::string> caps;
  caps.push_back(host.caps.soft_affinity ? "soft affinity" : "no soft affinity");
  if (!host.caps.vcpu_limit.empty())
    caps.push_back(fmt::format("vcpus confined by {}", escape_terminal(host.caps.vcpu_limit)));
  if (host.caps.set_online) caps.push_back("online vcpus can be set");
  if (host.caps.node_affinity) caps.push_back("node affinity");
  fmt::print("capabilities: {}\n", fmt::join(caps, ", "));
  if (host.system_cpus) fmt::print("host processes: CPUs {}\n", list_or_none(*host.system_cpus));
}

/// CPU time and when it was read, per (domain, vcpu): the previous sample of --watch.
using Sample = std::map<std::pair<std::uint32_t, unsigned>,
                        std::pair<std::chrono::nanoseconds, std::chrono::system_clock::time_point>>;

int list(int argc, char** argv, examples::Backend& backend) {
  examples::Args args(argc, argv);
  Layout layout = Layout::xl;
  std::optional<double> watch;
  std::optional<unsigned> count;
  std::vector<std::string> filter;
  std::optional<std::string> output;
  bool threads = false, pools = false, host_info = false;
  while (args.next()) {
    if (backend.parse(args)) continue;
    if (args.is("--xm") || args.is("--json") || args.is("--prometheus")) {
      const Layout chosen = args.is("--xm") ? Layout::xm : args.is("--json") ? Layout::json : Layout::prometheus;
      if (layout != Layout::xl && layout != chosen)
        throw examples::Usage("--xm, --json and --prometheus exclude each other");
      layout = chosen;
    } else if (auto file = args.value("--output")) {
      if (file->empty()) throw examples::Usage("--output needs a file name");
      output = *file;
    } else if (args.is("--threads")) {
      threads = true;
    } else if (args.is("--pools")) {
      pools = true;
    } else if (args.is("--host")) {
      host_info = true;
    } else if (auto secs = args.value("--watch")) {
      watch = examples::parse_seconds("--watch", *secs);
    } else if (auto n = args.value("--count")) {
      count = examples::parse_count("--count", *n);
      if (*count == 0) throw examples::Usage("--count needs at least 1 sample");
    } else if (args.positional()) {
      filter.push_back(args.current());
    } else {
      args.unknown();
    }
  }
  if (count && !watch) throw examples::Usage("--count goes with --watch");
  if (output && layout != Layout::prometheus) throw examples::Usage("--output goes with --prometheus");
  if (layout == Layout::prometheus && threads) throw examples::Usage("--prometheus takes no --threads");
  if (pools || host_info) {
    const std::string_view option = pools ? "--pools" : "--host";
    if (pools && host_info) throw examples::Usage("--pools and --host exclude each other");
    if (layout == Layout::xm || layout == Layout::prometheus)
      throw examples::Usage(fmt::format("{} takes --json, not {}", option, layout == Layout::xm ? "--xm" : "--prometheus"));
    if (threads || watch) throw examples::Usage(fmt::format("{} takes neither --threads nor --watch", option));
    if (!filter.empty()) throw examples::Usage(fmt::format("{} takes no DOMAIN", option));
    AnyHypervisor& hv = backend.open("vcpu-list", examples::Access::read);
    const HostInfo host = hv.host_info();
    if (pools)
      print_pools(layout, host);
    else
      print_host(layout, host);
    return 0;
  }

  AnyHypervisor& hv = backend.open("vcpu-list", examples::Access::read, watch.has_value());
  if (threads) examples::require_helper_threads(hv, "--threads");
  if (watch) stop_on_signals();
  Sample previous;
  for (unsigned n = 0; !count || n < *count; ++n) {
    if (n > 0) {
      if (!pause_between_samples(*watch)) break;
      if (!output) fmt::print("\n");
    }
    const auto read_start = std::chrono::steady_clock::now();
    HostSnapshot host = hv.snapshot_all();
    const auto read_time = std::chrono::steady_clock::now() - read_start;
    std::vector<const DomainSnapshot*> shown;
    for (const DomainSnapshot& d : host.domains) shown.push_back(&d);
    if (!filter.empty()) {
      shown.clear();
      for (const std::string& which : filter)
        shown.push_back(&host.domains[examples::find_domain(
            host.domains, which, [](const DomainSnapshot& d) -> const DomainInfo& { return d.domain; })]);
    }
    if (layout == Layout::prometheus) {
      ExpositionStats stats;
      stats.read_duration = std::chrono::duration_cast<std::chrono::nanoseconds>(read_time);
      stats.read_calls = hv.call_count();
      stats.read_at = host.taken_at;
      const std::string text = to_prometheus(host.host, shown, stats);
      if (output) write_file_atomically(*output, text);
      else fmt::print("{}", text);
      std::fflush(stdout);
      if (!watch || stop_requested) break;
      continue;
    }
    std::size_t printed = 0;
    Sample current;
    print_header(layout, watch.has_value(), host.host);
    if (threads && host.host.system_cpus) print_system(layout, host.host, printed++ == 0);
    for (const DomainSnapshot* d : shown) {
      for (const VcpuMetrics& m : d->vcpus) {
        const auto key = std::pair{to_integer(d->domain.id), m.vcpu};
        std::optional<double> util;
        if (auto it = previous.find(key); it != previous.end() && d->taken_at > it->second.second)
          util = 100.0 * static_cast<double>((m.cpu_time - it->second.first).count()) /
                 static_cast<double>(
                     std::chrono::duration_cast<std::chrono::nanoseconds>(d->taken_at - it->second.second).count());
        current[key] = {m.cpu_time, d->taken_at};
        print_vcpu(layout, host.host, *d, m, util, watch.has_value(), printed++ == 0);
      }
      if (threads) {
        std::vector<examples::HelperThread> helpers;
        try {
          helpers = examples::helper_threads(hv, "--threads", d->domain.id);
        } catch (const Error& e) {
          if (e.code() != ErrorCode::not_found) throw;  // the guest exited since the snapshot: its vcpus are shown
        }
        for (const examples::HelperThread& t : helpers) print_thread(layout, host.host, d->domain, t, printed++ == 0);
      }
    }
    if (layout == Layout::json) fmt::print("{}]\n", printed == 0 ? "" : "\n");
    std::fflush(stdout);
    previous = std::move(current);
    if (!watch || stop_requested) break;
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  return examples::run("vcpu-list", usage, [&](examples::Backend& backend) { return list(argc, argv, backend); });
}
