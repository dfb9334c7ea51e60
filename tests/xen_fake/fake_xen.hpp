// tests/xen_fake/fake_xen.hpp — the control API of a fake libxenctrl (and xenstored).
//
// fake_xen.cpp defines the libxenctrl functions src/xen/xen_hypervisor.cpp calls, with the
// C signatures of the real xenctrl.h (it is compiled against it), over a simulated host.
// xen_shim_test links the shim's source with it instead of libxenctrl, so the shim runs
// unchanged against hosts no machine here has: holes in CPU ids, 2000 domains, domains
// that vanish between two calls, failures at any call, hostile replies.
//
// It behaves as Xen 4.17 + libxenctrl 4.17 do where the shim depends on it:
// - physinfo: max_cpu_id = cpus.size() - 1, nr_cpus = online count.
// - cputopoinfo: entries up to the last online CPU; an offline CPU has core and socket
//   XEN_INVALID_*, keeps its node; an absent one has all three invalid.
// - getdomaininfolist(first, max): domains with id >= (domid_t)first, ascending, at most max;
//   max_vcpu_id XEN_INVALID_MAX_VCPU_ID for a domain with no vcpus; the shutdown code bits of
//   `flags` are all ones while the domain has not shut down.
// - getvcpuinfo / getvcpuaffinity / setvcpuaffinity: ESRCH for a missing domain, EINVAL for a
//   vcpu beyond the domain's; maps of xc_get_cpumap_size() bytes. setvcpuaffinity rejects a
//   hard map with no CPU of the domain's cpupool (EINVAL) and writes back, for the maps its
//   flags name only, hard ∩ pool and soft ∩ pool ∩ hard.
// - __HYPERVISOR_multicall (xencall2 on xc_interface_xcall_handle's handle, buffers from
//   xencall_alloc_buffer): runs every entry, stores each one's return value (0 or -errno)
//   in its `result`, returns 0. Entries: XEN_DOMCTL_getvcpuinfo (fills the domctl) and
//   XEN_DOMCTL_getvcpuaffinity (fills nr_bits/8 bytes of each flagged bitmap),
//   XEN_DOMCTL_setvcpuaffinity (as setvcpuaffinity above, on nr_bits/8 bytes); any other
//   op or command, or a domctl of another interface version (-EACCES), fails alone.
// Every function takes one recursive lock, so the fake may be called from several threads
// and hooks may change the host.
#pragma once

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <optional>
#include <string>
#include <vector>

namespace fake_xen {

/// The privileged calls the fake counts. multicall is the __HYPERVISOR_multicall hypercall
/// (through xencall2); the getvcpuinfo / getvcpuaffinity domctls inside it are counted,
/// faulted and hooked as their own kinds too.
enum class Call { physinfo, cputopoinfo, numainfo, getinfolist, getvcpuinfo, getvcpuaffinity, setvcpuaffinity,
                  multicall, cpupool_info, getnodeaffinity };
inline constexpr std::size_t call_kinds = 10;

struct Cpu {
  bool present = true;
  bool online = true;
  std::uint32_t core = 0;
  std::uint32_t socket = 0;
  std::uint32_t node = 0;
};

struct Vcpu {
  bool online = true;
  bool running = false;
  bool blocked = true;
  std::uint64_t cpu_time = 0;  // ns
  std::uint32_t cpu = 0;
  std::vector<bool> hard, soft;  // the plain maps, indexed by CPU id
};

struct Domain {
  std::uint32_t id = 0;
  std::string name;  // its xenstore name; empty: no /local/domain/<id>/name node
  bool running = false, blocked = true, paused = false, shutdown = false, dying = false;
  std::uint32_t shutdown_code = 0;  // used when shutdown
  std::uint64_t cpu_time = 0;       // ns
  std::vector<Vcpu> vcpus;
  /// Hostile: the max_vcpu_id getdomaininfolist reports instead of vcpus.size() - 1.
  std::optional<std::uint32_t> max_vcpu_id;
  /// The id of the domain's cpupool (Host::pools); a pool that does not exist: every online CPU.
  std::uint32_t cpupool = 0;
  /// Its node affinity, by node id; empty: every node of a present CPU.
  std::vector<bool> node_affinity;
  /// libxl's /libxl/<id>/type in xenstore ("pv", "pvh", "hvm"); empty: no such node.
  std::string type = "pv";
  /// Whether /local/domain/<id> exists in xenstore.
  bool xenstore_home = true;
};

/// A cpupool: XEN_SYSCTL_CPUPOOL_OP_INFO / xc_cpupool_getinfo report it.
struct Pool {
  std::uint32_t id = 0;
  std::string name;  // /local/pool/<id>/name; empty: no such node
  std::uint32_t sched_id = 6;  // XEN_SCHEDULER_CREDIT2
  std::vector<bool> cpus;      // by CPU id; empty: every online CPU (Pool-0 of a fresh host)
};

struct Host {
  std::vector<Cpu> cpus;  // CPU ids 0 .. size-1
  std::uint32_t threads_per_core = 1;
  std::uint32_t cores_per_socket = 1;
  std::uint32_t max_node_id = 63;  // physinfo's, MAX_NUMNODES - 1

