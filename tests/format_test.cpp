#include <vcpumap/format.hpp>

#include <catch2/catch.hpp>

using vcpumap::CpuMap;
using vcpumap::VcpuSet;

TEST_CASE("fmt prints the canonical list by default", "[format]") {
  const CpuMap m(12, {0, 1, 2, 3, 8, 9, 10, 11});
  CHECK(fmt::format("{}", m) == "0-3,8-11");
  CHECK(fmt::format("{:l}", m) == "0-3,8-11");
  CHECK(fmt::format("[{}]", CpuMap(4)) == "[]");
  CHECK(fmt::format("{}", VcpuSet(4, {1, 3})) == "1,3");
}

TEST_CASE("fmt format specs select the other forms", "[format]") {
  const CpuMap m(12, {0, 1, 2, 3, 8, 9, 10, 11});
  CHECK(fmt::format("{:a}", m) == "0-3,8-11");
  CHECK(fmt::format("{:a}", CpuMap::full(4)) == "all");
  CHECK(fmt::format("{:a}", CpuMap(4)) == "none");
  CHECK(fmt::format("{:m}", m) == "00000f0f");
  CHECK(fmt::format("{:x}", m) == "0xf0f");
  CHECK(fmt::format("{:y}", m) == "yyyy----yyyy");
}

TEST_CASE("a bad format spec is a format_error", "[format]") {
  const CpuMap m(4, {1});
  CHECK_THROWS_AS(fmt::format(fmt::runtime("{:q}"), m), fmt::format_error);
  CHECK_THROWS_AS(fmt::format(fmt::runtime("{:ll}"), m), fmt::format_error);
  CHECK_THROWS_AS(fmt::format(fmt::runtime("{:>8}"), m), fmt::format_error);
}
