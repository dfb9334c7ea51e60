// vcpu-balance — spread each domain's vcpus over distinct CPUs of one NUMA node.
//
//   $ vcpu-balance              # show the plan as a diff against the current hard affinity
//   $ vcpu-balance --apply web  # pin domain web that way, all or nothing
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
    "usage: vcpu-balance [--apply] [--any-node] [backend options] [DOMAIN...]\n"
    "Plans a hard affinity that gives every vcpu of each domain (or of each DOMAIN) its own CPU,\n"
    "all within one NUMA node, the least loaded one, keeping vcpus on the CPU they are on when\n"
    "it is free; prints the plan as a diff against the current hard affinity. Soft affinity is\n"
    "kept. A domain with more vcpus than its node has online CPUs shares them round robin.\n"
    "Where vcpus are confined (Linux cpusets, Xen cpupools), only CPUs of every vcpu's cpuset or of\n"
    "the domain's cpupool are used; where a domain's memory is on some NUMA nodes only (its node\n"
    "affinity, Xen), only CPUs of those nodes, unless --any-node. Each domain's line says what\n"
    "kept it there. A domain whose vcpus cannot be seen is skipped, with the reason.\n"
    "  --apply     pin the plan, all or nothing across domains; print the effective affinity\n"
    "  --any-node  place vcpus on any node, whatever the domain's node affinity\n";

struct DomainPlan {
  const DomainSnapshot* domain;
  unsigned node;
  AffinityMatrix hard;
  std::vector<std::string> reasons;  // what kept the domain where it is
};

/// "node 1", "nodes 0-1", "no node".
std::string nodes_text(const NodeSet& nodes) {
  return nodes.empty() ? std::string("no node") : fmt::format("{} {}", nodes.count() == 1 ? "node" : "nodes", nodes);
}

/// Places one domain: the node where it raises the load per online CPU least, then that
/// node's least loaded CPUs (on ties, those its vcpus are on, then by id), a vcpu keeping its
/// CPU when that one was chosen. Only online CPUs of every vcpu's limit (cpuset; its cpupool)
/// are used, and of the nodes of its node affinity unless any_node or that leaves none.
DomainPlan place(const HostInfo& host, const DomainSnapshot& d, std::vector<unsigned>& load, bool any_node) {
  const unsigned vcpus = d.domain.max_vcpus;
  std::vector<std::string> reasons;
  CpuMap usable = host.online;  // online, and in every vcpu's limit (cpuset, cpupool)
  for (unsigned v = 0; v < vcpus; ++v) usable &= d.limit.row(v);
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
    unsigned node_load = vcpus;
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

  DomainPlan plan{&d, *best, AffinityMatrix(vcpus, host.cpu_universe()), std::move(reasons)};
  std::vector<std::optional<std::size_t>> cpu_of(vcpus);
  for (std::size_t first = 0; first < vcpus; first += order.size()) {  // round robin past the node's size
    const std::size_t count = std::min<std::size_t>(order.size(), vcpus - first);
    std::vector<std::size_t> chosen(order.begin(), order.begin() + static_cast<std::ptrdiff_t>(count));
    std::vector<unsigned> waiting;
    for (unsigned v = static_cast<unsigned>(first); v < first + count; ++v) {
      auto here = d.vcpus[v].cpu ? std::find(chosen.begin(), chosen.end(), *d.vcpus[v].cpu) : chosen.end();
      if (here != chosen.end())
        cpu_of[v] = *here, chosen.erase(here);
      else
        waiting.push_back(v);
    }
    for (std::size_t i = 0; i < waiting.size(); ++i) cpu_of[waiting[i]] = chosen[i];
  }
  for (unsigned v = 0; v < vcpus; ++v) plan.hard.set(v, *cpu_of[v]), ++load[*cpu_of[v]];
  return plan;
}

int balance(int argc, char** argv, examples::Backend& backend) {
  examples::Args args(argc, argv);
  bool apply = false, any_node = false;
  std::vector<std::string> filter;
  while (args.next()) {
    if (backend.parse(args)) continue;
    if (args.is("--apply"))
      apply = true;
    else if (args.is("--any-node"))
      any_node = true;
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

  std::vector<unsigned> load(host.host.cpu_universe(), 0);
  std::vector<DomainPlan> plans;
  std::size_t changes = 0;
  for (const DomainSnapshot* d : chosen) {
    if (d->domain.max_vcpus == 0 || d->domain.flags.dying) continue;
    if (!d->domain.vcpu_problem.empty()) {
      fmt::print("{}: skipped: {}\n", describe(d->domain), escape_terminal(d->domain.vcpu_problem));
      continue;
    }
    DomainPlan plan = place(host.host, *d, load, any_node);
    fmt::print("{}: {} vcpu{} on node {}{}\n", describe(d->domain), d->domain.max_vcpus,
               d->domain.max_vcpus == 1 ? "" : "s", plan.node,
               plan.reasons.empty() ? std::string() : fmt::format(" ({})", fmt::join(plan.reasons, "; ")));
    for (unsigned v = 0; v < d->domain.max_vcpus; ++v) {
      const CpuMap before = d->hard.row(v), after = plan.hard.row(v);
      changes += before != after;
      if (before == after)
        fmt::print("  vcpu {}: hard {:a} (unchanged)\n", v, before);
      else
        fmt::print("  vcpu {}: hard {:a} -> {:a}\n", v, before, after);
    }
    plans.push_back(std::move(plan));
  }
  fmt::print("{} vcpu{} to re-pin in {} domain{}", changes, changes == 1 ? "" : "s", plans.size(),
             plans.size() == 1 ? "" : "s");
  if (!apply || changes == 0) {
    fmt::print("{}\n", apply ? "; nothing to do" : "; nothing applied (use --apply)");
    return 0;
  }
  fmt::print("; applying\n");

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
