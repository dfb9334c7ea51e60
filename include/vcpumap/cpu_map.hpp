// vcpumap/cpu_map.hpp — sets of CPUs as plain values.
//
//   vcpumap::CpuMap pcpus = vcpumap::CpuMap::parse("0-3,8-11");
//   for (std::size_t cpu : pcpus & online) use(cpu);
//
// One class template, BasicCpuSet<Tag>, gives two distinct types: CpuMap, a set of physical
// CPUs, and VcpuSet, a set of one domain's virtual CPUs. They do not mix: `cpumap & vcpuset`
// does not compile.
//
// Every set has a universe, universe(): the CPUs numbered 0 .. universe()-1 that it can hold
// (for a host map, max CPU id + 1); count() is the number of members, the CPUs iteration
// yields. There is deliberately no size(): a standard container's size() counts what it
// holds, which here would be count(), not the universe. There is no ceiling on the universe.
// Members are stored in a boost::dynamic_bitset<std::uint64_t> and handled a 64-bit word at
// a time.
//
// Edge cases, stated once for the whole type:
// - Sets of different universes: `==` compares the universe too (like dynamic_bitset), so
//   {0} in 4 CPUs != {0} in 8 CPUs; use same_members() to ignore the universe. Binary
//   operators (& | ^ -) accept different universes and return a set of the larger one,
//   with the missing CPUs of the smaller operand counted as absent.
// - `~` complements within the universe.
// - test(n) of a CPU beyond the universe is false; set/reset beyond it throw
//   vcpumap::Error (invalid_argument) naming the CPU and the universe, changing nothing.
// - The empty set: count() 0, empty() true, first()/last() empty optionals, iteration
//   yields nothing, and its canonical text is the empty string.
#pragma once

#include <compare>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <initializer_list>
#include <iterator>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "detail/blocks.hpp"
#include "error.hpp"

namespace vcpumap {

/// Tag of physical CPUs (pcpus): what a host has and what affinity maps name. A CPU id is a
/// std::size_t.
struct PcpuTag {
  static constexpr std::string_view noun = "CPU";
  using number = std::size_t;
};
/// Tag of virtual CPUs: the vcpus of one domain. A vcpu number is an `unsigned`, as
/// everywhere in vcpumap (VcpuMetrics::vcpu, pin_vcpu, PinError::failed_vcpu): a VcpuSet's
/// members, first(), last() and next() are unsigned (its universe stays a size_t count and
/// must not pass 2^32, far beyond limits::max_vcpus).
struct VcpuTag {
  static constexpr std::string_view noun = "vcpu";
  using number = unsigned;
};

/// Tag of NUMA nodes: a domain's node affinity (where Xen places its memory). A node id is
/// an `unsigned`, as HostInfo::cpu_node's.
struct NodeTag {
  static constexpr std::string_view noun = "node";
  using number = unsigned;
};

/// The text forms a set can be written in and read from.
enum class TextForm {
  list,        // canonical cpulist: "0-3,5,8-11"; the empty set is ""
  xl_list,     // as list, but "all" for a full set and "none" for an empty one (xl's style)
  sysfs_mask,  // Linux sysfs mask: 32-bit hex words, most significant first: "ff,ffffffff"
  hex,         // taskset style: "0xff" (minimal digits, "0x0" for the empty set)
  yn,          // virsh style: one character per CPU, 'y' member, '-' not: "yy--y"
};

/// A 64-bit word of a set's (or a matrix row's) storage: bit n of word w is CPU 64*w + n.
using Word = detail::Block;
/// The storage of a set: Boost's dynamic_bitset of 64-bit words (bit n is CPU n).
using Bitset = detail::Bits;

struct ParseOptions;  // cpulist.hpp

namespace detail {

/// Bytes in hex, two digits each, space-separated ("ff 01 80"), for a ParseError's input();
/// at most max_chars characters (at least 5): a longer rendering ends with " ..." after the
/// bytes that fit. No bytes: the empty string.
inline std::string hex_bytes(std::span<const std::uint8_t> bytes, std::size_t max_chars) {
  constexpr char digits[] = "0123456789abcdef";
  // n bytes take 3n - 1 characters; cut, the bytes that fit before " ..." (4 characters).
  const bool cut = bytes.size() > (max_chars + 1) / 3;
  const std::size_t n = cut ? (max_chars - 4 + 1) / 3 : bytes.size();
  std::string out;
  out.reserve(3 * n + 4);
  for (std::size_t i = 0; i < n; ++i) {
    if (i != 0) out += ' ';
    out += digits[bytes[i] >> 4];
    out += digits[bytes[i] & 0xf];
  }
  if (cut) out += " ...";
  return out;
}

}  // namespace detail

template <class Tag>
class BasicCpuSet {
 public:
  using tag_type = Tag;
  using size_type = std::size_t;
  /// A member: a CPU id (std::size_t) for CpuMap, a vcpu number (unsigned) for VcpuSet.
  using value_type = typename Tag::number;

