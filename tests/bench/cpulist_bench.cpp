// cpulist-bench — vcpumap against hwloc and a hand-written dynamic_bitset baseline.
//
// Every (operation, input) pair is measured for each implementation, named
// "<operation>/<implementation>/<input>" so the console output groups them:
//
//   implementations  vcpumap   vcpumap::CpuMap
//                    hwloc     hwloc_bitmap_t (libhwloc, as Debian ships it: its own -O2
//                              build, whatever this build's flags)
//                    raw       boost::dynamic_bitset<std::uint64_t> through its public API only,
//                              with a straightforward strtoul-style parser and printer (Boost
//                              1.74's find_next is bit by bit: a weak baseline, kept for history)
//                    fromchars (parse only) the strong hand parser: std::from_chars, a first
//                              pass for the highest CPU, the dynamic_bitset sized once
//                    wordloop  (format, iterate) the floor: a countr_zero loop over a
//                              std::vector<uint64_t>; format writes runs with std::to_chars into
//                              one buffer allocated once, then returns them as a std::string
//   inputs           small     "0-3,8-11"
//                    range4096 "0-4095"
//                    alt4096   "0,2,4,...,4094"
//                    excl      "0-3,^2,8-15" (hwloc reads the equivalent "0-1,3,8-15")
//   operations       parse, format, and, or, xor (in place: r op= b), andnew (r = a & b, a
//                    result allocated per call), count, iterate (sum of the members)
//
// After the run a table gives, for each (operation, input), the time of vcpumap divided by
// that of hwloc, raw, fromchars and wordloop — below 1 means vcpumap is faster — and each
// performance target with MET or MISS for the build it ran in (named at the top and in the
// verdicts: build type, optimisation, flags, compiler, and the instruction sets the CPU
// offers to vcpumap's run-time dispatch). The targets are reported, never asserted: the exit
// status says only whether the benchmarks ran. Allocation counts come from a replaced
// global operator new in this program.
//
//   build-dir/tests/bench/cpulist-bench [--benchmark_repetitions=5] [--benchmark_filter=alt4096]
//
// With repetitions the table uses the median of each benchmark. On a shared machine add
// --benchmark_enable_random_interleaving=true so that load spikes hit every implementation
// alike; even so, differences under ~15% between loops that compile to the same instructions
// (and/or/xor against raw) are noise or code/heap placement, not the library.

#include <vcpumap/cpu_map.hpp>
#include <vcpumap/cpulist.hpp>

#include "ratio_reporter.hpp"

#include <hwloc.h>
#include <benchmark/benchmark.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include <boost/dynamic_bitset.hpp>

#ifndef VCPUMAP_BENCH_BUILD
#define VCPUMAP_BENCH_BUILD "unknown build (not configured by meson)"
#endif

// Every allocation through operator new in this program is counted (tests/counting_new.hpp;
// the benchmarks run on one thread). hwloc allocates with malloc and is not counted.
#include "../counting_new.hpp"

