// tests/linux/fake_tree.hpp — a fake /proc and /sys for LinuxHypervisor (vcpumap/linux.hpp),
// and a fake scheduler for its two scheduler calls: the Linux backend under test without
// QEMU, without privileges, without a kernel's timing.
//
//   linux_fake::FakeTree tree;                  // a fresh mkdtemp folder (/dev/shm), removed at the end
//   tree.add_cpu_host("0-3", "0-3", "0-3", {{0, 0, 0, "0-1"}, ...});
//   tree.add_init();                            // PID 1 (systemd), for system_cpus
//   tree.add_qemu(100, {"/usr/bin/qemu-system-x86_64", "-name", "guest=g1,debug-threads=on", "-smp", "2"},
//                 5000, linux_fake::Proc().state('S').ticks(300, 200));        // pid, argv, start time
//   tree.add_thread(100, linux_fake::Thread(101).comm("CPU 0/KVM").state('R').processor(2)
//                            .ticks(100, 50).schedstat(1'500'000'000, 20'000'000).cgroup("0::/g/vcpu0\n"));
//   tree.sched().affinity[101] = tree.cpus("1-2");
//   vcpumap::LinuxHypervisor hv(tree.options());
//
// What the fake holds, as the kernel shows it:
// - sys/devices/system/cpu/{possible,present,online}, cpuN/topology/{physical_package_id,
//   core_id,thread_siblings_list}, sys/devices/system/node/nodeN/cpulist;
// - proc/PID/{cmdline,stat,cgroup} and proc/PID/task/TID/{stat,schedstat,cgroup}: stat lines
//   of proc(5)'s 52 fields (stat_line), cmdline NUL-terminated arguments;
// - proc/self/mountinfo with the cgroup mounts (mount points are absolute, the backend joins
//   them under the root) and the cpuset files under root/sys/fs/cgroup/...
// Files are rewritten in place (the same inode), so a backend that keeps a file open sees
// the new text, as it does with /proc. A thread or process that exits (vanish_*) has its
// files emptied before they are removed: a descriptor kept open on them reads nothing, which
// the backend takes as an exited thread, as a kernel's ESRCH; a fresh open finds no file.
//
// FakeScheduler: tid -> affinity. set_affinity narrows like the kernel (the map ∩ the tid's
// cpuset; EINVAL when nothing of it is left, or no CPU of it is active), get_affinity gives
// the mask ∩ the active CPUs when `active` is set (sched_getaffinity's rule); an unknown tid
// is ESRCH. Every call is recorded; errno values can be injected per tid and call kind, and
// a hook runs before each call (to make a guest vanish midway, for instance).
#pragma once

#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstddef>
#include <cstdint>
#include <algorithm>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include <vcpumap/cpu_map.hpp>
#include <vcpumap/cpulist.hpp>
#include <vcpumap/limits.hpp>
#include <vcpumap/linux.hpp>

namespace linux_fake {

using vcpumap::CpuMap;

/// A proc(5) stat line: all 52 fields, each field where proc(5) puts it (state 3, utime 14,
/// stime 15, num_threads 20, starttime 22, processor 39). The name is written as given:
/// any bytes, parentheses and blanks included (the kernel does not escape it).
inline std::string stat_line(int pid, std::string_view comm, char state, std::uint64_t utime, std::uint64_t stime,
                             std::uint64_t starttime, unsigned processor, unsigned num_threads = 1) {
  // Fields 4..52 after "pid (comm) state"; values of a typical QEMU thread where the backend
  // does not care (ppid 1, its own pgrp and session, no tty, priority 20, ...).
  return fmt::format(
      "{} ({}) {} 1 {} {} 0 -1 4194624 27516 0 19 0 {} {} 0 0 20 0 {} 0 {} 4563918848 195421 "
      "18446744073709551615 94223000000000 94223011776773 140727500000000 0 0 0 0 4096 25103 0 0 0 17 {} 0 0 "
      "0 {} 0 94223012000000 94223012500000 94223030000000 140727500001000 140727500002000 140727500002000 "
      "140727500004000 0\n",
      pid, comm, state, pid, pid, utime, stime, num_threads, starttime, processor, utime / 2);
}

/// The scheduler calls, against a table of affinities instead of the kernel.
class FakeScheduler final : public vcpumap::SchedulerCalls {
 public:
  enum class Kind { get, set };
  struct Call {
    Kind kind;
    int tid;
    CpuMap cpus;  // set: the map given; get: the map returned (empty on an error)
    int result;   // 0 or the errno returned
  };

