// QmpClient against a fake QMP monitor: a UNIX socket in a temporary directory, served by a
// thread that plays a script (greeting, scripted replies echoing the request's id, events,
// garbage, silence, a close mid-reply). The client's errors are checked by code and by
// their whole message.
#include "linux/qmp.hpp"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/un.h>
#include <sys/wait.h>

#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <functional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include <catch2/catch.hpp>

#include "vcpumap/error.hpp"
#include "vcpumap/limits.hpp"
#include "vcpumap/text.hpp"

namespace {

using namespace std::chrono_literals;
using vcpumap::Error;
using vcpumap::ErrorCode;
using vcpumap::detail::QmpClient;
using vcpumap::detail::QmpCpu;
using vcpumap::detail::QmpIothread;

constexpr auto fast = 200ms;   // for the tests that wait for the timeout
constexpr auto patient = 30s;  // for the others: only a hang reaches it

/// A QMP message as QEMU's monitor writes it: one line, ended by "\r\n".
std::string msg(std::string_view json) { return std::string(json) + "\r\n"; }

const std::string greeting =
    msg(R"({"QMP": {"version": {"qemu": {"micro": 0, "minor": 2, "major": 7}, "package": "Debian 1:7.2+dfsg-7"}, )"
        R"("capabilities": ["oob"]}})");
const std::string event = msg(R"({"timestamp": {"seconds": 1700000000, "microseconds": 5}, "event": "RESUME"})");

[[noreturn]] void fail_errno(const char* what) { throw std::system_error(errno, std::generic_category(), what); }

class TempDir {
 public:
  TempDir() {
    char name[] = "/tmp/qmp-test-XXXXXX";
    if (::mkdtemp(name) == nullptr) fail_errno("mkdtemp");
    path_ = name;
  }
  ~TempDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

/// A listening UNIX socket at `path` (close-on-exec, as the client's must be: see the
/// close-on-exec test).
int listen_at(const std::string& path, int backlog) {
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) fail_errno("socket");
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path.c_str(), sizeof addr.sun_path - 1);
  if (::bind(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) fail_errno("bind");
  if (::listen(fd, backlog) != 0) fail_errno("listen");
  return fd;
}

/// The server's side of one connection, as its script sees it. Never blocks for more than
/// 5 s (so a broken client fails a test instead of hanging it) and never asserts: Catch2
/// wants its assertions on the main thread; the test checks `requests` after the script.
class Peer {
 public:
  explicit Peer(int fd) : fd_(fd) {
    const timeval five_seconds{5, 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &five_seconds, sizeof five_seconds);
  }

  /// Sends all of `text`; errors are ignored (the client may have given up already).
  void send(std::string_view text) {
    while (!text.empty()) {
      const ssize_t n = ::send(fd_, text.data(), text.size(), MSG_NOSIGNAL);
      if (n <= 0) return;
      text.remove_prefix(static_cast<std::size_t>(n));
    }
  }

  /// One request line (without its newline), recorded; "" at EOF or after 5 s.
  std::string read_request() {
    std::string line;
    char c = 0;
    while (::recv(fd_, &c, 1, 0) == 1) {
      if (c == '\n') {
        requests.push_back(line);
        return line;
      }
      line += c;
    }
    return {};
  }

  /// Reads a request and sends `reply` with each "@ID@" replaced by the request's id.
  void answer(std::string reply) {
    const std::string id = id_of(read_request());
    for (std::size_t at; (at = reply.find("@ID@")) != std::string::npos;) reply.replace(at, 4, id);
    send(reply);
  }

  /// The greeting, an event, and the reply to qmp_capabilities.
  void greet() {
    send(greeting);
    send(event);
    answer(msg(R"({"return": {}, "id": @ID@})"));
  }

  /// Reads until the client closes (or 5 s pass).
  void wait_for_close() {
    char c = 0;
    while (::recv(fd_, &c, 1, 0) == 1) {
    }
  }

  std::vector<std::string> requests;

 private:
  /// The digits after "id": in a request the client wrote (compactly, as nlohmann dumps).
  static std::string id_of(const std::string& request) {
    const std::size_t at = request.find("\"id\":");
    if (at == std::string::npos) return "\"no id\"";
    const std::size_t begin = at + 5;
    const std::size_t end = request.find_first_not_of("0123456789", begin);
    return request.substr(begin, end - begin);
  }

  int fd_;
};

/// A fake QMP monitor: accepts one connection and plays `script` on it in a thread, then
/// closes it. Declare it before the client, so the client closes first on the way out.
class FakeServer {
 public:
  explicit FakeServer(std::function<void(Peer&)> script) : path_(dir_.path() + "/qmp.sock") {
    listen_fd_ = listen_at(path_, 1);
    thread_ = std::thread([this, script = std::move(script)] { serve(script); });
  }
  ~FakeServer() {
    join();
    ::close(listen_fd_);
  }
  FakeServer(const FakeServer&) = delete;
  FakeServer& operator=(const FakeServer&) = delete;

