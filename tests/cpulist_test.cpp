#include <vcpumap/cpulist.hpp>

#include <algorithm>
#include <chrono>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "random_maps.hpp"

using vcpumap::CpuMap;
using vcpumap::Dialect;
using vcpumap::Exclusion;
using vcpumap::ParseError;
using vcpumap::ParseOptions;
using vcpumap::TextForm;
using vcpumap::VcpuSet;

namespace {

std::vector<std::size_t> members(const CpuMap& m) { return {m.begin(), m.end()}; }
std::vector<std::size_t> parsed(std::string_view text, const ParseOptions& options = {}) {
  return members(CpuMap::parse(text, options));
}
using V = std::vector<std::size_t>;

/// The ParseError of text under options: its what(), checked to quote the input.
std::string error_of(std::string_view text, const ParseOptions& options = {}) {
  try {
    (void)CpuMap::parse(text, options);
  } catch (const ParseError& e) {
    vcpumap::ParseFailure failure;
    CHECK(!CpuMap::try_parse(text, options, &failure));  // the non-throwing form agrees
    CHECK(failure.column == e.column());
    CHECK(failure.out_of_range == e.out_of_range());
    CHECK(e.code() == vcpumap::ErrorCode::invalid_argument);
    CHECK(e.input() == text);
    return e.what();
  }
  FAIL("no ParseError for \"" << std::string(text) << "\"");
  return {};
}

const ParseOptions strict{.dialect = Dialect::strict};
const ParseOptions compat8{.dialect = Dialect::compat, .universe = 8};
ParseOptions universe(std::size_t n) { return {.universe = n}; }

}  // namespace

TEST_CASE("plain lists: N and N-M", "[cpulist]") {
  CHECK(parsed("0") == V{0});
  CHECK(parsed("0-3,8-11") == V{0, 1, 2, 3, 8, 9, 10, 11});
  CHECK(parsed("5,1,3-4") == V{1, 3, 4, 5});
  CHECK(parsed("3-3") == V{3});
  CHECK(parsed("0-3,2-5") == V{0, 1, 2, 3, 4, 5});
  CHECK(parsed("007") == V{7});
  // The universe of a parsed list: the highest CPU named + 1, unless options give one.
  CHECK(CpuMap::parse("0-3,8-11").universe() == 12);
  CHECK(CpuMap::parse("0-3", universe(64)).universe() == 64);
  CHECK(CpuMap::parse("").universe() == 0);
}

TEST_CASE("the empty set reads back from its canonical text", "[cpulist]") {
  CHECK(CpuMap::parse("").empty());
  CHECK(CpuMap::parse("   ").empty());
  CHECK(CpuMap::parse("", strict).empty());
  CHECK(CpuMap::parse("", universe(16)) == CpuMap(16));
}

TEST_CASE("whitespace around items is tolerated outside strict mode", "[cpulist]") {
  CHECK(parsed(" 0-3 , 5\t,7 ") == V{0, 1, 2, 3, 5, 7});
  CHECK(parsed("0-3\n") == V{0, 1, 2, 3});  // what sysfs files end with
  CHECK_THAT(error_of("^ 2", universe(4)), Catch::Contains("column 2: expected a number"));  // inside an item
  CHECK_THAT(error_of("0 - 3"), Catch::Contains("column 3: expected ',' or the end of the list"));
  CHECK_THAT(error_of(" 1", strict), Catch::Contains("column 1: space in a strict cpulist"));
  CHECK_THAT(error_of("1, 2", strict), Catch::Contains("column 3: expected a number"));
}

TEST_CASE("exclusions apply in order (libvirt, xl)", "[cpulist]") {
  CHECK(parsed("0-3,^2,8-15") == V{0, 1, 3, 8, 9, 10, 11, 12, 13, 14, 15});
  CHECK(parsed("0-7,^2-5") == V{0, 1, 6, 7});
  CHECK(parsed("0-3,^2,2") == V{0, 1, 2, 3});  // in order: the later 2 wins
  CHECK(parsed("0-3,^9") == V{0, 1, 2, 3});
  CHECK(CpuMap::parse("0-3,^9").universe() == 10);   // an excluded CPU is still named
  // A list that starts with an exclusion starts from every CPU (xl).
  CHECK(parsed("^0", universe(4)) == V{1, 2, 3});
  CHECK(parsed("^0-1,^3", universe(6)) == V{2, 4, 5});
  CHECK_THAT(error_of("^0"), Catch::Contains("column 1: a list that starts with an exclusion needs a universe"));
}

