#include <vcpumap/cpu_map.hpp>

#include <algorithm>
#include <iterator>
#include <numeric>
#include <random>
#include <ranges>
#include <set>
#include <type_traits>
#include <unordered_set>
#include <vector>

#include <catch2/catch.hpp>

#include "random_maps.hpp"

#if VCPUMAP_TEST_LIBVIRT
#include <libvirt/libvirt.h>
#endif

using vcpumap::CpuMap;
using vcpumap::VcpuSet;

// The two set types are distinct: nothing mixes them.
static_assert(!std::is_same_v<CpuMap, VcpuSet>);
static_assert(!std::is_convertible_v<CpuMap, VcpuSet> && !std::is_convertible_v<VcpuSet, CpuMap>);
template <class A, class B>
concept mixable = requires(A a, B b) { a & b; } || requires(A a, B b) { a | b; } ||
                  requires(A a, B b) { a ^ b; } || requires(A a, B b) { a - b; } ||
                  requires(A a, B b) { a == b; } || requires(A a, B b) { a = b; } ||
                  requires(A a, B b) { a.is_subset_of(b); };
static_assert(mixable<CpuMap, CpuMap> && mixable<VcpuSet, VcpuSet>);  // the probe itself works
static_assert(!mixable<CpuMap, VcpuSet> && !mixable<VcpuSet, CpuMap>);
static_assert(std::ranges::forward_range<CpuMap>);
static_assert(std::regular<CpuMap>);
// No size(): it read as the member count, as for every standard container, but was the
// universe. universe() and count() name the two; <ranges> counts members by iterating.
template <class S>
concept has_size_member = requires(const S& s) { s.size(); };
static_assert(!has_size_member<CpuMap> && !has_size_member<VcpuSet>);
static_assert(!std::ranges::sized_range<CpuMap> && !std::ranges::sized_range<VcpuSet>);

namespace {

std::vector<std::size_t> members(const CpuMap& m) { return {m.begin(), m.end()}; }

std::vector<std::size_t> reference_members(const CpuMap& m) {
  std::vector<std::size_t> out;
  for (std::size_t c = 0; c < m.universe(); ++c)
    if (m.bits().test(c)) out.push_back(c);
  return out;
}

}  // namespace

TEST_CASE("construction and the universe", "[cpu_map]") {
  CpuMap empty;
  CHECK(empty.universe() == 0);
  CHECK(empty.empty());
  CHECK(empty.count() == 0);
  CHECK(!empty.first());
  CHECK(!empty.last());
  CHECK(empty.begin() == empty.end());

  CpuMap m(10, {1, 3, 9});
  CHECK(m.universe() == 10);
  CHECK(m.count() == 3);
  CHECK(members(m) == std::vector<std::size_t>{1, 3, 9});
  CHECK(*m.first() == 1);
  CHECK(*m.last() == 9);
  CHECK(m.test(3));
  CHECK(!m.test(4));
  CHECK(!m.test(1000));  // beyond the universe: simply absent

  CHECK(CpuMap::full(70).count() == 70);
  CHECK(CpuMap::full(70).all());
  CHECK(CpuMap::full(0).empty());

  m.resize(5);
  CHECK(members(m) == std::vector<std::size_t>{1, 3});
  m.resize(200);
  CHECK(members(m) == std::vector<std::size_t>{1, 3});
  CHECK(m.universe() == 200);
}

TEST_CASE("universe() is the CPUs a set can hold, count() and iteration its members", "[cpu_map]") {
  const CpuMap m(8, {1, 5});
  CHECK(m.universe() == 8);
  CHECK(m.count() == 2);
  CHECK(members(m) == std::vector<std::size_t>{1, 5});
  CHECK(std::ranges::distance(m) == 2);
  CHECK(std::ranges::distance(m.begin(), m.end()) == 2);
  CHECK(std::distance(m.begin(), m.end()) == 2);

  const VcpuSet v(8, {1, 5});
  CHECK(v.universe() == 8);
  CHECK(v.count() == 2);
  CHECK(std::ranges::distance(v) == 2);

  // The two only meet for a full set; an empty one still has its universe.
  CHECK(CpuMap::full(8).universe() == 8);
  CHECK(std::ranges::distance(CpuMap::full(8)) == 8);
  const CpuMap none(8);
  CHECK(none.universe() == 8);
  CHECK(none.count() == 0);
  CHECK(std::ranges::distance(none) == 0);
}

