// src/xen/xenstore.cpp — XenstoreReader: xenstored's wire protocol over its unix socket
// (see xenstore.hpp): reads outside any transaction, writes in one.
#include "xenstore.hpp"

#include <algorithm>
#include <charconv>
#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>

#include <poll.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/un.h>
#include <unistd.h>

#include <fmt/format.h>

#include "xenctrl.hpp"

namespace vcpumap::xen_detail {

XenstoreReader::~XenstoreReader() {
  if (fd_ >= 0) ::close(fd_);
}

bool XenstoreReader::exchange(std::uint32_t type, std::uint32_t tx, std::string_view payload,
                              std::uint32_t& reply_type, std::string& reply) {
  if (failed_ || payload.size() > XENSTORE_PAYLOAD_MAX) return false;
  if (fd_ < 0 && !connect()) return fail(), false;
  xsd_sockmsg request{};
  request.type = type;
  request.req_id = ++req_id_;
  request.tx_id = tx;
  request.len = static_cast<std::uint32_t>(payload.size());
  if (!send_all(&request, sizeof request) || !send_all(payload.data(), payload.size())) return fail(), false;
  for (;;) {
    xsd_sockmsg header{};
    if (!receive(&header, sizeof header) || header.len > XENSTORE_PAYLOAD_MAX) return fail(), false;
    reply.assign(header.len, '\0');
    if (!receive(reply.data(), reply.size())) return fail(), false;
    if (header.type == XS_WATCH_EVENT || header.req_id != request.req_id) continue;  // not ours
    reply_type = header.type;
    while (!reply.empty() && reply.back() == '\0') reply.pop_back();
    return true;
  }
}

std::optional<std::string> XenstoreReader::read(const std::string& path) {
  if (!enabled_ || failed_ || path.size() + 1 > XENSTORE_PAYLOAD_MAX) return std::nullopt;
  std::uint32_t type = 0;
  std::string reply;
  if (!exchange(XS_READ, 0, std::string_view(path.c_str(), path.size() + 1), type, reply)) return std::nullopt;
  if (type == XS_ERROR) return std::nullopt;  // ENOENT, EACCES...
  if (type != XS_READ) return fail();
  return reply;
}

XenstoreReader::WriteResult XenstoreReader::write_all(std::span<const std::pair<std::string, std::string>> writes) {
  WriteResult out;
  std::uint32_t type = 0;
  std::string reply;
  const auto broken = [&] {
    out.unreachable = true;
    return out;
  };
  for (int attempt = 0; attempt < 8; ++attempt) {
    if (!exchange(XS_TRANSACTION_START, 0, std::string_view("", 1), type, reply)) return broken();
    if (type == XS_ERROR) return out.error = reply, out;
    std::uint32_t tx = 0;
    const auto [end, ec] = std::from_chars(reply.data(), reply.data() + reply.size(), tx);
    if (type != XS_TRANSACTION_START || ec != std::errc() || end != reply.data() + reply.size() || tx == 0)
      return fail(), broken();
    for (const auto& [path, value] : writes) {
      std::string payload = path;
      payload.push_back('\0');
      payload += value;  // xenstored takes the value without a terminator
      if (!exchange(XS_WRITE, tx, payload, type, reply)) return broken();
      if (type == XS_ERROR) {
        out.error = reply;
        std::uint32_t ignored = 0;
        exchange(XS_TRANSACTION_END, tx, std::string_view("F", 2), ignored, reply);  // abort
        return out;
      }
      if (type != XS_WRITE) return fail(), broken();
    }
    if (!exchange(XS_TRANSACTION_END, tx, std::string_view("T", 2), type, reply)) return broken();
    if (type == XS_ERROR && reply == "EAGAIN") continue;  // another transaction won: again
    if (type == XS_ERROR) return out.error = reply, out;
    if (type != XS_TRANSACTION_END) return fail(), broken();
    out.done = true;
    return out;
  }
  out.error = "EAGAIN";
  return out;
}

std::string XenstoreReader::socket_path() {
  if (const char* path = std::getenv("XENSTORED_PATH")) return path;
  const char* rundir = std::getenv("XENSTORED_RUNDIR");
  return std::string(rundir != nullptr ? rundir : "/var/run/xenstored") + "/socket";
}

bool XenstoreReader::connect() {
  const std::string path = socket_path();
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof addr.sun_path) return false;
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd_ < 0) return false;
  // A unix socket connects at once or fails (ENOENT, ECONNREFUSED, ENOTSOCK for a device).
  return ::connect(fd_, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0;
}

std::nullopt_t XenstoreReader::fail() {
  failed_ = true;
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
  return std::nullopt;
}

bool XenstoreReader::wait(short events) {
  const auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline_ - std::chrono::steady_clock::now());
  if (left.count() <= 0) return false;
  pollfd p{fd_, events, 0};
  int rc;
  do rc = ::poll(&p, 1, static_cast<int>(std::min<std::chrono::milliseconds::rep>(left.count(), 1 << 30)));
  while (rc < 0 && errno == EINTR);
  return rc > 0 && (p.revents & events) != 0;
}

bool XenstoreReader::send_all(const void* data, std::size_t size) {
  const auto* p = static_cast<const char*>(data);
  while (size > 0) {
    const ssize_t n = ::send(fd_, p, size, MSG_NOSIGNAL);
    if (n > 0) {
      p += n;
      size -= static_cast<std::size_t>(n);
    } else if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
      if (errno == EAGAIN && !wait(POLLOUT)) return false;
    } else {
      return false;
    }
  }
  return true;
}

bool XenstoreReader::receive(void* data, std::size_t size) {
  auto* p = static_cast<char*>(data);
  while (size > 0) {
    const ssize_t n = ::recv(fd_, p, size, 0);
    if (n > 0) {
      p += n;
      size -= static_cast<std::size_t>(n);
    } else if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
      if (errno == EAGAIN && !wait(POLLIN)) return false;
    } else {
      return false;  // EOF or error
    }
  }
  return true;
}

std::string domain_name(XenstoreReader& xenstore, std::uint32_t id) {
  if (auto name = xenstore.read(fmt::format("/local/domain/{}/name", id)); name && !name->empty()) return *name;
  return id == 0 ? std::string("Domain-0") : std::to_string(id);
}

}  // namespace vcpumap::xen_detail
