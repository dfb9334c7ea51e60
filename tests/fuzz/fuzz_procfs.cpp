// fuzz-procfs — libFuzzer target for the Linux backend's readers of /proc and /sys text
// (src/linux/procfs.hpp): parse_proc_stat, parse_schedstat, parse_task_cgroups,
// parse_cgroup_mounts, parse_qemu_cmdline (and is_qemu_program), thread_role, parse_decimal.
// Their input is hostile: a guest picks its name, its owner the command line, anyone a
// thread's name.
//
// Every input goes to every reader (the texts overlap: a command line holds names, a stat
// line holds a name). The first byte, when there is one, also sets parse_qemu_cmdline's vcpu
// limit. Checked on every input, __builtin_trap() on a violation (after printing what failed):
// - nothing crashes, overflows or reads past the input (ASan, UBSan);
// - parse_proc_stat: the name is the text between the first '(' and the LAST ')'; the
//   values written back into a proc(5) line of 52 fields read back the same;
// - parse_schedstat: both values fit an int64 and read back the same;
// - parse_task_cgroups: each path kept is absolute, with no ".." part and no NUL;
// - parse_cgroup_mounts: a mount's point and root come from the input (no longer than it);
// - parse_qemu_cmdline: only for a QEMU program; max_vcpus in 1..limit, 1 when -smp was not
//   read; a uuid is canonical lowercase; name, debug-threads, uuid and vcpus written back as
//   a command line (the name's commas doubled) read back the same;
// - thread_role: a vcpu is exactly "CPU <n>/<ACCEL>" (n read back as written, without its
//   leading zeros), an IOThread "IO <id>" (never QEMU's monitor thread "IO mon_iothread");
//   and for n from the input, "CPU <n>/KVM" is vcpu n and "IO <id>" IOThread id (the round
//   trip, for any n and any id but mon_iothread);
// - parse_decimal: the value, printed, is the text without its leading zeros.
//
//   build-fuzz/tests/fuzz/fuzz-procfs -max_total_time=60 -dict=tests/fuzz/procfs.dict CORPUS_DIR
//   tests/fuzz/corpus-procfs build-fuzz/tests/fuzz/fuzz-procfs crash-file        # replay one input
#include "procfs.hpp"

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <limits>
#include <string>
#include <string_view>

#include <fmt/format.h>

#include <vcpumap/limits.hpp>
#include <vcpumap/text.hpp>

