// backend.hpp — what the example tools share: the backend options, argument reading, exit codes.
//
//   int main(int argc, char** argv) {
//     return examples::run("vcpu-list", usage, [&] { examples::Args args(argc, argv); ...; return 0; });
//   }
//
// Backend options of every tool: --backend=auto|xen|linux|mock, --qmp SOCKET (linux: a QMP
// socket of a guest you started, repeatable), --fixture FILE (a MockHypervisor fixture, see
// vcpumap/fixture.hpp), --persist (write the mock host back to FILE when the command changed
// it, so that commands can be chained without Xen: the file is locked from its read to its
// replacement, and replaced atomically). auto takes Xen when /dev/xen/privcmd is usable,
// else Linux when QEMU guests run here; else a tool that only reads uses the demo host of the
// 2006 libvir-list thread and says so on stderr in one line, and a tool that changes the
// host (vcpu-pin, vcpu-set, vcpu-balance --apply) fails, changing nothing.
//
// Exit codes: 0 success; 1 an operation failed (no such domain, vcpu or CPU on this host, the
// hypervisor refused); 2 a usage error (unknown option, missing or malformed argument).
//
// For tests: VCPUMAP_MOCK_FAIL_CALL=K makes the K-th backend call of a mock fail (busy).
//
// This is the one file that knows whether the Xen and Linux backends were built (meson sets
// VCPUMAP_EXAMPLES_WITH_XEN and VCPUMAP_EXAMPLES_WITH_LINUX); the tools see
// vcpumap::AnyHypervisor, and LinuxHypervisor through linux_backend() for what only it has
// (emulator and IOThreads).
#pragma once

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
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
#if VCPUMAP_EXAMPLES_WITH_LINUX
#include <vcpumap/linux.hpp>
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
    "  --backend=auto|xen|linux|mock  auto (default): Xen when /dev/xen/privcmd is usable, else\n"
    "                           Linux when QEMU guests run here, else (for reading only) the demo host\n"
    "  --qmp SOCKET             linux: the QMP socket of a guest you started (not libvirt's; repeat\n"
    "                           for several guests); without it vcpus are found by thread name\n"
    "  --fixture FILE           the mock host described in FILE (default: the demo host of the\n"
    "                           2006 libvir-list thread, 4 CPUs, Domain-0 + xperf1 + xperf2)\n"
    "  --persist                write the mock host back to FILE when the command changed it\n"
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

