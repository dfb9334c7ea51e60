#include <vcpumap/affinity_matrix.hpp>

#include <cstdint>
#include <random>
#include <string>

#include <catch2/catch.hpp>

#include "random_maps.hpp"

#if VCPUMAP_TEST_LIBVIRT
#include <libvirt/libvirt.h>
#endif

using vcpumap::AffinityMatrix;
using vcpumap::CpuMap;
using vcpumap::VcpuSet;

TEST_CASE("shape, bits, rows and columns", "[matrix]") {
  AffinityMatrix m(3, 70);
  CHECK(m.rows() == 3);
  CHECK(m.cols() == 70);
  CHECK(m.row_words() == 2);
  m.set(0, 0).set(0, 69).set(2, 69);
  CHECK(m.test(0, 69));
  CHECK(!m.test(1, 69));
  CHECK(m.row(0) == CpuMap(70, {0, 69}));
  CHECK(m.row(1) == CpuMap(70));
  CHECK(m.column(69) == VcpuSet(3, {0, 2}));
  CHECK(m.column(5) == VcpuSet(3));
  m.reset(0, 69);
  CHECK(m.column(69) == VcpuSet(3, {2}));
  CHECK(m.row_empty(1));
  CHECK(!m.row_empty(2));

  const AffinityMatrix any = AffinityMatrix::full(4, 16);
  for (std::size_t v = 0; v < 4; ++v) CHECK(any.row(v) == CpuMap::full(16));
  CHECK(any.column(15) == VcpuSet::full(4));

  const AffinityMatrix none(0, 0);  // a domain with no vcpus
  CHECK(none.rows() == 0);
  CHECK(none.to_cpumaps().empty());
}

TEST_CASE("out-of-range indexes throw naming vcpu and CPU", "[matrix][errors]") {
  AffinityMatrix m(2, 8);
  REQUIRE_THROWS_WITH(m.set(2, 0), "vcpu 2 is beyond the matrix's 2 vcpus");
  REQUIRE_THROWS_WITH(m.set(1, 8), "vcpu 1: CPU 8 is beyond the matrix's 8 CPUs");
  REQUIRE_THROWS_WITH(m.row(5), "vcpu 5 is beyond the matrix's 2 vcpus");
  REQUIRE_THROWS_WITH(m.column(8), "CPU 8 is beyond the matrix's 8 CPUs");
  REQUIRE_THROWS_WITH(m.set_row(0, CpuMap(16, {3, 9})), "vcpu 0: CPU 9 is beyond the matrix's 8 CPUs");
  CHECK(m.row(0).empty());  // nothing half-changed
  m.set_row(1, CpuMap(16, {3}));  // a wider map is fine when its CPUs fit
  CHECK(m.row(1) == CpuMap(8, {3}));
  REQUIRE_THROWS_WITH(m & AffinityMatrix(3, 8), "matrices of 2x8 and 3x8 do not combine");
}

TEST_CASE("set_row keeps other rows and the padding clear", "[matrix]") {
  std::mt19937_64 rng(3);
  for (int i = 0; i < 300; ++i) {
    const std::size_t rows = 1 + rng() % 20, cols = 1 + rng() % 300;
    AffinityMatrix m(rows, cols);
    std::vector<CpuMap> expect;
    for (std::size_t v = 0; v < rows; ++v) {
      expect.push_back(vcpumap::test::random_set(rng, cols));
      m.set_row(v, expect.back());
    }
    for (std::size_t v = 0; v < rows; ++v) REQUIRE(m.row(v) == expect[v]);
    for (std::size_t c = 0; c < cols; ++c) {
      const VcpuSet col = m.column(c);
      for (std::size_t v = 0; v < rows; ++v) REQUIRE(col.test(v) == expect[v].test(c));
    }
    REQUIRE(AffinityMatrix::from_cpumaps(m.to_cpumaps(), rows, cols) == m);
    const AffinityMatrix copy = m;
    REQUIRE(copy == m);
  }
}