TEST_CASE("order-independent exclusion (Nova) is an option", "[cpulist]") {
  const ParseOptions nova{.exclusion = Exclusion::after_inclusions};
  CHECK(parsed("0-3,^2,2", nova) == V{0, 1, 3});
  CHECK(parsed("^2,0-3", nova) == V{0, 1, 3});  // no universe needed: there are inclusions
  CHECK(parsed("^2", ParseOptions{.exclusion = Exclusion::after_inclusions, .universe = 4}) == V{0, 1, 3});
  CHECK_THAT(error_of("^2", nova), Catch::Contains("column 1: a list of exclusions only needs a universe"));
  CHECK(parsed("^1-2,0-7,^6", ParseOptions{.exclusion = Exclusion::after_inclusions, .universe = 8}) ==
        V{0, 3, 4, 5, 7});
}

TEST_CASE("kernel strides N-M:used/group", "[cpulist]") {
  CHECK(parsed("0-15:2/4") == V{0, 1, 4, 5, 8, 9, 12, 13});
  CHECK(parsed("0-9:1/3") == V{0, 3, 6, 9});
  CHECK(parsed("0-6:3/3") == V{0, 1, 2, 3, 4, 5, 6});
  CHECK(parsed("0-3:2/5") == V{0, 1});
  CHECK(parsed("0-15,^0-15:1/2") == V{1, 3, 5, 7, 9, 11, 13, 15});
  CHECK_THAT(error_of("0-15:3/2"), Catch::Contains("column 5: bad stride (need 1 <= used <= group)"));
  CHECK_THAT(error_of("0-15:0/2"), Catch::Contains("bad stride"));
  CHECK_THAT(error_of("0-15:2"), Catch::Contains("column 7: expected '/' in a stride"));
  CHECK_THAT(error_of("0-15:2/"), Catch::Contains("column 8: expected a number, found the end"));
  CHECK_THAT(error_of("0-15:2/4", strict), Catch::Contains("column 5: stride in a strict cpulist"));
}

TEST_CASE("all and none", "[cpulist]") {
  CHECK(parsed("all", universe(4)) == V{0, 1, 2, 3});
  CHECK(parsed("none", universe(4)).empty());
  CHECK(CpuMap::parse("none", universe(4)).universe() == 4);
  CHECK(parsed("none").empty());
  CHECK(parsed("all,^1", universe(3)) == V{0, 2});
  CHECK(parsed("all", universe(0)).empty());
  CHECK_THAT(error_of("all"), Catch::Contains("column 1: 'all' needs a universe"));
  CHECK_THAT(error_of("all", ParseOptions{.dialect = Dialect::strict, .universe = 4}),
             Catch::Contains("column 1: 'all'/'none' in a strict cpulist"));
}

TEST_CASE("hex masks: taskset's 0x form in lists, bare hex with TextForm::hex", "[cpulist]") {
  CHECK(parsed("0xff") == V{0, 1, 2, 3, 4, 5, 6, 7});
  CHECK(parsed("0x5") == V{0, 2});
  CHECK(parsed("0X10000000000000001") == V{0, 64});
  CHECK(CpuMap::parse("0xff").universe() == 8);
  CHECK(parsed("0x0").empty());
  CHECK(parsed("f0", ParseOptions{.form = TextForm::hex}) == V{4, 5, 6, 7});
  CHECK(parsed("0xf0", ParseOptions{.form = TextForm::hex}) == V{4, 5, 6, 7});
  CHECK(parsed("0x00f", universe(4)) == V{0, 1, 2, 3});
  CHECK_THAT(error_of("0x1f", universe(4)), Catch::Contains("column 3: CPU number beyond the universe"));
  CHECK_THAT(error_of("0xfg"), Catch::Contains("column 4: expected a hex digit"));
  CHECK_THAT(error_of("0x"), Catch::Contains("column 3: expected hex digits"));
  CHECK_THAT(error_of("0xff", strict), Catch::Contains("column 2: expected ',' or the end of the list"));
}

TEST_CASE("sysfs masks only when asked for", "[cpulist]") {
  const ParseOptions sysfs{.form = TextForm::sysfs_mask};
  CHECK(parsed("ff,ffffffff", sysfs).size() == 40);
  CHECK(parsed("00000001,00000003", sysfs) == V{0, 1, 32});
  CHECK(parsed("3\n", sysfs) == V{0, 1});
  CHECK(CpuMap::parse("00000000,00000003", sysfs).universe() == 64);
  CHECK(parsed("11") == V{11});  // as a list, "11" is CPU 11
  CHECK(parsed("11", sysfs) == V{0, 4});
  CHECK_THAT(error_of("1,,3", sysfs), Catch::Contains("column 3: empty mask group"));
  CHECK_THAT(error_of("1,123", sysfs), Catch::Contains("column 3: mask group shorter than 8 hex digits"));
  CHECK_THAT(error_of("123456789", sysfs), Catch::Contains("column 1: mask group longer than 8 hex digits"));
  CHECK_THAT(error_of("ff,fffffffg", sysfs), Catch::Contains("column 11: expected a hex digit"));
  CHECK_THAT(error_of("1,00000000", ParseOptions{.form = TextForm::sysfs_mask, .universe = 32}),
             Catch::Contains("column 1: CPU number beyond the universe"));
  CHECK_THAT(error_of("", sysfs), Catch::Contains("column 1: expected a mask"));
}

