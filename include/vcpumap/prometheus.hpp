// vcpumap/prometheus.hpp — a host's vcpus in the Prometheus text exposition format.
//
//   vcpumap::HostSnapshot s = hv.snapshot_all();
//   vcpumap::write_file_atomically("/var/lib/node_exporter/vcpumap.prom", vcpumap::to_prometheus(s));
//
// The text format 0.0.4 that node_exporter's textfile collector and every Prometheus scrape
// read: each family once, `# HELP` and `# TYPE` first, then its samples; no timestamps (the
// textfile collector refuses them). Names follow Prometheus' conventions: base units
// (seconds), `_total` on counters, `_info` for a series of 1 whose labels carry text.
//
// What is published, and the labels of each:
//   per vcpu   {domain, domain_id, vcpu}
//     vcpumap_vcpu_cpu_seconds_total   counter  CPU time
//     vcpumap_vcpu_wait_seconds_total  counter  time ready but waiting for a CPU (where known)
//     vcpumap_vcpu_state{state}        gauge    1 for the vcpu's state, 0 for the others
//     vcpumap_vcpu_last_cpu            gauge    the CPU it last ran on (online vcpus only)
//     vcpumap_vcpu_pinned              gauge    1 when its hard affinity is an explicit pin
//     vcpumap_vcpu_{hard,soft,effective}_affinity_cpus  gauge  how many CPUs each map has
//     vcpumap_vcpu_affinity_info{hard, soft, effective, limit}  gauge 1, canonical cpulists
//   per domain {domain, domain_id}
//     vcpumap_domain_cpu_seconds_total counter; vcpumap_domain_vcpus, _vcpus_online gauges;
//     vcpumap_domain_pinned (1 when any vcpu is pinned); vcpumap_domain_info{uuid, pool,
//     node_affinity, problem} 1 (problem: why its vcpus cannot be seen, else absent)
//   per present host CPU {cpu}
//     vcpumap_cpu_info{socket, core, node} 1; vcpumap_cpu_online;
//     vcpumap_cpu_pinned_vcpus / vcpumap_cpu_pinned_domains: the pinned vcpus (domains) whose
//     hard affinity, within their limit (cpupool, cpuset), names the CPU
//   per host   vcpumap_host_cpus, vcpumap_host_cpus_online; and what ExpositionStats gives:
//     vcpumap_read_duration_seconds, vcpumap_read_calls, vcpumap_read_timestamp_seconds.
//
// Why the affinity is counts plus one info series, not one series per allowed CPU: on a host
// of 4,096 CPUs with 512 vcpus, a series per (vcpu, allowed CPU) is up to 2 million series per
// map; here a vcpu costs 13 series and a CPU 4, whatever the CPU count (23,040 in that
// example). The info series' labels hold the canonical cpulist, which changes only when a
// pin changes (one new series per re-pin, no churn between scrapes), and is short for the
// pins admins make (ranges); its worst case is bounded by the host (about 5 bytes per CPU).
// Alerts read the counts and 0/1 gauges ("pinned == 0", "pinned_domains > 1"); the info
// series says which CPUs, and joins with `on(domain_id, vcpu)`.
//
// Label values: a domain name is escaped as for a terminal (escape_terminal: control
// characters and bytes that are not UTF-8 become the visible text \xHH, a backslash \\), then
// as the format asks (\\, \", \n): always valid UTF-8, one line, and the same text the tools
// print.
#pragma once

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <fmt/format.h>

#include "cpu_map.hpp"
#include "model.hpp"
#include "text.hpp"

