// vcpumap/detail/system_error.hpp — what the compiled backends share about errno values:
// the ErrorCode each stands for, and a message text naming it. Internal (namespace detail):
// the backends include it; no public signature uses it.
#pragma once

#include <cerrno>
#include <string>

#include <fmt/format.h>

#include "../error.hpp"

namespace vcpumap::detail {

/// The ErrorCode of an errno a system or hypervisor call failed with: ESRCH → not_found,
/// EPERM/EACCES → permission_denied, EINVAL → invalid_argument, EBUSY/EAGAIN → busy,
/// anything else → internal. (A backend may map more first: Linux's ENOENT is a thread or
/// process gone.)
constexpr ErrorCode error_code_for_errno(int err) noexcept {
  switch (err) {
    case ESRCH: return ErrorCode::not_found;
    case EPERM:
    case EACCES: return ErrorCode::permission_denied;
    case EINVAL: return ErrorCode::invalid_argument;
    case EBUSY:
    case EAGAIN: return ErrorCode::busy;
    default: return ErrorCode::internal;
  }
}

/// "Connection refused (ECONNREFUSED)": glibc's description and name of `err` (glibc 2.32 and
/// later), else "errno N"; "failed without an errno" for 0.
inline std::string errno_text(int err) {
  if (err == 0) return "failed without an errno";
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 32))
  const char* name = strerrorname_np(err);
  const char* desc = strerrordesc_np(err);
  if (name != nullptr && desc != nullptr) return fmt::format("{} ({})", desc, name);
#endif
  return fmt::format("errno {}", err);
}

}  // namespace vcpumap::detail
