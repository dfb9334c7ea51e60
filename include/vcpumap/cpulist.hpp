// vcpumap/cpulist.hpp — one grammar for every cpulist dialect, one canonical way to print.
//
//   auto m = vcpumap::CpuMap::parse("0-7,^3");                      // {0,1,2,4,5,6,7}
//   auto h = vcpumap::CpuMap::parse("ff,00000000", {.form = vcpumap::TextForm::sysfs_mask});
//   std::string s = m.to_string();                                  // "0-2,4-7"
//
// The list grammar (TextForm::list, the default form), by dialect:
//
//   item                 strict standard compat  meaning
//   N                      yes     yes     yes   CPU N
//   N-M                    yes     yes     yes   CPUs N..M (M >= N)
//   ^N  ^N-M                -      yes     yes   remove from what came before (libvirt, xl)
//   N-M:used/group          -      yes     yes   kernel stride: 0-15:2/4 = 0,1,4,5,8,9,12,13
//   all  none               -      yes     yes   every CPU of the universe / no CPU
//   node:N nodes:N-M ^node:N -     yes     yes   the CPUs of NUMA nodes (xl); needs numa_nodes
//   0xHEX (whole input)     -      yes     yes   taskset mask, bit n = CPU n
//   N- (open range)         -       -      yes   CPUs N..universe-1 (hwloc); needs a universe
//   N as a number           -       -      yes   the last CPU, universe-1 (kernel); needs one
//   yy--y (whole input)     -       -      yes   virsh affinity string (only 'y' and '-')
//
// - strict accepts exactly the canonical text: ascending, merged ranges ("0-3,5", not
//   "0,1,2,3,5" nor "5,0-3" nor "3-3"), no spaces, no leading zeros; format() output
//   always reads back in strict mode.
// - standard and compat tolerate spaces and tabs around items, any order, overlaps.
// - Exclusions apply in order by default ("0-3,^2,2" holds 2); Exclusion::after_inclusions
//   (OpenStack Nova's rule) removes them after every inclusion ("0-3,^2,2" lacks 2). In
//   order, a list that starts with an exclusion starts from every CPU of the universe, as
//   xl does ("^0" = all but CPU 0); after inclusions, a list of exclusions only does.
// - The empty string (or only spaces) is the empty set.
// - Errors (ParseError, naming the 1-based column): an empty item ("1,,2", "1,"), a reversed
//   range ("5-3"), a number with too many digits ("99999999999999999999"), a CPU at or
//   beyond the universe, a stray character, a form the dialect does not accept, a bad
//   stride, an unknown NUMA node, "all"/"N-" without a universe. ParseFailure::out_of_range
//   (ParseError::out_of_range()) tells the CPU numbers that cannot be (at or beyond the
//   universe or the limit, too many digits; a mask bit or a 'y' likewise) from the rest.
// - The result's universe is options.universe when given; otherwise the smallest that holds
//   every CPU the text names (a list: its highest number + 1; a mask or y- string: its
//   width). Without a universe, numbers at or beyond options.limit are rejected so that a
//   hostile "4000000000" does not allocate half a gigabyte: the limit is a guard, not a
//   ceiling of the type, and callers may raise it.
// - Cost: each item costs O(1 + the 64-bit words its CPUs span), whatever its stride
//   ("0-16777215:1/2" is 262144 word writes, not 8 million bit runs); a "node:" item costs
//   the words of its nodes' maps.
//
// The sysfs mask ("ff,ffffffff") cannot be told apart from a list ("11" is CPU 11 as a
// list and CPUs 0 and 4 as a mask), so it is read only with form = TextForm::sysfs_mask.
// TextForm::hex reads a taskset mask with or without "0x"; TextForm::yn a virsh string.
#pragma once

#include <algorithm>
#include <array>
#include <bit>
#include <charconv>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>

#include "cpu_map.hpp"

namespace vcpumap {

enum class Dialect { strict, standard, compat };
enum class Exclusion { in_order, after_inclusions };

struct ParseOptions {
  /// What the text is: a list (TextForm::list and TextForm::xl_list read the same grammar),
  /// a sysfs mask, a hex mask or a y- string.
  TextForm form = TextForm::list;
  Dialect dialect = Dialect::standard;
  Exclusion exclusion = Exclusion::in_order;
  /// The universe of the result. CPUs at or beyond it are errors. Needed by "all", by a
  /// leading exclusion, by "N-" and by the kernel's "N".
  std::optional<std::size_t> universe = std::nullopt;
  /// Without a universe: the largest CPU number + 1 accepted.
  std::size_t limit = std::size_t{1} << 24;
  /// The CPUs of each NUMA node, indexed by node id, for "node:" items: the hook that
  /// HostInfo::parse_options() fills from the host's topology. Empty: "node:" is an error.
  std::span<const CpuMap> numa_nodes = {};
};

namespace detail {

/// Reads one text into a Bits. Never throws but for allocation failure.
class CpulistReader {
 public:
  CpulistReader(std::string_view text, const ParseOptions& options, bool physical)
      : text_(text), opt_(options), physical_(physical) {
    if (opt_.universe) out_.resize(*opt_.universe);
  }