  class iterator;
  using const_iterator = iterator;

  /// The empty set of an empty universe.
  BasicCpuSet() = default;
  /// The empty set of `universe` CPUs.
  explicit BasicCpuSet(size_type universe) : bits_(universe) {}
  /// The set of `members` in `universe` CPUs; throws Error if a member is beyond it.
  BasicCpuSet(size_type universe, std::initializer_list<size_type> members) : bits_(universe) {
    for (size_type m : members) set(m);
  }
  /// Every CPU of `universe`.
  static BasicCpuSet full(size_type universe) {
    BasicCpuSet s(universe);
    s.bits_.set();
    return s;
  }
  /// Adopts a dynamic_bitset: bit n is CPU n, its size the universe.
  static BasicCpuSet from_bits(Bitset bits) { return BasicCpuSet(AdoptBits{}, std::move(bits)); }

  // ---- text (defined in cpulist.hpp; see there for the grammar and its errors) ----

  /// Reads a cpulist with the default options; throws ParseError.
  static BasicCpuSet parse(std::string_view text);
  /// Reads text in the form and dialect `options` select; throws ParseError.
  static BasicCpuSet parse(std::string_view text, const ParseOptions& options);
  /// As parse, but returns an empty optional (and fills *failure when given) instead of
  /// throwing on malformed input.
  static std::optional<BasicCpuSet> try_parse(std::string_view text, const ParseOptions& options,
                                              ParseFailure* failure = nullptr);
  static std::optional<BasicCpuSet> try_parse(std::string_view text,
                                              ParseFailure* failure = nullptr);
  /// Writes the set in `form` (canonical list by default).
  std::string to_string(TextForm form = TextForm::list) const;

  // ---- the universe ----

  /// How many CPUs the set can hold: CPUs 0 .. universe()-1. Not the members: see count().
  size_type universe() const noexcept { return bits_.size(); }
  /// Grows the universe (new CPUs absent) or shrinks it (members beyond it dropped).
  void resize(size_type universe) { bits_.resize(universe); }

  // ---- members ----

  /// True when `cpu` is a member (false beyond the universe).
  bool test(size_type cpu) const noexcept { return cpu < universe() && bits_.test(cpu); }

  BasicCpuSet& set(size_type cpu) {
    check(cpu);
    bits_.set(cpu);
    return *this;
  }
  /// Adds CPUs first..last (inclusive); throws if first > last or last is beyond the universe.
  BasicCpuSet& set(size_type first, size_type last) {
    check_range(first, last);
    detail::set_range(detail::blocks(bits_), first, last);
    return *this;
  }
  BasicCpuSet& reset(size_type cpu) {
    check(cpu);
    bits_.reset(cpu);
    return *this;
  }
  BasicCpuSet& reset(size_type first, size_type last) {
    check_range(first, last);
    detail::clear_range(detail::blocks(bits_), first, last);
    return *this;
  }
  /// Removes every member; the universe stays.
  BasicCpuSet& clear() noexcept {
    for (auto& w : detail::blocks(bits_)) w = 0;
    return *this;
  }