  const std::string& path() const { return path_; }
  /// "QMP socket PATH: ", as every error message starts.
  std::string prefix() const { return "QMP socket " + vcpumap::escape_terminal(path_) + ": "; }
  /// The requests the script read, once it has ended.
  const std::vector<std::string>& requests() {
    join();
    return requests_;
  }

 private:
  void serve(const std::function<void(Peer&)>& script) {
    pollfd p{listen_fd_, POLLIN, 0};
    if (::poll(&p, 1, 5000) != 1) return;
    const int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) return;
    Peer peer(fd);
    try {
      script(peer);
    } catch (...) {  // a test's failure shows in the client's results
    }
    ::close(fd);
    requests_ = std::move(peer.requests);
  }
  void join() {
    if (thread_.joinable()) thread_.join();
  }

  TempDir dir_;
  std::string path_;
  int listen_fd_ = -1;
  std::thread thread_;
  std::vector<std::string> requests_;
};

/// A script that greets, answers one request with `reply` and waits for the client to go.
std::function<void(Peer&)> one_reply(std::string reply) {
  return [reply = std::move(reply)](Peer& peer) {
    peer.greet();
    peer.answer(reply);
    peer.wait_for_close();
  };
}

/// Runs `call` on a client of `server`; returns the Error it throws (fails without one).
template <class Call>
Error error_of(Call&& call) {
  try {
    call();
  } catch (const Error& e) {
    return e;
  }
  FAIL("no vcpumap::Error thrown");
  throw std::logic_error("unreachable");
}

std::string cpu_entry(unsigned index, long long tid) {
  return "{\"cpu-index\": " + std::to_string(index) + ", \"thread-id\": " + std::to_string(tid) +
         ", \"qom-path\": \"/machine/unattached/device[" + std::to_string(index) + "]\"}";
}

}  // namespace

TEST_CASE("query-cpus-fast: keys in any order, events and other replies skipped, props optional") {
  FakeServer server([](Peer& peer) {
    peer.greet();
    peer.answer(event + msg(R"({"id": 999, "return": []})") +                                // another client's id
                msg(R"({"return": [{"cpu-index": 7, "thread-id": 1, "qom-path": "x"}]})") +  // no id
                msg(R"({"id": "@ID@", "return": []})") +                                     // the id, as a string
                event +
                msg(R"({"return": [)"
                    R"({"props": {"thread-id": 0, "core-id": 1, "socket-id": 0}, )"
                    R"("qom-path": "/machine/unattached/device[1]", "target": "x86_64", "cpu-index": 1, )"
                    R"("thread-id": 4242}, )"
                    R"({"cpu-index": 0, "thread-id": 4241, "qom-path": "/machine/unattached/device[0]", )"
                    R"("props": {"core-id": 0, "node-id": 0}, "target": "x86_64"}, )"
                    R"({"qom-path": "/machine/peripheral-anon/device[0]", "cpu-index": 2, "thread-id": 2147483647})"
                    R"(], "id": @ID@})") +
                event);
    peer.wait_for_close();
  });
  {
    QmpClient qmp(server.path(), patient);
    const std::vector<QmpCpu> cpus = qmp.query_cpus_fast();
    REQUIRE(cpus.size() == 3);
    CHECK(cpus[0].cpu_index == 0);  // sorted by cpu-index
    CHECK(cpus[0].thread_id == 4241);
    CHECK_FALSE(cpus[0].socket_id.has_value());
    CHECK(cpus[0].core_id == 0u);
    CHECK_FALSE(cpus[0].thread_in_core.has_value());
    CHECK(cpus[0].qom_path == "/machine/unattached/device[0]");
    CHECK(cpus[1].cpu_index == 1);
    CHECK(cpus[1].thread_id == 4242);  // the host TID, not props' thread-id
    CHECK(cpus[1].socket_id == 0u);
    CHECK(cpus[1].core_id == 1u);
    CHECK(cpus[1].thread_in_core == 0u);
    CHECK(cpus[2].cpu_index == 2);
    CHECK(cpus[2].thread_id == 2147483647);
    CHECK_FALSE(cpus[2].socket_id.has_value());
    CHECK_FALSE(cpus[2].core_id.has_value());
    CHECK(cpus[2].qom_path == "/machine/peripheral-anon/device[0]");
  }
  CHECK(server.requests() == std::vector<std::string>{R"({"execute":"qmp_capabilities","id":1})",
                                                      R"({"execute":"query-cpus-fast","id":2})"});
}