  std::optional<ParseFailure> read() {
    switch (opt_.form) {
      case TextForm::list:
      case TextForm::xl_list: return read_list();
      case TextForm::sysfs_mask: return read_sysfs_mask();
      case TextForm::hex: return read_hex(skip_hex_prefix(trimmed_begin()));
      case TextForm::yn: return read_yn();
    }
    return fail(0, "unknown text form");
  }

  /// The result, its storage exactly the words it needs: a list read by the fast path into
  /// the reader's own buffer is copied into the one allocation of the result; words grown
  /// on the heap are trimmed (dynamic_bitset's resize keeps the capacity doubling left).
  Bits take() && {
    if (gathered_words_ != 0) {
      Bits bits(named_);
      const std::span<Block> w = blocks(bits);  // blocks_for(named_) <= gathered_words_
      std::memcpy(w.data(), gathered_.data(), w.size() * sizeof(Block));
      return bits;
    }
    if (!opt_.universe && out_.size() != named_) out_.resize(named_);  // a call costs ~100 instructions
    if (out_.capacity() > out_.size() + block_bits - 1) out_.shrink_to_fit();
    return std::move(out_);
  }

 private:
  using Failure = std::optional<ParseFailure>;

  Failure fail(std::size_t pos, std::string_view reason) const {
    return ParseFailure{pos + 1, reason};
  }
  /// A well-formed CPU number (or mask bit, or 'y') that cannot be: ParseFailure::out_of_range.
  Failure fail_range(std::size_t pos, std::string_view reason) const {
    return ParseFailure{.column = pos + 1, .reason = reason, .out_of_range = true};
  }
  static bool is_space(char c) noexcept { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }
  static bool is_digit(char c) noexcept { return c >= '0' && c <= '9'; }
  static int hex_value(char c) noexcept {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  }
  bool strict() const noexcept { return opt_.dialect == Dialect::strict; }
  bool compat() const noexcept { return opt_.dialect == Dialect::compat; }

  std::size_t trimmed_begin() const noexcept {
    std::size_t i = 0;
    while (i < text_.size() && is_space(text_[i])) ++i;
    return i;
  }
  /// The end of the text without trailing spaces; never before trimmed_begin().
  std::size_t trimmed_end() const noexcept {
    const std::size_t begin = trimmed_begin();
    std::size_t i = text_.size();
    while (i > begin && is_space(text_[i - 1])) --i;
    return i;
  }
  std::size_t skip_hex_prefix(std::size_t i) const noexcept {
    if (i + 1 < text_.size() && text_[i] == '0' && (text_[i + 1] == 'x' || text_[i + 1] == 'X'))
      return i + 2;
    return i;
  }

  /// The bound a CPU number must stay below, and the reason when it does not.
  std::size_t bound() const noexcept { return opt_.universe ? *opt_.universe : opt_.limit; }
  std::string_view beyond_reason() const noexcept {
    return opt_.universe ? "CPU number beyond the universe" : "CPU number beyond the parse limit";
  }
  /// Makes room for CPU `cpu` (known to be below bound()).
  void name(std::size_t cpu) {
    if (cpu >= named_) named_ = cpu + 1;
    if (cpu >= out_.size()) out_.resize(std::max(cpu + 1, 2 * out_.size()));
  }

  // ---- the list grammar ----

  Failure read_list() {
    const std::size_t begin = trimmed_begin(), end = trimmed_end();
    if (strict()) {
      if (begin != 0 || end != text_.size()) return fail(begin == 0 ? end : 0, "space in a strict cpulist");
    }
    if (begin == end) return std::nullopt;
    if (!strict() && text_[begin] == '0' && end - begin > 1 && (text_[begin + 1] == 'x' || text_[begin + 1] == 'X'))
      return read_hex(begin + 2);
    if (compat() && std::all_of(text_.begin() + static_cast<std::ptrdiff_t>(begin),
                                text_.begin() + static_cast<std::ptrdiff_t>(end),
                                [](char c) { return c == 'y' || c == '-'; }) &&
        text_.substr(begin, end - begin).find('y') != std::string_view::npos)
      return read_yn();

    text_ = text_.substr(0, end);  // columns stay those of the caller's text
    if (!strict() && read_plain_list(begin)) return std::nullopt;
    pos_ = begin;
    bool first_item = true;
    for (;;) {
      skip_spaces();
      if (Failure f = read_item(first_item)) return f;
      first_item = false;
      skip_spaces();
      if (pos_ == text_.size()) break;
      if (text_[pos_] != ',') return fail(pos_, "expected ',' or the end of the list");
      ++pos_;
    }
    if (opt_.exclusion == Exclusion::after_inclusions && saw_exclusion_ && !saw_inclusion_) {
      // Only exclusions: as with in-order lists, they are taken from every CPU.
      if (!opt_.universe) return fail(begin, "a list of exclusions only needs a universe");
      out_.set();
    }
    if (!excluded_.empty()) {
      auto o = blocks(out_);
      auto x = blocks(excluded_);
      for (std::size_t i = 0; i < o.size() && i < x.size(); ++i) o[i] &= ~x[i];
    }
    return std::nullopt;
  }

