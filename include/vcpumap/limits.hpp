// vcpumap/limits.hpp — the bounds vcpumap puts on numbers that come from outside, in one place.
//
//   if (cpus > vcpumap::limits::max_cpus) ...   // what the fixture reader refuses, and why
//
// The value types have no ceiling (a CpuMap can hold any number of CPUs). These limits guard
// what reads untrusted text — fixture files (fixture.hpp), the tools' arguments — so that a
// 22-byte file cannot ask for gigabytes, and every number is checked against its limit
// before it is used, with an error naming the line and the key. Each is well above what
// real hosts have, and says whose limit it exceeds.
#pragma once

#include <cstddef>
#include <cstdint>

namespace vcpumap::limits {

/// CPU ids of a host: its universe (max CPU id + 1). Xen's NR_CPUS tops out at 16383 and
/// Linux's at 8192; this is 4 times the larger.
inline constexpr std::size_t max_cpus = 65536;
/// NUMA nodes of a host (Linux's MAX_NUMNODES; Xen builds default to 64).
inline constexpr std::size_t max_numa_nodes = 1024;
/// Cpupools of a host (Xen's pool ids are 32-bit; XenHypervisor believes at most 4096 listed).
inline constexpr std::size_t max_cpupools = 4096;
/// Bytes of memory of one NUMA node (2^60, 1 EiB: x86-64 addresses 2^52 bytes in all).
inline constexpr std::uint64_t max_node_memory_bytes = std::uint64_t{1} << 60;
/// Threads per core, cores per socket and sockets: each at most max_cpus.
inline constexpr std::size_t max_topology_count = max_cpus;
/// Vcpus of one domain (Xen allows 8192 at most; KVM 4096 on x86).
inline constexpr std::size_t max_vcpus = 16384;
/// Domains of one host (Xen's domain ids stop at 32751, DOMID_FIRST_RESERVED - 1).
inline constexpr std::size_t max_domains = 65536;
/// Cells of every affinity matrix of a host together, vcpus × CPUs summed over domains:
/// 2^28 bits, 32 MiB per matrix kind (4096 vcpus × 65536 CPUs, or 65536 vcpus × 4096).
inline constexpr std::size_t max_matrix_cells = std::size_t{1} << 28;
/// Bytes of a domain name: xenstore's largest value (XENSTORE_PAYLOAD_MAX).
inline constexpr std::size_t max_name_bytes = 4096;
/// Bytes of a fixture file (about 400 bytes a vcpu is plenty: 64 MiB).
inline constexpr std::size_t max_fixture_bytes = std::size_t{64} << 20;
/// A CPU time in nanoseconds, a vcpu's or a domain's (the sum of its vcpus'): what a signed
/// 64-bit count of nanoseconds holds, about 292 years.
inline constexpr std::int64_t max_cpu_time_ns = INT64_MAX;

}  // namespace vcpumap::limits
