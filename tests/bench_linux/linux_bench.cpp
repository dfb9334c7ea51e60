// linux-bench — vcpumap's LinuxHypervisor against libvirt (through libvirtd) and against the
// loops a user writes, on real QEMU guests of this machine. Every time is wall-clock time per
// call (the benchmarks use real time: libvirt's work happens in libvirtd, a script's in its
// children, and neither shows in this process's CPU time).
//
// Two groups, chosen by the environment (run-linux-bench.sh sets both up in turn):
//
// VCPUMAP_BENCH_GUEST=NAME: one libvirt-managed guest NAME (qemu:///system, or
// VCPUMAP_BENCH_URI), started paused, whose vcpus are the QEMU threads "CPU n/TCG" (or /KVM):
//   guest/vcpumap_full          LinuxHypervisor::snapshot(pid, full, into): metrics, hard,
//                               soft, limit (cpuset), effective of every vcpu, `into` reused
//   guest/vcpumap_metrics       the same with SnapshotScope::metrics_only (stat + schedstat)
//   guest/libvirt_getvcpus      virDomainGetVcpus with cpumaps (what `virsh vcpuinfo` calls)
//   guest/libvirt_getvcpus_nomaps  virDomainGetVcpus without cpumaps (for context)
//   guest/libvirt_pininfo       virDomainGetVcpuPinInfo (the stored pins, not the live masks)
//   guest/plain_loop            per vcpu thread (found once, before timing): open, read, close
//                               /proc/PID/task/TID/stat (state, utime, stime, last CPU parsed)
//                               and sched_getaffinity: the loop a user writes
//   guest/plain_kept_open       the strong baseline: the same with the stat files opened once
//                               and re-read with pread
//   guest/floor_same_reads      the system calls vcpumap's full snapshot makes, made directly
//                               (pread of the process stat, lseek + getdents of its task
//                               folder, per vcpu pread of stat, schedstat, cgroup and its
//                               cpuset file + sched_getaffinity), with the same parsing as the
//                               loops: how far the library is from its own system-call floor
//   guest/floor_cached_cgroup   the same without re-reading each thread's /proc/.../cgroup (its
//                               cpuset file kept): what the floor would be with the cgroup
//                               membership cached
//   guest/virsh_vcpuinfo        `virsh vcpuinfo NAME` as a process (a few runs)
//
// VCPUMAP_BENCH_HOST=N: a host of N plain QEMU guests (every QEMU process of the host is
// counted; N is checked):
//   host/vcpumap_all_full       LinuxHypervisor::snapshot_all(full, into): every guest found
//                               in /proc, every vcpu read
//   host/vcpumap_all_metrics    the same, metrics_only
//   host/plain_loop             the plain loop over every vcpu thread of the host (found once)
//   host/plain_kept_open        the strong baseline over them
//   host/script_ps_taskset      bash: `ps -eL -o pid=,tid=,comm=` and `taskset -pc TID` for each
//                               "CPU n/..." thread, output to /dev/null: what a user scripts
//
// Before timing, each group checks that every implementation sees the same threads and the
// same affinity (vcpumap's hard rows = sched_getaffinity = libvirt's cpumaps; the script
// prints one line per vcpu). Counters: syscalls/vcpu (vcpumap: last_call_count() / vcpus;
// the loops: what they make by construction), vcpus, and for libvirt's calls "libvirtd cpu
// us": the CPU time libvirtd's threads spent per call (their schedstat, read before and after
// each run; libvirtd is VCPUMAP_BENCH_DAEMON_PID, else the one process named libvirtd).
// After the run a table gives every time per call and per vcpu, and the ratios against
// vcpumap in wall and CPU time, with the targets (reported, never asserted; the exit status
// says only whether every benchmark ran): vcpumap >= 30x faster than virDomainGetVcpus, and
// no slower than the plain loop. RatioReporter (tests/bench) keeps CPU and wall times and
// the counters.
//
//   linux-bench [--benchmark_repetitions=5 ...]
//   linux-bench --loop=NAME --loop-count=N     runs N calls of benchmark NAME's body and
//                                              nothing else (for strace -c / perf stat: run
//                                              it with N and with 0 and take the difference)
#include <vcpumap/linux.hpp>
#include <vcpumap/model.hpp>

#include "../bench/ratio_reporter.hpp"

#include <benchmark/benchmark.h>
#include <dirent.h>
#include <fcntl.h>
#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>
#include <sched.h>
#include <spawn.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include <fmt/format.h>

extern char** environ;

