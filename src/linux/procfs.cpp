// src/linux/procfs.cpp — parsers of /proc and /sys text (see procfs.hpp).
#include "procfs.hpp"

#include <algorithm>
#include <charconv>
#include <limits>

namespace vcpumap::detail {

namespace {

/// Splits on any run of the blanks in `seps`, at most `most` pieces (the rest ignored).
std::vector<std::string_view> split(std::string_view text, std::string_view seps, std::size_t most) {
  std::vector<std::string_view> out;
  std::size_t i = 0;
  while (out.size() < most) {
    i = text.find_first_not_of(seps, i);
    if (i == std::string_view::npos) break;
    std::size_t end = text.find_first_of(seps, i);
    if (end == std::string_view::npos) end = text.size();
    out.push_back(text.substr(i, end - i));
    i = end;
  }
  return out;
}

std::string_view basename_of(std::string_view path) {
  const auto slash = path.rfind('/');
  return slash == std::string_view::npos ? path : path.substr(slash + 1);
}

/// A cgroup path as the kernel prints it: absolute, no "..", no NUL.
bool sane_cgroup_path(std::string_view p) {
  if (p.empty() || p[0] != '/' || p.find('\0') != std::string_view::npos) return false;
  for (std::string_view part : split(p, "/", std::numeric_limits<std::size_t>::max()))
    if (part == "..") return false;
  return true;
}

/// mountinfo's octal escapes (\040 blank, \011 tab, \012 newline, \134 backslash).
std::string unescape_mount(std::string_view s) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && s.size() - i >= 4 && s[i + 1] >= '0' && s[i + 1] <= '3' && s[i + 2] >= '0' && s[i + 2] <= '7' && s[i + 3] >= '0' &&
        s[i + 3] <= '7') {
      out += static_cast<char>((s[i + 1] - '0') * 64 + (s[i + 2] - '0') * 8 + (s[i + 3] - '0'));
      i += 3;
    } else {
      out += s[i];
    }
  }
  return out;
}

/// The comma-separated properties of a QEMU option value, ",," unescaped, each split at its
/// first '=' (key empty for a bare value).
std::vector<std::pair<std::string, std::string>> qemu_properties(std::string_view value) {
  std::vector<std::pair<std::string, std::string>> out;
  std::string current;
  auto flush = [&] {
    const auto eq = current.find('=');
    if (eq == std::string::npos) out.emplace_back(std::string(), current);
    else out.emplace_back(current.substr(0, eq), current.substr(eq + 1));
    current.clear();
  };
  for (std::size_t i = 0; i < value.size(); ++i) {
    if (value[i] == ',') {
      if (i + 1 < value.size() && value[i + 1] == ',') {
        current += ',';
        ++i;
        continue;
      }
      flush();
    } else {
      current += value[i];
    }
  }
  flush();
  return out;
}

bool is_uuid_text(std::string_view t) {
  if (t.size() != 36) return false;
  for (std::size_t i = 0; i < t.size(); ++i) {
    const bool dash = i == 8 || i == 13 || i == 18 || i == 23;
    const char c = t[i];
    const bool hex = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
    if (dash ? c != '-' : !hex) return false;
  }
  return true;
}

/// -smp's properties into a vcpu count (see QemuCommandLine::max_vcpus).
std::optional<std::uint64_t> smp_max_vcpus(std::string_view value, std::uint64_t limit) {
  std::optional<std::uint64_t> cpus, maxcpus;
  std::uint64_t product = 1;
  bool topology = false;
  for (const auto& [key, val] : qemu_properties(value)) {
    if (key.empty() && val.empty()) continue;
    const auto n = parse_decimal(val, limit);
    if (!n) return std::nullopt;
    if (key.empty() || key == "cpus") cpus = *n;
    else if (key == "maxcpus") maxcpus = *n;
    else if (key == "sockets" || key == "dies" || key == "clusters" || key == "cores" || key == "threads" ||
             key == "books" || key == "drawers") {
      topology = true;
      if (*n == 0 || product > limit / *n) return std::nullopt;
      product *= *n;
    } else {
      return std::nullopt;  // a property this reader does not know: say so, do not guess
    }
  }
  std::uint64_t n = maxcpus ? *maxcpus : topology ? product : cpus ? *cpus : 1;
  if (cpus && *cpus > n) n = *cpus;
  if (n == 0) n = cpus && *cpus > 0 ? *cpus : 1;
  return n <= limit ? std::optional(n) : std::nullopt;
}

}  // namespace