  /// The common shape, "N[-M](,[^]N[-M])*" with nothing else (an exclusion after the first
  /// item, in-order exclusions), in one tight loop. Returns false, with nothing read, for
  /// any other text: the general reader then reads it (and reports its errors with their
  /// columns).
  bool read_plain_list(std::size_t begin) {
    const char* const text = text_.data();
    const std::size_t size = text_.size();
    const std::size_t limit = bound();
    auto give_up = [&] {
      for (Block& w : blocks(out_)) w = 0;
      named_ = 0;
      return false;
    };
    // The commas are found 8 bytes at a time ahead of the items (`mask`: bit 8k+7 for a comma
    // at chunk_pos + k), so where an item ends is known without reading its digits and the
    // items do not wait for each other: reading one is not a chain of loads through the last.
    std::size_t chunk_pos = begin;
    std::uint64_t mask = comma_mask(text, size, chunk_pos);
    auto next_comma = [&]() -> std::size_t {  // the position of the next comma, or size
      while (mask == 0) {
        chunk_pos += 8;
        if (chunk_pos >= size) return size;
        mask = comma_mask(text, size, chunk_pos);
      }
      const std::size_t q = chunk_pos + static_cast<std::size_t>(std::countr_zero(mask)) / 8;
      mask &= mask - 1;
      return q;
    };
    // Decimal digits from `i` up to `stop`, at most 18 of them, the value below the limit.
    auto number = [&](std::size_t& i, std::size_t stop, std::size_t& value) {
      const std::size_t start = i;
      std::size_t v = 0;
      while (i < stop && static_cast<unsigned char>(text[i] - '0') < 10) v = v * 10 + static_cast<std::size_t>(text[i++] - '0');
      value = v;
      return i != start && i - start <= 18 && v < limit;
    };
    std::size_t top = 0;
    // Without a universe the result's width is known only at the end: the words gather in
    // gathered_ (zeroed as the items reach them), and take() allocates the result once, at
    // its exact size. A list naming a CPU beyond gathered_ moves to out_ on the heap.
    bool gathering = !opt_.universe;
    std::span<Block> words = gathering ? std::span<Block>(gathered_.data(), 0) : blocks(out_);
    std::size_t nbits = words.size() * block_bits;  // a local: stores through `words` could alias the member
    // Single CPUs gather in a register and are stored when one lands in another word: an
    // or-into-memory per item makes each item wait for the previous item's store.
    Block pending = 0;
    std::size_t pending_word = 0;
    auto store_pending = [&] {
      if (pending != 0) words[pending_word] |= pending;
      pending = 0;
    };
    for (std::size_t pos = begin, first = 1;; first = 0) {
      const std::size_t stop = next_comma();  // the item is text[pos, stop)
      std::size_t lo = 0, hi = 0;
      bool exclude = false;
      std::uint64_t chunk = 0;
      if constexpr (std::endian::native == std::endian::little) {
        if (pos + 8 <= size) std::memcpy(&chunk, text + pos, 8);
      }
      if (chunk != 0 && stop - pos - 1 < 7 && swar_digit_count(chunk) == stop - pos) {
        // The common item: one CPU of 1 to 7 digits, read 8 bytes at once.
        lo = hi = swar_value(chunk, static_cast<unsigned>(stop - pos));
        if (lo >= limit) return give_up();
      } else {
        std::size_t i = pos;
        if (i < stop && text[i] == '^') {
          // "^N" after an item clears N from what the items before set. A leading one (all
          // CPUs but N) and exclusions applied after every inclusion are the general reader's.
          if (first || opt_.exclusion != Exclusion::in_order) return give_up();
          exclude = true;
          ++i;
        }
        if (!number(i, stop, lo)) return give_up();
        hi = lo;
        if (i < stop && text[i] == '-') {
          ++i;
          if (!number(i, stop, hi) || hi < lo) return give_up();
        }
        if (i != stop) return give_up();
      }
      if (hi >= nbits) {  // only without a universe: bound() kept hi below it
        store_pending();
        const std::size_t need = blocks_for(hi + 1);
        if (gathering && need <= gathered_.size()) {
          std::fill(gathered_.data() + words.size(), gathered_.data() + need, Block{0});
          words = std::span<Block>(gathered_.data(), need);
          nbits = need * block_bits;
        } else {
          out_.resize(std::max(hi + 1, 2 * nbits));
          if (gathering) std::copy(words.begin(), words.end(), blocks(out_).begin());
          gathering = false;
          words = blocks(out_);
          nbits = out_.size();
        }
      }
      if (exclude) {
        store_pending();  // the CPUs set before it, first
        clear_range(words, lo, hi);
      } else if (lo == hi) {
        if (lo / block_bits != pending_word) {
          store_pending();
          pending_word = lo / block_bits;
        }
        pending |= Block{1} << (lo % block_bits);
      } else {
        set_range(words, lo, hi);
      }
      top = std::max(top, hi + 1);
      if (stop == size) break;
      pos = stop + 1;
    }
    store_pending();
    named_ = top;
    if (gathering) gathered_words_ = words.size();
    return true;
  }

