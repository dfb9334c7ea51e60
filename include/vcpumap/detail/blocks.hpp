// vcpumap/detail/blocks.hpp — word-level access to a boost::dynamic_bitset's storage.
//
// dynamic_bitset keeps its bits in a std::vector of blocks but only exposes them by copy
// (to_block_range) or through bit-at-a-time calls; Boost 1.74's find_next is a shift loop.
// vcpumap iterates, counts, parses and prints a word at a time, so it needs the blocks
// themselves. dynamic_bitset befriends every specialisation of to_block_range and
// from_block_range; the two explicit specialisations below, for tag types private to
// vcpumap, hand out a pointer to the block vector and do nothing else. This is the only
// place in the library that reaches inside dynamic_bitset.
//
// Invariant kept by every writer (it is dynamic_bitset's own): bits at positions >= size()
// in the last block are zero.
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include <boost/dynamic_bitset.hpp>

namespace vcpumap::detail {

using Block = std::uint64_t;
using Bits = boost::dynamic_bitset<Block>;
inline constexpr std::size_t block_bits = 64;

struct BlockPeek { const std::vector<Block>** out; };
struct BlockPoke { std::vector<Block>** out; };

}  // namespace vcpumap::detail

namespace boost {

template <>
inline void to_block_range<vcpumap::detail::Block, std::allocator<vcpumap::detail::Block>,
                           vcpumap::detail::BlockPeek>(const vcpumap::detail::Bits& bits,
                                                       vcpumap::detail::BlockPeek peek) {
  *peek.out = &bits.m_bits;
}

template <>
inline void from_block_range<vcpumap::detail::BlockPoke, vcpumap::detail::Block,
                             std::allocator<vcpumap::detail::Block>>(
    vcpumap::detail::BlockPoke first, vcpumap::detail::BlockPoke, vcpumap::detail::Bits& bits) {
  *first.out = &bits.m_bits;
}

}  // namespace boost