TEST_CASE("a pretty-printed monitor (replies spanning lines) frames like a compact one") {
  FakeServer server(
      one_reply("{\n    \"return\": [\n        {\n            \"cpu-index\": 0,\n"
                "            \"thread-id\": 77,\n            \"qom-path\": \"/m/d{[\\\"]\"\n"
                "        }\n    ],\n    \"id\": @ID@\n}\n"));
  QmpClient qmp(server.path(), patient);
  const std::vector<QmpCpu> cpus = qmp.query_cpus_fast();
  REQUIRE(cpus.size() == 1);
  CHECK(cpus[0].thread_id == 77);
  CHECK(cpus[0].qom_path == "/m/d{[\"]");  // brackets and an escaped quote inside a string
}

TEST_CASE("several calls on one connection, replies split across reads") {
  FakeServer server([](Peer& peer) {
    peer.greet();
    const std::string reply =
        msg(R"({"return": {"status": "running", "singlestep": false, "running": true}, "id": 2})");
    peer.read_request();
    for (const char c : reply) {  // one byte at a time
      peer.send(std::string_view(&c, 1));
    }
    peer.answer(msg(R"({"return": {"name": "qmptest"}, "id": @ID@})"));
    peer.answer(msg(R"({"return": {}, "id": @ID@})"));
    peer.answer(msg(R"({"return": [], "id": @ID@})"));
    peer.wait_for_close();
  });
  {
    QmpClient qmp(server.path(), patient);
    CHECK(qmp.query_status() == "running");
    CHECK(qmp.query_name() == "qmptest");
    CHECK(qmp.query_name() == "");  // an unnamed guest
    CHECK(qmp.query_iothreads().empty());
  }
  const auto& requests = server.requests();
  REQUIRE(requests.size() == 5);
  CHECK(requests[4] == R"({"execute":"query-iothreads","id":5})");
}

TEST_CASE("query-iothreads") {
  FakeServer server(
      one_reply(msg(R"({"return": [{"poll-shrink": 0, "thread-id": 5001, "poll-grow": 0, "id": "iothread0", )"
                    R"("poll-max-ns": 32768, "aio-max-batch": 0}, {"thread-id": 5002, "id": "io\u001b1"}], )"
                    R"("id": @ID@})")));
  QmpClient qmp(server.path(), patient);
  const std::vector<QmpIothread> iothreads = qmp.query_iothreads();
  REQUIRE(iothreads.size() == 2);
  CHECK(iothreads[0].id == "iothread0");
  CHECK(iothreads[0].thread_id == 5001);
  CHECK(iothreads[1].id ==
        "io\x1b"
        "1");  // returned as QEMU wrote it: the caller escapes
  CHECK(iothreads[1].thread_id == 5002);
}

TEST_CASE("query-status") {
  FakeServer server(
      one_reply(msg(R"({"id": @ID@, "return": {"singlestep": false, "running": false, "status": "prelaunch"}})")));
  QmpClient qmp(server.path(), patient);
  CHECK(qmp.query_status() == "prelaunch");
}

TEST_CASE("execute: arguments sent, the return member given back as JSON text") {
  FakeServer server([](Peer& peer) {
    peer.greet();
    peer.answer(msg(R"({"return": {}, "id": @ID@})"));
    peer.answer(msg(R"({"id": @ID@, "return": [{"type": "qemu64-x86_64-cpu", "vcpus-count": 1}]})"));
    peer.wait_for_close();
  });
  {
    QmpClient qmp(server.path(), patient);
    CHECK(qmp.execute("device_add", R"({"driver":"qemu64-x86_64-cpu","socket-id":0,"core-id":2,"thread-id":0})") ==
          "{}");
    CHECK(qmp.execute("query-hotpluggable-cpus") == R"([{"type":"qemu64-x86_64-cpu","vcpus-count":1}])");
  }
  const auto& requests = server.requests();
  REQUIRE(requests.size() == 3);
  CHECK(
      requests[1] ==
      R"({"arguments":{"core-id":2,"driver":"qemu64-x86_64-cpu","socket-id":0,"thread-id":0},"execute":"device_add","id":2})");
  CHECK(requests[2] == R"({"execute":"query-hotpluggable-cpus","id":3})");
}

