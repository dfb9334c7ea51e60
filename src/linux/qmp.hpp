// src/linux/qmp.hpp — a small QMP (QEMU Machine Protocol) client for the Linux/KVM backend.
//
//   QmpClient qmp("/run/qemu/g1.qmp", std::chrono::milliseconds(500));   // greeting + capabilities
//   for (const QmpCpu& cpu : qmp.query_cpus_fast()) pin(cpu.thread_id, ...);
//   qmp.execute("device_add", R"({"driver":"qemu64-x86_64-cpu","socket-id":0,"core-id":2,"thread-id":0})");
//
// The peer is QEMU, but treated as hostile: whatever it sends, the client throws a
// vcpumap::Error or returns values that were checked. In particular
// - Every call has one deadline, `timeout` from its start (the constructor's covers connect,
//   greeting and qmp_capabilities). The socket is non-blocking; every wait is a poll() on
//   what is left of the deadline, and the deadline is checked before each message too (a
//   peer flooding events that are already buffered never waits).
// - Messages are framed as JSON objects, not lines (a monitor with pretty=on spans lines):
//   each at most qmp_max_message_bytes (whitespace between messages not counted) and nested
//   at most qmp_max_depth deep; a call reads at most qmp_max_call_bytes. Beyond either:
//   Error(internal), as soon as the limit is passed (not when the message ends).
// - Events ({"event":...}) and replies that are not to this call (another "id", or none) are
//   skipped; key order does not matter; absent optional members are tolerated; a member of
//   the wrong type, or a number out of range, is Error(internal).
// - Every message starts "QMP socket PATH: " (PATH escaped with escape_terminal), then names
//   the command (or "connect", "greeting"): "QMP socket /tmp/g1.qmp: query-cpus-fast: bad
//   reply: entry 1: "thread-id" is 0, not a thread id". Text from QEMU (and a command name)
//   in a message is escaped and cut to 512 bytes.
// - After an Error other than an {"error":...} reply of execute() or a bad argument, the
//   connection is closed (its framing can no longer be trusted): every later call throws
//   Error(internal, "...: the connection was closed by an earlier error").
// - Close-on-exec socket; MSG_NOSIGNAL on send (a closed monitor is an Error, never SIGPIPE).
// - One client per thread at a time (no locking).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "vcpumap/error.hpp"
#include "vcpumap/limits.hpp"

#pragma GCC visibility push(hidden)  // internal to libvcpumap-linux, as an anonymous namespace
namespace vcpumap::detail {

/// The largest QMP message read: 512 bytes for each of limits::max_vcpus vcpus, so that
/// query-cpus-fast of the largest domain vcpumap takes fits (QEMU sends about 150-250 bytes
/// a vcpu). 8 MiB.
inline constexpr std::size_t qmp_max_message_bytes = limits::max_vcpus * 512;
/// The most bytes one call reads (the reply and any events and other replies before it).
inline constexpr std::size_t qmp_max_call_bytes = 4 * qmp_max_message_bytes;
/// The deepest nesting of arrays and objects in a message (query-cpus-fast needs 4).
inline constexpr int qmp_max_depth = 64;
/// The most IOThreads query_iothreads() accepts (QEMU has no limit; this is vcpus' one).
inline constexpr std::size_t qmp_max_iothreads = limits::max_vcpus;

/// One vcpu of query-cpus-fast.
struct QmpCpu {
  unsigned cpu_index = 0;      // "cpu-index", < limits::max_vcpus, unique in a reply
  std::int64_t thread_id = 0;  // the vcpu's host TID ("thread-id"), 1..INT32_MAX
  // Topology from "props" (absent when QEMU does not say), each < limits::max_topology_count.
  std::optional<unsigned> socket_id, core_id, thread_in_core;  // "socket-id", "core-id", props' "thread-id"
  std::string qom_path;  // "qom-path", e.g. /machine/unattached/device[0] (device_del takes it)
};

/// One IOThread of query-iothreads.
struct QmpIothread {
  std::string id;              // its -object iothread,id=... (text from QEMU: escape to print it)
  std::int64_t thread_id = 0;  // its host TID, 1..INT32_MAX
};

/// A connection to one QEMU's QMP monitor, in command mode after the capabilities handshake.
/// Movable (a moved-from client throws Error(internal) from every call), not copyable.
class QmpClient {
 public:
  /// Connects to the UNIX socket `path`, reads the greeting and sends qmp_capabilities, all
  /// within `timeout`. Errors:
  /// - `path` empty, with a NUL byte, or longer than sockaddr_un's sun_path holds (107
  ///   bytes); `timeout` not positive: Error(invalid_argument).
  /// - No such file (ENOENT, ENOTDIR), nobody listening (ECONNREFUSED: QEMU exited, or not a
  ///   socket): Error(not_found). EACCES/EPERM: Error(permission_denied). Other errno:
  ///   Error(internal).
  /// - Connected but no greeting within `timeout`: the monitor takes one client, and a
  ///   second waits unaccepted, so this is how a monitor held by libvirtd answers:
  ///   Error(busy, "QMP socket PATH: no greeting within N ms (the monitor takes one client:
  ///   is libvirtd or another tool using it?)"). Its connection queue full (EAGAIN until the
  ///   deadline): Error(busy) too.
  /// - QEMU closing the connection: Error(not_found, "...: QEMU closed the monitor").
  /// - A greeting that is no {"QMP":{...}} object, or an {"error":...} reply to
  ///   qmp_capabilities: Error(internal).
  QmpClient(const std::string& path, std::chrono::milliseconds timeout);
  ~QmpClient();
  QmpClient(QmpClient&&) noexcept;
  QmpClient& operator=(QmpClient&&) noexcept;
  QmpClient(const QmpClient&) = delete;
  QmpClient& operator=(const QmpClient&) = delete;