namespace {

using vcpumap::CpuMap;
using RawBits = boost::dynamic_bitset<std::uint64_t>;

// ---------------------------------------------------------------------------------------
// The raw baseline: what a program would write by hand on dynamic_bitset's public API.

/// "N", "N-M" and "^N[-M]" items separated by commas; the result is as wide as the highest
/// CPU named + 1 (the universe vcpumap picks without ParseOptions::universe).
RawBits raw_parse(const std::string& text) {
  RawBits bits;
  const char* s = text.c_str();
  while (*s != '\0') {
    bool exclude = false;
    if (*s == '^') {
      exclude = true;
      ++s;
    }
    char* end = nullptr;
    const unsigned long lo = std::strtoul(s, &end, 10);
    if (end == s) throw std::invalid_argument("raw_parse: expected a number");
    unsigned long hi = lo;
    s = end;
    if (*s == '-') {
      hi = std::strtoul(s + 1, &end, 10);
      if (end == s + 1 || hi < lo) throw std::invalid_argument("raw_parse: bad range");
      s = end;
    }
    if (hi >= bits.size()) bits.resize(hi + 1);
    if (lo == hi) {
      if (exclude) bits.reset(lo); else bits.set(lo);
    } else {
      bits.set(lo, hi - lo + 1, !exclude);
    }
    if (*s == ',') ++s;
    else if (*s != '\0') throw std::invalid_argument("raw_parse: expected ','");
  }
  return bits;
}

/// The strong hand parser: the same items read with std::from_chars, twice — a first pass
/// validates and finds the highest CPU, then the bitset is sized once and the second pass
/// sets (or clears) each item's CPUs with dynamic_bitset's range set.
RawBits fromchars_parse(std::string_view text) {
  struct Item {
    bool exclude;
    std::size_t lo, hi;
  };
  auto item = [](const char*& p, const char* end) {
    Item it{false, 0, 0};
    if (p != end && *p == '^') {
      it.exclude = true;
      ++p;
    }
    auto r = std::from_chars(p, end, it.lo);
    if (r.ec != std::errc()) throw std::invalid_argument("fromchars_parse: expected a number");
    p = r.ptr;
    it.hi = it.lo;
    if (p != end && *p == '-') {
      r = std::from_chars(p + 1, end, it.hi);
      if (r.ec != std::errc() || it.hi < it.lo) throw std::invalid_argument("fromchars_parse: bad range");
      p = r.ptr;
    }
    if (p != end && *p++ != ',') throw std::invalid_argument("fromchars_parse: expected ','");
    return it;
  };
  const char* const end = text.data() + text.size();
  std::size_t top = 0;
  for (const char* p = text.data(); p != end;) top = std::max(top, item(p, end).hi + 1);
  RawBits bits(top);
  for (const char* p = text.data(); p != end;) {
    const Item it = item(p, end);
    if (it.lo == it.hi) bits.set(it.lo, !it.exclude);
    else bits.set(it.lo, it.hi - it.lo + 1, !it.exclude);
  }
  return bits;
}

/// The format floor: runs found a word at a time with countr_zero, digits written with
/// std::to_chars into `buf` (allocated once by the caller, large enough for any list of
/// nbits CPUs), returned as a std::string of exactly their length.
std::string wordloop_format(const std::vector<std::uint64_t>& w, std::size_t nbits, std::vector<char>& buf) {
  char* p = buf.data();
  char* const end = buf.data() + buf.size();
  const std::size_t n = w.size();
  std::size_t i = 0;
  std::uint64_t word = n ? w[0] : 0;
  for (;;) {
    while (word == 0) {
      if (++i >= n) return std::string(buf.data(), p);
      word = w[i];
    }
    const std::size_t lo = i * 64 + static_cast<std::size_t>(std::countr_zero(word));
    std::uint64_t rest = ~word & (~std::uint64_t{0} << (lo % 64));
    while (rest == 0 && ++i < n) rest = ~w[i];
    const std::size_t stop = i >= n ? nbits : i * 64 + static_cast<std::size_t>(std::countr_zero(rest));
    if (p != buf.data()) *p++ = ',';
    p = std::to_chars(p, end, lo).ptr;
    if (stop - lo > 1) {
      *p++ = '-';
      p = std::to_chars(p, end, stop - 1).ptr;
    }
    if (i >= n) return std::string(buf.data(), p);
    word = w[i] & (~std::uint64_t{0} << (stop % 64));
  }
}

/// A buffer that holds any list of nbits CPUs (at most nbits/2 + 1 runs of two numbers).
std::vector<char> wordloop_buffer(std::size_t nbits) {
  return std::vector<char>((nbits / 2 + 1) * 2 * (std::to_string(nbits).size() + 1) + 1);
}

void raw_append_number(std::string& out, std::size_t n) {
  char buf[24];
  const auto r = std::to_chars(buf, buf + sizeof buf, n);
  out.append(buf, r.ptr);
}

/// Canonical list through find_first/find_next: a run ends where find_next skips a CPU.
std::string raw_format(const RawBits& bits) {
  std::string out;
  std::size_t i = bits.find_first();
  while (i != RawBits::npos) {
    const std::size_t start = i;
    std::size_t prev = i;
    while ((i = bits.find_next(prev)) != RawBits::npos && i == prev + 1) prev = i;
    if (!out.empty()) out += ',';
    raw_append_number(out, start);
    if (prev != start) {
      out += '-';
      raw_append_number(out, prev);
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------
// hwloc helpers.

struct HwlocBitmap {
  hwloc_bitmap_t p = hwloc_bitmap_alloc();
  HwlocBitmap() { if (!p) throw std::bad_alloc(); }
  HwlocBitmap(const HwlocBitmap&) = delete;
  HwlocBitmap& operator=(const HwlocBitmap&) = delete;
  ~HwlocBitmap() { hwloc_bitmap_free(p); }
};

std::string hwloc_format(hwloc_const_bitmap_t b) {
  char* s = nullptr;
  if (hwloc_bitmap_list_asprintf(&s, b) < 0) throw std::runtime_error("hwloc_bitmap_list_asprintf");
  std::string out(s);
  std::free(s);
  return out;
}

// ---------------------------------------------------------------------------------------
// Inputs and the data each benchmark works on.

struct Input {
  std::string name;
  std::string text;        // vcpumap and raw
  std::string hwloc_text;  // the same set in a syntax hwloc reads
};

std::vector<Input> make_inputs() {
  std::string alt;
  for (int cpu = 0; cpu <= 4094; cpu += 2) {
    if (!alt.empty()) alt += ',';
    alt += std::to_string(cpu);
  }
  return {
      {"small", "0-3,8-11", "0-3,8-11"},
      {"range4096", "0-4095", "0-4095"},
      {"alt4096", alt, alt},
      // hwloc_bitmap_list_sscanf has no '^' (exclusion): it gets the equivalent set written
      // out, "0-1,3,8-15". vcpumap and the raw parser both read the '^' form.
      {"excl", "0-3,^2,8-15", "0-1,3,8-15"},
  };
}

/// Two same-universe operands of the binary operations: the input, and the input with every
/// member moved up by one CPU (wrapping at the universe), in each implementation.
struct Operands {
  std::size_t universe = 0;
  std::vector<std::size_t> a_members, b_members;
  CpuMap va, vb;
  RawBits ra, rb;
  HwlocBitmap ha, hb;
  std::vector<std::uint64_t> words;  // a's words, for the word loop
};

std::unique_ptr<Operands> make_operands(const Input& in) {
  auto op = std::make_unique<Operands>();
  op->va = CpuMap::parse(in.text);
  op->universe = op->va.universe();
  for (std::size_t cpu : op->va) {
    op->a_members.push_back(cpu);
    op->b_members.push_back((cpu + 1) % op->universe);
  }
  op->vb = CpuMap(op->universe);
  op->ra.resize(op->universe);
  op->rb.resize(op->universe);
  for (std::size_t cpu : op->a_members) {
    op->ra.set(cpu);
    hwloc_bitmap_set(op->ha.p, static_cast<unsigned>(cpu));
  }
  for (std::size_t cpu : op->b_members) {
    op->vb.set(cpu);
    op->rb.set(cpu);
    hwloc_bitmap_set(op->hb.p, static_cast<unsigned>(cpu));
  }
  op->words.assign(op->va.words().begin(), op->va.words().end());
  return op;
}

[[noreturn]] void die(const std::string& what) {
  std::fprintf(stderr, "cpulist-bench: self-check failed: %s\n", what.c_str());
  std::exit(2);
}

/// Before timing anything: every implementation reads and writes the same set.
void self_check(const Input& in, const Operands& op) {
  const std::string expect = op.va.to_string();
  const RawBits raw = raw_parse(in.text);
  if (raw_format(raw) != expect) die(in.name + ": raw format \"" + raw_format(raw) + "\" != \"" + expect + "\"");
  if (raw != op.ra) die(in.name + ": raw parse differs from vcpumap");
  if (fromchars_parse(in.text) != op.ra) die(in.name + ": fromchars parse differs from vcpumap");
  std::vector<char> buf = wordloop_buffer(op.universe);
  if (wordloop_format(op.words, op.universe, buf) != expect) die(in.name + ": wordloop format differs from vcpumap");
  HwlocBitmap h;
  if (hwloc_bitmap_list_sscanf(h.p, in.hwloc_text.c_str()) != 0) die(in.name + ": hwloc cannot parse");
  if (!hwloc_bitmap_isequal(h.p, op.ha.p)) die(in.name + ": hwloc parse differs from vcpumap");
  if (hwloc_format(h.p) != expect) die(in.name + ": hwloc format \"" + hwloc_format(h.p) + "\" != \"" + expect + "\"");
  if (static_cast<std::size_t>(hwloc_bitmap_weight(op.ha.p)) != op.va.count() || op.ra.count() != op.va.count())
    die(in.name + ": counts differ");
  // The binary operations agree too.
  HwlocBitmap r;
  hwloc_bitmap_xor(r.p, op.ha.p, op.hb.p);
  const CpuMap vx = op.va ^ op.vb;
  if (static_cast<std::size_t>(hwloc_bitmap_weight(r.p)) != vx.count() || (op.ra ^ op.rb).count() != vx.count())
    die(in.name + ": xor differs");
}

// ---------------------------------------------------------------------------------------
// The benchmarks.

enum class Bin { and_, or_, xor_ };

void register_all(const std::vector<Input>& inputs, const std::vector<std::unique_ptr<Operands>>& ops) {
  using benchmark::DoNotOptimize;
  using benchmark::State;
  auto reg = [](const std::string& op, const std::string& impl, const Input& in, auto fn) {
    benchmark::RegisterBenchmark((op + "/" + impl + "/" + in.name).c_str(), fn);
  };

  // parse
  for (const Input& in : inputs) {
    reg("parse", "vcpumap", in, [&in](State& st) {
      for (auto _ : st) {
        CpuMap m = CpuMap::parse(in.text);
        DoNotOptimize(m);
      }
    });
    reg("parse", "hwloc", in, [&in](State& st) {
      HwlocBitmap b;  // hwloc parses into an existing bitmap (it empties it first)
      for (auto _ : st) {
        int rc = hwloc_bitmap_list_sscanf(b.p, in.hwloc_text.c_str());
        DoNotOptimize(rc);
        DoNotOptimize(b.p);
      }
    });
    reg("parse", "raw", in, [&in](State& st) {
      for (auto _ : st) {
        RawBits b = raw_parse(in.text);
        DoNotOptimize(b);
      }
    });
    reg("parse", "fromchars", in, [&in](State& st) {
      for (auto _ : st) {
        RawBits b = fromchars_parse(in.text);
        DoNotOptimize(b);
      }
    });
  }

  // format
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    const Input& in = inputs[i];
    const Operands& op = *ops[i];
    reg("format", "vcpumap", in, [&op](State& st) {
      for (auto _ : st) {
        std::string s = op.va.to_string();
        DoNotOptimize(s);
      }
    });
    reg("format", "hwloc", in, [&op](State& st) {
      // Into a buffer allocated once (hwloc's cheapest way); vcpumap and raw build a
      // std::string per call.
      std::vector<char> buf(1 << 16);
      for (auto _ : st) {
        int n = hwloc_bitmap_list_snprintf(buf.data(), buf.size(), op.ha.p);
        DoNotOptimize(n);
        DoNotOptimize(buf.data());
      }
    });
    reg("format", "raw", in, [&op](State& st) {
      for (auto _ : st) {
        std::string s = raw_format(op.ra);
        DoNotOptimize(s);
      }
    });
    reg("format", "wordloop", in, [&op](State& st) {
      std::vector<char> buf = wordloop_buffer(op.universe);
      for (auto _ : st) {
        DoNotOptimize(op.words.data());
        std::string s = wordloop_format(op.words, op.universe, buf);
        DoNotOptimize(s);
      }
    });
  }

  // and / or / xor in place, `r op= b` on a copy r of a made once, in all three (hwloc:
  // hwloc_bitmap_and(r, r, b)). xor toggles r between a^b and a; and/or reach their fixed
  // point at once; the work per call is the same. (No copy of a per iteration: a memmove
  // would dominate, and its speed depends on where the heap put the two buffers.)
  const std::pair<const char*, Bin> bins[] = {{"and", Bin::and_}, {"or", Bin::or_}, {"xor", Bin::xor_}};
  for (auto [name, kind] : bins) {
    for (std::size_t i = 0; i < inputs.size(); ++i) {
      const Input& in = inputs[i];
      const Operands& op = *ops[i];
      reg(name, "vcpumap", in, [&op, kind](State& st) {
        CpuMap r = op.va;
        for (auto _ : st) {
          switch (kind) {
            case Bin::and_: r &= op.vb; break;
            case Bin::or_: r |= op.vb; break;
            case Bin::xor_: r ^= op.vb; break;
          }
          DoNotOptimize(r);
        }
      });
      reg(name, "hwloc", in, [&op, kind](State& st) {
        HwlocBitmap r;
        hwloc_bitmap_copy(r.p, op.ha.p);
        for (auto _ : st) {
          switch (kind) {
            case Bin::and_: hwloc_bitmap_and(r.p, r.p, op.hb.p); break;
            case Bin::or_: hwloc_bitmap_or(r.p, r.p, op.hb.p); break;
            case Bin::xor_: hwloc_bitmap_xor(r.p, r.p, op.hb.p); break;
          }
          DoNotOptimize(r.p);
        }
      });
      reg(name, "raw", in, [&op, kind](State& st) {
        RawBits r = op.ra;
        for (auto _ : st) {
          switch (kind) {
            case Bin::and_: r &= op.rb; break;
            case Bin::or_: r |= op.rb; break;
            case Bin::xor_: r ^= op.rb; break;
          }
          DoNotOptimize(r);
        }
      });
    }
  }

  // andnew: a & b into a fresh result each time (the value-returning operators; hwloc
  // allocates, ands and frees).
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    const Input& in = inputs[i];
    const Operands& op = *ops[i];
    reg("andnew", "vcpumap", in, [&op](State& st) {
      for (auto _ : st) {
        CpuMap r = op.va & op.vb;
        DoNotOptimize(r);
      }
    });
    reg("andnew", "hwloc", in, [&op](State& st) {
      for (auto _ : st) {
        hwloc_bitmap_t r = hwloc_bitmap_alloc();
        hwloc_bitmap_and(r, op.ha.p, op.hb.p);
        DoNotOptimize(r);
        hwloc_bitmap_free(r);
      }
    });
    reg("andnew", "raw", in, [&op](State& st) {
      for (auto _ : st) {
        RawBits r = op.ra & op.rb;
        DoNotOptimize(r);
      }
    });
  }

  // count
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    const Input& in = inputs[i];
    const Operands& op = *ops[i];
    reg("count", "vcpumap", in, [&op](State& st) {
      for (auto _ : st) {
        DoNotOptimize(op.va);
        std::size_t n = op.va.count();
        DoNotOptimize(n);
      }
    });
    reg("count", "hwloc", in, [&op](State& st) {
      for (auto _ : st) {
        int n = hwloc_bitmap_weight(op.ha.p);
        DoNotOptimize(n);
      }
    });
    reg("count", "raw", in, [&op](State& st) {
      for (auto _ : st) {
        DoNotOptimize(op.ra);
        std::size_t n = op.ra.count();
        DoNotOptimize(n);
      }
    });
  }

  // iterate: the sum of the members.
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    const Input& in = inputs[i];
    const Operands& op = *ops[i];
    reg("iterate", "vcpumap", in, [&op](State& st) {
      for (auto _ : st) {
        DoNotOptimize(op.va);
        std::size_t sum = 0;
        for (std::size_t cpu : op.va) sum += cpu;
        DoNotOptimize(sum);
      }
    });
    reg("iterate", "hwloc", in, [&op](State& st) {
      // hwloc_bitmap_foreach_begin() is this loop plus an assert() that computes the weight
      // when NDEBUG is unset (as in this build): the bare loop is hwloc's fast path.
      for (auto _ : st) {
        std::size_t sum = 0;
        for (int cpu = hwloc_bitmap_first(op.ha.p); cpu != -1; cpu = hwloc_bitmap_next(op.ha.p, cpu))
          sum += static_cast<std::size_t>(cpu);
        DoNotOptimize(sum);
      }
    });
    reg("iterate", "raw", in, [&op](State& st) {
      for (auto _ : st) {
        DoNotOptimize(op.ra);
        std::size_t sum = 0;
        for (std::size_t cpu = op.ra.find_first(); cpu != RawBits::npos; cpu = op.ra.find_next(cpu)) sum += cpu;
        DoNotOptimize(sum);
      }
    });
    reg("iterate", "wordloop", in, [&op](State& st) {
      for (auto _ : st) {
        DoNotOptimize(op.words.data());
        std::size_t sum = 0;
        const std::vector<std::uint64_t>& w = op.words;
        for (std::size_t k = 0; k < w.size(); ++k)
          for (std::uint64_t word = w[k]; word != 0; word &= word - 1)
            sum += k * 64 + static_cast<std::size_t>(std::countr_zero(word));
        DoNotOptimize(sum);
      }
    });
  }
}


