// src/xen/errors.hpp — the errno of a failed libxenctrl call as a vcpumap::Error.
//
//   errno = 0;
//   if (xc_physinfo(xch, &phys) != 0) raise_host(errno, "reading the host's CPUs");
//
// - The mapping (include/vcpumap/xen.hpp): ESRCH → not_found, EPERM/EACCES →
//   permission_denied (the message then says to run as root in dom0), EINVAL →
//   invalid_argument, EBUSY/EAGAIN → busy, anything else → internal.
// - ESRCH of a call about one domain: "domain 3 (xperf2): no such domain (it vanished:
//   ...)". A host-wide call (physinfo, cputopoinfo, numainfo, the domain list) never means
//   "no such domain": its ESRCH is internal.
// - errno 0 (a call that failed without setting it) reads "failed without an errno" and
//   maps to internal; an errno glibc cannot name (or a glibc before 2.32) reads "errno N".
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "vcpumap/error.hpp"

namespace vcpumap::xen_detail {
#pragma GCC visibility push(hidden)  // internal to libvcpumap, as an anonymous namespace

/// "Operation not permitted (EPERM)": glibc's description and name of errno `err`.
std::string errno_text(int err);

/// A failed host-wide call (physinfo, cputopoinfo, numainfo, the domain list).
[[noreturn]] void raise_host(int err, std::string_view what);

/// The error of a failed call about one domain: `who` names it ("domain 3 (xperf2)"),
/// `what` the call.
Error domain_error(int err, std::string_view who, std::string_view what);
[[noreturn]] void raise_domain(int err, std::string_view who, std::string_view what);

#pragma GCC visibility pop
}  // namespace vcpumap::xen_detail
