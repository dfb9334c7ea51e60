// src/linux/linux_hypervisor.cpp — the Linux/KVM backend's primitives (vcpumap/linux.hpp).
//
// Everything the backend knows comes from files under the root (proc/, sys/) and from the
// two scheduler calls; every system call goes through Sys, which counts it. Files of known
// threads are kept open and re-read with pread: a snapshot of a known guest costs a pread of
// stat and schedstat per vcpu (+ sched_getaffinity and a pread of the cgroup and cpuset
// files for scope full), and no open.
#include "vcpumap/linux.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sched.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <map>
#include <mutex>
#include <set>

#include <fmt/format.h>

#include "procfs.hpp"
#include "qmp.hpp"
#include "vcpumap/atomic_file.hpp"
#include "vcpumap/cpulist.hpp"
#include "vcpumap/detail/system_error.hpp"
#include "vcpumap/fixture.hpp"
#include "vcpumap/limits.hpp"
#include "vcpumap/text.hpp"

namespace vcpumap {

namespace {

using detail::Fd;

// ---- the real scheduler calls ----

class KernelScheduler final : public SchedulerCalls {
 public:
  int get_affinity(int tid, std::size_t universe, CpuMap& cpus) override {
    // The kernel wants a buffer of at least nr_cpu_ids bits, in longs: start at the host's
    // universe (or 1024 bits) and grow ×4 on EINVAL, up to 2^18 bits (libvirt's rule).
    std::size_t bits = std::max<std::size_t>(1024, universe);
    for (;;) {
      std::vector<unsigned long> mask((bits + 63) / 64);
      if (::sched_getaffinity(tid, mask.size() * sizeof(unsigned long), reinterpret_cast<cpu_set_t*>(mask.data())) ==
          0) {
        static_assert(sizeof(unsigned long) == sizeof(Word));
        Bitset b(mask.begin(), mask.end());
        b.resize(universe);  // CPUs beyond the host's possible ones cannot be set
        cpus = CpuMap::from_bits(std::move(b));
        return 0;
      }
      if (errno != EINVAL || bits >= (std::size_t{1} << 18)) return errno;
      bits *= 4;
    }
  }
  int set_affinity(int tid, const CpuMap& cpus) override {
    std::vector<unsigned long> mask(std::max<std::size_t>(1, (cpus.universe() + 63) / 64));
    for (std::size_t c : cpus) mask[c / 64] |= 1UL << (c % 64);
    return ::sched_setaffinity(tid, mask.size() * sizeof(unsigned long), reinterpret_cast<cpu_set_t*>(mask.data())) == 0
               ? 0
               : errno;
  }
};

/// Linux adds one to the shared mapping: ENOENT is a /proc entry gone with its thread.
ErrorCode code_of(int err) { return err == ENOENT ? ErrorCode::not_found : detail::error_code_for_errno(err); }

bool gone(int err) { return err == ESRCH || err == ENOENT; }

/// A sysfs or procfs value without its trailing newline (and blanks).
std::string_view trimmed(std::string_view t) {
  while (!t.empty() && (t.back() == '\n' || t.back() == ' ')) t.remove_suffix(1);
  return t;
}

/// The largest /proc or /sys text read (a command line can be ARG_MAX long; more is cut).
constexpr std::size_t max_file_bytes = 1 << 20;
/// The most threads of one QEMU process looked at (QEMU has a few per vcpu at most).
constexpr std::size_t max_threads = 4 * limits::max_vcpus + 1024;

}  // namespace

std::shared_ptr<SchedulerCalls> kernel_scheduler_calls() { return std::make_shared<KernelScheduler>(); }

// ---- the implementation ----

struct __attribute__((visibility("hidden"))) LinuxHypervisor::Impl {  // holds hidden internals (procfs, qmp)
  /// A thread whose files are kept open.
  struct Thread {
    Fd stat, schedstat;
    detail::ThreadRole role;
    bool named = false;  // its role is for good: it has a name of its own, or kept the process's twice
    unsigned looks = 0;  // refreshes that saw it with the process's name
    // Its cpuset, cached: the file naming its cgroup (/proc/.../cpuset, else .../cgroup) is
    // re-read each time, the cgroup's effective-CPUs file too, and the text is parsed only
    // when it changed.
    Fd where;                       // /proc/PID/task/TID/cpuset or .../cgroup
    bool where_is_cgroup = false;   // which of the two `where` is
    std::string where_text;         // what `where` said last
    int limit_fd = -1;              // the cgroup's effective-CPUs file (owned by cpuset_files)
    std::size_t limit_generation = 0;  // cpuset_files' generation limit_fd belongs to
    std::string limit_text;         // what limit_fd said last
    CpuMap limit;                   // ... parsed
  };
  /// A QEMU process.
  struct Guest {
    int pid = 0;
    std::uint64_t starttime = 0;
    Fd stat, task_dir;
    detail::QemuCommandLine cmd;
    std::string qmp;  // the QMP socket matched to it, or empty
    std::map<int, Thread> threads;
    std::vector<int> vcpu_tid;                            // by vcpu number; 0: not plugged in
    std::vector<std::pair<std::string, int>> iothreads;   // id, tid
    DomainInfo info;
  };

  LinuxOptions options;
  std::shared_ptr<SchedulerCalls> sched;
  mutable std::mutex mutex;
  std::atomic<std::size_t> calls{0};
  long clock_ticks = ::sysconf(_SC_CLK_TCK) > 0 ? ::sysconf(_SC_CLK_TCK) : 100;
  std::shared_ptr<const HostInfo> host;
  std::map<int, Guest> guests;
  std::map<int, std::pair<std::uint64_t, std::string>> not_qemu;  // pid -> start time, name
  detail::CgroupMounts mounts;
  std::map<std::string, Fd> cpuset_files;  // cgroup path -> its (or its nearest ancestor's) effective-CPUs file
  std::size_t cpuset_generation = 1;       // changes when cpuset_files is emptied (threads' limit_fd die)
  std::string mountinfo_text;              // what proc/self/mountinfo said last
  bool v2_cpuset = false;                  // ... and whether its cgroup2 hierarchy has cpuset
  std::string cpu_lists_key;               // the CPU lists the topology was read for
  std::map<std::string, int> qmp_pids;     // socket -> pid, once matched
  std::string buf;                         // the text read last

  explicit Impl(LinuxOptions o) : options(std::move(o)) {
    sched = options.scheduler ? options.scheduler : kernel_scheduler_calls();
    if (options.root.empty()) options.root = "/";
    if (options.root.back() != '/') options.root += '/';
  }

  // ---- counted system calls ----

