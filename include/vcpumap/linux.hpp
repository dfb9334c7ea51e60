// vcpumap/linux.hpp — LinuxHypervisor: QEMU/KVM guests on Linux, where each vcpu is a thread.
//
//   vcpumap::LinuxHypervisor linux_host;                       // reads /proc and /sys
//   for (const auto& d : linux_host.snapshot_all().domains)    // every QEMU process
//     fmt::print("{} (pid {}): {}\n", d.domain.name, d.domain.id, d.hard);
//   linux_host.pin_vcpu(pid, 3, {.hard = linux_host.host_info().parse("1")});
//   linux_host.pin_emulator(pid, linux_host.host_info().parse("0"));
//
// Link with vcpumap_linux_dep (meson) / -lvcpumap-linux. On KVM (and QEMU's TCG) there is no
// hypervisor call: the kernel's scheduler is the hypervisor, and this backend reads what it
// knows. Every operation comes from the front layer (backend.hpp), as for every backend.
//
// Domains. A domain is a QEMU process found under /proc: its program (argv[0]) is
// "qemu-system-*" or "qemu-kvm" (a QEMU renamed with -name process=... is still found: the
// command line decides, not the process name). Its DomainId is the process id; a process
// that exits and a new one that gets the same pid are told apart by their start time (the
// old domain is not_found). The name comes from `-name guest=NAME` (or `-name NAME`), the
// uuid from `-uuid`, max_vcpus from `-smp` (maxcpus, else the topology, else cpus), so vcpus
// not yet hot-plugged are there, offline. cpu_time is the process's (every thread: vcpus,
// emulator, I/O). Flags: running when the main thread runs, blocked when it sleeps, paused
// when it is stopped (SIGSTOP) or QMP says paused/prelaunch. A QEMU that exited (a zombie
// not reaped yet) is no domain any more. online_vcpus counts the vcpu threads found (one
// exiting at that moment included; its snapshot row says offline).
//
// Vcpu threads. With a QMP socket for the guest (LinuxOptions::qmp_sockets), the vcpus'
// thread ids come from `query-cpus-fast` (matched to the guest by those ids) and IOThreads'
// from `query-iothreads`. Else from thread names: QEMU started with `-name
// debug-threads=on` (libvirt always passes it) names them "CPU <n>/KVM" ("/TCG" ...) and
// IOThreads "IO <id>" (the kernel keeps 15 bytes of a name: ids longer than 12 bytes are
// cut). A guest with neither is listed with DomainInfo::vcpu_problem saying so; its vcpus
// are never guessed. The emulator thread is the main thread (tid = pid). A monitor takes
// one client: never give a libvirt guest's monitor socket (libvirtd holds it).
//
// Metrics, per vcpu thread: state from /proc/PID/task/TID/stat (R → running, which on Linux
// also means waiting on a run queue; S, D, I, and T, t (stopped) → blocked; no thread, or
// an exiting one → offline), last CPU (stat
// field 39), CPU time and run-queue wait (VcpuMetrics::wait_time: what the guest sees as
// steal) in ns from schedstat (CPU time from stat's ticks where schedstat is missing).
//
// Affinity. hard is each thread's sched_getaffinity. There is no soft affinity
// (Capabilities::soft_affinity false: soft rows hold every CPU; a pin with a soft map is
// refused, ErrorCode::unsupported). limit is the thread's cpuset, Capabilities::vcpu_limit
// "cpuset": cpuset.cpus.effective of its cgroup v2, or v1's cpuset.effective_cpus (the
// nearest ancestor that has the file; every CPU when no cpuset controller is mounted). So
// effective = hard ∩ cpuset ∩ online. A vcpu not plugged in (no thread) reports the
// emulator thread's affinity and cpuset, which a hot-plugged vcpu inherits.
//
// Pins use sched_setaffinity, sized for any CPU count. A hard map with no online CPU in the
// vcpu's cpuset is refused before any call, the error naming the cpuset (the kernel would
// answer a bare EINVAL); CPUs outside it beside some inside are accepted, as the kernel
// accepts them (it runs the thread on the intersection; kernels before 6.2 also store only
// the intersection): the affinity read back and the effective matrix say so. Pinning a vcpu that is
// not plugged in is refused (invalid_argument). The result of a pin is the thread's
// affinity read back. Whole-matrix and sparse pins, with rollback, come from the front.
//
// The host: /sys/devices/system/cpu/{possible,present,online} (a CPU's universe is
// max possible id + 1), topology from cpuN/topology (core_id, physical_package_id,
// thread_siblings_list), NUMA nodes from /sys/devices/system/node/nodeN/cpulist.
// HostInfo::system_cpus is where the host's own processes run: PID 1's affinity (isolcpus
// removed) ∩ the cpuset of system.slice when there is one (systemd's AllowedCPUs), else of
// PID 1's cgroup.
//
// Errors: a guest that exits while read is left out of snapshot_all (not_found alone); a
// vcpu thread that exits is offline; EPERM (another user's guest) is permission_denied;
// ESRCH not_found. Files of /proc are read with bounded sizes; their text is hostile
// (a guest chooses its name and, through its owner, its command line).
//
// Costs: call_count() counts system calls (open, pread, getdents, sched_*affinity, QMP
// socket calls; not the close of a kept file when its thread is gone). Files of the threads
// read before are kept open and re-read with pread; a snapshot reads only what its scope
// needs: per vcpu, stat and schedstat (metrics_only), + sched_getaffinity, the thread's
// cpuset path and its cgroup's effective CPUs (full); per domain its stat and its task list
// (hot-plugged threads are seen at once). A thread's cpuset is found from
// /proc/.../cpuset (else .../cgroup) and the nearest ancestor cgroup with an
// effective-CPUs file, kept open until the thread changes cgroup or the mounts change.
//
// Thread safety: one mutex serializes every primitive of an object (its file cache is
// shared); pins are serialized by the front as for every backend.
#pragma once