std::string cell(double x, int prec = 2) {
  if (std::isnan(x)) return "-";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.*f", prec, x);
  return buf;
}

/// What one CpuMap::parse of a text costs in memory: operator new calls, and the words its
/// storage holds against those it needs.
struct ParseCost {
  std::size_t allocations = 0, capacity_words = 0, needed_words = 0;
};
ParseCost parse_cost(const std::string& text) {
  const std::size_t before = vcpumap_test::allocations;
  const CpuMap m = CpuMap::parse(text);
  return {vcpumap_test::allocations - before, m.bits().capacity() / 64, m.words().size()};
}

/// The build this program was compiled in, and what vcpumap's run-time dispatch may use here.
std::string build_description() {
  std::string d = VCPUMAP_BENCH_BUILD;
  d += "; compiler " __VERSION__;
  d += "; compiled for";
#if defined(__POPCNT__)
  d += " popcnt";
#endif
#if defined(__AVX2__)
  d += " avx2";
#endif
#if !defined(__POPCNT__) && !defined(__AVX2__)
  d += " baseline ISA (no popcnt, no avx2)";
#endif
  const vcpumap::detail::Isa isa = vcpumap::detail::cpu_isa();
  d += std::string("; this CPU: popcnt ") + (isa.popcnt ? "yes" : "no") + ", avx2 " + (isa.avx2 ? "yes" : "no") +
       " (used through run-time dispatch)";
  return d;
}