TEST_CASE("set and reset outside the universe throw and change nothing", "[cpu_map]") {
  CpuMap m(8, {1});
  REQUIRE_THROWS_MATCHES(m.set(8), vcpumap::Error,
                         Catch::Matchers::Message("CPU 8 is beyond the set's 8 CPUs"));
  REQUIRE_THROWS_AS(m.reset(100), vcpumap::Error);
  REQUIRE_THROWS_WITH(m.set(2, 9), "CPU 9 is beyond the set's 8 CPUs");
  REQUIRE_THROWS_WITH(m.set(5, 3), "reversed range 5-3");
  CHECK(m == CpuMap(8, {1}));
  REQUIRE_THROWS_WITH(CpuMap(4, {4}), "CPU 4 is beyond the set's 4 CPUs");
  VcpuSet v(2);
  REQUIRE_THROWS_WITH(v.set(2), "vcpu 2 is beyond the set's 2 vcpus");
  try {
    m.set(8);
  } catch (const vcpumap::Error& e) {
    CHECK(e.code() == vcpumap::ErrorCode::invalid_argument);
  }
}

TEST_CASE("ranges set and clear whole words and partial words", "[cpu_map]") {
  for (std::size_t a : {0, 1, 62, 63, 64, 65, 127, 128, 200}) {
    for (std::size_t b : {a, a + 1, a + 63, a + 64, a + 130}) {
      CpuMap m(400);
      m.set(a, b);
      CHECK(m.count() == b - a + 1);
      CHECK(*m.first() == a);
      CHECK(*m.last() == b);
      CpuMap full = CpuMap::full(400);
      full.reset(a, b);
      CHECK(full.count() == 400 - (b - a + 1));
      CHECK(!full.intersects(m));
      CHECK((full | m).all());
    }
  }
}

TEST_CASE("set algebra on equal and different universes", "[cpu_map]") {
  const CpuMap a(8, {0, 1, 2, 3});
  const CpuMap b(8, {2, 3, 4, 5});
  CHECK((a & b) == CpuMap(8, {2, 3}));
  CHECK((a | b) == CpuMap(8, {0, 1, 2, 3, 4, 5}));
  CHECK((a ^ b) == CpuMap(8, {0, 1, 4, 5}));
  CHECK((a - b) == CpuMap(8, {0, 1}));
  CHECK(~a == CpuMap(8, {4, 5, 6, 7}));
  CHECK(~CpuMap(70) == CpuMap::full(70));
  CHECK((~CpuMap::full(130)).empty());

  // Different universes: the result has the larger one; the smaller's missing CPUs are absent.
  const CpuMap wide(130, {0, 100, 129});
  CHECK((a & wide) == CpuMap(130, {0}));
  CHECK((a | wide) == CpuMap(130, {0, 1, 2, 3, 100, 129}));
  CHECK((wide - a) == CpuMap(130, {100, 129}));
  CHECK((a - wide).universe() == 130);
  CHECK((a ^ wide) == CpuMap(130, {1, 2, 3, 100, 129}));

  // Equality counts the universe; same_members does not.
  CHECK(CpuMap(4, {1}) != CpuMap(8, {1}));
  CHECK(same_members(CpuMap(4, {1}), CpuMap(200, {1})));
  CHECK(!same_members(CpuMap(4, {1}), CpuMap(200, {1, 150})));

  CHECK(CpuMap(8, {1, 2}).is_subset_of(a));
  CHECK(!a.is_subset_of(CpuMap(8, {1, 2})));
  CHECK(CpuMap(200, {1}).is_subset_of(a));
  CHECK(!CpuMap(200, {150}).is_subset_of(a));
  CHECK(CpuMap().is_subset_of(CpuMap()));
  CHECK(a.intersects(b));
  CHECK(!a.intersects(CpuMap(8, {7})));
}

