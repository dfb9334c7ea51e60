// vcpu-balance — spread each domain's vcpus over distinct CPUs of one NUMA node.
//
//   $ vcpu-balance              # show the plan as a diff against the current hard affinity
//   $ vcpu-balance --apply web  # pin domain web that way, all or nothing
//
// Vcpus that carry an explicit pin are left where their admin put them unless
// --include-pinned: the decision is per vcpu, so a domain with some pinned vcpus has the
// others balanced around them.
//
// An embedding of the library: one snapshot_all call reads the host, the plan is plain
// computation on the model, and pin_domains applies it a domain at a time, all or nothing:
// if a domain fails, the domains already pinned are put back, so the host ends as it was or
// as planned.
#include <algorithm>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "backend.hpp"

namespace {

using namespace vcpumap;

constexpr std::string_view usage =
    "usage: vcpu-balance [--apply] [--any-node] [--include-pinned] [backend options] [DOMAIN...]\n"
    "Plans a hard affinity that gives every vcpu of each domain (or of each DOMAIN) its own CPU,\n"
    "all within one NUMA node, the least loaded one, keeping vcpus on the CPU they are on when\n"
    "it is free; prints the plan as a diff against the current hard affinity. Soft affinity is\n"
    "kept. A domain with more vcpus than its node has online CPUs shares them round robin.\n"
    "Where vcpus are confined (Linux cpusets, Xen cpupools), only CPUs of every vcpu's cpuset or of\n"
    "the domain's cpupool are used; where a domain's memory is on some NUMA nodes only (its node\n"
    "affinity, Xen), only CPUs of those nodes, unless --any-node. Each domain's line says what\n"
    "kept it there. A domain whose vcpus cannot be seen is skipped, with the reason.\n"
    "A vcpu that carries an explicit pin (its hard affinity leaves out a present CPU: xl shows it\n"
    "as other than 'all'; a vcpu confined only by its cpupool is not pinned, one whose cpuset\n"
    "narrows its thread's affinity is) stays as it is, and its CPU counts as taken: pinned vcpus are\n"
    "left alone and the other vcpus of their domain balanced; a domain whose vcpus are all pinned\n"
    "stays. Each domain's line says which vcpus move, where and why, and which stay.\n"
    "  --apply     pin the plan, all or nothing across domains; print the effective affinity\n"
    "  --any-node  place vcpus on any node, whatever the domain's node affinity\n"
    "  --include-pinned  move pinned vcpus too, as any other\n";

struct DomainPlan {
  const DomainSnapshot* domain;
  std::optional<unsigned> node;  // where its moving vcpus go; none when none moves
  AffinityMatrix hard;
  std::vector<std::string> reasons;  // what kept the domain where it is
};

/// Whether vcpu v carries an explicit pin (HostInfo::is_pinned: its hard affinity leaves out a
/// present CPU, xl's hard affinity other than "all"), the same rule as vcpu-list --prometheus.
bool pinned(const HostInfo& host, const DomainSnapshot& d, unsigned v) { return host.is_pinned(d.hard.row(v)); }

/// "node 1", "nodes 0-1", "no node".
std::string nodes_text(const NodeSet& nodes) {
  return nodes.empty() ? std::string("no node") : fmt::format("{} {}", nodes.count() == 1 ? "node" : "nodes", nodes);
}

/// Places the vcpus `moving` of one domain (the others keep their hard affinity): the node
/// where they raise the load per online CPU least, then that node's least loaded CPUs (on
/// ties, those its vcpus are on, then by id), a vcpu keeping its CPU when that one was chosen.
/// Only online CPUs of every moving vcpu's limit (cpuset; its cpupool) are used, and of the
/// nodes of its node affinity unless any_node or that leaves none.
DomainPlan place(const HostInfo& host, const DomainSnapshot& d, const std::vector<unsigned>& moving,
                 std::vector<unsigned>& load, bool any_node) {
  const std::size_t vcpus = moving.size();
  std::vector<std::string> reasons;
  CpuMap usable = host.online;  // online, and in every moving vcpu's limit (cpuset, cpupool)
  for (unsigned v : moving) usable &= d.limit.row(v);
  const CpuPool* pool = d.domain.pool ? host.pool(*d.domain.pool) : nullptr;
  if (pool && !host.online.is_subset_of(pool->cpus))
    reasons.push_back(
        fmt::format("within its {}: online CPUs {}", describe(*pool), usable.empty() ? "none" : usable.to_string()));
  else if (!pool && usable != host.online)
    reasons.push_back(fmt::format("within its vcpus' {}: online CPUs {}",
                                  host.caps.vcpu_limit.empty() ? std::string("limits") : host.caps.vcpu_limit + "s",
                                  usable.empty() ? "none" : usable.to_string()));
  if (d.node_affinity && !d.node_affinity->all()) {
    const CpuMap near = usable & host.cpus_of(*d.node_affinity);
    if (any_node)
      reasons.push_back(fmt::format("its node affinity ({}) ignored: --any-node", nodes_text(*d.node_affinity)));
    else if (near.empty())
      reasons.push_back(fmt::format("its node affinity ({}) ignored: no online CPU there it may use",
                                    nodes_text(*d.node_affinity)));
    else
      usable = near, reasons.push_back(fmt::format("on its node affinity: {}", nodes_text(*d.node_affinity)));
  }
  std::optional<unsigned> best;
  double best_score = 0;
  for (unsigned n = 0; n < host.numa_nodes.size(); ++n) {
    const CpuMap cpus = host.numa_nodes[n] & usable;
    if (cpus.empty()) continue;
    std::size_t node_load = vcpus;
    for (std::size_t c : cpus) node_load += load[c];
    const double score = static_cast<double>(node_load) / static_cast<double>(cpus.count());
    if (!best || score < best_score) best = n, best_score = score;
  }
  if (!best)
    throw Error(ErrorCode::invalid_argument,
                fmt::format("{}: no NUMA node has an online CPU{}", describe(d.domain),
                            pool ? fmt::format(" in its {}", describe(*pool))
                            : host.caps.vcpu_limit.empty() ? ""
                                                           : fmt::format(" in every vcpu's {}", host.caps.vcpu_limit)));
  const CpuMap node_cpus = host.numa_nodes[*best] & usable;
  std::vector<std::size_t> order(node_cpus.begin(), node_cpus.end());
  CpuMap current(host.cpu_universe());  // on equal load, prefer the CPUs the vcpus are on
  for (const VcpuMetrics& m : d.vcpus)
    if (m.cpu && *m.cpu < current.universe()) current.set(*m.cpu);
  std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
    return std::pair{load[a], !current.test(a)} < std::pair{load[b], !current.test(b)};
  });

  DomainPlan plan{&d, *best, d.hard, std::move(reasons)};
  std::vector<std::size_t> cpu_of(vcpus);  // by index in moving
  for (std::size_t first = 0; first < vcpus; first += order.size()) {  // round robin past the node's size
    const std::size_t count = std::min<std::size_t>(order.size(), vcpus - first);
    std::vector<std::size_t> chosen(order.begin(), order.begin() + static_cast<std::ptrdiff_t>(count));
    std::vector<std::size_t> waiting;
    for (std::size_t i = first; i < first + count; ++i) {
      const std::optional<unsigned> on = d.vcpus[moving[i]].cpu;
      auto here = on ? std::find(chosen.begin(), chosen.end(), *on) : chosen.end();
      if (here != chosen.end())
        cpu_of[i] = *here, chosen.erase(here);
      else
        waiting.push_back(i);
    }
    for (std::size_t k = 0; k < waiting.size(); ++k) cpu_of[waiting[k]] = chosen[k];
  }
  for (std::size_t i = 0; i < vcpus; ++i) {
    CpuMap row(host.cpu_universe());
    row.set(cpu_of[i]);
    plan.hard.set_row(moving[i], row), ++load[cpu_of[i]];
  }
  return plan;
}