TEST_CASE("execute: an error reply is invalid_argument, escaped, and the client stays usable") {
  FakeServer server([](Peer& peer) {
    peer.greet();
    peer.answer(
        msg(R"({"id": @ID@, "error": {"desc": "Bus 'x' \u001b[31mnot found\u202e", "class": "GenericError"}})"));
    peer.answer(msg(R"({"return": {"status": "paused", "running": false}, "id": @ID@})"));
    peer.wait_for_close();
  });
  QmpClient qmp(server.path(), patient);
  const Error e = error_of([&] { qmp.execute("device_add", R"({"driver": "nope"})"); });
  CHECK(e.code() == ErrorCode::invalid_argument);
  CHECK(std::string(e.what()) == server.prefix() + R"(device_add: GenericError: Bus 'x' \x1b[31mnot found\u202e)");
  CHECK(qmp.query_status() == "paused");
}

TEST_CASE("execute: bad arguments are refused before anything is sent") {
  FakeServer server(one_reply(msg(R"({"return": {"status": "running"}, "id": @ID@})")));
  {
    QmpClient qmp(server.path(), patient);
    Error e = error_of([&] { qmp.execute("device_add", "[1]"); });
    CHECK(e.code() == ErrorCode::invalid_argument);
    CHECK(std::string(e.what()) == server.prefix() + "device_add: arguments are array, not a JSON object");
    e = error_of([&] { qmp.execute("device_add", "{\"driver\":"); });
    CHECK(e.code() == ErrorCode::invalid_argument);
    CHECK_THAT(e.what(),
               Catch::StartsWith(server.prefix() + "device_add: arguments are not JSON: [json.exception.parse_error"));
    e = error_of([&] { qmp.execute("device_add\xff"); });  // not UTF-8: nlohmann cannot write it
    CHECK(e.code() == ErrorCode::invalid_argument);
    CHECK_THAT(e.what(), Catch::StartsWith(server.prefix() + "device_add\\xff: cannot send: "));
    CHECK(qmp.query_status() == "running");
  }
  CHECK(server.requests().size() == 2);  // qmp_capabilities and query-status only
}

TEST_CASE("a monitor that never greets (held by another client) is busy within the timeout") {
  FakeServer server([](Peer& peer) { peer.wait_for_close(); });
  const auto start = std::chrono::steady_clock::now();
  const Error e = error_of([&] { QmpClient qmp(server.path(), fast); });
  const auto took = std::chrono::steady_clock::now() - start;
  CHECK(e.code() == ErrorCode::busy);
  CHECK(std::string(e.what()) ==
        server.prefix() +
            "no greeting within 200 ms (the monitor takes one client: is libvirtd or another tool using it?)");
  CHECK(took >= fast);
  CHECK(took < 2s);
}

TEST_CASE("a monitor whose connection queue is full is busy within the timeout") {
  TempDir dir;
  const std::string path = dir.path() + "/full.sock";
  const int listener = listen_at(path, 0);  // room for one unaccepted connection
  const int first = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path.c_str(), sizeof addr.sun_path - 1);
  REQUIRE(::connect(first, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0);
  const auto start = std::chrono::steady_clock::now();
  const Error e = error_of([&] { QmpClient qmp(path, fast); });
  const auto took = std::chrono::steady_clock::now() - start;
  ::close(first);
  ::close(listener);
  CHECK(e.code() == ErrorCode::busy);
  CHECK(std::string(e.what()) == "QMP socket " + path +
                                     ": connect: connection queue full for 200 ms (the monitor takes one client: is "
                                     "libvirtd or another tool using it?)");
  CHECK(took >= fast);
  CHECK(took < 2s);
}

TEST_CASE("a reply that never comes is busy within the timeout") {
  FakeServer server([](Peer& peer) {
    peer.greet();
    peer.read_request();
    peer.send(event);  // an event is no reply
    peer.wait_for_close();
  });
  QmpClient qmp(server.path(), fast);
  const auto start = std::chrono::steady_clock::now();
  const Error e = error_of([&] { qmp.query_status(); });
  CHECK(std::chrono::steady_clock::now() - start >= fast);
  CHECK(e.code() == ErrorCode::busy);
  CHECK(std::string(e.what()) == server.prefix() + "query-status: no reply within 200 ms");
}

TEST_CASE("QEMU closing the monitor mid-reply is not_found") {
  FakeServer server([](Peer& peer) {
    peer.greet();
    peer.read_request();
    peer.send(R"({"return": [{"cpu-index": 0, "thr)");
  });
  QmpClient qmp(server.path(), patient);
  const Error e = error_of([&] { qmp.query_cpus_fast(); });
  CHECK(e.code() == ErrorCode::not_found);
  CHECK(std::string(e.what()) == server.prefix() + "query-cpus-fast: QEMU closed the monitor");
  // The connection is gone: later calls say so at once.
  const Error again = error_of([&] { qmp.query_status(); });
  CHECK(again.code() == ErrorCode::internal);
  CHECK(std::string(again.what()) == server.prefix() + "query-status: the connection was closed by an earlier error");
}

TEST_CASE("QEMU closing the monitor during the handshake is not_found") {
  FakeServer server([](Peer& peer) { peer.send(greeting); });
  const Error e = error_of([&] { QmpClient qmp(server.path(), patient); });
  CHECK(e.code() == ErrorCode::not_found);
  CHECK(std::string(e.what()) == server.prefix() + "qmp_capabilities: QEMU closed the monitor");
}

TEST_CASE("sending to a closed monitor is an Error, not SIGPIPE") {
  FakeServer server([](Peer& peer) { peer.greet(); });  // then the server closes
  QmpClient qmp(server.path(), patient);
  server.requests();  // the script has ended and closed its end
  const Error e = error_of([&] { qmp.query_name(); });
  CHECK(e.code() == ErrorCode::not_found);
  CHECK(std::string(e.what()) == server.prefix() + "query-name: QEMU closed the monitor");
}

TEST_CASE("a message longer than qmp_max_message_bytes is refused") {
  constexpr std::size_t max = vcpumap::detail::qmp_max_message_bytes;
  // A reply with the right id, padded to `size` bytes (once "@ID@" has become "2").
  const auto reply_of_size = [](std::size_t size) {
    const std::string head = R"({"id": @ID@, "return": {"status": ")", tail = "\"}}";
    return head + std::string(size - (head.size() - 3) - tail.size(), 's') + tail;
  };
  SECTION("one byte too long") {
    FakeServer server(one_reply(reply_of_size(max + 1)));
    QmpClient qmp(server.path(), patient);
    const Error e = error_of([&] { qmp.query_status(); });
    CHECK(e.code() == ErrorCode::internal);
    CHECK(std::string(e.what()) == server.prefix() + "query-status: bad reply: a message longer than 8388608 bytes");
  }
  SECTION("refused before it ends") {
    FakeServer server(one_reply(reply_of_size(2 * max).substr(0, max + 1 + 3)));  // then silence
    QmpClient qmp(server.path(), patient);
    const Error e = error_of([&] { qmp.query_status(); });
    CHECK(e.code() == ErrorCode::internal);
    CHECK(std::string(e.what()) == server.prefix() + "query-status: bad reply: a message longer than 8388608 bytes");
  }
  SECTION("the longest message is read, whitespace around it not counted") {
    FakeServer server(one_reply("\r\n \t" + reply_of_size(max) + "\r\n"));
    QmpClient qmp(server.path(), patient);
    CHECK(qmp.query_status().size() == max - 35);  // {"id": 2, "return": {"status": "..."}}
  }
}

