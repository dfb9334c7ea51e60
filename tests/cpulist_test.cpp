#include <vcpumap/cpulist.hpp>

#include <algorithm>
#include <chrono>
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
  CHECK(CpuMap::parse("0-3,8-11").size() == 12);
  CHECK(CpuMap::parse("0-3", universe(64)).size() == 64);
  CHECK(CpuMap::parse("").size() == 0);
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
  CHECK(CpuMap::parse("0-3,^9").size() == 10);   // an excluded CPU is still named
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
  CHECK(CpuMap::parse("none", universe(4)).size() == 4);
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
  CHECK(CpuMap::parse("0xff").size() == 8);
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
  CHECK(CpuMap::parse("00000000,00000003", sysfs).size() == 64);
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
  CHECK(CpuMap::parse("yy--y", yn).size() == 5);
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
  CHECK(CpuMap::parse("20000000", ParseOptions{.limit = 1u << 25}).size() == 20000001);
  // Quotes are escaped and control characters masked in the message; long input is cut.
  CHECK(error_of("1\"\x01") == "cpulist \"1\\\"?\": column 2: expected ',' or the end of the list");
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
        FAIL("\"" << fast << "\": " << a.to_string() << " (universe " << a.size() << ") vs " << b.to_string()
                   << " (universe " << b.size() << ")");
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
