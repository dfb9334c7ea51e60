// src/linux/qmp.cpp — QmpClient (see qmp.hpp): QMP over a non-blocking UNIX socket. The one
// file that sees nlohmann::json: messages are framed here, parsed by it, and every member the
// library uses is checked before it leaves this file.
#include "qmp.hpp"

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <climits>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include <poll.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/un.h>
#include <unistd.h>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "vcpumap/detail/system_error.hpp"
#include "vcpumap/limits.hpp"
#include "vcpumap/text.hpp"

namespace vcpumap::detail {

namespace {

using Json = nlohmann::json;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

/// Text from QEMU (or a caller) quoted in a message: at most this many bytes of it.
constexpr std::size_t max_quoted_bytes = 512;
/// Bytes asked of each recv(): a large reply in few calls, a small buffer for small ones.
constexpr std::size_t recv_chunk_bytes = std::size_t{64} * 1024;
/// A TID: Linux's pid_t is an int, and 0 would mean "the calling thread" to sched_setaffinity.
constexpr std::uint64_t max_thread_id = INT32_MAX;
/// How long to wait before connecting again to a monitor whose connection queue is full.
constexpr milliseconds queue_full_retry{10};

constexpr std::string_view one_client_hint = "the monitor takes one client: is libvirtd or another tool using it?";

/// A reply that broke a promise; what() is the detail after "bad reply: ", escaped already.
struct BadReply : std::runtime_error {
  using std::runtime_error::runtime_error;
};

/// `text` safe for a message: escaped for a terminal, cut to max_quoted_bytes at a UTF-8
/// character boundary (a megabyte error description must not land in a log whole).
std::string quote(std::string_view text) {
  if (text.size() <= max_quoted_bytes) return escape_terminal(text);
  std::size_t cut = max_quoted_bytes;
  while (cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xc0) == 0x80) --cut;  // continuation byte
  return escape_terminal(text.substr(0, cut)) + "...";
}

/// Finds where one top-level JSON object ends in a growing buffer without parsing it, so a
/// message is bounded before it is parsed and a pretty-printed one (spanning lines) frames
/// like a compact one. It tracks strings (and their escapes) and bracket depth only;
/// whether the object is valid JSON is the parser's business. Scanning resumes where it
/// stopped, so a large reply arriving in many pieces is scanned once.
class MessageFramer {
 public:
  enum class Status { need_more, complete, not_an_object, too_deep };

  Status scan(std::string_view buffer) {
    for (; pos_ < buffer.size(); ++pos_) {
      const char c = buffer[pos_];
      if (!started_) {
        if (c == ' ' || c == '\t' || c == '\r' || c == '\n') continue;  // between messages
        if (c != '{') return Status::not_an_object;
        started_ = true;
        start_ = pos_;
        depth_ = 1;
      } else if (in_string_) {
        if (escaped_)
          escaped_ = false;
        else if (c == '\\')
          escaped_ = true;
        else if (c == '"')
          in_string_ = false;
      } else if (c == '"') {
        in_string_ = true;
      } else if (c == '{' || c == '[') {
        if (++depth_ > qmp_max_depth) return Status::too_deep;
      } else if (c == '}' || c == ']') {
        if (--depth_ == 0) {
          ++pos_;
          return Status::complete;
        }
      }
    }
    return Status::need_more;
  }

  /// The complete message (after scan() returned complete).
  std::string_view message(std::string_view buffer) const { return buffer.substr(start_, pos_ - start_); }
  /// Bytes of the buffer consumed by the complete message and the whitespace before it.
  std::size_t end() const { return pos_; }
  /// Bytes of the message scanned so far (all of it, once complete).
  std::size_t pending() const { return started_ ? pos_ - start_ : 0; }
  /// Whether a message has begun (else all the buffer scanned is whitespace).
  bool started() const { return started_; }
  /// Where scanning stopped: the byte that is not a '{' (after not_an_object).
  std::size_t position() const { return pos_; }

  void reset() { *this = MessageFramer(); }