  std::string path(std::string_view rel) const { return options.root + std::string(rel); }
  Fd open_file(std::string_view rel, int flags = O_RDONLY) {
    ++calls;
    return Fd(::open(path(rel).c_str(), flags | O_CLOEXEC));
  }
  /// The whole of a file from offset 0 into buf (at most max_file_bytes); false with errno.
  bool read_whole(int fd, std::size_t hint = 4096) {
    buf.resize(hint);
    std::size_t got = 0;
    for (;;) {
      ++calls;
      const ssize_t n = ::pread(fd, buf.data() + got, buf.size() - got, static_cast<off_t>(got));
      if (n < 0) {
        if (errno == EINTR) continue;
        return false;
      }
      got += static_cast<std::size_t>(n);
      if (n == 0 || got < buf.size()) break;
      if (buf.size() >= max_file_bytes) break;  // cut: the rest is not read
      buf.resize(std::min(buf.size() * 4, max_file_bytes));
    }
    buf.resize(got);
    return true;
  }
  /// Opens, reads and closes a file; empty with errno when it cannot.
  std::optional<std::string> slurp(std::string_view rel, std::size_t hint = 4096) {
    Fd fd = open_file(rel);
    if (fd.get() < 0) return std::nullopt;
    const bool ok = read_whole(fd.get(), hint);
    const int err = errno;
    ++calls;
    fd.close();
    if (!ok) {
      errno = err;
      return std::nullopt;
    }
    return buf;
  }
  /// Thread or process ids in a /proc-style folder (numeric names), ascending.
  std::vector<int> list_ids(int dir_fd) {
    std::vector<int> ids;
    ++calls;
    if (::lseek(dir_fd, 0, SEEK_SET) != 0) return ids;
    alignas(8) char dents[16384];
    for (;;) {
      ++calls;
      const long n = ::syscall(SYS_getdents64, dir_fd, dents, sizeof dents);
      if (n <= 0) break;
      for (long off = 0; off < n;) {
        const auto* d = reinterpret_cast<const struct dirent64*>(dents + off);
        if (auto id = detail::parse_decimal(d->d_name, 0x3fffffff); id && *id > 0) ids.push_back(static_cast<int>(*id));
        off += d->d_reclen;
      }
      if (ids.size() > limits::max_domains * 64) break;
    }
    std::sort(ids.begin(), ids.end());
    return ids;
  }

  // ---- the host ----

  std::shared_ptr<const HostInfo> read_host() {
    const auto cpus_dir = std::string("sys/devices/system/cpu/");
    std::string key;  // the CPU lists as read: topology and nodes are re-read when they change
    auto list = [&](std::string_view name, std::size_t universe) -> std::optional<CpuMap> {
      auto text = slurp(cpus_dir + std::string(name));
      if (!text) return std::nullopt;
      if (name == "present" || name == "online") key += fmt::format("{}={};", name, *text);
      ParseOptions o;
      o.universe = universe;
      o.dialect = Dialect::standard;
      const std::string_view t = trimmed(*text);
      ParseFailure failure;
      auto m = CpuMap::try_parse(t, o, &failure);
      if (!m)
        throw Error(ErrorCode::internal, fmt::format("{}{}{}: {}", escape_terminal(options.root), cpus_dir, name,
                                                     ParseError(t, failure).what()));
      return m;
    };
    ParseOptions wide;
    wide.universe = limits::max_cpus;
    auto possible_text = slurp(cpus_dir + "possible");
    if (!possible_text)
      throw Error(ErrorCode::hypervisor_unavailable,
                  fmt::format("{}: cannot read the host's CPUs: {}", escape_terminal(path(cpus_dir + "possible")),
                              detail::errno_text(errno)));
    const std::string_view pt = trimmed(*possible_text);
    ParseFailure failure;
    auto possible = CpuMap::try_parse(pt, wide, &failure);
    if (!possible || possible->empty())
      throw Error(ErrorCode::internal,
                  fmt::format("{}: {}", escape_terminal(path(cpus_dir + "possible")),
                              possible ? std::string("no CPU") : std::string(ParseError(pt, failure).what())));
    const std::size_t n = *possible->last() + 1;
    auto h = std::make_shared<HostInfo>();
    h->possible = CpuMap::full(n);
    h->present = list("present", n).value_or(*possible);
    h->present.resize(n);
    h->online = list("online", n).value_or(h->present);
    h->online &= h->present;
    key += *possible_text;
    if (host && key == cpu_lists_key) {  // no CPU came or went: the topology read before holds
      h->threads_per_core = host->threads_per_core;
      h->cores_per_socket = host->cores_per_socket;
      h->sockets = host->sockets;
      h->numa_nodes = host->numa_nodes;
      h->cpu_socket = host->cpu_socket;
      h->cpu_core = host->cpu_core;
      h->cpu_node = host->cpu_node;
    } else {
      read_topology(*h, n);
    }

    // What the kernel has: no soft affinity; cpusets when a cpuset hierarchy is mounted.
    // Mounts rarely change: the kept cpuset files stay valid until they do.
    if (auto mi = slurp("proc/self/mountinfo", 16384); mi && *mi != mountinfo_text) {
      mountinfo_text = std::move(*mi);
      mounts = detail::parse_cgroup_mounts(mountinfo_text);
      clear_cpuset_files();
      v2_cpuset = v2_has_cpuset();
    }
    h->caps.soft_affinity = false;
    h->caps.vcpu_limit = (mounts.v1_cpuset || v2_cpuset) ? "cpuset" : "";

    // The host's own share: PID 1's affinity within system.slice's cpuset (or PID 1's).
    CpuMap init(n);
    if (sched->get_affinity(1, n, init) == 0) {
      ++calls;
      std::optional<CpuMap> set = cpuset_of_path("/system.slice", n, true);
      if (!set) {
        if (auto cg = slurp("proc/1/cgroup")) set = cpuset_of_task_text(*cg, n);
      }
      if (set) init &= *set;
      h->system_cpus = init;
    } else {
      ++calls;
    }
    try {
      detail::check_host(*h, "host");
    } catch (const Error& e) {
      throw Error(ErrorCode::internal, fmt::format("{}sys: {}", escape_terminal(options.root), e.what()));
    }
    cpu_lists_key = std::move(key);  // with the host it describes, only once that is whole
    host = h;
    return h;
  }

