// backend.hpp — what the example tools share: the backend options, argument reading, exit codes.
//
//   int main(int argc, char** argv) {
//     return examples::run("vcpu-list", usage, [&] { examples::Args args(argc, argv); ...; return 0; });
//   }
//
// Backend options of every tool: --backend=auto|xen|mock, --fixture FILE (a MockHypervisor
// fixture, see vcpumap/mock.hpp), --persist (write the mock host back to FILE when done, so
// that commands can be chained without Xen). auto takes Xen when /dev/xen/privcmd is usable,
// else the demo host of the 2006 libvir-list thread, and says so on stderr in one line.
//
// Exit codes: 0 success; 1 an operation failed (no such domain, vcpu or CPU on this host, the
// hypervisor refused); 2 a usage error (unknown option, missing or malformed argument).
//
// For tests: VCPUMAP_MOCK_FAIL_CALL=K makes the K-th backend call of a mock fail (busy).
//
// This is the one file that knows whether the Xen backend was built (meson sets
// VCPUMAP_EXAMPLES_WITH_XEN); the tools see only vcpumap::AnyHypervisor.
#pragma once

#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <vcpumap/any_hypervisor.hpp>
#include <vcpumap/vcpumap.hpp>

#if VCPUMAP_EXAMPLES_WITH_XEN
#include <vcpumap/xen.hpp>
#endif

namespace examples {

using namespace vcpumap;

/// A usage error: exit code 2.
struct Usage : std::runtime_error {
  using std::runtime_error::runtime_error;
};
/// --help was asked: print the usage, exit 0.
struct Help {};

constexpr std::string_view backend_usage =
    "backend:\n"
    "  --backend=auto|xen|mock  auto (default): Xen when /dev/xen/privcmd is usable, else the demo host\n"
    "  --fixture FILE           the mock host described in FILE (default: the demo host of the\n"
    "                           2006 libvir-list thread, 4 CPUs, Domain-0 + xperf1 + xperf2)\n"
    "  --persist                write the mock host back to FILE when done (chains commands)\n"
    "  -h, --help               this help\n"
    "exit status: 0 success, 1 the operation failed, 2 usage error\n";

/// A cursor over argv: options as "--name=value" or "--name value", "--" ends options.
class Args {
 public:
  Args(int argc, char** argv) : args_(argv + 1, argv + argc) {}
  /// Moves to the next argument; false at the end.
  bool next() {
    if (at_ >= args_.size()) return false;
    current_ = args_[at_++];
    if (!options_ended_ && current_ == "--") {
      options_ended_ = true;
      return next();
    }
    return true;
  }
  const std::string& current() const noexcept { return current_; }
  bool is(std::string_view flag) const noexcept { return !options_ended_ && current_ == flag; }
  /// The value of option `name` if the current argument is it, else nothing.
  std::optional<std::string> value(std::string_view name) {
    if (options_ended_ || current_.compare(0, name.size(), name) != 0) return std::nullopt;
    if (current_.size() > name.size() && current_[name.size()] == '=') return current_.substr(name.size() + 1);
    if (current_.size() != name.size()) return std::nullopt;
    if (at_ >= args_.size()) throw Usage(fmt::format("{} needs a value", name));
    return args_[at_++];
  }
  /// Not an option: "-" and anything after "--" count as positional.
  bool positional() const noexcept {
    return options_ended_ || current_ == "-" || current_.empty() || current_[0] != '-';
  }
  [[noreturn]] void unknown() const { throw Usage(fmt::format("unknown option '{}'", current_)); }

 private:
  std::vector<std::string> args_;
  std::size_t at_ = 0;
  std::string current_;
  bool options_ended_ = false;
};

/// A whole number for option `what`.
inline unsigned parse_count(std::string_view what, std::string_view text) {
  unsigned n = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size())
    throw Usage(fmt::format("{} needs a whole number, not '{}'", what, text));
  return n;
}
/// A number of seconds >= 0 (decimals allowed) for option `what`.
inline double parse_seconds(std::string_view what, const std::string& text) {
  char* end = nullptr;
  const double s = std::strtod(text.c_str(), &end);
  if (text.empty() || *end != '\0' || !std::isfinite(s) || s < 0 || s > 1e6)
    throw Usage(fmt::format("{} needs a number of seconds, not '{}'", what, text));
  return s;
}

/// "domain 3 (xperf2)": how messages name a domain.
inline std::string describe(const DomainInfo& d) {
  return d.name.empty() ? fmt::format("domain {}", d.id) : fmt::format("domain {} ({})", d.id, d.name);
}

/// Runs op() (a backend call about domain d); an Error whose message does not name the domain
/// yet is thrown again with "domain N (name): " in front, so every error line names it.
template <class Op>
auto about(const DomainInfo& d, Op&& op) -> decltype(op()) {
  try {
    return op();
  } catch (const Error& e) {
    const std::string who = describe(d);
    if (std::string_view(e.what()).starts_with(who)) throw;
    throw Error(e.code(), fmt::format("{}: {}", who, e.what()));
  }
}