  explicit FakeScheduler(std::size_t universe) : universe_(universe) {}

  /// tid -> its mask (the kernel's cpus_mask). A tid not here does not exist: ESRCH.
  std::map<int, CpuMap> affinity;
  /// tid -> its cpuset: sets narrow to it. A tid not here is confined by nothing.
  std::map<int, CpuMap> cpuset;
  /// The active CPUs (cpu_active_mask): get returns the mask ∩ these, set refuses a map with
  /// none (EINVAL). Unset: every CPU is active and masks are returned as stored.
  std::optional<CpuMap> active;
  /// errno returned by every get / set of a tid (until erased).
  std::map<int, int> fail_get, fail_set;
  /// Runs before each call; a nonzero return fails that call with that errno.
  std::function<int(Kind, int tid)> hook;
  /// Every call, in order.
  std::vector<Call> calls;

  int get_affinity(int tid, std::size_t universe, CpuMap& cpus) override {
    int err = before(Kind::get, tid);
    if (err == 0 && fail_get.count(tid)) err = fail_get.at(tid);
    if (err == 0 && !affinity.count(tid)) err = ESRCH;
    if (err != 0) {
      calls.push_back({Kind::get, tid, CpuMap(universe), err});
      return err;
    }
    CpuMap m = affinity.at(tid);
    if (active) m &= *active;
    m.resize(universe);
    cpus = m;
    calls.push_back({Kind::get, tid, m, 0});
    return 0;
  }

  int set_affinity(int tid, const CpuMap& cpus) override {
    int err = before(Kind::set, tid);
    if (err == 0 && fail_set.count(tid)) err = fail_set.at(tid);
    if (err == 0 && !affinity.count(tid)) err = ESRCH;
    CpuMap m = cpus;
    m.resize(universe_);
    if (err == 0 && cpuset.count(tid)) m &= cpuset.at(tid);
    if (err == 0 && (m.empty() || (active && !m.intersects(*active)))) err = EINVAL;
    calls.push_back({Kind::set, tid, cpus, err});
    if (err != 0) return err;
    affinity[tid] = m;
    return 0;
  }

  /// The set calls made so far (all, or those of one tid).
  std::vector<Call> sets(std::optional<int> tid = std::nullopt) const {
    std::vector<Call> out;
    for (const Call& c : calls)
      if (c.kind == Kind::set && (!tid || c.tid == *tid)) out.push_back(c);
    return out;
  }
  /// A thread that exits: every later call on it is ESRCH.
  void exit_thread(int tid) {
    affinity.erase(tid);
    cpuset.erase(tid);
  }
  std::size_t universe() const noexcept { return universe_; }
  void set_universe(std::size_t n) noexcept { universe_ = n; }

 private:
  int before(Kind kind, int tid) { return hook ? hook(kind, tid) : 0; }
  std::size_t universe_;
};

/// One thread of a process, as add_thread writes it.
struct ThreadSpec {
  int tid = 0;
  std::string comm = "qemu-system-x86";
  char state = 'S';
  unsigned processor = 0;
  std::uint64_t utime = 0, stime = 0;  // clock ticks
  /// schedstat's run and wait (ns); no run_ns: no schedstat file (a kernel without
  /// CONFIG_SCHED_INFO).
  std::optional<std::uint64_t> run_ns = 0;
  std::uint64_t wait_ns = 0;
  /// /proc/.../cgroup text; empty: the process's.
  std::string cgroup;
  /// The stat line as given (a truncated or hostile one) instead of stat_line's.
  std::optional<std::string> raw_stat;
};

/// ThreadSpec, built a field at a time: Thread(101).comm("CPU 0/KVM").state('R').processor(2).
class Thread {
 public:
  explicit Thread(int tid) { s_.tid = tid; }
  Thread& comm(std::string c) { return s_.comm = std::move(c), *this; }
  Thread& state(char c) { return s_.state = c, *this; }
  Thread& processor(unsigned p) { return s_.processor = p, *this; }
  Thread& ticks(std::uint64_t utime, std::uint64_t stime) { return s_.utime = utime, s_.stime = stime, *this; }
  Thread& schedstat(std::uint64_t run_ns, std::uint64_t wait_ns) {
    return s_.run_ns = run_ns, s_.wait_ns = wait_ns, *this;
  }
  Thread& no_schedstat() { return s_.run_ns.reset(), *this; }
  Thread& cgroup(std::string text) { return s_.cgroup = std::move(text), *this; }
  Thread& raw_stat(std::string line) { return s_.raw_stat = std::move(line), *this; }
  const ThreadSpec& spec() const noexcept { return s_; }