void print_table(const RatioReporter& rep, const std::vector<Input>& inputs, const std::vector<ParseCost>& costs) {
  const char* const ops[] = {"parse", "format", "and", "or", "xor", "andnew", "count", "iterate"};
  std::printf("\nvcpumap time / other time (CPU time per operation; < 1.00: vcpumap faster)\n");
  std::printf("build: %s\n", build_description().c_str());
  std::printf("vcpumap, raw, fromchars and wordloop are compiled in this build; hwloc is Debian's libhwloc "
              "(-O2, as packaged)\n");
  double load[1] = {0};
  if (getloadavg(load, 1) == 1)
    std::printf("load average now %.2f on %ld CPUs: a busy machine makes the ratios noisy\n", load[0],
                sysconf(_SC_NPROCESSORS_ONLN));
  std::printf("strong = the strong baseline: fromchars (parse), wordloop (format, iterate)\n\n");
  std::printf("%-8s %-10s %12s %12s %12s %12s %10s %10s %10s\n", "op", "input", "vcpumap ns", "hwloc ns",
              "raw ns", "strong ns", "/hwloc", "/raw", "/strong");
  auto t = [&](const std::string& op, const std::string& impl, const Input& in) {
    return rep.time(op + "/" + impl + "/" + in.name);
  };
  auto strong = [&](const std::string& op, const Input& in) {
    return op == "parse" ? t(op, "fromchars", in) : t(op, "wordloop", in);
  };
  bool any = false;
  for (const char* op : ops) {
    for (const Input& in : inputs) {
      const double v = t(op, "vcpumap", in), h = t(op, "hwloc", in), r = t(op, "raw", in), w = strong(op, in);
      if (std::isnan(v) && std::isnan(h) && std::isnan(r)) continue;
      any = true;
      std::printf("%-8s %-10s %12s %12s %12s %12s %10s %10s %10s\n", op, in.name.c_str(), cell(v, 1).c_str(),
                  cell(h, 1).c_str(), cell(r, 1).c_str(), cell(w, 1).c_str(), cell(v / h).c_str(),
                  cell(v / r).c_str(), cell(v / w).c_str());
    }
  }
  std::printf("\nCpuMap::parse memory (counted once, outside the timings):\n");
  for (std::size_t i = 0; i < inputs.size(); ++i)
    std::printf("  %-10s %zu allocation(s), %zu words held for %zu needed\n", inputs[i].name.c_str(),
                costs[i].allocations, costs[i].capacity_words, costs[i].needed_words);
  if (!any) return;

  // The targets: reported, not asserted.
  std::printf("\ntargets for this build (%s)\n"
              "(reported only; benchmarks that did not run are skipped; a MISS by under 5%% is within what\n"
              "this benchmark resolves between runs, and is marked so)\n",
              VCPUMAP_BENCH_BUILD);
  auto target = [](const std::string& what, double ratio, double limit) {
    if (std::isnan(ratio)) return;
    const char* verdict = ratio <= limit ? "MET " : "MISS";
    std::printf("  %s %-58s ratio %5.2f (need <= %.2f)%s\n", verdict, what.c_str(), ratio, limit,
                ratio > limit && ratio <= limit * 1.05 ? " (within noise)" : "");
  };
  const Input* alt = nullptr;
  const ParseCost* alt_cost = nullptr;
  for (std::size_t i = 0; i < inputs.size(); ++i)
    if (inputs[i].name == "alt4096") {
      alt = &inputs[i];
      alt_cost = &costs[i];
    }
  std::printf(" issue 14 (close the remaining misses):\n");
  if (alt) {
    target("format/alt4096: <= 1.1x the word-loop floor", t("format", "vcpumap", *alt) / t("format", "wordloop", *alt),
           1.1);
    target("parse/alt4096: <= 0.30x hwloc", t("parse", "vcpumap", *alt) / t("parse", "hwloc", *alt), 0.30);
    std::printf("  %s %-58s %zu allocation(s), %zu words of slack (need 1, 0)\n",
                alt_cost->allocations == 1 && alt_cost->capacity_words == alt_cost->needed_words ? "MET " : "MISS",
                "parse/alt4096: one allocation, no slack kept", alt_cost->allocations,
                alt_cost->capacity_words - alt_cost->needed_words);
  }
  for (const Input& in : inputs)
    if (in.name == "range4096" || in.name == "alt4096")
      target("count/" + in.name + ": <= 0.30x hwloc", t("count", "vcpumap", in) / t("count", "hwloc", in), 0.30);
  std::printf(" against the strong baselines:\n");
  for (const Input& in : inputs)
    target("parse/" + in.name + ": no slower than the from_chars parser",
           t("parse", "vcpumap", in) / t("parse", "fromchars", in), 1.0);
  for (const char* op : {"format", "iterate"})
    for (const Input& in : inputs)
      target(std::string(op) + "/" + in.name + ": no slower than the word loop",
             t(op, "vcpumap", in) / t(op, "wordloop", in), 1.0);
  std::printf(" earlier targets:\n");
  if (alt)
    for (const char* op : {"parse", "format"})
      target(std::string(op) + "/alt4096: >= 3x faster than hwloc", t(op, "vcpumap", *alt) / t(op, "hwloc", *alt),
             1.0 / 3);
  for (const char* op : ops)
    for (const Input& in : inputs)
      target(std::string(op) + "/" + in.name + ": no slower than raw", t(op, "vcpumap", in) / t(op, "raw", in), 1.0);
  for (const Input& in : inputs)
    target("count/" + in.name + ": no slower than hwloc", t("count", "vcpumap", in) / t("count", "hwloc", in), 1.0);
}

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;

  const std::vector<Input> inputs = make_inputs();
  std::vector<std::unique_ptr<Operands>> ops;
  std::vector<ParseCost> costs;
  for (const Input& in : inputs) {
    ops.push_back(make_operands(in));
    self_check(in, *ops.back());
    costs.push_back(parse_cost(in.text));
  }
  register_all(inputs, ops);

  RatioReporter reporter(isatty(STDOUT_FILENO) ? benchmark::ConsoleReporter::OO_ColorTabular
                                               : benchmark::ConsoleReporter::OO_Tabular);
  benchmark::RunSpecifiedBenchmarks(&reporter);
  print_table(reporter, inputs, costs);
  std::fflush(stdout);
  benchmark::Shutdown();
  return 0;
}