TEST_CASE("and, or and restriction to a CPU set", "[matrix]") {
  AffinityMatrix a(2, 8), b(2, 8);
  a.set_row(0, CpuMap(8, {0, 1, 2})).set_row(1, CpuMap(8, {4, 5}));
  b.set_row(0, CpuMap(8, {2, 3})).set_row(1, CpuMap(8, {5}));
  CHECK((a & b).row(0) == CpuMap(8, {2}));
  CHECK((a | b).row(0) == CpuMap(8, {0, 1, 2, 3}));
  a.restrict_to(CpuMap(8, {1, 5}));
  CHECK(a.row(0) == CpuMap(8, {1}));
  CHECK(a.row(1) == CpuMap(8, {5}));
}

TEST_CASE("libvirt cpumaps layout", "[matrix][bytes]") {
  AffinityMatrix m(2, 12);
  m.set_row(0, CpuMap(12, {0, 9})).set_row(1, CpuMap(12, {3, 11}));
  const auto maps = m.to_cpumaps();
  CHECK(maps == std::vector<std::uint8_t>{0x01, 0x02, 0x08, 0x08});
  // A longer maplen pads with zeros; a shorter one must still hold every CPU.
  CHECK(m.to_cpumaps(3) == std::vector<std::uint8_t>{0x01, 0x02, 0x00, 0x08, 0x08, 0x00});
  REQUIRE_THROWS_WITH(m.to_cpumaps(1), "vcpu 0: CPU 9 does not fit in a 1-byte map");
  CHECK(AffinityMatrix::from_cpumaps(maps, 2, 12) == m);
  const std::uint8_t beyond[] = {0x00, 0x00, 0x00, 0x10};
  REQUIRE_THROWS_WITH(AffinityMatrix::from_cpumaps(beyond, 2, 12),
                      "vcpu 1: byte map: byte 2: sets CPU 12, beyond the 12 CPUs of the universe");
  REQUIRE_THROWS_WITH(AffinityMatrix::from_cpumaps(beyond, 3, 12), "cpumaps of 4 bytes cannot hold 3 rows of 2 bytes");
#if VCPUMAP_TEST_LIBVIRT
  const int maplen = VIR_CPU_MAPLEN(12);
  std::vector<unsigned char> theirs(2 * static_cast<std::size_t>(maplen), 0);
  VIR_USE_CPU(VIR_GET_CPUMAP(theirs.data(), maplen, 0), 0);
  VIR_USE_CPU(VIR_GET_CPUMAP(theirs.data(), maplen, 0), 9);
  VIR_USE_CPU(VIR_GET_CPUMAP(theirs.data(), maplen, 1), 3);
  VIR_USE_CPU(VIR_GET_CPUMAP(theirs.data(), maplen, 1), 11);
  CHECK(std::equal(maps.begin(), maps.end(), theirs.begin(), theirs.end()));
  for (int c = 0; c < 12; ++c) CHECK(static_cast<bool>(VIR_CPU_USABLE(maps.data(), maplen, 1, c)) == m.test(1, c));
#endif
}

TEST_CASE("fmt prints one row per vcpu, or a y- grid", "[matrix][format]") {
  AffinityMatrix m(2, 4);
  m.set_row(0, CpuMap(4, {0, 1, 2, 3})).set_row(1, CpuMap(4, {2}));
  CHECK(fmt::format("{}", m) == "0: 0-3\n1: 2\n");
  CHECK(fmt::format("{:y}", m) == "yyyy\n--y-\n");
  CHECK_THROWS_AS(fmt::format(fmt::runtime("{:q}"), m), fmt::format_error);
}

TEST_CASE("4096 vcpus on 16384 CPUs", "[matrix]") {
  AffinityMatrix m(4096, 16384);
  for (std::size_t v = 0; v < 4096; ++v) m.set(v, (v * 4) % 16384);
  CHECK(m.column(0).count() == 1);
  CHECK(m.row(4095) == CpuMap(16384, {16380}));
  CHECK(AffinityMatrix::from_cpumaps(m.to_cpumaps(), 4096, 16384) == m);
}

