// vcpu-list — every vcpu of every domain, as `xl vcpu-list` prints them (or `xm vcpu-list`, or JSON).
//
//   $ vcpu-list --backend=mock
//   Name                                ID  VCPU   CPU State   Time(s) Affinity (Hard / Soft)
//   Domain-0                             0     0    0   -b-     636.8  all / all
//
// The whole host is read in one library call (snapshot_all), then filtered and printed.
#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "backend.hpp"

namespace {

using namespace vcpumap;

constexpr std::string_view usage =
    "usage: vcpu-list [--xm | --json] [--threads] [--watch SECONDS [--count N]] [backend options] [DOMAIN...]\n"
    "Lists the vcpus of every domain, or of each DOMAIN (a name or an id): the CPU each is on,\n"
    "its state, CPU time and affinity, as `xl vcpu-list` of Xen 4.17 prints them.\n"
    "  --xm            the legacy `xm vcpu-list` table (hard affinity only, 'any cpu' for every CPU)\n"
    "  --json          a JSON array, one object per vcpu: domain, id, vcpu, state, cpu (null when\n"
    "                  offline), time_ns, wait_ns (run-queue wait; null when the hypervisor does not\n"
    "                  say), hard, soft, limit, effective (canonical cpulists), and problem when the\n"
    "                  domain's vcpus cannot be seen; always valid UTF-8 (bytes of a name that are\n"
    "                  not are replaced by U+FFFD)\n"
    "  --threads       linux: also the emulator thread and IOThreads of each guest, and where the\n"
    "                  host's own processes run (JSON: objects with \"thread\": \"emulator\",\n"
    "                  \"iothread\" or \"host\")\n"
    "On a host without soft affinity (Linux) the table shows the hard affinity alone, followed by\n"
    "the vcpu's cpuset in brackets where the cpuset narrows it: 0-3 [cpuset 2-3].\n"
    "  --watch SECONDS reprint every SECONDS with each vcpu's CPU use since the previous sample\n"
    "                  (CPU% column, JSON \"util\"); on the mock, running vcpus accrue real time\n"
    "  --count N       with --watch: stop after N samples\n";

enum class Layout { xl, xm, json };

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

/// The affinity column of a host without soft affinity: hard, then the limit where it narrows.
std::string hard_and_limit(const HostInfo& host, const CpuMap& hard, const CpuMap& limit) {
  std::string out = fmt::format("{:a}", hard);
  if (!host.caps.vcpu_limit.empty() && !(hard - limit).empty())
    out += fmt::format(" [{} {:a}]", host.caps.vcpu_limit, limit);
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
    fmt::print("{:<32} {:>5} {:>5}{:>5}   {} {:9.1f}{}  {}\n", escape_terminal(d.domain.name), d.domain.id, m.vcpu, cpu,
               state_chars(m.state), xl_seconds(m.cpu_time), use.empty() ? "" : " " + use,
               hard_and_limit(host, hard, limit));
  } else if (layout == Layout::xl) {  // xl_vcpu.c: "%-32s %5u %5u" "%5u %3c%c%c " "%9.1f  " hard " / " soft
    fmt::print("{:<32} {:>5} {:>5}{:>5}   {} {:9.1f}{}  {:a} / {:a}\n", escape_terminal(d.domain.name), d.domain.id, m.vcpu, cpu,
               state_chars(m.state), xl_seconds(m.cpu_time), use.empty() ? "" : " " + use, hard, soft);
  } else if (layout == Layout::xm) {  // xm: "%-32s %3d %5d %4s %5s %9.1f  %s"
    const std::string affinity = hard.all() ? "any cpu" : hard.empty() ? "no cpus" : hard.to_string();
    fmt::print("{:<32} {:>3} {:>5} {:>4} {:>5} {:9.1f}{}  {}\n", escape_terminal(d.domain.name), d.domain.id, m.vcpu, cpu,
               state_chars(m.state), static_cast<double>(m.cpu_time.count()) / 1e9, use, affinity);
  } else {
    fmt::print(
        "{}{{\"domain\": {}, \"id\": {}, \"vcpu\": {}, \"state\": \"{}\", \"cpu\": {}, \"time_ns\": {}, "
        "\"wait_ns\": {}, \"hard\": \"{}\", \"soft\": \"{}\", \"limit\": \"{}\", \"effective\": \"{}\"{}{}}}",
        first ? "" : ",\n", escape_json(d.domain.name), d.domain.id, m.vcpu, m.state, cpu == "-" ? "null" : cpu, m.cpu_time.count(),
        m.wait_time ? std::to_string(m.wait_time->count()) : std::string("null"), hard, soft, limit,
        d.effective.row(m.vcpu),
        d.domain.vcpu_problem.empty() ? std::string() : fmt::format(", \"problem\": {}", escape_json(d.domain.vcpu_problem)),
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

/// CPU time and when it was read, per (domain, vcpu): the previous sample of --watch.
using Sample = std::map<std::pair<std::uint32_t, unsigned>,
                        std::pair<std::chrono::nanoseconds, std::chrono::system_clock::time_point>>;

int list(int argc, char** argv, examples::Backend& backend) {
  examples::Args args(argc, argv);
  Layout layout = Layout::xl;
  std::optional<double> watch;
  std::optional<unsigned> count;
  std::vector<std::string> filter;
  bool threads = false;
  while (args.next()) {
    if (backend.parse(args)) continue;
    if (args.is("--xm") || args.is("--json")) {
      const Layout chosen = args.is("--xm") ? Layout::xm : Layout::json;
      if (layout != Layout::xl && layout != chosen) throw examples::Usage("--xm and --json exclude each other");
      layout = chosen;
    } else if (args.is("--threads")) {
      threads = true;
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

  AnyHypervisor& hv = backend.open("vcpu-list", examples::Access::read, watch.has_value());
  if (threads) examples::require_helper_threads(hv, "--threads");
  Sample previous;
  for (unsigned n = 0; !count || n < *count; ++n) {
    if (n > 0) {
      std::this_thread::sleep_for(std::chrono::duration<double>(*watch));
      fmt::print("\n");
    }
    HostSnapshot host = hv.snapshot_all();
    std::vector<const DomainSnapshot*> shown;
    for (const DomainSnapshot& d : host.domains) shown.push_back(&d);
    if (!filter.empty()) {
      shown.clear();
      for (const std::string& which : filter)
        shown.push_back(&host.domains[examples::find_domain(
            host.domains, which, [](const DomainSnapshot& d) -> const DomainInfo& { return d.domain; })]);
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
    if (!watch) break;
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  return examples::run("vcpu-list", usage, [&](examples::Backend& backend) { return list(argc, argv, backend); });
}