  /// The commas among the 8 characters at text[pos] (fewer at the end of the text): bit 8k+7
  /// set when text[pos + k] is ','. Exact per byte: (x & 0x7f) + 0x7f never carries out.
  static std::uint64_t comma_mask(const char* text, std::size_t size, std::size_t pos) noexcept {
    constexpr std::uint64_t ones = 0x0101010101010101ULL;
    if (std::endian::native == std::endian::little && pos + 8 <= size) {
      std::uint64_t chunk;
      std::memcpy(&chunk, text + pos, 8);
      const std::uint64_t x = chunk ^ (ones * ',');
      return ~(((x & (0x7f * ones)) + 0x7f * ones) | x) & (0x80 * ones);
    }
    std::uint64_t m = 0;
    for (std::size_t k = 0; k < 8 && pos + k < size; ++k)
      if (text[pos + k] == ',') m |= std::uint64_t{0x80} << (8 * k);
    return m;
  }

  /// How many of the 8 characters in `chunk` (the first in its lowest byte) are decimal
  /// digits before the first that is not; 8 when all are. A byte is a non-digit when it is
  /// 0x3a or above (+0x46 sets its top bit), below 0x30 (-0x30 borrows into its top bit)
  /// or not ASCII; carries and borrows move only from a non-digit upwards, past the first.
  static unsigned swar_digit_count(std::uint64_t chunk) noexcept {
    constexpr std::uint64_t ones = 0x0101010101010101ULL;
    const std::uint64_t non_digit = ((chunk + 0x46 * ones) | (chunk - 0x30 * ones) | chunk) & (0x80 * ones);
    return non_digit == 0 ? 8 : static_cast<unsigned>(std::countr_zero(non_digit)) / 8;
  }
  /// The value of the first `digits` (1..7) characters of `chunk`, all decimal digits: moved
  /// to the top bytes (the zeros below read as leading zeros), then combined pairwise.
  static std::size_t swar_value(std::uint64_t chunk, unsigned digits) noexcept {
    std::uint64_t v = chunk << (8 * (8 - digits));
    v = ((v & 0x0F0F0F0F0F0F0F0FULL) * 2561) >> 8;              // 10 * 2^8 + 1: pairs
    v = ((v & 0x00FF00FF00FF00FFULL) * 6553601) >> 16;          // 100 * 2^16 + 1: quads
    return static_cast<std::size_t>(((v & 0x0000FFFF0000FFFFULL) * 42949672960001ULL) >> 32);  // 10^4 * 2^32 + 1
  }

  void skip_spaces() noexcept {
    if (strict()) return;
    while (pos_ < text_.size() && (text_[pos_] == ' ' || text_[pos_] == '\t')) ++pos_;
  }

  bool at(std::string_view word) const noexcept { return text_.substr(pos_, word.size()) == word; }