/// "vcpu 2", "vcpus 0-1,3" (of a domain of `max_vcpus`).
std::string vcpus_text(unsigned max_vcpus, const std::vector<unsigned>& vcpus) {
  VcpuSet set(max_vcpus);
  for (unsigned v : vcpus) set.set(v);
  return fmt::format("vcpu{} {}", vcpus.size() == 1 ? "" : "s", set);
}

int balance(int argc, char** argv, examples::Backend& backend) {
  examples::Args args(argc, argv);
  bool apply = false, any_node = false, include_pinned = false;
  std::vector<std::string> filter;
  while (args.next()) {
    if (backend.parse(args)) continue;
    if (args.is("--apply"))
      apply = true;
    else if (args.is("--any-node"))
      any_node = true;
    else if (args.is("--include-pinned"))
      include_pinned = true;
    else if (args.positional())
      filter.push_back(args.current());
    else
      args.unknown();
  }

  AnyHypervisor& hv = backend.open("vcpu-balance", apply ? examples::Access::change : examples::Access::read);
  const HostSnapshot host = hv.snapshot_all();
  std::vector<const DomainSnapshot*> chosen;
  for (const std::string& which : filter) {
    const DomainSnapshot* d = &host.domains[examples::find_domain(
        host.domains, which, [](const DomainSnapshot& s) -> const DomainInfo& { return s.domain; })];
    if (std::find(chosen.begin(), chosen.end(), d) == chosen.end()) chosen.push_back(d);  // "web 1": one domain
  }
  if (filter.empty())
    for (const DomainSnapshot& d : host.domains) chosen.push_back(&d);

  // The online vcpus that stay (pinned) take their CPU before any domain is placed.
  std::vector<unsigned> load(host.host.cpu_universe(), 0);
  auto stays = [&](const DomainSnapshot& d, unsigned v) { return !include_pinned && pinned(host.host, d, v); };
  for (const DomainSnapshot* d : chosen)
    if (d->domain.vcpu_problem.empty() && !d->domain.flags.dying)
      for (unsigned v = 0; v < d->domain.max_vcpus; ++v)
        if (const VcpuMetrics& m = d->vcpus[v]; stays(*d, v) && m.state != VcpuState::offline && m.cpu &&
                                                *m.cpu < load.size())
          ++load[*m.cpu];

  std::vector<DomainPlan> plans;
  std::size_t changes = 0, kept = 0;
  for (const DomainSnapshot* d : chosen) {
    if (d->domain.max_vcpus == 0 || d->domain.flags.dying) continue;
    if (!d->domain.vcpu_problem.empty()) {
      fmt::print("{}: skipped: {}\n", describe(d->domain), escape_terminal(d->domain.vcpu_problem));
      continue;
    }
    std::vector<unsigned> moving, staying, overridden;
    for (unsigned v = 0; v < d->domain.max_vcpus; ++v) {
      (stays(*d, v) ? staying : moving).push_back(v);
      if (include_pinned && pinned(host.host, *d, v)) overridden.push_back(v);
    }
    kept += staying.size();
    DomainPlan plan =
        moving.empty() ? DomainPlan{d, std::nullopt, d->hard, {}} : place(host.host, *d, moving, load, any_node);
    std::vector<std::string> why;
    if (!moving.empty())
      why.push_back(fmt::format("{} vcpu{} on node {}, the least loaded it may use{}", moving.size(),
                                moving.size() == 1 ? "" : "s", *plan.node,
                                plan.reasons.empty() ? std::string()
                                                     : fmt::format(" ({})", fmt::join(plan.reasons, "; "))));
    if (!staying.empty())
      why.push_back(fmt::format("{}{} pinned, left as {} (--include-pinned moves them)",
                                moving.empty() ? "stays: " : "", vcpus_text(d->domain.max_vcpus, staying),
                                staying.size() == 1 ? "it is" : "they are"));
    if (!overridden.empty())
      why.push_back(
          fmt::format("pins of {} overridden: --include-pinned", vcpus_text(d->domain.max_vcpus, overridden)));
    fmt::print("{}: {}\n", describe(d->domain), fmt::join(why, "; "));
    for (unsigned v = 0; v < d->domain.max_vcpus; ++v) {
      const CpuMap before = d->hard.row(v), after = plan.hard.row(v);
      changes += before != after;
      if (stays(*d, v))
        fmt::print("  vcpu {}: hard {:a} (pinned, stays)\n", v, before);
      else if (before == after)
        fmt::print("  vcpu {}: hard {:a} (unchanged)\n", v, before);
      else
        fmt::print("  vcpu {}: hard {:a} -> {:a}\n", v, before, after);
    }
    plans.push_back(std::move(plan));
  }
  fmt::print("{} vcpu{} to re-pin in {} domain{}{}", changes, changes == 1 ? "" : "s", plans.size(),
             plans.size() == 1 ? "" : "s",
             kept ? fmt::format(" ({} pinned vcpu{} left alone)", kept, kept == 1 ? "" : "s") : "");
  if (!apply || changes == 0) {
    fmt::print("{}\n", apply ? "; nothing to do" : "; nothing applied (use --apply)");
    return 0;
  }
  fmt::print("; applying\n");

  // Only the domains that change; every row of each (those that stay are pinned as read).
  std::erase_if(plans, [](const DomainPlan& p) { return p.hard == p.domain->hard; });
  std::vector<DomainPin> pins;
  for (const DomainPlan& plan : plans) pins.push_back({plan.domain->domain.id, MatrixPin{plan.hard, std::nullopt}});
  const std::vector<MatrixPinResult> results = pin_domains(hv, std::span<const DomainPin>(pins));
  for (std::size_t i = 0; i < plans.size(); ++i) {
    std::vector<std::string> cpus;
    for (unsigned v = 0; v < results[i].hard.rows(); ++v)
      cpus.push_back(results[i].hard.row(v).to_string(TextForm::xl_list));
    fmt::print("{}: effective hard affinity by vcpu: {}\n", describe(plans[i].domain->domain),
               fmt::join(cpus, " "));
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  return examples::run("vcpu-balance", usage, [&](examples::Backend& backend) { return balance(argc, argv, backend); });
}