 private:
  std::size_t pos_ = 0, start_ = 0;
  int depth_ = 0;
  bool started_ = false, in_string_ = false, escaped_ = false;
};

// Checks of one reply's members: each throws BadReply naming the member ("entry 2:
// \"thread-id\"") and, for a number, its value (digits only: safe to print).

const Json& member(const Json& object, std::string_view where, const char* key) {
  const auto it = object.find(key);
  if (it == object.end()) throw BadReply(fmt::format("{}\"{}\" is missing", where, key));
  return *it;
}

/// A JSON integer in 0..max (nlohmann keeps non-negative integers unsigned, negative ones
/// signed, and anything with a fraction, an exponent or beyond 64 bits as a float).
std::uint64_t unsigned_member(const Json& value, std::string_view where, const char* key, std::uint64_t max) {
  if (!value.is_number_integer())
    throw BadReply(fmt::format("{}\"{}\" is {}, not an integer", where, key,
                               value.is_number_float() ? "a non-integral number" : value.type_name()));
  // Signed only when it had a minus sign: "-0" is 0.
  if (!value.is_number_unsigned() && value.get<std::int64_t>() < 0)
    throw BadReply(fmt::format("{}\"{}\" is {}, below 0", where, key, value.get<std::int64_t>()));
  const auto n =
      value.is_number_unsigned() ? value.get<std::uint64_t>() : static_cast<std::uint64_t>(value.get<std::int64_t>());
  if (n > max) throw BadReply(fmt::format("{}\"{}\" is {}, more than {}", where, key, n, max));
  return n;
}

std::int64_t thread_id_member(const Json& object, std::string_view where) {
  const std::uint64_t tid = unsigned_member(member(object, where, "thread-id"), where, "thread-id", max_thread_id);
  if (tid == 0) throw BadReply(fmt::format("{}\"thread-id\" is 0, not a thread id", where));
  return static_cast<std::int64_t>(tid);
}

std::string string_member(const Json& object, std::string_view where, const char* key) {
  const Json& value = member(object, where, key);
  if (!value.is_string()) throw BadReply(fmt::format("{}\"{}\" is {}, not a string", where, key, value.type_name()));
  return value.get<std::string>();
}

const Json& object_of(const Json& value, std::string_view what) {
  if (!value.is_object()) throw BadReply(fmt::format("{} is {}, not an object", what, value.type_name()));
  return value;
}

const Json& array_of(const Json& value, std::string_view what, std::size_t max_size, std::string_view items) {
  if (!value.is_array()) throw BadReply(fmt::format("{} is {}, not an array", what, value.type_name()));
  if (value.size() > max_size) throw BadReply(fmt::format("{} {}, more than {}", value.size(), items, max_size));
  return value;
}

std::optional<unsigned> topology_member(const Json& props, std::string_view where, const char* key) {
  const auto it = props.find(key);
  if (it == props.end()) return std::nullopt;
  return static_cast<unsigned>(unsigned_member(*it, where, key, limits::max_topology_count - 1));
}

QmpCpu cpu_of(const Json& entry, std::size_t i) {
  const std::string where = fmt::format("entry {}: ", i);
  object_of(entry, fmt::format("entry {}", i));
  QmpCpu cpu;
  cpu.cpu_index = static_cast<unsigned>(
      unsigned_member(member(entry, where, "cpu-index"), where, "cpu-index", limits::max_vcpus - 1));
  cpu.thread_id = thread_id_member(entry, where);
  cpu.qom_path = string_member(entry, where, "qom-path");
  if (const auto it = entry.find("props"); it != entry.end()) {
    const std::string props_where = where + "props: ";
    const Json& props = object_of(*it, where + "\"props\"");
    cpu.socket_id = topology_member(props, props_where, "socket-id");
    cpu.core_id = topology_member(props, props_where, "core-id");
    cpu.thread_in_core = topology_member(props, props_where, "thread-id");
  }
  return cpu;
}

std::vector<QmpCpu> cpus_of(const Json& result) {
  const Json& entries = array_of(result, "\"return\"", limits::max_vcpus, "cpus");
  std::vector<QmpCpu> cpus;
  cpus.reserve(entries.size());
  for (std::size_t i = 0; i < entries.size(); ++i) cpus.push_back(cpu_of(entries[i], i));
  // QEMU lists hot-plugged vcpus in plug order: sort, and refuse an index given twice (it
  // would make two vcpus one).
  std::sort(cpus.begin(), cpus.end(), [](const QmpCpu& a, const QmpCpu& b) { return a.cpu_index < b.cpu_index; });
  const auto twice = std::adjacent_find(cpus.begin(), cpus.end(),
                                        [](const QmpCpu& a, const QmpCpu& b) { return a.cpu_index == b.cpu_index; });
  if (twice != cpus.end()) throw BadReply(fmt::format("cpu-index {} appears twice", twice->cpu_index));
  return cpus;
}

std::vector<QmpIothread> iothreads_of(const Json& result) {
  const Json& entries = array_of(result, "\"return\"", qmp_max_iothreads, "iothreads");
  std::vector<QmpIothread> iothreads;
  iothreads.reserve(entries.size());
  for (std::size_t i = 0; i < entries.size(); ++i) {
    const std::string where = fmt::format("entry {}: ", i);
    const Json& entry = object_of(entries[i], fmt::format("entry {}", i));
    iothreads.push_back(QmpIothread{string_member(entry, where, "id"), thread_id_member(entry, where)});
  }
  return iothreads;
}

/// Whether `message` is the reply to the command sent with `id` (not an event, not a reply
/// to a command of someone else's, and not one without an id: QEMU echoes the id it got).
bool is_reply_to(const Json& message, std::uint64_t id) {
  if (message.contains("event")) return false;
  const auto it = message.find("id");
  return it != message.end() && it->is_number_unsigned() && it->get<std::uint64_t>() == id;
}

/// An owned file descriptor: closed however the constructor that opened it ends.
class UniqueFd {
 public:
  UniqueFd() = default;
  ~UniqueFd() { reset(); }
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  int get() const { return fd_; }
  void reset(int fd = -1) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = fd;
  }

