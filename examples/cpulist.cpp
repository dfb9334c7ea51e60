// cpulist — read a CPU set in any dialect and print it in every form.
//
//   $ cpulist '0-3,^2,8-11'
//   list   0-1,3,8-11
//   ...
//   $ cpulist --from sysfs_mask --universe 64 'ff,0000000f'
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include <vcpumap/vcpumap.hpp>

namespace {

constexpr std::string_view usage =
    "usage: cpulist [--from list|sysfs_mask|hex|yn] [--strict|--compat] [--universe N] TEXT...\n"
    "Reads each TEXT as a CPU set and prints it as a canonical list, xl list, sysfs mask,\n"
    "hex mask and y- string.\n";

int usage_error(std::string_view what) {
  fmt::print(stderr, "cpulist: {}\n{}", what, usage);
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  vcpumap::ParseOptions options;
  int printed = 0;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    auto value = [&]() -> std::string_view { return i + 1 < argc ? argv[++i] : ""; };
    if (arg == "--help" || arg == "-h") {
      fmt::print("{}", usage);
      return 0;
    } else if (arg == "--strict") {
      options.dialect = vcpumap::Dialect::strict;
    } else if (arg == "--compat") {
      options.dialect = vcpumap::Dialect::compat;
    } else if (arg == "--universe") {
      const std::string n(value());
      char* end = nullptr;
      const unsigned long long u = std::strtoull(n.c_str(), &end, 10);
      if (n.empty() || *end != '\0') return usage_error("--universe needs a number");
      options.universe = u;
    } else if (arg == "--from") {
      const std::string_view form = value();
      if (form == "list") options.form = vcpumap::TextForm::list;
      else if (form == "sysfs_mask") options.form = vcpumap::TextForm::sysfs_mask;
      else if (form == "hex") options.form = vcpumap::TextForm::hex;
      else if (form == "yn") options.form = vcpumap::TextForm::yn;
      else return usage_error(fmt::format("unknown form '{}'", form));
    } else {
      try {
        const auto map = vcpumap::CpuMap::parse(arg, options);
        fmt::print("list   {}\nxl     {:a}\nsysfs  {:m}\nhex    {:x}\nyn     {:y}\ncount  {} of {}\n", map, map,
                   map, map, map, map.count(), map.size());
        ++printed;
      } catch (const vcpumap::Error& e) {
        fmt::print(stderr, "cpulist: {}\n", e.what());
        return 1;
      }
    }
  }
  return printed > 0 ? 0 : usage_error("no TEXT given");
}