  Failure read_item(bool first_item) {
    const std::size_t item_start = pos_;
    if (pos_ == text_.size() || text_[pos_] == ',') return fail(pos_, "empty item");
    bool exclude = false;
    if (text_[pos_] == '^') {
      if (strict()) return fail(pos_, "exclusion '^' in a strict cpulist");
      exclude = true;
      ++pos_;
      saw_exclusion_ = true;
      if (first_item && opt_.exclusion == Exclusion::in_order) {
        if (!opt_.universe) return fail(item_start, "a list that starts with an exclusion needs a universe");
        out_.set();
      }
    } else {
      saw_inclusion_ = true;
    }
    std::size_t lo = 0, hi = 0;
    const bool word = pos_ < text_.size() && text_[pos_] >= 'a' && text_[pos_] <= 'z';
    if (word && (at("all") || at("none"))) {
      if (strict()) return fail(pos_, "'all'/'none' in a strict cpulist");
      const bool all = at("all");
      pos_ += all ? 3 : 4;
      if (!all) return std::nullopt;  // "none" adds nothing (and "^none" removes nothing)
      if (!opt_.universe) return fail(item_start, "'all' needs a universe");
      if (out_.size() == 0) return std::nullopt;
      lo = 0;
      hi = out_.size() - 1;
      return apply(exclude, lo, hi, 1, 1);
    }
    if (word && (at("node:") || at("nodes:"))) return read_nodes(exclude);

    const std::size_t lo_pos = pos_;
    if (Failure f = read_cpu(lo)) return f;
    hi = lo;
    if (pos_ < text_.size() && text_[pos_] == '-') {
      ++pos_;
      if (pos_ == text_.size() || !(is_digit(text_[pos_]) || (compat() && text_[pos_] == 'N'))) {
        if (!compat()) return fail(pos_, "expected a CPU number after '-'");
        if (!opt_.universe || *opt_.universe == 0) return fail(pos_, "open range 'N-' needs a universe");
        hi = *opt_.universe - 1;  // hwloc's "N-": to the end
      } else {
        if (Failure f = read_cpu(hi)) return f;
      }
      if (hi < lo) return fail(lo_pos, "reversed range");
      if (strict() && hi == lo) return fail(lo_pos, "one-CPU range in a strict cpulist");
    }
    if (strict()) {
      if (have_prev_ && lo <= prev_hi_ + 1) return fail(lo_pos, "not ascending and merged (strict cpulist)");
      have_prev_ = true;
      prev_hi_ = hi;
    }
    std::size_t used = 1, group = 1;
    if (pos_ < text_.size() && text_[pos_] == ':') {
      if (strict()) return fail(pos_, "stride in a strict cpulist");
      const std::size_t stride_pos = pos_;
      ++pos_;
      if (Failure f = read_number(used)) return f;
      if (pos_ == text_.size() || text_[pos_] != '/') return fail(pos_, "expected '/' in a stride");
      ++pos_;
      if (Failure f = read_number(group)) return f;
      if (used == 0 || group == 0 || used > group) return fail(stride_pos, "bad stride (need 1 <= used <= group)");
    }
    return apply(exclude, lo, hi, used, group);
  }

  /// The words an item writes to, made large enough for CPU `hi` (below bound()): out_, or
  /// excluded_ for an exclusion applied after the inclusions. `clear` tells whether the item
  /// clears its CPUs (an in-order exclusion) rather than sets them.
  std::span<Block> target(bool exclude, std::size_t hi, bool& clear) {
    name(hi);
    clear = exclude && opt_.exclusion == Exclusion::in_order;
    if (!exclude || clear) return blocks(out_);
    if (excluded_.size() < out_.size()) excluded_.resize(out_.size());
    return blocks(excluded_);
  }

  /// CPUs lo..hi (lo <= hi < bound()), taking `used` of every `group` (1 <= used, 1 <=
  /// group; used >= group: all of them), added or excluded. O(1 + words of lo..hi): a group
  /// of at most 64 CPUs writes each word once with its slice of the periodic pattern; a
  /// larger group writes one run per group, and runs start more than a word apart.
  Failure apply(bool exclude, std::size_t lo, std::size_t hi, std::size_t used, std::size_t group) {
    bool clear = false;
    const std::span<Block> w = target(exclude, hi, clear);
    if (used >= group || used > hi - lo) {  // no stride, or a first run that covers lo..hi
      if (clear)
        clear_range(w, lo, hi);
      else
        set_range(w, lo, hi);
    } else if (group <= block_bits) {
      apply_pattern(w, lo, hi, used, group, clear);
    } else {
      for (std::size_t start = lo;; start += group) {
        const std::size_t stop = used - 1 >= hi - start ? hi : start + used - 1;  // no overflow
        if (clear)
          clear_range(w, start, stop);
        else
          set_range(w, start, stop);
        if (hi - start < group) break;  // no overflow of start += group
      }
    }
    return std::nullopt;
  }

  /// The stride lo..hi:used/group with 1 <= used < group <= 64, a word at a time: bit k of
  /// the 128-bit pattern p1:p0 is set when k % group < used, and the word whose bit 0 is
  /// CPU lo + r (r % group = phase) takes pattern bits phase .. phase + 63.
  static void apply_pattern(std::span<Block> w, std::size_t lo, std::size_t hi, std::size_t used,
                            std::size_t group, bool clear) noexcept {
    const Block run = (Block{1} << used) - 1;  // used < 64
    Block p0 = 0, p1 = 0;
    for (std::size_t k = 0; k < 2 * block_bits; k += group) {
      if (k < block_bits) {
        p0 |= run << k;
        if (k + used > block_bits) p1 |= run >> (block_bits - k);  // k > 0 here
      } else {
        p1 |= run << (k - block_bits);
      }
    }
    const std::size_t last = hi / block_bits;
    const Block tail = ~Block{0} >> (block_bits - 1 - hi % block_bits);
    const std::size_t step = block_bits % group;
    std::size_t phase = (block_bits - lo % block_bits) % group;  // of the word after lo's
    Block mask = p0 << (lo % block_bits);                      // lo's word: the pattern from lo
    for (std::size_t i = lo / block_bits;; ++i) {
      if (i == last) mask &= tail;
      if (clear)
        w[i] &= ~mask;
      else
        w[i] |= mask;
      if (i == last) break;
      mask = phase == 0 ? p0 : (p0 >> phase) | (p1 << (block_bits - phase));
      phase += step;
      if (phase >= group) phase -= group;
    }
  }