#include <chrono>
#include <cstddef>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "affinity_matrix.hpp"
#include "backend.hpp"
#include "cpu_map.hpp"
#include "error.hpp"
#include "hypervisor.hpp"
#include "model.hpp"

namespace vcpumap {

/// The two scheduler calls the backend makes, so tests over a fake /proc tree can stand in
/// for the kernel. Both return 0 or an errno value (ESRCH, EPERM, EINVAL, ...).
class SchedulerCalls {
 public:
  virtual ~SchedulerCalls() = default;
  /// Writes thread `tid`'s affinity into `cpus` (of `universe` CPUs; bits beyond it are
  /// dropped).
  virtual int get_affinity(int tid, std::size_t universe, CpuMap& cpus) = 0;
  /// Sets thread `tid`'s affinity.
  virtual int set_affinity(int tid, const CpuMap& cpus) = 0;
};

/// The real calls: sched_getaffinity / sched_setaffinity, with a mask of any size.
std::shared_ptr<SchedulerCalls> kernel_scheduler_calls();

struct LinuxOptions {
  /// The folder that holds proc/ and sys/: "/" on a real host, a fake tree in tests.
  std::string root = "/";
  /// QMP sockets of guests you started (never libvirt's: it holds them). Each is matched to
  /// its guest by the vcpu thread ids it reports.
  std::vector<std::string> qmp_sockets;
  /// How long one QMP exchange may take.
  std::chrono::milliseconds qmp_timeout{1000};
  /// The scheduler calls; null: the kernel's (kernel_scheduler_calls()).
  std::shared_ptr<SchedulerCalls> scheduler;
};

/// One thread of a guest beside its vcpus: the emulator (QEMU's main thread) or an IOThread.
struct GuestThread {
  enum class Kind { emulator, iothread };
  Kind kind = Kind::emulator;
  std::string iothread;  // the IOThread's id (empty for the emulator)
  int tid = 0;
  VcpuMetrics metrics;   // its vcpu field is 0
  CpuMap hard;           // sched_getaffinity
  CpuMap limit;          // its cpuset
  friend bool operator==(const GuestThread&, const GuestThread&) = default;
};

class LinuxHypervisor : public HypervisorFront<LinuxHypervisor> {
 public:
  /// Reads the host from options.root. Throws Error(hypervisor_unavailable) when its proc/
  /// or sys/devices/system/cpu cannot be read.
  LinuxHypervisor();
  explicit LinuxHypervisor(LinuxOptions options);
  ~LinuxHypervisor();
  LinuxHypervisor(LinuxHypervisor&&) noexcept;
  LinuxHypervisor& operator=(LinuxHypervisor&&) noexcept;
  LinuxHypervisor(const LinuxHypervisor&) = delete;
  LinuxHypervisor& operator=(const LinuxHypervisor&) = delete;

  /// True when /proc under `root` lists at least one QEMU process (what --backend=auto
  /// asks). Makes no scheduler call.
  static bool guests_present(const std::string& root = "/");

  /// The emulator thread and the IOThreads of a domain, with their metrics, affinity and
  /// cpuset. not_found when there is no such domain.
  std::vector<GuestThread> threads(DomainId domain);
  /// Pins the emulator (main) thread; returns its affinity read back. Refused before the
  /// call (invalid_argument) when `cpus` is empty, beyond the host, or has no online CPU in
  /// the thread's cpuset.
  CpuMap pin_emulator(DomainId domain, const CpuMap& cpus);
  /// Pins IOThread `id` (as threads() names it), as pin_emulator; not_found when the domain
  /// has no such IOThread.
  CpuMap pin_iothread(DomainId domain, std::string_view id, const CpuMap& cpus);

  // ---- the backend primitives (backend.hpp); applications use HypervisorFront's members ----

  std::shared_ptr<const HostInfo> known_host();
  std::shared_ptr<const HostInfo> read_host();
  void read_domain_list(std::vector<DomainInfo>& out);
  std::optional<DomainInfo> read_domain(DomainId domain);
  void read_vcpus(const HostInfo& host, std::span<VcpuRead> reads, SnapshotScope scope);
  std::vector<PinOutcome> set_affinity(const HostInfo& host, const DomainInfo& domain, const DomainSnapshot* current,
                                       std::span<const VcpuPinRequest> pins, AfterFailure after);
  /// Not here (Capabilities::set_online is false): a QEMU guest's vcpus are plugged through
  /// QMP device_add / device_del, which vcpumap does not do. Throws Error(unsupported).
  void set_online(const HostInfo& host, const DomainInfo& domain, const VcpuSet& online);
  std::size_t call_count() const noexcept;
  std::chrono::system_clock::time_point now();

 private:
  struct Impl;
  Impl& impl() const;
  std::unique_ptr<Impl> impl_;
};

}  // namespace vcpumap
