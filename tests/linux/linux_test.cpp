// tests/linux/linux_test.cpp — LinuxHypervisor (vcpumap/linux.hpp) over fake /proc and /sys
// trees (fake_tree.hpp), and the pure parsers of src/linux/procfs.hpp. No QEMU, no root: the
// scheduler calls go to a FakeScheduler that narrows masks as the kernel does.
//
// Every case asserts concrete values: the names, ids, maps, states and times the fake tree
// was built with, and the FakeScheduler's calls (which tid, which map, how many).
#include "fake_tree.hpp"
#include "procfs.hpp"

#include <sched.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <vcpumap/backend.hpp>
#include <vcpumap/error.hpp>
#include <vcpumap/hypervisor.hpp>
#include <vcpumap/linux.hpp>
#include <vcpumap/model.hpp>

namespace {

using linux_fake::FakeScheduler;
using linux_fake::FakeTree;
using linux_fake::Proc;
using linux_fake::stat_line;
using linux_fake::Thread;
using vcpumap::AffinityMatrix;
using vcpumap::CpuMap;
using vcpumap::DomainId;
using vcpumap::DomainInfo;
using vcpumap::DomainSnapshot;
using vcpumap::Error;
using vcpumap::ErrorCode;
using vcpumap::HostInfo;
using vcpumap::HostSnapshot;
using vcpumap::LinuxHypervisor;
using vcpumap::SnapshotScope;
using vcpumap::VcpuPin;
using vcpumap::VcpusPin;
using vcpumap::VcpuState;
using namespace std::chrono_literals;
namespace detail = vcpumap::detail;

std::string str(const CpuMap& m) { return fmt::format("{}", m); }
bool contains(std::string_view text, std::string_view part) { return text.find(part) != std::string_view::npos; }

template <class F>
std::optional<Error> error_of(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e;
  }
  return std::nullopt;
}