TEST_CASE("virsh y- strings", "[cpulist]") {
  const ParseOptions yn{.form = TextForm::yn};
  CHECK(parsed("yy--y", yn) == V{0, 1, 4});
  CHECK(CpuMap::parse("yy--y", yn).universe() == 5);
  CHECK(CpuMap::parse("----", yn) == CpuMap(4));
  CHECK(parsed("y-y", ParseOptions{.form = TextForm::yn, .universe = 8}) == V{0, 2});
  CHECK(parsed("yy--y", compat8) == V{0, 1, 4});  // compat recognises them in a list
  CHECK_THAT(error_of("yy--y"), Catch::Contains("column 1: expected a number"));
  CHECK_THAT(error_of("yyn", yn), Catch::Contains("column 3: expected 'y' or '-'"));
  CHECK_THAT(error_of("---y", ParseOptions{.form = TextForm::yn, .universe = 3}),
             Catch::Contains("column 4: CPU number beyond the universe"));
}

TEST_CASE("compat mode: hwloc's open ranges and the kernel's N", "[cpulist]") {
  CHECK(parsed("5-", compat8) == V{5, 6, 7});
  CHECK(parsed("0-N", compat8) == V{0, 1, 2, 3, 4, 5, 6, 7});
  CHECK(parsed("N", compat8) == V{7});
  CHECK(parsed("0-N:1/4", compat8) == V{0, 4});
  CHECK_THAT(error_of("5-", ParseOptions{.dialect = Dialect::compat}),
             Catch::Contains("column 3: open range 'N-' needs a universe"));
  CHECK_THAT(error_of("5-", universe(8)), Catch::Contains("column 3: expected a CPU number after '-'"));
  CHECK_THAT(error_of("0-N", universe(8)), Catch::Contains("column 3: expected a CPU number after '-'"));
}

TEST_CASE("NUMA nodes through the topology hook", "[cpulist]") {
  const std::vector<CpuMap> nodes{CpuMap(8, {0, 1, 2, 3}), CpuMap(8, {4, 5, 6, 7})};
  const ParseOptions topo{.universe = 8, .numa_nodes = nodes};
  CHECK(parsed("node:1", topo) == V{4, 5, 6, 7});
  CHECK(parsed("nodes:0-1,^node:0", topo) == V{4, 5, 6, 7});
  CHECK(parsed("node:0,^2", topo) == V{0, 1, 3});
  CHECK(parsed("^node:0", topo) == V{4, 5, 6, 7});
  CHECK_THAT(error_of("node:2", topo), Catch::Contains("column 6: no such NUMA node"));
  CHECK_THAT(error_of("node:0"), Catch::Contains("column 1: 'node:' needs the host's NUMA topology"));
  CHECK_THAT(error_of("node:1", ParseOptions{.universe = 6, .numa_nodes = nodes}),
             Catch::Contains("NUMA node holds a CPU beyond the universe"));
  try {
    (void)VcpuSet::parse("node:0", topo);
    FAIL("vcpus parsed a node");
  } catch (const ParseError& e) {
    CHECK_THAT(e.what(), Catch::Contains("'node:' names physical CPUs, not vcpus"));
  }
}

