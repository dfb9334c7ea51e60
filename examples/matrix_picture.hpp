// matrix_picture.hpp — a domain's VCPU×CPU matrix laid out for the eye: vcpu-matrix's terminal
// grid and SVG share it.
//
//   examples::MatrixPicture pic{host, snapshot, snapshot.effective, "effective"};
//   vcpumap::write_file_atomically("m.svg", examples::to_svg(pic));
//
// Rows are vcpus; columns are CPUs grouped by NUMA node, then socket (CPUs that are not
// present come last), then, on a host with SMT (threads_per_core > 1), core: the sibling
// threads of a core are neighbours, and core_runs() finds them for the headers. A column
// may stand for several CPUs (a "bucket") when the CPUs outnumber the space: a cell then
// shows how much of its block the map allows. Cells are coloured by how
// many vcpus may run on the CPU, so vcpus that share CPUs stand out from exclusive ones.
#pragma once

#include <algorithm>
#include <cmath>
#include <optional>
#include <string>
#include <string_view>
#include <tuple>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include <vcpumap/vcpumap.hpp>

namespace examples {

using namespace vcpumap;

struct MatrixPicture {
  const HostInfo& host;
  const DomainSnapshot& domain;
  const AffinityMatrix& map;
  std::string_view kind;  // "hard", "soft" or "effective"
};

/// CPUs of one NUMA node and socket, cut into columns of up to `per_column` CPUs.
struct ColumnGroup {
  std::optional<unsigned> node, socket;
  std::vector<std::vector<std::size_t>> columns;
};

inline std::vector<ColumnGroup> column_groups(const HostInfo& host, std::size_t per_column) {
  const std::size_t n = host.cpu_universe();
  auto at = [](const auto& v, std::size_t cpu) { return cpu < v.size() ? v[cpu] : std::nullopt; };
  std::vector<std::size_t> order(n);
  for (std::size_t c = 0; c < n; ++c) order[c] = c;
  const bool smt = host.threads_per_core > 1;
  auto key = [&](std::size_t c) {  // an empty optional sorts first: put those last instead
    auto node = at(host.cpu_node, c), socket = at(host.cpu_socket, c), core = smt ? at(host.cpu_core, c) : std::nullopt;
    return std::tuple{!node, node.value_or(0), !socket, socket.value_or(0), smt && !core, core.value_or(0), c};
  };
  std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) { return key(a) < key(b); });
  std::vector<ColumnGroup> groups;
  for (std::size_t c : order) {
    auto node = at(host.cpu_node, c), socket = at(host.cpu_socket, c);
    if (groups.empty() || groups.back().node != node || groups.back().socket != socket)
      groups.push_back({node, socket, {}});
    auto& cols = groups.back().columns;
    if (cols.empty() || cols.back().size() == per_column) cols.emplace_back();
    cols.back().push_back(c);
  }
  return groups;
}

/// The SMT siblings among a group's columns of one CPU each: (first column, column count)
/// for each run of neighbouring columns whose CPUs share a socket and core, a CPU of unknown
/// core being a run of its own. Empty where the host has one thread per core.
inline std::vector<std::pair<std::size_t, std::size_t>> core_runs(const HostInfo& host, const ColumnGroup& g) {
  std::vector<std::pair<std::size_t, std::size_t>> runs;
  if (host.threads_per_core <= 1) return runs;
  auto at = [](const auto& v, std::size_t cpu) { return cpu < v.size() ? v[cpu] : std::nullopt; };
  std::optional<std::pair<unsigned, unsigned>> last;  // (socket, core) of the run going on
  for (std::size_t i = 0; i < g.columns.size(); ++i) {
    const std::size_t cpu = g.columns[i].front();
    const auto socket = at(host.cpu_socket, cpu), core = at(host.cpu_core, cpu);
    std::optional<std::pair<unsigned, unsigned>> here;
    if (socket && core) here = std::pair{*socket, *core};
    if (here && here == last && g.columns[i].size() == 1)
      ++runs.back().second;
    else
      runs.emplace_back(i, 1);
    last = g.columns[i].size() == 1 ? here : std::nullopt;
  }
  return runs;
}

/// The number of vcpus the map allows on each CPU.
inline std::vector<std::size_t> vcpus_per_cpu(const AffinityMatrix& map) {
  std::vector<std::size_t> share(map.cols(), 0);
  for (std::size_t v = 0; v < map.rows(); ++v)
    for (std::size_t c : map.row(v)) ++share[c];
  return share;
}

/// The smallest power of two >= x (x >= 1).
inline std::size_t pow2_at_least(double x) {
  std::size_t p = 1;
  while (static_cast<double>(p) < x) p *= 2;
  return p;
}

