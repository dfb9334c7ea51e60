// src/xen/domctl_batch.hpp — domctls and sysctls batched in one __HYPERVISOR_multicall
// (libxencall).
//
//   DomctlBatch mc(xcall, 2, 1, map_bytes);           // 2 entries, 1 pair of CPU maps
//   mc.clear();
//   mc.add(0, XEN_DOMCTL_getvcpuinfo, id).u.getvcpuinfo.vcpu = 0;
//   if (const int err = mc.run(1)) ...;                // the multicall itself failed
//   if (const int err = mc.error(0)) ...;              // entry 0 failed
//
// Layout of the one hypercall buffer: `entries` multicall entries, then a xen_domctl (or
// xen_sysctl: the slots fit either) for each, then `map_pairs` (hard, soft) pairs of CPU maps
// of map_bytes, each padded to a multiple of 8 bytes, then `extra_bytes` for the arrays
// sysctls fill (cputopoinfo, numainfo, cpupool maps) and node maps.
// - No hypercall buffer to be had (xencall_alloc_buffer): Error(internal) with the errno.
// - add() fills a domctl as libxenctrl's do_domctl does, with this build's
//   XEN_DOMCTL_INTERFACE_VERSION; add_sysctl() a sysctl as do_sysctl does
//   (XEN_SYSCTL_INTERFACE_VERSION); clear() before refilling: a debug Xen scribbles over the
//   entries it ran.
// - run(n) returns the errno of the multicall as a whole (EIO when none was set). Xen runs
//   every entry even when one fails: error(i) reads entry i's own result, 0, its errno, or
//   EIO for a result that is no -errno.
// - One batch per multicall in flight: it is not shared between threads.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

#include "xenctrl.hpp"

namespace vcpumap::xen_detail {
#pragma GCC visibility push(hidden)  // internal to libvcpumap, as an anonymous namespace

/// The most domctls in one multicall: 128 vcpus (getvcpuinfo + getvcpuaffinity), 256
/// vcpus' getvcpuinfo (metrics only) or 256 setvcpuaffinity.
constexpr std::size_t domctls_per_multicall = 256;

/// The memory of one __HYPERVISOR_multicall of domctls, in one hypercall buffer from
/// libxencall (locked, never paged out: Xen writes into it), freed on scope exit: up to
/// `entries` multicall entries, a xen_domctl each, and `map_pairs` pairs of CPU maps
/// (hard, soft) of `map_bytes` for the vcpuaffinity domctls.
class DomctlBatch {
 public:
  DomctlBatch(xencall_handle* xcall, std::size_t entries, std::size_t map_pairs, std::size_t map_bytes,
              std::size_t extra_bytes = 0);
  ~DomctlBatch();
  DomctlBatch(const DomctlBatch&) = delete;
  DomctlBatch& operator=(const DomctlBatch&) = delete;

  /// Clears everything: a debug Xen scribbles over the entries it ran.
  void clear();
  /// Entry i: a domctl `cmd` about `domain`, filled as libxenctrl's do_domctl does.
  xen_domctl& add(std::size_t i, std::uint32_t cmd, std::uint32_t domain);
  /// Entry i: a sysctl `cmd`, filled as libxenctrl's do_sysctl does.
  xen_sysctl& add_sysctl(std::size_t i, std::uint32_t cmd);
  /// The extra bytes (8-byte aligned), for what sysctls and node-map domctls fill.
  std::span<std::uint8_t> extra() { return {data_ + extra_offset_, extra_bytes_}; }
  /// Points a vcpuaffinity domctl at map pair k (xenctrl.h's set_xen_guest_handle wants
  /// its own buffer type: the arch's raw form here).
  void use_maps(xen_domctl_vcpuaffinity& aff, std::size_t k);
  std::span<std::uint8_t> hard_map(std::size_t k) { return {data_ + map_offset_ + 2 * k * map_stride_, map_bytes_}; }
  std::span<std::uint8_t> soft_map(std::size_t k) {
    return {data_ + map_offset_ + (2 * k + 1) * map_stride_, map_bytes_};
  }
  xen_domctl& domctl(std::size_t i) { return *reinterpret_cast<xen_domctl*>(data_ + domctl_offset_ + i * slot_); }
  xen_sysctl& sysctl(std::size_t i) { return *reinterpret_cast<xen_sysctl*>(data_ + domctl_offset_ + i * slot_); }

  /// Runs entries 0..n-1 in one multicall: 0, or the errno of the multicall itself.
  int run(std::size_t n);
  /// The errno entry i returned (Xen stores each entry's return value), 0 when it succeeded.
  int error(std::size_t i);

 private:
  multicall_entry_t& entry(std::size_t i) { return reinterpret_cast<multicall_entry_t*>(data_)[i]; }

  xencall_handle* xcall_;
  std::size_t map_bytes_, map_stride_, slot_, domctl_offset_, map_offset_, extra_offset_, extra_bytes_, bytes_;
  std::uint8_t* data_ = nullptr;
};

#pragma GCC visibility pop
}  // namespace vcpumap::xen_detail