 private:
  ThreadSpec s_;
};

/// A process, as add_process writes it.
struct ProcessSpec {
  std::string comm;  // the main thread's name; empty: argv[0]'s basename, cut to 15 bytes
  char state = 'S';
  std::uint64_t utime = 0, stime = 0;
  std::string cgroup = "0::/\n";
  unsigned processor = 0;
  /// The affinity of the main thread (the emulator): every CPU when empty.
  std::optional<CpuMap> affinity;
  /// The main thread's schedstat.
  std::uint64_t run_ns = 0, wait_ns = 0;
};

/// ProcessSpec, built a field at a time: Proc().state('T').ticks(300, 200).
class Proc {
 public:
  Proc& comm(std::string c) { return s_.comm = std::move(c), *this; }
  Proc& state(char c) { return s_.state = c, *this; }
  Proc& ticks(std::uint64_t utime, std::uint64_t stime) { return s_.utime = utime, s_.stime = stime, *this; }
  Proc& cgroup(std::string text) { return s_.cgroup = std::move(text), *this; }
  Proc& processor(unsigned p) { return s_.processor = p, *this; }
  Proc& affinity(CpuMap m) { return s_.affinity = std::move(m), *this; }
  Proc& schedstat(std::uint64_t run_ns, std::uint64_t wait_ns) {
    return s_.run_ns = run_ns, s_.wait_ns = wait_ns, *this;
  }
  const ProcessSpec& spec() const noexcept { return s_; }

 private:
  ProcessSpec s_;
};

/// One line of /proc/self/mountinfo for a cgroup hierarchy.
struct CgroupMountSpec {
  std::string point;               // absolute: "/sys/fs/cgroup/cpuset"
  bool v2 = true;                  // cgroup2, else cgroup (v1)
  std::string options = "cpuset";  // v1's super options (controllers)
  std::string root = "/";          // the hierarchy path mounted there
};

class FakeTree {
 public:
  /// An empty tree (proc/ and sys/devices/system/cpu/ folders) in a fresh temporary folder;
  /// the scheduler's universe is fixed by add_cpu_host (or `universe` until then).
  explicit FakeTree(std::size_t universe = 8) {
    std::string pattern = (base_dir() / "vcpumap-linux-fake.XXXXXX").string();
    if (!::mkdtemp(pattern.data())) throw std::system_error(errno, std::generic_category(), "mkdtemp");
    root_ = pattern;
    std::filesystem::create_directories(root_ + "/proc");
    std::filesystem::create_directories(root_ + "/sys/devices/system/cpu");
    sched_ = std::make_shared<FakeScheduler>(universe);
  }
  ~FakeTree() {
    std::error_code ec;
    std::filesystem::remove_all(root_, ec);
  }
  FakeTree(const FakeTree&) = delete;
  FakeTree& operator=(const FakeTree&) = delete;

  /// Where trees are made: $VCPUMAP_FAKE_TREE_DIR, else /dev/shm (a tmpfs: a disk
  /// filesystem flushes a file rewritten with O_TRUNC on close, which costs seconds over a
  /// suite), else the temporary folder.
  static std::filesystem::path base_dir() {
    if (const char* d = std::getenv("VCPUMAP_FAKE_TREE_DIR"); d && *d) return d;
    std::error_code ec;
    if (std::filesystem::is_directory("/dev/shm", ec) && ::access("/dev/shm", W_OK | X_OK) == 0) return "/dev/shm";
    return std::filesystem::temp_directory_path();
  }

