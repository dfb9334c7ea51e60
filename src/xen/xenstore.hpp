// src/xen/xenstore.hpp — xenstore over xenstored's socket, with a deadline: domain and pool
// names, the guest type, and the cpu/N/availability writes of set_online.
//
//   XenstoreReader xenstore(options);                 // one per public operation
//   std::string name = domain_name(xenstore, 3);      // "xperf2", else "3"
//
// - Only xenstored's socket: $XENSTORED_PATH, else $XENSTORED_RUNDIR/socket, else
//   /var/run/xenstored/socket. Never /dev/xen/xenbus (libxenstore's fallback), where a read
//   blocks for ever when no xenstored runs (and Xen 4.17 ignores XS_OPEN_SOCKETONLY).
// - One deadline for the whole operation (XenOptions::xenstore_timeout from construction).
//   Any failure (no socket, a reply cut short, of another type or beyond
//   XENSTORE_PAYLOAD_MAX, the deadline passing while it waits) turns the reader off: every
//   later read of the operation is "no value", at no cost.
// - XS_ERROR (no such node, EACCES...) and a path beyond XENSTORE_PAYLOAD_MAX are "no value"
//   for that read only. Watch events and replies to other requests are skipped.
// - XenOptions::domain_names false: no connection, every read is "no value".
// - Not a privileged call: not counted in last_call_count().
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>

#include "vcpumap/xen.hpp"

namespace vcpumap::xen_detail {
#pragma GCC visibility push(hidden)  // internal to libvcpumap, as an anonymous namespace

/// Reads xenstore for one operation. It connects on the first read, to xenstored's socket
/// only (libxenstore's xs_open falls back to /dev/xen/xenbus, where a read blocks for ever
/// when no xenstored runs, and Xen 4.17 ignores XS_OPEN_SOCKETONLY). Any failure, or the
/// deadline passing, turns every later read of the operation into "no value".
class XenstoreReader {
 public:
  explicit XenstoreReader(const XenOptions& options)
      : enabled_(options.domain_names),
        deadline_(std::chrono::steady_clock::now() + options.xenstore_timeout) {}
  ~XenstoreReader();
  XenstoreReader(const XenstoreReader&) = delete;
  XenstoreReader& operator=(const XenstoreReader&) = delete;

  /// The value at `path`, or nothing (no such node, or xenstored unavailable).
  std::optional<std::string> read(const std::string& path);

  /// What a write found: done, xenstored not reachable (or gone quiet), or its error
  /// ("EACCES", "ENOENT", "EAGAIN" after every retry...).
  struct WriteResult {
    bool done = false;
    bool unreachable = false;
    std::string error{};
  };
  /// Writes every (path, value) in one transaction, committed all or nothing; a commit
  /// xenstored answers EAGAIN (another transaction touched the same nodes) is retried, up
  /// to 8 times. Works when the reader was made with domain_names false too.
  WriteResult write_all(std::span<const std::pair<std::string, std::string>> writes);

 private:
  static std::string socket_path();
  bool connect();
  std::nullopt_t fail();
  bool wait(short events);
  bool send_all(const void* data, std::size_t size);
  bool receive(void* data, std::size_t size);
  /// One request and its reply: false when the connection failed (then the reader is off).
  bool exchange(std::uint32_t type, std::uint32_t tx, std::string_view payload, std::uint32_t& reply_type,
                std::string& reply);

  bool enabled_;
  std::chrono::steady_clock::time_point deadline_;
  int fd_ = -1;
  bool failed_ = false;
  std::uint32_t req_id_ = 0;
};

/// The name of a domain: xenstore's /local/domain/<id>/name, else "Domain-0" or the id.
std::string domain_name(XenstoreReader& xenstore, std::uint32_t id);

#pragma GCC visibility pop
}  // namespace vcpumap::xen_detail