TEST_CASE("every class of error names the column and the reason", "[cpulist][errors]") {
  CHECK(error_of("0-3,x") == "cpulist \"0-3,x\": column 5: expected a number");
  CHECK(error_of("1,,2") == "cpulist \"1,,2\": column 3: empty item");
  CHECK(error_of("1,") == "cpulist \"1,\": column 3: empty item");
  CHECK(error_of(",1") == "cpulist \",1\": column 1: empty item");
  CHECK(error_of("5-3") == "cpulist \"5-3\": column 1: reversed range");
  CHECK(error_of("99999999999999999999") == "cpulist \"99999999999999999999\": column 1: number too large");
  CHECK(error_of("8", universe(8)) == "cpulist \"8\": column 1: CPU number beyond the universe");
  CHECK(error_of("0-8", universe(8)) == "cpulist \"0-8\": column 3: CPU number beyond the universe");
  CHECK(error_of("20000000") == "cpulist \"20000000\": column 1: CPU number beyond the parse limit");
  CHECK(error_of("1;2") == "cpulist \"1;2\": column 2: expected ',' or the end of the list");
  CHECK(error_of("-1") == "cpulist \"-1\": column 1: expected a number");
  CHECK(error_of("1-") == "cpulist \"1-\": column 3: expected a CPU number after '-'");
  CHECK(error_of("1-2-3") == "cpulist \"1-2-3\": column 4: expected ',' or the end of the list");
  CHECK(error_of("^") == "cpulist \"^\": column 1: a list that starts with an exclusion needs a universe");
  CHECK(error_of("^", universe(4)) == "cpulist \"^\": column 2: expected a number, found the end");
  // A raised limit admits big CPU numbers: the limit is a guard, not a ceiling.
  CHECK(CpuMap::parse("20000000", ParseOptions{.limit = 1u << 25}).universe() == 20000001);
  // Quotes are escaped and control characters masked in the message; long input is cut.
  CHECK(error_of("1\"\x01") == "cpulist \"1\\\"?\": column 2: expected ',' or the end of the list");
  CHECK(error_of("\xcf" "0-7") == "cpulist \"?0-7\": column 1: expected a number");              // invalid UTF-8
  CHECK(error_of("\xc2\x9b" "2J") == "cpulist \"??2J\": column 1: expected a number");          // C1 CSI
  CHECK(error_of("\xc3\xa9") == "cpulist \"\xc3\xa9\": column 1: expected a number");           // printable stays
  const std::string long_input(200, '1');
  CHECK_THAT(error_of(long_input), Catch::EndsWith("\"...: column 1: number too large"));
}

TEST_CASE("strict mode accepts exactly the canonical text", "[cpulist][strict]") {
  CHECK(parsed("0-3,5,8-11", strict) == V{0, 1, 2, 3, 5, 8, 9, 10, 11});
  CHECK(parsed("0,2", strict) == V{0, 2});
  CHECK_THAT(error_of("5,1", strict), Catch::Contains("column 3: not ascending and merged (strict cpulist)"));
  CHECK_THAT(error_of("0-3,4", strict), Catch::Contains("column 5: not ascending and merged"));
  CHECK_THAT(error_of("0-3,2-5", strict), Catch::Contains("not ascending and merged"));
  CHECK_THAT(error_of("3-3", strict), Catch::Contains("column 1: one-CPU range in a strict cpulist"));
  CHECK_THAT(error_of("01", strict), Catch::Contains("column 1: leading zero in a strict cpulist"));
  CHECK_THAT(error_of("0,^1", strict), Catch::Contains("column 3: exclusion '^' in a strict cpulist"));
}

TEST_CASE("formatting in every form", "[cpulist][format]") {
  const CpuMap m(40, {0, 1, 2, 3, 5, 8, 9, 10, 11, 39});
  CHECK(m.to_string() == "0-3,5,8-11,39");
  CHECK(m.to_string(TextForm::xl_list) == "0-3,5,8-11,39");
  CHECK(m.to_string(TextForm::sysfs_mask) == "00000080,00000f2f");
  CHECK(m.to_string(TextForm::hex) == "0x8000000f2f");
  CHECK(m.to_string(TextForm::yn) == "yyyy-y--yyyy---------------------------y");
  CHECK(CpuMap(3, {1, 2}).to_string() == "1-2");

  const CpuMap none(8), all = CpuMap::full(8);
  CHECK(none.to_string().empty());
  CHECK(none.to_string(TextForm::xl_list) == "none");
  CHECK(all.to_string(TextForm::xl_list) == "all");
  CHECK(all.to_string() == "0-7");
  CHECK(none.to_string(TextForm::hex) == "0x0");
  CHECK(none.to_string(TextForm::sysfs_mask) == "00000000");
  CHECK(CpuMap().to_string(TextForm::sysfs_mask) == "00000000");
  CHECK(CpuMap().to_string(TextForm::yn).empty());
  CHECK(CpuMap::full(64).to_string(TextForm::sysfs_mask) == "ffffffff,ffffffff");
  CHECK(CpuMap::full(65).to_string(TextForm::sysfs_mask) == "00000001,ffffffff,ffffffff");
}

namespace {

ParseOptions reading_back(TextForm form, std::size_t universe) {
  ParseOptions o{.universe = universe};
  o.form = form == TextForm::xl_list ? TextForm::list : form;
  return o;
}

}  // namespace