  /// Sockets, cores, threads and NUMA nodes of the host's online CPUs, from sys (a few files
  /// per CPU: read_host does it only when the CPU lists changed).
  void read_topology(HostInfo& host_info, std::size_t n) {
    HostInfo* const h = &host_info;
    const auto cpus_dir = std::string("sys/devices/system/cpu/");
    auto list = [&](const std::string& name) -> std::optional<CpuMap> {
      auto text = slurp(cpus_dir + name);
      if (!text) return std::nullopt;
      const std::string_view t = trimmed(*text);
      ParseOptions o;
      o.universe = n;
      ParseFailure failure;
      auto m = CpuMap::try_parse(t, o, &failure);
      if (!m)
        throw Error(ErrorCode::internal, fmt::format("{}{}{}: {}", escape_terminal(options.root), cpus_dir, name,
                                                     ParseError(t, failure).what()));
      return m;
    };
    // Topology of the online CPUs (an offline CPU has no topology folder).
    h->cpu_socket.assign(n, std::nullopt);
    h->cpu_core.assign(n, std::nullopt);
    std::set<unsigned> sockets;
    std::set<std::pair<unsigned, unsigned>> cores;
    unsigned threads = 1;
    for (std::size_t c : h->online) {
      const std::string t = fmt::format("{}cpu{}/topology/", cpus_dir, c);
      auto pkg = slurp(t + "physical_package_id");
      auto core = slurp(t + "core_id");
      if (!pkg || !core) continue;
      const auto p = detail::parse_decimal(trimmed(*pkg), limits::max_topology_count);
      const auto k = detail::parse_decimal(trimmed(*core), UINT32_MAX);
      if (!p || !k) continue;
      h->cpu_socket[c] = static_cast<unsigned>(*p);
      h->cpu_core[c] = static_cast<unsigned>(*k);
      sockets.insert(static_cast<unsigned>(*p));
      cores.insert({static_cast<unsigned>(*p), static_cast<unsigned>(*k)});
      if (auto sib = list(fmt::format("cpu{}/topology/thread_siblings_list", c)))
        threads = std::max<unsigned>(threads, static_cast<unsigned>(sib->count()));
    }
    h->threads_per_core = std::min<unsigned>(threads, limits::max_topology_count);
    h->sockets = std::max<unsigned>(1, static_cast<unsigned>(sockets.size()));
    h->cores_per_socket = std::max<unsigned>(
        1, static_cast<unsigned>((cores.size() + h->sockets - 1) / h->sockets));

    // NUMA nodes, by id (a missing id is a node without CPUs).
    h->numa_nodes.clear();
    {
      Fd dir = open_file("sys/devices/system/node", O_RDONLY | O_DIRECTORY);
      std::vector<unsigned> ids;
      if (dir.get() >= 0) {
        ++calls;
        DIR* d = ::fdopendir(::dup(dir.get()));
        if (d) {
          while (const dirent* e = ::readdir(d)) {
            std::string_view name = e->d_name;
            if (name.size() > 4 && name.substr(0, 4) == "node")
              if (auto id = detail::parse_decimal(name.substr(4), limits::max_numa_nodes - 1)) ids.push_back(static_cast<unsigned>(*id));
          }
          ::closedir(d);
        }
      }
      std::sort(ids.begin(), ids.end());
      if (!ids.empty()) h->numa_nodes.assign(ids.back() + 1, CpuMap(n));
      for (unsigned id : ids) {
        auto text = slurp(fmt::format("sys/devices/system/node/node{}/cpulist", id));
        if (!text) continue;
        const std::string_view t = trimmed(*text);
        ParseOptions o;
        o.universe = n;
        if (auto m = CpuMap::try_parse(t, o)) h->numa_nodes[id] = *m & h->present;
      }
    }
    if (h->numa_nodes.empty()) h->numa_nodes = {h->present};
    h->cpu_node.assign(n, std::nullopt);
    for (std::size_t node = 0; node < h->numa_nodes.size(); ++node)
      for (std::size_t c : h->numa_nodes[node])
        if (!h->cpu_node[c]) h->cpu_node[c] = static_cast<unsigned>(node);
  }

  bool v2_has_cpuset() {
    if (!mounts.v2) return false;
    Fd fd = open_file(mounts.v2->point.substr(1) + "/cgroup.controllers");
    if (fd.get() < 0) return false;
    const bool ok = read_whole(fd.get());
    return ok && (" " + buf + " ").find(" cpuset") != std::string::npos;
  }

  // ---- cpusets ----

  void clear_cpuset_files() {
    cpuset_files.clear();
    ++cpuset_generation;
  }

