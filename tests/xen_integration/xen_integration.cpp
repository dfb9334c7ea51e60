// The real-Xen integration test: runs inside dom0 of a Xen 4.17 host booted under QEMU
// (tests/xen/run-xen-test.sh), with Domain-0 and one PV guest "guest1". It checks vcpumap's
// readings against `xl`, its multicall reads against its per-call ones, pins in both
// directions, checks the typed errors, then measures vcpumap (multicall and per call)
// against libxl_list_vcpu. Prints one line per check; exits 0 only if all pass.
//
// Every privileged call is counted at the source: this program interposes ioctl() and
// counts IOCTL_PRIVCMD_HYPERCALL, so the call counts of vcpumap (last_call_count) and of
// libxl are measured the same way, on the real hypervisor.
#include <dlfcn.h>
#include <unistd.h>

#include <atomic>
#include <cctype>
#include <chrono>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include <vcpumap/vcpumap.hpp>
#include <vcpumap/xen.hpp>

extern "C" {
#include <libxl.h>
#include <libxl_utils.h>
}

namespace {

std::atomic<std::size_t> hypercalls{0};
constexpr unsigned long ioctl_privcmd_hypercall = 0x305000;  // _IOC(_IOC_NONE, 'P', 0, 48)

}  // namespace

extern "C" int ioctl(int fd, unsigned long request, ...) {
  using real_ioctl = int (*)(int, unsigned long, void*);
  static real_ioctl real = reinterpret_cast<real_ioctl>(dlsym(RTLD_NEXT, "ioctl"));
  va_list ap;
  va_start(ap, request);
  void* arg = va_arg(ap, void*);
  va_end(ap);
  if (request == ioctl_privcmd_hypercall) ++hypercalls;
  return real(fd, request, arg);
}