TEST_CASE("property: parse(format(m)) == m in every form", "[cpulist][property]") {
  std::mt19937_64 rng(0x5eed);
  const TextForm forms[] = {TextForm::list, TextForm::xl_list, TextForm::sysfs_mask, TextForm::hex, TextForm::yn};
  const auto start = std::chrono::steady_clock::now();
  std::size_t cases = 0;
  for (int i = 0; i < 60000; ++i) {
    const std::size_t n = i % 4 == 0 ? vcpumap::test::random_universe(rng) : rng() % 200;
    const CpuMap m = vcpumap::test::random_set(rng, n);
    for (TextForm form : forms) {
      const std::string text = m.to_string(form);
      const auto back = CpuMap::try_parse(text, reading_back(form, n));
      if (!back || *back != m) FAIL("form " << int(form) << " of size " << n << " failed on \"" << text << "\"");
      ++cases;
    }
    // The canonical list also reads back in strict mode, and without a universe it holds
    // the same members.
    const std::string list = m.to_string();
    const auto strict_back = CpuMap::try_parse(list, ParseOptions{.dialect = Dialect::strict, .universe = n});
    if (!strict_back || *strict_back != m) FAIL("strict read of \"" << list << "\"");
    if (!same_members(CpuMap::parse(list), m)) FAIL("universe-less read of \"" << list << "\"");
    cases += 2;
  }
  const auto seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  WARN(cases << " round trips in " << seconds << " s");
  CHECK(cases == 60000 * 7);
}

TEST_CASE("property: every output of format is canonical (strict == standard)", "[cpulist][property]") {
  // Random lists in the liberal dialect, then: format(parse(x)) is a fixed point.
  std::mt19937_64 rng(99);
  for (int i = 0; i < 20000; ++i) {
    std::string text;
    for (int items = 1 + static_cast<int>(rng() % 6); items > 0; --items) {
      if (!text.empty()) text += ',';
      if (!text.empty() && rng() % 4 == 0) text += '^';
      const std::size_t a = rng() % 150, b = a + rng() % 40;
      text += std::to_string(a);
      if (rng() % 2) text += '-' + std::to_string(b);
      if (rng() % 5 == 0 && b > a) text += ':' + std::to_string(1 + rng() % 2) + '/' + std::to_string(2 + rng() % 3);
    }
    const CpuMap m = CpuMap::parse(text, universe(200));
    const std::string canonical = m.to_string();
    REQUIRE(CpuMap::parse(canonical, ParseOptions{.dialect = Dialect::strict, .universe = 200}) == m);
    REQUIRE(CpuMap::parse(canonical, universe(200)).to_string() == canonical);
  }
}

TEST_CASE("property: the fast reader of plain lists agrees with the general one", "[cpulist][property]") {
  // "a,^b,c" takes the fast path; the same list with a space after each comma takes the
  // general reader. Both must give the same set and the same universe.
  std::mt19937_64 rng(2006);
  for (int round = 0; round < 20000; ++round) {
    const std::size_t top = 1 + rng() % 300;
    std::string fast, general;
    const int items = 1 + static_cast<int>(rng() % 8);
    for (int i = 0; i < items; ++i) {
      std::string item = i > 0 && rng() % 3 == 0 ? "^" : "";
      const std::size_t lo = rng() % top, len = rng() % 4 == 0 ? rng() % 70 : 0;
      item += std::to_string(lo);
      if (len > 0) item += "-" + std::to_string(lo + len);
      fast += (i > 0 ? "," : "") + item;
      general += (i > 0 ? ", " : "") + item;
    }
    for (const ParseOptions& o : {ParseOptions{}, universe(top + 70), ParseOptions{.dialect = Dialect::compat}}) {
      const CpuMap a = CpuMap::parse(fast, o), b = CpuMap::parse(general, o);
      if (a != b)
        FAIL("\"" << fast << "\": " << a.to_string() << " (universe " << a.universe() << ") vs " << b.to_string()
                   << " (universe " << b.universe() << ")");
    }
  }
}

TEST_CASE("numbers of every length, with leading zeros, before any terminator", "[cpulist]") {
  // In the fast reader of plain lists and in the general one (after a space), at the end
  // of the text and before more items.
  for (std::size_t digits = 1; digits <= 7; ++digits) {
    const std::string n = std::string("7654321").substr(0, digits);
    const auto x = static_cast<std::size_t>(std::stoul(n));
    CHECK(parsed(n + ",0") == V{0, x});
    CHECK(parsed("0," + n) == V{0, x});
    CHECK(parsed(n + "," + n + "," + n) == V{x});
    CHECK(parsed(n + "-" + n + ",^" + n + ",0") == V{0});
    CHECK(parsed("0, " + n + " ,1") == V{0, 1, x});
    CHECK(parsed(std::string(8 - digits, '0') + n + ",1") == V{1, x});  // 8 digits
    V expect{1, 2, 3, 4, 5, 6, 7, x};
    std::sort(expect.begin(), expect.end());
    expect.erase(std::unique(expect.begin(), expect.end()), expect.end());
    CHECK(parsed("00" + n + ",1,2,3,4,5,6,7") == expect);
  }
  CHECK(parsed("1-1234567,^2-1234566") == V{1, 1234567});
  CHECK(parsed("9999999,0", ParseOptions{.limit = 10000000}) == V{0, 9999999});
  CHECK_THAT(error_of("16777216,0"), Catch::Contains("column 1: CPU number beyond the parse limit"));
  CHECK_THAT(error_of("0,123456789012345678901"), Catch::Contains("column 3"));
}