/// The duration of `ticks` clock ticks, as the backend converts stat's utime + stime.
std::chrono::nanoseconds ticks(std::uint64_t t) {
  return std::chrono::nanoseconds(
      static_cast<std::int64_t>(t * (1'000'000'000ULL / static_cast<std::uint64_t>(::sysconf(_SC_CLK_TCK)))));
}

/// The host most cases use: 8 CPU ids, all present, 0-5 online; one socket of three cores of
/// two threads (CPUs 6-7 offline: no topology folder); one NUMA node; PID 1 on every CPU;
/// the scheduler's active CPUs are the online ones.
void small_host(FakeTree& t) {
  t.add_cpu_host(
      "0-7", "0-7", "0-5",
      {{0, 0, 0, "0-1"}, {1, 0, 0, "0-1"}, {2, 0, 1, "2-3"}, {3, 0, 1, "2-3"}, {4, 0, 2, "4-5"}, {5, 0, 2, "4-5"}});
  t.add_node(0, "0-7");
  t.add_init();
  t.sched().active = t.cpus("0-5");
}

constexpr int g1 = 100;  // pid of the guest "a,b"
const std::vector<std::string> g1_args = {"/usr/bin/qemu-system-x86_64",
                                          "-name",
                                          "guest=a,,b,debug-threads=on",
                                          "-uuid",
                                          "4A5B6C7D-0000-1111-2222-333344445555",
                                          "-smp",
                                          "2,maxcpus=4,sockets=1,cores=4,threads=1",
                                          "-m",
                                          "1024"};

/// Guest g1: vcpus 0 and 1 plugged in (threads 101 "CPU 0/KVM", 102 "CPU 1/TCG"), 2 and 3
/// not; KVM's "kvm-nx-lpage-re" (103), QEMU's "worker" (104) and its monitor thread "IO
/// mon_iothread" (107) beside them; IOThread "iothread1" (105).
void add_g1(FakeTree& t, std::uint64_t starttime = 5000) {
  t.add_qemu(g1, g1_args, starttime, Proc().state('S').ticks(300, 200));
  t.add_thread(
      g1, Thread(101).comm("CPU 0/KVM").state('R').processor(2).ticks(100, 50).schedstat(1'500'000'000, 20'000'000));
  t.add_thread(g1, Thread(102).comm("CPU 1/TCG").state('S').processor(4).ticks(7, 3).schedstat(2'000'000'000, 0));
  t.add_thread(g1, Thread(103).comm("kvm-nx-lpage-re"));
  t.add_thread(g1, Thread(104).comm("worker"));
  t.add_thread(g1, Thread(105).comm("IO iothread1").processor(1));
  t.add_thread(g1, Thread(107).comm("IO mon_iothread"));  // QEMU's monitor thread: no IOThread
}

// ======================================================================================
// The parsers (src/linux/procfs.hpp)
// ======================================================================================

TEST_CASE("parse_proc_stat: the fields of a real line, the name split at the LAST ')'", "[procfs]") {
  const std::string line = stat_line(4242, "CPU 3/KVM", 'R', 1234, 567, 98765, 7);
  const auto s = detail::parse_proc_stat(line);
  REQUIRE(s);
  CHECK(s->comm == "CPU 3/KVM");
  CHECK(s->state == 'R');
  CHECK(s->utime == 1234);
  CHECK(s->stime == 567);
  CHECK(s->starttime == 98765);
  CHECK(s->processor == 7u);

  SECTION("a hostile name: parentheses, blanks, what looks like fields") {
    const auto h = detail::parse_proc_stat(stat_line(1, "(x) y)", 'T', 5, 6, 77, 3));
    REQUIRE(h);
    CHECK(h->comm == "(x) y)");
    CHECK(h->state == 'T');
    CHECK(h->starttime == 77);
    const auto fake = detail::parse_proc_stat(
        stat_line(1, "a) R 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20", 'S', 5, 6, 88, 2));
    REQUIRE(fake);
    CHECK(fake->state == 'S');
    CHECK(fake->starttime == 88);
    CHECK(fake->processor == 2u);
  }
  SECTION("control bytes and a newline in the name") {
    const auto c = detail::parse_proc_stat(stat_line(9, std::string("a\x1b[2J\nb\x7f"), 'S', 1, 2, 3, 4));
    REQUIRE(c);
    CHECK(c->comm == "a\x1b[2J\nb\x7f");
    CHECK(c->starttime == 3);
  }
  SECTION("cut after starttime: parsed, no processor") {
    const auto cut = detail::parse_proc_stat("7 (x) S 1 7 7 0 -1 4194624 1 0 0 0 11 22 0 0 20 0 1 0 333 4096");
    REQUIRE(cut);
    CHECK(cut->utime == 11);
    CHECK(cut->stime == 22);
    CHECK(cut->starttime == 333);
    CHECK_FALSE(cut->processor.has_value());
  }
  SECTION("not a stat line") {
    CHECK_FALSE(detail::parse_proc_stat(""));
    CHECK_FALSE(detail::parse_proc_stat("7 x S 1 2 3"));
    CHECK_FALSE(detail::parse_proc_stat("7 (x S 1 2 3"));
    CHECK_FALSE(detail::parse_proc_stat("7 )x( S 1 7 7 0 -1 4194624 1 0 0 0 11 22 0 0 20 0 1 0 333 4096"));
    CHECK_FALSE(detail::parse_proc_stat("7 (x) S 1 7 7 0 -1"));  // truncated
    CHECK_FALSE(detail::parse_proc_stat("7 (x) RS 1 7 7 0 -1 4194624 1 0 0 0 11 22 0 0 20 0 1 0 333 4096"));
    CHECK_FALSE(detail::parse_proc_stat("7 (x) S 1 7 7 0 -1 4194624 1 0 0 0 -11 22 0 0 20 0 1 0 333 4096"));
    CHECK_FALSE(
        detail::parse_proc_stat("7 (x) S 1 7 7 0 -1 4194624 1 0 0 0 99999999999999999999999 22 0 0 20 0 1 0 333 4096"));
  }
  SECTION("a processor beyond unsigned: no processor, the rest parsed") {
    std::string l = stat_line(5, "x", 'S', 1, 2, 3, 0);
    const auto big = l.replace(l.find(" 17 0 ") + 4, 1, "99999999999");
    const auto b = detail::parse_proc_stat(big);
    REQUIRE(b);
    CHECK_FALSE(b->processor.has_value());
    CHECK(b->starttime == 3);
  }
}

TEST_CASE("parse_schedstat: run and wait ns", "[procfs]") {
  const auto s = detail::parse_schedstat("1500000000 20000000 42\n");
  REQUIRE(s);
  CHECK(s->run_ns == 1'500'000'000u);
  CHECK(s->wait_ns == 20'000'000u);
  CHECK(detail::parse_schedstat("5 6")->wait_ns == 6u);
  CHECK_FALSE(detail::parse_schedstat(""));
  CHECK_FALSE(detail::parse_schedstat("5\n"));
  CHECK_FALSE(detail::parse_schedstat("-5 6 7"));
  CHECK_FALSE(detail::parse_schedstat("9223372036854775808 0 0"));  // beyond int64: not a duration
  CHECK(detail::parse_schedstat("9223372036854775807 0 0")->run_ns == 9223372036854775807u);
}

TEST_CASE("parse_task_cgroups: the v2 line and v1's cpuset line; bad paths dropped", "[procfs]") {
  const auto c = detail::parse_task_cgroups(
      "12:cpuset:/machine/qemu-1-g.libvirt-qemu/vcpu0\n"
      "11:cpu,cpuacct:/machine/qemu-1-g.libvirt-qemu\n"
      "1:name=systemd:/machine.slice\n"
      "0::/machine.slice/machine-qemu\\x2d1\\x2dg.scope/libvirt/vcpu0\n");
  CHECK(c.v1_cpuset == std::optional<std::string>("/machine/qemu-1-g.libvirt-qemu/vcpu0"));
  CHECK(c.v2 == std::optional<std::string>("/machine.slice/machine-qemu\\x2d1\\x2dg.scope/libvirt/vcpu0"));
  const auto pure_v2 = detail::parse_task_cgroups("0::/init.scope\n");
  CHECK(pure_v2.v2 == std::optional<std::string>("/init.scope"));
  CHECK_FALSE(pure_v2.v1_cpuset);
  const auto joined = detail::parse_task_cgroups("4:cpu,cpuset,memory:/a\n");
  CHECK(joined.v1_cpuset == std::optional<std::string>("/a"));
  const auto bad = detail::parse_task_cgroups(std::string("0::/a/../b\n3:cpuset:relative\n5:cpuset:/x\0y\n", 43));
  CHECK_FALSE(bad.v2);
  CHECK_FALSE(bad.v1_cpuset);
  CHECK_FALSE(detail::parse_task_cgroups("garbage").v2);
}

TEST_CASE("parse_cgroup_mounts: cgroup2 and v1 cpuset from mountinfo, escapes undone", "[procfs]") {
  const std::string mi =
      "22 28 0:21 / /proc rw,nosuid,nodev,noexec,relatime shared:12 - proc proc rw\n"
      "30 24 0:26 / /sys/fs/cgroup/unified rw,nosuid shared:4 master:1 - cgroup2 cgroup2 rw,nsdelegate\n"
      "31 24 0:27 / /sys/fs/cgroup/cpu,cpuacct rw shared:5 - cgroup cgroup rw,cpu,cpuacct\n"
      "32 24 0:28 /machine /sys/fs/my\\040cpuset rw shared:6 - cgroup cgroup rw,cpuset,clone_children\n"
      "33 24 0:29 / /second rw - cgroup2 cgroup2 rw\n"
      "malformed line without a dash\n";
  const auto m = detail::parse_cgroup_mounts(mi);
  REQUIRE(m.v2);
  CHECK(m.v2->point == "/sys/fs/cgroup/unified");  // the first cgroup2 mount
  CHECK(m.v2->root == "/");
  REQUIRE(m.v1_cpuset);
  CHECK(m.v1_cpuset->point == "/sys/fs/my cpuset");
  CHECK(m.v1_cpuset->root == "/machine");
  const auto none = detail::parse_cgroup_mounts("31 24 0:27 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu\n");
  CHECK_FALSE(none.v2);
  CHECK_FALSE(none.v1_cpuset);
}

TEST_CASE("parse_qemu_cmdline: program, -name, -uuid, -smp", "[procfs]") {
  auto cmd = [](std::vector<std::string> args) {
    std::string s;
    for (const auto& a : args) s += a + std::string(1, '\0');
    return detail::parse_qemu_cmdline(s, 4096);
  };
  SECTION("programs") {
    CHECK(detail::is_qemu_program("qemu-system-x86_64"));
    CHECK(detail::is_qemu_program("/usr/bin/qemu-system-aarch64"));
    CHECK(detail::is_qemu_program("/usr/libexec/qemu-kvm"));
    CHECK(detail::is_qemu_program("qemu-kvm"));
    CHECK_FALSE(detail::is_qemu_program("qemu-system-"));
    CHECK_FALSE(detail::is_qemu_program("qemu-kvm-helper"));
    CHECK_FALSE(detail::is_qemu_program("/usr/bin/xqemu-system-x86_64"));
    CHECK_FALSE(detail::is_qemu_program("/usr/sbin/sshd"));
    CHECK_FALSE(detail::is_qemu_program(""));
    CHECK_FALSE(cmd({"/usr/sbin/sshd", "-D", "-name", "x"}));
    CHECK_FALSE(detail::parse_qemu_cmdline("", 4096));
  }
  SECTION("-name") {
    const auto q = cmd({"qemu-system-x86_64", "-name", "guest=a,,b,debug-threads=on"});
    REQUIRE(q);
    CHECK(q->program == "qemu-system-x86_64");
    CHECK(q->name == "a,b");
    CHECK(q->debug_threads);
    const auto plain = cmd({"qemu-kvm", "-name", "plain"});
    CHECK(plain->name == "plain");
    CHECK_FALSE(plain->debug_threads);
    CHECK(cmd({"qemu-kvm", "--name", "dashes,debug-threads=yes"})->name == "dashes");
    CHECK(cmd({"qemu-kvm", "--name", "dashes,debug-threads=yes"})->debug_threads);
    CHECK_FALSE(cmd({"qemu-kvm", "-name", "g,debug-threads=off"})->debug_threads);
    CHECK(cmd({"qemu-kvm", "-name", "process=qemu:x,guest=real"})->name == "real");
    CHECK(cmd({"qemu-kvm", "-name"})->name.empty());  // no value: nothing read past the end
    CHECK(cmd({"qemu-kvm"})->name.empty());
  }
  SECTION("-uuid: lowercased, malformed ignored") {
    CHECK(cmd({"qemu-kvm", "-uuid", "4A5B6C7D-0000-1111-2222-333344445555"})->uuid ==
          "4a5b6c7d-0000-1111-2222-333344445555");
    CHECK(cmd({"qemu-kvm", "-uuid", "4a5b6c7d00001111-2222-333344445555"})->uuid.empty());
    CHECK(cmd({"qemu-kvm", "-uuid", "4g5b6c7d-0000-1111-2222-333344445555"})->uuid.empty());
    CHECK(cmd({"qemu-kvm", "-uuid", "x"})->uuid.empty());
  }
  SECTION("-smp forms") {
    struct Case {
      const char* smp;
      unsigned max;
      bool valid;
    };
    const Case cases[] = {
        {"4", 4, true},
        {"cpus=2,maxcpus=4", 4, true},
        {"sockets=2,cores=2", 4, true},
        {"2,maxcpus=4,sockets=1,cores=4,threads=1", 4, true},
        {"sockets=2,dies=2,clusters=1,cores=3,threads=2", 24, true},
        {"8,maxcpus=4", 8, true},  // cpus above maxcpus: the larger
        {"0", 1, true},
        {"4,", 4, true},
        {"garbage", 1, false},
        {"4,frobs=2", 1, false},
        {"sockets=0,cores=2", 1, false},
        {"-4", 1, false},
        {"99999", 1, false},  // beyond the limit given (4096)
        {"sockets=4096,cores=4096", 1, false},
    };
    for (const Case& c : cases) {
      INFO("-smp " << c.smp);
      const auto q = cmd({"qemu-system-x86_64", "-smp", c.smp});
      REQUIRE(q);
      CHECK(q->max_vcpus == c.max);
      CHECK(q->smp_valid == c.valid);
    }
    CHECK(cmd({"qemu-kvm"})->max_vcpus == 1);
  }
}

TEST_CASE("thread_role: vcpus 'CPU <n>/<ACCEL>', IOThreads 'IO <id>', nothing else", "[procfs]") {
  using Kind = detail::ThreadRole::Kind;
  const auto v0 = detail::thread_role("CPU 0/KVM");
  CHECK(v0.kind == Kind::vcpu);
  CHECK(v0.vcpu == 0u);
  CHECK(detail::thread_role("CPU 1/TCG").vcpu == 1u);
  CHECK(detail::thread_role("CPU 4095/HVF").kind == Kind::vcpu);
  CHECK(detail::thread_role("CPU 4095/HVF").vcpu == 4095u);
  for (const char* other :
       {"kvm-nx-lpage-re", "worker", "qemu-system-x86", "CPU 1/kvm", "CPU /KVM", "CPU 1/", "CPU 1KVM", "CPU -1/KVM",
        "CPU +1/KVM", "CPU 0x1/KVM", "CPU 4294967296/KVM", "cpu 0/KVM", "CPU 1/KVM ", "IO", "IO ", "vhost-1234", ""}) {
    INFO("'" << other << "'");
    CHECK(detail::thread_role(other).kind == Kind::other);
  }
  const auto io = detail::thread_role("IO iothread1");
  CHECK(io.kind == Kind::iothread);
  CHECK(io.iothread == "iothread1");
  CHECK(detail::thread_role("IO x").iothread == "x");
  CHECK(detail::thread_role("IO mon_iothread").kind == Kind::other);  // QEMU's monitor thread
  CHECK(detail::thread_role("IO mon_iothreads").kind == Kind::iothread);
}

TEST_CASE("parse_decimal: digits only, within the bound", "[procfs]") {
  CHECK(detail::parse_decimal("0", 10) == 0u);
  CHECK(detail::parse_decimal("10", 10) == 10u);
  CHECK_FALSE(detail::parse_decimal("11", 10));
  CHECK(detail::parse_decimal("18446744073709551615", UINT64_MAX) == UINT64_MAX);
  for (const char* bad : {"", "+1", "-1", " 1", "1 ", "0x1", "1e3", "18446744073709551616", "000000000000000000001"})
    CHECK_FALSE(detail::parse_decimal(bad, UINT64_MAX));
}

// ======================================================================================
// The host
// ======================================================================================

TEST_CASE("host from sys: possible/present/online with holes, topology, NUMA nodes with a missing id", "[host]") {
  FakeTree t;
  // 12 ids; 10-11 not present; 4 and 9 present but offline. Two sockets: socket 0 holds
  // cores 0 (0-1) and 1 (2-3), socket 1 cores 0 (5, whose sibling 4 is offline) and 1
  // (6-7). CPU 8 is online without a topology folder. NUMA nodes 0 and 2 (no node 1).
  t.add_cpu_host("0-11", "0-9", "0-3,5-8",
                 {{0, 0, 0, "0-1"},
                  {1, 0, 0, "0-1"},
                  {2, 0, 1, "2-3"},
                  {3, 0, 1, "2-3"},
                  {5, 1, 0, "5"},
                  {6, 1, 1, "6-7"},
                  {7, 1, 1, "6-7"}});
  t.add_node(0, "0-4");
  t.add_node(2, "5-9");
  t.add_init(t.cpus("0-3"));  // isolcpus=4-11
  LinuxHypervisor hv(t.options());
  CHECK(hv.last_call_count() > 0);  // the constructor's reads
  const HostInfo h = hv.host_info();
  CHECK(h.cpu_universe() == 12);
  CHECK(h.possible == CpuMap::full(12));
  CHECK(str(h.present) == "0-9");
  CHECK(str(h.online) == "0-3,5-8");
  CHECK(h.sockets == 2);
  CHECK(h.cores_per_socket == 2);
  CHECK(h.threads_per_core == 2);
  REQUIRE(h.cpu_socket.size() == 12);
  for (unsigned c : {0u, 1u, 2u, 3u}) CHECK(h.cpu_socket[c] == 0u);
  for (unsigned c : {5u, 6u, 7u}) CHECK(h.cpu_socket[c] == 1u);
  for (unsigned c : {4u, 8u, 9u, 10u, 11u}) {
    INFO("CPU " << c);
    CHECK_FALSE(h.cpu_socket[c].has_value());  // offline, no topology folder, or absent
  }
  REQUIRE(h.numa_nodes.size() == 3);
  CHECK(str(h.numa_nodes[0]) == "0-4");
  CHECK(h.numa_nodes[1].empty());  // the missing id: a node without CPUs
  CHECK(h.numa_nodes[1].universe() == 12);
  CHECK(str(h.numa_nodes[2]) == "5-9");
  REQUIRE(h.cpu_node.size() == 12);
  CHECK(h.cpu_node[4] == 0u);
  CHECK(h.cpu_node[9] == 2u);
  CHECK_FALSE(h.cpu_node[10].has_value());
  CHECK(str(h.parse("node:2")) == "5-9");
  CHECK_FALSE(h.caps.soft_affinity);
  CHECK(h.caps.vcpu_limit.empty());  // no cgroup mounted
  REQUIRE(h.system_cpus);
  CHECK(str(*h.system_cpus) == "0-3");  // PID 1's affinity, no cpuset
  CHECK_FALSE(LinuxHypervisor::guests_present(t.root()));
}

TEST_CASE("host: one NUMA node when sys has none; a single CPU", "[host]") {
  FakeTree t;
  t.add_cpu_host("0", "0", "0");
  t.add_init();
  LinuxHypervisor hv(t.options());
  const HostInfo h = hv.host_info();
  CHECK(h.cpu_universe() == 1);
  REQUIRE(h.numa_nodes.size() == 1);
  CHECK(str(h.numa_nodes[0]) == "0");
  CHECK(h.sockets == 1);
  CHECK(h.cores_per_socket == 1);
  CHECK(h.threads_per_core == 1);
}

TEST_CASE("host: a root without sys or proc is hypervisor_unavailable; garbage CPU lists are internal", "[host]") {
  FakeTree t;
  auto e = error_of([&] { LinuxHypervisor hv(t.options()); });
  REQUIRE(e);
  CHECK(e->code() == ErrorCode::hypervisor_unavailable);
  CHECK(contains(e->what(), "sys/devices/system/cpu/possible"));
  t.write("sys/devices/system/cpu/possible", "0-\x1b[2J\n");
  e = error_of([&] { LinuxHypervisor hv(t.options()); });
  REQUIRE(e);
  CHECK(e->code() == ErrorCode::internal);
  CHECK_FALSE(contains(e->what(), "\x1b"));
  t.add_cpu_host("0-3", "0-3", "0-3");
  t.add_init();
  LinuxHypervisor hv(t.options());
  t.remove("proc");
  e = error_of([&] { (void)hv.list_domains(); });
  REQUIRE(e);
  CHECK(e->code() == ErrorCode::hypervisor_unavailable);
}

TEST_CASE("system_cpus: PID 1's affinity within the cpuset of system.slice, else of PID 1's cgroup", "[host][cgroup]") {
  FakeTree t;
  t.add_cpu_host("0-7", "0-7", "0-7");
  SECTION("cgroup v2: system.slice's cpuset.cpus.effective (systemd's AllowedCPUs)") {
    t.add_init(t.cpus("0-5"));
    t.mount_cgroup2();
    t.cpuset_v2("/", "0-7");
    t.cpuset_v2("/system.slice", "0-1,7");
    LinuxHypervisor hv(t.options());
    const HostInfo h = hv.host_info();
    CHECK(h.caps.vcpu_limit == "cpuset");
    REQUIRE(h.system_cpus);
    CHECK(str(*h.system_cpus) == "0-1");  // 0-5 ∩ 0-1,7
  }
  SECTION("cgroup v2 without a system.slice cpuset: PID 1's cgroup, walking up to the root") {
    t.add_init(t.cpus("0-3"), "0::/init.scope\n");
    t.mount_cgroup2();
    t.cpuset_v2("/", "0-2,5");
    LinuxHypervisor hv(t.options());
    REQUIRE(hv.host_info().system_cpus);
    CHECK(str(*hv.host_info().system_cpus) == "0-2");
  }
  SECTION("cgroup v1 cpuset") {
    t.add_init(t.cpus("0-6"), "12:cpuset:/\n0::/init.scope\n");
    t.mount_cpuset_v1();
    t.cpuset_v1("/", "0-7");
    t.cpuset_v1("/system.slice", "0,2,6-7");
    LinuxHypervisor hv(t.options());
    CHECK(hv.host_info().caps.vcpu_limit == "cpuset");
    CHECK(str(*hv.host_info().system_cpus) == "0,2,6");
  }
  SECTION("cgroup v2 without the cpuset controller: no limit, PID 1's affinity") {
    t.add_init(t.cpus("1-2"));
    t.mount_cgroup2("cpu io memory pids");
    LinuxHypervisor hv(t.options());
    CHECK(hv.host_info().caps.vcpu_limit.empty());
    CHECK(str(*hv.host_info().system_cpus) == "1-2");
  }
  SECTION("no PID 1 to ask: unknown") {
    LinuxHypervisor hv(t.options());
    CHECK_FALSE(hv.host_info().system_cpus.has_value());
  }
}

// ======================================================================================
// Domains
// ======================================================================================

TEST_CASE("domains: QEMU processes only, names, uuids, vcpu counts", "[domains]") {
  FakeTree t;
  small_host(t);
  t.add_process(50, {"/usr/sbin/sshd", "-D", "-name", "guest=no"}, 300);  // not QEMU, whatever its arguments
  t.add_process(60, {}, 310, Proc().comm("kworker/0:1"));                 // a kernel thread: empty cmdline
  add_g1(t);
  t.add_qemu(200, {"qemu-kvm", "-name", "plain", "-smp", "4"}, 6000);
  t.add_thread(200, Thread(201).comm("CPU 0/KVM"));
  t.add_qemu(
      300,
      {"/usr/bin/qemu-system-aarch64", "-uuid", "not-a-uuid", "-smp", "sockets=2,cores=2", "-name", "debug-threads=on"},
      7000);
  t.add_qemu(400, {"/usr/bin/qemu-system-x86_64", "-smp", "lots", "-name", "guest=bad-smp,debug-threads=on"}, 8000);
  LinuxHypervisor hv(t.options());
  CHECK(LinuxHypervisor::guests_present(t.root()));

  const std::vector<DomainInfo> list = hv.list_domains();
  REQUIRE(list.size() == 4);
  CHECK(list[0].id == DomainId{100});
  CHECK(list[1].id == DomainId{200});
  CHECK(list[2].id == DomainId{300});
  CHECK(list[3].id == DomainId{400});
  CHECK(list[0].name == "a,b");
  CHECK(list[0].uuid == "4a5b6c7d-0000-1111-2222-333344445555");
  CHECK(list[0].max_vcpus == 4);
  CHECK(list[0].online_vcpus == 2);
  CHECK(list[0].vcpu_problem.empty());
  CHECK(list[0].flags == vcpumap::DomainFlags{false, true, false, false, false});  // main thread S
  CHECK(list[0].cpu_time == ticks(500));                                           // the process's utime + stime
  CHECK(list[1].name == "plain");
  CHECK(list[1].max_vcpus == 4);
  CHECK(list[1].online_vcpus == 1);
  CHECK(list[1].uuid.empty());
  CHECK(list[2].name.empty());
  CHECK(list[2].uuid.empty());  // malformed: ignored
  CHECK(list[2].max_vcpus == 4);
  CHECK(list[2].online_vcpus == 0);
  CHECK(list[2].vcpu_problem.empty());  // debug-threads=on: its vcpus are just not there yet
  CHECK(list[3].max_vcpus == 1);        // -smp unreadable: 1
  CHECK(hv.list_domains() == list);     // read again from the kept files: the same

  CHECK(error_of([&] { (void)hv.snapshot(DomainId{50}); })->code() == ErrorCode::not_found);
  CHECK(error_of([&] { (void)hv.snapshot(DomainId{60}); })->code() == ErrorCode::not_found);
  CHECK(error_of([&] { (void)hv.snapshot(DomainId{1}); })->code() == ErrorCode::not_found);
  CHECK(error_of([&] { (void)hv.snapshot(DomainId{0}); })->code() == ErrorCode::not_found);
  CHECK(error_of([&] { (void)hv.snapshot(DomainId{0x7fffffff}); })->code() == ErrorCode::not_found);
  CHECK(hv.snapshot(DomainId{200}).domain.name == "plain");
}

TEST_CASE("domains: a long command line is read whole (up to its bound)", "[domains]") {
  FakeTree t;
  small_host(t);
  std::vector<std::string> args = {"/usr/bin/qemu-system-x86_64"};
  for (int i = 0; i < 3000; ++i) {  // ~150 KB of -device options before -name and -smp
    args.push_back("-device");
    args.push_back(fmt::format("virtio-blk-pci,drive=drive-virtio-disk{},id=virtio-disk{},bootindex=1", i, i));
  }
  args.insert(args.end(), {"-name", "guest=far,debug-threads=on", "-smp", "3"});
  t.add_qemu(100, args, 100);
  LinuxHypervisor hv(t.options());
  const auto list = hv.list_domains();
  REQUIRE(list.size() == 1);
  CHECK(list[0].name == "far");
  CHECK(list[0].max_vcpus == 3);
}

TEST_CASE("domains: hostile names and comms", "[domains][hostile]") {
  FakeTree t;
  small_host(t);
  const std::string evil = "ev il\x1b]0;pwn\x07(x) y)";
  t.add_qemu(700, {"/usr/bin/qemu-system-x86_64", "-name", "guest=" + evil + ",debug-threads=on", "-smp", "1"}, 9000,
             Proc().comm("(x) y)").state('T'));  // -name process=... sets the main thread's name
  t.add_thread(700, Thread(701).comm("CPU 0/KVM").state('S').processor(3).schedstat(5, 0));
  // A thread named to look like the tail of a stat line.
  t.add_thread(700, Thread(702).comm("x) R 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22"));
  // A vcpu whose last CPU is beyond the host: no CPU rather than an index out of the maps.
  t.add_thread(700, Thread(703).comm("CPU 1/KVM").state('R').processor(200));
  LinuxHypervisor hv(t.options());
  const auto list = hv.list_domains();
  REQUIRE(list.size() == 1);
  CHECK(list[0].name == evil);                                // the bytes as given
  CHECK(list[0].flags.paused);                                // state T, found after the LAST ')'
  CHECK_FALSE(contains(vcpumap::describe(list[0]), "\x1b"));  // messages escape it
  const DomainSnapshot s = hv.snapshot(DomainId{700});
  REQUIRE(s.vcpus.size() == 2);  // -smp 1, and a thread names vcpu 1
  CHECK(s.domain.online_vcpus == 2);
  CHECK(s.vcpus[0].state == VcpuState::blocked);
  CHECK(s.vcpus[0].cpu == 3u);
  CHECK(s.vcpus[1].state == VcpuState::running);
  CHECK_FALSE(s.vcpus[1].cpu.has_value());
  auto e = error_of([&] { (void)hv.pin_vcpu(DomainId{700}, 0, VcpuPin{t.cpus("7"), std::nullopt, false}); });
  REQUIRE(e);
  CHECK_FALSE(contains(e->what(), "\x1b"));
  CHECK_FALSE(contains(e->what(), "\x07"));
  CHECK(contains(e->what(), "domain 700 ("));
}

TEST_CASE("vcpus from thread names; helper threads; IOThreads", "[domains][threads]") {
  FakeTree t;
  small_host(t);
  add_g1(t);
  t.sched().affinity[101] = t.cpus("1-3");
  t.sched().affinity[102] = t.cpus("4");
  t.sched().affinity[g1] = t.cpus("0-1");
  t.sched().affinity[105] = t.cpus("5");
  LinuxHypervisor hv(t.options());
  const DomainSnapshot s = hv.snapshot(DomainId{g1});
  REQUIRE(s.vcpus.size() == 4);
  REQUIRE(s.hard.rows() == 4);
  REQUIRE(s.hard.cols() == 8);
  CHECK(str(s.hard.row(0)) == "1-3");
  CHECK(str(s.hard.row(1)) == "4");
  // vcpus 2 and 3 are not plugged in: the emulator's affinity, which they would inherit.
  CHECK(str(s.hard.row(2)) == "0-1");
  CHECK(str(s.hard.row(3)) == "0-1");
  CHECK(s.vcpus[2].state == VcpuState::offline);
  CHECK_FALSE(s.vcpus[2].cpu.has_value());
  CHECK(s.vcpus[2].cpu_time == 0ns);
  // No soft affinity: every CPU. No cpuset mounted: every CPU as the limit.
  CHECK(s.soft == AffinityMatrix::full(4, 8));
  CHECK(s.limit == AffinityMatrix::full(4, 8));
  CHECK(str(s.effective.row(0)) == "1-3");
  CHECK(s.scope == SnapshotScope::full);
  // Only the vcpu threads and, for the unplugged rows, the emulator were asked.
  std::vector<int> asked;
  for (const auto& c : t.sched().calls)
    if (c.kind == FakeScheduler::Kind::get) asked.push_back(c.tid);
  CHECK(asked == std::vector<int>{1, 101, 102, g1});  // PID 1: the constructor's system_cpus

  const auto threads = hv.threads(DomainId{g1});
  REQUIRE(threads.size() == 2);
  CHECK(threads[0].kind == vcpumap::GuestThread::Kind::emulator);
  CHECK(threads[0].tid == g1);
  CHECK(threads[0].iothread.empty());
  CHECK(str(threads[0].hard) == "0-1");
  CHECK(threads[0].limit == CpuMap::full(8));
  CHECK(threads[1].kind == vcpumap::GuestThread::Kind::iothread);
  CHECK(threads[1].iothread == "iothread1");
  CHECK(threads[1].tid == 105);
  CHECK(str(threads[1].hard) == "5");
  CHECK(threads[1].metrics.cpu == 1u);
  CHECK(threads[1].metrics.state == VcpuState::blocked);
  CHECK(error_of([&] { (void)hv.threads(DomainId{999}); })->code() == ErrorCode::not_found);
}

TEST_CASE("a guest without debug-threads and without named vcpus: vcpu_problem, nothing guessed, pins refused",
          "[domains][problem]") {
  FakeTree t;
  small_host(t);
  const bool cpusets = GENERATE(false, true);
  INFO((cpusets ? "with cpusets" : "without cpusets"));
  if (cpusets) {
    t.mount_cgroup2();
    t.cpuset_v2("/", "0-5");
  }
  t.add_qemu(500, {"/usr/bin/qemu-system-x86_64", "-name", "g5", "-smp", "2"}, 4000);
  // Without debug-threads every thread has the process's name.
  for (int tid : {501, 502, 503}) t.add_thread(500, Thread(tid).comm("qemu-system-x86").state('R'));
  LinuxHypervisor hv(t.options());
  const auto list = hv.list_domains();
  REQUIRE(list.size() == 1);
  const DomainInfo& d = list[0];
  CHECK_FALSE(d.vcpu_problem.empty());
  CHECK(contains(d.vcpu_problem, "debug-threads=on"));
  CHECK(d.max_vcpus == 2);
  CHECK(d.online_vcpus == 0);
  const std::size_t gets_before = t.sched().calls.size();
  const DomainSnapshot s = hv.snapshot(DomainId{500});
  REQUIRE(s.vcpus.size() == 2);
  for (unsigned v = 0; v < 2; ++v) {
    INFO("vcpu " << v);
    CHECK(s.vcpus[v].vcpu == v);
    CHECK(s.vcpus[v].state == VcpuState::unknown);
    CHECK_FALSE(s.vcpus[v].cpu.has_value());
    CHECK(s.hard.row(v).empty());
    // The backend's limit rows are empty too; without cpusets the front fills every CPU
    // (the limit of a host where nothing confines a vcpu).
    CHECK(s.limit.row(v) == (cpusets ? CpuMap(8) : CpuMap::full(8)));
    CHECK(s.effective.row(v).empty());
  }
  CHECK(t.sched().calls.size() == gets_before);  // nothing asked: no thread is known to be a vcpu
  auto e = error_of([&] { (void)hv.pin_vcpu(DomainId{500}, 0, VcpuPin{t.cpus("1"), std::nullopt, false}); });
  REQUIRE(e);
  CHECK(e->code() == ErrorCode::unsupported);
  CHECK(contains(e->what(), "debug-threads=on"));
  e = error_of([&] { (void)hv.pin_vcpus(DomainId{500}, VcpusPin{vcpumap::VcpuSet(2, {0, 1}), t.cpus("1")}); });
  REQUIRE(e);
  CHECK(e->code() == ErrorCode::unsupported);
  CHECK(t.sched().sets().empty());
}

TEST_CASE("metrics: state mapping, last CPU, CPU time and run-queue wait", "[metrics]") {
  FakeTree t;
  small_host(t);
  t.add_qemu(100, {"qemu-system-x86_64", "-name", "m,debug-threads=on", "-smp", "6"}, 100);
  const char states[] = {'R', 'S', 'D', 'T', 'I', 'Z'};
  for (int v = 0; v < 6; ++v)
    t.add_thread(100,
                 Thread(110 + v)
                     .comm(fmt::format("CPU {}/KVM", v))
                     .state(states[v])
                     .processor(static_cast<unsigned>(v))
                     .ticks(10, 5)
                     .schedstat(1'000'000'000ULL * static_cast<unsigned>(v + 1), 1000ULL * static_cast<unsigned>(v)));
  // vcpu 6, beyond -smp 6 (its name says so), on a kernel without schedstat: no such file
  t.add_thread(100, Thread(116).comm("CPU 6/KVM").state('R').processor(5).ticks(30, 12).no_schedstat());
  LinuxHypervisor hv(t.options());
  for (const SnapshotScope scope : {SnapshotScope::full, SnapshotScope::metrics_only}) {
    INFO((scope == SnapshotScope::full ? "full" : "metrics_only"));
    const DomainSnapshot s = hv.snapshot(DomainId{100}, scope);
    REQUIRE(s.vcpus.size() == 7);  // a vcpu named beyond -smp widens the domain
    CHECK(s.domain.max_vcpus == 7);
    CHECK(s.vcpus[0].state == VcpuState::running);  // R: running (or waiting on a run queue)
    CHECK(s.vcpus[1].state == VcpuState::blocked);  // S
    CHECK(s.vcpus[2].state == VcpuState::blocked);  // D
    CHECK(s.vcpus[3].state == VcpuState::blocked);  // T: stopped
    CHECK(s.vcpus[4].state == VcpuState::blocked);  // I
    CHECK(s.vcpus[5].state == VcpuState::offline);  // Z: exiting
    for (unsigned v = 0; v < 5; ++v) {
      INFO("vcpu " << v);
      CHECK(s.vcpus[v].vcpu == v);
      CHECK(s.vcpus[v].cpu == v);
      CHECK(s.vcpus[v].cpu_time == std::chrono::seconds(v + 1));
      CHECK(s.vcpus[v].wait_time == std::chrono::nanoseconds(1000 * v));
    }
    CHECK_FALSE(s.vcpus[5].cpu.has_value());  // an offline vcpu has no current CPU (model.hpp)
    CHECK(s.vcpus[6].cpu_time == ticks(42));  // no schedstat: stat's ticks
    CHECK_FALSE(s.vcpus[6].wait_time.has_value());
    CHECK(s.vcpus[6].cpu == 5u);
    if (scope == SnapshotScope::metrics_only) {
      CHECK(s.hard.rows() == 0);
      CHECK(s.limit.rows() == 0);
    }
  }
}

TEST_CASE("a truncated stat line: the thread is taken as exited, offline, never a crash", "[metrics][hostile]") {
  FakeTree t;
  small_host(t);
  add_g1(t);
  t.sched().affinity[g1] = t.cpus("5");
  LinuxHypervisor hv(t.options());
  REQUIRE(hv.snapshot(DomainId{g1}).vcpus[0].state == VcpuState::running);

  SECTION("a known vcpu's stat cut short: offline, with the emulator's maps; the domain stays") {
    t.set_thread_stat(g1, 101, "101 (CPU 0/KVM) R 1 101 101 0 -1");
    const DomainSnapshot s = hv.snapshot(DomainId{g1});
    CHECK(s.vcpus[0].state == VcpuState::offline);
    CHECK_FALSE(s.vcpus[0].cpu.has_value());
    CHECK(str(s.hard.row(0)) == "5");
    CHECK(s.vcpus[1].state == VcpuState::blocked);
    CHECK(hv.snapshot_all().domains.size() == 1);
    // The stat comes back: the vcpu with it.
    t.set_thread_stat(g1, 101, stat_line(101, "CPU 0/KVM", 'R', 1, 1, 5000, 3));
    const DomainSnapshot again = hv.snapshot(DomainId{g1});
    CHECK(again.vcpus[0].state == VcpuState::running);
    CHECK(again.vcpus[0].cpu == 3u);
  }
  SECTION("garbage in a new thread's stat: it is not named, so it is no vcpu") {
    t.add_thread(g1, Thread(106).comm("CPU 2/KVM").raw_stat(std::string("106 (CPU 2/KVM")));
    const DomainSnapshot s = hv.snapshot(DomainId{g1});
    CHECK(s.domain.online_vcpus == 2);
    CHECK(s.vcpus[2].state == VcpuState::offline);
  }
  SECTION("an empty main stat: the process is gone") {
    t.set_thread_stat(g1, g1, "");
    t.write("proc/100/stat", "");
    CHECK(hv.list_domains().empty());
    CHECK(error_of([&] { (void)hv.snapshot(DomainId{g1}); })->code() == ErrorCode::not_found);
  }
}

TEST_CASE("a vcpu thread that exits between the listing and the reading is offline, not an error", "[vanish]") {
  FakeTree t;
  small_host(t);
  add_g1(t);
  t.sched().affinity[g1] = t.cpus("0");
  LinuxHypervisor hv(t.options());
  (void)hv.snapshot(DomainId{g1});  // files of the threads now kept open

  SECTION("full: while vcpu 0 is read, vcpu 1's thread exits") {
    t.sched().hook = [&](FakeScheduler::Kind kind, int tid) {
      if (kind == FakeScheduler::Kind::get && tid == 101) t.vanish_thread(g1, 102);
      return 0;
    };
    const DomainSnapshot s = hv.snapshot(DomainId{g1});
    t.sched().hook = nullptr;
    CHECK(s.vcpus[0].state == VcpuState::running);
    CHECK(s.vcpus[1].state == VcpuState::offline);
    CHECK_FALSE(s.vcpus[1].cpu.has_value());
    CHECK(str(s.hard.row(1)) == "0");  // the emulator's
    const DomainSnapshot after = hv.snapshot(DomainId{g1});
    CHECK(after.domain.online_vcpus == 1);
    CHECK(after.vcpus[1].state == VcpuState::offline);
  }
  SECTION("metrics_only, through the primitives: listed, then its files vanish, then read") {
    std::vector<DomainInfo> list;
    hv.read_domain_list(list);
    REQUIRE(list.size() == 1);
    t.vanish_thread(g1, 101);
    DomainSnapshot into;
    vcpumap::VcpuRead read{&list[0], &into, false};
    hv.read_vcpus(*hv.known_host(), std::span<vcpumap::VcpuRead>(&read, 1), SnapshotScope::metrics_only);
    CHECK_FALSE(read.vanished);
    CHECK(into.vcpus[0].state == VcpuState::offline);
    CHECK(into.vcpus[1].state == VcpuState::blocked);
  }
}

TEST_CASE("a guest that exits while read: left out of snapshot_all, not_found alone", "[vanish]") {
  FakeTree t;
  small_host(t);
  add_g1(t);
  t.add_qemu(200, {"qemu-kvm", "-name", "other,debug-threads=on", "-smp", "1"}, 6000);
  t.add_thread(200, Thread(201).comm("CPU 0/KVM"));
  LinuxHypervisor hv(t.options());
  for (const SnapshotScope scope : {SnapshotScope::full, SnapshotScope::metrics_only}) {
    INFO((scope == SnapshotScope::full ? "full" : "metrics_only"));
    REQUIRE(hv.snapshot_all(scope).domains.size() == 2);
  }
  SECTION("midway (full): at vcpu 1's affinity") {
    t.sched().hook = [&](FakeScheduler::Kind kind, int tid) {
      if (kind == FakeScheduler::Kind::get && tid == 102) t.vanish_process(g1);
      return 0;
    };
    const HostSnapshot all = hv.snapshot_all(SnapshotScope::full);
    t.sched().hook = nullptr;
    REQUIRE(all.domains.size() == 1);
    CHECK(all.domains[0].domain.id == DomainId{200});
  }
  SECTION("a zombie (threads gone, command line empty, as the kernel shows it): no guest any more") {
    // linux.hpp still says "dying when a zombie", but guest_of drops a process in state Z
    // or X ("exited, not reaped yet"), so DomainFlags::dying is never set (reported).
    for (int tid : t.threads_of(g1))
      if (tid != g1) t.vanish_thread(g1, tid);
    t.write("proc/100/cmdline", "");
    t.set_process_state(g1, 'Z');
    const auto list = hv.list_domains();
    REQUIRE(list.size() == 1);
    CHECK(list[0].id == DomainId{200});
  }
  SECTION("between two snapshots") {
    t.vanish_process(g1);
    const HostSnapshot all = hv.snapshot_all(SnapshotScope::metrics_only);
    REQUIRE(all.domains.size() == 1);
    CHECK(all.domains[0].domain.id == DomainId{200});
  }
  auto e = error_of([&] { (void)hv.snapshot(DomainId{g1}); });
  REQUIRE(e);
  CHECK(e->code() == ErrorCode::not_found);
  CHECK(contains(e->what(), "domain 100"));
  CHECK(error_of([&] {
          (void)hv.pin_vcpu(DomainId{g1}, 0, VcpuPin{t.cpus("1"), std::nullopt, false});
        })->code() == ErrorCode::not_found);
}

TEST_CASE("pid reuse: the start time tells processes apart", "[vanish][reuse]") {
  FakeTree t;
  small_host(t);
  add_g1(t);
  LinuxHypervisor hv(t.options());
  REQUIRE(hv.snapshot(DomainId{g1}).domain.name == "a,b");
  t.vanish_process(g1);

  SECTION("a new QEMU with the old pid: the DomainId names it now") {
    t.add_qemu(g1, {"qemu-system-x86_64", "-name", "guest=new,debug-threads=on", "-smp", "1"}, 9000);
    t.add_thread(g1, Thread(150).comm("CPU 0/KVM").state('R').processor(1));
    t.sched().affinity[150] = t.cpus("2");
    const DomainSnapshot s = hv.snapshot(DomainId{g1});
    CHECK(s.domain.name == "new");
    CHECK(s.domain.uuid.empty());
    CHECK(s.domain.max_vcpus == 1);
    CHECK(str(s.hard.row(0)) == "2");
    const auto list = hv.list_domains();
    REQUIRE(list.size() == 1);
    CHECK(list[0].name == "new");
  }
  SECTION("another program with the old pid: not_found") {
    t.add_process(g1, {"/usr/bin/python3", "-c", "pass"}, 9000);
    CHECK(error_of([&] { (void)hv.snapshot(DomainId{g1}); })->code() == ErrorCode::not_found);
    CHECK(hv.list_domains().empty());
  }
  SECTION("the same program, same pid, same name, another start time: a new guest, its threads read anew") {
    add_g1(t, 5001);
    t.vanish_thread(g1, 102);
    const DomainSnapshot s = hv.snapshot(DomainId{g1});
    CHECK(s.domain.online_vcpus == 1);
    CHECK(s.vcpus[1].state == VcpuState::offline);
  }
}

TEST_CASE("hot-plug: a vcpu thread that appears is seen; unplugged vcpus report the emulator's maps", "[hotplug]") {
  FakeTree t;
  small_host(t);
  t.mount_cgroup2();
  t.cpuset_v2("/", "0-5");
  t.cpuset_v2("/machine.slice/g/emulator", "0-1");
  t.cpuset_v2("/machine.slice/g/vcpu2", "3-4");
  t.add_qemu(100, {"qemu-system-x86_64", "-name", "guest=hp,debug-threads=on", "-smp", "2,maxcpus=3"}, 100,
             Proc().cgroup("0::/machine.slice/g/emulator\n").affinity(t.cpus("0-1")));
  t.add_thread(100, Thread(101).comm("CPU 0/TCG").state('R').cgroup("0::/machine.slice/g/vcpu0\n"));
  t.add_thread(100, Thread(102).comm("CPU 1/TCG").cgroup("0::/machine.slice/g/vcpu1\n"));
  LinuxHypervisor hv(t.options());
  DomainSnapshot s = hv.snapshot(DomainId{100});
  CHECK(s.domain.online_vcpus == 2);
  CHECK(s.vcpus[2].state == VcpuState::offline);
  CHECK(str(s.hard.row(2)) == "0-1");   // the emulator's affinity
  CHECK(str(s.limit.row(2)) == "0-1");  // and cpuset
  CHECK(str(s.limit.row(0)) == "0-5");  // vcpu0 has no cpuset file: the root's
  auto e = error_of([&] { (void)hv.pin_vcpu(DomainId{100}, 2, VcpuPin{t.cpus("1"), std::nullopt, false}); });
  REQUIRE(e);
  CHECK(e->code() == ErrorCode::invalid_argument);
  CHECK(contains(e->what(), "not plugged in"));
  CHECK(t.sched().sets().empty());

  SECTION("it appears with its final name") {
    t.add_thread(
        100,
        Thread(103).comm("CPU 2/TCG").state('S').processor(4).schedstat(77, 0).cgroup("0::/machine.slice/g/vcpu2\n"));
    t.sched().affinity[103] = t.cpus("3");
  }
  SECTION("it appears with the process's name first, then QEMU names it") {
    t.add_thread(100, Thread(103)
                          .comm("qemu-system-x86")
                          .state('S')
                          .processor(4)
                          .schedstat(77, 0)
                          .cgroup("0::/machine.slice/g/vcpu2\n"));
    t.sched().affinity[103] = t.cpus("3");
    s = hv.snapshot(DomainId{100});
    CHECK(s.domain.online_vcpus == 2);
    t.add_thread(
        100,
        Thread(103).comm("CPU 2/TCG").state('S').processor(4).schedstat(77, 0).cgroup("0::/machine.slice/g/vcpu2\n"));
  }
  s = hv.snapshot(DomainId{100});
  CHECK(s.domain.online_vcpus == 3);
  CHECK(s.vcpus[2].state == VcpuState::blocked);
  CHECK(s.vcpus[2].cpu == 4u);
  CHECK(s.vcpus[2].cpu_time == 77ns);
  CHECK(str(s.hard.row(2)) == "3");
  CHECK(str(s.limit.row(2)) == "3-4");
  CHECK(str(hv.pin_vcpu(DomainId{100}, 2, VcpuPin{t.cpus("4"), std::nullopt, false}).hard) == "4");
  REQUIRE(t.sched().sets().size() == 1);
  CHECK(t.sched().sets()[0].tid == 103);
}

TEST_CASE("limit: the thread's cpuset (v2 and v1, nearest ancestor), effective = hard ∩ limit ∩ online",
          "[cgroup]") {
  FakeTree t;
  small_host(t);
  const bool v1 = GENERATE(false, true);
  INFO((v1 ? "cgroup v1" : "cgroup v2"));
  auto cpuset = [&](std::string_view cg, std::string_view list) {
    if (v1)
      t.cpuset_v1(cg, list);
    else
      t.cpuset_v2(cg, list);
  };
  auto cgroup = [&](std::string_view cg) {
    return v1 ? fmt::format("12:cpuset:{}\n0::/machine.slice\n", cg) : fmt::format("0::{}\n", cg);
  };
  if (v1)
    t.mount_cpuset_v1();
  else
    t.mount_cgroup2();
  cpuset("/", "0-5");
  cpuset("/machine.slice", "0-4");
  cpuset("/machine.slice/machine-qemu\\x2d1\\x2dg.scope/libvirt/vcpu0", "2-3");
  cpuset("/machine.slice/machine-qemu\\x2d1\\x2dg.scope/libvirt/emulator", "0");
  const std::string scope = "/machine.slice/machine-qemu\\x2d1\\x2dg.scope/libvirt/";
  t.add_qemu(100, {"qemu-system-x86_64", "-name", "guest=g,debug-threads=on", "-smp", "3"}, 100,
             Proc().cgroup(cgroup(scope + "emulator")).affinity(t.cpus("0-7")));
  t.add_thread(100, Thread(101).comm("CPU 0/KVM").cgroup(cgroup(scope + "vcpu0")));
  t.add_thread(100, Thread(102).comm("CPU 1/KVM").cgroup(cgroup(scope + "vcpu1")));  // no file: /machine.slice's
  t.add_thread(100, Thread(103).comm("CPU 2/KVM").cgroup("0::/\n"));                 // v1: no cpuset line
  t.sched().active.reset();  // the masks as stored, to see the ∩
  t.sched().affinity[101] = t.cpus("1-3");
  t.sched().affinity[102] = t.cpus("0-7");
  t.sched().affinity[103] = t.cpus("4-7");
  LinuxHypervisor hv(t.options());
  CHECK(hv.host_info().caps.vcpu_limit == "cpuset");
  const DomainSnapshot s = hv.snapshot(DomainId{100});
  CHECK(str(s.limit.row(0)) == "2-3");
  CHECK(str(s.limit.row(1)) == "0-4");
  CHECK(str(s.limit.row(2)) ==
        (v1 ? "0-7" : "0-5"));              // v1 without a cpuset line: none known (every CPU); v2: the root's
  CHECK(str(s.effective.row(0)) == "2-3");  // 1-3 ∩ 2-3 ∩ 0-5
  CHECK(str(s.effective.row(1)) == "0-4");  // 0-7 ∩ 0-4 ∩ 0-5
  CHECK(str(s.effective.row(2)) == "4-5");  // 4-7 ∩ 0-5 ∩ 0-5
  const auto threads = hv.threads(DomainId{100});
  REQUIRE(threads.size() == 1);
  CHECK(str(threads[0].limit) == "0");

  SECTION("the cpuset changes: the next snapshot reads it (the file is re-read)") {
    cpuset("/machine.slice/machine-qemu\\x2d1\\x2dg.scope/libvirt/vcpu0", "3");
    CHECK(str(hv.snapshot(DomainId{100}).limit.row(0)) == "3");
  }
  SECTION("the thread moves to another cgroup") {
    t.add_thread(100, Thread(101).comm("CPU 0/KVM").cgroup(cgroup(scope + "emulator")));
    CHECK(str(hv.snapshot(DomainId{100}).limit.row(0)) == "0");
  }
}

TEST_CASE("limit: a cgroup namespace's mount root", "[cgroup]") {
  FakeTree t;
  small_host(t);
  // The container sees /machine.slice/ct of the host's hierarchy as its /sys/fs/cgroup.
  t.mount_cgroup({"/sys/fs/cgroup", true, "", "/machine.slice/ct"});
  t.write("sys/fs/cgroup/cgroup.controllers", "cpuset cpu\n");
  t.cpuset_v2("/", "0-3");
  t.cpuset_v2("/guest", "1");
  t.add_qemu(100, {"qemu-kvm", "-name", "g,debug-threads=on", "-smp", "2"}, 100,
             Proc().cgroup("0::/machine.slice/ct/guest\n"));
  t.add_thread(100, Thread(101).comm("CPU 0/KVM").cgroup("0::/machine.slice/ct/guest\n"));
  // A path outside the namespace's root (and one that only shares its prefix): no cpuset known.
  t.add_thread(100, Thread(102).comm("CPU 1/KVM").cgroup("0::/machine.slice/ctx/guest\n"));
  LinuxHypervisor hv(t.options());
  const DomainSnapshot s = hv.snapshot(DomainId{100});
  CHECK(str(s.limit.row(0)) == "1");
  CHECK(s.limit.row(1) == CpuMap::full(8));
}

TEST_CASE("snapshot into caller storage: the second one allocates nothing", "[snapshot][into]") {
  FakeTree t;
  small_host(t);
  const bool cpusets = GENERATE(false, true);
  INFO((cpusets ? "with cpusets" : "without cpusets"));
  if (cpusets) {
    t.mount_cgroup2();
    t.cpuset_v2("/", "0-5");
  }
  add_g1(t);
  LinuxHypervisor hv(t.options());
  DomainSnapshot into;
  hv.snapshot(DomainId{g1}, SnapshotScope::full, into);
  const auto* vcpus = into.vcpus.data();
  const auto* hard = into.hard.words().data();
  const auto* soft = into.soft.words().data();
  const auto* limit = into.limit.words().data();
  const auto* effective = into.effective.words().data();
  const DomainSnapshot first = into;
  hv.snapshot(DomainId{g1}, SnapshotScope::full, into);
  CHECK(into.vcpus.data() == vcpus);
  CHECK(into.hard.words().data() == hard);
  CHECK(into.soft.words().data() == soft);
  // Without cpusets the limit rows are the front's (backend.hpp's finish_read assigns a new
  // full matrix each time: reported), with them the backend's, in place.
  if (cpusets) CHECK(into.limit.words().data() == limit);
  CHECK(into.effective.words().data() == effective);
  CHECK(into.soft == AffinityMatrix::full(4, 8));
  into.taken_at = first.taken_at;
  CHECK(into == first);
}

// ======================================================================================
// Pins
// ======================================================================================

/// g1 in cgroup v2 cpusets: vcpu 0 in 1-3, vcpu 1 in 0-5, the emulator in 0-1, the
/// IOThread in 4-5; the scheduler narrows to them.
struct PinSetup {
  FakeTree t;
  std::optional<LinuxHypervisor> hv;
  std::map<int, CpuMap> initial;
  PinSetup() {
    small_host(t);
    t.mount_cgroup2();
    t.cpuset_v2("/", "0-5");
    t.cpuset_v2("/g/vcpu0", "1-3");
    t.cpuset_v2("/g/emulator", "0-1");
    t.cpuset_v2("/g/io", "4-5");
    t.add_qemu(g1, g1_args, 5000, Proc().cgroup("0::/g/emulator\n").affinity(t.cpus("0-1")));
    t.add_thread(g1, Thread(101).comm("CPU 0/KVM").state('R').cgroup("0::/g/vcpu0\n"));
    t.add_thread(g1, Thread(102).comm("CPU 1/KVM").cgroup("0::/g/vcpu1\n"));
    t.add_thread(g1, Thread(105).comm("IO iothread1").cgroup("0::/g/io\n"));
    auto& s = t.sched();
    s.affinity[101] = t.cpus("1-3");
    s.affinity[102] = t.cpus("0-5");
    s.affinity[105] = t.cpus("4-5");
    s.cpuset = {{g1, t.cpus("0-1")}, {101, t.cpus("1-3")}, {102, t.cpus("0-5")}, {105, t.cpus("4-5")}};
    initial = s.affinity;
    hv.emplace(t.options());
  }
  std::size_t sets() { return t.sched().sets().size(); }
};

TEST_CASE("pin_vcpu: sets exactly that thread, returns what it reads back", "[pin]") {
  PinSetup p;
  auto& hv = *p.hv;
  auto& sched = p.t.sched();
  const vcpumap::PinResult r = hv.pin_vcpu(DomainId{g1}, 1, VcpuPin{p.t.cpus("2,4"), std::nullopt, false});
  CHECK(hv.last_call_count() > 0);
  REQUIRE(sched.sets().size() == 1);
  CHECK(sched.sets()[0].tid == 102);
  CHECK(str(sched.sets()[0].cpus) == "2,4");
  CHECK(str(r.hard) == "2,4");
  CHECK(str(r.soft) == "2,4");  // soft: every CPU ∩ hard
  CHECK(str(sched.affinity.at(102)) == "2,4");
  for (int tid : {1, g1, 101, 105}) CHECK(sched.affinity.at(tid) == p.initial.at(tid));
  CHECK(str(hv.snapshot(DomainId{g1}).hard.row(1)) == "2,4");

  SECTION("CPUs outside the cpuset beside some inside: accepted, the kernel keeps the intersection") {
    const vcpumap::PinResult n = hv.pin_vcpu(DomainId{g1}, 0, VcpuPin{p.t.cpus("0-2"), std::nullopt, false});
    CHECK(str(sched.sets().back().cpus) == "0-2");  // asked as given
    CHECK(str(n.hard) == "1-2");                    // read back: ∩ its cpuset 1-3
    CHECK(str(sched.affinity.at(101)) == "1-2");
    const DomainSnapshot s = hv.snapshot(DomainId{g1});
    CHECK(str(s.hard.row(0)) == "1-2");
    CHECK(str(s.effective.row(0)) == "1-2");
  }
  SECTION("the kernel narrows what it stores: the result is what it holds, read back") {
    // The backend checks against the cpuset it read; the kernel's (narrower now) wins.
    sched.cpuset[102] = p.t.cpus("4-5");
    const vcpumap::PinResult n = hv.pin_vcpu(DomainId{g1}, 1, VcpuPin{p.t.cpus("3-4"), std::nullopt, false});
    CHECK(str(n.hard) == "4");
    CHECK(str(sched.affinity.at(102)) == "4");
  }
}

TEST_CASE("pin_vcpu: refused before any scheduler call", "[pin][errors]") {
  PinSetup p;
  auto& hv = *p.hv;
  struct Bad {
    const char* what;
    unsigned vcpu;
    VcpuPin pin;
    ErrorCode code;
    std::vector<const char*> says;
  };
  const Bad bad[] = {
      {"no CPU of its cpuset",
       0,
       {p.t.cpus("0,4"), std::nullopt, false},
       ErrorCode::invalid_argument,
       {"vcpu 0: hard affinity 0,4 holds no online CPU of the vcpu's cpuset 1-3"}},
      {"offline CPUs only",
       1,
       {p.t.cpus("6-7"), std::nullopt, false},
       ErrorCode::invalid_argument,
       {"vcpu 1: hard affinity 6-7 holds no online CPU"}},
      {"a soft map", 0, {std::nullopt, p.t.cpus("1"), false}, ErrorCode::unsupported, {"no soft affinity"}},
      {"a hard and a soft map", 0, {p.t.cpus("1"), p.t.cpus("1"), false}, ErrorCode::unsupported, {"no soft affinity"}},
      {"a vcpu not plugged in",
       2,
       {p.t.cpus("1"), std::nullopt, false},
       ErrorCode::invalid_argument,
       {"vcpu 2 is not plugged in"}},
      {"beyond the domain",
       4,
       {p.t.cpus("1"), std::nullopt, false},
       ErrorCode::invalid_argument,
       {"vcpu 4 is beyond its 4 vcpus"}},
      {"beyond the host",
       0,
       {CpuMap(64, {63}), std::nullopt, false},
       ErrorCode::invalid_argument,
       {"beyond the host's 8 CPUs"}},
  };
  for (const Bad& b : bad) {
    INFO(b.what);
    auto e = error_of([&] { (void)hv.pin_vcpu(DomainId{g1}, b.vcpu, b.pin); });
    REQUIRE(e);
    CHECK(e->code() == b.code);
    CHECK(contains(e->what(), "domain 100 (a,b)"));
    for (const char* part : b.says) CHECK(contains(e->what(), part));
    CHECK(p.sets() == 0);
    CHECK(p.t.sched().affinity == p.initial);
  }
}

TEST_CASE("pin errors from the kernel: EPERM, ESRCH, EINVAL", "[pin][errors]") {
  PinSetup p;
  auto& hv = *p.hv;
  auto& sched = p.t.sched();
  sched.fail_set[101] = EPERM;
  auto e = error_of([&] { (void)hv.pin_vcpu(DomainId{g1}, 0, VcpuPin{p.t.cpus("2"), std::nullopt, false}); });
  REQUIRE(e);
  CHECK(e->code() == ErrorCode::permission_denied);
  CHECK(contains(e->what(), "thread 101"));
  sched.fail_set[101] = ESRCH;
  e = error_of([&] { (void)hv.pin_vcpu(DomainId{g1}, 0, VcpuPin{p.t.cpus("2"), std::nullopt, false}); });
  REQUIRE(e);
  CHECK(e->code() == ErrorCode::not_found);
  CHECK(contains(e->what(), "exited"));
  sched.fail_set[101] = EINVAL;  // the cpuset changed under us
  e = error_of([&] { (void)hv.pin_vcpu(DomainId{g1}, 0, VcpuPin{p.t.cpus("2"), std::nullopt, false}); });
  REQUIRE(e);
  CHECK(e->code() == ErrorCode::invalid_argument);
  sched.fail_set.clear();
  sched.fail_get[102] = EPERM;  // reading another user's thread
  e = error_of([&] { (void)hv.snapshot(DomainId{g1}); });
  REQUIRE(e);
  CHECK(e->code() == ErrorCode::permission_denied);
  CHECK(sched.affinity == p.initial);
}

TEST_CASE("pin_vcpus: a failure at vcpu k rolls the earlier ones back", "[pin][rollback]") {
  PinSetup p;
  auto& hv = *p.hv;
  auto& sched = p.t.sched();
  // A guest of four plugged vcpus, each in 0-5.
  p.t.add_qemu(300, {"qemu-kvm", "-name", "four,debug-threads=on", "-smp", "4"}, 300);
  for (int v = 0; v < 4; ++v) {
    p.t.add_thread(300, Thread(310 + v).comm(fmt::format("CPU {}/KVM", v)));
    sched.affinity[310 + v] = p.t.cpus(fmt::format("{}", v));
  }
  const auto initial = sched.affinity;
  for (int k = 0; k < 4; ++k) {
    INFO("failing at vcpu " << k);
    sched.calls.clear();
    sched.fail_set = {{310 + k, EBUSY}};
    try {
      (void)hv.pin_vcpus(DomainId{300}, VcpusPin{vcpumap::VcpuSet::full(4), p.t.cpus("4-5")});
      FAIL("no PinError");
    } catch (const vcpumap::PinError& e) {
      CHECK(e.code() == ErrorCode::busy);
      CHECK(e.failed_vcpu() == static_cast<unsigned>(k));
      CHECK(e.rolled_back());
    }
    CHECK(sched.affinity == initial);
    // k pins, the failed one, k restores (to the maps read before).
    const auto sets = sched.sets();
    REQUIRE(sets.size() == static_cast<std::size_t>(2 * k + 1));
    for (int i = 0; i < k; ++i) {
      CHECK(sets[static_cast<std::size_t>(i)].tid == 310 + i);
      CHECK(str(sets[static_cast<std::size_t>(k + 1 + i)].cpus) == std::to_string(i));
    }
  }
  sched.fail_set.clear();
  const auto r = hv.pin_vcpus(DomainId{300}, VcpusPin{vcpumap::VcpuSet(4, {1, 3}), p.t.cpus("4-5")});
  CHECK(str(r.hard.row(1)) == "4-5");
  CHECK(str(r.hard.row(0)) == "0");
  CHECK(str(sched.affinity.at(311)) == "4-5");
  CHECK(str(sched.affinity.at(310)) == "0");
}

TEST_CASE("pin_emulator and pin_iothread", "[pin][threads]") {
  PinSetup p;
  auto& hv = *p.hv;
  auto& sched = p.t.sched();
  CHECK(str(hv.pin_emulator(DomainId{g1}, p.t.cpus("1"))) == "1");
  REQUIRE(p.sets() == 1);
  CHECK(sched.sets()[0].tid == g1);
  CHECK(str(sched.affinity.at(g1)) == "1");
  CHECK(str(hv.pin_iothread(DomainId{g1}, "iothread1", p.t.cpus("5"))) == "5");
  REQUIRE(p.sets() == 2);
  CHECK(sched.sets()[1].tid == 105);
  auto e = error_of([&] { (void)hv.pin_iothread(DomainId{g1}, "iothread2", p.t.cpus("5")); });
  REQUIRE(e);
  CHECK(e->code() == ErrorCode::not_found);
  CHECK(contains(e->what(), "iothread2"));
  e = error_of([&] { (void)hv.pin_emulator(DomainId{g1}, p.t.cpus("2-3")); });  // nothing of its cpuset 0-1
  REQUIRE(e);
  CHECK(e->code() == ErrorCode::invalid_argument);
  CHECK(contains(e->what(), "emulator thread"));
  CHECK(contains(e->what(), "cpuset 0-1"));
  CHECK(p.sets() == 2);
  // Beside a CPU of its cpuset, CPUs outside are accepted (linux.hpp): the kernel keeps 0-1 ∩ 1-2.
  CHECK(str(hv.pin_emulator(DomainId{g1}, p.t.cpus("1-2"))) == "1");
  REQUIRE(p.sets() == 3);
  CHECK(str(sched.sets()[2].cpus) == "1-2");
  CHECK(str(hv.pin_emulator(DomainId{g1}, p.t.cpus("1"))) == "1");
  for (const CpuMap& m : {CpuMap(8), p.t.cpus("6-7"), CpuMap(16, {12})}) {
    INFO(str(m));
    CHECK(error_of([&] { (void)hv.pin_emulator(DomainId{g1}, m); })->code() == ErrorCode::invalid_argument);
  }
  CHECK(error_of([&] { (void)hv.pin_emulator(DomainId{999}, p.t.cpus("1")); })->code() == ErrorCode::not_found);
  CHECK(p.sets() == 4);
  const auto threads = hv.threads(DomainId{g1});
  REQUIRE(threads.size() == 2);
  CHECK(str(threads[0].hard) == "1");
  CHECK(str(threads[1].hard) == "5");
  CHECK(str(threads[1].limit) == "4-5");
}

TEST_CASE("kernel_scheduler_calls: the real calls, on this test's own thread", "[kernel]") {
  const auto k = vcpumap::kernel_scheduler_calls();
  const int tid = static_cast<int>(::gettid());
  const std::size_t universe = static_cast<std::size_t>(std::max(1L, ::sysconf(_SC_NPROCESSORS_CONF)));
  CpuMap mine(universe);
  REQUIRE(k->get_affinity(tid, universe, mine) == 0);
  CHECK(mine.universe() == universe);
  CHECK_FALSE(mine.empty());
  cpu_set_t raw;
  CPU_ZERO(&raw);
  REQUIRE(::sched_getaffinity(tid, sizeof raw, &raw) == 0);
  for (std::size_t c = 0; c < universe && c < CPU_SETSIZE; ++c)
    CHECK(mine.test(c) == static_cast<bool>(CPU_ISSET(c, &raw)));
  CHECK(k->set_affinity(tid, mine) == 0);  // the same mask again
  CpuMap again(universe);
  CHECK(k->get_affinity(tid, universe, again) == 0);
  CHECK(again == mine);
  // A mask wider than the kernel's (CPU ids beyond any host) is sized, not refused.
  CpuMap wide(4096);
  for (std::size_t c : mine) wide.set(c);
  CHECK(k->set_affinity(tid, wide) == 0);
  CHECK(k->get_affinity(0x3ffffffe, universe, again) == ESRCH);
  CHECK(k->set_affinity(0x3ffffffe, mine) == ESRCH);
  CHECK(k->set_affinity(tid, CpuMap(universe)) == EINVAL);  // no CPU
}

TEST_CASE("the real host reads (no guest needed)", "[kernel]") {
  LinuxHypervisor hv;
  const HostInfo h = hv.host_info();
  CHECK(h.cpu_universe() >= 1);
  CHECK_FALSE(h.online.empty());
  CHECK(h.online.is_subset_of(h.present));
  CHECK_FALSE(h.caps.soft_affinity);
}

TEST_CASE("a moved-from LinuxHypervisor says so; the moved-to one works", "[move]") {
  FakeTree t;
  small_host(t);
  add_g1(t);
  LinuxHypervisor a(t.options());
  LinuxHypervisor b(std::move(a));
  CHECK(b.list_domains().size() == 1);
  auto e = error_of([&] { (void)a.list_domains(); });  // NOLINT(bugprone-use-after-move)
  REQUIRE(e);
  CHECK(e->code() == ErrorCode::internal);
  CHECK(a.call_count() == 0);
}

// ======================================================================================
// Costs
// ======================================================================================

TEST_CASE("call_count: monotonic; files kept open make the second snapshot cheaper", "[calls]") {
  FakeTree t;
  small_host(t);
  t.mount_cgroup2();
  t.cpuset_v2("/", "0-5");
  t.add_qemu(100, {"qemu-system-x86_64", "-name", "g,debug-threads=on", "-smp", "8"}, 100,
             Proc().cgroup("0::/machine.slice/g/emulator\n"));
  for (int v = 0; v < 8; ++v)
    t.add_thread(
        100, Thread(110 + v).comm(fmt::format("CPU {}/KVM", v)).cgroup(fmt::format("0::/machine.slice/g/vcpu{}\n", v)));
  LinuxHypervisor hv(t.options());
  const std::size_t c0 = hv.call_count();
  (void)hv.snapshot(DomainId{100});
  const std::size_t first = hv.last_call_count();
  const std::size_t c1 = hv.call_count();
  (void)hv.snapshot(DomainId{100});
  const std::size_t second = hv.last_call_count();
  const std::size_t c2 = hv.call_count();
  INFO("first " << first << ", second " << second);
  CHECK(c1 - c0 == first);
  CHECK(c2 - c1 == second);
  // The first opens every stat, schedstat, cgroup and cpuset file (and walks up to the
  // root's); the second re-reads them with pread.
  CHECK(second < first);
  CHECK(second * 2 < first);
  (void)hv.snapshot(DomainId{100}, SnapshotScope::metrics_only);
  const std::size_t metrics = hv.last_call_count();
  CHECK(metrics < second);  // no affinity, no cgroup, no cpuset
  CHECK(metrics >= 8 * 2);  // stat and schedstat of each vcpu
}

}  // namespace

TEST_CASE("domains: a command line claiming more vcpus than the affinity-cell limit is not believed", "[domains][hostile]") {
  FakeTree t;
  t.add_cpu_host("0-65535", "0-1", "0-1", {{0, 0, 0, "0"}, {1, 0, 1, "1"}});
  t.add_init();
  // 16384 vcpus × 65536 CPUs = 2^30 cells, past limits::max_matrix_cells (2^28): a process
  // anyone can start with such a command line must not make every snapshot allocate 512 MiB.
  t.add_qemu(100, {"/usr/bin/qemu-system-x86_64", "-name", "guest=huge,debug-threads=on", "-smp", "16384"}, 100);
  t.add_thread(100, Thread(101).comm("CPU 0/KVM"));
  t.add_qemu(200, {"/usr/bin/qemu-system-x86_64", "-name", "guest=small,debug-threads=on", "-smp", "2"}, 200);
  t.add_thread(200, Thread(201).comm("CPU 0/KVM"));
  LinuxHypervisor hv(t.options());
  const std::vector<DomainInfo> list = hv.list_domains();
  REQUIRE(list.size() == 2);
  CHECK(list[0].max_vcpus == 1);  // the one vcpu thread it really has
  CHECK(contains(list[0].vcpu_problem, "claims 16384 vcpus"));
  CHECK(list[1].max_vcpus == 2);
  CHECK(list[1].vcpu_problem.empty());
  const DomainSnapshot s = hv.snapshot(DomainId{100});
  CHECK(s.hard.rows() == 1);
  CHECK(s.vcpus.at(0).state == VcpuState::unknown);
  CHECK(hv.snapshot_all().domains.size() == 2);
}
