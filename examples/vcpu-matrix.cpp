// vcpu-matrix — one domain's VCPU×CPU affinity matrix as a grid in the terminal, or as an SVG.
//
//   $ vcpu-matrix --hard xperf2
//   $ vcpu-matrix --svg xperf2.svg xperf2
//
// Rows are vcpus, columns CPUs grouped by NUMA node and socket; a mark shows where each vcpu
// runs; the last line counts the vcpus that may use each CPU, so shared CPUs stand out.
#include <algorithm>
#include <optional>
#include <string>
#include <string_view>
#include <tuple>
#include <utility>
#include <vector>

#include "backend.hpp"
#include "matrix_picture.hpp"

namespace {

using namespace vcpumap;

constexpr std::string_view usage =
    "usage: vcpu-matrix [--hard | --soft | --effective] [--svg FILE] [backend options] DOMAIN\n"
    "Shows the VCPU×CPU matrix of DOMAIN (a name or an id): rows are vcpus, columns CPUs grouped\n"
    "by NUMA node and socket, and on a host with SMT by core: a 'cores' line under the CPU numbers\n"
    "brackets each core's sibling threads ([] two threads, [--] four; '|' a thread alone).\n"
    "Default: the effective affinity (where each vcpu may run now).\n"
    "  --hard, --soft, --effective  which affinity to show\n"
    "  --svg FILE   write the picture as SVG to FILE instead (a heat map when cells get small)\n"
    "Grid: '#' allowed, '.' not, 'x' allowed but the CPU is offline, ' ' offline; 'R' where the\n"
    "vcpu runs, 'o' where it last ran (blocked or waiting). Above 128 CPUs a column stands for\n"
    "several CPUs (the first line says how many): '#' all allowed, '+' some; the lines above the\n"
    "grid then give each group of columns its node, socket and first CPU by number, under a\n"
    "'node', 'socket' and 'first CPU' label on the left (a number that has no room is left out,\n"
    "never cut). Last line: vcpus allowed on each CPU ('*' = 10+).\n";

char count_glyph(std::size_t n) { return n == 0 ? '.' : n < 10 ? static_cast<char>('0' + n) : '*'; }

void print_grid(const examples::MatrixPicture& p) {
  const std::size_t ncpu = p.host.cpu_universe(), rows = p.map.rows();
  const std::size_t per_column = ncpu <= 128 ? 1 : examples::pow2_at_least(static_cast<double>(ncpu) / 128);
  const auto groups = examples::column_groups(p.host, per_column);
  const auto share = examples::vcpus_per_cpu(p.map);
  const bool folded = per_column > 1;  // then the headings name their line on the left
  const std::string label_pad(
      std::max<std::size_t>(fmt::format("vcpu {}", rows ? rows - 1 : 0).size() + 2, folded ? 10 : 0), ' ');

  fmt::print("{}: {} affinity, {} vcpus x {} CPUs{}\n", describe(p.domain.domain), p.kind, rows, ncpu,
             per_column > 1 ? fmt::format(" ({} CPUs per column)", per_column) : "");
  // One line per heading: each group's text starts over its first column and may run on
  // until a space before the next group that has a text. When a text has no room (or the
  // grid is folded), every text of the line gives way to its short form, a number, and
  // `margin` names the line on the left; a number that has no room either is left out,
  // never cut.
  auto heading = [&](std::string_view margin, auto text_of) {
    std::vector<std::tuple<std::size_t, std::string, std::string>> texts;  // (column, text, short form)
    std::size_t column = label_pad.size();
    for (std::size_t i = 0; i < groups.size(); column += groups[i].columns.size() + 1, ++i)
      if (auto [text, brief] = text_of(groups[i], i); !text.empty())
        texts.emplace_back(column, std::move(text), std::move(brief));
    auto room = [&](std::size_t t) {
      return t + 1 < texts.size() ? std::get<0>(texts[t + 1]) - 1 - std::get<0>(texts[t]) : std::string::npos;
    };
    bool brief = folded;
    for (std::size_t t = 0; t < texts.size(); ++t) brief = brief || std::get<1>(texts[t]).size() > room(t);
    std::string line = fmt::format("{:<{}}", brief ? margin : "", label_pad.size());
    for (std::size_t t = 0; t < texts.size(); ++t) {
      const std::string& text = brief ? std::get<2>(texts[t]) : std::get<1>(texts[t]);
      if (text.size() > room(t)) continue;
      line.resize(std::get<0>(texts[t]), ' ');
      line += text;
    }
    if (!texts.empty()) fmt::print("{}\n", line);
  };
  using Texts = std::pair<std::string, std::string>;  // a heading's text and its short form
  auto number = [&](std::string_view word, std::optional<unsigned> n) -> Texts {
    if (!n) return {"absent", "-"};
    const std::string brief = std::to_string(*n);
    return {folded ? brief : fmt::format("{} {}", word, *n), brief};
  };
  heading("node", [&](const examples::ColumnGroup& g, std::size_t i) -> Texts {
    return !g.node || i == 0 || groups[i - 1].node != g.node ? number("node", g.node) : Texts{};
  });
  if (p.host.sockets > 1)
    heading("socket", [&](const examples::ColumnGroup& g, std::size_t i) -> Texts {
      if (!g.socket) return {};
      return !folded || i == 0 || groups[i - 1].socket != g.socket ? number("socket", g.socket) : Texts{};
    });
  if (!folded) {
    const std::size_t digits = std::to_string(ncpu ? ncpu - 1 : 0).size();
    for (std::size_t d = 0; d < digits; ++d)
      heading("", [&](const examples::ColumnGroup& g, std::size_t) {
        std::string text;
        for (const auto& column : g.columns) {
          const std::string digit = fmt::format("{:>{}}", column.front(), digits);
          text += digit[d];
        }
        return Texts{text, text};
      });
  } else {
    heading("first CPU", [](const examples::ColumnGroup& g, std::size_t) {
      const std::string first = std::to_string(g.columns.front().front());
      return Texts{first, first};
    });
  }
  if (per_column == 1 && p.host.threads_per_core > 1) {  // SMT siblings: [] over the threads of each core
    std::string line = fmt::format("{:<{}}", "cores", label_pad.size());
    for (const auto& g : groups) {
      for (auto [first, count] : examples::core_runs(p.host, g))
        line += count == 1 ? std::string("|") : "[" + std::string(count - 2, '-') + "]";
      line += ' ';
    }
    line.pop_back();
    fmt::print("{}\n", line);
  }

  for (std::size_t v = 0; v < rows; ++v) {
    const CpuMap row = p.map.row(v);
    const VcpuMetrics* m = v < p.domain.vcpus.size() ? &p.domain.vcpus[v] : nullptr;
    const bool offline = !m || m->state == VcpuState::offline;
    std::string line = fmt::format("{:<{}}", fmt::format("vcpu {}", v), label_pad.size());
    for (const auto& g : groups) {
      for (const auto& column : g.columns) {
        std::size_t allowed = 0;
        for (std::size_t cpu : column) allowed += row.test(cpu);
        char glyph = allowed == 0 ? '.' : allowed < column.size() ? '+' : '#';
        if (per_column == 1 && !p.host.online.test(column.front())) glyph = allowed ? 'x' : ' ';
        if (!offline && m->cpu && std::find(column.begin(), column.end(), *m->cpu) != column.end())
          glyph = m->state == VcpuState::running ? 'R' : 'o';
        line += glyph;
      }
      line += ' ';
    }
    fmt::print("{} {:a}{}\n", line, row, offline ? " (offline)" : "");
  }
  std::string line = fmt::format("{:<{}}", "shared", label_pad.size());
  for (const auto& g : groups) {
    for (const auto& column : g.columns) {
      std::size_t n = 0;
      for (std::size_t cpu : column) n = std::max(n, share[cpu]);
      line += count_glyph(n);
    }
    line += ' ';
  }
  fmt::print("{} vcpus allowed on each CPU\n", line);
}

int matrix(int argc, char** argv, examples::Backend& backend) {
  examples::Args args(argc, argv);
  std::string kind = "effective";
  std::optional<std::string> svg;
  std::vector<std::string> words;
  while (args.next()) {
    if (backend.parse(args)) continue;
    if (args.is("--hard") || args.is("--soft") || args.is("--effective"))
      kind = args.current().substr(2);
    else if (auto file = args.value("--svg"))
      svg = *file;
    else if (args.positional())
      words.push_back(args.current());
    else
      args.unknown();
  }
  if (words.size() != 1) throw examples::Usage(words.empty() ? "needs a DOMAIN" : "takes one DOMAIN");

  AnyHypervisor& hv = backend.open("vcpu-matrix", examples::Access::read);
  const HostInfo host = hv.host_info();
  const std::vector<DomainInfo> domains = hv.list_domains();
  const DomainInfo& which = domains[examples::find_domain(domains, words[0])];
  const DomainSnapshot d = examples::about(which, [&] { return hv.snapshot(which.id, SnapshotScope::full); });
  const AffinityMatrix& map = kind == "hard" ? d.hard : kind == "soft" ? d.soft : d.effective;
  const examples::MatrixPicture picture{host, d, map, kind};
  if (!svg) {
    print_grid(picture);
    return 0;
  }
  write_file_atomically(*svg, examples::to_svg(picture));
  fmt::print("{}: {} affinity of {} vcpus x {} CPUs written to {}\n", describe(d.domain), kind, map.rows(),
             map.cols(), escape_terminal(*svg));
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  return examples::run("vcpu-matrix", usage, [&](examples::Backend& backend) { return matrix(argc, argv, backend); });
}