  // ---- hostile replies ----
  std::optional<std::uint32_t> max_cpu_id;     // physinfo's max_cpu_id instead of size - 1
  std::optional<std::uint32_t> map_cpus;       // xc_get_max_cpus (the CPU map size) instead of size
  std::optional<unsigned> cputopo_count;       // the count cputopoinfo returns (it writes no more than asked)
  int getinfolist_extra = 0;                   // added to what getdomaininfolist returns
  bool getinfolist_descending = false;         // list a batch in descending order
  // ---- failures outside the counted calls ----
  bool open_fails = false;                     // xc_interface_open fails (logging like xencall)
  int open_errno = ENOENT;
  bool cpumap_size_fails = false;              // xc_get_max_cpus fails (EPERM)
  bool domctl_in_multicall = true;             // false: every entry of a multicall gets -ENOSYS
  bool sysctl_in_multicall = true;             // false: every sysctl entry of a multicall gets -ENOSYS
  /// The cpupools; a fresh host has Pool-0 (id 0) of every online CPU.
  std::vector<Pool> pools;
  // ---- xenstore ----
  unsigned xenstore_commit_eagain = 0;         // commits answered EAGAIN before one succeeds
  std::string xenstore_write_error;            // an XS_ERROR every write gets ("EACCES"); empty: none
};

/// A failure of the call `call` (about `domain` and `vcpu` when given): after `skip`
/// matching calls have succeeded, the next `times` matching calls fail with errno `error`.
struct Fault {
  Call call = Call::physinfo;
  std::optional<std::uint32_t> domain;
  std::optional<std::uint32_t> vcpu;
  int error = EIO;
  unsigned skip = 0;
  unsigned times = 1;
};

/// Runs at every counted call, after counting, before the call acts (so a hook removing the
/// domain makes that very call fail with ESRCH). vcpu is 0 for calls about no vcpu; domain
/// is 0 for host-wide calls (getdomaininfolist: its first id).
using Hook = std::function<void(Call call, std::uint32_t domain, std::uint32_t vcpu)>;

/// A fresh host: `cpus` CPUs, all present and online, one socket and node, no domains, no
/// faults, no hook, counts at 0, xenstored running. Starts the fake xenstored (once per
/// process) and points XENSTORED_PATH at it: call it before starting threads.
void reset(std::size_t cpus = 4);
Host& host();
/// Adds a domain of `vcpus` online, blocked vcpus with hard and soft affinity "all".
Domain& add_domain(std::uint32_t id, std::size_t vcpus, std::string name = {});
Domain& domain(std::uint32_t id);
bool has_domain(std::uint32_t id);
void remove_domain(std::uint32_t id);
/// All-true / listed CPU maps of the host's size, for Vcpu::hard/soft and Domain::pool.
std::vector<bool> cpus(std::initializer_list<std::size_t> ids);
std::vector<bool> all_cpus();

void inject(const Fault& fault);
void on_call(Hook hook);

/// Calls of a kind, made alone or inside multicalls.
std::size_t calls(Call call);
/// Hypercalls: the calls made alone, a multicall counting once whatever it holds.
std::size_t total_calls();
/// Hypercall buffers xencall_alloc_buffer handed out and xencall_free_buffer has not freed.
int open_buffers();
void reset_counts();
/// The flags of the last setvcpuaffinity (1 hard, 2 soft, 4 force: XEN_VCPUAFFINITY_*).
std::uint32_t last_setaffinity_flags();
/// Handles xc_interface_open returned and xc_interface_close has not closed.
int open_handles();

enum class Xenstored { running, absent, silent };  // silent: accepts, never answers
void set_xenstored(Xenstored mode);
/// XS_READ requests the fake xenstored received since reset().
std::size_t xenstore_reads();
/// The value a committed xenstore write left at `path`, or nothing.
std::optional<std::string> xenstore_value(const std::string& path);
/// Committed transactions since reset().
std::size_t xenstore_commits();

}  // namespace fake_xen
