// xen_consumer.cpp — an out-of-tree program linked with libvcpumap (the Xen backend), built
// by run_consumers.sh when vcpumap was built with it. It only asks whether Xen is there
// (it is not, outside dom0): the point is that it compiles, links and loads the library.
//
//   $ xen-consumer EXPECTED_VERSION
#include <cstdio>
#include <string_view>

#include <vcpumap/vcpumap.hpp>
#include <vcpumap/xen.hpp>

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: xen-consumer EXPECTED_VERSION\n");
    return 2;
  }
  if (std::string_view(vcpumap::version_string) != argv[1]) {
    fmt::print(stderr, "xen-consumer: FAIL: vcpumap::version_string is '{}', expected '{}'\n", vcpumap::version_string,
               argv[1]);
    return 1;
  }
  const bool available = vcpumap::XenHypervisor::available();
  fmt::print("xen-consumer: vcpumap {}; XenHypervisor::available() = {}\nxen-consumer: OK\n", vcpumap::version_string,
             available);
  return 0;
}