namespace vcpumap {

/// How the read that made a snapshot went, published beside it when given.
struct ExpositionStats {
  /// Wall time of the read.
  std::optional<std::chrono::nanoseconds> read_duration;
  /// Hypervisor calls the read made (Hypervisor::last_call_count).
  std::optional<std::uint64_t> read_calls;
  /// When the values were read (HostSnapshot::taken_at).
  std::optional<std::chrono::system_clock::time_point> read_at;
};

namespace detail {

/// `text` as a label value between the quotes: escape_terminal's text, with \ " and newline
/// escaped as the exposition format asks.
inline std::string prometheus_label_value(std::string_view text) {
  const std::string safe = escape_terminal(text);
  std::string out;
  out.reserve(safe.size());
  for (char c : safe) {
    if (c == '\\') out += "\\\\";
    else if (c == '"') out += "\\\"";
    else if (c == '\n') out += "\\n";
    else out += c;
  }
  return out;
}

/// Nanoseconds as exact decimal seconds: "636.800000000".
inline std::string prometheus_seconds(std::chrono::nanoseconds t) {
  const std::int64_t ns = t.count();
  const std::uint64_t magnitude = ns < 0 ? 0 - static_cast<std::uint64_t>(ns) : static_cast<std::uint64_t>(ns);
  return fmt::format("{}{}.{:09}", ns < 0 ? "-" : "", magnitude / 1'000'000'000, magnitude % 1'000'000'000);
}

/// The exposition being written: families in order, each announced once.
class Exposition {
 public:
  /// Starts a family: its HELP and TYPE lines.
  void family(std::string_view name, std::string_view type, std::string_view help) {
    out_ += fmt::format("# HELP {} {}\n# TYPE {} {}\n", name, help, name, type);
  }
  /// One sample; `labels` is the text between the braces (empty: none).
  void sample(std::string_view name, std::string_view labels, std::string_view value) {
    if (labels.empty()) out_ += fmt::format("{} {}\n", name, value);
    else out_ += fmt::format("{}{{{}}} {}\n", name, labels, value);
  }
  void sample(std::string_view name, std::string_view labels, std::uint64_t value) {
    sample(name, labels, std::string_view(std::to_string(value)));
  }
  std::string take() { return std::move(out_); }

