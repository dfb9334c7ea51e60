// cpulist — read a CPU set in any dialect and print it in every form.
//
//   $ cpulist '0-3,^2,8-11'
//   list   0-1,3,8-11
//   ...
//   $ cpulist --from sysfs_mask --universe 64 'ff,0000000f'
//   $ cpulist --fixture host.txt 'node:1,^9'      # the host's nodes and CPU count
#include <charconv>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "backend.hpp"

namespace {

using namespace vcpumap;

constexpr std::string_view usage =
    "usage: cpulist [--from list|sysfs_mask|hex|yn] [--strict|--compat] [--universe N | --host]\n"
    "               [backend options] TEXT...\n"
    "Reads each TEXT as a CPU set and prints it as a canonical list, xl list, sysfs mask,\n"
    "hex mask and y- string. Options may come anywhere and apply to every TEXT; '--' ends them\n"
    "(a TEXT after it may start with '-').\n"
    "  --universe N  the CPUs 0..N-1 the sets belong to (at most the parse limit, 16777216)\n"
    "  --host        read the sets for a host: its CPUs are the universe ('all', '^N') and its\n"
    "                NUMA nodes name CPUs ('node:1', 'nodes:0-1'); the host is the one the backend\n"
    "                options choose (--backend=auto without them: Xen, else Linux, else the demo\n"
    "                host). Any backend option implies --host; without either, cpulist reads the\n"
    "                sets offline, knowing no host.\n";

int convert(int argc, char** argv, examples::Backend& backend) {
  ParseOptions options;
  bool for_host = false;
  std::vector<std::string> texts;
  examples::Args args(argc, argv);
  while (args.next()) {
    if (backend.parse(args)) continue;
    if (args.is("--strict")) {
      options.dialect = Dialect::strict;
    } else if (args.is("--compat")) {
      options.dialect = Dialect::compat;
    } else if (args.is("--host")) {
      for_host = true;
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
      texts.push_back(args.current());
    } else {
      args.unknown();
    }
  }
  if (texts.empty()) throw examples::Usage("no TEXT given");
  std::optional<HostInfo> host;  // outlives the options, which borrow its nodes
  if (for_host || backend.given()) {
    if (options.universe)
      throw examples::Usage("--universe and a host (--host or backend options) exclude each other: the host's "
                            "CPUs are the universe");
    host = backend.open("cpulist", examples::Access::read).host_info();
    const TextForm form = options.form;
    options = host->parse_options(options.dialect);
    options.form = form;
  }
  for (const std::string& text : texts) {
    const auto map = CpuMap::parse(text, options);
    fmt::print("list   {}\nxl     {:a}\nsysfs  {:m}\nhex    {:x}\nyn     {:y}\ncount  {} of {}\n", map, map, map, map,
               map, map.count(), map.universe());
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  return examples::run("cpulist", usage, [&](examples::Backend& backend) { return convert(argc, argv, backend); });
}