 private:
  int fd_ = -1;
};

}  // namespace

struct QmpClient::Impl {
  Impl(const std::string& path, milliseconds timeout);
  Impl(const Impl&) = delete;
  Impl& operator=(const Impl&) = delete;

  /// Starts a call: its deadline and byte budget. `what` (escaped) names it in errors.
  void begin_call(std::string_view what);
  /// Sends `command` and returns the "return" member of its reply. An {"error":...} reply
  /// throws Error(error_code), closing the connection unless `usable_after_error`.
  Json run(std::string_view what, std::string_view command, const Json* arguments, ErrorCode error_code,
           bool usable_after_error);
  /// Turns a broken promise of a reply's contents into Error(internal).
  [[noreturn]] void bad_reply(std::string_view what, std::string_view detail) {
    fail(ErrorCode::internal, what, fmt::format("bad reply: {}", detail));
  }

  std::string prefix;  // "QMP socket PATH: ", PATH escaped
  milliseconds timeout;

 private:
  void connect(const std::string& path);
  void read_greeting();
  Json read_message(std::string_view what, bool greeting);
  void receive_some(std::string_view what, bool greeting);
  [[noreturn]] void timed_out(std::string_view what, bool greeting);
  void send_all(std::string_view data, std::string_view what);
  bool wait(short events, std::string_view what);
  [[noreturn]] void fail(ErrorCode code, std::string_view what, std::string_view detail);
  [[noreturn]] void fail_closed(ErrorCode code, const std::string& message);
  void close();

  UniqueFd fd_;
  std::string buffer_;  // received; bytes from consumed_ on are not read yet
  std::size_t consumed_ = 0;
  MessageFramer framer_;  // scanning buffer_ from consumed_
  std::uint64_t next_id_ = 1;
  Clock::time_point deadline_{};
  std::size_t call_bytes_ = 0;
};

QmpClient::Impl::Impl(const std::string& path, milliseconds call_timeout)
    : prefix("QMP socket " + quote(path) + ": "), timeout(call_timeout) {
  if (timeout.count() <= 0)
    throw Error(ErrorCode::invalid_argument, fmt::format("{}timeout of {} ms: not positive", prefix, timeout.count()));
  deadline_ = Clock::now() + timeout;  // one deadline for connect, greeting and capabilities
  connect(path);
  read_greeting();
  // Until qmp_capabilities, QEMU accepts no other command. Its error is no caller's fault.
  run("qmp_capabilities", "qmp_capabilities", nullptr, ErrorCode::internal, false);
}