namespace {

/// Whether parsing text fails with out_of_range set (and the thrown ParseError agrees).
bool out_of_range(std::string_view text, const ParseOptions& options = {}) {
  vcpumap::ParseFailure failure;
  if (CpuMap::try_parse(text, options, &failure)) {
    FAIL("\"" << std::string(text.substr(0, 40)) << "\" parsed");
  }
  try {
    (void)CpuMap::parse(text, options);
  } catch (const ParseError& e) {
    CHECK(e.out_of_range() == failure.out_of_range);
    CHECK(e.column() == failure.column);
  }
  return failure.out_of_range;
}

}  // namespace

TEST_CASE("out_of_range tells CPUs that cannot be from syntax errors", "[cpulist][errors]") {
  // A CPU number at or beyond the universe or the limit, or too long to be a number.
  CHECK(out_of_range("8", universe(8)));
  CHECK(out_of_range("0-8", universe(8)));
  CHECK(out_of_range("0-3:1/2,99999", universe(8)));
  CHECK(out_of_range("20000000"));
  CHECK(out_of_range("16777216,0"));
  CHECK(out_of_range("99999999999999999999"));
  CHECK(out_of_range("0,123456789012345678901"));
  CHECK(out_of_range("3-99999999999999999999"));
  CHECK(out_of_range("0, 99999", universe(8)));           // the general reader
  CHECK(out_of_range("^99", universe(8)));                // an exclusion's CPU too
  CHECK(out_of_range("8", ParseOptions{.dialect = Dialect::strict, .universe = 8}));
  CHECK(out_of_range("9", ParseOptions{.universe = 8, .limit = 4}));  // the universe rules
  // A mask's set bit or a 'y' beyond the universe; a mask or y- string wider than the limit.
  CHECK(out_of_range("0x1f", universe(4)));
  CHECK(out_of_range("10", ParseOptions{.form = TextForm::hex, .universe = 4}));
  CHECK(out_of_range("0x" + std::string(4'200'000, 'f')));
  CHECK(out_of_range("fffff", ParseOptions{.form = TextForm::hex, .limit = 16}));
  CHECK(out_of_range("1,00000000", ParseOptions{.form = TextForm::sysfs_mask, .universe = 32}));
  CHECK(out_of_range("1,00000000", ParseOptions{.form = TextForm::sysfs_mask, .limit = 32}));
  CHECK(out_of_range("---y", ParseOptions{.form = TextForm::yn, .universe = 3}));
  CHECK(out_of_range("yyyyy", ParseOptions{.form = TextForm::yn, .limit = 4}));
  CHECK(out_of_range("yy--y", ParseOptions{.dialect = Dialect::compat, .universe = 4}));  // y- in a list

  // Syntax errors, and numbers that are not CPUs', are not.
  CHECK(!out_of_range("0-3,x"));
  CHECK(!out_of_range("5-3"));
  CHECK(!out_of_range("1,,2"));
  CHECK(!out_of_range("-1"));
  CHECK(!out_of_range("01", strict));
  CHECK(!out_of_range("0-15:99999999999999999999/2"));
  CHECK(!out_of_range("0-15:1/99999999999999999999"));
  CHECK(!out_of_range("0-15:3/2"));
  CHECK(!out_of_range("0xfg"));
  CHECK(!out_of_range("0xfg", universe(4)));
  CHECK(!out_of_range("yyn", ParseOptions{.form = TextForm::yn}));
  CHECK(!out_of_range("123456789", ParseOptions{.form = TextForm::sysfs_mask}));
  CHECK(!out_of_range("all"));
  CHECK(!out_of_range("N", ParseOptions{.dialect = Dialect::compat}));
  const std::vector<CpuMap> nodes{CpuMap(8, {0, 1}), CpuMap(16, {9})};
  CHECK(!out_of_range("node:2", ParseOptions{.universe = 8, .numa_nodes = nodes}));
  CHECK(!out_of_range("node:99999999999999999999", ParseOptions{.universe = 8, .numa_nodes = nodes}));
  CHECK(!out_of_range("node:1", ParseOptions{.universe = 8, .numa_nodes = nodes}));  // the topology's fault

  // ParseFailure stays an aggregate of column and reason.
  const vcpumap::ParseFailure plain{3, "expected a number"};
  CHECK(!plain.out_of_range);
  const ParseError e("0-3,x", plain);
  CHECK(!e.out_of_range());
  CHECK(std::string(e.what()) == "cpulist \"0-3,x\": column 3: expected a number");
  CHECK(ParseError("8", vcpumap::ParseFailure{.column = 1, .reason = "r", .out_of_range = true}).out_of_range());
}

