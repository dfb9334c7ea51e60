// open.cpp — the one file of the module that knows which backends were built (meson sets
// VCPUMAP_PY_WITH_XEN and VCPUMAP_PY_WITH_LINUX from xen_found and linux_found, as for the
// example tools) and names them; the rest sees vcpumap::AnyHypervisor. No Python here: it runs
// without the GIL.
#include <utility>

#include "bindings.hpp"

#if VCPUMAP_PY_WITH_XEN
#include <vcpumap/xen.hpp>
#endif
#if VCPUMAP_PY_WITH_LINUX
#include <vcpumap/linux.hpp>
#endif

namespace vcpumap::python {

namespace {

#if VCPUMAP_PY_WITH_XEN
bool xen_usable() { return XenHypervisor::available(); }
AnyHypervisor open_xen() { return AnyHypervisor(std::in_place_type<XenHypervisor>); }
constexpr std::string_view no_xen = "Xen is not usable here (no /dev/xen/privcmd)";
#else
bool xen_usable() { return false; }
AnyHypervisor open_xen() {
  throw Error(ErrorCode::hypervisor_unavailable, "this build of vcpumap has no Xen backend (libxenctrl was not found)");
}
constexpr std::string_view no_xen = "this build has no Xen backend";
#endif

#if VCPUMAP_PY_WITH_LINUX
bool linux_guests_present() { return LinuxHypervisor::guests_present(); }
AnyHypervisor open_linux(std::vector<std::string> qmp) {
  LinuxOptions o;
  o.qmp_sockets = std::move(qmp);
  return AnyHypervisor(std::in_place_type<LinuxHypervisor>, std::move(o));
}
#else
bool linux_guests_present() { return false; }
AnyHypervisor open_linux(std::vector<std::string>) {
  throw Error(ErrorCode::hypervisor_unavailable,
              "this build of vcpumap has no Linux backend (nlohmann-json was not found)");
}
#endif

AnyHypervisor open_mock(const OpenRequest& r) {
  if (r.fixture_path) return AnyHypervisor(MockHypervisor::from_fixture_file(*r.fixture_path));
  if (r.fixture_text) return AnyHypervisor(MockHypervisor::from_fixture(*r.fixture_text));
  return AnyHypervisor(MockHypervisor::demo());
}

}  // namespace

std::vector<std::string> built_backends() {
  std::vector<std::string> out{"mock"};
  if (VCPUMAP_PY_WITH_XEN) out.push_back("xen");
  if (VCPUMAP_PY_WITH_LINUX) out.push_back("linux");
  return out;
}

std::pair<AnyHypervisor, std::string> open_backend(const OpenRequest& r) {
  const bool fixture = r.fixture_path || r.fixture_text;
  if (r.kind != "auto" && r.kind != "xen" && r.kind != "linux" && r.kind != "mock")
    throw Error(ErrorCode::invalid_argument,
                fmt::format("a backend is 'auto', 'xen', 'linux' or 'mock', not '{}'", escape_terminal(r.kind)));
  if (fixture && (r.kind == "xen" || r.kind == "linux"))
    throw Error(ErrorCode::invalid_argument, fmt::format("a fixture is for the mock backend, not for {}", r.kind));
  if (!r.qmp.empty() && r.kind != "linux" && r.kind != "auto")
    throw Error(ErrorCode::invalid_argument, "qmp sockets are for the linux backend");
  if (r.kind == "mock" || (r.kind == "auto" && fixture)) return {open_mock(r), "mock"};
  if (r.kind == "xen") return {open_xen(), "xen"};
  if (r.kind == "linux") return {open_linux(r.qmp), "linux"};
  // auto, as the tools choose, except that a library never falls back to the demo host: a
  // program reading it would take made-up domains for real ones.
  std::string why(no_xen);
  if (xen_usable()) {
    try {
      return {open_xen(), "xen"};
    } catch (const Error& e) {
      why = e.what();
    }
  }
  if (!r.qmp.empty() || linux_guests_present()) return {open_linux(r.qmp), "linux"};
  throw Error(ErrorCode::hypervisor_unavailable,
              fmt::format("{} and no QEMU guest runs here (open('mock') is the demo host)", why));
}

}  // namespace vcpumap::python