namespace {

namespace d = vcpumap::detail;

std::string_view g_text;

[[noreturn]] void violated(const char* check, int line, const std::string& detail) {
  std::fprintf(stderr, "fuzz-procfs: check failed (line %d): %s\n  input: \"%s\"\n  %s\n", line, check,
               vcpumap::escape_terminal(g_text.substr(0, 400)).c_str(), vcpumap::escape_terminal(detail).c_str());
  __builtin_trap();
}

#define CHECK(cond, detail)                           \
  do {                                                \
    if (!(cond)) violated(#cond, __LINE__, (detail)); \
  } while (0)

std::string ltrim_zeros(std::string_view s) {
  const auto i = s.find_first_not_of('0');
  return i == std::string_view::npos ? std::string("0") : std::string(s.substr(i));
}

void check_stat(std::string_view text) {
  const auto s = d::parse_proc_stat(text);
  if (!s) return;
  const auto open = text.find('('), close = text.rfind(')');
  CHECK(open != std::string_view::npos && close != std::string_view::npos && open < close, "parentheses");
  CHECK(s->comm == text.substr(open + 1, close - open - 1), s->comm);
  CHECK(s->state != ' ' && s->state != '\n', "state is a blank");
  // Written back into a line of 52 fields, in proc(5)'s places.
  const std::string line = fmt::format(
      "4242 ({}) {} 1 4242 4242 0 -1 4194624 0 0 0 0 {} {} 0 0 20 0 1 0 {} 4563918848 195421 18446744073709551615 "
      "1 1 1 0 0 0 0 4096 25103 0 0 0 17 {} 0 0 0 0 0 1 1 1 1 1 1 1 0\n",
      s->comm, s->state, s->utime, s->stime, s->starttime, s->processor.value_or(0));
  const auto back = d::parse_proc_stat(line);
  CHECK(back, line);
  CHECK(back->comm == s->comm && back->state == s->state && back->utime == s->utime && back->stime == s->stime &&
            back->starttime == s->starttime,
        line);
  CHECK(back->processor == s->processor.value_or(0), line);
}

void check_schedstat(std::string_view text) {
  const auto s = d::parse_schedstat(text);
  if (!s) return;
  constexpr auto most = static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max());
  CHECK(s->run_ns <= most && s->wait_ns <= most, "beyond int64");
  const auto back = d::parse_schedstat(fmt::format("{} {} 7\n", s->run_ns, s->wait_ns));
  CHECK(back && back->run_ns == s->run_ns && back->wait_ns == s->wait_ns, "round trip");
}

void check_cgroup_path(const std::optional<std::string>& p) {
  if (!p) return;
  CHECK(!p->empty() && (*p)[0] == '/', *p);
  CHECK(p->find('\0') == std::string::npos, *p);
  CHECK(p->find("/../") == std::string::npos && !(p->size() >= 3 && p->compare(p->size() - 3, 3, "/..") == 0), *p);
}

void check_cgroups(std::string_view text) {
  const d::TaskCgroups c = d::parse_task_cgroups(text);
  check_cgroup_path(c.v2);
  check_cgroup_path(c.v1_cpuset);
  const d::CgroupMounts m = d::parse_cgroup_mounts(text);
  for (const auto* mount : {m.v2 ? &*m.v2 : nullptr, m.v1_cpuset ? &*m.v1_cpuset : nullptr}) {
    if (!mount) continue;
    CHECK(mount->point.size() <= text.size() && mount->root.size() <= text.size(), "longer than the input");
    CHECK(!mount->point.empty() && !mount->root.empty(), "an empty field");
  }
}

bool canonical_uuid(std::string_view u) {
  if (u.size() != 36) return false;
  for (std::size_t i = 0; i < 36; ++i) {
    const bool dash = i == 8 || i == 13 || i == 18 || i == 23;
    const char c = u[i];
    if (dash ? c != '-' : !((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

void check_cmdline(std::string_view text, unsigned limit) {
  const auto q = d::parse_qemu_cmdline(text, limit);
  const std::string_view argv0 = text.substr(0, text.find('\0'));
  CHECK(q.has_value() == d::is_qemu_program(argv0), "QEMU or not");
  if (!q) return;
  CHECK(q->program == argv0, q->program);
  CHECK(q->max_vcpus >= 1 && q->max_vcpus <= std::max(1u, limit), std::to_string(q->max_vcpus));
  if (!q->smp_valid) CHECK(q->max_vcpus == 1, "unread -smp");
  CHECK(q->uuid.empty() || canonical_uuid(q->uuid), q->uuid);
  CHECK(q->name.find('\0') == std::string::npos, "NUL in a name");
  // Written back as a command line of its own.
  std::string escaped;
  for (char c : q->name) escaped += c == ',' ? std::string(",,") : std::string(1, c);
  std::string cmd = q->program + '\0' + "-name" + '\0' + "guest=" + escaped +
                    (q->debug_threads ? ",debug-threads=on" : ",debug-threads=off") + '\0' + "-smp" + '\0' +
                    std::to_string(q->max_vcpus) + '\0';
  if (!q->uuid.empty()) cmd += "-uuid" + std::string(1, '\0') + q->uuid + '\0';
  const auto back = d::parse_qemu_cmdline(cmd, limit);
  CHECK(back, "written back: not QEMU");
  CHECK(back->name == q->name, back->name);
  CHECK(back->debug_threads == q->debug_threads, "debug-threads");
  CHECK(back->uuid == q->uuid, back->uuid);
  CHECK(back->max_vcpus == q->max_vcpus && back->smp_valid, std::to_string(back->max_vcpus));
}

void check_role(std::string_view text, const std::uint8_t* data, std::size_t size) {
  using Kind = d::ThreadRole::Kind;
  const d::ThreadRole r = d::thread_role(text);
  if (r.kind == Kind::vcpu) {
    CHECK(text.substr(0, 4) == "CPU ", "prefix");
    const auto slash = text.find('/');
    CHECK(slash != std::string_view::npos && slash > 4, "slash");
    CHECK(ltrim_zeros(text.substr(4, slash - 4)) == std::to_string(r.vcpu), std::to_string(r.vcpu));
    const std::string_view accel = text.substr(slash + 1);
    CHECK(!accel.empty(), "no accelerator");
    for (char c : accel) CHECK(c >= 'A' && c <= 'Z', "accelerator");
  } else if (r.kind == Kind::iothread) {
    CHECK(text.size() > 3 && text.substr(0, 3) == "IO " && r.iothread == text.substr(3), r.iothread);
    CHECK(r.iothread != "mon_iothread", "the monitor thread taken for an IOThread");
  }
  // The round trips, for a vcpu number and an IOThread id taken from the input.
  std::uint32_t n = 0;
  std::memcpy(&n, data, std::min<std::size_t>(size, sizeof n));
  for (const char* accel : {"KVM", "TCG", "HVF", "WHPX"}) {
    const d::ThreadRole v = d::thread_role(fmt::format("CPU {}/{}", n, accel));
    CHECK(v.kind == Kind::vcpu && v.vcpu == n, fmt::format("CPU {}/{}", n, accel));
  }
  if (!text.empty()) {
    const d::ThreadRole io = d::thread_role("IO " + std::string(text));
    if (text == "mon_iothread")  // QEMU's monitor thread: no IOThread
      CHECK(io.kind == Kind::other, "IO mon_iothread");
    else
      CHECK(io.kind == Kind::iothread && io.iothread == text, "IO round trip");
  }
}

void check_decimal(std::string_view text) {
  const auto v = d::parse_decimal(text, std::numeric_limits<std::uint64_t>::max());
  if (!v) return;
  CHECK(!text.empty() && text.size() <= 20, "size");
  CHECK(ltrim_zeros(text) == std::to_string(*v), std::to_string(*v));
  CHECK(!d::parse_decimal(text, *v == 0 ? 0 : *v - 1) || *v == 0, "bound");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  g_text = text;
  const unsigned limit = size == 0 ? vcpumap::limits::max_vcpus : 1u + data[0] * 64u;  // 1..16321
  check_stat(text);
  check_schedstat(text);
  check_cgroups(text);
  check_cmdline(text, limit);
  check_role(text, data, size);
  check_decimal(text);
  return 0;
}