TEST_CASE("a call reads at most qmp_max_call_bytes") {
  FakeServer server([](Peer& peer) {
    peer.greet();
    peer.read_request();
    // Events, and whitespace between them (cheaper to send and skip than JSON to parse):
    // every byte counts.
    const std::string big_event =
        R"({"event": "X", "data": ")" + std::string(1 << 20, 'e') + "\"}" + std::string(3 << 20, '\n');
    for (std::size_t sent = 0; sent <= vcpumap::detail::qmp_max_call_bytes; sent += big_event.size())
      peer.send(big_event);
  });
  QmpClient qmp(server.path(), patient);
  const Error e = error_of([&] { qmp.query_status(); });
  CHECK(e.code() == ErrorCode::internal);
  CHECK(std::string(e.what()) ==
        server.prefix() + "query-status: bad reply: more than 33554432 bytes without the reply");
}

TEST_CASE("a flood of small messages meets the deadline") {
  // Messages already received are read without a poll(): the deadline is checked per message.
  std::string flood;  // made before the call starts, so that it comes at once
  while (flood.size() <= vcpumap::detail::qmp_max_call_bytes) flood += "{}{}{}{}{}{}{}{}\n";
  FakeServer server([&flood](Peer& peer) {
    peer.greet();
    peer.read_request();
    peer.send(flood);
  });
  QmpClient qmp(server.path(), fast);
  const auto start = std::chrono::steady_clock::now();
  const Error e = error_of([&] { qmp.query_status(); });
  CHECK(std::chrono::steady_clock::now() - start < 2s);
  CHECK(e.code() == ErrorCode::busy);
  CHECK(std::string(e.what()) == server.prefix() + "query-status: no reply within 200 ms");
}