  /// The effective-CPUs file of a cgroup, or of its nearest ancestor that has one (kept open).
  /// `exact`: only the cgroup itself (no walk up).
  int cpuset_fd(const detail::CgroupMount& mount, std::string_view file, const std::string& cg, bool exact) {
    const std::string key = fmt::format("{}|{}|{}", mount.point, cg, exact);
    if (auto it = cpuset_files.find(key); it != cpuset_files.end()) return it->second.get();
    // The cgroup's path relative to the mount (inside a namespace the mount's root prefixes it).
    std::string rel = cg;
    if (mount.root != "/") {
      // Within the mount's root: the root itself or below it ("/ct" holds "/ct/x", not "/ctx").
      if (rel.compare(0, mount.root.size(), mount.root) != 0 ||
          (rel.size() > mount.root.size() && rel[mount.root.size()] != '/'))
        return -1;
      rel = rel.substr(mount.root.size());
    }
    std::string dir = mount.point.substr(mount.point.empty() || mount.point[0] != '/' ? 0 : 1);
    for (;;) {
      std::string candidate = dir + rel;
      while (!candidate.empty() && candidate.back() == '/') candidate.pop_back();
      Fd fd = open_file(candidate + "/" + std::string(file));
      if (fd.get() >= 0) {
        const int raw = fd.get();
        if (cpuset_files.size() > 4096) clear_cpuset_files();  // bounded: libvirt makes a few per guest
        cpuset_files.emplace(key, std::move(fd));
        return raw;
      }
      if (exact || rel.empty() || rel == "/") return -1;
      const auto slash = rel.rfind('/');
      rel = slash == 0 || slash == std::string::npos ? std::string("/") : rel.substr(0, slash);
    }
  }
  std::optional<CpuMap> read_cpuset(int fd, std::size_t n) {
    if (fd < 0 || !read_whole(fd)) return std::nullopt;
    const std::string_view t = trimmed(buf);
    ParseOptions o;
    o.universe = n;
    auto m = CpuMap::try_parse(t, o);
    if (!m) return std::nullopt;
    return m;
  }
  /// The cpuset of a cgroup path (v1 cpuset hierarchy first, it is where the controller is
  /// when both are mounted; else v2).
  std::optional<CpuMap> cpuset_of_path(const std::string& cg, std::size_t n, bool exact) {
    if (mounts.v1_cpuset)
      if (auto m = read_cpuset(cpuset_fd(*mounts.v1_cpuset, "cpuset.effective_cpus", cg, exact), n)) return m;
    if (mounts.v2)
      if (auto m = read_cpuset(cpuset_fd(*mounts.v2, "cpuset.cpus.effective", cg, exact), n)) return m;
    return std::nullopt;
  }
  std::optional<CpuMap> cpuset_of_task_text(std::string_view cgroup_text, std::size_t n) {
    const detail::TaskCgroups cg = detail::parse_task_cgroups(cgroup_text);
    if (mounts.v1_cpuset && cg.v1_cpuset)
      if (auto m = read_cpuset(cpuset_fd(*mounts.v1_cpuset, "cpuset.effective_cpus", *cg.v1_cpuset, false), n)) return m;
    if (mounts.v2 && cg.v2)
      if (auto m = read_cpuset(cpuset_fd(*mounts.v2, "cpuset.cpus.effective", *cg.v2, false), n)) return m;
    return std::nullopt;
  }
  /// A thread's cpuset: every CPU when it has none (no cpuset controller, or unreadable).
  /// Costs two preads when nothing changed: the thread's cpuset path and the cgroup's
  /// effective CPUs.
  const CpuMap& cpuset_of_thread(Guest& g, int tid, Thread& t, std::size_t n) {
    if (host->caps.vcpu_limit.empty()) return every_cpu(n);
    if (t.where.get() < 0) {  // /proc/.../cpuset names the cpuset cgroup in one line (4x cheaper than cgroup)
      t.where = open_file(fmt::format("proc/{}/task/{}/cpuset", g.pid, tid));
      t.where_is_cgroup = t.where.get() < 0;
      if (t.where_is_cgroup) t.where = open_file(fmt::format("proc/{}/task/{}/cgroup", g.pid, tid));
      t.where_text.clear();
    }
    if (t.where.get() < 0 || !read_whole(t.where.get(), 256)) return every_cpu(n);
    if (buf != t.where_text || t.limit_generation != cpuset_generation) {
      t.where_text = buf;
      t.limit_fd = resolve_cpuset_fd(t);
      t.limit_generation = cpuset_generation;
      t.limit_text.clear();
    }
    if (t.limit_fd < 0 || !read_whole(t.limit_fd, 256)) return every_cpu(n);
    if (buf != t.limit_text || t.limit.universe() != n) {
      const std::string_view text = trimmed(buf);
      ParseOptions o;
      o.universe = n;
      auto m = CpuMap::try_parse(text, o);
      if (!m) return every_cpu(n);
      t.limit = std::move(*m);
      t.limit_text = buf;
    }
    return t.limit;
  }
  /// The effective-CPUs file for what t.where_text names, or -1.
  int resolve_cpuset_fd(const Thread& t) {
    if (!t.where_is_cgroup) {  // one path, in the hierarchy that holds the cpuset controller
      const std::string cg(trimmed(t.where_text));
      if (cg.empty() || cg[0] != '/' || cg.find("/..") != std::string::npos) return -1;
      if (mounts.v1_cpuset) return cpuset_fd(*mounts.v1_cpuset, "cpuset.effective_cpus", cg, false);
      if (mounts.v2) return cpuset_fd(*mounts.v2, "cpuset.cpus.effective", cg, false);
      return -1;
    }
    const detail::TaskCgroups cg = detail::parse_task_cgroups(t.where_text);
    if (mounts.v1_cpuset && cg.v1_cpuset)
      if (int fd = cpuset_fd(*mounts.v1_cpuset, "cpuset.effective_cpus", *cg.v1_cpuset, false); fd >= 0) return fd;
    if (mounts.v2 && cg.v2) return cpuset_fd(*mounts.v2, "cpuset.cpus.effective", *cg.v2, false);
    return -1;
  }
  const CpuMap& every_cpu(std::size_t n) {
    if (full_map.universe() != n) full_map = CpuMap::full(n);
    return full_map;
  }
  CpuMap full_map;

  // ---- guests ----

  /// Reads a process's stat through its kept fd (or a new one); empty when it is gone.
  /// proc/PID/stat (tid 0) or proc/PID/task/TID/stat through `fd`, opened when it is not yet.
  std::optional<detail::ProcStat> read_stat(Fd& fd, int pid, int tid = 0, int* err = nullptr) {
    if (fd.get() < 0)
      fd = open_file(tid == 0 ? fmt::format("proc/{}/stat", pid) : fmt::format("proc/{}/task/{}/stat", pid, tid));
    if (fd.get() < 0 || !read_whole(fd.get(), 1024)) {
      if (err) *err = errno;
      return std::nullopt;
    }
    if (buf.empty()) {  // a thread that exited reads as empty on some kernels
      if (err) *err = ESRCH;
      return std::nullopt;
    }
    return detail::parse_proc_stat(buf);
  }

  /// A process as a guest: the existing entry when it is the same process, a new one when it
  /// is QEMU, or nothing. `stat` is the process's stat as just read.
  Guest* guest_of(int pid, const detail::ProcStat& stat, Fd stat_fd) {
    if (stat.state == 'Z' || stat.state == 'X') {  // exited, not reaped yet: no guest any more
      guests.erase(pid);
      return nullptr;
    }
    if (auto it = guests.find(pid); it != guests.end()) {
      if (it->second.starttime == stat.starttime) return &it->second;
      guests.erase(it);  // the pid was reused
    }
    if (auto it = not_qemu.find(pid); it != not_qemu.end()) {
      if (it->second.first == stat.starttime && it->second.second == stat.comm) return nullptr;
      not_qemu.erase(it);  // a new process, or an exec (the name changes with it)
    }
    auto cmdline = slurp(fmt::format("proc/{}/cmdline", pid), 4096);
    std::optional<detail::QemuCommandLine> cmd;
    if (cmdline) cmd = detail::parse_qemu_cmdline(*cmdline, limits::max_vcpus);
    if (!cmd) {
      if (cmdline && !cmdline->empty()) {  // an empty command line: a process between fork and exec, or a kernel thread
        if (not_qemu.size() > 1 << 20) not_qemu.clear();
        not_qemu[pid] = {stat.starttime, stat.comm};
      }
      return nullptr;
    }
    Guest& g = guests[pid];
    g.pid = pid;
    g.starttime = stat.starttime;
    g.stat = std::move(stat_fd);
    g.cmd = std::move(*cmd);
    return &g;
  }

