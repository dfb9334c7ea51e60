// src/xen/errors.cpp — errno → vcpumap::Error (see errors.hpp).
#include "errors.hpp"

#include <cerrno>
#include <cstring>
#include <string>
#include <string_view>

#include <fmt/format.h>

#include "vcpumap/detail/system_error.hpp"

namespace vcpumap::xen_detail {

namespace {

constexpr ErrorCode code_for(int err) noexcept { return detail::error_code_for_errno(err); }

std::string_view hint(int err) {
  return err == EPERM || err == EACCES ? " (run as root in the control domain, dom0)" : "";
}

}  // namespace

std::string errno_text(int err) { return detail::errno_text(err); }

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