TEST_CASE("reshape: any shape, every bit clear, storage reused when large enough", "[matrix]") {
  AffinityMatrix m = AffinityMatrix::full(8, 130);  // 3 words a row
  const auto* storage = m.words().data();
  m.reshape(4, 64);
  CHECK((m.rows() == 4 && m.cols() == 64 && m.row_words() == 1));
  CHECK(m == AffinityMatrix(4, 64));
  CHECK(m.words().data() == storage);
  m.set(3, 63);
  m.reshape(2, 70);
  CHECK(m == AffinityMatrix(2, 70));
  m.reshape(0, 0);
  CHECK((m.rows() == 0 && m.cols() == 0 && m.words().empty()));
  CHECK(m == AffinityMatrix());
  CHECK_THROWS_WITH(m.set(0, 0), "vcpu 0 is beyond the matrix's 0 vcpus");
}

namespace {

/// The vcpumap::Error (code and message) that `make` throws; fails the test if it throws
/// nothing or anything else (std::length_error, std::bad_alloc).
template <class Make>
std::string error_of(Make make) {
  try {
    make();
  } catch (const vcpumap::Error& e) {
    CHECK(e.code() == vcpumap::ErrorCode::invalid_argument);
    return e.what();
  }
  FAIL("no vcpumap::Error");
  return {};
}

}  // namespace

TEST_CASE("shapes whose storage cannot be addressed throw a typed error", "[matrix][errors]") {
  // rows x row_words() wraps size_t: before the check, a tiny vector and writes past it.
  CHECK(error_of([] { AffinityMatrix m(SIZE_MAX, 4096); }) ==
        "affinity matrix of 18446744073709551615 x 4096 does not fit in memory");
  CHECK(error_of([] { AffinityMatrix m((std::size_t{1} << 58) + 1, 4096); }) ==  // 64 words a row: 2^64 + 64
        "affinity matrix of 288230376151711745 x 4096 does not fit in memory");
  // No wrap, but more words than a std::vector holds (not std::length_error).
  CHECK(error_of([] { AffinityMatrix m(SIZE_MAX / 2, 128); }) ==
        "affinity matrix of 9223372036854775807 x 128 does not fit in memory");
  CHECK(error_of([] { (void)AffinityMatrix::full(SIZE_MAX, 65); }) ==
        "affinity matrix of 18446744073709551615 x 65 does not fit in memory");
  // A huge column count: its word count is fine for one row, not for 2^7.
  CHECK_THAT(error_of([] { AffinityMatrix m(128, SIZE_MAX); }), Catch::EndsWith("does not fit in memory"));

  // reshape refuses and leaves the matrix as it was.
  AffinityMatrix m(3, 70);
  m.set(1, 69);
  const AffinityMatrix before = m;
  CHECK(error_of([&] { m.reshape(SIZE_MAX, 4096); }) ==
        "affinity matrix of 18446744073709551615 x 4096 does not fit in memory");
  CHECK(error_of([&] { m.reshape((std::size_t{1} << 62) + 1, 256); }) ==
        "affinity matrix of 4611686018427387905 x 256 does not fit in memory");
  CHECK(error_of([&] { m.reshape(SIZE_MAX / 2, 128); }) ==
        "affinity matrix of 9223372036854775807 x 128 does not fit in memory");
  CHECK(m == before);
  CHECK(m.test(1, 69));

  // from_cpumaps: rows x maplen wraps to 32 bytes, which the span holds; before the
  // check it read and wrote far past both.
  const std::vector<std::uint8_t> maps(32, 0x01);
  const std::size_t rows = (std::size_t{1} << 59) + 1;  // x 32 bytes = 2^64 + 32
  CHECK(error_of([&] { (void)AffinityMatrix::from_cpumaps(maps, rows, 256); }) ==
        "cpumaps array of 576460752303423489 rows of 32 bytes does not fit in memory");
  CHECK(error_of([&] { (void)AffinityMatrix::from_cpumaps(maps, 2, 16, SIZE_MAX / 2 + 17); }) ==
        "cpumaps array of 2 rows of 9223372036854775824 bytes does not fit in memory");
  // 0 bytes a row of 0 columns: no words, and no loop over 2^64 rows.
  CHECK(AffinityMatrix::from_cpumaps({}, SIZE_MAX, 0).rows() == SIZE_MAX);
  // A huge column count: (cols + 7) / 8 must not wrap to a 0-byte maplen.
  CHECK_THAT(error_of([&] { (void)AffinityMatrix::from_cpumaps(maps, 2, SIZE_MAX); }),
             Catch::Contains("cannot hold 2 rows of 2305843009213693952 bytes"));

  // to_cpumaps: rows x a caller's maplen wraps.
  CHECK(error_of([&] { (void)before.to_cpumaps(SIZE_MAX / 2); }) ==
        "cpumaps array of 3 rows of 9223372036854775807 bytes does not fit in memory");
  CHECK(error_of([&] { (void)before.to_cpumaps(SIZE_MAX / 3 + 1); }) ==
        "cpumaps array of 3 rows of 6148914691236517206 bytes does not fit in memory");
}

