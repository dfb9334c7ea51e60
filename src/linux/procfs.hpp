// src/linux/procfs.hpp — the Linux backend's readers of /proc and /sys text: pure functions
// over bytes (no I/O), each bounded and total: any input gives a value or an empty optional,
// never a crash. The fuzz target tests/fuzz/fuzz_procfs.cpp feeds them arbitrary bytes.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#pragma GCC visibility push(hidden)  // internal to libvcpumap-linux, as an anonymous namespace
namespace vcpumap::detail {

/// The fields of /proc/PID/task/TID/stat (proc(5)) the backend uses.
struct ProcStat {
  std::string comm;  // between the first '(' and the LAST ')': a name may hold spaces and parentheses
  char state = '?';  // R S D Z T t X I P ...
  std::uint64_t utime = 0, stime = 0;  // clock ticks
  std::uint64_t starttime = 0;         // clock ticks after boot: with the pid, names a process for good
  std::optional<unsigned> processor;   // field 39: the CPU it last ran on (absent in a truncated line)
};
/// Parses a stat line; empty when it is not one (no parentheses, too few fields, a number
/// that does not fit). The processor is optional: a line cut after starttime still parses.
std::optional<ProcStat> parse_proc_stat(std::string_view text);

/// /proc/.../schedstat: "run_ns wait_ns timeslices".
struct SchedStat {
  std::uint64_t run_ns = 0, wait_ns = 0;
};
std::optional<SchedStat> parse_schedstat(std::string_view text);

/// The cpuset cgroup of a task from /proc/.../cgroup: the v2 line ("0::/path") and the v1
/// line whose controllers include "cpuset" ("3:cpuset:/path"), each when present. Paths are
/// absolute within their hierarchy; a path holding ".." or a NUL byte is dropped.
struct TaskCgroups {
  std::optional<std::string> v2;
  std::optional<std::string> v1_cpuset;
};
TaskCgroups parse_task_cgroups(std::string_view text);

/// Where the cgroup hierarchies are mounted, from /proc/self/mountinfo: the cgroup2 mount
/// and the v1 mount holding the cpuset controller, each with the hierarchy path mounted
/// there (its "root", "/" unless inside a cgroup namespace). Mount points are unescaped
/// (\040 is a blank).
struct CgroupMount {
  std::string point;
  std::string root;
};
struct CgroupMounts {
  std::optional<CgroupMount> v2;
  std::optional<CgroupMount> v1_cpuset;
};
CgroupMounts parse_cgroup_mounts(std::string_view mountinfo);

/// What a QEMU command line (/proc/PID/cmdline: NUL-separated arguments) says about the
/// guest. QEMU option syntax: "-opt value" or "--opt value"; a value is comma-separated
/// key=value properties where ",," is a literal comma, and the first property may be a bare
/// value (the implied key: "-name g1", "-smp 4").
struct QemuCommandLine {
  std::string program;        // argv[0]
  std::string name;           // -name guest=NAME (or -name NAME); empty when none
  bool debug_threads = false; // -name ...,debug-threads=on: vcpu threads are named "CPU n/KVM"
  std::string uuid;           // -uuid, lowercased; empty when none or malformed
  unsigned max_vcpus = 1;     // -smp: maxcpus, else the topology's product, else cpus, else 1
  bool smp_valid = true;      // false when -smp could not be read (then max_vcpus is 1)
};
/// True for a program QEMU runs as: basename "qemu-system-*" or "qemu-kvm".
bool is_qemu_program(std::string_view argv0);
/// Parses a command line; empty when it is not QEMU's (is_qemu_program of argv[0]).
/// max_vcpus is bounded by `max_vcpus_limit` (beyond: smp_valid false).
std::optional<QemuCommandLine> parse_qemu_cmdline(std::string_view cmdline, unsigned max_vcpus_limit);

/// A thread's role from its name (the stat comm): "CPU <n>/KVM" and "CPU <n>/TCG" (also
/// HVF, WHPX, ...: any "CPU <n>/<accel>") are vcpu n; "IO <id>" is IOThread id. Exact
/// matches only: KVM's kernel thread "kvm-nx-lpage-re" and QEMU's "worker" are neither, and
/// "IO mon_iothread" is QEMU's monitor thread (every guest with a QMP monitor has it), which
/// query-iothreads does not list: not an IOThread.
struct ThreadRole {
  enum class Kind { other, vcpu, iothread };
  Kind kind = Kind::other;
  unsigned vcpu = 0;
  std::string iothread;
};
ThreadRole thread_role(std::string_view comm);

/// A decimal number that fits in `max`; empty otherwise (no sign, no blanks, no hex).
std::optional<std::uint64_t> parse_decimal(std::string_view text, std::uint64_t max);

}  // namespace vcpumap::detail
#pragma GCC visibility pop
