// fuzz-cpulist — libFuzzer target for the cpulist reader and the text/byte writers.
//
// Input layout: byte 0 picks the ParseOptions, the rest is the text.
//
//   bits 0-1  form        0 list, 1 sysfs_mask, 2 hex, 3 yn
//   bits 2-3  dialect     0 strict, 1 standard, 2 compat, 3 compat read into a VcpuSet
//                         (the vcpu type: "node:" must be refused)
//   bit  4    exclusion   0 in_order, 1 after_inclusions
//   bits 5-6  universe    0 none (limit 4096), 1 301 CPUs (0..300), 2 4096 CPUs, 3 empty (0)
//   bit  7    numa_nodes  1: two nodes, {0-31,64-95} and {32-63,96-127,290-300}
//
// Checked on every input, __builtin_trap() on a violation (after printing what failed):
// - parse() throws ParseError exactly when try_parse() fails, with the same column and reason,
//   and the column is in 1 .. length + 1;
// - a plain list (digits, '-', ',', '^') reads the same through the fast path as through the
//   general reader (the same text with a space after each comma);
// - a parsed set has the requested universe, no bits beyond it, and count() equals the number
//   of members iterated (ascending, each test()-able, first()/last() agreeing);
// - round trips: for every TextForm f, parse(m.to_string(f), {form for f, universe m.universe()})
//   == m (list and xl_list read back as TextForm::list; the list output also in
//   Dialect::strict and, without a universe, holding the same members); and
//   from_bytes(to_bytes(m), m.universe()) == m.
//
//   build-fuzz/tests/fuzz/fuzz-cpulist -max_total_time=60 CORPUS_DIR ../tests/fuzz/corpus
//   build-fuzz/tests/fuzz/fuzz-cpulist crash-file        # replay one input
#include <vcpumap/cpu_map.hpp>
#include <vcpumap/cpulist.hpp>

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace {

using vcpumap::CpuMap;
using vcpumap::Dialect;
using vcpumap::Exclusion;
using vcpumap::ParseFailure;
using vcpumap::ParseOptions;
using vcpumap::TextForm;

std::string_view g_text;  // the input under test, for the report

std::string printable(std::string_view s) {
  std::string out;
  for (unsigned char c : s.substr(0, 200)) {
    if (c >= 0x20 && c < 0x7f && c != '\\' && c != '"') {
      out += static_cast<char>(c);
    } else {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    }
  }
  if (s.size() > 200) out += "...";
  return out;
}

[[noreturn]] void violated(const char* check, int line, const std::string& detail) {
  std::fprintf(stderr, "fuzz-cpulist: check failed (line %d): %s\n  input text: \"%s\"\n%s%s", line, check,
               printable(g_text).c_str(), detail.empty() ? "" : "  ", detail.c_str());
  if (!detail.empty()) std::fputc('\n', stderr);
  __builtin_trap();
}

#define CHECK(cond, detail)                              \
  do {                                                   \
    if (!(cond)) violated(#cond, __LINE__, (detail));    \
  } while (0)

const char* form_name(TextForm f) {
  switch (f) {
    case TextForm::list: return "list";
    case TextForm::xl_list: return "xl_list";
    case TextForm::sysfs_mask: return "sysfs_mask";
    case TextForm::hex: return "hex";
    case TextForm::yn: return "yn";
  }
  return "?";
}

/// The form that reads back what to_string(f) wrote.
TextForm read_form(TextForm f) { return f == TextForm::xl_list ? TextForm::list : f; }

const std::array<CpuMap, 2>& numa_table() {
  static const std::array<CpuMap, 2> nodes = {CpuMap::parse("0-31,64-95"), CpuMap::parse("32-63,96-127,290-300")};
  return nodes;
}

/// The set for a report, written from its iteration rather than by the writers under test.
template <class Set>
std::string describe(const Set& m) {
  std::string members;
  std::size_t shown = 0, run_start = 0, run_end = 0;
  bool in_run = false;
  auto flush = [&] {
    if (!in_run) return;
    if (!members.empty()) members += ',';
    members += std::to_string(run_start);
    if (run_end != run_start) members += "-" + std::to_string(run_end);
  };
  for (std::size_t cpu : m) {
    if (in_run && cpu == run_end + 1) {
      run_end = cpu;
      continue;
    }
    flush();
    if (++shown > 40) {
      members += ",...";
      in_run = false;
      break;
    }
    in_run = true;
    run_start = run_end = cpu;
  }
  flush();
  return "set of universe " + std::to_string(m.universe()) + " holding {" + members + "}";
}

template <class Set>
void check_round_trips(const Set& m) {
  // Storage invariants: one word per 64 CPUs, nothing beyond the universe.
  const auto w = m.words();
  CHECK(w.size() == vcpumap::detail::blocks_for(m.universe()), describe(m));
  CHECK(w.empty() || (w.back() & ~vcpumap::detail::last_block_mask(m.universe())) == 0, describe(m));

  // Iteration agrees with count(), test(), first() and last().
  std::size_t members = 0;
  std::optional<std::size_t> first, last;
  for (std::size_t cpu : m) {
    CHECK(cpu < m.universe(), describe(m));
    CHECK(!last || cpu > *last, describe(m));
    CHECK(m.test(cpu), describe(m));
    if (!first) first = cpu;
    last = cpu;
    ++members;
  }
  CHECK(members == m.count(), describe(m) + ", " + std::to_string(members) + " iterated, count() " +
                                  std::to_string(m.count()));
  CHECK(m.first() == first && m.last() == last, describe(m));
  CHECK(m.empty() == (members == 0), describe(m));

  // Every text form reads back to the same set in the same universe.
  for (TextForm f : {TextForm::list, TextForm::xl_list, TextForm::sysfs_mask, TextForm::hex, TextForm::yn}) {
    const std::string text = m.to_string(f);
    ParseOptions back{.form = read_form(f), .universe = m.universe()};
    ParseFailure why;
    const std::optional<Set> r = Set::try_parse(text, back, &why);
    CHECK(r.has_value(), describe(m) + "; " + form_name(f) + " output \"" + printable(text) +
                             "\" does not read back: column " + std::to_string(why.column) + ": " +
                             std::string(why.reason));
    CHECK(*r == m, describe(m) + "; " + form_name(f) + " output \"" + printable(text) + "\" reads back as " +
                       describe(*r));
    if (f == TextForm::list) {
      back.dialect = Dialect::strict;
      const std::optional<Set> s = Set::try_parse(text, back, &why);
      CHECK(s.has_value(), describe(m) + "; list output \"" + printable(text) +
                               "\" is not strict: column " + std::to_string(why.column) + ": " +
                               std::string(why.reason));
      CHECK(*s == m, describe(m) + "; strict reading of \"" + printable(text) + "\" gives " + describe(*s));
      // Without a universe: the same members, in the smallest universe holding them.
      const std::optional<Set> u = Set::try_parse(text, ParseOptions{}, &why);
      CHECK(u.has_value(), describe(m) + "; \"" + printable(text) + "\" without a universe: column " +
                               std::to_string(why.column) + ": " + std::string(why.reason));
      CHECK(same_members(*u, m) && u->universe() == (last ? *last + 1 : 0),
            describe(m) + "; without a universe \"" + printable(text) + "\" reads as " + describe(*u));
    }
  }

  // next() agrees with iteration (for the first members: each next() may scan the words).
  std::size_t seen = 0;
  std::optional<std::size_t> prev;
  for (std::size_t cpu : m) {
    if (++seen > 64) break;
    CHECK(m.next(prev ? *prev + 1 : 0) == cpu, describe(m) + ", next() after " + std::to_string(prev.value_or(0)));
    CHECK(m.next(cpu) == cpu, describe(m));
    prev = cpu;
  }
  if (seen <= 64) CHECK(!m.next(prev ? *prev + 1 : 0).has_value() || m.universe() == 0, describe(m));

  // Set algebra against the complement.
  const Set c = ~m;
  CHECK(c.universe() == m.universe() && ~c == m, describe(m) + "; complement " + describe(c));
  CHECK(m.count() + c.count() == m.universe(), describe(m));
  CHECK((m & c).empty() && (m | c) == Set::full(m.universe()) && (m ^ c) == Set::full(m.universe()), describe(m));
  CHECK((m - m).empty() && (m - c) == m && (m & m) == m && (m | m) == m && (m ^ m).empty(), describe(m));
  CHECK(!m.intersects(c) && m.is_subset_of(m) && (m.empty() || !m.is_subset_of(c)), describe(m));
  CHECK(m.all() == c.empty() && m.any() == !m.empty(), describe(m));

  // The libvirt byte layout.
  const std::vector<std::uint8_t> bytes = m.to_bytes();
  CHECK(bytes.size() == (m.universe() + 7) / 8, describe(m));
  CHECK(Set::from_bytes(bytes, m.universe()) == m, describe(m));
}

/// A plain list of digits, '-', ',' and '^' may take the reader's fast path; with a space
/// after each comma it takes the general reader. Both must accept the same texts and read
/// the same sets.
template <class Set>
void check_fast_path(std::string_view text, const ParseOptions& options, const std::optional<Set>& got) {
  if (options.form != TextForm::list || options.dialect == Dialect::strict || text.empty() ||
      text.find_first_not_of("0123456789,-^") != std::string_view::npos)
    return;
  std::string spaced;
  for (char c : text) {
    spaced += c;
    if (c == ',') spaced += ' ';
  }
  const std::optional<Set> slow = Set::try_parse(spaced, options);
  CHECK(got.has_value() == slow.has_value(),
        std::string("\"") + printable(spaced) + "\" (the general reader) " + (slow ? "reads" : "refuses") + " it");
  if (got) CHECK(*got == *slow, describe(*got) + "; the general reader: " + describe(*slow));
}

template <class Set>
void run(std::string_view text, const ParseOptions& options) {
  ParseFailure failure;
  const std::optional<Set> got = Set::try_parse(text, options, &failure);
  check_fast_path(text, options, got);

  // parse() throws exactly when try_parse() fails, and says the same thing.
  bool threw = false;
  try {
    const Set p = Set::parse(text, options);
    CHECK(got.has_value(), "parse() succeeded where try_parse() failed at column " +
                               std::to_string(failure.column) + ": " + std::string(failure.reason));
    CHECK(p == *got, "parse() and try_parse() read different sets");
  } catch (const vcpumap::ParseError& e) {
    threw = true;
    CHECK(!got.has_value(), std::string("parse() threw where try_parse() succeeded: ") + e.what());
    CHECK(e.column() == failure.column && e.reason() == failure.reason,
          std::string("parse() threw \"") + e.what() + "\", try_parse() said column " +
              std::to_string(failure.column) + ": " + std::string(failure.reason));
    CHECK(e.code() == vcpumap::ErrorCode::invalid_argument, e.what());
  }
  if (!got) {
    CHECK(threw, "");
    CHECK(failure.column >= 1 && failure.column <= text.size() + 1,
          "column " + std::to_string(failure.column) + " outside 1.." + std::to_string(text.size() + 1) + ": " +
              std::string(failure.reason));
    CHECK(!failure.reason.empty(), "");
    return;
  }
  if (options.universe) CHECK(got->universe() == *options.universe, describe(*got));
  check_round_trips(*got);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::uint8_t sel = data[0];
  const std::string_view text(reinterpret_cast<const char*>(data + 1), size - 1);
  g_text = text;

  ParseOptions options;
  static constexpr TextForm forms[] = {TextForm::list, TextForm::sysfs_mask, TextForm::hex, TextForm::yn};
  options.form = forms[sel & 3];
  const unsigned dialect = (sel >> 2) & 3;
  options.dialect = dialect == 0 ? Dialect::strict : dialect == 1 ? Dialect::standard : Dialect::compat;
  options.exclusion = (sel >> 4) & 1 ? Exclusion::after_inclusions : Exclusion::in_order;
  switch ((sel >> 5) & 3) {
    case 0: options.limit = 4096; break;  // no universe; a low limit keeps each run cheap
    case 1: options.universe = 301; break;
    case 2: options.universe = 4096; break;
    case 3: options.universe = 0; break;
  }
  if (sel & 0x80) options.numa_nodes = numa_table();

  if (dialect == 3)
    run<vcpumap::VcpuSet>(text, options);
  else
    run<CpuMap>(text, options);
  return 0;
}