  /// The number of members (what iteration yields), at most universe().
  size_type count() const noexcept {
    const auto w = words();
    return detail::count_words(w.data(), w.size());  // popcnt when the CPU has it
  }
  bool empty() const noexcept {
    for (detail::Block w : words())
      if (w != 0) return false;
    return true;
  }
  bool any() const noexcept { return !empty(); }
  bool all() const noexcept { return count() == universe(); }

  /// The lowest member, or nothing for the empty set.
  std::optional<value_type> first() const noexcept {
    auto it = begin();
    if (it == end()) return std::nullopt;
    return *it;
  }
  /// The highest member, or nothing for the empty set.
  std::optional<value_type> last() const noexcept {
    auto w = words();
    for (size_type i = w.size(); i-- > 0;)
      if (w[i] != 0)
        return static_cast<value_type>(i * detail::block_bits +
                                       (detail::block_bits - 1 - static_cast<size_type>(std::countl_zero(w[i]))));
    return std::nullopt;
  }
  /// The lowest member >= cpu, or nothing.
  std::optional<value_type> next(size_type cpu) const noexcept {
    auto it = iterator::from(words(), cpu);
    if (it == end()) return std::nullopt;
    return *it;
  }

  bool is_subset_of(const BasicCpuSet& other) const noexcept {
    auto a = words(), b = other.words();
    for (size_type i = 0; i < a.size(); ++i)
      if (a[i] & ~(i < b.size() ? b[i] : 0)) return false;
    return true;
  }
  bool intersects(const BasicCpuSet& other) const noexcept {
    auto a = words(), b = other.words();
    for (size_type i = 0; i < a.size() && i < b.size(); ++i)
      if (a[i] & b[i]) return true;
    return false;
  }
  /// True when both hold the same CPUs, whatever their universes.
  friend bool same_members(const BasicCpuSet& a, const BasicCpuSet& b) noexcept {
    auto x = a.words(), y = b.words();
    const size_type n = std::max(x.size(), y.size());
    for (size_type i = 0; i < n; ++i)
      if ((i < x.size() ? x[i] : 0) != (i < y.size() ? y[i] : 0)) return false;
    return true;
  }

  // ---- value semantics ----

  friend bool operator==(const BasicCpuSet& a, const BasicCpuSet& b) noexcept {
    return a.universe() == b.universe() && same_members(a, b);
  }

  BasicCpuSet& operator&=(const BasicCpuSet& o) {
    grow_to(o.universe());
    auto a = detail::blocks(bits_);
    auto b = o.words();
    const size_type n = std::min(a.size(), b.size());
    for (size_type i = 0; i < n; ++i) a[i] &= b[i];
    for (size_type i = n; i < a.size(); ++i) a[i] = 0;
    return *this;
  }
  BasicCpuSet& operator|=(const BasicCpuSet& o) { return combine(o, [](auto x, auto y) { return x | y; }); }
  BasicCpuSet& operator^=(const BasicCpuSet& o) { return combine(o, [](auto x, auto y) { return x ^ y; }); }
  /// Difference: removes the members of o.
  BasicCpuSet& operator-=(const BasicCpuSet& o) { return combine(o, [](auto x, auto y) { return x & ~y; }); }

  // `a op= b; return a;`, not `return a op= b;`: that returns a reference, which
  // copy-constructs the result (a second allocation and copy); a by-value parameter moves.
  friend BasicCpuSet operator&(BasicCpuSet a, const BasicCpuSet& b) { a &= b; return a; }
  friend BasicCpuSet operator|(BasicCpuSet a, const BasicCpuSet& b) { a |= b; return a; }
  friend BasicCpuSet operator^(BasicCpuSet a, const BasicCpuSet& b) { a ^= b; return a; }
  friend BasicCpuSet operator-(BasicCpuSet a, const BasicCpuSet& b) { a -= b; return a; }
  /// Complement within the universe.
  friend BasicCpuSet operator~(BasicCpuSet a) {
    auto w = detail::blocks(a.bits_);
    for (auto& x : w) x = ~x;
    if (!w.empty()) w.back() &= detail::last_block_mask(a.universe());
    return a;
  }