void QmpClient::Impl::begin_call(std::string_view what) {
  if (fd_.get() < 0)
    throw Error(ErrorCode::internal, fmt::format("{}{}: the connection was closed by an earlier error", prefix, what));
  deadline_ = Clock::now() + timeout;
  call_bytes_ = 0;
}

void QmpClient::Impl::connect(const std::string& path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.empty() || path.find('\0') != std::string::npos)
    throw Error(ErrorCode::invalid_argument, prefix + "not a socket path (empty, or with a NUL byte)");
  if (path.size() >= sizeof addr.sun_path)
    throw Error(ErrorCode::invalid_argument, fmt::format("{}path of {} bytes, longer than a UNIX socket's {}", prefix,
                                                         path.size(), sizeof addr.sun_path - 1));
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);

  fd_.reset(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (fd_.get() < 0) throw Error(ErrorCode::internal, prefix + "socket: " + errno_text(errno));
  for (;;) {
    if (::connect(fd_.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0) return;
    int err = errno;
    if (err == EISCONN) return;
    if (err == EINTR) continue;
    if (err == EINPROGRESS || err == EALREADY) {  // not Linux's way for UNIX sockets, but POSIX allows it
      if (!wait(POLLOUT, "connect"))
        fail(ErrorCode::busy, "connect",
             fmt::format("not connected within {} ms ({})", timeout.count(), one_client_hint));
      socklen_t len = sizeof err;
      if (::getsockopt(fd_.get(), SOL_SOCKET, SO_ERROR, &err, &len) != 0) err = errno;
      if (err == 0) return;
    }
    if (err == EAGAIN) {
      // The listener's queue is full: QEMU accepts no second client while one is connected,
      // so others pile up in the queue. Try again until the deadline.
      const auto left = std::chrono::ceil<milliseconds>(deadline_ - Clock::now());
      if (left.count() <= 0)
        fail(ErrorCode::busy, "connect",
             fmt::format("connection queue full for {} ms ({})", timeout.count(), one_client_hint));
      std::this_thread::sleep_for(std::min(left, queue_full_retry));
      continue;
    }
    switch (err) {
      case ENOENT:
      case ENOTDIR:
        fail(ErrorCode::not_found, "connect", errno_text(err) + ": no such socket");
      case ECONNREFUSED:
        fail(ErrorCode::not_found, "connect", errno_text(err) + ": nobody listening (QEMU exited?)");
      case EACCES:
      case EPERM:
        fail(ErrorCode::permission_denied, "connect", errno_text(err));
      default:
        fail(ErrorCode::internal, "connect", errno_text(err));
    }
  }
}

void QmpClient::Impl::read_greeting() {
  for (;;) {
    const Json message = read_message("greeting", true);
    if (message.contains("event")) continue;
    const auto it = message.find("QMP");
    if (it == message.end() || !it->is_object()) bad_reply("greeting", "no \"QMP\" object");
    return;  // its version and capabilities ("oob") are of no use here
  }
}

Json QmpClient::Impl::run(std::string_view what, std::string_view command, const Json* arguments, ErrorCode error_code,
                          bool usable_after_error) {
  const std::uint64_t id = next_id_++;
  std::string request;
  try {
    Json object = {{"execute", command}, {"id", id}};
    if (arguments != nullptr) object["arguments"] = *arguments;
    request = object.dump() + '\n';
  } catch (const Json::exception& e) {  // a command that is not UTF-8: nothing sent
    throw Error(ErrorCode::invalid_argument, fmt::format("{}{}: cannot send: {}", prefix, what, quote(e.what())));
  }
  send_all(request, what);
  for (;;) {
    Json reply = read_message(what, false);
    if (!is_reply_to(reply, id)) continue;
    if (const auto it = reply.find("return"); it != reply.end()) return std::move(*it);
    const auto it = reply.find("error");
    if (it == reply.end()) bad_reply(what, "neither \"return\" nor \"error\"");
    std::string message;
    try {
      const Json& error = object_of(*it, "\"error\"");
      message = fmt::format("{}{}: {}: {}", prefix, what, quote(string_member(error, "\"error\": ", "class")),
                            quote(string_member(error, "\"error\": ", "desc")));
    } catch (const BadReply& e) {
      bad_reply(what, e.what());
    }
    if (usable_after_error) throw Error(error_code, message);
    fail_closed(error_code, message);
  }
}

Json QmpClient::Impl::read_message(std::string_view what, bool greeting) {
  // Messages already received are read without waiting, so a peer flooding them would never
  // meet the deadline in wait(): check it for each message too.
  if (Clock::now() >= deadline_) timed_out(what, greeting);
  for (;;) {
    const std::string_view unread = std::string_view(buffer_).substr(consumed_);
    const MessageFramer::Status status = framer_.scan(unread);
    // Checked whether or not the message is complete: one longer than the limit is refused
    // before it is parsed, and (when it has not ended yet) before more of it is read.
    if (framer_.pending() > qmp_max_message_bytes)
      bad_reply(what, fmt::format("a message longer than {} bytes", qmp_max_message_bytes));
    switch (status) {
      case MessageFramer::Status::complete: {
        Json message;
        try {
          const std::string_view text = framer_.message(unread);
          message = Json::parse(text.begin(), text.end());
        } catch (const Json::exception& e) {
          bad_reply(what, quote(e.what()));
        }
        consumed_ += framer_.end();  // erased before the next recv: once per read, not per message
        framer_.reset();
        return message;  // an object: the framer saw '{' first, the parser a whole value
      }
      case MessageFramer::Status::not_an_object:
        bad_reply(what, "expected a JSON object at \"" + quote(unread.substr(framer_.position(), 40)) + "\"");
      case MessageFramer::Status::too_deep:
        bad_reply(what, fmt::format("nested more than {} deep", qmp_max_depth));
      case MessageFramer::Status::need_more:
        if (!framer_.started()) {  // whitespace only: drop it, so that it takes no memory
          consumed_ = buffer_.size();
          framer_.reset();
        }
        break;
    }
    receive_some(what, greeting);
  }
}

void QmpClient::Impl::receive_some(std::string_view what, bool greeting) {
  buffer_.erase(0, consumed_);  // the framer's positions are relative to consumed_: unchanged
  consumed_ = 0;
  const std::size_t old_size = buffer_.size();
  buffer_.resize(old_size + recv_chunk_bytes);
  for (;;) {
    const ssize_t n = ::recv(fd_.get(), buffer_.data() + old_size, recv_chunk_bytes, 0);
    if (n > 0) {
      buffer_.resize(old_size + static_cast<std::size_t>(n));
      call_bytes_ += static_cast<std::size_t>(n);
      if (call_bytes_ > qmp_max_call_bytes)
        bad_reply(what, fmt::format("more than {} bytes without the reply", qmp_max_call_bytes));
      return;
    }
    const int err = n == 0 ? 0 : errno;
    if (err == EINTR) continue;
    if (err == EAGAIN || err == EWOULDBLOCK) {
      if (wait(POLLIN, what)) continue;
      timed_out(what, greeting);
    }
    if (err == 0 || err == ECONNRESET) fail(ErrorCode::not_found, what, "QEMU closed the monitor");
    fail(ErrorCode::internal, what, "recv: " + errno_text(err));
  }
}

void QmpClient::Impl::timed_out(std::string_view what, bool greeting) {
  if (greeting)
    fail_closed(ErrorCode::busy,
                fmt::format("{}no greeting within {} ms ({})", prefix, timeout.count(), one_client_hint));
  fail(ErrorCode::busy, what, fmt::format("no reply within {} ms", timeout.count()));
}

void QmpClient::Impl::send_all(std::string_view data, std::string_view what) {
  while (!data.empty()) {
    // MSG_NOSIGNAL: a monitor closed under us is an error to report, not a SIGPIPE.
    const ssize_t n = ::send(fd_.get(), data.data(), data.size(), MSG_NOSIGNAL);
    if (n >= 0) {
      data.remove_prefix(static_cast<std::size_t>(n));
      continue;
    }
    const int err = errno;
    if (err == EINTR) continue;
    if (err == EAGAIN || err == EWOULDBLOCK) {
      if (!wait(POLLOUT, what))
        fail(ErrorCode::busy, what, fmt::format("could not send within {} ms", timeout.count()));
      continue;
    }
    if (err == EPIPE || err == ECONNRESET) fail(ErrorCode::not_found, what, "QEMU closed the monitor");
    fail(ErrorCode::internal, what, "send: " + errno_text(err));
  }
}

bool QmpClient::Impl::wait(short events, std::string_view what) {
  for (;;) {
    const auto left = std::chrono::ceil<milliseconds>(deadline_ - Clock::now());
    if (left.count() <= 0) return false;
    pollfd p{fd_.get(), events, 0};
    const int rc = ::poll(&p, 1, static_cast<int>(std::min<milliseconds::rep>(left.count(), INT_MAX)));
    if (rc > 0) return true;  // ready, or POLLHUP/POLLERR: the next recv/send tells which
    if (rc < 0 && errno != EINTR) fail(ErrorCode::internal, what, "poll: " + errno_text(errno));
  }
}

void QmpClient::Impl::fail(ErrorCode code, std::string_view what, std::string_view detail) {
  fail_closed(code, fmt::format("{}{}: {}", prefix, what, detail));
}

void QmpClient::Impl::fail_closed(ErrorCode code, const std::string& message) {
  // The stream may now be anywhere in a message: no later call can trust its framing.
  close();
  throw Error(code, message);
}

void QmpClient::Impl::close() {
  fd_.reset();
  buffer_.clear();
  consumed_ = 0;
  framer_.reset();
}

QmpClient::QmpClient(const std::string& path, milliseconds timeout) : impl_(std::make_unique<Impl>(path, timeout)) {}
QmpClient::~QmpClient() = default;
QmpClient::QmpClient(QmpClient&&) noexcept = default;
QmpClient& QmpClient::operator=(QmpClient&&) noexcept = default;

QmpClient::Impl& QmpClient::impl() {
  if (!impl_) throw Error(ErrorCode::internal, "QMP client: used after a move");
  return *impl_;
}

std::vector<QmpCpu> QmpClient::query_cpus_fast() {
  Impl& impl = this->impl();
  impl.begin_call("query-cpus-fast");
  const Json result = impl.run("query-cpus-fast", "query-cpus-fast", nullptr, ErrorCode::internal, false);
  try {
    return cpus_of(result);
  } catch (const BadReply& e) {
    impl.bad_reply("query-cpus-fast", e.what());
  }
}

std::vector<QmpIothread> QmpClient::query_iothreads() {
  Impl& impl = this->impl();
  impl.begin_call("query-iothreads");
  const Json result = impl.run("query-iothreads", "query-iothreads", nullptr, ErrorCode::internal, false);
  try {
    return iothreads_of(result);
  } catch (const BadReply& e) {
    impl.bad_reply("query-iothreads", e.what());
  }
}

std::string QmpClient::query_status() {
  Impl& impl = this->impl();
  impl.begin_call("query-status");
  const Json result = impl.run("query-status", "query-status", nullptr, ErrorCode::internal, false);
  try {
    return string_member(object_of(result, "\"return\""), "", "status");
  } catch (const BadReply& e) {
    impl.bad_reply("query-status", e.what());
  }
}

std::string QmpClient::query_name() {
  Impl& impl = this->impl();
  impl.begin_call("query-name");
  const Json result = impl.run("query-name", "query-name", nullptr, ErrorCode::internal, false);
  try {
    // An unnamed guest's reply is {"return":{}}.
    return object_of(result, "\"return\"").contains("name") ? string_member(result, "", "name") : std::string();
  } catch (const BadReply& e) {
    impl.bad_reply("query-name", e.what());
  }
}

std::string QmpClient::execute(std::string_view command, std::string_view arguments_json) {
  Impl& impl = this->impl();
  const std::string what = quote(command);
  Json arguments;
  if (!arguments_json.empty()) {
    try {
      arguments = Json::parse(arguments_json.begin(), arguments_json.end());
    } catch (const Json::exception& e) {
      throw Error(ErrorCode::invalid_argument,
                  fmt::format("{}{}: arguments are not JSON: {}", impl.prefix, what, quote(e.what())));
    }
    if (!arguments.is_object())
      throw Error(ErrorCode::invalid_argument,
                  fmt::format("{}{}: arguments are {}, not a JSON object", impl.prefix, what, arguments.type_name()));
  }
  impl.begin_call(what);
  const Json result =
      impl.run(what, command, arguments_json.empty() ? nullptr : &arguments, ErrorCode::invalid_argument, true);
  return result.dump();  // valid UTF-8: the parser checked every string
}

}  // namespace vcpumap::detail
