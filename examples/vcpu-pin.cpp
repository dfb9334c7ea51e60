// vcpu-pin — pin vcpus with `xl vcpu-pin`'s syntax, several vcpus all or nothing.
//
//   $ vcpu-pin xperf2 all node:0 -        # every vcpu of xperf2 on node 0, soft affinity kept
//   $ vcpu-pin --dry-run 0 2 '^1' 2-3     # what Domain-0's vcpu 2 would get, nothing applied
//   $ vcpu-pin xperf2                     # the pins, as `virsh vcpupin xperf2`: hard / soft / effective
//
// One vcpu goes through pin_vcpu; a list of vcpus or `all` through pin_vcpus, a sparse pin
// that sets those vcpus or, when one fails, restores the others and changes nothing;
// --dry-run asks the library's plan() what the pin would do.
#include <algorithm>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "backend.hpp"

namespace {

using namespace vcpumap;

constexpr std::string_view usage =
    "usage: vcpu-pin [-f] [--dry-run] [backend options] DOMAIN VCPUS HARD [SOFT]\n"
    "       vcpu-pin [--json] [backend options] DOMAIN [VCPUS]\n"
    "       vcpu-pin (--emulator | --iothread ID) [backend options] DOMAIN HARD\n"
    "Sets the hard and/or soft affinity of vcpus of DOMAIN (a name or an id), as `xl vcpu-pin`,\n"
    "and prints the effective affinity the hypervisor reports back. Without HARD it lists the\n"
    "pins of every vcpu of DOMAIN (or of VCPUS), as `virsh vcpupin DOMAIN`: 'vcpu N: hard / soft\n"
    "/ effective'; on a host without soft affinity (Linux) 'hard / effective', the hard affinity\n"
    "followed by the vcpu's limit where it narrows it: 0-3 [cpuset 2-3] / 2-3.\n"
    "  VCPUS       a vcpu number, a list of vcpus (0-3,^2) or 'all'\n"
    "  HARD, SOFT  a cpulist: 0-3,^2  all  node:1  nodes:0-1  ^node:0 ...; '-' keeps the current\n"
    "              map (SOFT absent: kept too)\n"
    "Several vcpus are pinned all or nothing: if one fails, the others are restored.\n"
    "  -f, --force  let the pin override the cpupool's or scheduler's objections (Xen's FORCE)\n"
    "  --dry-run    print the hard, soft and effective affinity every vcpu would have; change nothing\n"
    "  --json       the listing as a JSON array, one object per vcpu: domain, id, vcpu, state, hard,\n"
    "               soft (null without soft affinity), limit, effective (canonical cpulists)\n"
    "  --emulator   linux: pin the guest's emulator (main QEMU) thread, as libvirt's emulatorpin\n"
    "  --iothread ID  linux: pin the guest's IOThread ID, as libvirt's iothreadpin\n"
    "A host without soft affinity (Linux) takes HARD only; a pin with no online CPU in a thread's\n"
    "cpuset is refused, and the message names the cpuset. A pin that sets a SOFT map with no CPU\n"
    "of the resulting hard map warns on stderr (exit 0), as xl does: Xen schedules such a vcpu\n"
    "by its hard affinity alone.\n";

/// A new affinity argument: nothing for "-".
std::optional<CpuMap> parse_map(const HostInfo& host, const std::string& whom, std::string_view kind,
                                std::string_view text) {
  if (text == "-") return std::nullopt;
  return examples::parse_set<CpuMap>(
      fmt::format("{} affinity", kind), text, host.parse_options(), [&](std::optional<std::string_view> cpu) {
        return cpu ? fmt::format("{}: {} affinity {} names CPU {}, beyond the host's {} CPUs", whom, kind,
                                 escape_terminal(text), *cpu, host.cpu_universe())
                   : fmt::format("{}: {} affinity {} names a CPU beyond the host's {} CPUs", whom, kind,
                                 escape_terminal(text), host.cpu_universe());
      });
}

/// --emulator / --iothread ID: DOMAIN HARD, one thread of a QEMU guest.
int pin_helper(examples::Backend& backend, bool emulator, const std::optional<std::string>& iothread, bool other_flags,
               const std::vector<std::string>& words) {
  const std::string option = emulator ? "--emulator" : "--iothread";
  if (emulator && iothread) throw examples::Usage("--emulator and --iothread exclude each other");
  if (other_flags) throw examples::Usage(fmt::format("{} takes neither -f nor --dry-run", option));
  if (words.size() != 2) throw examples::Usage(fmt::format("{} needs DOMAIN HARD", option));
  AnyHypervisor& hv = backend.open("vcpu-pin", examples::Access::change);
  examples::require_helper_threads(hv, option);
  const HostInfo host = hv.host_info();
  const std::vector<DomainInfo> domains = hv.list_domains();
  const DomainInfo domain = domains[examples::find_domain(domains, words[0])];
  const std::string what = iothread ? fmt::format("IOThread {}", escape_terminal(*iothread)) : "emulator thread";
  const std::string whom = fmt::format("{}: {}", describe(domain), what);
  const std::optional<CpuMap> hard = parse_map(host, whom, "hard", words[1]);
  if (!hard) throw examples::Usage(fmt::format("{} needs a map, not '-'", option));
  const CpuMap back =
      examples::about(domain, [&] { return examples::pin_helper_thread(hv, option, domain.id, iothread, *hard); });
  fmt::print("{}: affinity reported back: {:a}\n", whom, back);
  return 0;
}

/// The vcpus argument of DOMAIN: a number, a list (0-3,^2) or 'all'.
VcpuSet parse_vcpus(const DomainInfo& domain, const std::string& text) {
  if (text == "all") return VcpuSet::full(domain.max_vcpus);
  const std::string who = describe(domain);
  return examples::parse_set<VcpuSet>(
      "vcpus", text, ParseOptions{.universe = domain.max_vcpus}, [&](std::optional<std::string_view> v) {
        return v ? fmt::format("{}: vcpu {} is beyond its {} vcpus", who, *v, domain.max_vcpus)
                 : fmt::format("{}: vcpus {} name a vcpu beyond its {} vcpus", who, escape_terminal(text),
                               domain.max_vcpus);
      });
}

/// DOMAIN [VCPUS] without a map: the pins, as `virsh vcpupin DOMAIN`.
int list_pins(examples::Backend& backend, const std::vector<std::string>& words, bool json) {
  AnyHypervisor& hv = backend.open("vcpu-pin", examples::Access::read);
  const HostInfo host = hv.host_info();
  const std::vector<DomainInfo> domains = hv.list_domains();
  const DomainInfo domain = domains[examples::find_domain(domains, words[0])];
  const std::string who = describe(domain);
  if (!domain.vcpu_problem.empty())
    throw Error(ErrorCode::unsupported,
                fmt::format("{}: its vcpus cannot be seen: {}", who, escape_terminal(domain.vcpu_problem)));
  const DomainSnapshot d = examples::about(domain, [&] { return hv.snapshot(domain.id, SnapshotScope::full); });
  // The vcpus as this snapshot has them (the domain may have changed since it was listed).
  const VcpuSet vcpus = words.size() > 1 ? parse_vcpus(d.domain, words[1]) : VcpuSet::full(d.domain.max_vcpus);
  const bool soft = host.caps.soft_affinity, limit = !host.caps.vcpu_limit.empty();
  if (json) {
    fmt::print("[");
    for (std::size_t v : vcpus)
      fmt::print("{}\n{{\"domain\": {}, \"id\": {}, \"vcpu\": {}, \"state\": \"{}\", \"hard\": \"{}\", \"soft\": {}, "
                 "\"limit\": \"{}\", \"effective\": \"{}\"}}",
                 v == *vcpus.first() ? "" : ",", escape_json(domain.name), domain.id, v, d.vcpus[v].state,
                 d.hard.row(v), soft ? fmt::format("\"{}\"", d.soft.row(v)) : std::string("null"), d.limit.row(v),
                 d.effective.row(v));
    fmt::print("{}]\n", vcpus.empty() ? "" : "\n");
    return 0;
  }
  if (d.domain.max_vcpus == 0) {
    fmt::print("{}: no vcpus\n", who);
    return 0;
  }
  const std::string hard_head = limit ? fmt::format("hard [{}]", host.caps.vcpu_limit) : "hard";
  fmt::print("{}: affinity ({}{} / effective):\n", who, hard_head, soft ? " / soft" : "");
  for (std::size_t v : vcpus) {
    const CpuMap hard = d.hard.row(v), within = d.limit.row(v);
    const std::string note =
        limit && !(hard - within).empty() ? fmt::format(" [{} {:a}]", host.caps.vcpu_limit, within) : "";
    fmt::print("vcpu {}: {:a}{}{} / {}{}\n", v, hard, note, soft ? fmt::format(" / {:a}", d.soft.row(v)) : "",
               d.effective.row(v).empty() ? std::string("none") : d.effective.row(v).to_string(),
               d.vcpus[v].state == VcpuState::offline ? " (offline)" : "");
  }
  return 0;
}

/// xl's warning for a soft map that leaves nothing of the hard one (libxl: "All cpus in soft
/// affinity of vcpu N are unreachable. Only hard affinity will be considered for scheduling"),
/// judged on the hard and soft maps the pin results in (Xen reports soft ∩ hard back), one
/// line for the vcpus that share a hard map.
template <class HardOf, class SoftOf>
void warn_unreachable_soft(const std::string& who, const VcpuSet& vcpus, const CpuMap& asked_soft, HardOf hard_of,
                           SoftOf soft_of) {
  std::vector<std::pair<CpuMap, VcpuSet>> groups;  // hard map, the vcpus with it
  for (std::size_t v : vcpus) {
    const CpuMap hard = hard_of(v);
    if (hard.intersects(soft_of(v))) continue;
    auto g = std::find_if(groups.begin(), groups.end(), [&](const auto& x) { return x.first == hard; });
    if (g == groups.end()) g = groups.insert(groups.end(), {hard, VcpuSet(vcpus.universe())});
    g->second.set(v);
  }
  for (const auto& [hard, those] : groups)
    fmt::print(stderr,
               "vcpu-pin: warning: {}: vcpu{} {}: soft affinity {:a} has no CPU in hard affinity {:a}: all CPUs in its "
               "soft affinity are unreachable, only the hard affinity will be considered for scheduling\n",
               who, those.count() > 1 ? "s" : "", those, asked_soft, hard);
}

int pin(int argc, char** argv, examples::Backend& backend) {
  examples::Args args(argc, argv);
  bool force = false, dry_run = false, emulator = false, json = false;
  std::optional<std::string> iothread;
  std::vector<std::string> words;
  while (args.next()) {
    if (backend.parse(args)) continue;
    if (args.is("-f") || args.is("--force"))
      force = true;
    else if (args.is("--dry-run"))
      dry_run = true;
    else if (args.is("--json"))
      json = true;
    else if (args.is("--emulator"))
      emulator = true;
    else if (auto id = args.value("--iothread"))
      iothread = *id;
    else if (args.positional())
      words.push_back(args.current());
    else
      args.unknown();
  }
  if (emulator || iothread) {
    if (json) throw examples::Usage("--json goes with the listing (DOMAIN [VCPUS]), not with a pin");
    return pin_helper(backend, emulator, iothread, force || dry_run, words);
  }
  if (words.empty()) throw examples::Usage("needs DOMAIN [VCPUS [HARD [SOFT]]]");
  if (words.size() > 4) throw examples::Usage(fmt::format("unexpected argument '{}'", escape_terminal(words[4])));
  if (words.size() < 3) {
    if (force || dry_run) throw examples::Usage("-f and --dry-run go with a pin: DOMAIN VCPUS HARD [SOFT]");
    return list_pins(backend, words, json);
  }
  if (json) throw examples::Usage("--json goes with the listing (DOMAIN [VCPUS]), not with a pin");

  AnyHypervisor& hv = backend.open("vcpu-pin", dry_run ? examples::Access::read : examples::Access::change);
  const HostInfo host = hv.host_info();
  const std::vector<DomainInfo> domains = hv.list_domains();
  const DomainInfo domain = domains[examples::find_domain(domains, words[0])];
  const std::string who = describe(domain);

  const bool every = words[1] == "all";
  const VcpuSet vcpus = parse_vcpus(domain, words[1]);
  if (vcpus.empty()) throw Error(ErrorCode::invalid_argument, fmt::format("{}: no vcpu to pin", who));
  const std::string whom = fmt::format("{}: vcpu{} {}", who, vcpus.count() > 1 ? "s" : "", vcpus);
  const std::optional<CpuMap> hard = parse_map(host, whom, "hard", words[2]);
  const std::optional<CpuMap> soft = words.size() > 3 ? parse_map(host, whom, "soft", words[3]) : std::nullopt;
  if (!hard && !soft) throw examples::Usage("nothing to pin: HARD and SOFT are both '-'");

  if (!every && vcpus.count() == 1 && !dry_run) {
    const unsigned v = *vcpus.first();
    const PinResult r = examples::about(domain, [&] { return hv.pin_vcpu(domain.id, v, VcpuPin{hard, soft, force}); });
    if (host.caps.soft_affinity)
      fmt::print("{}: effective affinity (hard / soft) reported back:\nvcpu {}: {:a} / {:a}\n", who, v, r.hard, r.soft);
    else
      fmt::print("{}: affinity reported back:\nvcpu {}: {:a}\n", who, v, r.hard);
    if (soft)
      warn_unreachable_soft(who, vcpus, *soft, [&](std::size_t) { return r.hard; },
                            [&](std::size_t) { return r.soft; });
    return 0;
  }

  // Several vcpus: a sparse pin of those vcpus (the others are not touched, nor checked).
  const VcpusPin sparse{vcpus, hard, soft, force};
  if (dry_run) {
    const PinPlan plan = examples::about(domain, [&] { return hv.plan(domain.id, sparse); });
    if (plan.refusal) throw *plan.refusal;
    fmt::print("{}: dry run, nothing applied; the pin would give (hard / soft, effective):\n", who);
    for (unsigned v = 0; v < domain.max_vcpus; ++v) {
      const bool changed = plan.hard.row(v) != plan.before.hard.row(v) || plan.soft.row(v) != plan.before.soft.row(v);
      fmt::print("vcpu {}: {:a} / {:a}, effective {}{}\n", v, plan.hard.row(v), plan.soft.row(v), plan.effective.row(v),
                 changed ? "  (changed)" : "");
    }
    if (soft)
      warn_unreachable_soft(who, vcpus, *soft, [&](std::size_t v) { return plan.hard.row(v); },
                            [&](std::size_t v) { return plan.soft.row(v); });
    return 0;
  }
  const MatrixPinResult r = examples::about(domain, [&] { return hv.pin_vcpus(domain.id, sparse); });
  if (host.caps.soft_affinity) {
    fmt::print("{}: effective affinity (hard / soft) reported back:\n", who);
    for (std::size_t v : vcpus) fmt::print("vcpu {}: {:a} / {:a}\n", v, r.hard.row(v), r.soft.row(v));
  } else {
    fmt::print("{}: affinity reported back:\n", who);
    for (std::size_t v : vcpus) fmt::print("vcpu {}: {:a}\n", v, r.hard.row(v));
  }
  if (soft)
    warn_unreachable_soft(who, vcpus, *soft, [&](std::size_t v) { return r.hard.row(v); },
                          [&](std::size_t v) { return r.soft.row(v); });
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  return examples::run("vcpu-pin", usage, [&](examples::Backend& backend) { return pin(argc, argv, backend); });
}