TEST_CASE("garbage is a bad reply") {
  SECTION("not JSON") {
    FakeServer server(one_reply(msg(R"({"return": [1, 2,}, "id": @ID@})")));
    QmpClient qmp(server.path(), patient);
    const Error e = error_of([&] { qmp.query_cpus_fast(); });
    CHECK(e.code() == ErrorCode::internal);
    CHECK_THAT(e.what(),
               Catch::StartsWith(server.prefix() + "query-cpus-fast: bad reply: [json.exception.parse_error.101]"));
  }
  SECTION("not an object") {
    FakeServer server(one_reply("hello\x1b world\n"));
    QmpClient qmp(server.path(), patient);
    const Error e = error_of([&] { qmp.query_cpus_fast(); });
    CHECK(e.code() == ErrorCode::internal);
    CHECK(std::string(e.what()) ==
          server.prefix() + R"(query-cpus-fast: bad reply: expected a JSON object at "hello\x1b world\x0a")");
  }
  SECTION("nested too deep") {
    FakeServer server(one_reply(R"({"return": )" + std::string(100, '[')));
    QmpClient qmp(server.path(), patient);
    const Error e = error_of([&] { qmp.query_cpus_fast(); });
    CHECK(e.code() == ErrorCode::internal);
    CHECK(std::string(e.what()) == server.prefix() + "query-cpus-fast: bad reply: nested more than 64 deep");
  }
  SECTION("no greeting but something else") {
    FakeServer server([](Peer& peer) { peer.send(msg(R"({"return": {}})")); });
    const Error e = error_of([&] { QmpClient qmp(server.path(), patient); });
    CHECK(e.code() == ErrorCode::internal);
    CHECK(std::string(e.what()) == server.prefix() + R"(greeting: bad reply: no "QMP" object)");
  }
  SECTION("qmp_capabilities refused") {
    FakeServer server([](Peer& peer) {
      peer.send(greeting);
      peer.answer(msg(R"({"error": {"class": "CommandNotFound", "desc": "nope"}, "id": @ID@})"));
    });
    const Error e = error_of([&] { QmpClient qmp(server.path(), patient); });
    CHECK(e.code() == ErrorCode::internal);
    CHECK(std::string(e.what()) == server.prefix() + "qmp_capabilities: CommandNotFound: nope");
  }
}

TEST_CASE("wrong types and out-of-range numbers in query-cpus-fast are bad replies") {
  struct Case {
    std::string entries, detail;
  };
  const Case c = GENERATE(
      Case{R"({"cpu-index": 0, "thread-id": "4241", "qom-path": "/p"})",
           R"(entry 0: "thread-id" is string, not an integer)"},
      Case{R"({"cpu-index": 0, "thread-id": -5, "qom-path": "/p"})", R"(entry 0: "thread-id" is -5, below 0)"},
      Case{R"({"cpu-index": 0, "thread-id": 2147483648, "qom-path": "/p"})",
           R"(entry 0: "thread-id" is 2147483648, more than 2147483647)"},
      Case{R"({"cpu-index": 0, "thread-id": 0, "qom-path": "/p"})", R"(entry 0: "thread-id" is 0, not a thread id)"},
      Case{R"({"cpu-index": 0, "thread-id": 12.0, "qom-path": "/p"})",
           R"(entry 0: "thread-id" is a non-integral number, not an integer)"},
      Case{R"({"cpu-index": 0, "thread-id": 18446744073709551616, "qom-path": "/p"})",
           R"(entry 0: "thread-id" is a non-integral number, not an integer)"},
      Case{R"({"cpu-index": 0, "thread-id": -0, "qom-path": "/p"})", R"(entry 0: "thread-id" is 0, not a thread id)"},
      Case{R"({"cpu-index": 0, "thread-id": -9223372036854775809, "qom-path": "/p"})",
           R"(entry 0: "thread-id" is a non-integral number, not an integer)"},
      Case{R"({"cpu-index": 0, "qom-path": "/p"})", R"(entry 0: "thread-id" is missing)"},
      Case{R"({"thread-id": 5, "qom-path": "/p"})", R"(entry 0: "cpu-index" is missing)"},
      Case{R"({"cpu-index": 16384, "thread-id": 5, "qom-path": "/p"})",
           R"(entry 0: "cpu-index" is 16384, more than 16383)"},
      Case{R"({"cpu-index": null, "thread-id": 5, "qom-path": "/p"})",
           R"(entry 0: "cpu-index" is null, not an integer)"},
      Case{R"({"cpu-index": 0, "thread-id": 5})", R"(entry 0: "qom-path" is missing)"},
      Case{R"({"cpu-index": 0, "thread-id": 5, "qom-path": 5})", R"(entry 0: "qom-path" is number, not a string)"},
      Case{R"({"cpu-index": 0, "thread-id": 5, "qom-path": "/p", "props": "x"})",
           R"(entry 0: "props" is string, not an object)"},
      Case{R"({"cpu-index": 0, "thread-id": 5, "qom-path": "/p", "props": {"socket-id": true}})",
           R"(entry 0: props: "socket-id" is boolean, not an integer)"},
      Case{R"({"cpu-index": 0, "thread-id": 5, "qom-path": "/p", "props": {"core-id": 65536}})",
           R"(entry 0: props: "core-id" is 65536, more than 65535)"},
      Case{R"({"cpu-index": 0, "thread-id": 5, "qom-path": "/p"}, "cpu")", R"(entry 1 is string, not an object)"},
      Case{R"({"cpu-index": 3, "thread-id": 5, "qom-path": "/p"}, {"cpu-index": 3, "thread-id": 6, "qom-path": "/q"})",
           "cpu-index 3 appears twice"});
  FakeServer server(one_reply(R"({"return": [)" + c.entries + msg(R"(], "id": @ID@})")));
  QmpClient qmp(server.path(), patient);
  const Error e = error_of([&] { qmp.query_cpus_fast(); });
  CHECK(e.code() == ErrorCode::internal);
  CHECK(std::string(e.what()) == server.prefix() + "query-cpus-fast: bad reply: " + c.detail);
}