  // ---- iteration over members, ascending ----

  iterator begin() const noexcept { return iterator::from(words(), 0); }
  iterator end() const noexcept { return iterator::end_of(words()); }

  // ---- raw forms ----

  const Bitset& bits() const noexcept { return bits_; }
  /// The storage, a 64-bit word at a time; bit n of word w is CPU 64*w + n.
  std::span<const Word> words() const noexcept { return detail::blocks(bits_); }

  /// Bytes in the libvirt / libxenctrl layout: CPU n is bit n%8 of byte n/8,
  /// (universe()+7)/8 bytes (libvirt's VIR_CPU_MAPLEN).
  std::vector<std::uint8_t> to_bytes() const {
    std::vector<std::uint8_t> out((universe() + 7) / 8);
    write_bytes(out);
    return out;
  }
  /// Fills `out` in the same layout. Bytes past the universe are zeroed; an `out` too short
  /// for a member throws Error (invalid_argument) before anything is written.
  void write_bytes(std::span<std::uint8_t> out) const {
    if (auto hi = last(); hi && *hi / 8 >= out.size())
      throw Error(ErrorCode::invalid_argument,
                  std::string(Tag::noun) + " " + std::to_string(*hi) + " does not fit in a " +
                      std::to_string(out.size()) + "-byte map");
    auto w = words();
    for (size_type i = 0; i < out.size(); ++i) {
      const size_type word = i / 8;
      out[i] = word < w.size() ? static_cast<std::uint8_t>(w[word] >> (8 * (i % 8))) : 0;
    }
  }
  /// Reads bytes in the libvirt layout into a set of `universe` CPUs. Fewer bytes than the
  /// universe needs mean absent CPUs; more are fine while they are zero. A set bit at or
  /// beyond the universe throws ParseError (invalid_argument, out_of_range() true) naming the
  /// highest such bit of the first byte holding one: column() is that byte, 1-based, input()
  /// the bytes in hex ("ff 01 80", cut to 80 characters), and what() reads
  /// "byte map: byte 3: sets CPU 23, beyond the 16 CPUs of the universe".
  static BasicCpuSet from_bytes(std::span<const std::uint8_t> bytes, size_type universe) {
    BasicCpuSet s(universe);
    auto w = detail::blocks(s.bits_);
    for (size_type i = 0; i < bytes.size(); ++i) {
      if (bytes[i] == 0) continue;
      // i * 8 cannot wrap: the span is in memory, so its size is far below SIZE_MAX / 8.
      const size_type top = i * 8 + 7 - static_cast<size_type>(std::countl_zero(bytes[i]));
      if (top >= universe) [[unlikely]]
        byte_beyond_universe(bytes, i, top, universe);
      w[i / 8] |= detail::Block{bytes[i]} << (8 * (i % 8));
    }
    return s;
  }

  /// A forward iterator over the members: a word and the index of the next word to load.
  class iterator {
   public:
    using iterator_category = std::forward_iterator_tag;
    using iterator_concept = std::forward_iterator_tag;
    using value_type = typename Tag::number;
    using difference_type = std::ptrdiff_t;
    using pointer = void;
    using reference = value_type;