 private:
  std::string out_;
};

/// `, name="value"` for a label that has a value; nothing for an empty one (Prometheus reads
/// an empty label as an absent one).
inline std::string optional_label(std::string_view name, std::string_view value) {
  return value.empty() ? std::string() : fmt::format(",{}=\"{}\"", name, prometheus_label_value(value));
}

}  // namespace detail

/// The exposition of `domains` (any subset of a host's snapshots, in the order given) on
/// `host`. Per-CPU pin counts cover those domains only. A domain whose vcpus cannot be seen
/// (vcpu_problem) has its domain series, with vcpus_online and pinned as reported, and none
/// per vcpu.
inline std::string to_prometheus(const HostInfo& host, std::span<const DomainSnapshot* const> domains,
                                 const ExpositionStats& stats = {}) {
  using detail::prometheus_label_value;
  using detail::prometheus_seconds;
  detail::Exposition e;
  // Each domain's labels and each seen vcpu's labels and pin, worked out once for all families.
  struct Vcpu {
    const DomainSnapshot& d;
    const VcpuMetrics& m;
    std::string labels;
    bool pinned;
  };
  struct Domain {
    const DomainSnapshot& d;
    std::string labels;
    std::size_t first, last;  // its vcpus in `vcpus` (none when they cannot be seen)
    bool pinned;
  };
  std::vector<Vcpu> vcpus;
  std::vector<Domain> doms;
  doms.reserve(domains.size());
  for (const DomainSnapshot* d : domains) {
    Domain dom{*d,
               fmt::format("domain=\"{}\",domain_id=\"{}\"", prometheus_label_value(d->domain.name),
                           to_integer(d->domain.id)),
               vcpus.size(), vcpus.size(), false};
    if (d->domain.vcpu_problem.empty())
      for (const VcpuMetrics& m : d->vcpus) {
        const bool pinned = host.is_pinned(d->hard.row(m.vcpu));
        dom.pinned = dom.pinned || pinned;
        vcpus.push_back({*d, m, fmt::format("{},vcpu=\"{}\"", dom.labels, m.vcpu), pinned});
      }
    dom.last = vcpus.size();
    doms.push_back(std::move(dom));
  }
  const auto flag = [](bool b) { return std::string_view(b ? "1" : "0"); };

  // Per vcpu.
  e.family("vcpumap_vcpu_cpu_seconds_total", "counter", "CPU time the vcpu has run, in seconds.");
  for (const Vcpu& v : vcpus)
    e.sample("vcpumap_vcpu_cpu_seconds_total", v.labels, prometheus_seconds(v.m.cpu_time));
  if (std::any_of(vcpus.begin(), vcpus.end(), [](const Vcpu& v) { return v.m.wait_time.has_value(); })) {
    e.family("vcpumap_vcpu_wait_seconds_total", "counter",
             "Time the vcpu was ready to run but waited for a CPU (steal), in seconds.");
    for (const Vcpu& v : vcpus)
      if (v.m.wait_time) e.sample("vcpumap_vcpu_wait_seconds_total", v.labels, prometheus_seconds(*v.m.wait_time));
  }
  constexpr std::array states{VcpuState::offline, VcpuState::running, VcpuState::blocked, VcpuState::runnable,
                              VcpuState::unknown};
  e.family("vcpumap_vcpu_state", "gauge", "1 for the state the vcpu is in, 0 for the others.");
  for (const Vcpu& v : vcpus)
    for (VcpuState s : states)
      e.sample("vcpumap_vcpu_state", fmt::format("{},state=\"{}\"", v.labels, to_string(s)), flag(v.m.state == s));
  e.family("vcpumap_vcpu_last_cpu", "gauge", "The physical CPU the vcpu last ran on (online vcpus only).");
  for (const Vcpu& v : vcpus)
    if (v.m.cpu && v.m.state != VcpuState::offline) e.sample("vcpumap_vcpu_last_cpu", v.labels, *v.m.cpu);
  e.family("vcpumap_vcpu_pinned", "gauge",
           "1 when the vcpu's hard affinity is an explicit pin (it leaves out a present CPU).");
  for (const Vcpu& v : vcpus) e.sample("vcpumap_vcpu_pinned", v.labels, flag(v.pinned));
  const auto count_family = [&](std::string_view name, std::string_view help, const AffinityMatrix DomainSnapshot::*map) {
    e.family(name, "gauge", help);
    for (const Vcpu& v : vcpus) e.sample(name, v.labels, (v.d.*map).row(v.m.vcpu).count());
  };
  count_family("vcpumap_vcpu_hard_affinity_cpus", "How many CPUs the vcpu's hard affinity names.",
               &DomainSnapshot::hard);
  if (host.caps.soft_affinity)
    count_family("vcpumap_vcpu_soft_affinity_cpus", "How many CPUs the vcpu's soft affinity names.",
                 &DomainSnapshot::soft);
  count_family("vcpumap_vcpu_effective_affinity_cpus",
               "How many CPUs the vcpu runs on: hard affinity within its limit and the online CPUs.",
               &DomainSnapshot::effective);
  e.family("vcpumap_vcpu_affinity_info", "gauge",
           "The vcpu's affinity maps as canonical cpulists (hard, soft, effective, limit: its cpupool or cpuset).");
  for (const Vcpu& v : vcpus) {
    const DomainSnapshot& d = v.d;
    const unsigned i = v.m.vcpu;
    e.sample("vcpumap_vcpu_affinity_info",
             fmt::format("{},hard=\"{}\"{},effective=\"{}\",limit=\"{}\"", v.labels, d.hard.row(i).to_string(),
                         host.caps.soft_affinity ? fmt::format(",soft=\"{}\"", d.soft.row(i).to_string()) : std::string(),
                         d.effective.row(i).to_string(), d.limit.row(i).to_string()),
             "1");
  }

  // Per domain.
  e.family("vcpumap_domain_cpu_seconds_total", "counter", "CPU time of all the domain's vcpus, in seconds.");
  for (const Domain& d : doms)
    e.sample("vcpumap_domain_cpu_seconds_total", d.labels, prometheus_seconds(d.d.domain.cpu_time));
  e.family("vcpumap_domain_vcpus", "gauge", "How many vcpus the domain can have.");
  for (const Domain& d : doms) e.sample("vcpumap_domain_vcpus", d.labels, d.d.domain.max_vcpus);
  e.family("vcpumap_domain_vcpus_online", "gauge", "How many of the domain's vcpus are online.");
  for (const Domain& d : doms) e.sample("vcpumap_domain_vcpus_online", d.labels, d.d.domain.online_vcpus);
  e.family("vcpumap_domain_pinned", "gauge", "1 when any vcpu of the domain has an explicit pin.");
  for (const Domain& d : doms) e.sample("vcpumap_domain_pinned", d.labels, flag(d.pinned));
  e.family("vcpumap_domain_info", "gauge",
           "The domain's UUID, cpupool, NUMA node affinity and why its vcpus cannot be seen, where there is one.");
  for (const Domain& d : doms) {
    const DomainInfo& info = d.d.domain;
    const CpuPool* pool = info.pool ? host.pool(*info.pool) : nullptr;
    const std::string pool_name = pool ? (pool->name.empty() ? std::to_string(pool->id) : pool->name)
                                       : (info.pool ? std::to_string(*info.pool) : std::string());
    e.sample("vcpumap_domain_info",
             d.labels + detail::optional_label("uuid", info.uuid) + detail::optional_label("pool", pool_name) +
                 detail::optional_label("node_affinity", d.d.node_affinity ? d.d.node_affinity->to_string() : "") +
                 detail::optional_label("problem", info.vcpu_problem),
             "1");
  }

  // Per host CPU: how many pinned vcpus (and domains) may use it.
  const std::size_t n = host.cpu_universe();
  std::vector<std::uint64_t> pinned_vcpus(n), pinned_domains(n);
  for (const Domain& d : doms) {
    if (!d.pinned) continue;
    CpuMap any(n);
    for (std::size_t i = d.first; i < d.last; ++i) {
      if (!vcpus[i].pinned) continue;
      CpuMap hard = d.d.hard.row(vcpus[i].m.vcpu);
      if (CpuMap limit = d.d.limit.row(vcpus[i].m.vcpu); !limit.empty()) hard &= limit;
      hard.resize(n);
      for (std::size_t cpu : hard) ++pinned_vcpus[cpu];
      any |= hard;
    }
    for (std::size_t cpu : any) ++pinned_domains[cpu];
  }
  const auto at = [](const std::vector<std::optional<unsigned>>& v, std::size_t i) {
    return i < v.size() && v[i] ? std::to_string(*v[i]) : std::string();
  };
  e.family("vcpumap_cpu_info", "gauge", "The host CPU's socket, core and NUMA node, where known.");
  for (std::size_t cpu : host.present)
    e.sample("vcpumap_cpu_info",
             fmt::format("cpu=\"{}\"{}{}{}", cpu, detail::optional_label("socket", at(host.cpu_socket, cpu)),
                         detail::optional_label("core", at(host.cpu_core, cpu)),
                         detail::optional_label("node", at(host.cpu_node, cpu))),
             "1");
  e.family("vcpumap_cpu_online", "gauge", "1 when the host CPU is online.");
  for (std::size_t cpu : host.present)
    e.sample("vcpumap_cpu_online", fmt::format("cpu=\"{}\"", cpu), flag(host.online.test(cpu)));
  e.family("vcpumap_cpu_pinned_vcpus", "gauge",
           "How many pinned vcpus may run on the host CPU (their hard affinity, within their limit, names it).");
  for (std::size_t cpu : host.present)
    e.sample("vcpumap_cpu_pinned_vcpus", fmt::format("cpu=\"{}\"", cpu), pinned_vcpus[cpu]);
  e.family("vcpumap_cpu_pinned_domains", "gauge", "How many domains have a pinned vcpu that may run on the host CPU.");
  for (std::size_t cpu : host.present)
    e.sample("vcpumap_cpu_pinned_domains", fmt::format("cpu=\"{}\"", cpu), pinned_domains[cpu]);

  // Per host.
  e.family("vcpumap_host_cpus", "gauge", "How many CPU ids the host has (its highest CPU id + 1).");
  e.sample("vcpumap_host_cpus", "", n);
  e.family("vcpumap_host_cpus_online", "gauge", "How many of the host's CPUs are online.");
  e.sample("vcpumap_host_cpus_online", "", host.online.count());
  if (stats.read_duration) {
    e.family("vcpumap_read_duration_seconds", "gauge", "Wall time of the read that gave these values, in seconds.");
    e.sample("vcpumap_read_duration_seconds", "", prometheus_seconds(*stats.read_duration));
  }
  if (stats.read_calls) {
    e.family("vcpumap_read_calls", "gauge", "Hypervisor calls the read made.");
    e.sample("vcpumap_read_calls", "", *stats.read_calls);
  }
  if (stats.read_at) {
    e.family("vcpumap_read_timestamp_seconds", "gauge",
             "When the values were read, in seconds since the Unix epoch.");
    e.sample("vcpumap_read_timestamp_seconds", "",
             prometheus_seconds(std::chrono::duration_cast<std::chrono::nanoseconds>(stats.read_at->time_since_epoch())));
  }
  return e.take();
}

/// The exposition of a whole host snapshot; its taken_at is the read time unless `stats` has one.
inline std::string to_prometheus(const HostSnapshot& snapshot, ExpositionStats stats = {}) {
  std::vector<const DomainSnapshot*> all;
  all.reserve(snapshot.domains.size());
  for (const DomainSnapshot& d : snapshot.domains) all.push_back(&d);
  if (!stats.read_at && snapshot.taken_at != std::chrono::system_clock::time_point{}) stats.read_at = snapshot.taken_at;
  return to_prometheus(snapshot.host, all, stats);
}

}  // namespace vcpumap