TEST_CASE("malformed replies to the other queries are bad replies") {
  struct Case {
    int query;  // 0 query-cpus-fast, 1 query-iothreads, 2 query-status, 3 query-name
    std::string reply, message;
  };
  const Case c = GENERATE(
      Case{0, R"({"return": {}, "id": @ID@})", R"(query-cpus-fast: bad reply: "return" is object, not an array)"},
      Case{0, R"({"id": @ID@})", R"(query-cpus-fast: bad reply: neither "return" nor "error")"},
      Case{0, R"({"error": "x", "id": @ID@})", R"(query-cpus-fast: bad reply: "error" is string, not an object)"},
      Case{0, R"({"error": {"class": "GenericError"}, "id": @ID@})",
           R"(query-cpus-fast: bad reply: "error": "desc" is missing)"},
      Case{0, R"({"error": {"class": "GenericError", "desc": "no"}, "id": @ID@})", "query-cpus-fast: GenericError: no"},
      Case{1, R"({"return": [{"thread-id": 5}], "id": @ID@})",
           R"(query-iothreads: bad reply: entry 0: "id" is missing)"},
      Case{1, R"({"return": [{"id": "a", "thread-id": -1}], "id": @ID@})",
           R"(query-iothreads: bad reply: entry 0: "thread-id" is -1, below 0)"},
      Case{1, R"({"return": [7], "id": @ID@})", R"(query-iothreads: bad reply: entry 0 is number, not an object)"},
      Case{2, R"({"return": {"running": true}, "id": @ID@})", R"(query-status: bad reply: "status" is missing)"},
      Case{2, R"({"return": "running", "id": @ID@})", R"(query-status: bad reply: "return" is string, not an object)"},
      Case{3, R"({"return": {"name": 5}, "id": @ID@})", R"(query-name: bad reply: "name" is number, not a string)"});
  FakeServer server(one_reply(c.reply + "\n"));
  QmpClient qmp(server.path(), patient);
  const Error e = error_of([&] {
    switch (c.query) {
      case 0:
        qmp.query_cpus_fast();
        break;
      case 1:
        qmp.query_iothreads();
        break;
      case 2:
        qmp.query_status();
        break;
      default:
        qmp.query_name();
        break;
    }
  });
  CHECK(e.code() == ErrorCode::internal);
  CHECK(std::string(e.what()) == server.prefix() + c.message);
}

TEST_CASE("query-cpus-fast takes limits::max_vcpus cpus and no more") {
  // values(): Catch2 2.13's GENERATE(a, b) keeps a dangling reference to an rvalue among lvalues.
  const std::size_t count = GENERATE(values<std::size_t>({vcpumap::limits::max_vcpus, vcpumap::limits::max_vcpus + 1}));
  std::string entries;
  for (std::size_t i = 0; i < count; ++i) {
    if (i > 0) entries += ", ";
    entries += cpu_entry(static_cast<unsigned>(i % vcpumap::limits::max_vcpus), 1000 + static_cast<long long>(i));
  }
  FakeServer server(one_reply(R"({"return": [)" + entries + msg(R"(], "id": @ID@})")));
  QmpClient qmp(server.path(), patient);
  if (count == vcpumap::limits::max_vcpus) {
    const std::vector<QmpCpu> cpus = qmp.query_cpus_fast();
    REQUIRE(cpus.size() == count);
    CHECK(cpus.back().cpu_index == count - 1);
    CHECK(cpus.back().thread_id == 1000 + static_cast<long long>(count) - 1);
  } else {
    const Error e = error_of([&] { qmp.query_cpus_fast(); });
    CHECK(e.code() == ErrorCode::internal);
    CHECK(std::string(e.what()) == server.prefix() + "query-cpus-fast: bad reply: 16385 cpus, more than 16384");
  }
}

TEST_CASE("the client's socket is close-on-exec") {
  FakeServer server([](Peer& peer) {
    peer.greet();
    peer.wait_for_close();
  });
  QmpClient qmp(server.path(), patient);
  int sockets = 0;
  for (const auto& entry : std::filesystem::directory_iterator("/proc/self/fd")) {
    std::error_code ec;
    const std::string target = std::filesystem::read_symlink(entry.path(), ec).string();
    if (ec || target.rfind("socket:", 0) != 0) continue;
    const int fd = std::stoi(entry.path().filename().string());
    CHECK((::fcntl(fd, F_GETFD) & FD_CLOEXEC) != 0);  // the test's own sockets are too
    ++sockets;
  }
  CHECK(sockets >= 3);  // the listener, the accepted end, the client
}

