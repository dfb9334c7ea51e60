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

}  // namespace vcpumap::detail