TEST_CASE("value semantics: copies are independent, moves leave a valid set", "[cpu_map]") {
  CpuMap a(64, {1});
  CpuMap b = a;
  b.set(2);
  CHECK(a == CpuMap(64, {1}));
  CpuMap c = std::move(b);
  CHECK(c == CpuMap(64, {1, 2}));
  b = a;  // a moved-from set can be assigned
  CHECK(b == a);
  std::unordered_set<CpuMap> seen{a, c, a};
  CHECK(seen.size() == 2);
}

TEST_CASE("iteration agrees with bit tests on random sets", "[cpu_map][property]") {
  std::mt19937_64 rng(42);
  for (int i = 0; i < 3000; ++i) {
    const CpuMap m = vcpumap::test::random_set(rng, vcpumap::test::random_universe(rng));
    const auto ref = reference_members(m);
    REQUIRE(members(m) == ref);
    REQUIRE(m.count() == ref.size());
    REQUIRE(m.count() == m.bits().count());
    REQUIRE(m.empty() == ref.empty());
    if (!ref.empty()) {
      REQUIRE(*m.first() == ref.front());
      REQUIRE(*m.last() == ref.back());
      const std::size_t probe = ref[ref.size() / 2];
      REQUIRE(*m.next(probe) == probe);
      auto after = std::upper_bound(ref.begin(), ref.end(), probe);
      REQUIRE(m.next(probe + 1) == (after == ref.end() ? std::nullopt : std::optional(*after)));
    }
    const CpuMap other = vcpumap::test::random_set(rng, m.universe());
    REQUIRE((m & other).bits() == (m.bits() & other.bits()));
    REQUIRE((m | other).bits() == (m.bits() | other.bits()));
    REQUIRE((m ^ other).bits() == (m.bits() ^ other.bits()));
    REQUIRE((m - other).bits() == (m.bits() - other.bits()));
    REQUIRE((~m).bits() == ~m.bits());
  }
}

TEST_CASE("works with <ranges> and the standard algorithms", "[cpu_map]") {
  const CpuMap m(100, {2, 3, 50, 99});
  CHECK(std::accumulate(m.begin(), m.end(), std::size_t{0}) == 154);
  CHECK(std::ranges::distance(m) == 4);
  CHECK(*std::ranges::find_if(m, [](std::size_t c) { return c > 10; }) == 50);
#if !defined(__clang__) || __clang_major__ >= 16  // clang 14 cannot compile libstdc++ 12's views
  std::vector<std::size_t> odd;
  for (std::size_t c : m | std::views::filter([](std::size_t c) { return c % 2 == 1; })) odd.push_back(c);
  CHECK(odd == std::vector<std::size_t>{3, 99});
#endif
}

TEST_CASE("no CPU-count ceiling: 16384 and 65536 CPUs", "[cpu_map]") {
  for (std::size_t n : {std::size_t{16384}, std::size_t{65536}}) {
    CpuMap m = CpuMap::full(n);
    CHECK(m.count() == n);
    m.reset(1, n - 2);
    CHECK(members(m) == std::vector<std::size_t>{0, n - 1});
    CpuMap alt(n);
    for (std::size_t c = 0; c < n; c += 2) alt.set(c);
    CHECK(alt.count() == n / 2);
    CHECK((~alt).count() == n / 2);
    CHECK(*(~alt).last() == n - 1);
    CHECK(CpuMap::from_bytes(alt.to_bytes(), n) == alt);
  }
}

