// consumer.cpp — an out-of-tree program on the installed (or subproject) vcpumap headers,
// built by run_consumers.sh through pkg-config, CMake and a meson parent project.
//
//   $ consumer EXPECTED_VERSION
//
// Exits 0 when everything checks out; otherwise 1, naming each failed check on stderr.
#include <cstdio>
#include <string>
#include <string_view>

#include <vcpumap/vcpumap.hpp>

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: consumer EXPECTED_VERSION\n");
    return 2;
  }
  const std::string_view expected = argv[1];
  int failures = 0;
  auto check = [&](bool ok, const std::string& what) {
    if (!ok) {
      fmt::print(stderr, "consumer: FAIL: {}\n", what);
      ++failures;
    }
  };

  // The headers found are the version the build system claims.
  check(std::string_view(vcpumap::version_string) == expected,
        fmt::format("vcpumap::version_string is '{}', expected '{}'", vcpumap::version_string, expected));
  check(std::string_view(VCPUMAP_VERSION_STRING) == expected,
        fmt::format("VCPUMAP_VERSION_STRING is '{}', expected '{}'", VCPUMAP_VERSION_STRING, expected));
  const std::string numeric = fmt::format("{}.{}.{}", vcpumap::version.major, vcpumap::version.minor, vcpumap::version.patch);
  check(numeric == expected, fmt::format("vcpumap::version is {}, expected {}", numeric, expected));

  try {
    // The cpulist grammar and {fmt} support.
    const auto m = vcpumap::CpuMap::parse("0-7,^3");
    check(m.count() == 7, fmt::format("'0-7,^3' has {} CPUs, expected 7", m.count()));
    check(m.to_string() == "0-2,4-7", fmt::format("'0-7,^3' prints as '{}', expected '0-2,4-7'", m.to_string()));
    check(fmt::format("{}", m) == "0-2,4-7", fmt::format("fmt prints '0-7,^3' as '{}'", m));

    // The mock hypervisor: the demo host, a snapshot, a pin.
    vcpumap::MockHypervisor hv = vcpumap::MockHypervisor::demo();
    const vcpumap::HostInfo host = hv.host_info();
    check(host.cpu_universe() == 4, fmt::format("the demo host has {} CPUs, expected 4", host.cpu_universe()));
    const vcpumap::DomainId xperf2{3};
    check(hv.snapshot(xperf2).hard.rows() == 4, "the demo domain 3 does not have 4 vcpus");
    hv.pin_vcpu(xperf2, 0, {.hard = host.parse("2-3")});
    const auto after = hv.snapshot(xperf2);
    check(after.hard.row(0).to_string() == "2-3",
          fmt::format("vcpu 0 of domain 3 is pinned to '{}' after pinning it to '2-3'", after.hard.row(0)));
    fmt::print("consumer: vcpumap {}; domain 3 hard affinity after the pin:\n{}", vcpumap::version_string, after.hard);
  } catch (const vcpumap::Error& e) {
    fmt::print(stderr, "consumer: FAIL: vcpumap::Error: {}\n", e.what());
    return 1;
  }

  if (failures != 0) {
    fmt::print(stderr, "consumer: {} check(s) failed\n", failures);
    return 1;
  }
  fmt::print("consumer: OK\n");
  return 0;
}