    iterator() = default;
    value_type operator*() const noexcept {
      return static_cast<value_type>(index_ * detail::block_bits + static_cast<std::size_t>(std::countr_zero(word_)));
    }
    iterator& operator++() noexcept {
      word_ &= word_ - 1;
      settle();
      return *this;
    }
    iterator operator++(int) noexcept {
      iterator old = *this;
      ++*this;
      return old;
    }
    // The word first: it is non-zero for every iterator but end, and settle() has just
    // tested it, so the usual `it != end` costs no extra compare.
    friend bool operator==(const iterator& a, const iterator& b) noexcept {
      return a.word_ == b.word_ && a.index_ == b.index_;
    }

   private:
    friend class BasicCpuSet;
    iterator(const detail::Block* words, std::size_t nwords, std::size_t index, detail::Block word)
        : words_(words), nwords_(nwords), index_(index), word_(word) {}
    static iterator from(std::span<const detail::Block> w, std::size_t cpu) noexcept {
      const std::size_t index = cpu / detail::block_bits;
      if (index >= w.size()) return end_of(w);
      iterator it(w.data(), w.size(), index, w[index] & (~detail::Block{0} << (cpu % detail::block_bits)));
      it.settle();
      return it;
    }
    static iterator end_of(std::span<const detail::Block> w) noexcept {
      return iterator(w.data(), w.size(), w.size(), 0);
    }
    void settle() noexcept {
      while (word_ == 0) {
        if (++index_ >= nwords_) {
          index_ = nwords_;
          return;
        }
        word_ = words_[index_];
      }
    }

    const detail::Block* words_ = nullptr;
    std::size_t nwords_ = 0;
    std::size_t index_ = 0;
    detail::Block word_ = 0;
  };

 private:
  struct AdoptBits {};
  BasicCpuSet(AdoptBits, detail::Bits&& bits) noexcept : bits_(std::move(bits)) {}

  [[noreturn]] static void byte_beyond_universe(std::span<const std::uint8_t> bytes, size_type i, size_type top,
                                                 size_type universe) {
    const std::string noun(Tag::noun);
    throw ParseError::preformatted(
        detail::hex_bytes(bytes, 80),
        ParseFailure{.column = i + 1, .reason = "CPU number beyond the universe", .out_of_range = true},
        "byte map: byte " + std::to_string(i + 1) + ": sets " + noun + " " + std::to_string(top) + ", beyond the " +
            std::to_string(universe) + " " + noun + "s of the universe");
  }
  void check(size_type cpu) const {
    if (cpu >= universe())
      throw Error(ErrorCode::invalid_argument, std::string(Tag::noun) + " " + std::to_string(cpu) +
                                                   " is beyond the set's " + std::to_string(universe()) +
                                                   " " + std::string(Tag::noun) + "s");
  }
  void check_range(size_type first, size_type last) const {
    if (first > last)
      throw Error(ErrorCode::invalid_argument, "reversed range " + std::to_string(first) + "-" +
                                                   std::to_string(last));
    check(last);
  }
  void grow_to(size_type n) {
    if (n > universe()) bits_.resize(n);
  }
  template <class Op>
  BasicCpuSet& combine(const BasicCpuSet& o, Op op) {
    grow_to(o.universe());
    auto a = detail::blocks(bits_);
    auto b = o.words();
    for (size_type i = 0; i < b.size(); ++i) a[i] = op(a[i], b[i]);
    return *this;
  }

  detail::Bits bits_;
};

using CpuMap = BasicCpuSet<PcpuTag>;
using VcpuSet = BasicCpuSet<VcpuTag>;
/// A set of NUMA nodes (universe: the host's node count, HostInfo::numa_nodes.size()).
using NodeSet = BasicCpuSet<NodeTag>;

}  // namespace vcpumap

template <class Tag>
struct std::hash<vcpumap::BasicCpuSet<Tag>> {
  std::size_t operator()(const vcpumap::BasicCpuSet<Tag>& s) const noexcept {
    std::size_t h = std::hash<std::size_t>{}(s.universe());
    for (auto w : s.words()) h = (h ^ std::hash<std::uint64_t>{}(w)) * 0x100000001b3ULL;
    return h;
  }
};

#include "cpulist.hpp"
