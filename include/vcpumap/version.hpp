// vcpumap/version.hpp — the library's version (kept equal to meson.build's by a test).
#pragma once

#define VCPUMAP_VERSION_MAJOR 0
#define VCPUMAP_VERSION_MINOR 1
#define VCPUMAP_VERSION_PATCH 0
#define VCPUMAP_VERSION_STRING "0.1.0"

namespace vcpumap {

struct Version {
  int major, minor, patch;
};
inline constexpr Version version{VCPUMAP_VERSION_MAJOR, VCPUMAP_VERSION_MINOR, VCPUMAP_VERSION_PATCH};
inline constexpr const char* version_string = VCPUMAP_VERSION_STRING;

}  // namespace vcpumap