TEST_CASE("0 columns (a host without CPUs) and 0 rows", "[matrix]") {
  // Every row is the empty map of 0 CPUs; nothing hands memcpy a null pointer (UBSan).
  AffinityMatrix m(3, 0);
  CHECK((m.rows() == 3 && m.cols() == 0 && m.row_words() == 0 && m.words().empty()));
  CHECK(m.row(2) == CpuMap());
  CHECK(m.row_span(1).empty());
  CHECK(m.row_empty(0));
  m.set_row(1, CpuMap());
  m.set_row(2, CpuMap(8));  // a wider map without members is fine
  CHECK(m.row(1) == CpuMap());
  REQUIRE_THROWS_WITH(m.set_row(0, CpuMap(8, {0})), "vcpu 0: CPU 0 is beyond the matrix's 0 CPUs");
  REQUIRE_THROWS_WITH(m.column(0), "CPU 0 is beyond the matrix's 0 CPUs");
  CHECK(m.to_cpumaps().empty());
  CHECK(m.to_cpumaps(2) == std::vector<std::uint8_t>(6, 0));
  CHECK(AffinityMatrix::from_cpumaps({}, 3, 0) == m);
  CHECK(AffinityMatrix::full(3, 0) == m);
  CHECK(fmt::format("{}", m) == "0: \n1: \n2: \n");
  m.restrict_to(CpuMap(4, {1}));
  CHECK(m == AffinityMatrix(3, 0));
  CHECK((m & m) == m);
  // A huge number of rows of 0 columns holds no words, and full() does not loop over them.
  const AffinityMatrix tall = AffinityMatrix::full(SIZE_MAX, 0);
  CHECK((tall.rows() == SIZE_MAX && tall.words().empty()));
  CHECK(tall.row(SIZE_MAX - 1) == CpuMap());
  CHECK(tall.to_cpumaps().empty());
  AffinityMatrix narrowed = tall;
  narrowed.restrict_to(CpuMap(4, {1}));
  CHECK(narrowed == tall);

  // 0 rows: every column is the empty set of 0 vcpus.
  AffinityMatrix none(0, 70);
  CHECK(none.column(69) == VcpuSet());
  CHECK(none.to_cpumaps().empty());
  CHECK(AffinityMatrix::from_cpumaps({}, 0, 70) == none);
  AffinityMatrix empty;
  CHECK(empty.to_cpumaps(4).empty());
  empty.reshape(2, 0);
  CHECK(empty.row(1) == CpuMap());
  empty.set_row(0, CpuMap());
}

TEST_CASE("full() sets every CPU of every row and nothing beyond", "[matrix]") {
  for (const std::size_t cols : std::vector<std::size_t>{1, 63, 64, 65, 127, 128, 130, 200}) {
    const AffinityMatrix m = AffinityMatrix::full(5, cols);
    for (std::size_t v = 0; v < 5; ++v) REQUIRE(m.row(v) == CpuMap::full(cols));
    REQUIRE(m.column(cols - 1) == VcpuSet::full(5));
    for (std::size_t v = 0; v < 5; ++v)
      REQUIRE(m.row_span(v).back() == vcpumap::detail::last_block_mask(cols));
  }
}