  /// Re-reads a guest's threads and its DomainInfo from `stat` (its main thread's). False
  /// when it is gone.
  bool refresh(Guest& g, const detail::ProcStat& stat) {
    if (g.task_dir.get() < 0) g.task_dir = open_file(fmt::format("proc/{}/task", g.pid), O_RDONLY | O_DIRECTORY);
    if (g.task_dir.get() < 0) return false;
    std::vector<int> tids = list_ids(g.task_dir.get());
    if (tids.empty()) return false;
    if (tids.size() > max_threads) tids.resize(max_threads);
    // Forget threads that exited; read the role of new threads and of those not named yet.
    for (auto it = g.threads.begin(); it != g.threads.end();)
      it = std::binary_search(tids.begin(), tids.end(), it->first) ? std::next(it) : g.threads.erase(it);
    for (int tid : tids) {
      Thread& t = g.threads[tid];
      if (t.named) continue;
      auto s = read_stat(t.stat, g.pid, tid);
      if (!s) continue;
      t.role = detail::thread_role(s->comm);
      // A new QEMU thread names itself as it starts: one with the process's name may be a
      // vcpu thread caught before naming itself. Once it was seen so twice and is older than a
      // second, it is taken as it is (libvirt's QEMU keeps one such thread, call_rcu, for
      // good: no stat read per snapshot for it).
      t.named = t.role.kind != detail::ThreadRole::Kind::other || tid == g.pid || s->comm != stat.comm ||
                (++t.looks >= 2 && age_seconds(s->starttime) > 1.0);
    }
    g.vcpu_tid.clear();
    g.iothreads.clear();
    bool named_vcpus = false;
    for (const auto& [tid, t] : g.threads) {
      if (t.role.kind == detail::ThreadRole::Kind::vcpu && t.role.vcpu < limits::max_vcpus) {
        if (g.vcpu_tid.size() <= t.role.vcpu) g.vcpu_tid.resize(t.role.vcpu + 1, 0);
        g.vcpu_tid[t.role.vcpu] = tid;
        named_vcpus = true;
      } else if (t.role.kind == detail::ThreadRole::Kind::iothread) {
        g.iothreads.emplace_back(t.role.iothread, tid);
      }
    }
    bool paused = stat.state == 'T' || stat.state == 't';
    std::string problem;
    if (!g.qmp.empty()) {
      if (auto q = ask_qmp(g)) paused = paused || *q;
      else problem = fmt::format("its QMP socket {} did not answer", g.qmp);
    } else if (!named_vcpus && !g.cmd.debug_threads) {
      problem = "its vcpu threads are not named (QEMU was started without -name debug-threads=on) and no QMP "
                "socket was given for it: they cannot be told from its other threads";
      g.vcpu_tid.clear();
    }
    DomainInfo& d = g.info;
    d.id = DomainId{static_cast<std::uint32_t>(g.pid)};
    d.name = g.cmd.name;
    if (d.name.size() > limits::max_name_bytes) d.name.resize(limits::max_name_bytes);  // as long as any backend's
    d.uuid = g.cmd.uuid;
    d.vcpu_problem = std::move(problem);
    d.flags = DomainFlags{stat.state == 'R', stat.state == 'S' || stat.state == 'D' || stat.state == 'I', paused,
                          false, stat.state == 'Z' || stat.state == 'X'};
    d.max_vcpus = std::max<unsigned>(g.cmd.max_vcpus, static_cast<unsigned>(g.vcpu_tid.size()));
    d.max_vcpus = std::min<unsigned>(d.max_vcpus, limits::max_vcpus);
    g.vcpu_tid.resize(d.max_vcpus, 0);
    d.online_vcpus = static_cast<unsigned>(std::count_if(g.vcpu_tid.begin(), g.vcpu_tid.end(), [](int t) { return t != 0; }));
    d.cpu_time = ticks(stat.utime + stat.stime);
    std::size_t cells_left = limits::max_matrix_cells;
    bound_claim(g, cells_left);
    return true;
  }

  /// Any user can start a process whose command line claims `-smp 16384`: a guest's matrices
  /// (max_vcpus × the host's CPUs) must fit in what is left of limits::max_matrix_cells, as a
  /// fixture's must. One that does not is not believed: its vcpus are unknown (vcpu_problem),
  /// and it keeps one row a vcpu thread it really has (at least one).
  void bound_claim(Guest& g, std::size_t& cells_left) {
    DomainInfo& d = g.info;
    const std::size_t n = std::max<std::size_t>(1, host ? host->cpu_universe() : 1);
    if (d.max_vcpus <= cells_left / n) {
      cells_left -= d.max_vcpus * n;
      return;
    }
    d.vcpu_problem = fmt::format("its command line claims {} vcpus: with the other guests' on {} CPUs, past the "
                                 "limit of {} affinity cells",
                                 d.max_vcpus, n, limits::max_matrix_cells);
    d.max_vcpus = std::max(1U, d.online_vcpus);
    g.vcpu_tid.resize(d.max_vcpus, 0);
    cells_left -= std::min(cells_left, std::size_t{d.max_vcpus} * n);
  }

  /// Thread ids from the guest's QMP socket (vcpus and IOThreads replace the names'); true
  /// when QEMU says the guest is paused. Empty when QMP failed.
  std::optional<bool> ask_qmp(Guest& g) {
    try {
      calls += 4;  // socket, connect, and a write and a read per exchange at least
      detail::QmpClient qmp(g.qmp, options.qmp_timeout);
      const auto cpus = qmp.query_cpus_fast();
      const auto io = qmp.query_iothreads();
      const std::string status = qmp.query_status();
      g.vcpu_tid.clear();
      for (const detail::QmpCpu& c : cpus) {
        if (g.vcpu_tid.size() <= c.cpu_index) g.vcpu_tid.resize(c.cpu_index + 1, 0);
        g.vcpu_tid[c.cpu_index] = static_cast<int>(c.thread_id);
      }
      g.iothreads.clear();
      for (const detail::QmpIothread& t : io) g.iothreads.emplace_back(t.id, static_cast<int>(t.thread_id));
      return status == "paused" || status == "prelaunch";
    } catch (const Error&) {
      return std::nullopt;
    }
  }

  /// Matches the QMP sockets not matched yet to guests, by the thread ids they report.
  void match_qmp() {
    for (const std::string& socket : options.qmp_sockets) {
      if (auto it = qmp_pids.find(socket); it != qmp_pids.end() && guests.count(it->second)) continue;
      try {
        calls += 4;
        detail::QmpClient qmp(socket, options.qmp_timeout);
        const auto cpus = qmp.query_cpus_fast();
        if (cpus.empty()) continue;
        const int tid = static_cast<int>(cpus.front().thread_id);
        for (auto& [pid, g] : guests) {
          struct stat st {};
          ++calls;
          if (::stat(path(fmt::format("proc/{}/task/{}", pid, tid)).c_str(), &st) == 0) {
            g.qmp = socket;
            qmp_pids[socket] = pid;
            break;
          }
        }
      } catch (const Error&) {
        // Not answering now: tried again at the next listing.
      }
    }
  }