  const std::string& root() const noexcept { return root_; }
  FakeScheduler& sched() noexcept { return *sched_; }
  const FakeScheduler& sched() const noexcept { return *sched_; }
  std::shared_ptr<FakeScheduler> scheduler() const noexcept { return sched_; }
  /// Options for a LinuxHypervisor over this tree and its scheduler.
  vcpumap::LinuxOptions options() const {
    vcpumap::LinuxOptions o;
    o.root = root_;
    o.scheduler = sched_;
    return o;
  }

  // ---- files ----

  std::string path(std::string_view rel) const { return root_ + "/" + std::string(rel); }
  /// Writes a file (its folders made), in place: a descriptor open on it sees the new text.
  void write(std::string_view rel, std::string_view text) {
    const std::string p = path(rel);
    std::filesystem::create_directories(std::filesystem::path(p).parent_path());
    const int fd = ::open(p.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) throw std::system_error(errno, std::generic_category(), "open " + p);
    std::size_t done = 0;
    while (done < text.size()) {
      const ssize_t n = ::write(fd, text.data() + done, text.size() - done);
      if (n < 0) {
        const int err = errno;
        ::close(fd);
        throw std::system_error(err, std::generic_category(), "write " + p);
      }
      done += static_cast<std::size_t>(n);
    }
    ::close(fd);
  }
  bool exists(std::string_view rel) const { return std::filesystem::exists(path(rel)); }
  /// Empties every file under `rel` (descriptors kept open on them then read nothing) and
  /// removes it.
  void remove(std::string_view rel) {
    const std::string p = path(rel);
    std::error_code ec;
    if (std::filesystem::is_directory(p, ec)) {
      for (const auto& e : std::filesystem::recursive_directory_iterator(p))
        if (e.is_regular_file()) std::filesystem::resize_file(e.path(), 0);
    } else if (std::filesystem::is_regular_file(p, ec)) {
      std::filesystem::resize_file(p, 0);
    }
    std::filesystem::remove_all(p);
  }

  // ---- the host ----

  struct Topology {
    unsigned cpu, package, core;
    std::string siblings;  // thread_siblings_list
  };
  /// The CPU lists and the topology folders of the CPUs given (CPUs not listed have none, as
  /// an offline CPU). Resets the scheduler's universe to max possible + 1.
  void add_cpu_host(std::string_view possible, std::string_view present, std::string_view online,
                    const std::vector<Topology>& topology = {}) {
    write("sys/devices/system/cpu/possible", std::string(possible) + "\n");
    write("sys/devices/system/cpu/present", std::string(present) + "\n");
    write("sys/devices/system/cpu/online", std::string(online) + "\n");
    vcpumap::ParseOptions o;
    o.universe = vcpumap::limits::max_cpus;
    const CpuMap p = CpuMap::parse(possible, o);
    universe_ = *p.last() + 1;
    sched_->set_universe(universe_);
    for (const Topology& t : topology) {
      const std::string dir = fmt::format("sys/devices/system/cpu/cpu{}/topology/", t.cpu);
      write(dir + "physical_package_id", fmt::format("{}\n", t.package));
      write(dir + "core_id", fmt::format("{}\n", t.core));
      write(dir + "thread_siblings_list", t.siblings + "\n");
    }
  }
  /// NUMA node `id` holding `cpulist`.
  void add_node(unsigned id, std::string_view cpulist) {
    write(fmt::format("sys/devices/system/node/node{}/cpulist", id), std::string(cpulist) + "\n");
  }
  std::size_t universe() const noexcept { return universe_; }
  /// A map of this host's universe.
  CpuMap cpus(std::string_view list) const {
    vcpumap::ParseOptions o;
    o.universe = universe_;
    return CpuMap::parse(list, o);
  }

  // ---- cgroups ----

