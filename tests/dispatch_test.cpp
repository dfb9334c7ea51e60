// The loops that vcpumap dispatches at run time (detail/blocks.hpp: popcnt, AVX2) give what
// their portable versions give, and so does the word-at-a-time list writer against a plain
// bit-by-bit one. On a CPU without popcnt or AVX2 both sides run the portable code and the
// tests still hold; detail::isa_allowed() makes the portable side portable on any CPU.
#include <vcpumap/cpulist.hpp>
#include <vcpumap/model.hpp>

#include <cstddef>
#include <random>
#include <string>

#include <catch2/catch.hpp>

#include "random_maps.hpp"

using namespace vcpumap;

namespace {

/// Runs `fn` with the dispatched loops limited to the portable code, then restores them.
template <class Fn>
auto portable(Fn fn) {
  detail::Isa& allowed = detail::isa_allowed();
  const detail::Isa saved = allowed;
  allowed = detail::Isa{false, false};
  struct Restore {
    detail::Isa& a;
    detail::Isa s;
    ~Restore() { a = s; }
  } restore{allowed, saved};
  return fn();
}

/// The canonical list, one CPU at a time.
std::string naive_list(const CpuMap& m) {
  std::string out;
  for (std::size_t c = 0; c < m.universe();) {
    if (!m.test(c)) {
      ++c;
      continue;
    }
    std::size_t e = c;
    while (e + 1 < m.universe() && m.test(e + 1)) ++e;
    if (!out.empty()) out += ',';
    out += std::to_string(c);
    if (e > c) out += '-' + std::to_string(e);
    c = e + 1;
  }
  return out;
}

AffinityMatrix random_matrix(std::mt19937_64& rng, std::size_t rows, std::size_t cols) {
  AffinityMatrix m(rows, cols);
  for (std::size_t v = 0; v < rows; ++v) m.set_row(v, test::random_set(rng, cols));
  return m;
}

/// Xen's rule a row at a time with set operations: allowed = hard ∩ limit ∩ online, then
/// allowed ∩ soft unless that is empty.
AffinityMatrix reference_effective(const AffinityMatrix& hard, const AffinityMatrix& soft, const AffinityMatrix* limit,
                                   const CpuMap& online) {
  AffinityMatrix out(hard.rows(), hard.cols());
  CpuMap on = online;
  on.resize(hard.cols());
  for (std::size_t v = 0; v < hard.rows(); ++v) {
    CpuMap allowed = hard.row(v) & on;
    if (limit) allowed &= limit->row(v);
    const CpuMap preferred = allowed & soft.row(v);
    out.set_row(v, preferred.any() ? preferred : allowed);
  }
  return out;
}

}  // namespace

TEST_CASE("count: the dispatched popcount agrees with the portable one", "[dispatch]") {
  std::mt19937_64 rng(14);
  for (int i = 0; i < 2000; ++i) {
    const CpuMap m = test::random_set(rng, test::random_universe(rng));
    const std::size_t dispatched = m.count();
    const std::size_t plain = portable([&] { return m.count(); });
    std::size_t bits = 0;
    for (std::size_t c = 0; c < m.universe(); ++c) bits += m.test(c);
    REQUIRE(dispatched == bits);
    REQUIRE(plain == bits);
  }
  // Odd widths of every remainder past the 4-word unrolled loop.
  for (std::size_t universe = 1; universe <= 64 * 9; universe += 7) {
    const CpuMap full = CpuMap::full(universe);
    REQUIRE(full.count() == universe);
    REQUIRE(portable([&] { return full.count(); }) == universe);
    REQUIRE(full.all());
  }
}

TEST_CASE("effective_affinity: the AVX2 rows agree with the portable ones and the rule", "[dispatch]") {
  std::mt19937_64 rng(1414);
  const std::size_t widths[] = {1, 63, 64, 65, 128, 200, 255, 256, 257, 300, 511, 512, 513, 700, 1000, 4096};
  for (std::size_t cols : widths) {
    for (int round = 0; round < 6; ++round) {
      const std::size_t rows = 1 + rng() % 12;
      const AffinityMatrix hard = random_matrix(rng, rows, cols), soft = random_matrix(rng, rows, cols),
                           limit = random_matrix(rng, rows, cols);
      // Online maps narrower than, as wide as and wider than the matrices' columns.
      const std::size_t online_universe = round % 3 == 0 ? cols : round % 3 == 1 ? (cols * 2) / 3 : cols + 70;
      const CpuMap online = test::random_set(rng, online_universe);
      INFO("cols " << cols << ", rows " << rows << ", online universe " << online_universe);

      AffinityMatrix fast, plain;
      effective_affinity(hard, soft, online, fast);
      portable([&] {
        effective_affinity(hard, soft, online, plain);
        return 0;
      });
      REQUIRE(fast == reference_effective(hard, soft, nullptr, online));
      REQUIRE(plain == fast);

      AffinityMatrix fast_l, plain_l;
      effective_affinity(hard, soft, limit, online, fast_l);
      portable([&] {
        effective_affinity(hard, soft, limit, online, plain_l);
        return 0;
      });
      REQUIRE(fast_l == reference_effective(hard, soft, &limit, online));
      REQUIRE(plain_l == fast_l);
    }
  }
}

TEST_CASE("effective_affinity: rows whose soft map leaves nothing fall back to hard", "[dispatch]") {
  // Wide rows (the AVX2 path where the CPU has it): soft disjoint from hard in every row.
  AffinityMatrix hard(3, 1000), soft(3, 1000);
  hard.set_row(0, CpuMap(1000, {5, 500, 999}));
  soft.set_row(0, CpuMap(1000, {6}));
  hard.set_row(1, CpuMap(1000, {700}));
  soft.set_row(1, CpuMap(1000, {700, 1}));
  const CpuMap online = CpuMap::full(1000);
  const AffinityMatrix e = effective_affinity(hard, soft, online);
  CHECK(e.row(0) == hard.row(0));
  CHECK(e.row(1) == CpuMap(1000, {700}));
  CHECK(e.row(2) == CpuMap(1000));
}

TEST_CASE("to_string: the word-at-a-time writer agrees with a bit-by-bit one", "[dispatch]") {
  std::mt19937_64 rng(4094);
  for (int i = 0; i < 3000; ++i) {
    const CpuMap m = test::random_set(rng, test::random_universe(rng));
    const std::string text = m.to_string();
    REQUIRE(text == naive_list(m));
    REQUIRE(text.size() <= detail::list_length_bound(m.words(), detail::decimal_digits(m.universe())));
    REQUIRE(CpuMap::parse(text, {.dialect = Dialect::strict, .universe = m.universe()}) == m);
  }
  CHECK(CpuMap::full(64).to_string() == "0-63");
  CHECK(CpuMap::full(128).to_string() == "0-127");
  CHECK(CpuMap(130, {63, 64, 127, 128, 129}).to_string() == "63-64,127-129");
  CHECK(CpuMap(200, {0, 2, 199}).to_string() == "0,2,199");
  CHECK(CpuMap(10).to_string() == "");
  // Past the writer's stack buffer: every other CPU of 100,000 (about 290 KB of text).
  CpuMap wide(100000);
  for (std::size_t c = 0; c < 100000; c += 2) wide.set(c);
  const std::string text = wide.to_string();
  CHECK(text == naive_list(wide));
  CHECK(text.capacity() - text.size() <= text.size() / 8);
  CHECK(CpuMap().to_string() == "");
}