/// The index in `items` of the domain `which` names: an id when it is all digits, else a name.
template <class T, class InfoOf>
std::size_t find_domain(const std::vector<T>& items, std::string_view which, InfoOf info_of) {
  const bool numeric = !which.empty() && which.find_first_not_of("0123456789") == std::string_view::npos;
  for (std::size_t i = 0; i < items.size(); ++i) {
    const DomainInfo& d = info_of(items[i]);
    if (numeric ? std::to_string(to_integer(d.id)) == which : d.name == which) return i;
  }
  throw Error(ErrorCode::not_found, fmt::format("no such domain '{}'", which));
}
inline std::size_t find_domain(const std::vector<DomainInfo>& domains, std::string_view which) {
  return find_domain(domains, which, [](const DomainInfo& d) -> const DomainInfo& { return d; });
}

/// Reads a set argument (`what` names it in errors): malformed text is a usage error; a
/// member at or beyond `universe` (a CPU the host lacks, a vcpu the domain lacks) is an
/// operation error, worded by beyond(member).
template <class Set, class Beyond>
Set parse_set(std::string_view what, std::string_view text, ParseOptions options, Beyond beyond) {
  ParseOptions loose = options;
  loose.universe.reset();
  if (auto set = Set::try_parse(text, loose); set && set->last() && *set->last() >= *options.universe)
    throw Error(ErrorCode::invalid_argument, beyond(*set->last()));
  try {
    return Set::parse(text, options);
  } catch (const ParseError& e) {
    throw Usage(fmt::format("{}: {}", what, e.what()));
  }
}

