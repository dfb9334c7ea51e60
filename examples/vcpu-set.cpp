// vcpu-set — set which vcpus of a domain are online, as `xl vcpu-set`.
//
//   $ vcpu-set xperf2 2                  # vcpus 0-1 online, 2-3 offline (xl vcpu-set xperf2 2)
//   $ vcpu-set xperf2 --vcpus 0,2        # exactly vcpus 0 and 2 online
//   $ vcpu-set --dry-run xperf2 1        # what would change, nothing asked
//
// The library checks the request (check_online: a hypervisor that can, at least one vcpu,
// none beyond maxvcpus) and makes it (set_online_vcpus). On Xen the guest acts on it
// (xenstore's cpu/N/availability), so the vcpus online right after may still be the old
// ones: the tool says what it read back.
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "backend.hpp"

namespace {

using namespace vcpumap;

constexpr std::string_view usage =
    "usage: vcpu-set [--dry-run] [--json] [backend options] DOMAIN COUNT\n"
    "       vcpu-set [--dry-run] [--json] [backend options] DOMAIN --vcpus LIST\n"
    "Sets which vcpus of DOMAIN (a name or an id) are online, as `xl vcpu-set`: with COUNT,\n"
    "vcpus 0 to COUNT-1 online and the others offline; with --vcpus, exactly the vcpus of LIST\n"
    "(a vcpu list: 0-3,^2  all). At least one vcpu stays online, and none beyond the domain's\n"
    "maxvcpus can be. On Xen the guest brings its vcpus online or offline itself: the tool\n"
    "prints the vcpus online before, those asked, and those online when it read them back.\n"
    "  --vcpus LIST  exactly these vcpus online (instead of COUNT)\n"
    "  --dry-run     print what would change (the online vcpus read now vs asked); change nothing\n"
    "  --json        one JSON object: domain, id, max_vcpus, online_before, asked, to_offline,\n"
    "                to_online, online_after (vcpu lists; online_after null with --dry-run),\n"
    "                dry_run\n"
    "A hypervisor that cannot set online vcpus (Linux, a mock host without vcpu_set=yes) is an\n"
    "error: exit 1, nothing changed.\n";

/// "0-3", or "none" for no vcpu: how the text output names a set of vcpus.
std::string vcpus_text(const VcpuSet& s) { return s.empty() ? std::string("none") : s.to_string(); }

/// The vcpus a snapshot shows online (any state but offline), in a set of the domain's vcpus.
VcpuSet online_of(const DomainSnapshot& s, unsigned max_vcpus) {
  VcpuSet out(max_vcpus);
  for (const VcpuMetrics& m : s.vcpus)
    if (m.vcpu < max_vcpus && m.state != VcpuState::offline) out.set(m.vcpu);
  return out;
}

/// "vcpus 2-3 to go offline, vcpu 4 to come online", or "no change".
std::string change_text(const VcpuSet& down, const VcpuSet& up, bool dry_run) {
  std::vector<std::string> parts;
  auto noun = [](const VcpuSet& s) { return s.count() == 1 ? "vcpu" : "vcpus"; };
  if (!down.empty())
    parts.push_back(fmt::format("{} {} {}", noun(down), down, dry_run ? "would go offline" : "to go offline"));
  if (!up.empty())
    parts.push_back(fmt::format("{} {} {}", noun(up), up, dry_run ? "would come online" : "to come online"));
  return parts.empty() ? std::string("no change") : fmt::format("{}", fmt::join(parts, ", "));
}

int set(int argc, char** argv, examples::Backend& backend) {
  examples::Args args(argc, argv);
  bool dry_run = false, json = false;
  std::optional<std::string> list;
  std::vector<std::string> words;
  while (args.next()) {
    if (backend.parse(args)) continue;
    if (args.is("--dry-run"))
      dry_run = true;
    else if (args.is("--json"))
      json = true;
    else if (auto v = args.value("--vcpus")) {
      if (list) throw examples::Usage("--vcpus is given once");
      list = *v;
    } else if (args.positional())
      words.push_back(args.current());
    else
      args.unknown();
  }
  if (list ? words.size() != 1 : words.size() != 2) {
    if (list && words.size() == 2) throw examples::Usage("COUNT and --vcpus exclude each other");
    if (words.size() > 2) throw examples::Usage(fmt::format("unexpected argument '{}'", escape_terminal(words[2])));
    throw examples::Usage(list ? "needs DOMAIN --vcpus LIST" : "needs DOMAIN COUNT (or DOMAIN --vcpus LIST)");
  }
  std::optional<unsigned> count;
  if (!list) count = examples::parse_count("COUNT", words[1]);

  AnyHypervisor& hv = backend.open("vcpu-set", dry_run ? examples::Access::read : examples::Access::change);
  const HostInfo host = hv.host_info();
  const std::vector<DomainInfo> domains = hv.list_domains();
  const DomainInfo domain = domains[examples::find_domain(domains, words[0])];
  const std::string who = describe(domain);

  // Malformed text is a usage error whatever the host; then a hypervisor that cannot, or a
  // domain whose vcpus it cannot see (the library's error, whatever was asked); then vcpus
  // the domain lacks.
  VcpuSet asked;
  std::optional<Error> beyond;
  if (list) {
    try {
      asked = examples::parse_set<VcpuSet>(
          "--vcpus", *list, ParseOptions{.universe = domain.max_vcpus}, [&](std::optional<std::string_view> v) {
            return v ? fmt::format("{}: vcpu {} is beyond its {} vcpus (maxvcpus)", who, *v, domain.max_vcpus)
                     : fmt::format("{}: vcpus {} name a vcpu beyond its {} vcpus (maxvcpus)", who,
                                   escape_terminal(*list), domain.max_vcpus);
          });
    } catch (const Error& e) {
      beyond = e;
    }
  }
  if (!host.caps.set_online || !domain.vcpu_problem.empty())
    check_online(host, domain, VcpuSet::full(std::max(1u, domain.max_vcpus)));
  if (beyond) throw *beyond;
  if (count) {
    if (*count > limits::max_vcpus)  // no set of 4 billion bits to say so
      throw Error(ErrorCode::invalid_argument,
                  fmt::format("{}: {} vcpus asked online, but it has {} vcpu{} (maxvcpus)", who, *count,
                              domain.max_vcpus, domain.max_vcpus == 1 ? "" : "s"));
    asked = VcpuSet::full(*count);
  }
  check_online(host, domain, asked);  // the library's checks, for --dry-run too
  asked.resize(domain.max_vcpus);

  const DomainSnapshot before_snap =
      examples::about(domain, [&] { return hv.snapshot(domain.id, SnapshotScope::metrics_only); });
  const VcpuSet before = online_of(before_snap, domain.max_vcpus);
  const VcpuSet down = before - asked, up = asked - before;

  std::optional<VcpuSet> after;
  std::string unread;  // why the vcpus could not be read back, after a change that was made
  if (!dry_run) {
    examples::about(domain, [&] { hv.set_online_vcpus(domain.id, asked); });
    try {
      after = online_of(hv.snapshot(domain.id, SnapshotScope::metrics_only), domain.max_vcpus);
    } catch (const Error& e) {  // the change is made: say so, and that the read failed
      unread = e.what();
    }
  }

  if (json) {
    fmt::print(
        "{{\"domain\": {}, \"id\": {}, \"max_vcpus\": {}, \"online_before\": \"{}\", \"asked\": \"{}\", "
        "\"to_offline\": \"{}\", \"to_online\": \"{}\", \"online_after\": {}, \"dry_run\": {}}}\n",
        escape_json(domain.name), domain.id, domain.max_vcpus, before, asked, down, up,
        after ? fmt::format("\"{}\"", *after) : std::string("null"), dry_run);
    if (!dry_run && !after)
      fmt::print(stderr, "vcpu-set: {}: the vcpus online now could not be read: {}\n", who, terminal_safe(unread));
    return 0;
  }
  if (dry_run) {
    fmt::print("{}: dry run, nothing changed: online vcpus {}, asked {} ({})\n", who, vcpus_text(before),
               vcpus_text(asked), change_text(down, up, true));
    return 0;
  }
  fmt::print("{}: online vcpus {}, asked {} ({})\n", who, vcpus_text(before), vcpus_text(asked),
             change_text(down, up, false));
  if (!after)
    fmt::print("{}: asked; the vcpus online now could not be read: {}\n", who, terminal_safe(unread));
  else if (*after == asked)
    fmt::print("{}: online vcpus now {}\n", who, vcpus_text(*after));
  else
    fmt::print("{}: online vcpus now {}: the guest has not acted on it yet (it brings vcpus online and offline "
               "itself)\n",
               who, vcpus_text(*after));
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  return examples::run("vcpu-set", usage, [&](examples::Backend& backend) { return set(argc, argv, backend); });
}