  Failure read_nodes(bool exclude) {
    const std::size_t item = pos_;
    pos_ += at("nodes:") ? 6 : 5;
    if (!physical_) return fail(item, "'node:' names physical CPUs, not vcpus");
    if (opt_.numa_nodes.empty()) return fail(item, "'node:' needs the host's NUMA topology");
    std::size_t lo = 0, hi = 0;
    const std::size_t lo_pos = pos_;
    if (Failure f = read_number(lo)) return f;
    hi = lo;
    if (pos_ < text_.size() && text_[pos_] == '-') {
      ++pos_;
      if (Failure f = read_number(hi)) return f;
      if (hi < lo) return fail(lo_pos, "reversed range");
    }
    if (hi >= opt_.numa_nodes.size()) return fail(lo_pos, "no such NUMA node");
    for (std::size_t node = lo; node <= hi; ++node) {
      const CpuMap& cpus = opt_.numa_nodes[node];
      const auto top = cpus.last();
      if (!top) continue;  // a node without CPUs names none
      if (*top >= bound()) return fail(lo_pos, "NUMA node holds a CPU beyond the universe");
      // The node's words up to its highest CPU, ORed in (or cleared): its bits beyond *top
      // are zero, so the target's beyond its size stay zero.
      bool clear = false;
      const std::span<Block> w = target(exclude, *top, clear);
      const auto src = cpus.words();
      const std::size_t n = blocks_for(*top + 1);  // <= both sizes
      for (std::size_t i = 0; i < n; ++i) {
        if (clear)
          w[i] &= ~src[i];
        else
          w[i] |= src[i];
      }
    }
    return std::nullopt;
  }

  /// A CPU number (or compat's "N", the last CPU), below bound().
  Failure read_cpu(std::size_t& value) {
    const std::size_t start = pos_;
    if (compat() && pos_ < text_.size() && text_[pos_] == 'N') {
      if (!opt_.universe || *opt_.universe == 0) return fail(pos_, "'N' (the last CPU) needs a universe");
      ++pos_;
      value = *opt_.universe - 1;
      return std::nullopt;
    }
    if (Failure f = read_number(value, true)) return f;
    if (strict() && text_[start] == '0' && pos_ - start > 1) return fail(start, "leading zero in a strict cpulist");
    if (value >= bound()) return fail_range(start, beyond_reason());
    return std::nullopt;
  }