namespace {

/// The CPUs of a list of items lo-hi:used/group, one at a time (the definition).
struct StrideItem {
  bool exclude;
  std::size_t lo, hi, used, group;
};

std::string stride_text(const std::vector<StrideItem>& items) {
  std::string text;
  for (const StrideItem& it : items) {
    if (!text.empty()) text += ',';
    if (it.exclude) text += '^';
    text += std::to_string(it.lo) + '-' + std::to_string(it.hi);
    if (it.used != 0) text += ':' + std::to_string(it.used) + '/' + std::to_string(it.group);
  }
  return text;
}

CpuMap naive_strides(const std::vector<StrideItem>& items, Exclusion mode, std::optional<std::size_t> universe) {
  std::size_t size = 0;
  for (const StrideItem& it : items) size = std::max(size, it.hi + 1);
  if (universe) size = *universe;
  std::vector<char> in(size, 0), out(size, 0);
  bool any_inclusion = false;
  for (std::size_t i = 0; i < items.size(); ++i) {
    const StrideItem& it = items[i];
    const std::size_t used = it.used == 0 ? 1 : it.used, group = it.used == 0 ? 1 : it.group;
    if (mode == Exclusion::in_order && i == 0 && it.exclude) std::fill(in.begin(), in.end(), 1);
    any_inclusion |= !it.exclude;
    for (std::size_t c = it.lo; c <= it.hi; ++c) {
      if ((c - it.lo) % group >= used) continue;
      if (mode == Exclusion::after_inclusions && it.exclude)
        out[c] = 1;
      else
        in[c] = !it.exclude;
    }
  }
  if (mode == Exclusion::after_inclusions && !any_inclusion) std::fill(in.begin(), in.end(), 1);
  CpuMap m(size);
  for (std::size_t c = 0; c < size; ++c)
    if (in[c] && !out[c]) m.set(c);
  return m;
}

}  // namespace

TEST_CASE("property: strides set exactly the CPUs of the per-CPU definition", "[cpulist][property]") {
  std::mt19937_64 rng(0x5717de);
  // Numbers near word edges (64k - 2 .. 64k + 2) half the time.
  auto number = [&](std::size_t top) -> std::size_t {
    if (rng() % 2) return rng() % top;
    const std::size_t edge = 64 * (rng() % (top / 64 + 1)) + rng() % 5;  // 64k .. 64k + 4
    return edge < 2 ? 0 : std::min(top - 1, edge - 2);
  };
  for (int round = 0; round < 6000; ++round) {
    const std::size_t top = 1 + rng() % 1100;
    const bool with_universe = rng() % 2;
    const std::optional<std::size_t> u = with_universe ? std::optional<std::size_t>(top + rng() % 70) : std::nullopt;
    const Exclusion mode = rng() % 2 ? Exclusion::in_order : Exclusion::after_inclusions;
    std::vector<StrideItem> items;
    const int n = 1 + static_cast<int>(rng() % 5);
    for (int i = 0; i < n; ++i) {
      StrideItem it{};
      it.exclude = (i > 0 || with_universe) && rng() % 3 == 0;
      it.lo = number(top);
      switch (rng() % 3) {
        case 0: it.hi = it.lo + rng() % 8; break;
        case 1: it.hi = it.lo + rng() % top; break;
        default: it.hi = std::max(it.lo, number(top));  // near a word edge too
      }
      it.hi = std::min(top - 1, it.hi);
      if (rng() % 4 != 0) {  // a stride; otherwise a plain range
        switch (rng() % 4) {
          case 0: it.group = 1 + rng() % 8; break;
          case 1: it.group = 60 + rng() % 10; break;  // around a word
          case 2: it.group = 120 + rng() % 16; break;  // around two
          default: it.group = 1 + rng() % 200;
        }
        it.used = 1 + rng() % it.group;
      }
      items.push_back(it);
    }
    const std::string text = stride_text(items);
    ParseOptions o{.exclusion = mode, .universe = u};
    const CpuMap expect = naive_strides(items, mode, u);
    const auto got = CpuMap::try_parse(text, o);
    if (!got || *got != expect)
      FAIL("\"" << text << "\" (" << (mode == Exclusion::in_order ? "in order" : "after inclusions") << ", universe "
                << (u ? std::to_string(*u) : "none") << "): " << (got ? got->to_string() : "error") << " (universe "
                << (got ? got->universe() : 0) << "), expected " << expect.to_string() << " (universe " << expect.universe() << ")");
  }
}