/// Colour of an allowed cell by how many vcpus may use its CPUs: blue for one, warmer for more.
inline std::string_view share_colour(std::size_t vcpus) {
  return vcpus <= 1 ? "#2166ac" : vcpus == 2 ? "#f4a582" : vcpus <= 4 ? "#d6604d" : "#99000d";
}

/// The picture as an SVG document. Cells of at least 5 px are drawn one per vcpu and CPU;
/// below that it becomes a heat map of blocks of 2^k CPUs × 2^j vcpus, coloured when the map
/// allows any of the block, so 512 vcpus × 4096 CPUs stays a readable ~1250×1130 picture.
/// Runs of equal cells are merged, which keeps the file small for the usual banded maps.
inline std::string to_svg(const MatrixPicture& p) {
  const std::size_t rows = p.map.rows(), ncpu = p.host.cpu_universe();
  const double max_w = 1400, max_h = 900;
  const double cell = std::min(
      {22.0, std::floor(max_w / std::max<std::size_t>(ncpu, 1)), std::floor(max_h / std::max<std::size_t>(rows, 1))});
  const bool heat = cell < 5;
  const double heat_column_px = 3;  // about; the CPUs per column are a power of two
  const std::size_t cpb = heat ? pow2_at_least(static_cast<double>(ncpu) * heat_column_px / max_w) : 1;  // per column
  const std::size_t vpb = heat ? pow2_at_least(static_cast<double>(rows) / max_h) : 1;  // vcpus per row
  const auto groups = column_groups(p.host, cpb);
  std::size_t ncols = 0;
  for (const auto& g : groups) ncols += g.columns.size();
  const std::size_t nrows = (rows + vpb - 1) / vpb;
  const double cw = heat ? std::min(4.0, max_w / static_cast<double>(std::max<std::size_t>(ncols, 1))) : cell;
  const double rh = heat ? std::min(4.0, max_h / static_cast<double>(std::max<std::size_t>(nrows, 1))) : cell;
  const bool row_text = rh >= 11, gap = !heat && cell >= 8;
  const auto share = vcpus_per_cpu(p.map);
  const std::size_t most = share.empty() ? 0 : *std::max_element(share.begin(), share.end());

  // Column x positions: a gap between NUMA nodes, a thinner one between sockets.
  std::vector<double> group_x, cpu_x(ncpu, 0);
  double x = 80;
  for (std::size_t i = 0; i < groups.size(); ++i) {
    if (i > 0) x += groups[i].node != groups[i - 1].node ? 10 : 4;
    group_x.push_back(x);
    for (const auto& column : groups[i].columns) {
      for (std::size_t cpu : column) cpu_x[cpu] = x;
      x += cw;
    }
  }
  const double gx_end = x, gy = 110, gy_end = gy + static_cast<double>(nrows) * rh;
  const double width = std::max(gx_end + (row_text ? 170 : 60), 820.0), height = gy_end + 120;

  std::string s = fmt::format(
      "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{0:.0f}\" "
      "height=\"{1:.0f}\" viewBox=\"0 0 {0:.0f} {1:.0f}\" font-family=\"DejaVu Sans, Verdana, sans-serif\">\n"
      "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
      "<text x=\"16\" y=\"26\" font-size=\"16\" font-weight=\"bold\">{2}: {3} affinity</text>\n"
      "<text x=\"16\" y=\"46\" font-size=\"12\" fill=\"#444\">{4} vcpus (rows) × {5} CPUs (columns), {6} NUMA "
      "node{7}{8}</text>\n",
      width, height, escape_xml(fmt::format("domain {} ({})", p.domain.domain.id, p.domain.domain.name)), p.kind, rows,
      ncpu, p.host.numa_nodes.size(), p.host.numa_nodes.size() == 1 ? "" : "s",
      heat ? fmt::format("; heat map: a cell is {} CPUs × {} vcpu{}, coloured when any of them is allowed", cpb, vpb,
                         vpb > 1 ? "s" : "")
      : p.host.threads_per_core > 1
          ? fmt::format("; {} threads per core, a line over the columns of each core's SMT siblings",
                        p.host.threads_per_core)
          : "");

  // Group headings, group backgrounds (offline CPUs darker) and CPU numbers.
  const double label_px = 7.0 * static_cast<double>(std::to_string(ncpu ? ncpu - 1 : 0).size()) + 8;
  const std::size_t label_every = pow2_at_least(label_px / cw);  // columns between CPU labels
  for (std::size_t i = 0; i < groups.size(); ++i) {
    const auto& g = groups[i];
    const double gw = static_cast<double>(g.columns.size()) * cw;
    const std::string head =
        !g.node ? "not present"
                : fmt::format("node {}{}", *g.node, g.socket ? fmt::format(" · socket {}", *g.socket) : "");
    if (i == 0 || g.node != groups[i - 1].node || gw >= 70)
      s += fmt::format("<text x=\"{:.1f}\" y=\"84\" font-size=\"12\" font-weight=\"bold\">{}</text>\n", group_x[i],
                       gw >= 70 || i + 1 == groups.size() ? head : head.substr(0, head.find(' ') + 2));
    for (std::size_t c = 0; c < g.columns.size(); ++c) {
      const double cx = group_x[i] + static_cast<double>(c) * cw;
      const bool online = std::any_of(g.columns[c].begin(), g.columns[c].end(),
                                      [&](std::size_t cpu) { return p.host.online.test(cpu); });
      s += fmt::format("<rect x=\"{:.2f}\" y=\"{}\" width=\"{:.2f}\" height=\"{:.2f}\" fill=\"{}\"/>\n", cx, gy, cw,
                       gy_end - gy, online ? "#f2f2f2" : "#bdbdbd");
      if (c % label_every == 0)
        s += fmt::format("<text x=\"{:.1f}\" y=\"{}\" font-size=\"10\" fill=\"#444\"{}>{}</text>\n",
                         cx + (heat ? 0 : cw / 2), gy - 6, heat ? "" : " text-anchor=\"middle\"", g.columns[c].front());
    }
    if (!heat)  // SMT siblings: a line over the columns of each core
      for (auto [first, count] : core_runs(p.host, g))
        if (count > 1)
          s += fmt::format(
              "<line x1=\"{:.2f}\" x2=\"{:.2f}\" y1=\"{:.1f}\" y2=\"{:.1f}\" stroke=\"#666\" stroke-width=\"2\"/>\n",
              group_x[i] + static_cast<double>(first) * cw + 1,
                           group_x[i] + static_cast<double>(first + count) * cw - 1, gy - 2, gy - 2);
  }
  // Cells: runs of equal colour in a row are merged into one rect.
  s += "<g shape-rendering=\"crispEdges\">\n";
  for (std::size_t r = 0; r < nrows; ++r) {
    std::vector<CpuMap> maps;
    for (std::size_t v = r * vpb; v < std::min(rows, (r + 1) * vpb); ++v) maps.push_back(p.map.row(v));
    for (std::size_t i = 0; i < groups.size(); ++i) {
      std::string run_fill;
      double run_x = 0, run_w = 0;
      auto flush = [&] {
        if (!run_fill.empty())
          s += fmt::format("<rect x=\"{:.2f}\" y=\"{:.2f}\" width=\"{:.2f}\" height=\"{:.2f}\" {}/>\n",
                           run_x + (gap ? 1 : 0), gy + static_cast<double>(r) * rh + (gap ? 1 : 0),
                           run_w - (gap ? 2 : 0), rh - (gap ? 2 : 0), run_fill);
        run_fill.clear();
      };
      for (std::size_t c = 0; c < groups[i].columns.size(); ++c) {
        std::size_t allowed = 0, most_shared = 0, offline = 0;
        for (const CpuMap& m : maps)
          for (std::size_t cpu : groups[i].columns[c])
            if (m.test(cpu))
              ++allowed, offline += !p.host.online.test(cpu), most_shared = std::max(most_shared, share[cpu]);
        // Pale when every allowed CPU of the cell is offline.
        const std::string fill = allowed == 0 ? ""
                                              : fmt::format("fill=\"{}\"{}", share_colour(most_shared),
                                                            offline == allowed ? " fill-opacity=\"0.35\"" : "");
        const double cx = group_x[i] + static_cast<double>(c) * cw;
        if (gap || fill != run_fill || cx > run_x + run_w + 0.01) flush(), run_fill = fill, run_x = cx, run_w = 0;
        run_w += cw;
      }
      flush();
    }
  }
  s += "</g>\n";
  // Where each vcpu is: a filled dot where it runs, a ring where it last ran. A heat map marks
  // running vcpus only, with a black cell, so the affinity under the marks stays visible.
  for (const VcpuMetrics& m : p.domain.vcpus) {
    if (!m.cpu || *m.cpu >= ncpu || m.state == VcpuState::offline || (heat && m.state != VcpuState::running)) continue;
    const double cx = cpu_x[*m.cpu], cy = gy + static_cast<double>(m.vcpu / vpb) * rh;
    if (heat)
      s += fmt::format("<rect x=\"{:.2f}\" y=\"{:.2f}\" width=\"{:.2f}\" height=\"{:.2f}\"/>\n", cx, cy, cw, rh);
    else
      s += fmt::format(
          "<circle cx=\"{:.2f}\" cy=\"{:.2f}\" r=\"{:.2f}\" {}/>\n", cx + cw / 2, cy + rh / 2, cw * 0.28,
          m.state == VcpuState::running ? "fill=\"black\"" : "fill=\"white\" stroke=\"black\" stroke-width=\"1.2\"");
  }
  // Row labels: every vcpu when there is room, else a tick every 2^k vcpus.
  const std::size_t tick = row_text ? 1 : pow2_at_least(16 / rh);
  for (std::size_t r = 0; r < nrows; r += tick) {
    const double y = gy + static_cast<double>(r) * rh;
    const bool offline = vpb == 1 && p.domain.vcpus.size() > r && p.domain.vcpus[r].state == VcpuState::offline;
    s += fmt::format("<text x=\"72\" y=\"{:.1f}\" font-size=\"10\" text-anchor=\"end\" fill=\"{}\">vcpu {}</text>\n",
                     y + (row_text ? rh / 2 + 3.5 : 3.5), offline ? "#999" : "#222", r * vpb);
    if (!row_text) s += fmt::format("<line x1=\"74\" x2=\"80\" y1=\"{0:.1f}\" y2=\"{0:.1f}\" stroke=\"#444\"/>\n", y);
    if (row_text)
      s += fmt::format("<text x=\"{:.1f}\" y=\"{:.1f}\" font-size=\"10\" fill=\"#444\">{}{}</text>\n", gx_end + 8,
                       y + rh / 2 + 3.5, escape_xml(p.map.row(r).to_string(TextForm::xl_list).substr(0, 28)),
                       offline ? " (offline)" : "");
  }
  // Below: how many vcpus may use each CPU, and the legend.
  const double by = gy_end + 10;
  s += fmt::format("<text x=\"72\" y=\"{:.1f}\" font-size=\"10\" text-anchor=\"end\">vcpus/CPU</text>\n", by + 14);
  for (std::size_t i = 0; i < groups.size(); ++i)
    for (std::size_t c = 0; c < groups[i].columns.size(); ++c) {
      std::size_t n = 0;
      for (std::size_t cpu : groups[i].columns[c]) n = std::max(n, share[cpu]);
      const double h = most ? 24.0 * static_cast<double>(n) / static_cast<double>(most) : 0;
      if (n)
        s += fmt::format("<rect x=\"{:.2f}\" y=\"{:.2f}\" width=\"{:.2f}\" height=\"{:.2f}\" fill=\"{}\"/>\n",
                         group_x[i] + static_cast<double>(c) * cw, by + 24 - h, cw, h, share_colour(n));
    }
  s += fmt::format("<text x=\"{:.1f}\" y=\"{:.1f}\" font-size=\"10\" fill=\"#444\">max {}</text>\n", gx_end + 6,
                   by + 14, most);
  const double ly = by + 50;
  double lx = 16;
  const std::pair<std::string_view, std::string_view> legend[] = {
      {"#2166ac", "1 vcpu on the CPU"},   {"#f4a582", "2 vcpus"},     {"#d6604d", "3-4 vcpus"},
      {"#99000d", "5 or more"},           {"#f2f2f2", "not allowed"}, {"#bdbdbd", "CPU offline"},
      {"#c69c96", "allowed, CPU offline"}};
  for (auto [colour, text] : legend) {
    s += fmt::format(
        "<rect x=\"{:.0f}\" y=\"{:.0f}\" width=\"12\" height=\"12\" fill=\"{}\" stroke=\"#888\" "
        "stroke-width=\"0.5\"/><text x=\"{:.0f}\" y=\"{:.0f}\" font-size=\"11\">{}</text>\n",
        lx, ly, colour, lx + 16, ly + 10, text);
    lx += 30 + 6.5 * static_cast<double>(text.size());
  }
  s += fmt::format(
      "<circle cx=\"22\" cy=\"{0:.0f}\" r=\"4\" fill=\"black\"/><text x=\"32\" y=\"{1:.0f}\" font-size=\"11\">running "
      "here</text>"
      "<circle cx=\"132\" cy=\"{0:.0f}\" r=\"4\" fill=\"white\" stroke=\"black\" stroke-width=\"1.2\"/><text x=\"142\" "
      "y=\"{1:.0f}\" font-size=\"11\">last ran here (blocked or waiting)</text>\n",
      ly + 30, ly + 34);
  return s + "</svg>\n";
}

}  // namespace examples