  /// Adds a cgroup hierarchy to proc/self/mountinfo (kept with the others, in order).
  void mount_cgroup(const CgroupMountSpec& m) {
    const std::string escaped = escape_mount(m.point);
    if (m.v2)
      mounts_.push_back(
          fmt::format("{} 24 0:{} {} {} rw,nosuid,nodev,noexec,relatime shared:{} - cgroup2 cgroup2 "
                      "rw,nsdelegate,memory_recursiveprot",
                      30 + mounts_.size(), 26 + mounts_.size(), m.root, escaped, 4 + mounts_.size()));
    else
      mounts_.push_back(fmt::format("{} 24 0:{} {} {} rw,nosuid,nodev,noexec,relatime shared:{} - cgroup cgroup rw,{}",
                                    30 + mounts_.size(), 26 + mounts_.size(), m.root, escaped, 4 + mounts_.size(),
                                    m.options));
    write_mountinfo();
  }
  /// A cgroup2 hierarchy at /sys/fs/cgroup whose root offers `controllers`.
  void mount_cgroup2(std::string_view controllers = "cpuset cpu io memory hugetlb pids rdma misc") {
    mount_cgroup({"/sys/fs/cgroup", true, "", "/"});
    write("sys/fs/cgroup/cgroup.controllers", std::string(controllers) + "\n");
  }
  /// A v1 cpuset hierarchy at /sys/fs/cgroup/cpuset.
  void mount_cpuset_v1() { mount_cgroup({"/sys/fs/cgroup/cpuset", false, "cpuset", "/"}); }
  /// cgroup v2's cpuset.cpus.effective of cgroup `cg` ("/machine.slice").
  void cpuset_v2(std::string_view cg, std::string_view cpulist) {
    write(fmt::format("sys/fs/cgroup{}/cpuset.cpus.effective", cg == "/" ? "" : cg), std::string(cpulist) + "\n");
  }
  /// cgroup v1's cpuset.effective_cpus of cgroup `cg`.
  void cpuset_v1(std::string_view cg, std::string_view cpulist) {
    write(fmt::format("sys/fs/cgroup/cpuset{}/cpuset.effective_cpus", cg == "/" ? "" : cg),
          std::string(cpulist) + "\n");
  }

  // ---- processes and threads ----

  /// A process: proc/PID/{cmdline,stat,cgroup} and its main thread proc/PID/task/PID, with
  /// the scheduler's affinity for it.
  void add_process(int pid, const std::vector<std::string>& argv, std::uint64_t starttime, const Proc& p = Proc()) {
    ProcessSpec spec = p.spec();
    std::string cmdline;
    for (const std::string& a : argv) cmdline += a + std::string(1, '\0');
    if (spec.comm.empty() && !argv.empty()) {
      const auto slash = argv[0].rfind('/');
      spec.comm = argv[0].substr(slash == std::string::npos ? 0 : slash + 1).substr(0, 15);
    }
    const std::string dir = fmt::format("proc/{}/", pid);
    write(dir + "cmdline", cmdline);
    write(dir + "cgroup", spec.cgroup);
    processes_[pid] = Process{spec, starttime, {}};
    write_process_stat(pid);
    add_thread(pid, Thread(pid)
                        .comm(spec.comm)
                        .state(spec.state)
                        .processor(spec.processor)
                        .ticks(spec.utime, spec.stime)
                        .schedstat(spec.run_ns, spec.wait_ns)
                        .cgroup(spec.cgroup));
    sched_->affinity[pid] = spec.affinity ? *spec.affinity : CpuMap::full(universe_);
  }
  /// A QEMU process (argv[0] is its program).
  void add_qemu(int pid, const std::vector<std::string>& argv, std::uint64_t starttime, const Proc& p = Proc()) {
    add_process(pid, argv, starttime, p);
  }
  /// PID 1, systemd, in /init.scope, with `affinity` (every CPU when empty).
  void add_init(std::optional<CpuMap> affinity = std::nullopt, std::string cgroup = "0::/init.scope\n") {
    Proc p;
    p.comm("systemd").ticks(100, 50).cgroup(std::move(cgroup));
    if (affinity) p.affinity(*affinity);
    add_process(1, {"/sbin/init", "splash"}, 1, p);
  }