  /// Seconds since a thread started (its stat starttime, clock ticks after boot).
  double age_seconds(std::uint64_t starttime) const {
    timespec now{};
    if (::clock_gettime(CLOCK_BOOTTIME, &now) != 0) return 0;
    const double since_boot = static_cast<double>(now.tv_sec) + static_cast<double>(now.tv_nsec) / 1e9;
    return since_boot - static_cast<double>(starttime) / static_cast<double>(clock_ticks);
  }

  std::chrono::nanoseconds ticks(std::uint64_t t) const {
    const std::uint64_t per = 1'000'000'000ULL / static_cast<std::uint64_t>(clock_ticks);
    const std::uint64_t most = static_cast<std::uint64_t>(limits::max_cpu_time_ns);
    return std::chrono::nanoseconds(static_cast<std::int64_t>(t > most / per ? most : t * per));
  }

  void read_domain_list(std::vector<DomainInfo>& out) {
    out.clear();
    Fd proc = open_file("proc", O_RDONLY | O_DIRECTORY);
    if (proc.get() < 0)
      throw Error(ErrorCode::hypervisor_unavailable,
                  fmt::format("{}: cannot list processes: {}", escape_terminal(path("proc")), detail::errno_text(errno)));
    const std::vector<int> pids = list_ids(proc.get());
    std::map<int, detail::ProcStat> seen;  // the guests, with their stat as just read
    for (int pid : pids) {
      Fd fd;
      std::optional<detail::ProcStat> s;
      auto known = guests.find(pid);
      if (known != guests.end()) s = read_stat(known->second.stat, pid);
      if (!s) s = read_stat(fd, pid);
      if (!s) continue;
      Guest* g = guest_of(pid, *s, fd.get() >= 0 ? std::move(fd) : Fd());
      if (!g) continue;
      if (g->stat.get() < 0) g->stat = open_file(fmt::format("proc/{}/stat", pid));
      seen.emplace(pid, std::move(*s));
    }
    std::erase_if(guests, [&](const auto& kv) { return !seen.count(kv.first); });
    std::erase_if(not_qemu, [&](const auto& kv) { return !std::binary_search(pids.begin(), pids.end(), kv.first); });
    match_qmp();
    if (guests.size() > limits::max_domains)
      throw Error(ErrorCode::internal, fmt::format("more than {} QEMU processes (the limit)", limits::max_domains));
    std::size_t cells_left = limits::max_matrix_cells;  // shared by every guest, as in a fixture
    for (auto& [pid, g] : guests)
      if (refresh(g, seen.at(pid))) {
        bound_claim(g, cells_left);
        out.push_back(g.info);
      }
  }

  std::optional<DomainInfo> read_domain(DomainId id) {
    const auto raw = to_integer(id);
    if (raw == 0 || raw > 0x3fffffff) return std::nullopt;
    const int pid = static_cast<int>(raw);
    Fd fd;
    std::optional<detail::ProcStat> s;
    auto known = guests.find(pid);
    if (known != guests.end()) s = read_stat(known->second.stat, pid);
    if (!s) s = read_stat(fd, pid);
    if (!s) {
      guests.erase(pid);
      return std::nullopt;
    }
    Guest* g = guest_of(pid, *s, fd.get() >= 0 ? std::move(fd) : Fd());
    if (!g) return std::nullopt;
    if (!options.qmp_sockets.empty() && g->qmp.empty()) match_qmp();
    if (!refresh(*g, *s)) {
      guests.erase(pid);
      return std::nullopt;
    }
    return g->info;
  }

  /// One thread's metrics (and, for `full`, affinity and cpuset); false when it exited.
  bool read_thread(Guest& g, int tid, VcpuMetrics& m, bool full, CpuMap* hard, CpuMap* limit, std::size_t n) {
    auto it = g.threads.find(tid);
    if (it == g.threads.end()) it = g.threads.try_emplace(tid).first;  // a QMP-reported thread
    Thread& t = it->second;
    int err = 0;
    auto s = read_stat(t.stat, g.pid, tid, &err);
    if (!s) {
      if (!gone(err) && err != 0) throw_errno(err, g, fmt::format("thread {}: reading its stat", tid));
      g.threads.erase(it);
      return false;
    }
    m.state = s->state == 'R'                                                      ? VcpuState::running
              : (s->state == 'Z' || s->state == 'X')                               ? VcpuState::offline
                                                                                   : VcpuState::blocked;
    // An offline (exiting) thread has no current CPU (VcpuMetrics::cpu), whatever stat says.
    m.cpu = m.state != VcpuState::offline && s->processor && *s->processor < n ? s->processor : std::nullopt;
    m.cpu_time = ticks(s->utime + s->stime);
    m.wait_time.reset();
    if (t.schedstat.get() < 0) t.schedstat = open_file(fmt::format("proc/{}/task/{}/schedstat", g.pid, tid));
    if (t.schedstat.get() >= 0 && read_whole(t.schedstat.get(), 128))
      if (auto ss = detail::parse_schedstat(buf)) {
        m.cpu_time = std::chrono::nanoseconds(static_cast<std::int64_t>(ss->run_ns));
        m.wait_time = std::chrono::nanoseconds(static_cast<std::int64_t>(ss->wait_ns));
      }
    if (full) {
      ++calls;
      if (int e = sched->get_affinity(tid, n, *hard); e != 0) {
        if (gone(e)) {
          g.threads.erase(tid);
          return false;
        }
        throw_errno(e, g, fmt::format("thread {}: sched_getaffinity", tid));
      }
      *limit = cpuset_of_thread(g, tid, g.threads.at(tid), n);
    }
    return true;
  }

  [[noreturn]] void throw_errno(int err, const Guest& g, const std::string& what) const {
    throw Error(code_of(err), fmt::format("{}: {}: {}", describe(g.info), what, detail::errno_text(err)));
  }

  /// True when the guest's process is still the one read.
  bool alive(Guest& g) {
    auto s = read_stat(g.stat, g.pid);
    return s && s->starttime == g.starttime;
  }