TEST_CASE("bytes in the libvirt/xenctrl layout", "[cpu_map][bytes]") {
  const CpuMap m(20, {0, 3, 8, 19});
  const auto bytes = m.to_bytes();
  REQUIRE(bytes.size() == 3);
  CHECK(bytes[0] == 0x09);
  CHECK(bytes[1] == 0x01);
  CHECK(bytes[2] == 0x08);
  CHECK(CpuMap::from_bytes(bytes, 20) == m);

  // A shorter input means absent CPUs.
  const std::uint8_t one[] = {0x81};
  CHECK(CpuMap::from_bytes(one, 100) == CpuMap(100, {0, 7}));
  // A bit beyond the universe is an error naming the byte and the CPU.
  const std::uint8_t two[] = {0x00, 0x04};
  REQUIRE_THROWS_WITH(CpuMap::from_bytes(two, 10), "byte map: byte 2: sets CPU 10, beyond the 10 CPUs of the universe");
  CHECK(CpuMap::from_bytes(two, 11) == CpuMap(11, {10}));

  // write_bytes zero-fills and refuses a buffer too short for a member, writing nothing.
  std::vector<std::uint8_t> out(4, 0xee);
  m.write_bytes(out);
  CHECK(out == std::vector<std::uint8_t>{0x09, 0x01, 0x08, 0x00});
  std::vector<std::uint8_t> short_out(2, 0xee);
  REQUIRE_THROWS_WITH(m.write_bytes(short_out), "CPU 19 does not fit in a 2-byte map");
  CHECK(short_out == std::vector<std::uint8_t>{0xee, 0xee});

  std::mt19937_64 rng(7);
  for (int i = 0; i < 2000; ++i) {
    const CpuMap r = vcpumap::test::random_set(rng, vcpumap::test::random_universe(rng));
    REQUIRE(CpuMap::from_bytes(r.to_bytes(), r.universe()) == r);
  }
}

#if VCPUMAP_TEST_LIBVIRT
TEST_CASE("byte layout matches libvirt's public macros", "[cpu_map][bytes][libvirt]") {
  std::mt19937_64 rng(2006);
  for (int i = 0; i < 500; ++i) {
    const std::size_t n = 1 + rng() % 600;
    const CpuMap m = vcpumap::test::random_set(rng, n);
    const auto bytes = m.to_bytes();
    REQUIRE(bytes.size() == static_cast<std::size_t>(VIR_CPU_MAPLEN(static_cast<int>(n))));
    std::vector<unsigned char> theirs(VIR_CPU_MAPLEN(static_cast<int>(n)), 0);
    for (std::size_t c : m) VIR_USE_CPU(theirs.data(), c);
    REQUIRE(std::equal(bytes.begin(), bytes.end(), theirs.begin()));
    for (std::size_t c = 0; c < n; ++c)
      REQUIRE(static_cast<bool>(VIR_CPU_USABLE(theirs.data(), VIR_CPU_MAPLEN(static_cast<int>(n)), 0, c)) == m.test(c));
    // A matrix of rows of VIR_CPU_MAPLEN bytes: VIR_GET_CPUMAP finds row v.
    const int maplen = VIR_CPU_MAPLEN(static_cast<int>(n));
    std::vector<unsigned char> matrix(3 * static_cast<std::size_t>(maplen), 0);
    m.write_bytes({VIR_GET_CPUMAP(matrix.data(), maplen, 2), static_cast<std::size_t>(maplen)});
    for (std::size_t c = 0; c < n; ++c)
      REQUIRE(static_cast<bool>(VIR_CPU_USED(VIR_GET_CPUMAP(matrix.data(), maplen, 2), c)) == m.test(c));
  }
}
#endif

namespace {

/// The ParseError from_bytes throws for bytes in a universe (caught as ParseError).
template <class Set = CpuMap>
vcpumap::ParseError bytes_error(std::span<const std::uint8_t> bytes, std::size_t universe) {
  try {
    (void)Set::from_bytes(bytes, universe);
  } catch (const vcpumap::ParseError& e) {
    return e;
  }
  FAIL("no ParseError from from_bytes");
  throw;
}

}  // namespace