std::optional<std::uint64_t> parse_decimal(std::string_view text, std::uint64_t max) {
  if (text.empty() || text.size() > 20) return std::nullopt;
  std::uint64_t v = 0;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || ptr != text.data() + text.size() || v > max) return std::nullopt;
  return v;
}

std::optional<ProcStat> parse_proc_stat(std::string_view text) {
  const auto open = text.find('(');
  const auto close = text.rfind(')');
  if (open == std::string_view::npos || close == std::string_view::npos || close < open) return std::nullopt;
  ProcStat s;
  s.comm.assign(text.data() + open + 1, close - open - 1);  // at most 64 bytes from the kernel: no allocation
  // Fields 3.. after the name, scanned in place (this runs once per vcpu per snapshot): field
  // k of proc(5) is the (k-2)th word after ')'.
  constexpr auto most = std::numeric_limits<std::uint64_t>::max();
  const char* p = text.data() + close + 1;
  const char* const end = text.data() + text.size();
  std::optional<std::uint64_t> utime, stime, start;
  for (unsigned field = 3; field <= 39; ++field) {
    while (p != end && (*p == ' ' || *p == '\n')) ++p;
    if (p == end) break;
    const char* w = p;
    while (p != end && *p != ' ' && *p != '\n') ++p;
    const std::string_view word(w, static_cast<std::size_t>(p - w));
    switch (field) {
      case 3:
        if (word.size() != 1) return std::nullopt;
        s.state = word[0];
        break;
      case 14: utime = parse_decimal(word, most); break;
      case 15: stime = parse_decimal(word, most); break;
      case 22: start = parse_decimal(word, most); break;
      case 39:
        if (auto cpu = parse_decimal(word, std::numeric_limits<unsigned>::max())) s.processor = static_cast<unsigned>(*cpu);
        break;
      default: break;
    }
  }
  if (!utime || !stime || !start) return std::nullopt;
  s.utime = *utime;
  s.stime = *stime;
  s.starttime = *start;
  return s;
}

std::optional<SchedStat> parse_schedstat(std::string_view text) {
  const auto first = text.find(' ');
  if (first == std::string_view::npos) return std::nullopt;
  std::string_view rest = text.substr(first + 1);
  const auto second = rest.find_first_of(" \n");
  rest = rest.substr(0, second);
  constexpr auto most = static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max());
  const auto run = parse_decimal(text.substr(0, first), most), wait = parse_decimal(rest, most);
  if (!run || !wait) return std::nullopt;
  return SchedStat{*run, *wait};
}

TaskCgroups parse_task_cgroups(std::string_view text) {
  TaskCgroups out;
  for (std::string_view line : split(text, "\n", 256)) {
    const auto c1 = line.find(':');
    if (c1 == std::string_view::npos) continue;
    const auto c2 = line.find(':', c1 + 1);
    if (c2 == std::string_view::npos) continue;
    const std::string_view id = line.substr(0, c1), controllers = line.substr(c1 + 1, c2 - c1 - 1),
                           path = line.substr(c2 + 1);
    if (!sane_cgroup_path(path)) continue;
    if (id == "0" && controllers.empty()) {
      out.v2 = std::string(path);
      continue;
    }
    for (std::string_view c : split(controllers, ",", 64))
      if (c == "cpuset") out.v1_cpuset = std::string(path);
  }
  return out;
}