  void read_vcpus(const HostInfo& h, std::span<VcpuRead> reads, SnapshotScope scope) {
    const std::size_t n = h.cpu_universe();
    const bool full = scope == SnapshotScope::full;
    for (VcpuRead& r : reads) {
      const DomainInfo& info = *r.info;
      DomainSnapshot& s = *r.into;
      auto it = guests.find(static_cast<int>(to_integer(info.id)));
      if (it == guests.end()) {
        r.vanished = true;
        continue;
      }
      Guest& g = it->second;
      s.domain = info;
      s.scope = scope;
      const unsigned V = info.max_vcpus;
      s.vcpus.resize(V);
      if (full) {
        s.hard.reshape(V, n);
        // Every CPU in each soft row, in the matrix's own storage (reused snapshot after
        // snapshot, as hard's and limit's: no assignment of a new matrix).
        s.soft.reshape(V, n);
        const CpuMap every = CpuMap::full(n);
        for (unsigned v = 0; v < V; ++v) s.soft.set_row(v, every);
        s.limit.reshape(V, n);
      } else {
        s.hard.reshape(0, 0);
        s.soft.reshape(0, 0);
      }
      std::optional<std::pair<CpuMap, CpuMap>> emulator;  // what a vcpu not plugged in would inherit
      bool lost_thread = false;
      CpuMap hard(n), limit(n);
      for (unsigned v = 0; v < V; ++v) {
        VcpuMetrics& m = s.vcpus[v];
        m = VcpuMetrics{v, VcpuState::offline, {}, std::nullopt, std::nullopt};
        if (!info.vcpu_problem.empty()) {
          m.state = VcpuState::unknown;
          continue;  // rows stay empty: nothing is guessed
        }
        const int tid = v < g.vcpu_tid.size() ? g.vcpu_tid[v] : 0;
        if (tid != 0 && read_thread(g, tid, m, full, &hard, &limit, n)) {
          if (full) s.hard.set_row(v, hard), s.limit.set_row(v, limit);
          continue;
        }
        if (tid != 0) {
          lost_thread = true;
          m.state = VcpuState::offline;
          m.cpu.reset();  // read_thread may have read it before the thread went
        }
        if (full) {
          if (!emulator) {
            VcpuMetrics unused;
            CpuMap eh(n), el(n);
            if (!read_thread(g, g.pid, unused, true, &eh, &el, n)) {
              r.vanished = true;
              break;
            }
            emulator.emplace(std::move(eh), std::move(el));
          }
          s.hard.set_row(v, emulator->first);
          s.limit.set_row(v, emulator->second);
        }
      }
      if (!r.vanished && lost_thread && !alive(g)) r.vanished = true;
    }
  }

  /// Checks a map for a helper thread (emulator, IOThread) as check_pin does for vcpus.
  void check_thread_pin(const Guest& g, std::string_view what, const CpuMap& cpus, const CpuMap& limit) const {
    const HostInfo& h = *host;
    const std::string who = fmt::format("{}: {}", describe(g.info), what);
    if (cpus.empty()) throw Error(ErrorCode::invalid_argument, fmt::format("{}: empty affinity", who));
    if (auto top = cpus.last(); top && *top >= h.cpu_universe())
      throw Error(ErrorCode::invalid_argument,
                  fmt::format("{}: affinity {} names CPU {}, beyond the host's {} CPUs", who, cpus, *top, h.cpu_universe()));
    if (CpuMap absent = cpus - h.present; !absent.empty())
      throw Error(ErrorCode::invalid_argument, fmt::format("{}: affinity names CPUs {} that are not present", who, absent));
    if (!cpus.intersects(h.online))
      throw Error(ErrorCode::invalid_argument,
                  fmt::format("{}: affinity {} holds no online CPU (online: {})", who, cpus, h.online));
    // As check_pin for vcpus (backend.hpp): CPUs outside the cpuset beside some inside are
    // accepted (the kernel keeps the intersection); none of it online is refused.
    if (!(cpus & limit).intersects(h.online))
      throw Error(ErrorCode::invalid_argument,
                  fmt::format("{}: affinity {} holds no online CPU of its cpuset {}", who, cpus, limit));
  }

  /// sched_setaffinity of one thread, then its affinity read back.
  CpuMap set_thread(Guest& g, int tid, std::string_view what, CpuMap cpus) {
    const std::size_t n = host->cpu_universe();
    cpus.resize(n);
    ++calls;
    if (int e = sched->set_affinity(tid, cpus); e != 0) {
      if (gone(e)) throw Error(ErrorCode::not_found, fmt::format("{}: {}: its thread {} exited", describe(g.info), what, tid));
      throw Error(code_of(e), fmt::format("{}: {}: sched_setaffinity({}) of thread {}: {}", describe(g.info), what,
                                          cpus, tid, detail::errno_text(e)));
    }
    CpuMap back(n);
    ++calls;
    if (int e = sched->get_affinity(tid, n, back); e != 0)
      throw Error(code_of(e), fmt::format("{}: {}: reading back thread {}'s affinity: {}", describe(g.info), what, tid,
                                          detail::errno_text(e)));
    return back;
  }

  Guest& require(DomainId id) {
    auto info = read_domain(id);
    if (!info) throw Error(ErrorCode::not_found, fmt::format("domain {}: no such domain", id));
    return guests.at(static_cast<int>(to_integer(id)));
  }

  std::vector<PinOutcome> set_affinity(const DomainInfo& domain, std::span<const VcpuPinRequest> pins,
                                       AfterFailure after) {
    auto it = guests.find(static_cast<int>(to_integer(domain.id)));
    // A vcpu that is not plugged in cannot be pinned: refuse the batch before any call
    // (nothing attempted but that pin, which failed), so nothing needs rolling back.
    if (it != guests.end())
      for (std::size_t i = 0; i < pins.size(); ++i) {
        const unsigned v = pins[i].vcpu;
        if (v < it->second.vcpu_tid.size() && it->second.vcpu_tid[v] != 0) continue;
        std::vector<PinOutcome> out(pins.size());
        out[i].state = PinOutcome::State::failed;
        out[i].error = Error(ErrorCode::invalid_argument,
                             fmt::format("{}: vcpu {} is not plugged in (it has no thread): hot-plug it first, or "
                                         "pin only the vcpus that are ({} of {} are)",
                                         describe(domain), v, domain.online_vcpus, domain.max_vcpus));
        return out;
      }
    return pin_one_by_one(pins, after, [&](unsigned vcpu, const VcpuPin& pin) -> PinResult {
      const std::string who = describe(domain);
      if (it == guests.end()) throw Error(ErrorCode::not_found, fmt::format("{}: no such domain", who));
      Guest& g = it->second;
      if (pin.soft)
        throw Error(ErrorCode::unsupported, fmt::format("{}: vcpu {}: Linux has no soft affinity", who, vcpu));
      if (!pin.hard) throw Error(ErrorCode::invalid_argument, fmt::format("{}: vcpu {}: no hard map", who, vcpu));
      const int tid = vcpu < g.vcpu_tid.size() ? g.vcpu_tid[vcpu] : 0;
      if (tid == 0)
        throw Error(ErrorCode::invalid_argument,
                    fmt::format("{}: vcpu {} is not plugged in (it has no thread): hot-plug it first, or pin only "
                                "the vcpus that are ({} of {} are)",
                                who, vcpu, domain.online_vcpus, domain.max_vcpus));
      CpuMap back = set_thread(g, tid, fmt::format("vcpu {}", vcpu), *pin.hard);
      return PinResult{back, back};
    });
  }