namespace {

using vcpumap::DomainId;
using vcpumap::LinuxHypervisor;
using vcpumap::SnapshotScope;

[[noreturn]] void fail(const std::string& what) { throw std::runtime_error(what); }

std::optional<std::string> read_text(const std::string& path) {
  std::ifstream in(path);
  if (!in) return std::nullopt;
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

// ---------------------------------------------------------------------------------------
// The vcpu threads, found once (outside any timing) by their names.

struct VcpuThread {
  int pid = 0;
  int tid = 0;
  unsigned vcpu = 0;
};

/// "CPU <n>/TCG" or "CPU <n>/KVM": the vcpu number.
std::optional<unsigned> vcpu_of_comm(std::string_view comm) {
  if (!comm.starts_with("CPU ")) return std::nullopt;
  comm.remove_prefix(4);
  const auto slash = comm.find('/');
  if (slash == std::string_view::npos || slash == 0) return std::nullopt;
  const std::string_view kind = comm.substr(slash + 1);
  if (kind != "TCG" && kind != "KVM") return std::nullopt;
  unsigned n = 0;
  for (char c : comm.substr(0, slash)) {
    if (c < '0' || c > '9') return std::nullopt;
    n = n * 10 + static_cast<unsigned>(c - '0');
  }
  return n;
}

std::vector<int> numeric_entries(const std::string& dir) {
  std::vector<int> ids;
  DIR* d = ::opendir(dir.c_str());
  if (!d) return ids;
  while (const dirent* e = ::readdir(d)) {
    char* end = nullptr;
    const long v = std::strtol(e->d_name, &end, 10);
    if (end != e->d_name && *end == '\0' && v > 0) ids.push_back(static_cast<int>(v));
  }
  ::closedir(d);
  std::sort(ids.begin(), ids.end());
  return ids;
}

/// The vcpu threads of one process, by vcpu number.
std::vector<VcpuThread> vcpu_threads_of(int pid) {
  std::vector<VcpuThread> out;
  for (int tid : numeric_entries(fmt::format("/proc/{}/task", pid))) {
    const auto comm = read_text(fmt::format("/proc/{}/task/{}/comm", pid, tid));
    if (!comm) continue;
    if (auto v = vcpu_of_comm(trim(*comm))) out.push_back({pid, tid, *v});
  }
  std::sort(out.begin(), out.end(), [](const VcpuThread& a, const VcpuThread& b) { return a.vcpu < b.vcpu; });
  return out;
}

/// Every QEMU process of the host (argv[0] names qemu-system-* or qemu-kvm).
std::vector<int> qemu_pids() {
  std::vector<int> pids;
  for (int pid : numeric_entries("/proc")) {
    const auto cmd = read_text(fmt::format("/proc/{}/cmdline", pid));
    if (!cmd || cmd->empty()) continue;
    const std::string arg0 = cmd->substr(0, cmd->find('\0'));
    const std::string base = arg0.substr(arg0.rfind('/') + 1);
    if (base.starts_with("qemu-system-") || base == "qemu-kvm") pids.push_back(pid);
  }
  return pids;
}

// ---------------------------------------------------------------------------------------
// The plain loops: what a user writes with POSIX calls.

/// What the loops take from a thread's stat: state, utime, stime, the CPU it last ran on.
struct StatFields {
  char state = '?';
  unsigned long utime = 0, stime = 0;
  long cpu = -1;
};

/// Parses /proc/.../stat as proc(5) says: after the last ')', field 3 is the state, 14 utime,
/// 15 stime, 39 processor.
bool parse_stat(const char* buf, std::size_t len, StatFields& out) {
  const char* end = buf + len;
  const char* p = end;
  while (p > buf && p[-1] != ')') --p;
  if (p == buf) return false;
  // p is just after ')': " S ppid ..." -> field 3 follows.
  int field = 2;
  while (p < end) {
    while (p < end && *p == ' ') ++p;
    if (p >= end) break;
    ++field;
    const char* tok = p;
    while (p < end && *p != ' ') ++p;
    if (field == 3) out.state = *tok;
    else if (field == 14) out.utime = std::strtoul(tok, nullptr, 10);
    else if (field == 15) out.stime = std::strtoul(tok, nullptr, 10);
    else if (field == 39) {
      out.cpu = std::strtol(tok, nullptr, 10);
      return true;
    }
  }
  return false;
}

struct PlainLoop {
  std::vector<VcpuThread> threads;
  std::vector<StatFields> stat;
  std::vector<cpu_set_t> affinity;
  std::vector<int> fds;  // the strong baseline's kept-open stat files
  std::string error;

  explicit PlainLoop(std::vector<VcpuThread> t)
      : threads(std::move(t)), stat(threads.size()), affinity(threads.size()) {}
  PlainLoop(const PlainLoop&) = delete;
  PlainLoop& operator=(const PlainLoop&) = delete;
  ~PlainLoop() {
    for (int fd : fds) ::close(fd);
  }

  /// open + read + close of each stat, sched_getaffinity of each thread: 4 system calls a vcpu.
  bool run_plain() {
    char path[64], buf[1024];
    for (std::size_t i = 0; i < threads.size(); ++i) {
      std::snprintf(path, sizeof path, "/proc/%d/task/%d/stat", threads[i].pid, threads[i].tid);
      const int fd = ::open(path, O_RDONLY | O_CLOEXEC);
      if (fd < 0) return set_error(path);
      const ssize_t n = ::read(fd, buf, sizeof buf);
      ::close(fd);
      if (n <= 0 || !parse_stat(buf, static_cast<std::size_t>(n), stat[i])) return set_error(path);
      if (::sched_getaffinity(threads[i].tid, sizeof(cpu_set_t), &affinity[i]) != 0)
        return set_error("sched_getaffinity");
    }
    return true;
  }

  /// pread of each kept-open stat + sched_getaffinity: 2 system calls a vcpu (the files are
  /// opened by the first call, which the self-check makes).
  bool run_kept_open() {
    if (fds.empty()) {
      for (const VcpuThread& t : threads) {
        const int fd = ::open(fmt::format("/proc/{}/task/{}/stat", t.pid, t.tid).c_str(), O_RDONLY | O_CLOEXEC);
        if (fd < 0) return set_error("open stat");
        fds.push_back(fd);
      }
    }
    char buf[1024];
    for (std::size_t i = 0; i < threads.size(); ++i) {
      const ssize_t n = ::pread(fds[i], buf, sizeof buf, 0);
      if (n <= 0 || !parse_stat(buf, static_cast<std::size_t>(n), stat[i])) return set_error("pread stat");
      if (::sched_getaffinity(threads[i].tid, sizeof(cpu_set_t), &affinity[i]) != 0)
        return set_error("sched_getaffinity");
    }
    return true;
  }

  bool set_error(const std::string& what) {
    error = fmt::format("{}: {}", what, std::strerror(errno));
    return false;
  }
};

/// The system calls vcpumap's full snapshot of one guest makes, made directly: the floor the
/// library could reach with its own design (files kept open, read with pread).
struct SameReadsFloor {
  struct Vcpu {
    int tid = 0;
    int stat = -1, schedstat = -1, cgroup = -1, cpuset = -1;
    StatFields fields;
    unsigned long long run_ns = 0, wait_ns = 0;
    cpu_set_t affinity;
  };
  int pid = 0;
  int proc_stat = -1, task_dir = -1;
  std::vector<Vcpu> vcpus;
  std::string error;

  SameReadsFloor(int p, const std::vector<VcpuThread>& threads) : pid(p) {
    proc_stat = must_open(fmt::format("/proc/{}/stat", pid), O_RDONLY);
    task_dir = must_open(fmt::format("/proc/{}/task", pid), O_RDONLY | O_DIRECTORY);
    for (const VcpuThread& t : threads) {
      Vcpu v;
      v.tid = t.tid;
      const std::string base = fmt::format("/proc/{}/task/{}/", pid, t.tid);
      v.stat = must_open(base + "stat", O_RDONLY);
      v.schedstat = must_open(base + "schedstat", O_RDONLY);
      v.cgroup = must_open(base + "cgroup", O_RDONLY);
      v.cpuset = open_cpuset(base + "cgroup");
      vcpus.push_back(v);
    }
  }
  SameReadsFloor(const SameReadsFloor&) = delete;
  SameReadsFloor& operator=(const SameReadsFloor&) = delete;
  ~SameReadsFloor() {
    for (const Vcpu& v : vcpus)
      for (int fd : {v.stat, v.schedstat, v.cgroup, v.cpuset}) ::close(fd);
    ::close(proc_stat);
    ::close(task_dir);
  }
  static int must_open(const std::string& path, int flags) {
    const int fd = ::open(path.c_str(), flags | O_CLOEXEC);
    if (fd < 0) fail(fmt::format("{}: {}", path, std::strerror(errno)));
    return fd;
  }
  /// The thread's cpuset file (v1 cpuset hierarchy, else v2), or its nearest ancestor's.
  static int open_cpuset(const std::string& cgroup_file) {
    const auto text = read_text(cgroup_file);
    if (!text) fail(cgroup_file + ": unreadable");
    std::istringstream lines(*text);
    std::string line, v1, v2;
    while (std::getline(lines, line)) {
      const auto a = line.find(':'), b = line.find(':', a + 1);
      if (a == std::string::npos || b == std::string::npos) continue;
      const std::string ctl = line.substr(a + 1, b - a - 1), path = line.substr(b + 1);
      if (ctl == "cpuset" || ctl.find("cpuset,") == 0 || ctl.find(",cpuset") != std::string::npos) v1 = path;
      if (line.starts_with("0::")) v2 = path;
    }
    auto walk = [](std::string root, std::string rel, const char* file) {
      for (;;) {
        const int fd = ::open((root + rel + "/" + file).c_str(), O_RDONLY | O_CLOEXEC);
        if (fd >= 0 || rel.empty() || rel == "/") return fd;
        rel = rel.substr(0, rel.rfind('/'));
      }
    };
    int fd = -1;
    if (!v1.empty()) fd = walk("/sys/fs/cgroup/cpuset", v1 == "/" ? "" : v1, "cpuset.effective_cpus");
    if (fd < 0 && !v2.empty()) fd = walk("/sys/fs/cgroup", v2 == "/" ? "" : v2, "cpuset.cpus.effective");
    if (fd < 0) fail(cgroup_file + ": no cpuset file found");
    return fd;
  }

  /// `cgroup`: re-read each thread's /proc/.../cgroup, as vcpumap does on every snapshot;
  /// false: keep the cpuset file found before (what a cached cgroup membership would cost).
  bool run(bool cgroup = true) {
    char buf[4096];
    StatFields proc;
    ssize_t n = ::pread(proc_stat, buf, sizeof buf, 0);
    if (n <= 0 || !parse_stat(buf, static_cast<std::size_t>(n), proc)) return set_error("pread /proc/PID/stat");
    if (::lseek(task_dir, 0, SEEK_SET) != 0) return set_error("lseek task");
    alignas(8) char dents[16384];
    long threads = 0;
    for (;;) {
      const long got = ::syscall(SYS_getdents64, task_dir, dents, sizeof dents);
      if (got <= 0) break;
      threads += got;
    }
    benchmark::DoNotOptimize(threads);
    for (Vcpu& v : vcpus) {
      n = ::pread(v.stat, buf, sizeof buf, 0);
      if (n <= 0 || !parse_stat(buf, static_cast<std::size_t>(n), v.fields)) return set_error("pread stat");
      n = ::pread(v.schedstat, buf, sizeof buf - 1, 0);
      if (n <= 0) return set_error("pread schedstat");
      buf[n] = '\0';
      char* end = nullptr;
      v.run_ns = std::strtoull(buf, &end, 10);
      v.wait_ns = std::strtoull(end, nullptr, 10);
      if (::sched_getaffinity(v.tid, sizeof(cpu_set_t), &v.affinity) != 0) return set_error("sched_getaffinity");
      if (cgroup) {
        n = ::pread(v.cgroup, buf, sizeof buf, 0);
        if (n <= 0) return set_error("pread cgroup");
      }
      n = ::pread(v.cpuset, buf, sizeof buf, 0);
      if (n <= 0) return set_error("pread cpuset");
      benchmark::DoNotOptimize(buf);
    }
    return true;
  }
  bool set_error(const std::string& what) {
    error = fmt::format("{}: {}", what, std::strerror(errno));
    return false;
  }
};

// ---------------------------------------------------------------------------------------
// Subprocesses (the script and virsh): wall time of the whole process tree.

std::string run_process(const std::vector<std::string>& argv, bool capture) {
  std::vector<char*> args;
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  int pipefd[2] = {-1, -1};
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  if (capture) {
    if (::pipe2(pipefd, O_CLOEXEC) != 0) fail("pipe2");
    posix_spawn_file_actions_adddup2(&fa, pipefd[1], STDOUT_FILENO);
  } else {
    posix_spawn_file_actions_addopen(&fa, STDOUT_FILENO, "/dev/null", O_WRONLY, 0);
  }
  pid_t pid = 0;
  const int rc = ::posix_spawn(&pid, args[0], &fa, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  if (rc != 0) fail(fmt::format("posix_spawn {}: {}", argv[0], std::strerror(rc)));
  std::string out;
  if (capture) {
    ::close(pipefd[1]);
    char buf[4096];
    for (;;) {
      const ssize_t n = ::read(pipefd[0], buf, sizeof buf);
      if (n <= 0) break;
      out.append(buf, static_cast<std::size_t>(n));
    }
    ::close(pipefd[0]);
  }
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
    fail(fmt::format("{} ... exited with status {}", argv.size() > 2 ? argv[2] : argv[0], status));
  return out;
}

/// What a user scripts for the host: every thread with ps, then taskset for each vcpu thread.
const char* const ps_taskset_script =
    "ps -eL -o pid=,tid=,comm= | while read -r pid tid comm; do\n"
    "  case $comm in 'CPU '*/TCG|'CPU '*/KVM) taskset -pc \"$tid\" ;; esac\n"
    "done";

// ---------------------------------------------------------------------------------------
// libvirt plumbing.

std::string libvirt_error(std::string_view what) {
  const char* msg = virGetLastErrorMessage();
  return fmt::format("{}: {}", what, msg ? msg : "unknown error");
}
void no_error_printing(void*, virErrorPtr) {}

// ---------------------------------------------------------------------------------------
// The cases. Each benchmark body is an Op: one call, false (with `error`) on a failure; the
// same bodies run under Google Benchmark and under --loop.

struct Op {
  std::string name;
  std::function<bool()> body;
  std::function<std::string()> error;
  std::function<double()> syscalls_per_vcpu;  // after a call; empty: not known
  unsigned vcpus = 0;                          // how many vcpus one call reads
  int fixed_iterations = 0;                    // subprocesses: a few runs, not a time budget
  bool in_process = true;                      // false: the work is in libvirtd or children
  bool daemon = false;                         // a libvirt call: libvirtd's CPU time is measured too
};

/// libvirtd's PID: VCPUMAP_BENCH_DAEMON_PID, else the one process named libvirtd (0: none).
int daemon_pid() {
  static const int pid = [] {
    if (const char* e = std::getenv("VCPUMAP_BENCH_DAEMON_PID"); e && *e) return std::atoi(e);
    std::vector<int> found;
    for (int p : numeric_entries("/proc"))
      if (auto comm = read_text(fmt::format("/proc/{}/comm", p)); comm && trim(*comm) == "libvirtd") found.push_back(p);
    return found.size() == 1 ? found.front() : 0;
  }();
  return pid;
}

/// CPU time (ns) of every thread of a process so far: the sum of their schedstat run times.
double process_cpu_ns(int pid) {
  double ns = 0;
  for (int tid : numeric_entries(fmt::format("/proc/{}/task", pid)))
    if (auto t = read_text(fmt::format("/proc/{}/task/{}/schedstat", pid, tid))) ns += std::strtod(t->c_str(), nullptr);
  return ns;
}

struct GuestCase {
  std::string name;
  std::string uri;
  virConnectPtr conn = nullptr;
  virDomainPtr dom = nullptr;
  int pid = 0;
  int nvcpus = 0;
  int maplen = 0;
  std::vector<unsigned char> maps, pinmaps;
  std::vector<virVcpuInfo> info;
  LinuxHypervisor hv;
  vcpumap::DomainSnapshot snap_full, snap_metrics;
  std::unique_ptr<PlainLoop> loop;
  std::unique_ptr<SameReadsFloor> floor;

  GuestCase(std::string n, std::string u) : name(std::move(n)), uri(std::move(u)) {
    conn = virConnectOpen(uri.c_str());
    if (!conn) fail(libvirt_error("virConnectOpen(" + uri + ")"));
    dom = virDomainLookupByName(conn, name.c_str());
    if (!dom) fail(libvirt_error("virDomainLookupByName(" + name + ")"));
    virDomainInfo di;
    if (virDomainGetInfo(dom, &di) != 0) fail(libvirt_error("virDomainGetInfo"));
    nvcpus = di.nrVirtCpu;
    virNodeInfo node;
    if (virNodeGetInfo(conn, &node) != 0) fail(libvirt_error("virNodeGetInfo"));
    const int host_cpus = virNodeGetCPUMap(conn, nullptr, nullptr, 0);
    if (host_cpus <= 0) fail(libvirt_error("virNodeGetCPUMap"));
    maplen = VIR_CPU_MAPLEN(host_cpus);
    maps.assign(static_cast<std::size_t>(nvcpus) * maplen, 0);
    pinmaps.assign(maps.size(), 0);
    info.assign(static_cast<std::size_t>(nvcpus), virVcpuInfo{});

    // The QEMU process: libvirt's pid file, and vcpumap's domain of that name agree.
    const auto pidfile = read_text("/run/libvirt/qemu/" + name + ".pid");
    for (const vcpumap::DomainInfo& d : hv.list_domains())
      if (d.name == name) pid = static_cast<int>(vcpumap::to_integer(d.id));
    if (pid == 0) fail("vcpumap finds no QEMU process of guest " + name);
    if (pidfile && std::atoi(pidfile->c_str()) != pid)
      fail(fmt::format("/run/libvirt/qemu/{}.pid says {}, vcpumap says {}", name, trim(*pidfile), pid));
    auto threads = vcpu_threads_of(pid);
    if (static_cast<int>(threads.size()) != nvcpus)
      fail(fmt::format("guest {} (pid {}): {} vcpu threads, libvirt says {} vcpus", name, pid, threads.size(), nvcpus));
    loop = std::make_unique<PlainLoop>(threads);
    floor = std::make_unique<SameReadsFloor>(pid, threads);
  }
  GuestCase(const GuestCase&) = delete;
  GuestCase& operator=(const GuestCase&) = delete;
  ~GuestCase() {
    if (dom) virDomainFree(dom);
    if (conn) virConnectClose(conn);
  }

  /// Every implementation reads the same threads and the same affinity.
  void self_check() {
    hv.snapshot(DomainId{static_cast<std::uint32_t>(pid)}, SnapshotScope::full, snap_full);
    if (static_cast<int>(snap_full.vcpus.size()) != nvcpus) fail("vcpumap: vcpu count differs from libvirt's");
    if (virDomainGetVcpus(dom, info.data(), nvcpus, maps.data(), maplen) != nvcpus)
      fail(libvirt_error("virDomainGetVcpus"));
    const std::vector<std::uint8_t> expect = snap_full.hard.to_cpumaps(static_cast<std::size_t>(maplen));
    if (!std::equal(expect.begin(), expect.end(), maps.begin()))
      fail("vcpumap's hard matrix differs from virDomainGetVcpus' cpumaps");
    if (!loop->run_plain()) fail(loop->error);
    if (!loop->run_kept_open()) fail(loop->error);  // opens the kept files, outside any timing
    for (int v = 0; v < nvcpus; ++v) {
      for (int c = 0; c < maplen * 8; ++c) {
        const bool lv = VIR_CPU_USABLE(maps.data(), maplen, v, c);
        const bool pl = c < CPU_SETSIZE && CPU_ISSET(c, &loop->affinity[static_cast<std::size_t>(v)]);
        if (lv != pl) fail(fmt::format("vcpu {}: sched_getaffinity and libvirt differ on CPU {}", v, c));
      }
      const auto& m = snap_full.vcpus[static_cast<std::size_t>(v)];
      if (m.cpu && info[static_cast<std::size_t>(v)].cpu != static_cast<int>(*m.cpu))
        std::fprintf(stderr, "linux-bench: note: vcpu %d last CPU: vcpumap %u, libvirt %d (moved between reads)\n", v,
                     *m.cpu, info[static_cast<std::size_t>(v)].cpu);
    }
    if (virDomainGetVcpuPinInfo(dom, nvcpus, pinmaps.data(), maplen, 0) != nvcpus)
      fail(libvirt_error("virDomainGetVcpuPinInfo"));
    if (!floor->run()) fail(floor->error);
    std::printf("guest %s: pid %d, %d vcpus, host maplen %d; vcpumap, libvirt and sched_getaffinity agree\n",
                name.c_str(), pid, nvcpus, maplen);
  }

  std::vector<Op> ops() {
    const DomainId id{static_cast<std::uint32_t>(pid)};
    const auto V = static_cast<unsigned>(nvcpus);
    auto per_vcpu = [this, V] { return static_cast<double>(hv.last_call_count()) / V; };
    auto none = [] { return std::string(); };
    std::vector<Op> out;
    out.push_back({"guest/vcpumap_full",
                   [this, id] {
                     hv.snapshot(id, SnapshotScope::full, snap_full);
                     benchmark::DoNotOptimize(snap_full.effective.words().data());
                     return true;
                   },
                   none, per_vcpu, V});
    out.push_back({"guest/vcpumap_metrics",
                   [this, id] {
                     hv.snapshot(id, SnapshotScope::metrics_only, snap_metrics);
                     benchmark::DoNotOptimize(snap_metrics.vcpus.data());
                     return true;
                   },
                   none, per_vcpu, V});
    out.push_back({"guest/libvirt_getvcpus",
                   [this] { return virDomainGetVcpus(dom, info.data(), nvcpus, maps.data(), maplen) == nvcpus; },
                   [] { return libvirt_error("virDomainGetVcpus"); }, {}, V, 0, false, true});
    out.push_back({"guest/libvirt_getvcpus_nomaps",
                   [this] { return virDomainGetVcpus(dom, info.data(), nvcpus, nullptr, 0) == nvcpus; },
                   [] { return libvirt_error("virDomainGetVcpus"); }, {}, V, 0, false, true});
    out.push_back({"guest/libvirt_pininfo",
                   [this] { return virDomainGetVcpuPinInfo(dom, nvcpus, pinmaps.data(), maplen, 0) == nvcpus; },
                   [] { return libvirt_error("virDomainGetVcpuPinInfo"); }, {}, V, 0, false, true});
    out.push_back({"guest/plain_loop", [this] { return loop->run_plain(); }, [this] { return loop->error; },
                   [] { return 4.0; }, V});
    out.push_back({"guest/plain_kept_open", [this] { return loop->run_kept_open(); }, [this] { return loop->error; },
                   [] { return 2.0; }, V});
    out.push_back({"guest/floor_same_reads", [this] { return floor->run(); }, [this] { return floor->error; },
                   [V] { return 5.0 + 4.0 / V; }, V});
    out.push_back({"guest/floor_cached_cgroup", [this] { return floor->run(false); }, [this] { return floor->error; },
                   [V] { return 4.0 + 4.0 / V; }, V});
    out.push_back({"guest/virsh_vcpuinfo",
                   [this] {
                     run_process({"/usr/bin/virsh", "-q", "-c", uri, "vcpuinfo", name}, false);
                     return true;
                   },
                   none, {}, V, 10, false});
    return out;
  }
};

struct HostCase {
  unsigned expect_guests;
  LinuxHypervisor hv;
  vcpumap::HostSnapshot all_full, all_metrics;
  std::unique_ptr<PlainLoop> loop;
  unsigned vcpus = 0;

  explicit HostCase(unsigned n) : expect_guests(n) {
    std::vector<VcpuThread> threads;
    const std::vector<int> pids = qemu_pids();
    for (int pid : pids) {
      auto t = vcpu_threads_of(pid);
      threads.insert(threads.end(), t.begin(), t.end());
    }
    if (pids.size() != expect_guests)
      fail(fmt::format("{} QEMU processes on the host, VCPUMAP_BENCH_HOST says {}", pids.size(), expect_guests));
    vcpus = static_cast<unsigned>(threads.size());
    loop = std::make_unique<PlainLoop>(std::move(threads));
  }

  void self_check(bool with_script) {
    hv.snapshot_all(SnapshotScope::full, all_full);
    if (all_full.domains.size() != expect_guests)
      fail(fmt::format("vcpumap lists {} domains, expected {}", all_full.domains.size(), expect_guests));
    unsigned n = 0;
    std::map<int, cpu_set_t> by_tid;
    if (!loop->run_kept_open()) fail(loop->error);  // opens the kept files, outside any timing
    if (!loop->run_plain()) fail(loop->error);
    for (std::size_t i = 0; i < loop->threads.size(); ++i) by_tid[loop->threads[i].tid] = loop->affinity[i];
    for (const vcpumap::DomainSnapshot& d : all_full.domains) {
      if (!d.domain.vcpu_problem.empty()) fail(d.domain.name + ": " + d.domain.vcpu_problem);
      const auto threads = vcpu_threads_of(static_cast<int>(vcpumap::to_integer(d.domain.id)));
      for (const VcpuThread& t : threads) {
        const vcpumap::CpuMap row = d.hard.row(t.vcpu);
        for (std::size_t c = 0; c < row.universe(); ++c)
          if (row.test(c) != static_cast<bool>(CPU_ISSET(c, &by_tid.at(t.tid))))
            fail(fmt::format("{} vcpu {}: vcpumap and sched_getaffinity differ on CPU {}", d.domain.name, t.vcpu, c));
      }
      n += d.domain.online_vcpus;
    }
    if (n != vcpus) fail(fmt::format("vcpumap reads {} vcpus, the plain loop {}", n, vcpus));
    if (with_script) {
      const std::string out = run_process({"/bin/bash", "-c", ps_taskset_script}, true);
      const auto lines = static_cast<unsigned>(std::count(out.begin(), out.end(), '\n'));
      if (lines != vcpus) fail(fmt::format("the ps + taskset script printed {} lines for {} vcpus", lines, vcpus));
    }
    std::printf("host: %zu QEMU guests, %u vcpus; vcpumap, the loops and the script agree\n", all_full.domains.size(),
                vcpus);
  }

  std::vector<Op> ops() {
    const unsigned V = vcpus;
    auto per_vcpu = [this, V] { return static_cast<double>(hv.last_call_count()) / V; };
    auto none = [] { return std::string(); };
    std::vector<Op> out;
    out.push_back({"host/vcpumap_all_full",
                   [this] {
                     hv.snapshot_all(SnapshotScope::full, all_full);
                     benchmark::DoNotOptimize(all_full.domains.data());
                     return all_full.domains.size() == expect_guests;
                   },
                   [this] { return fmt::format("snapshot_all found {} domains", all_full.domains.size()); }, per_vcpu,
                   V});
    out.push_back({"host/vcpumap_all_metrics",
                   [this] {
                     hv.snapshot_all(SnapshotScope::metrics_only, all_metrics);
                     benchmark::DoNotOptimize(all_metrics.domains.data());
                     return all_metrics.domains.size() == expect_guests;
                   },
                   [this] { return fmt::format("snapshot_all found {} domains", all_metrics.domains.size()); },
                   per_vcpu, V});
    out.push_back({"host/plain_loop", [this] { return loop->run_plain(); }, [this] { return loop->error; },
                   [] { return 4.0; }, V});
    out.push_back({"host/plain_kept_open", [this] { return loop->run_kept_open(); }, [this] { return loop->error; },
                   [] { return 2.0; }, V});
    out.push_back({"host/script_ps_taskset",
                   [] {
                     run_process({"/bin/bash", "-c", ps_taskset_script}, false);
                     return true;
                   },
                   none, {}, V, 3, false});
    return out;
  }
};

// ---------------------------------------------------------------------------------------
// Google Benchmark glue and the table.

void run_op(benchmark::State& state, const Op* op) {
  const int daemon = op->daemon ? daemon_pid() : 0;
  const double daemon_before = daemon ? process_cpu_ns(daemon) : 0;
  try {
    for (auto _ : state) {
      if (!op->body()) {
        state.SkipWithError(op->error().c_str());
        return;
      }
      benchmark::ClobberMemory();
    }
  } catch (const std::exception& e) {
    state.SkipWithError(e.what());
    return;
  }
  if (daemon && state.iterations() > 0)
    state.counters["libvirtd cpu us"] =
        (process_cpu_ns(daemon) - daemon_before) / 1e3 / static_cast<double>(state.iterations());
  state.counters["vcpus"] = op->vcpus;
  if (op->syscalls_per_vcpu) state.counters["syscalls/vcpu"] = op->syscalls_per_vcpu();
}

std::string fmt_us(double ns) { return std::isnan(ns) ? "-" : fmt::format("{:.2f}", ns / 1e3); }
std::string fmt_x(double x) { return std::isnan(x) ? "-" : fmt::format("{:.2f}", x); }

void print_group(const RatioReporter& rep, const std::string& title, const std::vector<Op>& ops,
                 const std::string& base, const std::vector<std::pair<std::string, double>>& need_faster,
                 const std::vector<std::string>& no_slower_than, const std::vector<std::string>& compare) {
  bool any = false;
  for (const Op& op : ops) any = any || !std::isnan(rep.wall(op.name));
  if (!any) return;
  const double b = rep.wall(base), bc = rep.time(base);
  std::printf("\n%s: wall time per call (median), us; x = that time / %s's; x cpu = the same\n"
              "with CPU time (this process's, + libvirtd's for a libvirt call; '-' where the work is in children)\n\n",
              title.c_str(), base.c_str());
  std::printf("%-32s %12s %10s %10s %12s %13s %8s %8s\n", "benchmark", "us/call", "us/vcpu", "cpu us",
              "+libvirtd us", "syscalls/vcpu", "x", "x cpu");
  for (const Op& op : ops) {
    const double w = rep.wall(op.name);
    if (std::isnan(w)) continue;
    const double sc = rep.counter(op.name, "syscalls/vcpu");
    const double dc = rep.counter(op.name, "libvirtd cpu us") * 1e3;  // ns
    const double cpu = rep.time(op.name);
    // x cpu: this process's CPU time, plus libvirtd's for a libvirt call.
    const double xc = op.in_process ? cpu / bc : (!std::isnan(dc) ? (cpu + dc) / bc : std::nan(""));
    std::printf("%-32s %12s %10s %10s %12s %13s %8s %8s\n", op.name.c_str(), fmt_us(w).c_str(),
                fmt_us(w / op.vcpus).c_str(), fmt_us(cpu).c_str(), fmt_us(dc).c_str(),
                std::isnan(sc) ? "-" : fmt::format("{:.2f}", sc).c_str(), fmt_x(w / b).c_str(), fmt_x(xc).c_str());
  }
  std::printf("\ntargets (reported, never asserted):\n");
  for (const auto& [other, need] : need_faster) {
    const double x = rep.wall(other) / b;
    if (std::isnan(x)) continue;
    const double xc = (rep.time(other) + rep.counter(other, "libvirtd cpu us") * 1e3) / bc;
    std::printf("  TARGET %-4s %s / %s = %.2f (need >= %.0f%s; in CPU time, libvirtd's included, %.2f)\n",
                x >= need ? "ok" : "MISS", other.c_str(), base.c_str(), x, need,
                x >= need ? "" : fmt::format(": short by {:.1f}x", need / x).c_str(), xc);
  }
  for (const std::string& other : no_slower_than) {
    const double x = rep.wall(other) / b;
    if (std::isnan(x)) continue;
    const double xc = rep.time(other) / bc;
    std::printf("  TARGET %-4s %s / %s = %.2f (need >= 1%s; in CPU time %.2f)\n", x >= 1 ? "ok" : "MISS",
                other.c_str(), base.c_str(), x,
                x >= 1 ? "" : fmt::format(": vcpumap {:.0f}% slower", (1 / x - 1) * 100).c_str(), xc);
  }
  for (const std::string& other : compare) {
    const double x = rep.wall(other) / b;
    if (std::isnan(x)) continue;
    std::printf("  compare     %s / %s = %.2f (%s)\n", other.c_str(), base.c_str(), x,
                x >= 1 ? "vcpumap faster" : fmt::format("vcpumap {:.0f}% slower", (1 / x - 1) * 100).c_str());
  }
}

int run(int argc, char** argv) {
  std::string loop_name;
  long loop_count = -1;
  std::vector<char*> args;
  for (int i = 0; i < argc; ++i) {
    const std::string_view a = argv[i];
    if (a.starts_with("--loop=")) loop_name = std::string(a.substr(7));
    else if (a.starts_with("--loop-count=")) loop_count = std::atol(argv[i] + 13);
    else args.push_back(argv[i]);
  }
  int nargs = static_cast<int>(args.size());
  benchmark::Initialize(&nargs, args.data());
  if (benchmark::ReportUnrecognizedArguments(nargs, args.data())) return 1;
  virSetErrorFunc(nullptr, no_error_printing);

  const char* guest_env = std::getenv("VCPUMAP_BENCH_GUEST");
  const char* uri_env = std::getenv("VCPUMAP_BENCH_URI");
  const char* host_env = std::getenv("VCPUMAP_BENCH_HOST");
  if ((!guest_env || !*guest_env) && (!host_env || !*host_env)) {
    std::fprintf(stderr,
                 "linux-bench: set VCPUMAP_BENCH_GUEST=NAME (a running libvirt guest) and/or VCPUMAP_BENCH_HOST=N "
                 "(the host's N plain QEMU guests); tests/bench_linux/run-linux-bench.sh sets up both\n");
    return 77;
  }

  std::unique_ptr<GuestCase> guest;
  std::unique_ptr<HostCase> host;
  std::vector<Op> guest_ops, host_ops;
  if (guest_env && *guest_env) {
    guest = std::make_unique<GuestCase>(guest_env, uri_env && *uri_env ? uri_env : "qemu:///system");
    guest->self_check();
    guest_ops = guest->ops();
  }
  if (host_env && *host_env) {
    host = std::make_unique<HostCase>(static_cast<unsigned>(std::atoi(host_env)));
    host->self_check(loop_name.empty());
    host_ops = host->ops();
  }

  if (!loop_name.empty()) {  // --loop: N bare calls for strace/perf, no Google Benchmark
    for (const auto* list : {&guest_ops, &host_ops})
      for (const Op& op : *list)
        if (op.name == loop_name) {
          for (long i = 0; i < loop_count; ++i)
            if (!op.body()) fail(op.name + ": " + op.error());
          std::printf("loop %s: %ld calls, %u vcpus each", op.name.c_str(), loop_count, op.vcpus);
          if (op.syscalls_per_vcpu && loop_count > 0) std::printf(", syscalls/vcpu %.2f", op.syscalls_per_vcpu());
          std::printf("\n");
          return 0;
        }
    fail("--loop: no benchmark " + loop_name + " in the groups set up");
  }

  for (const auto* list : {&guest_ops, &host_ops})
    for (const Op& op : *list) {
      auto* b = benchmark::RegisterBenchmark(op.name.c_str(), run_op, &op);
      b->UseRealTime()->Unit(benchmark::kMicrosecond);
      if (op.fixed_iterations > 0) b->Iterations(op.fixed_iterations);
    }

  RatioReporter reporter(isatty(STDOUT_FILENO) ? benchmark::ConsoleReporter::OO_ColorTabular
                                                   : benchmark::ConsoleReporter::OO_Tabular);
  benchmark::RunSpecifiedBenchmarks(&reporter);
  if (guest)
    print_group(reporter, fmt::format("one libvirt guest '{}' ({} vcpus)", guest->name, guest->nvcpus), guest_ops,
                "guest/vcpumap_full",
                {{"guest/libvirt_getvcpus", 30.0}}, {"guest/plain_loop"},
                {"guest/libvirt_getvcpus_nomaps", "guest/libvirt_pininfo", "guest/plain_kept_open",
                 "guest/floor_same_reads", "guest/floor_cached_cgroup", "guest/virsh_vcpuinfo"});
  if (host)
    print_group(reporter, fmt::format("whole host ({} QEMU guests, {} vcpus)", host->expect_guests, host->vcpus),
                host_ops, "host/vcpumap_all_full", {}, {"host/plain_loop"},
                {"host/plain_kept_open", "host/script_ps_taskset"});
  std::fflush(stdout);
  benchmark::Shutdown();
  if (reporter.errors > 0) {
    std::fprintf(stderr, "linux-bench: %zu benchmark runs failed (see above)\n", reporter.errors);
    return 1;
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "linux-bench: %s\n", e.what());
    return 1;
  }
}