TEST_CASE("from_bytes: a bit beyond the universe is a ParseError naming its byte", "[cpu_map][bytes][errors]") {
  const std::uint8_t bytes[] = {0xff, 0x01, 0x80};  // CPUs 0-7, 8, 23
  const vcpumap::ParseError e = bytes_error(bytes, 16);
  CHECK(std::string(e.what()) == "byte map: byte 3: sets CPU 23, beyond the 16 CPUs of the universe");
  CHECK(e.column() == 3);
  CHECK(e.code() == vcpumap::ErrorCode::invalid_argument);
  CHECK(e.out_of_range());
  CHECK(e.reason() == "CPU number beyond the universe");
  CHECK(e.input() == "ff 01 80");
  // Still an Error to code that catches the base class.
  CHECK_THROWS_AS(CpuMap::from_bytes(bytes, 16), vcpumap::Error);
  CHECK_THROWS_AS(CpuMap::from_bytes(bytes, 16), vcpumap::ParseError);

  // The first byte holding such a bit, and its highest bit: the byte's members below the
  // universe do not make it fine.
  const std::uint8_t straddle[] = {0x00, 0x06, 0xff};  // CPUs 9, 10 and 16-23
  CHECK(std::string(bytes_error(straddle, 10).what()) ==
        "byte map: byte 2: sets CPU 10, beyond the 10 CPUs of the universe");
  CHECK(bytes_error(straddle, 10).column() == 2);
  CHECK(std::string(bytes_error(straddle, 0).what()) ==
        "byte map: byte 2: sets CPU 10, beyond the 0 CPUs of the universe");
  CHECK(CpuMap::from_bytes(straddle, 24) == CpuMap(24, {9, 10, 16, 17, 18, 19, 20, 21, 22, 23}));
  // Trailing zero bytes beyond the universe are fine.
  const std::uint8_t padded[] = {0x03, 0x00, 0x00, 0x00};
  CHECK(CpuMap::from_bytes(padded, 2) == CpuMap(2, {0, 1}));

  // The noun of the set's type.
  CHECK(std::string(bytes_error<VcpuSet>(bytes, 8).what()) ==
        "byte map: byte 2: sets vcpu 8, beyond the 8 vcpus of the universe");

  // A long map is quoted in hex, cut to 80 characters.
  std::vector<std::uint8_t> many(100, 0xa5);
  const vcpumap::ParseError cut = bytes_error(many, 8);
  CHECK(cut.column() == 2);
  CHECK(cut.input().size() <= 80);
  CHECK(cut.input().starts_with("a5 a5 a5"));
  CHECK(cut.input().ends_with(" ..."));
  std::vector<std::uint8_t> exact(27, 0x10);  // 27 bytes: exactly 80 characters, not cut
  const vcpumap::ParseError whole = bytes_error(exact, 4);
  CHECK(whole.input().size() == 80);
  CHECK(!whole.input().ends_with("..."));
}

TEST_CASE("vcpu numbers are unsigned everywhere, CPU ids size_t", "[cpu_map][types]") {
  static_assert(std::is_same_v<VcpuSet::value_type, unsigned>);
  static_assert(std::is_same_v<decltype(*VcpuSet().begin()), unsigned>);
  static_assert(std::is_same_v<decltype(VcpuSet().first()), std::optional<unsigned>>);
  static_assert(std::is_same_v<CpuMap::value_type, std::size_t>);
  const VcpuSet v(8, {1, 7});
  unsigned sum = 0;
  for (unsigned n : v) sum += n;  // no narrowing: the members are vcpu numbers
  CHECK(sum == 8);
  CHECK(v.last() == 7u);
  CHECK(v.next(2) == 7u);
}