  // Every call below throws, besides what it lists:
  // - no reply within the timeout: Error(busy, "...: COMMAND: no reply within N ms"), or
  //   "could not send within N ms" when QEMU does not read;
  // - QEMU closing the connection (EOF, EPIPE, ECONNRESET): Error(not_found, "...: COMMAND:
  //   QEMU closed the monitor"); another errno: Error(internal);
  // - a message that is not JSON, not an object, too long, too deep, or beyond the call's
  //   byte budget; a reply with neither "return" nor "error", or a malformed "error":
  //   Error(internal, "...: COMMAND: bad reply: ...");
  // - an {"error":{"class":C,"desc":D}} reply to a query (all but execute()): QEMU broke a
  //   promise: Error(internal, "...: COMMAND: C: D");
  // - a used-up client (moved from, or closed by an earlier error): Error(internal).

  /// query-cpus-fast: the vcpus, sorted by cpu_index. Error(internal, bad reply) when
  /// "return" is no array, has more than limits::max_vcpus entries, or an entry lacks
  /// "cpu-index", "thread-id" or "qom-path", has one of the wrong type or out of range (see
  /// QmpCpu), or repeats a cpu-index; "props" and each of its members may be absent (other
  /// members are ignored). An empty array is returned as is.
  std::vector<QmpCpu> query_cpus_fast();

  /// query-iothreads: the IOThreads in QEMU's order (often none). Error(internal, bad reply)
  /// when "return" is no array, has more than qmp_max_iothreads entries, or an entry lacks a
  /// string "id" or a "thread-id" in 1..INT32_MAX.
  std::vector<QmpIothread> query_iothreads();

  /// query-status: its "status" ("running", "paused", "prelaunch", "inmigrate", ...), as QEMU
  /// wrote it (escape it to print it). Error(internal, bad reply) when it is absent or no string.
  std::string query_status();

  /// query-name: the guest's -name, "" when it has none (QEMU omits "name"). Error(internal,
  /// bad reply) when "name" is there but no string.
  std::string query_name();

  /// Runs `command` with `arguments_json` (a JSON object's text; empty: no arguments) and
  /// returns its "return" member as compact JSON text ("{}" for most commands). Errors:
  /// - `arguments_json` not a JSON object, or `command` not valid UTF-8: Error(invalid_argument);
  ///   nothing is sent and the client stays usable.
  /// - An {"error":{"class":C,"desc":D}} reply: Error(invalid_argument, "QMP socket PATH:
  ///   COMMAND: C: D"), C and D escaped and cut; the client stays usable.
  std::string execute(std::string_view command, std::string_view arguments_json = {});

 private:
  struct Impl;
  Impl& impl();  // Error(internal) after a move
  std::unique_ptr<Impl> impl_;
};

}  // namespace vcpumap::detail
#pragma GCC visibility pop
