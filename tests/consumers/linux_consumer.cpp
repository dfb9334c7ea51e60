// linux_consumer.cpp — an out-of-tree program linked with libvcpumap-linux (the Linux/KVM
// backend), built by run_consumers.sh when vcpumap was built with it. LinuxHypervisor works
// on any Linux host (it reads /proc and /sys; QEMU guests are optional): it prints the online
// CPUs and how many domains (QEMU processes) it finds. The point is that it compiles, links
// and loads the library, with no nlohmann_json in sight.
//
//   $ linux-consumer EXPECTED_VERSION
//
// Exits 0 when it works; 77 (skipped) when /sys/devices/system/cpu cannot be read
// (hypervisor_unavailable, as in some sandboxes); otherwise 1.
#include <cstdio>
#include <string_view>

#include <vcpumap/linux.hpp>
#include <vcpumap/vcpumap.hpp>

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: linux-consumer EXPECTED_VERSION\n");
    return 2;
  }
  if (std::string_view(vcpumap::version_string) != argv[1]) {
    fmt::print(stderr, "linux-consumer: FAIL: vcpumap::version_string is '{}', expected '{}'\n",
               vcpumap::version_string, argv[1]);
    return 1;
  }
  try {
    vcpumap::LinuxHypervisor host;
    const vcpumap::HostInfo info = host.host_info();
    const auto domains = host.list_domains();
    if (info.online.count() == 0) {
      fmt::print(stderr, "linux-consumer: FAIL: the host has no online CPU\n");
      return 1;
    }
    fmt::print("linux-consumer: vcpumap {}; online CPUs {}; {} domain(s)\nlinux-consumer: OK\n",
               vcpumap::version_string, info.online, domains.size());
  } catch (const vcpumap::Error& e) {
    if (e.code() == vcpumap::ErrorCode::hypervisor_unavailable) {
      fmt::print("linux-consumer: SKIP: {}\n", e.what());
      return 77;
    }
    fmt::print(stderr, "linux-consumer: FAIL: vcpumap::Error: {}\n", e.what());
    return 1;
  }
  return 0;
}