namespace vcpumap::detail {

inline std::span<const Block> blocks(const Bits& bits) noexcept {
  const std::vector<Block>* storage = nullptr;
  boost::to_block_range(bits, BlockPeek{&storage});
  return {storage->data(), storage->size()};
}

inline std::span<Block> blocks(Bits& bits) noexcept {
  std::vector<Block>* storage = nullptr;
  boost::from_block_range(BlockPoke{&storage}, BlockPoke{&storage}, bits);
  return {storage->data(), storage->size()};
}

constexpr std::size_t blocks_for(std::size_t nbits) noexcept {
  return nbits / block_bits + (nbits % block_bits != 0);
}

/// The mask of the valid bits of the last block of an nbits-long set (all ones when the
/// size is a multiple of 64).
constexpr Block last_block_mask(std::size_t nbits) noexcept {
  const std::size_t tail = nbits % block_bits;
  return tail == 0 ? ~Block{0} : (Block{1} << tail) - 1;
}

/// Sets bits [first, last] (inclusive) of a block span; the caller guarantees last < size.
inline void set_range(std::span<Block> words, std::size_t first, std::size_t last) noexcept {
  std::size_t first_word = first / block_bits, last_word = last / block_bits;
  const Block head = ~Block{0} << (first % block_bits);
  const Block tail = ~Block{0} >> (block_bits - 1 - last % block_bits);
  if (first_word == last_word) {
    words[first_word] |= head & tail;
    return;
  }
  words[first_word] |= head;
  for (std::size_t w = first_word + 1; w < last_word; ++w) words[w] = ~Block{0};
  words[last_word] |= tail;
}

/// Clears bits [first, last] (inclusive); the caller guarantees last < size.
inline void clear_range(std::span<Block> words, std::size_t first, std::size_t last) noexcept {
  std::size_t first_word = first / block_bits, last_word = last / block_bits;
  const Block head = ~Block{0} << (first % block_bits);
  const Block tail = ~Block{0} >> (block_bits - 1 - last % block_bits);
  if (first_word == last_word) {
    words[first_word] &= ~(head & tail);
    return;
  }
  words[first_word] &= ~head;
  for (std::size_t w = first_word + 1; w < last_word; ++w) words[w] = 0;
  words[last_word] &= ~tail;
}

/// Population count that compiles to a table-free bit trick (or popcnt when the target has
/// it); std::popcount at plain -O2 on x86-64 calls libgcc's __popcountdi2.
constexpr unsigned popcount(Block x) noexcept {
#if defined(__POPCNT__)
  return static_cast<unsigned>(std::popcount(x));
#else
  x = x - ((x >> 1) & 0x5555555555555555ULL);
  x = (x & 0x3333333333333333ULL) + ((x >> 2) & 0x3333333333333333ULL);
  x = (x + (x >> 4)) & 0x0f0f0f0f0f0f0f0fULL;
  return static_cast<unsigned>((x * 0x0101010101010101ULL) >> 56);
#endif
}

// ---- run-time dispatch on x86-64 ----
//
// The default build (debugoptimized, baseline x86-64: SSE2 and nothing newer) cannot assume
// popcnt or AVX2, and -O2 does not vectorise the portable popcount. The hot loops below
// therefore come twice: a portable version, and one compiled for the instructions a CPU
// may have (__attribute__((target(...)))), chosen per call by a CPU feature test that is
// made once per process (__builtin_cpu_supports, cached in a function-local static). A
// build whose target has them already (-march=native, -mpopcnt) skips the test. Other
// architectures, and compilers without the GNU attributes, use the portable code only.

#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
#define VCPUMAP_X86_DISPATCH 1
#else
#define VCPUMAP_X86_DISPATCH 0
#endif

/// Instruction sets a dispatched loop may use.
struct Isa {
  bool popcnt = false;
  bool avx2 = false;
};

/// What this CPU has, tested once (__builtin_cpu_init first: the test may run before
/// the constructors that would otherwise initialise it).
inline Isa cpu_isa() noexcept {
#if VCPUMAP_X86_DISPATCH
  static const Isa isa = [] {
    __builtin_cpu_init();
    return Isa{__builtin_cpu_supports("popcnt") != 0, __builtin_cpu_supports("avx2") != 0};
  }();
  return isa;
#else
  return Isa{};
#endif
}

/// For tests only: the instruction sets the dispatched loops may use at most (all by
/// default). A test clears some to check the portable paths on a CPU that has more, then
/// restores them; not synchronised with loops running in other threads.
inline Isa& isa_allowed() noexcept {
  static Isa allowed{true, true};
  return allowed;
}
inline Isa usable_isa() noexcept {
  const Isa have = cpu_isa(), allowed = isa_allowed();
  return Isa{have.popcnt && allowed.popcnt, have.avx2 && allowed.avx2};
}

/// The members of n words, portable: the bit trick (or popcnt when the build targets it).
inline std::size_t count_words_portable(const Block* w, std::size_t n) noexcept {
  std::size_t total = 0;
  for (std::size_t i = 0; i < n; ++i) total += popcount(w[i]);
  return total;
}

#if VCPUMAP_X86_DISPATCH && !defined(__POPCNT__)
/// The same with the popcnt instruction, four independent sums (popcnt has a latency of 3
/// cycles and a throughput of one a cycle).
__attribute__((target("popcnt"))) inline std::size_t count_words_popcnt(const Block* w, std::size_t n) noexcept {
  std::size_t a = 0, b = 0, c = 0, d = 0, i = 0;
  for (; i + 4 <= n; i += 4) {
    a += static_cast<std::size_t>(__builtin_popcountll(w[i]));
    b += static_cast<std::size_t>(__builtin_popcountll(w[i + 1]));
    c += static_cast<std::size_t>(__builtin_popcountll(w[i + 2]));
    d += static_cast<std::size_t>(__builtin_popcountll(w[i + 3]));
  }
  for (; i < n; ++i) a += static_cast<std::size_t>(__builtin_popcountll(w[i]));
  return a + b + c + d;
}
#endif

/// The members of n words: popcnt when the CPU has it (tested once), else the portable loop.
inline std::size_t count_words(const Block* w, std::size_t n) noexcept {
#if VCPUMAP_X86_DISPATCH && !defined(__POPCNT__)
  if (n >= 2 && usable_isa().popcnt) return count_words_popcnt(w, n);
#endif
  return count_words_portable(w, n);
}

}  // namespace vcpumap::detail