/// Runs op() (a backend call about domain d); an Error whose message does not name the domain
/// yet is thrown again with "domain N (name): " in front, so every error line names it.
template <class Op>
auto about(const DomainInfo& d, Op&& op) -> decltype(op()) {
  try {
    return op();
  } catch (const Error& e) {
    const std::string who = vcpumap::describe(d);
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
  throw Error(ErrorCode::not_found, fmt::format("no such domain '{}'", escape_terminal(which)));
}
inline std::size_t find_domain(const std::vector<DomainInfo>& domains, std::string_view which) {
  return find_domain(domains, which, [](const DomainInfo& d) -> const DomainInfo& { return d; });
}

/// Reads a set argument (`what` names it in errors): malformed text is a usage error; a
/// member at or beyond `universe` (a CPU the host lacks, a vcpu the domain lacks), however
/// large its number, is an operation error, worded by beyond(number): the number as written
/// in a list, or nothing when the text is a mask.
template <class Set, class Beyond>
Set parse_set(std::string_view what, std::string_view text, const ParseOptions& options, Beyond beyond) {
  try {
    return Set::parse(text, options);
  } catch (const ParseError& e) {
    if (!e.out_of_range()) throw Usage(fmt::format("{}: {}", what, e.what()));
    const bool digits = [&] {
      for (char c : text)
        if (c != ' ' && c != '\t' && c != ',' && c != '-' && c != '^' && c != ':' && c != '/' && (c < '0' || c > '9'))
          return false;
      return options.form == TextForm::list || options.form == TextForm::xl_list;
    }();
    std::size_t at = e.column() - 1, end = at;  // in a decimal list: the number the column points at
    while (digits && end < text.size() && text[end] >= '0' && text[end] <= '9') ++end;
    throw Error(ErrorCode::invalid_argument,
                beyond(end > at ? std::optional<std::string_view>(text.substr(at, end - at)) : std::nullopt));
  }
}

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

// ---- and whether the Linux backend was ----

/// A guest's thread beside its vcpus (Linux: the emulator, an IOThread).
struct HelperThread {
  bool emulator = true;
  std::string iothread;  // its id, for an IOThread
  int tid = 0;
  VcpuMetrics metrics;
  CpuMap hard, limit;
};
/// What a helper-thread option needs: the Linux backend.
constexpr std::string_view linux_only = "needs the linux backend (--backend=linux): only QEMU guests have";

#if VCPUMAP_EXAMPLES_WITH_LINUX
inline bool linux_guests_present() { return LinuxHypervisor::guests_present(); }
inline AnyHypervisor open_linux(std::vector<std::string> qmp) {
  LinuxOptions o;
  o.qmp_sockets = std::move(qmp);
  return AnyHypervisor(std::in_place_type<LinuxHypervisor>, std::move(o));
}
inline LinuxHypervisor& require_linux(AnyHypervisor& hv, std::string_view option) {
  if (auto* lx = hv.target<LinuxHypervisor>()) return *lx;
  throw Usage(fmt::format("{} {} emulator and I/O threads", option, linux_only));
}
/// Throws Usage unless the backend has helper threads (the Linux one).
inline void require_helper_threads(AnyHypervisor& hv, std::string_view option) { (void)require_linux(hv, option); }
/// The emulator thread and IOThreads of a guest.
inline std::vector<HelperThread> helper_threads(AnyHypervisor& hv, std::string_view option, DomainId domain) {
  std::vector<HelperThread> out;
  for (GuestThread& t : require_linux(hv, option).threads(domain))
    out.push_back({t.kind == GuestThread::Kind::emulator, std::move(t.iothread), t.tid, t.metrics, std::move(t.hard),
                   std::move(t.limit)});
  return out;
}
/// Pins a guest's emulator thread (iothread empty) or an IOThread; returns the affinity read back.
inline CpuMap pin_helper_thread(AnyHypervisor& hv, std::string_view option, DomainId domain,
                                const std::optional<std::string>& iothread, const CpuMap& cpus) {
  LinuxHypervisor& lx = require_linux(hv, option);
  return iothread ? lx.pin_iothread(domain, *iothread, cpus) : lx.pin_emulator(domain, cpus);
}
#else
inline bool linux_guests_present() { return false; }
inline AnyHypervisor open_linux(std::vector<std::string>) {
  throw Error(ErrorCode::hypervisor_unavailable, "this build has no Linux backend (nlohmann-json was not found)");
}
inline void require_helper_threads(AnyHypervisor&, std::string_view option) {
  throw Usage(fmt::format("{} {} emulator and I/O threads", option, linux_only));
}
inline std::vector<HelperThread> helper_threads(AnyHypervisor&, std::string_view option, DomainId) {
  throw Usage(fmt::format("{} {} emulator and I/O threads", option, linux_only));
}
inline CpuMap pin_helper_thread(AnyHypervisor&, std::string_view option, DomainId, const std::optional<std::string>&,
                                const CpuMap&) {
  throw Usage(fmt::format("{} {} emulator and I/O threads", option, linux_only));
}
#endif

/// What a tool does with the host: only reads it, or changes it (pins, online vcpus).
enum class Access { read, change };

/// The backend options of every tool, and the backend they open.
class Backend {
 public:
  /// Takes the current argument if it is a backend option (or --help); false otherwise.
  bool parse(Args& args) {
    if (args.is("--help") || args.is("-h")) throw Help{};
    if (auto kind = args.value("--backend")) {
      if (*kind != "auto" && *kind != "xen" && *kind != "linux" && *kind != "mock")
        throw Usage(fmt::format("--backend is auto, xen, linux or mock, not '{}'", escape_terminal(*kind)));
      kind_ = *kind;
    } else if (auto socket = args.value("--qmp")) {
      if (socket->empty()) throw Usage("--qmp needs a socket path");
      qmp_.push_back(*socket);
    } else if (auto file = args.value("--fixture")) {
      if (file->empty()) throw Usage("--fixture needs a file name");
      fixture_ = *file;
    } else if (args.is("--persist")) {
      persist_ = true;
    } else {
      return false;
    }
    given_ = true;
    return true;
  }
  /// Whether a backend option was given (a tool that can work without a host opens one then).
  bool given() const noexcept { return given_; }

  /// Opens the chosen backend, once. follow_real_time: a mock's running vcpus accrue real
  /// time. A tool that only reads may fall back to the demo host when auto finds no usable
  /// Xen (saying so on stderr); one that changes the host never does: a pin of the demo
  /// host would report a success that changed nothing real.
  AnyHypervisor& open(std::string_view tool, Access access, bool follow_real_time = false) {
    if ((kind_ == "xen" || kind_ == "linux") && !fixture_.empty())
      throw Usage(fmt::format("--fixture is for the mock backend, not for {}", kind_));
    if (!qmp_.empty() && kind_ != "linux" && kind_ != "auto") throw Usage("--qmp is for the linux backend");
    if (persist_ && fixture_.empty()) throw Usage("--persist needs --fixture FILE");
    if (kind_ == "xen") return hv_.emplace(open_xen());
    if (kind_ == "linux") return hv_.emplace(open_linux(qmp_));
    if (kind_ == "auto" && fixture_.empty()) {
      std::string why(no_xen_reason);
      if (xen_usable()) {
        try {
          return hv_.emplace(open_xen());
        } catch (const Error& e) {
          why = e.what();
        }
      }
      if (!qmp_.empty() || linux_guests_present()) return hv_.emplace(open_linux(qmp_));
      why += " and no QEMU guest runs here";
      if (access == Access::change)
        throw Error(ErrorCode::hypervisor_unavailable,
                    fmt::format("{}: nothing changed: {} changes a real hypervisor's domains, and only reading tools "
                                "fall back to the demo host (try it there with --backend=mock, or keep the changes "
                                "with --fixture FILE --persist)",
                                why, tool));
      fmt::print(stderr, "{}: {}: using the built-in demo host (libvir-list, 2006-06-26)\n", tool, terminal_safe(why));
    }
    if (persist_) file_.emplace(fixture_);  // locked until this Backend is gone: concurrent tools take turns
    MockHypervisor mock = file_              ? MockHypervisor::from_snapshot(file_->host())
                          : fixture_.empty() ? MockHypervisor::demo()
                                             : MockHypervisor::from_fixture_file(fixture_);
    if (follow_real_time) mock.follow_real_time(true);
    if (const char* k = std::getenv("VCPUMAP_MOCK_FAIL_CALL"))
      mock.fail_call(parse_count("VCPUMAP_MOCK_FAIL_CALL", k), ErrorCode::busy);
    return hv_.emplace(std::move(mock));
  }

  /// With --persist: writes the mock host back to its file when the command changed it
  /// (whether the command succeeded or not: a failed rollback's changes are real), atomically;
  /// else leaves the file untouched, comments and all. Throws Error when writing fails (the
  /// file is then as it was).
  void finish() {
    if (!file_ || !hv_) return;
    if (const MockHypervisor* mock = hv_->target<MockHypervisor>()) file_->commit(mock->state());
  }

 private:
  std::string kind_ = "auto";
  std::string fixture_;
  std::vector<std::string> qmp_;
  bool persist_ = false;
  bool given_ = false;
  std::optional<FixtureFile> file_;
  std::optional<AnyHypervisor> hv_;
};

/// Runs a tool: body(Backend&) -> exit code. What it throws becomes one line on stderr
/// (escaped for the terminal) and an exit code; then --persist writes the host back, and
/// standard output is flushed: a write error there (a full disk, a closed pipe) is a failure,
/// never a silent exit 0.
template <class Body>
int run(std::string_view tool, std::string_view usage, Body&& body) noexcept {
  std::signal(SIGXFSZ, SIG_IGN);  // past a file size limit a write fails (EFBIG) and is reported
  std::signal(SIGPIPE, SIG_IGN);  // a closed pipe is a write error (EPIPE), reported like the others
  int code = 1;
  auto say = [&](std::string_view message) {
    try {
      fmt::print(stderr, "{}: {}\n", tool, terminal_safe(message));
    } catch (...) {
    }
  };
  try {
    Backend backend;
    try {
      code = body(backend);
    } catch (const Help&) {
      fmt::print("{}{}", usage, backend_usage);
      code = 0;
    } catch (const Usage& e) {
      say(fmt::format("{} (see {} --help)", e.what(), tool));
      code = 2;
    } catch (const std::exception& e) {  // vcpumap::Error and the rest: the operation failed
      say(e.what());
      code = 1;
    }
    try {
      backend.finish();
    } catch (const std::exception& e) {
      say(e.what());
      code = std::max(code, 1);
    }
  } catch (const std::exception& e) {
    say(e.what());
    code = std::max(code, 1);
  } catch (...) {
    code = std::max(code, 1);
  }
  if (std::fflush(stdout) != 0 || std::ferror(stdout)) {
    say(fmt::format("error writing standard output: {}", std::strerror(errno)));
    code = std::max(code, 1);
  }
  return code;
}

}  // namespace examples
