// src/xen/domctl_batch.cpp — DomctlBatch: filling, running and reading one multicall of
// domctls (see domctl_batch.hpp).
#include "domctl_batch.hpp"

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstring>

#include <fmt/format.h>

#include "errors.hpp"
#include "vcpumap/error.hpp"
#include "xenctrl.hpp"

namespace vcpumap::xen_detail {

namespace {
constexpr std::size_t round8(std::size_t n) { return (n + 7) / 8 * 8; }
}  // namespace

DomctlBatch::DomctlBatch(xencall_handle* xcall, std::size_t entries, std::size_t map_pairs, std::size_t map_bytes,
                         std::size_t extra_bytes)
    : xcall_(xcall),
      map_bytes_(map_bytes),
      map_stride_(round8(map_bytes)),
      slot_(round8(std::max(sizeof(xen_domctl), sizeof(xen_sysctl)))),
      domctl_offset_(entries * sizeof(multicall_entry_t)),
      map_offset_(domctl_offset_ + entries * slot_),
      extra_offset_(map_offset_ + 2 * map_pairs * map_stride_),
      extra_bytes_(round8(extra_bytes)),
      bytes_(extra_offset_ + extra_bytes_) {
  errno = 0;
  data_ = static_cast<std::uint8_t*>(xencall_alloc_buffer(xcall, bytes_));
  if (data_ == nullptr)
    throw Error(ErrorCode::internal, fmt::format("no hypercall buffer of {} bytes (xencall_alloc_buffer): {}",
                                                 bytes_, errno_text(errno)));
}

DomctlBatch::~DomctlBatch() { xencall_free_buffer(xcall_, data_); }

void DomctlBatch::clear() { std::memset(data_, 0, bytes_); }

xen_domctl& DomctlBatch::add(std::size_t i, std::uint32_t cmd, std::uint32_t domain) {
  xen_domctl& op = domctl(i);
  op.cmd = cmd;
  op.interface_version = XEN_DOMCTL_INTERFACE_VERSION;
  op.domain = static_cast<domid_t>(domain);
  entry(i).op = __HYPERVISOR_domctl;
  entry(i).args[0] = reinterpret_cast<std::uintptr_t>(&op);
  return op;
}

xen_sysctl& DomctlBatch::add_sysctl(std::size_t i, std::uint32_t cmd) {
  xen_sysctl& op = sysctl(i);
  op.cmd = cmd;
  op.interface_version = XEN_SYSCTL_INTERFACE_VERSION;
  entry(i).op = __HYPERVISOR_sysctl;
  entry(i).args[0] = reinterpret_cast<std::uintptr_t>(&op);
  return op;
}

void DomctlBatch::use_maps(xen_domctl_vcpuaffinity& aff, std::size_t k) {
  set_xen_guest_handle_raw(aff.cpumap_hard.bitmap, hard_map(k).data());
  set_xen_guest_handle_raw(aff.cpumap_soft.bitmap, soft_map(k).data());
  aff.cpumap_hard.nr_bits = aff.cpumap_soft.nr_bits = static_cast<std::uint32_t>(map_bytes_ * 8);
}

int DomctlBatch::run(std::size_t n) {
  errno = 0;
  if (xencall2(xcall_, __HYPERVISOR_multicall, reinterpret_cast<std::uintptr_t>(&entry(0)), n) == 0) return 0;
  return errno != 0 ? errno : EIO;
}

int DomctlBatch::error(std::size_t i) {
  const auto result = static_cast<long>(entry(i).result);
  if (result == 0) return 0;
  return result < 0 && result > -4096 ? static_cast<int>(-result) : EIO;
}

}  // namespace vcpumap::xen_detail
