// Seeded generators of CpuMaps with the shapes that break bit code: empty, full, sparse,
// dense, long runs, runs across word boundaries, sizes just around multiples of 64.
#pragma once

#include <cstddef>
#include <random>

#include <vcpumap/cpu_map.hpp>

namespace vcpumap::test {

inline std::size_t random_universe(std::mt19937_64& rng) {
  static constexpr std::size_t edges[] = {0, 1, 2, 7, 8, 9, 31, 32, 33, 63, 64, 65, 127, 128, 129, 4096, 16384};
  switch (rng() % 3) {
    case 0: return edges[rng() % std::size(edges)];
    case 1: return rng() % 300;
    default: return rng() % 5000;
  }
}

template <class Set = CpuMap>
Set random_set(std::mt19937_64& rng, std::size_t universe) {
  Set s(universe);
  if (universe == 0) return s;
  switch (rng() % 5) {
    case 0: break;                              // empty
    case 1: s = Set::full(universe); break;     // full
    case 2:                                     // sparse
      for (std::size_t i = rng() % 8; i > 0; --i) s.set(rng() % universe);
      break;
    case 3:                                     // dense, random bits
      for (std::size_t c = 0; c < universe; ++c)
        if (rng() % 2) s.set(c);
      break;
    default:                                    // a few runs
      for (std::size_t i = 1 + rng() % 6; i > 0; --i) {
        const std::size_t a = rng() % universe, b = a + rng() % (universe - a);
        s.set(a, b);
      }
  }
  return s;
}

}  // namespace vcpumap::test