  /// Decimal digits; more than 18 significant digits is an overflow ("number too large",
  /// out_of_range when the number is a CPU's: `cpu`).
  Failure read_number(std::size_t& value, bool cpu = false) {
    const std::size_t start = pos_;
    std::uint64_t v = 0;
    while (pos_ < text_.size() && is_digit(text_[pos_])) {
      v = v * 10 + static_cast<std::uint64_t>(text_[pos_] - '0');
      if (v > 999'999'999'999'999'999ULL) return cpu ? fail_range(start, "number too large") : fail(start, "number too large");
      ++pos_;
    }
    if (pos_ == start) {
      if (pos_ == text_.size()) return fail(pos_, "expected a number, found the end");
      return fail(pos_, "expected a number");
    }
    value = static_cast<std::size_t>(v);
    return std::nullopt;
  }

  // ---- masks and y- strings ----

  /// Hex digits from `first` to the trimmed end, least significant last.
  Failure read_hex(std::size_t first) {
    const std::size_t end = trimmed_end();
    if (first >= end) return fail(first, "expected hex digits");
    return read_hex_digits(first, end, 0);
  }

  /// Digits [first, end) hold bits starting at `base_bit` (for the last digit).
  Failure read_hex_digits(std::size_t first, std::size_t end, std::size_t base_bit) {
    // width = base_bit + 4 * digits, compared without computing it: it cannot wrap then.
    if (!opt_.universe && (base_bit > opt_.limit || end - first > (opt_.limit - base_bit) / 4))
      return fail_range(first, "mask wider than the parse limit");
    if (!opt_.universe) named_ = std::max(named_, base_bit + 4 * (end - first));  // <= limit
    std::size_t bit = base_bit;
    for (std::size_t i = end; i-- > first; bit += 4) {
      const int v = hex_value(text_[i]);
      if (v < 0) return fail(i, "expected a hex digit");
      if (v == 0) continue;
      const std::size_t top = bit + 3 - static_cast<std::size_t>(std::countl_zero(static_cast<std::uint8_t>(v)) - 4);
      if (top >= bound()) return fail_range(i, beyond_reason());
      if (top >= out_.size()) out_.resize(std::max(top + 1, 2 * out_.size()));
      auto w = blocks(out_);
      w[bit / block_bits] |= Block(v) << (bit % block_bits);  // 4 | 64: a digit never straddles words
    }
    return std::nullopt;
  }

  Failure read_sysfs_mask() {
    const std::size_t begin = trimmed_begin(), end = trimmed_end();
    if (begin == end) return fail(begin, "expected a mask");
    // Count the 32-bit groups first: the last group holds bits 0-31.
    const std::size_t groups = static_cast<std::size_t>(std::count(text_.begin() + static_cast<std::ptrdiff_t>(begin),
                                                                   text_.begin() + static_cast<std::ptrdiff_t>(end), ',')) + 1;
    std::size_t group = groups, g_start = begin;
    for (std::size_t i = begin; i <= end; ++i) {
      if (i < end && text_[i] != ',') continue;
      --group;
      const std::size_t len = i - g_start;
      if (len == 0) return fail(g_start, "empty mask group");
      if (len > 8) return fail(g_start, "mask group longer than 8 hex digits");
      if (len < 8 && group + 1 != groups) return fail(g_start, "mask group shorter than 8 hex digits");
      if (Failure f = read_hex_digits(g_start, i, 32 * group)) return f;
      g_start = i + 1;
    }
    named_ = std::max(named_, 32 * groups);
    return std::nullopt;
  }

  Failure read_yn() {
    const std::size_t begin = trimmed_begin(), end = trimmed_end();
    const std::size_t width = end - begin;
    if (!opt_.universe && width > opt_.limit) return fail_range(begin, "y- string longer than the parse limit");
    named_ = std::max(named_, width);
    if (out_.size() < width && (!opt_.universe)) out_.resize(width);
    auto w = blocks(out_);
    for (std::size_t i = begin; i < end; ++i) {
      const char c = text_[i];
      if (c == '-') continue;
      if (c != 'y') return fail(i, "expected 'y' or '-'");
      const std::size_t cpu = i - begin;
      if (cpu >= out_.size()) return fail_range(i, beyond_reason());
      w[cpu / block_bits] |= Block{1} << (cpu % block_bits);
    }
    return std::nullopt;
  }

  std::string_view text_;
  const ParseOptions& opt_;
  bool physical_;
  Bits out_;
  // The fast path's words without a universe (see read_plain_list): 16384 CPUs, 2 KiB of
  // stack, left uninitialised; gathered_words_ of them are in use (0: the result is out_).
  std::array<Block, 256> gathered_;
  std::size_t gathered_words_ = 0;
  Bits excluded_;          // Exclusion::after_inclusions only
  std::size_t named_ = 0;  // highest CPU named + 1 (list) or the text's width (masks)
  std::size_t pos_ = 0;
  bool saw_inclusion_ = false;
  bool saw_exclusion_ = false;
  bool have_prev_ = false;  // strict mode's ascending check
  std::size_t prev_hi_ = 0;
};

// ---- writers ----

/// Decimal digits of n (n >= 0).
constexpr std::size_t decimal_digits(std::size_t n) noexcept {
  std::size_t d = 1;
  for (; n >= 10; n /= 10) ++d;
  return d;
}

/// An upper bound of what the canonical list of these words writes, each number at most
/// `digits` long, each run preceded by a comma (the first run's is spare): a run writes its
/// first CPU, a run of two or more also '-' and its last CPU. One pass over the words,
/// counting run starts (a member whose lower neighbour is absent; bit 0 of the first word
/// always counts) and, of those, the starts of longer runs (whose upper neighbour is a
/// member).
inline std::size_t list_length_bound(std::span<const Block> w, std::size_t digits) noexcept {
  std::size_t starts = 0, long_starts = 0;
  Block carry = 0;  // bit 63 of the previous word, moved to bit 0
  for (std::size_t i = 0; i < w.size(); ++i) {
    const Block x = w[i];
    const Block start = x & ~((x << 1) | carry);
    const Block next = (x >> 1) | (i + 1 < w.size() ? w[i + 1] << 63 : 0);  // upper neighbours
    starts += popcount(start);
    long_starts += popcount(start & next);
    carry = x >> 63;
  }
  return (starts + long_starts) * (digits + 1);
}

/// The canonical list: one pass a word at a time (countr_zero finds where each run starts
/// and ends), digits written by std::to_chars. The text goes first to a buffer on the stack;
/// a list that fits (most do) becomes a string of exactly its length, one allocation. A
/// longer one moves to a string sized by list_length_bound over the words still to write,
/// once, and keeps at most that bound's slack.
inline std::string write_list(std::span<const Block> w, std::size_t nbits) {
  const std::size_t digits = decimal_digits(nbits == 0 ? 0 : nbits - 1);
  const std::size_t most = 2 * digits + 2;  // what one run writes at most
  char local[1024];
  std::string out;
  char* begin = local;
  char* p = local;
  char* end = local + sizeof local;
  bool on_heap = false;
  const std::size_t n = w.size();
  std::size_t i = 0;
  Block word = n != 0 ? w[0] : 0;
  for (;;) {
    while (word == 0 && ++i < n) word = w[i];
    if (word == 0) break;
    if (!on_heap && static_cast<std::size_t>(end - p) < most) {
      const std::size_t written = static_cast<std::size_t>(p - begin);
      out.resize(written + list_length_bound(w.subspan(i), digits));
      std::memcpy(out.data(), local, written);
      begin = out.data();
      p = begin + written;
      end = begin + out.size();
      on_heap = true;
    }
    const std::size_t lo = i * block_bits + static_cast<std::size_t>(std::countr_zero(word));
    // The run's end: the first clear bit above lo, in this word or a later one.
    Block rest = ~word & (~Block{0} << (lo % block_bits));
    while (rest == 0) {
      if (++i >= n) break;
      rest = ~w[i];
    }
    const std::size_t stop = i >= n ? nbits : i * block_bits + static_cast<std::size_t>(std::countr_zero(rest));
    if (p != begin) *p++ = ',';
    p = std::to_chars(p, end, lo).ptr;
    if (stop - lo > 1) {
      *p++ = '-';
      p = std::to_chars(p, end, stop - 1).ptr;
    }
    if (i >= n) break;
    word = w[i] & (~Block{0} << (stop % block_bits));  // the members above the run
  }
  if (!on_heap) return std::string(local, p);
  out.resize(static_cast<std::size_t>(p - begin));
  return out;
}

inline constexpr char hex_digits[] = "0123456789abcdef";

inline std::string write_sysfs_mask(std::span<const Block> w, std::size_t nbits) {
  const std::size_t groups = std::max<std::size_t>(1, (nbits + 31) / 32);
  std::string out(groups * 9 - 1, ',');
  char* p = out.data();
  for (std::size_t g = groups; g-- > 0;) {
    const std::size_t word = g / 2;
    const auto value = static_cast<std::uint32_t>(word < w.size() ? w[word] >> (32 * (g % 2)) : 0);
    for (int d = 7; d >= 0; --d) *p++ = hex_digits[(value >> (4 * d)) & 0xf];
    if (g != 0) ++p;  // keep the ',' already there
  }
  return out;
}

inline std::string write_hex(std::span<const Block> w) {
  std::size_t top = w.size();
  while (top > 0 && w[top - 1] == 0) --top;
  if (top == 0) return "0x0";
  std::string out = "0x";
  const Block hi = w[top - 1];
  int digits = (64 - std::countl_zero(hi) + 3) / 4;
  for (int d = digits - 1; d >= 0; --d) out += hex_digits[(hi >> (4 * d)) & 0xf];
  for (std::size_t i = top - 1; i-- > 0;)
    for (int d = 15; d >= 0; --d) out += hex_digits[(w[i] >> (4 * d)) & 0xf];
  return out;
}

inline std::string write_yn(std::span<const Block> w, std::size_t nbits) {
  std::string out(nbits, '-');
  for (std::size_t i = 0; i < w.size(); ++i)
    for (Block word = w[i]; word != 0; word &= word - 1)
      out[i * block_bits + static_cast<std::size_t>(std::countr_zero(word))] = 'y';
  return out;
}

}  // namespace detail

template <class Tag>
std::optional<BasicCpuSet<Tag>> BasicCpuSet<Tag>::try_parse(std::string_view text, const ParseOptions& options,
                                                            ParseFailure* failure) {
  detail::CpulistReader reader(text, options, std::is_same_v<Tag, PcpuTag>);
  if (auto f = reader.read()) {
    if (failure) *failure = *f;
    return std::nullopt;
  }
  return from_bits(std::move(reader).take());
}

template <class Tag>
std::optional<BasicCpuSet<Tag>> BasicCpuSet<Tag>::try_parse(std::string_view text, ParseFailure* failure) {
  return try_parse(text, ParseOptions{}, failure);
}

template <class Tag>
BasicCpuSet<Tag> BasicCpuSet<Tag>::parse(std::string_view text, const ParseOptions& options) {
  // Not through try_parse: the optional would cost the result two more moves.
  detail::CpulistReader reader(text, options, std::is_same_v<Tag, PcpuTag>);
  if (auto f = reader.read()) throw ParseError(text, *f);
  return from_bits(std::move(reader).take());
}

template <class Tag>
BasicCpuSet<Tag> BasicCpuSet<Tag>::parse(std::string_view text) {
  return parse(text, ParseOptions{});
}

template <class Tag>
std::string BasicCpuSet<Tag>::to_string(TextForm form) const {
  switch (form) {
    case TextForm::list: return detail::write_list(words(), universe());
    case TextForm::xl_list:
      if (empty()) return "none";
      if (all()) return "all";
      return detail::write_list(words(), universe());
    case TextForm::sysfs_mask: return detail::write_sysfs_mask(words(), universe());
    case TextForm::hex: return detail::write_hex(words());
    case TextForm::yn: return detail::write_yn(words(), universe());
  }
  return {};
}

}  // namespace vcpumap