/// Writes a host in MockHypervisor's fixture format; from_fixture reads it back unchanged.
inline std::string to_fixture(const HostSnapshot& snap) {
  const HostInfo& h = snap.host;
  auto list = [](const CpuMap& m) { return m.empty() ? std::string("none") : m.to_string(); };
  std::string out =
      fmt::format("host cpus={} present={} online={} threads_per_core={} cores_per_socket={} sockets={}\n",
                  h.cpu_universe(), list(h.present), list(h.online), h.threads_per_core, h.cores_per_socket, h.sockets);
  for (std::size_t n = 0; n < h.numa_nodes.size(); ++n) out += fmt::format("node {} {}\n", n, list(h.numa_nodes[n]));
  for (const DomainSnapshot& d : snap.domains) {
    const DomainFlags& f = d.domain.flags;
    std::vector<std::string_view> flags;
    const std::pair<bool, std::string_view> named[] = {{f.running, "running"},
                                                       {f.blocked, "blocked"},
                                                       {f.paused, "paused"},
                                                       {f.shutdown, "shutdown"},
                                                       {f.dying, "dying"}};
    for (auto [on, name] : named)
      if (on) flags.push_back(name);
    std::chrono::nanoseconds sum{0};
    for (const VcpuMetrics& m : d.vcpus) sum += m.cpu_time;
    out += fmt::format("domain {} {} vcpus={}", d.domain.id, d.domain.name, d.domain.max_vcpus);
    if (!flags.empty()) out += fmt::format(" flags={}", fmt::join(flags, ","));
    if (d.domain.cpu_time != sum)  // fixture times are seconds: keep an explicit time exact
      out += fmt::format(" time={}.{:09}", d.domain.cpu_time.count() / 1'000'000'000,
                         d.domain.cpu_time.count() % 1'000'000'000);
    out += '\n';
    for (const VcpuMetrics& m : d.vcpus) {
      const VcpuState state = m.state == VcpuState::unknown ? VcpuState::blocked : m.state;
      out += fmt::format("vcpu {} state={}", m.vcpu, state);
      if (m.cpu) out += fmt::format(" cpu={}", *m.cpu);
      out += fmt::format(" time_ns={} hard={} soft={}\n", m.cpu_time.count(), list(d.hard.row(m.vcpu)),
                         list(d.soft.row(m.vcpu)));
    }
  }
  return out;
}

/// A MockHypervisor that writes its host back to a fixture file when destroyed (--persist),
/// whether the command succeeded or not: what a failed transaction left is visible.
class PersistedMock {
 public:
  PersistedMock(MockHypervisor mock, std::string path) : mock_(std::move(mock)), path_(std::move(path)) {}
  PersistedMock(PersistedMock&& o) noexcept : mock_(std::move(o.mock_)), path_(std::exchange(o.path_, {})) {}
  PersistedMock& operator=(PersistedMock&&) = delete;
  ~PersistedMock() {
    if (path_.empty()) return;
    for (int attempt = 1;; ++attempt) {
      try {
        const std::string text = to_fixture(mock_.snapshot_all());
        std::ofstream(path_, std::ios::trunc) << text;
        return;
      } catch (const Error& e) {  // busy: an injected failure (VCPUMAP_MOCK_FAIL_CALL) not yet used
        if (e.code() == ErrorCode::busy && attempt < 3) continue;
        fmt::print(stderr, "warning: could not write the mock host back to {}: {}\n", path_, e.what());
        return;
      }
    }
  }
  HostInfo host_info() { return mock_.host_info(); }
  std::vector<DomainInfo> list_domains() { return mock_.list_domains(); }
  DomainSnapshot snapshot(DomainId d, SnapshotScope s) { return mock_.snapshot(d, s); }
  void snapshot(DomainId d, SnapshotScope s, DomainSnapshot& into) { mock_.snapshot(d, s, into); }
  HostSnapshot snapshot_all(SnapshotScope s) { return mock_.snapshot_all(s); }
  void snapshot_all(SnapshotScope s, HostSnapshot& into) { mock_.snapshot_all(s, into); }
  PinResult pin_vcpu(DomainId d, unsigned v, const VcpuPin& p) { return mock_.pin_vcpu(d, v, p); }
  MatrixPinResult pin_matrix(DomainId d, const MatrixPin& p) { return mock_.pin_matrix(d, p); }
  std::size_t last_call_count() const noexcept { return mock_.last_call_count(); }

 private:
  MockHypervisor mock_;
  std::string path_;
};

// ---- the one place that knows whether Xen was built ----
#if VCPUMAP_EXAMPLES_WITH_XEN
inline bool xen_usable() { return XenHypervisor::available(); }
inline AnyHypervisor open_xen() { return AnyHypervisor(std::in_place_type<XenHypervisor>); }
constexpr std::string_view no_xen_reason = "Xen is not usable here (no /dev/xen/privcmd)";
#else
inline bool xen_usable() { return false; }
inline AnyHypervisor open_xen() {
  throw Error(ErrorCode::hypervisor_unavailable, "this build has no Xen backend (libxenctrl was not found)");
}
constexpr std::string_view no_xen_reason = "built without Xen";
#endif

/// The backend options of every tool.
class Backend {
 public:
  /// Takes the current argument if it is a backend option (or --help); false otherwise.
  bool parse(Args& args) {
    if (args.is("--help") || args.is("-h")) throw Help{};
    if (auto kind = args.value("--backend")) {
      if (*kind != "auto" && *kind != "xen" && *kind != "mock")
        throw Usage(fmt::format("--backend is auto, xen or mock, not '{}'", *kind));
      kind_ = *kind;
    } else if (auto file = args.value("--fixture")) {
      fixture_ = *file;
    } else if (args.is("--persist")) {
      persist_ = true;
    } else {
      return false;
    }
    return true;
  }

  /// Opens the chosen backend. follow_real_time: a mock's running vcpus accrue real time.
  AnyHypervisor open(std::string_view tool, bool follow_real_time = false) const {
    if (kind_ == "xen" && !fixture_.empty()) throw Usage("--fixture is for the mock backend, not for xen");
    if (persist_ && fixture_.empty()) throw Usage("--persist needs --fixture FILE");
    if (kind_ == "xen") return open_xen();
    if (kind_ == "auto" && fixture_.empty()) {
      std::string why(no_xen_reason);
      if (xen_usable()) {
        try {
          return open_xen();
        } catch (const Error& e) {
          why = e.what();
        }
      }
      fmt::print(stderr, "{}: {}: using the built-in demo host (libvir-list, 2006-06-26)\n", tool, why);
    }
    MockHypervisor mock = fixture_.empty() ? MockHypervisor::demo() : MockHypervisor::from_fixture_file(fixture_);
    if (follow_real_time) mock.follow_real_time(true);
    if (const char* k = std::getenv("VCPUMAP_MOCK_FAIL_CALL"))
      mock.fail_call(parse_count("VCPUMAP_MOCK_FAIL_CALL", k), ErrorCode::busy);
    if (persist_) return AnyHypervisor(PersistedMock(std::move(mock), fixture_));
    return AnyHypervisor(std::move(mock));
  }

 private:
  std::string kind_ = "auto";
  std::string fixture_;
  bool persist_ = false;
};

/// Runs a tool's body and turns what it throws into one line on stderr and an exit code.
template <class Body>
int run(std::string_view tool, std::string_view usage, Body&& body) noexcept {
  try {
    try {
      return body();
    } catch (const Help&) {
      fmt::print("{}{}", usage, backend_usage);
      return 0;
    } catch (const Usage& e) {
      fmt::print(stderr, "{}: {} (see {} --help)\n", tool, e.what(), tool);
      return 2;
    } catch (const std::exception& e) {  // vcpumap::Error and the rest: the operation failed
      fmt::print(stderr, "{}: {}\n", tool, e.what());
      return 1;
    }
  } catch (...) {  // printing itself failed (stdout closed...)
    return 1;
  }
}

}  // namespace examples