TEST_CASE("hostile strides: 800 items over 2^24 CPUs cost their words and not their CPUs", "[cpulist][hostile]") {
  // Each item "0-16777215:1/2" used to be 8388608 one-bit runs (about 15 ms); now it is
  // 262144 word writes. A functional bound, far above the new cost and far below the old
  // (12+ s for the whole list).
  std::string text;
  for (int i = 0; i < 800; ++i) text += (i ? "," : "") + std::string("0-16777215:1/2");
  REQUIRE(text.size() < 12000);
  const auto start = std::chrono::steady_clock::now();
  const CpuMap m = CpuMap::parse(text);
  const auto seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  WARN("800 stride items over 2^24 CPUs in " << seconds << " s");
  CHECK(seconds < 5.0);
  REQUIRE(m.universe() == std::size_t{1} << 24);
  CHECK(m.count() == std::size_t{1} << 23);
  for (const auto w : m.words()) REQUIRE(w == 0x5555555555555555ULL);

  // Exclusions of wide strides, in order and after the inclusions, and a group that does
  // not divide 64, and one wider than a word.
  CHECK(CpuMap::parse("0-16777215,^0-16777215:1/2,^1-16777215:1/2").empty());
  CHECK(CpuMap::parse("^0-16777215:2/3", ParseOptions{.exclusion = Exclusion::after_inclusions,
                                                     .universe = std::size_t{1} << 24})
            .count() == 5592405);  // the CPUs 3k + 2
  const CpuMap thirds = CpuMap::parse("1-16777215:1/3");
  CHECK(thirds.count() == 5592405);
  CHECK(*thirds.last() == 16777213);
  CHECK(CpuMap::parse("0-16777215:1/65").count() == 16777216 / 65 + 1);
}

TEST_CASE("NUMA nodes are merged a word at a time", "[cpulist]") {
  // Nodes spanning words, of universes wider than the parse's, an empty node; compared
  // with the per-CPU definition in both exclusion modes.
  std::mt19937_64 rng(0xe0de);
  for (int round = 0; round < 2000; ++round) {
    const std::size_t universe_size = 1 + rng() % 300;
    std::vector<CpuMap> nodes;
    for (int n = 0; n < 4; ++n) {
      CpuMap node = vcpumap::test::random_set(rng, universe_size);
      node.resize(universe_size + rng() % 200);  // a wider universe, no member beyond
      nodes.push_back(node);
    }
    const Exclusion mode = rng() % 2 ? Exclusion::in_order : Exclusion::after_inclusions;
    std::string text;
    std::vector<char> in(universe_size, 0), out(universe_size, 0);
    bool any_inclusion = false;
    for (int i = 0, items = 1 + static_cast<int>(rng() % 4); i < items; ++i) {
      const bool exclude = rng() % 3 == 0;
      const std::size_t a = rng() % 4, b = a + rng() % (4 - a);
      text += std::string(i ? "," : "") + (exclude ? "^" : "") + (a == b ? "node:" + std::to_string(a)
                                                                        : "nodes:" + std::to_string(a) + "-" + std::to_string(b));
      if (mode == Exclusion::in_order && i == 0 && exclude) std::fill(in.begin(), in.end(), 1);
      any_inclusion |= !exclude;
      for (std::size_t node = a; node <= b; ++node)
        for (std::size_t c : nodes[node]) {
          if (mode == Exclusion::after_inclusions && exclude)
            out[c] = 1;
          else
            in[c] = !exclude;
        }
    }
    if (mode == Exclusion::after_inclusions && !any_inclusion) std::fill(in.begin(), in.end(), 1);
    CpuMap expect(universe_size);
    for (std::size_t c = 0; c < universe_size; ++c)
      if (in[c] && !out[c]) expect.set(c);
    const CpuMap got =
        CpuMap::parse(text, ParseOptions{.exclusion = mode, .universe = universe_size, .numa_nodes = nodes});
    if (got != expect) FAIL("\"" << text << "\": " << got.to_string() << ", expected " << expect.to_string());
  }
  // Without a universe, the result holds the highest CPU of the nodes named.
  const std::vector<CpuMap> nodes{CpuMap(300, {1, 70}), CpuMap(300), CpuMap(300, {130, 199})};
  const CpuMap named = CpuMap::parse("node:0,nodes:1-2,^node:0", ParseOptions{.numa_nodes = nodes});
  CHECK(named == CpuMap(200, {130, 199}));
  CHECK(CpuMap::parse("node:1", ParseOptions{.numa_nodes = nodes}) == CpuMap());
}
