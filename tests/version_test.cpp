#include <vcpumap/version.hpp>

#include <string>

#include <catch2/catch.hpp>

TEST_CASE("the header's version is meson's", "[version]") {
  CHECK(std::string(vcpumap::version_string) == MESON_PROJECT_VERSION);
  CHECK(std::to_string(vcpumap::version.major) + "." + std::to_string(vcpumap::version.minor) + "." +
            std::to_string(vcpumap::version.patch) ==
        MESON_PROJECT_VERSION);
}
