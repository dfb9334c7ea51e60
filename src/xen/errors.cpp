// src/xen/errors.cpp — errno → vcpumap::Error (see errors.hpp).
#include "errors.hpp"

#include <cerrno>
#include <cstring>
#include <string>
#include <string_view>

#include <fmt/format.h>

namespace vcpumap::xen_detail {

namespace {

ErrorCode code_for(int err) {
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

std::string_view hint(int err) {
  return err == EPERM || err == EACCES ? " (run as root in the control domain, dom0)" : "";
}

}  // namespace

std::string errno_text(int err) {
  if (err == 0) return "failed without an errno";
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 32))
  const char* name = strerrorname_np(err);
  const char* desc = strerrordesc_np(err);
  if (name != nullptr && desc != nullptr) return fmt::format("{} ({})", desc, name);
#endif
  return fmt::format("errno {}", err);
}

[[noreturn]] void raise_host(int err, std::string_view what) {
  const ErrorCode code = err == ESRCH ? ErrorCode::internal : code_for(err);
  throw Error(code, fmt::format("{}: {}{}", what, errno_text(err), hint(err)));
}

Error domain_error(int err, std::string_view who, std::string_view what) {
  if (err == ESRCH)
    return Error(ErrorCode::not_found, fmt::format("{}: no such domain (it vanished: {}: {})", who, what, errno_text(err)));
  return Error(code_for(err), fmt::format("{}: {}: {}{}", who, what, errno_text(err), hint(err)));
}
[[noreturn]] void raise_domain(int err, std::string_view who, std::string_view what) {
  throw domain_error(err, who, what);
}

}  // namespace vcpumap::xen_detail