TEST_CASE("moving a client") {
  FakeServer server(one_reply(msg(R"({"return": {"status": "running"}, "id": @ID@})")));
  QmpClient first(server.path(), patient);
  QmpClient second = std::move(first);
  CHECK(second.query_status() == "running");
  const Error e = error_of(
      [&] { first.query_status(); });  // NOLINT(bugprone-use-after-move,clang-analyzer-cplusplus.Move): on purpose
  CHECK(e.code() == ErrorCode::internal);
  CHECK(std::string(e.what()) == "QMP client: used after a move");
}

TEST_CASE("socket paths that cannot be connected to") {
  TempDir dir;
  SECTION("no such file") {
    const std::string path = dir.path() + "/nope\x1b[31m.sock";
    const Error e = error_of([&] { QmpClient qmp(path, patient); });
    CHECK(e.code() == ErrorCode::not_found);
    CHECK(std::string(e.what()) ==
          "QMP socket " + dir.path() +
              "/nope\\x1b[31m.sock: connect: No such file or directory (ENOENT): no such socket");
  }
  SECTION("a directory on the way is a file") {
    const std::string file = dir.path() + "/file";
    std::fclose(std::fopen(file.c_str(), "w"));
    const Error e = error_of([&] { QmpClient qmp(file + "/qmp.sock", patient); });
    CHECK(e.code() == ErrorCode::not_found);
  }
  SECTION("a socket nobody listens on") {
    const std::string path = dir.path() + "/dead.sock";
    ::close(listen_at(path, 1));  // the file stays, the listener is gone
    const Error e = error_of([&] { QmpClient qmp(path, patient); });
    CHECK(e.code() == ErrorCode::not_found);
    CHECK(std::string(e.what()) ==
          "QMP socket " + path + ": connect: Connection refused (ECONNREFUSED): nobody listening (QEMU exited?)");
  }
  SECTION("107 bytes fit, 108 do not") {
    const std::string longest = "/tmp/" + std::string(102, 'a');
    REQUIRE(longest.size() == 107);
    CHECK(error_of([&] { QmpClient qmp(longest, patient); }).code() == ErrorCode::not_found);
    const Error e = error_of([&] { QmpClient qmp(longest + "a", patient); });
    CHECK(e.code() == ErrorCode::invalid_argument);
    CHECK(std::string(e.what()) == "QMP socket " + longest + "a: path of 108 bytes, longer than a UNIX socket's 107");
  }
  SECTION("empty, or with a NUL byte") {
    CHECK(error_of([&] { QmpClient qmp("", patient); }).code() == ErrorCode::invalid_argument);
    CHECK(error_of([&] { QmpClient qmp(std::string("/tmp/a\0b", 8), patient); }).code() == ErrorCode::invalid_argument);
  }
  SECTION("a timeout that is not positive") {
    const Error e = error_of([&] { QmpClient qmp(dir.path() + "/x.sock", 0ms); });
    CHECK(e.code() == ErrorCode::invalid_argument);
    CHECK(std::string(e.what()) == "QMP socket " + dir.path() + "/x.sock: timeout of 0 ms: not positive");
  }
}

TEST_CASE("a socket the caller may not reach is permission_denied") {
  // Root passes every permission check, so the attempt runs in a child that drops to nobody.
  TempDir dir;
  const std::string locked = dir.path() + "/locked";
  REQUIRE(::mkdir(locked.c_str(), 0700) == 0);
  const int listener = listen_at(locked + "/qmp.sock", 1);
  REQUIRE(::chmod(dir.path().c_str(), 0755) == 0);
  if (::geteuid() != 0) REQUIRE(::chmod(locked.c_str(), 0) == 0);
  const pid_t child = ::fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    if (::geteuid() == 0 && (::setgid(65534) != 0 || ::setuid(65534) != 0)) ::_exit(10);
    try {
      QmpClient qmp(locked + "/qmp.sock", patient);
    } catch (const Error& e) {
      const bool expected =
          e.code() == ErrorCode::permission_denied &&
          std::string(e.what()) == "QMP socket " + locked + "/qmp.sock: connect: Permission denied (EACCES)";
      ::_exit(expected ? 0 : 11);
    }
    ::_exit(12);
  }
  int status = 0;
  REQUIRE(::waitpid(child, &status, 0) == child);
  ::chmod(locked.c_str(), 0700);
  ::close(listener);
  REQUIRE(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
}