  std::vector<GuestThread> threads(DomainId id) {
    Guest& g = require(id);
    const std::size_t n = host->cpu_universe();
    std::vector<GuestThread> out;
    auto add = [&](GuestThread::Kind kind, std::string io, int tid) {
      GuestThread t{kind, std::move(io), tid, {}, CpuMap(n), CpuMap(n)};
      if (read_thread(g, tid, t.metrics, true, &t.hard, &t.limit, n)) out.push_back(std::move(t));
    };
    add(GuestThread::Kind::emulator, {}, g.pid);
    const auto io = g.iothreads;
    for (const auto& [name, tid] : io) add(GuestThread::Kind::iothread, name, tid);
    return out;
  }

  CpuMap pin_helper(DomainId id, std::optional<std::string_view> iothread, const CpuMap& cpus) {
    Guest& g = require(id);
    int tid = g.pid;
    std::string what = "emulator thread";
    if (iothread) {
      auto it = std::find_if(g.iothreads.begin(), g.iothreads.end(), [&](const auto& p) { return p.first == *iothread; });
      if (it == g.iothreads.end())
        throw Error(ErrorCode::not_found,
                    fmt::format("{}: no IOThread '{}'", describe(g.info), escape_terminal(*iothread)));
      tid = it->second;
      what = fmt::format("IOThread '{}'", escape_terminal(*iothread));
    }
    const std::size_t n = host->cpu_universe();
    auto t = g.threads.find(tid);
    if (t == g.threads.end()) t = g.threads.try_emplace(tid).first;
    check_thread_pin(g, what, cpus, cpuset_of_thread(g, tid, t->second, n));
    return set_thread(g, tid, what, cpus);
  }
};

// ---- the public face ----

LinuxHypervisor::LinuxHypervisor() : LinuxHypervisor(LinuxOptions{}) {}
LinuxHypervisor::LinuxHypervisor(LinuxOptions options) : impl_(std::make_unique<Impl>(std::move(options))) {
  std::lock_guard lock(impl_->mutex);
  const std::size_t before = impl_->calls;
  impl_->read_host();
  publish_calls(impl_->calls - before);
}
LinuxHypervisor::~LinuxHypervisor() = default;
LinuxHypervisor::LinuxHypervisor(LinuxHypervisor&&) noexcept = default;
LinuxHypervisor& LinuxHypervisor::operator=(LinuxHypervisor&&) noexcept = default;

LinuxHypervisor::Impl& LinuxHypervisor::impl() const {
  if (!impl_) throw Error(ErrorCode::internal, "LinuxHypervisor: used after being moved from");
  return *impl_;
}

bool LinuxHypervisor::guests_present(const std::string& root) {
  std::string proc = root.empty() ? std::string("/") : root;
  if (proc.back() != '/') proc += '/';
  proc += "proc";
  DIR* d = ::opendir(proc.c_str());
  if (!d) return false;
  bool found = false;
  std::string buf;
  while (const dirent* e = ::readdir(d)) {
    if (!detail::parse_decimal(e->d_name, 0x3fffffff)) continue;
    const Fd fd(::open(fmt::format("{}/{}/cmdline", proc, e->d_name).c_str(), O_RDONLY | O_CLOEXEC));
    if (fd.get() < 0) continue;
    char arg0[4096];
    const ssize_t got = ::read(fd.get(), arg0, sizeof arg0);
    if (got <= 0) continue;
    const std::string_view text(arg0, static_cast<std::size_t>(got));
    if (detail::is_qemu_program(text.substr(0, text.find('\0')))) {
      found = true;
      break;
    }
  }
  ::closedir(d);
  return found;
}

std::vector<GuestThread> LinuxHypervisor::threads(DomainId domain) {
  std::lock_guard lock(impl().mutex);
  return impl().threads(domain);
}
CpuMap LinuxHypervisor::pin_emulator(DomainId domain, const CpuMap& cpus) {
  std::lock_guard lock(impl().mutex);
  return impl().pin_helper(domain, std::nullopt, cpus);
}
CpuMap LinuxHypervisor::pin_iothread(DomainId domain, std::string_view id, const CpuMap& cpus) {
  std::lock_guard lock(impl().mutex);
  return impl().pin_helper(domain, id, cpus);
}

std::shared_ptr<const HostInfo> LinuxHypervisor::known_host() {
  std::lock_guard lock(impl().mutex);
  return impl().host ? impl().host : impl().read_host();
}
std::shared_ptr<const HostInfo> LinuxHypervisor::read_host() {
  std::lock_guard lock(impl().mutex);
  return impl().read_host();
}
void LinuxHypervisor::read_domain_list(std::vector<DomainInfo>& out) {
  std::lock_guard lock(impl().mutex);
  impl().read_domain_list(out);
}
std::optional<DomainInfo> LinuxHypervisor::read_domain(DomainId domain) {
  std::lock_guard lock(impl().mutex);
  return impl().read_domain(domain);
}
void LinuxHypervisor::read_vcpus(const HostInfo& host, std::span<VcpuRead> reads, SnapshotScope scope) {
  std::lock_guard lock(impl().mutex);
  impl().read_vcpus(host, reads, scope);
}
std::vector<PinOutcome> LinuxHypervisor::set_affinity(const HostInfo&, const DomainInfo& domain,
                                                      const DomainSnapshot*, std::span<const VcpuPinRequest> pins,
                                                      AfterFailure after) {
  std::lock_guard lock(impl().mutex);
  return impl().set_affinity(domain, pins, after);
}
void LinuxHypervisor::set_online(const HostInfo&, const DomainInfo& domain, const VcpuSet&) {
  throw Error(ErrorCode::unsupported,
              fmt::format("{}: vcpumap cannot set which vcpus of a QEMU guest are online (that is QMP device_add / "
                          "device_del, or virsh setvcpus)",
                          describe(domain)));
}
std::size_t LinuxHypervisor::call_count() const noexcept { return impl_ ? impl_->calls.load() : 0; }
std::chrono::system_clock::time_point LinuxHypervisor::now() { return std::chrono::system_clock::now(); }

static_assert(Backend<LinuxHypervisor> && Hypervisor<LinuxHypervisor>);

}  // namespace vcpumap