CgroupMounts parse_cgroup_mounts(std::string_view mountinfo) {
  CgroupMounts out;
  for (std::string_view line : split(mountinfo, "\n", 1 << 16)) {
    // id parent major:minor root point options [optional fields...] - fstype source superoptions
    const auto dash = line.find(" - ");
    if (dash == std::string_view::npos) continue;
    const std::vector<std::string_view> before = split(line.substr(0, dash), " ", 6);
    const std::vector<std::string_view> after = split(line.substr(dash + 3), " ", 3);
    if (before.size() < 5 || after.size() < 3) continue;
    CgroupMount m{unescape_mount(before[4]), unescape_mount(before[3])};
    if (after[0] == "cgroup2" && !out.v2) {
      out.v2 = std::move(m);
    } else if (after[0] == "cgroup" && !out.v1_cpuset) {
      for (std::string_view o : split(after[2], ",", 64))
        if (o == "cpuset") out.v1_cpuset = m;
    }
  }
  return out;
}

bool is_qemu_program(std::string_view argv0) {
  const std::string_view base = basename_of(argv0);
  return (base.size() > 12 && base.substr(0, 12) == "qemu-system-") || base == "qemu-kvm";
}

std::optional<QemuCommandLine> parse_qemu_cmdline(std::string_view cmdline, unsigned max_vcpus_limit) {
  std::vector<std::string_view> args;
  std::size_t i = 0;
  while (i < cmdline.size() && args.size() < 100000) {
    std::size_t end = cmdline.find('\0', i);
    if (end == std::string_view::npos) end = cmdline.size();
    args.push_back(cmdline.substr(i, end - i));
    i = end + 1;
  }
  if (args.empty() || !is_qemu_program(args[0])) return std::nullopt;
  QemuCommandLine q;
  q.program = std::string(args[0]);
  for (std::size_t a = 1; a + 1 < args.size(); ++a) {
    std::string_view opt = args[a];
    if (opt.size() > 2 && opt.substr(0, 2) == "--") opt.remove_prefix(1);
    if (opt == "-name") {
      for (const auto& [key, val] : qemu_properties(args[++a])) {
        if (key.empty() || key == "guest") q.name = val;
        else if (key == "debug-threads") q.debug_threads = val == "on" || val == "yes" || val == "true";
      }
    } else if (opt == "-uuid") {
      const std::string_view u = args[++a];
      q.uuid = is_uuid_text(u) ? std::string(u) : std::string();
      std::transform(q.uuid.begin(), q.uuid.end(), q.uuid.begin(),
                     [](char c) { return c >= 'A' && c <= 'F' ? static_cast<char>(c - 'A' + 'a') : c; });
    } else if (opt == "-smp") {
      const auto n = smp_max_vcpus(args[++a], max_vcpus_limit);
      q.smp_valid = n.has_value();
      q.max_vcpus = n ? static_cast<unsigned>(*n) : 1;
    }
  }
  return q;
}

ThreadRole thread_role(std::string_view comm) {
  ThreadRole r;
  if (comm.size() > 4 && comm.substr(0, 4) == "CPU ") {
    const auto slash = comm.find('/', 4);
    if (slash == std::string_view::npos || slash + 1 == comm.size()) return r;
    const auto n = parse_decimal(comm.substr(4, slash - 4), std::numeric_limits<unsigned>::max());
    const std::string_view accel = comm.substr(slash + 1);
    if (!n || !std::all_of(accel.begin(), accel.end(), [](char c) { return c >= 'A' && c <= 'Z'; })) return r;
    r.kind = ThreadRole::Kind::vcpu;
    r.vcpu = static_cast<unsigned>(*n);
  } else if (comm.size() > 3 && comm.substr(0, 3) == "IO " && comm != "IO mon_iothread") {
    r.kind = ThreadRole::Kind::iothread;
    r.iothread = std::string(comm.substr(3));
  }
  return r;
}

}  // namespace vcpumap::detail
