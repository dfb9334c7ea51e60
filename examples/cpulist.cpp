// cpulist — read a CPU set in any dialect and print it in every form.
//
//   $ cpulist '0-3,^2,8-11'
//   list   0-1,3,8-11
//   ...
//   $ cpulist --from sysfs_mask --universe 64 'ff,0000000f'
#include <charconv>
#include <string>
#include <string_view>

#include "backend.hpp"

namespace {

using namespace vcpumap;

constexpr std::string_view usage =
    "usage: cpulist [--from list|sysfs_mask|hex|yn] [--strict|--compat] [--universe N] TEXT...\n"
    "Reads each TEXT as a CPU set and prints it as a canonical list, xl list, sysfs mask,\n"
    "hex mask and y- string.\n"
    "  --universe N  the CPUs 0..N-1 the sets belong to (at most the parse limit, 16777216)\n";

int convert(int argc, char** argv) {
  ParseOptions options;
  int printed = 0;
  examples::Args args(argc, argv);
  while (args.next()) {
    if (args.is("--help") || args.is("-h")) {
      fmt::print("{}", usage);
      return 0;
    }
    if (args.is("--strict")) {
      options.dialect = Dialect::strict;
    } else if (args.is("--compat")) {
      options.dialect = Dialect::compat;
    } else if (auto n = args.value("--universe")) {
      std::size_t u = 0;
      auto [end, ec] = std::from_chars(n->data(), n->data() + n->size(), u);
      if (n->empty() || ec != std::errc() || end != n->data() + n->size() || u > options.limit)
        throw examples::Usage(fmt::format("--universe needs a whole number from 0 to {}, not '{}'", options.limit,
                                          escape_terminal(*n)));
      options.universe = u;
    } else if (auto form = args.value("--from")) {
      if (*form == "list") options.form = TextForm::list;
      else if (*form == "sysfs_mask") options.form = TextForm::sysfs_mask;
      else if (*form == "hex") options.form = TextForm::hex;
      else if (*form == "yn") options.form = TextForm::yn;
      else throw examples::Usage(fmt::format("unknown form '{}'", escape_terminal(*form)));
    } else if (args.positional()) {
      const auto map = CpuMap::parse(args.current(), options);
      fmt::print("list   {}\nxl     {:a}\nsysfs  {:m}\nhex    {:x}\nyn     {:y}\ncount  {} of {}\n", map, map, map,
                 map, map, map.count(), map.universe());
      ++printed;
    } else {
      args.unknown();
    }
  }
  if (printed == 0) throw examples::Usage("no TEXT given");
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  return examples::run("cpulist", usage, [&](examples::Backend&) { return convert(argc, argv); });
}