namespace {

using namespace vcpumap;

int failures = 0;

void check(bool ok, const std::string& what) {
  std::printf("vcpumap-xen: %s %s\n", ok ? "ok  " : "FAIL", what.c_str());
  if (!ok) ++failures;
}

std::string run(const std::string& command) {
  std::string out;
  if (FILE* p = popen(command.c_str(), "r")) {
    char buf[4096];
    std::size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
    pclose(p);
  }
  return out;
}

std::vector<std::string> words(const std::string& line) {
  std::istringstream in(line);
  std::vector<std::string> w;
  for (std::string s; in >> s;) w.push_back(s);
  return w;
}

/// `xl info` as key -> value.
std::map<std::string, std::string> xl_info() {
  std::map<std::string, std::string> info;
  std::istringstream in(run("xl info"));
  for (std::string line; std::getline(in, line);) {
    const auto colon = line.find(':');
    if (colon == std::string::npos) continue;
    auto trim = [](std::string s) {
      s.erase(0, s.find_first_not_of(' '));
      s.erase(s.find_last_not_of(' ') + 1);
      return s;
    };
    info[trim(line.substr(0, colon))] = trim(line.substr(colon + 1));
  }
  return info;
}

struct XlVcpu {
  std::string name;
  unsigned id = 0, vcpu = 0;
  std::string cpu, state, hard, soft;
};

/// `xl vcpu-list [domain]` rows: Name ID VCPU CPU State Time(s) Hard / Soft.
std::vector<XlVcpu> xl_vcpu_list(const std::string& domain = "") {
  std::vector<XlVcpu> rows;
  std::istringstream in(run("xl vcpu-list " + domain));
  std::string line;
  std::getline(in, line);  // header
  while (std::getline(in, line)) {
    const auto w = words(line);
    if (w.size() < 9 || w[7] != "/") continue;
    rows.push_back({w[0], static_cast<unsigned>(std::stoul(w[1])), static_cast<unsigned>(std::stoul(w[2])), w[3], w[4],
                    w[6], w[8]});
  }
  return rows;
}

/// xl prints "all" for a full map, else the canonical list.
std::string xl_form(const CpuMap& m) { return m.all() ? "all" : m.to_string(); }

template <class F>
void expect_error(ErrorCode code, const std::string& what, F&& f) {
  try {
    f();
    check(false, what + ": no error");
  } catch (const Error& e) {
    check(e.code() == code, what + ": " + std::string(to_string(e.code())) + ": " + e.what());
  }
}

DomainId find_domain(const std::vector<DomainInfo>& domains, const std::string& name) {
  for (const auto& d : domains)
    if (d.name == name) return d.id;
  return DomainId{0xffff};
}

/// Every vcpu of every domain against `xl vcpu-list`: one line per domain, plus one per
/// vcpu that differs.
void compare_with_xl(XenHypervisor& xen, const std::string& when) {
  const HostSnapshot host = xen.snapshot_all();
  const auto rows = xl_vcpu_list();
  std::size_t ours = 0;
  for (const auto& d : host.domains) ours += d.vcpus.size();
  check(rows.size() == ours, fmt::format("{}: xl vcpu-list has {} rows, vcpumap {} vcpus", when, rows.size(), ours));
  std::map<std::string, std::pair<std::size_t, std::size_t>> agree;  // domain -> (rows, rows that agree)
  for (const XlVcpu& row : rows) {
    auto& [seen, same] = agree[row.name];
    ++seen;
    const DomainSnapshot* d = nullptr;
    for (const auto& s : host.domains)
      if (to_integer(s.domain.id) == row.id) d = &s;
    if (!d || row.vcpu >= d->vcpus.size()) {
      std::printf("vcpumap-xen:   %s: xl row %s vcpu %u not in vcpumap\n", when.c_str(), row.name.c_str(), row.vcpu);
      continue;
    }
    const VcpuMetrics& m = d->vcpus[row.vcpu];
    const bool xl_online = row.state.find('p') == std::string::npos;
    const std::string ours_hard = xl_form(d->hard.row(row.vcpu)), ours_soft = xl_form(d->soft.row(row.vcpu));
    if (row.name == d->domain.name && xl_online == (m.state != VcpuState::offline) && row.hard == ours_hard &&
        row.soft == ours_soft && (xl_online ? row.cpu != "-" : row.cpu == "-")) {
      ++same;
      continue;
    }
    std::printf("vcpumap-xen:   %s: %s vcpu %u: xl '%s %s %s / %s' vcpumap '%s: %s %s %s / %s'\n", when.c_str(),
                row.name.c_str(), row.vcpu, row.cpu.c_str(), row.state.c_str(), row.hard.c_str(), row.soft.c_str(),
                escape_terminal(d->domain.name).c_str(), m.cpu ? std::to_string(*m.cpu).c_str() : "-",
                std::string(to_string(m.state)).c_str(), ours_hard.c_str(), ours_soft.c_str());
  }
  for (const auto& [name, counts] : agree)
    check(counts.first == counts.second,
          fmt::format("{}: {}: {} of {} vcpus agree with xl vcpu-list (online, CPU shown, hard, soft)", when, name,
                      counts.second, counts.first));

  // The Prometheus exposition of the same snapshot (vcpu-list --prometheus) has one affinity
  // series per xl row, whose hard and soft cpulists are xl's maps.
  const std::string text = to_prometheus(host);
  const std::regex info(
      R"re(^vcpumap_vcpu_affinity_info\{domain="[^"]*",domain_id="(\d+)",vcpu="(\d+)",hard="([^"]*)",soft="([^"]*)",)re");
  std::map<std::pair<unsigned, unsigned>, std::pair<std::string, std::string>> exposed;
  std::istringstream lines(text);
  for (std::string line; std::getline(lines, line);)
    if (std::smatch m; std::regex_search(line, m, info))
      exposed[{static_cast<unsigned>(std::stoul(m[1])), static_cast<unsigned>(std::stoul(m[2]))}] = {
          xl_form(host.host.parse(m[3].str())), xl_form(host.host.parse(m[4].str()))};
  std::size_t same = 0;
  for (const XlVcpu& row : rows)
    if (auto it = exposed.find({row.id, row.vcpu}); it != exposed.end() && it->second == std::pair{row.hard, row.soft})
      ++same;
  check(exposed.size() == rows.size() && same == rows.size(),
        fmt::format("{}: to_prometheus has {} vcpu affinity series, {} of xl's {} rows with its hard and soft maps",
                    when, exposed.size(), same, rows.size()));
}

/// Runs f `reps` times; returns the mean time of a run in µs and the hypercalls of one run.
/// (The mean over the whole loop: dom0's clock under TCG can be too coarse to time one run.)
template <class F>
std::pair<double, std::size_t> measure(int reps, F&& f) {
  const std::size_t before = hypercalls;
  const auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < reps; ++i) f();
  const double total = std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count();
  return {total / reps, (hypercalls - before) / static_cast<std::size_t>(reps)};
}

/// The multicall path (the default) against one call per read, on the same hypervisor: the
/// same domains, vcpu states and matrices, in 1 + ceil(V/128) hypercalls per domain and
/// 3 + 1 + ceil(all vcpus/128) for the whole host.
void compare_paths() {
  XenHypervisor batched;
  XenHypervisor one_each(XenOptions{.multicall = false});
  const HostSnapshot a = batched.snapshot_all();
  const HostSnapshot b = one_each.snapshot_all();
  bool same = a.domains.size() == b.domains.size();
  for (std::size_t i = 0; same && i < a.domains.size(); ++i) {
    const DomainSnapshot &x = a.domains[i], &y = b.domains[i];
    same = x.domain.id == y.domain.id && x.vcpus.size() == y.vcpus.size() && x.hard == y.hard && x.soft == y.soft &&
           x.effective == y.effective && x.limit == y.limit && x.node_affinity == y.node_affinity;
    for (std::size_t v = 0; same && v < x.vcpus.size(); ++v)
      same = x.vcpus[v].vcpu == y.vcpus[v].vcpu &&
             (x.vcpus[v].state == VcpuState::offline) == (y.vcpus[v].state == VcpuState::offline) &&
             x.vcpus[v].cpu_time <= y.vcpus[v].cpu_time;  // read first, so never later
  }
  check(same && a.host == b.host,
        fmt::format("multicall and per-call snapshots agree (the host, its {} pools; {} domains: ids, vcpus, online, "
                    "hard, soft, effective, limit, node affinity, CPU time ordered)",
                    a.host.pools.size(), a.domains.size()));
  std::size_t vcpus = 0;
  for (const DomainSnapshot& d : a.domains) vcpus += d.domain.max_vcpus;
  (void)batched.snapshot_all();
  check(batched.last_call_count() == 1 + 1 + (vcpus + 127) / 128,
        fmt::format("whole host ({} domains, {} vcpus) in {} hypercalls with multicall (expected 1 + 1 + {})",
                    a.domains.size(), vcpus, batched.last_call_count(), (vcpus + 127) / 128));
  for (const DomainSnapshot& d : a.domains) {
    const std::size_t expect = 1 + (d.domain.max_vcpus + 127) / 128;
    (void)batched.snapshot(d.domain.id);
    check(batched.last_call_count() == expect,
          fmt::format("{}: whole matrix of {} vcpus in {} hypercalls with multicall (expected {})", d.domain.name,
                      d.domain.max_vcpus, batched.last_call_count(), expect));
  }
}

/// Reads the whole host through vcpumap (multicall and per call) and through libxl, the same
/// work: no domain names (libxl_list_vcpu reads none), hard and soft affinity of every vcpu.
/// Then each domain's whole matrix and metrics, both paths.
void benchmark() {
  constexpr int reps = 100;
  XenHypervisor xen(XenOptions{.domain_names = false});
  XenHypervisor one_each(XenOptions{.domain_names = false, .multicall = false});
  const std::vector<DomainInfo> domains = xen.list_domains();
  DomainSnapshot into;
  HostSnapshot host_into;
  const auto [ours_us, ours_calls] = measure(reps, [&] { xen.snapshot_all(SnapshotScope::full, host_into); });
  (void)xen.snapshot_all();
  check(ours_calls == xen.last_call_count(),
        fmt::format("hypercalls counted at ioctl ({}) == last_call_count ({})", ours_calls, xen.last_call_count()));
  const auto [single_us, single_calls] =
      measure(reps, [&] { one_each.snapshot_all(SnapshotScope::full, host_into); });
  check(single_calls == one_each.last_call_count(),
        fmt::format("per call: hypercalls counted at ioctl ({}) == last_call_count ({})", single_calls,
                    one_each.last_call_count()));

  libxl_ctx* ctx = nullptr;
  xentoollog_logger* quiet = reinterpret_cast<xentoollog_logger*>(
      xtl_createlogger_stdiostream(stderr, XTL_CRITICAL, 0));
  if (libxl_ctx_alloc(&ctx, LIBXL_VERSION, 0, quiet) != 0) {
    check(false, "libxl_ctx_alloc");
    return;
  }
  const auto [libxl_us, libxl_calls] = measure(reps, [&] {
    int nb_domain = 0;
    libxl_dominfo* info = libxl_list_domain(ctx, &nb_domain);
    for (int d = 0; d < nb_domain; ++d) {
      int nb_vcpu = 0, nr_cpus = 0;
      libxl_vcpuinfo* v = libxl_list_vcpu(ctx, info[d].domid, &nb_vcpu, &nr_cpus);
      if (v) libxl_vcpuinfo_list_free(v, nb_vcpu);
    }
    libxl_dominfo_list_free(info, nb_domain);
  });
  libxl_ctx_free(ctx);
  std::printf("vcpumap-xen: bench whole host (%zu domains, hard+soft; vcpumap includes host info): vcpumap "
              "multicall %zu hypercalls %.0f us; vcpumap per call %zu hypercalls %.0f us; "
              "libxl_list_domain+libxl_list_vcpu %zu hypercalls %.0f us; libxl/multicall calls %.2f time %.2f; "
              "per-call/multicall calls %.2f time %.2f\n",
              domains.size(), ours_calls, ours_us, single_calls, single_us, libxl_calls, libxl_us,
              static_cast<double>(libxl_calls) / static_cast<double>(ours_calls), libxl_us / ours_us,
              static_cast<double>(single_calls) / static_cast<double>(ours_calls), single_us / ours_us);

  for (const DomainInfo& d : domains) {
    const int reps = d.max_vcpus > 16 ? 10 : 100;  // per call, a wide domain costs 2V hypercalls a read
    const auto [full_us, full_calls] = measure(reps, [&] { xen.snapshot(d.id, SnapshotScope::full, into); });
    const auto [metrics_us, metrics_calls] =
        measure(reps, [&] { xen.snapshot(d.id, SnapshotScope::metrics_only, into); });
    const auto [full1_us, full1_calls] = measure(reps, [&] { one_each.snapshot(d.id, SnapshotScope::full, into); });
    const auto [metrics1_us, metrics1_calls] =
        measure(reps, [&] { one_each.snapshot(d.id, SnapshotScope::metrics_only, into); });
    std::printf("vcpumap-xen: bench %s (%u vcpus): full: multicall %zu hypercalls %.0f us, per call %zu hypercalls "
                "%.0f us (%.2fx); metrics only: multicall %zu hypercalls %.0f us, per call %zu hypercalls %.0f us "
                "(%.2fx)\n",
                d.name.c_str(), d.max_vcpus, full_calls, full_us, full1_calls, full1_us, full1_us / full_us,
                metrics_calls, metrics_us, metrics1_calls, metrics1_us, metrics1_us / metrics_us);
    // per call: + 1 for the node affinity (xc_domain_node_getaffinity; the multicall carries it)
    check(full_calls <= 1 + 2 * std::size_t{d.max_vcpus} && full1_calls == 2 + 2 * std::size_t{d.max_vcpus},
          fmt::format("{}: whole matrix in {} (multicall) <= 1 + 2V and {} (per call) == 2 + 2V = {} hypercalls",
                      d.name, full_calls, full1_calls, 2 + 2 * d.max_vcpus));
    check(metrics_calls <= 1 + std::size_t{d.max_vcpus} && metrics1_calls == 1 + std::size_t{d.max_vcpus},
          fmt::format("{}: metrics in {} (multicall) and {} (per call) <= 1 + V hypercalls", d.name, metrics_calls,
                      metrics1_calls));
  }
}

/// Waits up to `seconds` for `done()` (polled every 0.5 s).
template <class F>
bool wait_for(int seconds, F&& done) {
  for (int i = 0; i < 2 * seconds; ++i) {
    if (done()) return true;
    usleep(500000);
  }
  return done();
}

/// `xl cpupool-list -c`: name -> CPU list ("0,1" as xl prints it).
std::map<std::string, std::string> xl_pools() {
  std::map<std::string, std::string> out;
  std::istringstream in(run("xl cpupool-list -c 2>/dev/null"));
  std::string line;
  std::getline(in, line);  // header
  while (std::getline(in, line)) {
    const auto w = words(line);
    if (!w.empty()) out[w[0]] = w.size() > 1 ? w[1] : "";
  }
  return out;
}

/// The issue's proof on the real hypervisor: a second cpupool (CPUs 2-3 out of Pool-0, guest1
/// moved into it), checked against xl cpupool-list, xl vcpu-list and where the vcpus run; a
/// pin outside the pool refused before any hypercall, as xl's is refused by Xen; a guest vcpu
/// taken offline and back through xenstore; node affinity, node memory and core ids against
/// `xl list -n` and `xl info -n`. Everything is put back at the end.
void pools_nodes_and_online(XenHypervisor& xen) {
  const HostInfo before = xen.host_info();
  if (before.cpu_universe() < 4 || !getenv("VCPUMAP_XEN_GUEST_DOMID")) {
    check(false, "pools: the host needs 4 CPUs and guest1");
    return;
  }
  const DomainId guest{static_cast<std::uint32_t>(std::stoul(getenv("VCPUMAP_XEN_GUEST_DOMID")))};
  // Core ids and node memory against xl info -n ("cpu: core socket node", "node: memsize memfree").
  {
    std::istringstream in(run("xl info -n 2>/dev/null"));
    std::size_t cores_same = 0, cores_seen = 0, nodes_same = 0, nodes_seen = 0;
    std::string section;
    for (std::string line; std::getline(in, line);) {
      const auto w = words(line);
      if (w.empty()) continue;
      if (w[0] == "cpu_topology" || w[0] == "numa_info") section = w[0];
      if (w.size() < 3 || w[0].back() != ':' || w[0].size() < 2 || !std::isdigit(static_cast<unsigned char>(w[0][0])))
        continue;
      const unsigned id = static_cast<unsigned>(std::stoul(w[0]));
      if (section == "cpu_topology" && id < before.cpu_universe()) {
        ++cores_seen;
        cores_same += before.cpu_core[id] && std::to_string(*before.cpu_core[id]) == w[1];
      } else if (section == "numa_info" && id < before.node_memory.size()) {
        ++nodes_seen;
        nodes_same += std::to_string(before.node_memory[id].size >> 20) == w[1];  // memfree moves
      }
    }
    check(cores_seen == before.online.count() && cores_same == cores_seen,
          fmt::format("core ids of {} of {} CPUs as xl info -n", cores_same, cores_seen));
    check(nodes_seen == before.node_memory.size() && nodes_same == nodes_seen && nodes_seen > 0,
          fmt::format("memory of {} of {} nodes (MiB) as xl info -n", nodes_same, nodes_seen));
  }
  // Node affinity against xl list -n ("NODE Affinity": "all" or a node list).
  {
    const DomainSnapshot s = xen.snapshot(guest);
    const std::string xl_nodes = [&] {
      std::istringstream in(run("xl list -n guest1 2>/dev/null"));
      std::string line;
      std::getline(in, line);
      std::getline(in, line);
      const auto w = words(line);
      return w.empty() ? std::string("?") : w.back();
    }();
    const std::string ours = !s.node_affinity ? "none" : s.node_affinity->all() ? "all" : s.node_affinity->to_string();
    check(ours == xl_nodes, fmt::format("guest1's node affinity {} (xl list -n: {})", ours, xl_nodes));
  }

  // The second pool.
  std::FILE* cfg = std::fopen("/tmp/pool1.cfg", "w");
  if (cfg != nullptr) {
    std::fputs("name = \"pool1\"\nsched = \"credit2\"\ncpus = [\"2\", \"3\"]\n", cfg);
    std::fclose(cfg);
  }
  const int made = std::system("xl cpupool-cpu-remove Pool-0 2,3 >/dev/null 2>&1 && "
                               "xl cpupool-create /tmp/pool1.cfg >/dev/null 2>&1 && "
                               "xl cpupool-migrate guest1 pool1 >/dev/null 2>&1");
  check(made == 0, "xl cpupool-cpu-remove Pool-0 2,3; xl cpupool-create pool1 (2-3); xl cpupool-migrate guest1 pool1");
  const HostInfo host = xen.host_info();
  const std::size_t host_calls = xen.last_call_count();
  const auto listed = xl_pools();
  std::size_t same = 0;
  for (const CpuPool& p : host.pools) {
    auto it = listed.find(p.name);
    if (it != listed.end() && it->second == fmt::format("{}", fmt::join(p.cpus, ","))) ++same;
    std::printf("vcpumap-xen:   pool %u %s: CPUs %s, %s, %u domain(s)\n", p.id, escape_terminal(p.name).c_str(),
                p.cpus.to_string().c_str(), p.scheduler.c_str(), p.domains);
  }
  check(same == listed.size() && same == 2 && host_calls == 1,
        fmt::format("{} of {} pools as xl cpupool-list -c (names, CPUs); the host read in {} hypercall(s)", same,
                    listed.size(), host_calls));
  const CpuPool* pool1 = nullptr;
  for (const CpuPool& p : host.pools)
    if (p.name == "pool1") pool1 = &p;
  if (pool1 == nullptr) return;

  // guest1 in pool1: its limit and effective rows stay inside 2-3, and so does where it runs.
  DomainSnapshot s = xen.snapshot(guest);
  const std::size_t snap_calls = xen.last_call_count();
  bool inside = s.domain.pool == pool1->id;
  for (unsigned v = 0; v < s.vcpus.size(); ++v)
    inside = inside && s.limit.row(v) == pool1->cpus && s.effective.row(v).is_subset_of(pool1->cpus) &&
             !s.effective.row(v).empty();
  check(inside && snap_calls == 1 + (s.vcpus.size() + 127) / 128,
        fmt::format("guest1 in {}: limit and effective rows within {} ({} hypercalls, as before pools)",
                    describe(*pool1), pool1->cpus, snap_calls));
  usleep(1500000);  // let its vcpus be scheduled in the pool
  std::size_t running_inside = 0, online = 0;
  for (const XlVcpu& row : xl_vcpu_list("guest1")) {
    if (row.cpu == "-") continue;
    ++online;
    running_inside += pool1->cpus.test(std::stoul(row.cpu));
  }
  s = xen.snapshot(guest);
  std::size_t ours_inside = 0;
  for (const VcpuMetrics& m : s.vcpus) ours_inside += m.cpu && pool1->cpus.test(*m.cpu);
  check(online > 0 && running_inside == online && ours_inside == online,
        fmt::format("guest1's {} online vcpus run on pool1's CPUs (xl vcpu-list: {}, vcpumap: {})", online,
                    running_inside, ours_inside));

  // A pin to CPU 0: Xen refuses it (xl: EINVAL); vcpumap refuses it first, naming the pool.
  const std::string xl_says = run("xl vcpu-pin guest1 0 0 2>&1");
  const bool xl_refused = xl_says.find("Invalid argument") != std::string::npos;
  std::string ours_says;
  try {
    (void)xen.pin_vcpu(guest, 0, {.hard = host.parse("0")});
  } catch (const Error& e) {
    ours_says = fmt::format("{}: {}", to_string(e.code()), e.what());
    check(e.code() == ErrorCode::invalid_argument && xen.last_call_count() == 1 &&
              ours_says.find("cpupool " + std::to_string(pool1->id) + " (pool1)") != std::string::npos,
          "a pin to CPU 0 refused before any hypercall but the domain's info, naming the pool");
  }
  check(xl_refused && !ours_says.empty(), fmt::format("the same reason as Xen's: xl says '{}'; vcpumap says '{}'",
                                                      escape_terminal(xl_says.substr(0, xl_says.find('\n'))),
                                                      ours_says));
  // A pin partly inside is accepted, and Xen writes back hard ∩ the pool.
  const PinResult r = xen.pin_vcpu(guest, 0, {.hard = host.parse("1-2")});
  check(r.hard == host.parse("2") && xl_vcpu_list("guest1")[0].hard == "1-2",
        fmt::format("pin 1-2 in pool1: effective {} (Xen's write-back), xl shows {}", r.hard,
                    xl_vcpu_list("guest1")[0].hard));
  (void)xen.pin_vcpu(guest, 0, {.hard = CpuMap::full(host.cpu_universe())});

  // vcpu 1 offline and back through xenstore, acted on by the guest.
  const auto state_of = [](unsigned vcpu) {
    for (const XlVcpu& row : xl_vcpu_list("guest1"))
      if (row.vcpu == vcpu) return row.state;
    return std::string("?");
  };
  const auto availability = [&](unsigned vcpu) {
    std::string v = run(fmt::format("xenstore-read /local/domain/{}/cpu/{}/availability 2>/dev/null",
                                    to_integer(guest), vcpu));
    while (!v.empty() && (v.back() == '\n' || v.back() == '\r')) v.pop_back();
    return v;
  };
  expect_error(ErrorCode::invalid_argument, "no vcpu online refused", [&] { xen.set_online_vcpus(guest, VcpuSet(2)); });
  expect_error(ErrorCode::invalid_argument, "vcpu beyond max_vcpus refused",
               [&] { xen.set_online_vcpus(guest, VcpuSet::full(3)); });
  xen.set_online_vcpus(guest, VcpuSet::full(1));
  const bool went = wait_for(30, [&] { return state_of(1) == "--p"; });
  check(availability(1) == "offline" && went && xen.snapshot(guest).vcpus[1].state == VcpuState::offline,
        fmt::format("vcpu 1 offline: xenstore {}, xl vcpu-list {}", availability(1), state_of(1)));
  xen.set_online_vcpus(guest, VcpuSet::full(2));
  const bool back = wait_for(30, [&] { return state_of(1) != "--p"; });
  check(availability(1) == "online" && back && xen.snapshot(guest).vcpus[1].state != VcpuState::offline,
        fmt::format("vcpu 1 back online: xenstore {}, xl vcpu-list {} (the guest brings hot-plugged vcpus up, as "
                    "udev would)",
                    availability(1), state_of(1)));
  if (access("/usr/bin/vcpu-set", X_OK) == 0) {
    const int rc = std::system("vcpu-set --backend=xen guest1 1 >/dev/null 2>&1");
    const bool off = wait_for(30, [&] { return state_of(1) == "--p"; });
    const int rc2 = std::system("vcpu-set --backend=xen guest1 2 >/dev/null 2>&1");
    const bool on = wait_for(30, [&] { return state_of(1) != "--p"; });
    check(rc == 0 && rc2 == 0 && off && on, "vcpu-set guest1 1, then 2: seen by xl vcpu-list");
  }

  // Put the host back as it was.
  const int undone = std::system("xl cpupool-migrate guest1 Pool-0 >/dev/null 2>&1 && "
                                 "xl cpupool-destroy pool1 >/dev/null 2>&1 && "
                                 "xl cpupool-cpu-add Pool-0 2,3 >/dev/null 2>&1");
  check(undone == 0 && xen.host_info().pools.size() == 1, "pool1 removed, CPUs 2-3 back in Pool-0");
}

}  // namespace