  /// A thread of process `pid`: proc/PID/task/TID/{stat,schedstat,cgroup}; the scheduler gets
  /// an affinity for it (every CPU) unless it has one.
  void add_thread(int pid, const Thread& thread) {
    ThreadSpec t = thread.spec();
    if (t.cgroup.empty()) t.cgroup = processes_.count(pid) ? processes_.at(pid).spec.cgroup : "0::/\n";
    const std::string dir = fmt::format("proc/{}/task/{}/", pid, t.tid);
    const std::uint64_t start = processes_.count(pid) ? processes_.at(pid).starttime : 1;
    write(dir + "stat",
          t.raw_stat ? *t.raw_stat : stat_line(t.tid, t.comm, t.state, t.utime, t.stime, start, t.processor));
    if (t.run_ns)
      write(dir + "schedstat", fmt::format("{} {} {}\n", *t.run_ns, t.wait_ns, *t.run_ns / 1000000 + 1));
    else if (exists(dir + "schedstat"))
      remove(dir + "schedstat");
    write(dir + "cgroup", t.cgroup);
    if (!sched_->affinity.count(t.tid)) sched_->affinity[t.tid] = CpuMap::full(universe_);
    if (processes_.count(pid)) {
      processes_.at(pid).threads.insert(t.tid);
      if (t.tid != pid) write_process_stat(pid);
    }
  }
  /// A process's state (its stat and its main thread's), e.g. 'T' when stopped.
  void set_process_state(int pid, char state) {
    Process& p = processes_.at(pid);
    p.spec.state = state;
    write_process_stat(pid);
    set_thread_stat(pid, pid,
                    stat_line(pid, p.spec.comm, state, p.spec.utime, p.spec.stime, p.starttime, p.spec.processor));
  }
  /// Rewrites a thread's stat (in place) with new values.
  void set_thread_stat(int pid, int tid, std::string_view text) {
    write(fmt::format("proc/{}/task/{}/stat", pid, tid), text);
  }
  /// A thread exits: its files emptied and removed, its scheduler entry gone.
  void vanish_thread(int pid, int tid) {
    remove(fmt::format("proc/{}/task/{}", pid, tid));
    sched_->exit_thread(tid);
    if (processes_.count(pid)) processes_.at(pid).threads.erase(tid);
  }
  /// A process exits: every file emptied and removed, every thread gone from the scheduler.
  void vanish_process(int pid) {
    if (processes_.count(pid))
      for (int tid : processes_.at(pid).threads) sched_->exit_thread(tid);
    sched_->exit_thread(pid);
    remove(fmt::format("proc/{}", pid));
    processes_.erase(pid);
  }
  /// The threads of a process added so far.
  std::vector<int> threads_of(int pid) const {
    if (!processes_.count(pid)) return {};
    const auto& t = processes_.at(pid).threads;
    return {t.begin(), t.end()};
  }

 private:
  struct Process {
    ProcessSpec spec;
    std::uint64_t starttime = 0;
    std::set<int> threads;
  };

  void write_process_stat(int pid) {
    const Process& p = processes_.at(pid);
    write(fmt::format("proc/{}/stat", pid),
          stat_line(pid, p.spec.comm, p.spec.state, p.spec.utime, p.spec.stime, p.starttime, p.spec.processor,
                    static_cast<unsigned>(std::max<std::size_t>(1, p.threads.size()))));
  }
  void write_mountinfo() {
    std::string text =
        "22 28 0:21 / /proc rw,nosuid,nodev,noexec,relatime shared:12 - proc proc rw\n"
        "23 28 0:5 / /dev rw,nosuid,relatime shared:2 - devtmpfs udev rw,size=4041204k,nr_inodes=1010301,mode=755\n"
        "28 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw,errors=remount-ro\n";
    for (const std::string& m : mounts_) text += m + "\n";
    write("proc/self/mountinfo", text);
  }
  static std::string escape_mount(std::string_view p) {
    std::string out;
    for (char c : p) {
      if (c == ' ')
        out += "\\040";
      else if (c == '\t')
        out += "\\011";
      else if (c == '\n')
        out += "\\012";
      else if (c == '\\')
        out += "\\134";
      else
        out += c;
    }
    return out;
  }

  std::string root_;
  std::size_t universe_ = 8;
  std::shared_ptr<FakeScheduler> sched_;
  std::map<int, Process> processes_;
  std::vector<std::string> mounts_;
};

}  // namespace linux_fake