int main() {
  check(XenHypervisor::available(), "XenHypervisor::available()");
  try {
    XenHypervisor xen;
    const HostInfo host = xen.host_info();

    // Host info against xl info.
    auto info = xl_info();
    check(info["nr_cpus"] == std::to_string(host.online.count()),
          fmt::format("nr_cpus: xl {} vcpumap online {}", info["nr_cpus"], host.online));
    check(info["max_cpu_id"] == std::to_string(host.cpu_universe() - 1),
          fmt::format("max_cpu_id: xl {} vcpumap universe {}", info["max_cpu_id"], host.cpu_universe()));
    check(info["nr_nodes"] == std::to_string(host.numa_nodes.size()),
          fmt::format("nr_nodes: xl {} vcpumap {}", info["nr_nodes"], host.numa_nodes.size()));
    check(info["threads_per_core"] == std::to_string(host.threads_per_core), "threads_per_core");
    check(info["cores_per_socket"] == std::to_string(host.cores_per_socket), "cores_per_socket");

    // Domain list against xl list.
    const auto domains = xen.list_domains();
    std::istringstream xl_list(run("xl list"));
    std::string line;
    std::getline(xl_list, line);
    std::size_t listed = 0;
    while (std::getline(xl_list, line)) {
      const auto w = words(line);
      if (w.size() < 4) continue;
      ++listed;
      const DomainId id{static_cast<std::uint32_t>(std::stoul(w[1]))};
      bool found = false;
      for (const auto& d : domains)
        if (d.id == id) {
          found = true;
          check(d.name == w[0] && std::to_string(d.online_vcpus) == w[3],
                fmt::format("xl list {} id {} vcpus {}: vcpumap {} {}", w[0], w[1], w[3], d.name, d.online_vcpus));
        }
      check(found, "xl list domain " + w[0] + " in vcpumap");
    }
    check(listed == domains.size() && listed >= 2, fmt::format("{} domains listed by both", listed));
    const DomainId guest = find_domain(domains, "guest1");
    // "wide": a paused domain of many vcpus, one online, more than one multicall's worth.
    const char* wide_name = std::getenv("VCPUMAP_XEN_WIDE_NAME");
    const char* wide_vcpus = std::getenv("VCPUMAP_XEN_WIDE_VCPUS");
    const bool have_wide = wide_name != nullptr && *wide_name != '\0';
    check(have_wide, "the paused domain 'wide' exists (xl create -p wide)");
    if (have_wide) {
      const DomainId wide = find_domain(domains, wide_name);
      const DomainSnapshot w = xen.snapshot(wide);
      std::size_t online = 0;
      for (const VcpuMetrics& m : w.vcpus) online += m.state != VcpuState::offline;
      check(wide_vcpus != nullptr && std::to_string(w.vcpus.size()) == wide_vcpus && w.domain.flags.paused &&
                online == 1 && w.hard.rows() == w.vcpus.size(),
            fmt::format("wide: {} vcpus ({} expected), {} online, paused {}", w.vcpus.size(),
                        wide_vcpus ? wide_vcpus : "?", online, w.domain.flags.paused));
    }

    compare_with_xl(xen, "at boot");
    compare_paths();

    // A pin through vcpumap shows in xl.
    const PinResult r = xen.pin_vcpu(guest, 0, {.hard = host.parse("1"), .soft = host.parse("0-1")});
    check(r.hard == host.parse("1") && r.soft == host.parse("1"),
          fmt::format("pin guest1 vcpu 0: effective {} / {}", r.hard, r.soft));
    auto rows = xl_vcpu_list("guest1");
    check(rows.size() == 2 && rows[0].hard == "1" && rows[0].soft == "0-1",
          fmt::format("xl shows vcpumap's pin: {} / {}", rows.empty() ? "?" : rows[0].hard, rows.empty() ? "?" : rows[0].soft));

    // A pin through xl shows in vcpumap.
    run("xl vcpu-pin guest1 1 2-3 3");
    const DomainSnapshot s = xen.snapshot(guest);
    check(s.hard.row(1) == host.parse("2-3") && s.soft.row(1) == host.parse("3"),
          fmt::format("vcpumap shows xl's pin: {} / {}", s.hard.row(1), s.soft.row(1)));
    // Soft only (it crashed xl vcpu-pin once).
    (void)xen.pin_vcpu(guest, 1, {.soft = host.parse("2")});
    rows = xl_vcpu_list("guest1");
    check(rows.size() == 2 && rows[1].hard == "2-3" && rows[1].soft == "2", "soft-only pin keeps hard");

    // A whole-matrix pin with a bad row changes nothing.
    // Affinity as xl prints it ("2-3 / 0-1" per vcpu): CPU, state and time move on their own.
    auto xl_affinity = [] {
      std::string all;
      for (const XlVcpu& row : xl_vcpu_list()) all += fmt::format("{} {} {} / {}\n", row.name, row.vcpu, row.hard, row.soft);
      return all;
    };
    const std::string before = xl_affinity();
    const DomainSnapshot before_ours = xen.snapshot(guest);
    AffinityMatrix bad = AffinityMatrix::full(2, host.cpu_universe());
    bad.set_row(1, CpuMap(host.cpu_universe()));
    expect_error(ErrorCode::invalid_argument, "matrix pin with an empty row", [&] { (void)xen.pin_matrix(guest, {.hard = bad}); });
    const DomainSnapshot after_ours = xen.snapshot(guest);
    check(xl_affinity() == before && after_ours.hard == before_ours.hard && after_ours.soft == before_ours.soft,
          "affinity unchanged (xl and vcpumap) after the refused matrix pin");
    // A good one applies every row.
    AffinityMatrix good(2, host.cpu_universe());
    good.set(0, 2).set(1, 3);
    const MatrixPinResult m = xen.pin_matrix(guest, {.hard = good, .soft = AffinityMatrix::full(2, host.cpu_universe())});
    rows = xl_vcpu_list("guest1");
    check(m.hard == good && rows.size() == 2 && rows[0].hard == "2" && rows[1].hard == "3",
          "matrix pin applied and seen by xl");

    // Bad input: typed errors.
    expect_error(ErrorCode::not_found, "snapshot of a missing domain", [&] { (void)xen.snapshot(DomainId{999}); });
    expect_error(ErrorCode::not_found, "pin of a missing domain",
                 [&] { (void)xen.pin_vcpu(DomainId{999}, 0, {.hard = host.parse("0")}); });
    expect_error(ErrorCode::invalid_argument, "vcpu out of range",
                 [&] { (void)xen.pin_vcpu(guest, 7, {.hard = host.parse("0")}); });
    expect_error(ErrorCode::invalid_argument, "empty hard map",
                 [&] { (void)xen.pin_vcpu(guest, 0, {.hard = CpuMap(host.cpu_universe())}); });
    expect_error(ErrorCode::invalid_argument, "CPU beyond the host",
                 [&] { (void)xen.pin_vcpu(guest, 0, {.hard = CpuMap(64, {63})}); });

    // A whole-matrix pin of the wide domain: vcpu v on CPU v % N, offline vcpus included.
    if (have_wide) {
      const DomainId wide = find_domain(domains, wide_name);
      const std::size_t n = host.cpu_universe(), vcpus = xen.snapshot(wide).vcpus.size();
      AffinityMatrix spread(vcpus, n);
      for (std::size_t v = 0; v < vcpus; ++v) spread.set(v, v % n);
      const MatrixPinResult done = xen.pin_matrix(wide, {.hard = spread});
      const std::size_t calls = xen.last_call_count();
      const auto wide_rows = xl_vcpu_list(wide_name);
      std::size_t shown = 0;
      for (const XlVcpu& row : wide_rows) shown += row.hard == std::to_string(row.vcpu % n);
      // domain info, the snapshot to roll back to (1 + ceil(V/128) multicalls), the pins (ceil(V/256))
      const std::size_t expect = 1 + (vcpus + 127) / 128 + (vcpus + 255) / 256;
      check(done.hard == spread && shown == vcpus && xen.snapshot(wide).hard == spread && calls == expect,
            fmt::format("wide: matrix pin of {} vcpus in {} hypercalls (expected {}), {} rows of xl vcpu-list show it",
                        vcpus, calls, expect, shown));
      // A sparse pin of vcpus 3 and 150 (vcpu-pin wide 3,150 CPU): the snapshot once, one
      // multicall of 2 setvcpuaffinity; xl shows those two rows changed and no other.
      const std::size_t cpu = (n > 1) ? 1 : 0;
      (void)xen.pin_vcpus(wide, {VcpuSet(vcpus, {3, 150}), CpuMap(n, {cpu}), std::nullopt});
      const std::size_t sparse_calls = xen.last_call_count(), sparse_expect = 1 + (vcpus + 127) / 128 + 1;
      std::size_t as_planned = 0;
      for (const XlVcpu& row : xl_vcpu_list(wide_name))
        as_planned += row.hard == std::to_string(row.vcpu == 3 || row.vcpu == 150 ? cpu : row.vcpu % n);
      check(as_planned == vcpus && sparse_calls == sparse_expect,
            fmt::format("wide: sparse pin of 2 vcpus in {} hypercalls (expected {}); {} of {} rows of xl vcpu-list "
                        "as planned",
                        sparse_calls, sparse_expect, as_planned, vcpus));
    }

    compare_with_xl(xen, "after the pins");

    // The vcpu-list example prints xl's table: equal but for the CPU, State and Time columns.
    if (access("/usr/bin/vcpu-list", X_OK) == 0) {
      const std::string ours = run("vcpu-list --backend=xen 2>/dev/null"), theirs = run("xl vcpu-list");
      std::istringstream a(ours), b(theirs);
      std::string la, lb;
      std::size_t lines = 0, same = 0;
      while (std::getline(b, lb)) {
        ++lines;
        if (!std::getline(a, la)) break;
        auto wa = words(la), wb = words(lb);
        if (lines > 1 && wa.size() > 6 && wb.size() > 6) {
          wa.erase(wa.begin() + 3, wa.begin() + 6);
          wb.erase(wb.begin() + 3, wb.begin() + 6);
        }
        if (lines == 1 ? la == lb : wa == wb) ++same;
        else std::printf("vcpumap-xen:   vcpu-list: '%s'\nvcpumap-xen:   xl:        '%s'\n", la.c_str(), lb.c_str());
      }
      check(lines > 1 && same == lines && !std::getline(a, la),
            fmt::format("vcpu-list matches xl vcpu-list ({} of {} lines)", same, lines));
    }
    // The other example tools against the real hypervisor (each is present when examples are built).
    if (access("/usr/bin/vcpu-pin", X_OK) == 0) {
      const int rc = std::system("vcpu-pin --backend=xen guest1 all 0-1 - >/dev/null 2>&1");
      const auto pinned = xl_vcpu_list("guest1");
      check(rc == 0 && pinned.size() == 2 && pinned[0].hard == "0-1" && pinned[1].hard == "0-1",
            "vcpu-pin guest1 all 0-1: seen by xl");
      const int dry = std::system("vcpu-pin --backend=xen --dry-run guest1 0 3 >/dev/null 2>&1");
      check(dry == 0 && xl_vcpu_list("guest1")[0].hard == "0-1", "vcpu-pin --dry-run changes nothing");
      check(std::system("vcpu-pin --backend=xen guest1 0 9 >/dev/null 2>&1") != 0, "vcpu-pin to a CPU beyond the host fails");
    }
    if (access("/usr/bin/vcpu-matrix", X_OK) == 0)
      check(run("vcpu-matrix --backend=xen --hard guest1 2>&1").find("vcpu 1") != std::string::npos,
            "vcpu-matrix shows guest1's vcpus");
    if (access("/usr/bin/vcpu-balance", X_OK) == 0) {
      // guest1's vcpus carry vcpu-pin's 0-1 (xl: not "all"): balance leaves them unless asked.
      const std::string kept = run("vcpu-balance --backend=xen --apply guest1 2>&1");
      const auto pinned = xl_vcpu_list("guest1");
      check(kept.find("stays: vcpus 0-1 pinned") != std::string::npos && pinned.size() == 2 &&
                pinned[0].hard == "0-1" && pinned[1].hard == "0-1",
            "vcpu-balance --apply leaves guest1's pinned vcpus as xl shows them (0-1), saying why");
      const int rc = std::system("vcpu-balance --backend=xen --apply --include-pinned guest1 >/dev/null 2>&1");
      const auto balanced = xl_vcpu_list("guest1");
      check(rc == 0 && balanced.size() == 2 && balanced[0].hard != balanced[1].hard &&
                balanced[0].hard.find_first_of(",-") == std::string::npos,
            fmt::format("vcpu-balance --apply --include-pinned gives each guest1 vcpu its own CPU: {} and {}",
                        balanced.empty() ? "?" : balanced[0].hard, balanced.size() < 2 ? "?" : balanced[1].hard));
    }
    // The Python module in dom0 (tests/python/xen_check.py), when the harness put it there.
    if (access("/usr/lib/vcpumap-python/xen_check.py", R_OK) == 0) {
      const std::string out =
          run("PYTHONPATH=/usr/lib/vcpumap-python python3 /usr/lib/vcpumap-python/xen_check.py --pin guest1 2>&1; "
              "echo \"exit $?\"");
      std::printf("%s", out.c_str());
      check(out.find("\nexit 0\n") != std::string::npos || out.rfind("exit 0\n", 0) == 0,
            "python: vcpumap.open(\"xen\") agrees with xl vcpu-list (tests/python/xen_check.py --pin guest1)");
    }
    benchmark();
    pools_nodes_and_online(xen);
  } catch (const std::exception& e) {
    check(false, std::string("unexpected exception: ") + e.what());
  }
  std::printf("vcpumap-xen: %s (%d failed)\n", failures == 0 ? "all checks passed" : "FAILED", failures);
  return failures == 0 ? 0 : 1;
}
