// hypervisor-bench — vcpumap's MockHypervisor against libvirt's in-process test driver.
//
// Both backends are in-memory mocks of a hypervisor, so what is compared is the cost of the
// library paths themselves: vcpumap's one-call snapshots against libvirt's public API on its
// "test" driver (libvirt.so, no daemon). Each benchmark is named "<case>/<impl>/<shape>":
//
//   matrix/vcpumap/VxN           MockHypervisor::snapshot(domain) (scope full: metrics of every
//                                vcpu, hard, soft and effective matrices) of a domain of V vcpus
//                                on a host of N CPUs, returned in a new DomainSnapshot
//   matrix/vcpumap_into/VxN      the same snapshot into one DomainSnapshot reused from call to
//                                call (snapshot(domain, scope, into)), as libvirt's callers
//                                pass the same cpumaps buffer each time
//   matrix/memcpy_floor/VxN      memcpy of as many bytes as that snapshot writes (3 matrices of
//                                V x N bits + V VcpuMetrics): what no implementation beats
//   matrix/libvirt_pininfo/VxN   virDomainGetVcpuPinInfo: every vcpu's pin map (cpumaps layout)
//   matrix/libvirt_getvcpus/VxN  virDomainGetVcpus with cpumaps: virVcpuInfo + map of each vcpu
//   pin/vcpumap/VxN              MockHypervisor::pin_vcpu of vcpu 0 (hard map), two maps in turn
//   pin/libvirt/VxN              virDomainPinVcpu of vcpu 0, the same two maps as bytes
//   listing/vcpumap/100x4        MockHypervisor::snapshot_all(): 100 domains of 4 vcpus, 16 CPUs
//   listing/vcpumap_into/100x4   the same into one reused HostSnapshot
//   listing/libvirt/100x4        virConnectListAllDomains, then virDomainGetVcpus (with cpumaps)
//                                and virDomainGetVcpuPinInfo of each domain, virDomainFree
//   copy/matrix/512x4096         copy-construction of a 512x4096 AffinityMatrix
//   copy/matrix_assign/512x4096  copy-assignment into a matrix of that shape (no allocation)
//   copy/memcpy/512x4096         memcpy of the same number of bytes between two buffers
//   call/libvirt_getstate        virDomainGetState: libvirt's fixed cost of one API call
//   flat/vcpumap/64xN            (vcpumap only) the fresh snapshot of a 64-vcpu domain on hosts
//   flat/vcpumap_into/64xN       of N = 64 ... 65,536 CPUs, and the reused one: its time per
//                                output word (4 matrices of 64 x ceil(N/64) words) should not
//                                grow with N
//
// The shapes (V vcpus x N host CPUs) are 4x16, 64x256 and 512x4096. Both backends hold the
// same data: every vcpu v is pinned (hard) to the CPUs of socket v%2 plus CPU v%N, soft "all".
// libvirt reads it from a <node> document written at start into a temporary directory (one
// file per host; see write_node_xml) and opened as test:///<dir>/<file>.xml; the mock is built
// with add_domain/set_affinity. Before any timing, the libvirt maps are checked to be byte for
// byte the mock's hard matrix in libvirt's layout (AffinityMatrix::to_cpumaps).
//
// After the run, a table gives libvirt time / vcpumap time per case (above 1: vcpumap faster)
// and matrix copy time / memcpy time, each target with MET or MISS for the build it ran in
// (named in the output), reported and never asserted (the exit status says only whether the
// benchmarks ran): a reused snapshot and the host listing >= 20x faster than libvirt, a fresh
// snapshot >= 2x faster than virDomainGetVcpuPinInfo at every shape, matrix copy within 2x
// of memcpy; then the time per output word of the 64-vcpu series. With repetitions, the
// table uses the median of each benchmark.
//
// Both sides are in-process mocks: at 4x16 most of libvirt's time is its fixed cost per API
// call (call/libvirt_getstate), which the table prints beside that ratio. What users see
// against a real libvirt daemon and a real guest is linux-bench's business
// (tests/bench_linux).
//
//   build-dir/tests/bench_hypervisor/hypervisor-bench [--benchmark_repetitions=5]
//       [--benchmark_filter=512x4096] [--keep-xml]     (--keep-xml: leave the XML files)

#include <vcpumap/affinity_matrix.hpp>
#include <vcpumap/cpu_map.hpp>
#include <vcpumap/hypervisor.hpp>
#include <vcpumap/mock.hpp>
#include <vcpumap/model.hpp>

#include "../bench/ratio_reporter.hpp"

#include <benchmark/benchmark.h>
#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include <fmt/format.h>

namespace {

using vcpumap::AffinityMatrix;
using vcpumap::CpuMap;
using vcpumap::DomainId;
using vcpumap::MockHypervisor;

// ---------------------------------------------------------------------------------------
// The hosts and domains, described once and built in both backends.

struct Shape {
  unsigned vcpus;
  unsigned cpus;
  std::string name() const { return fmt::format("{}x{}", vcpus, cpus); }
};

constexpr Shape matrix_shapes[] = {{4, 16}, {64, 256}, {512, 4096}};
constexpr unsigned listing_domains = 100;
constexpr unsigned listing_vcpus = 4;
constexpr unsigned listing_cpus = 16;  // the host of test:///default
const std::string listing_name = fmt::format("{}x{}", listing_domains, listing_vcpus);
constexpr Shape copy_shape{512, 4096};
/// The series whose time per output word should stay flat as the host grows.
constexpr Shape flat_shapes[] = {{64, 64}, {64, 1024}, {64, 4096}, {64, 16384}, {64, 65536}};

#ifndef VCPUMAP_BENCH_BUILD
#define VCPUMAP_BENCH_BUILD "unknown build (not configured by meson)"
#endif

/// Topology of an N-CPU host (N a multiple of 4): 1 NUMA node, 2 sockets, 2 threads per core.
/// libvirt's test driver takes nodes*sockets*cores*threads as the host's CPU count
/// (VIR_NODEINFO_MAXCPUS), which sizes the maps it returns.
struct Topology {
  unsigned nodes = 1, sockets = 2, cores, threads = 2;
  explicit Topology(unsigned cpus) : cores(cpus / 4) {}
};

/// The hard affinity of vcpu v on an N-CPU host: the CPUs of socket v%2, plus CPU v%N.
CpuMap hard_map(unsigned v, unsigned cpus) {
  CpuMap m(cpus);
  const unsigned half = cpus / 2, lo = (v % 2) * half;
  m.set(lo, lo + half - 1);
  m.set(v % cpus);
  return m;
}

vcpumap::HostInfo mock_host(unsigned cpus) {
  const Topology t(cpus);
  vcpumap::HostInfo h;
  h.possible = h.present = h.online = CpuMap::full(cpus);
  h.threads_per_core = t.threads;
  h.cores_per_socket = t.cores;
  h.sockets = t.sockets;
  h.numa_nodes = {CpuMap::full(cpus)};
  return h;
}

void add_mock_domain(MockHypervisor& hv, unsigned id, const std::string& name, unsigned vcpus, unsigned cpus) {
  vcpumap::DomainInfo info;
  info.id = DomainId{id};
  info.name = name;
  info.flags.running = true;
  info.max_vcpus = vcpus;
  std::vector<vcpumap::VcpuMetrics> metrics;
  for (unsigned v = 0; v < vcpus; ++v) {
    const CpuMap hard = hard_map(v, cpus);
    metrics.push_back({v, vcpumap::VcpuState::running, std::chrono::milliseconds(10 * (v + 1)),
                       static_cast<unsigned>(*hard.last()), std::nullopt});
  }
  hv.add_domain(info, metrics);
  for (unsigned v = 0; v < vcpus; ++v) hv.set_affinity(DomainId{id}, v, hard_map(v, cpus), CpuMap::full(cpus));
}

std::string domain_xml(const std::string& name, unsigned vcpus, unsigned cpus) {
  std::string xml = fmt::format(
      "  <domain type='test'>\n    <name>{}</name>\n    <memory unit='KiB'>1048576</memory>\n"
      "    <vcpu placement='static'>{}</vcpu>\n    <os><type>hvm</type></os>\n    <cputune>\n",
      name, vcpus);
  // vcpumap's canonical cpulist ("0-7,9") is libvirt's cpuset syntax.
  for (unsigned v = 0; v < vcpus; ++v)
    xml += fmt::format("      <vcpupin vcpu='{}' cpuset='{}'/>\n", v, hard_map(v, cpus).to_string());
  xml += "    </cputune>\n  </domain>\n";
  return xml;
}

/// A <node> document for libvirt's test driver: the host's CPUs (<cpu>: nodes, sockets,
/// cores, threads) and the domains, which the driver starts (running) when it opens the file.
void write_node_xml(const std::filesystem::path& file, unsigned cpus, const std::vector<std::string>& domains) {
  const Topology t(cpus);
  std::ofstream out(file);
  out << "<node>\n";
  for (const std::string& d : domains) out << d;
  out << fmt::format(
      "  <cpu>\n    <mhz>2400</mhz>\n    <model>i686</model>\n    <nodes>{}</nodes>\n    <sockets>{}</sockets>\n"
      "    <cores>{}</cores>\n    <threads>{}</threads>\n  </cpu>\n  <memory>{}</memory>\n</node>\n",
      t.nodes, t.sockets, t.cores, t.threads, 1024ULL * 1024 * 1024);
  if (!out.flush()) throw std::runtime_error("cannot write " + file.string());
}

// ---------------------------------------------------------------------------------------
// libvirt plumbing.

std::string libvirt_error(std::string_view what) {
  const char* msg = virGetLastErrorMessage();
  return fmt::format("{}: {}", what, msg ? msg : "unknown error");
}

struct Connection {
  virConnectPtr conn = nullptr;
  std::vector<virDomainPtr> domains;  // by name order of creation
  explicit Connection(const std::filesystem::path& xml) {
    const std::string uri = "test://" + std::filesystem::absolute(xml).string();
    conn = virConnectOpen(uri.c_str());
    if (!conn) throw std::runtime_error(libvirt_error("virConnectOpen(" + uri + ")"));
  }
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;
  ~Connection() {
    for (virDomainPtr d : domains) virDomainFree(d);
    if (conn) virConnectClose(conn);
  }
  virDomainPtr lookup(const std::string& name) {
    virDomainPtr d = virDomainLookupByName(conn, name.c_str());
    if (!d) throw std::runtime_error(libvirt_error("virDomainLookupByName(" + name + ")"));
    domains.push_back(d);
    return d;
  }
};

/// One domain of `shape` in both backends, with the buffers a libvirt client reuses.
struct MatrixCase {
  Shape shape;
  MockHypervisor mock;
  DomainId id{1};
  std::unique_ptr<Connection> lv;
  virDomainPtr dom = nullptr;
  int maplen;
  std::vector<unsigned char> maps;
  std::vector<virVcpuInfo> info;
  std::vector<std::uint64_t> floor_src, floor_dst;  // the bytes a full snapshot writes
  vcpumap::VcpuPin pins[2];                // vcpu 0: its own map, then socket (v+1)%2's
  std::vector<unsigned char> pin_bytes[2];  // the same, in libvirt's layout

  MatrixCase(Shape s, const std::filesystem::path& dir)
      : shape(s), mock(mock_host(s.cpus)), maplen(VIR_CPU_MAPLEN(s.cpus)) {
    add_mock_domain(mock, 1, "big", s.vcpus, s.cpus);
    const auto xml = dir / ("matrix-" + s.name() + ".xml");
    write_node_xml(xml, s.cpus, {domain_xml("big", s.vcpus, s.cpus)});
    lv = std::make_unique<Connection>(xml);
    dom = lv->lookup("big");
    maps.assign(std::size_t{s.vcpus} * maplen, 0);
    info.assign(s.vcpus, virVcpuInfo{});
    const std::size_t floor_bytes = 3 * std::size_t{s.vcpus} * ((s.cpus + 63) / 64) * 8 +
                                    std::size_t{s.vcpus} * sizeof(vcpumap::VcpuMetrics);
    floor_src.assign((floor_bytes + 7) / 8, 0x5555);
    floor_dst.assign(floor_src.size(), 0);
    for (int i = 0; i < 2; ++i) {
      pins[i].hard = hard_map(i, s.cpus);
      pin_bytes[i] = pins[i].hard->to_bytes();
    }
  }
};

/// One domain of `shape` in the mock only (libvirt's test driver is not asked for hosts of
/// 65,536 CPUs).
struct FlatCase {
  Shape shape;
  MockHypervisor mock;
  DomainId id{1};
  explicit FlatCase(Shape s) : shape(s), mock(mock_host(s.cpus)) { add_mock_domain(mock, 1, "big", s.vcpus, s.cpus); }
  /// The words a full snapshot writes: hard, soft, effective and limit matrices.
  double output_words() const { return 4.0 * shape.vcpus * ((shape.cpus + 63) / 64); }
};

/// 100 domains of 4 vcpus on a 16-CPU host, in both backends.
struct ListingCase {
  MockHypervisor mock;
  std::unique_ptr<Connection> lv;
  int maplen = VIR_CPU_MAPLEN(listing_cpus);
  std::vector<unsigned char> maps, pinmaps;
  std::vector<virVcpuInfo> info;

  explicit ListingCase(const std::filesystem::path& dir) : mock(mock_host(listing_cpus)) {
    std::vector<std::string> xml;
    for (unsigned d = 1; d <= listing_domains; ++d) {
      const std::string name = fmt::format("guest{:03}", d);
      add_mock_domain(mock, d, name, listing_vcpus, listing_cpus);
      xml.push_back(domain_xml(name, listing_vcpus, listing_cpus));
    }
    const auto file = dir / ("listing-" + listing_name + ".xml");
    write_node_xml(file, listing_cpus, xml);
    lv = std::make_unique<Connection>(file);
    maps.assign(std::size_t{listing_vcpus} * maplen, 0);
    pinmaps.assign(std::size_t{listing_vcpus} * maplen, 0);
    info.assign(listing_vcpus, virVcpuInfo{});
  }
};

// ---------------------------------------------------------------------------------------
// Self-check: both backends report the same maps, in the same layout.

void check(bool ok, const std::string& what) {
  if (!ok) throw std::runtime_error("self-check failed: " + what);
}

void self_check(MatrixCase& c) {
  const std::string who = "matrix " + c.shape.name();
  virNodeInfo node;
  check(virNodeGetInfo(c.lv->conn, &node) == 0, libvirt_error("virNodeGetInfo"));
  check(VIR_NODEINFO_MAXCPUS(node) == c.shape.cpus,
        fmt::format("{}: libvirt's host has {} CPUs", who, VIR_NODEINFO_MAXCPUS(node)));

  const vcpumap::DomainSnapshot snap = c.mock.snapshot(c.id);
  check(snap.hard.rows() == c.shape.vcpus && snap.hard.cols() == c.shape.cpus, who + ": mock matrix shape");
  const std::vector<std::uint8_t> expect = snap.hard.to_cpumaps(static_cast<std::size_t>(c.maplen));

  std::fill(c.maps.begin(), c.maps.end(), 0);
  int n = virDomainGetVcpuPinInfo(c.dom, static_cast<int>(c.shape.vcpus), c.maps.data(), c.maplen, 0);
  check(n == static_cast<int>(c.shape.vcpus), libvirt_error(who + ": virDomainGetVcpuPinInfo"));
  check(std::equal(expect.begin(), expect.end(), c.maps.begin()), who + ": virDomainGetVcpuPinInfo maps differ");

  std::fill(c.maps.begin(), c.maps.end(), 0);
  n = virDomainGetVcpus(c.dom, c.info.data(), static_cast<int>(c.shape.vcpus), c.maps.data(), c.maplen);
  check(n == static_cast<int>(c.shape.vcpus), libvirt_error(who + ": virDomainGetVcpus"));
  check(std::equal(expect.begin(), expect.end(), c.maps.begin()), who + ": virDomainGetVcpus maps differ");
  for (unsigned v = 0; v < c.shape.vcpus; ++v)
    check(c.info[v].state == VIR_VCPU_RUNNING && snap.vcpus[v].cpu && c.info[v].cpu == int(*snap.vcpus[v].cpu),
          fmt::format("{}: vcpu {} state/cpu differ", who, v));

  // A pin round trip reads back the same in both.
  check(virDomainPinVcpu(c.dom, 0, c.pin_bytes[1].data(), c.maplen) == 0, libvirt_error(who + ": virDomainPinVcpu"));
  (void)c.mock.pin_vcpu(c.id, 0, c.pins[1]);
  check(virDomainGetVcpuPinInfo(c.dom, 1, c.maps.data(), c.maplen, 0) == 1 &&
            std::equal(c.pin_bytes[1].begin(), c.pin_bytes[1].end(), c.maps.begin()) &&
            c.mock.snapshot(c.id).hard.row(0) == *c.pins[1].hard,
        who + ": pin round trip");
  check(virDomainPinVcpu(c.dom, 0, c.pin_bytes[0].data(), c.maplen) == 0, libvirt_error(who + ": virDomainPinVcpu"));
  (void)c.mock.pin_vcpu(c.id, 0, c.pins[0]);
}

void self_check(ListingCase& c) {
  const vcpumap::HostSnapshot all = c.mock.snapshot_all();
  check(all.domains.size() == listing_domains, "listing: mock domain count");
  virDomainPtr* doms = nullptr;
  const int n = virConnectListAllDomains(c.lv->conn, &doms, 0);
  check(n == static_cast<int>(listing_domains), libvirt_error("listing: virConnectListAllDomains"));
  std::map<std::string, std::vector<std::uint8_t>> expect;
  for (const auto& d : all.domains) expect[d.domain.name] = d.hard.to_cpumaps(static_cast<std::size_t>(c.maplen));
  bool same = true;
  for (int i = 0; i < n; ++i) {
    const char* name = virDomainGetName(doms[i]);
    const auto it = expect.find(name ? name : "");
    same = same && it != expect.end() &&
           virDomainGetVcpuPinInfo(doms[i], listing_vcpus, c.pinmaps.data(), c.maplen, 0) == int(listing_vcpus) &&
           std::equal(it->second.begin(), it->second.end(), c.pinmaps.begin());
    virDomainFree(doms[i]);
  }
  free(doms);
  check(same, "listing: libvirt's maps differ from the mock's");
}

// ---------------------------------------------------------------------------------------
// The benchmarks.

void bench_matrix_vcpumap(benchmark::State& state, MatrixCase* c) {
  for (auto _ : state) {
    vcpumap::DomainSnapshot s = c->mock.snapshot(c->id);
    benchmark::DoNotOptimize(s.effective.words().data());
    benchmark::ClobberMemory();
  }
  state.counters["calls"] = static_cast<double>(c->mock.last_call_count());
}

void bench_matrix_vcpumap_into(benchmark::State& state, MatrixCase* c) {
  vcpumap::DomainSnapshot s;
  for (auto _ : state) {
    c->mock.snapshot(c->id, vcpumap::SnapshotScope::full, s);
    benchmark::DoNotOptimize(s.effective.words().data());
    benchmark::ClobberMemory();
  }
  state.counters["calls"] = static_cast<double>(c->mock.last_call_count());
}

void bench_flat_vcpumap(benchmark::State& state, FlatCase* c) {
  for (auto _ : state) {
    vcpumap::DomainSnapshot s = c->mock.snapshot(c->id);
    benchmark::DoNotOptimize(s.effective.words().data());
    benchmark::ClobberMemory();
  }
  state.counters["words"] = c->output_words();
}

void bench_flat_vcpumap_into(benchmark::State& state, FlatCase* c) {
  vcpumap::DomainSnapshot s;
  for (auto _ : state) {
    c->mock.snapshot(c->id, vcpumap::SnapshotScope::full, s);
    benchmark::DoNotOptimize(s.effective.words().data());
    benchmark::ClobberMemory();
  }
  state.counters["words"] = c->output_words();
}

void bench_matrix_memcpy_floor(benchmark::State& state, MatrixCase* c) {
  for (auto _ : state) {
    std::memcpy(c->floor_dst.data(), c->floor_src.data(), c->floor_src.size() * 8);
    benchmark::DoNotOptimize(c->floor_dst.data());
    benchmark::ClobberMemory();
  }
}

void bench_matrix_libvirt_pininfo(benchmark::State& state, MatrixCase* c) {
  const int n = static_cast<int>(c->shape.vcpus);
  for (auto _ : state) {
    if (virDomainGetVcpuPinInfo(c->dom, n, c->maps.data(), c->maplen, 0) != n) {
      state.SkipWithError(libvirt_error("virDomainGetVcpuPinInfo").c_str());
      break;
    }
    benchmark::ClobberMemory();
  }
}

void bench_matrix_libvirt_getvcpus(benchmark::State& state, MatrixCase* c) {
  const int n = static_cast<int>(c->shape.vcpus);
  for (auto _ : state) {
    if (virDomainGetVcpus(c->dom, c->info.data(), n, c->maps.data(), c->maplen) != n) {
      state.SkipWithError(libvirt_error("virDomainGetVcpus").c_str());
      break;
    }
    benchmark::ClobberMemory();
  }
}

void bench_pin_vcpumap(benchmark::State& state, MatrixCase* c) {
  unsigned i = 0;
  for (auto _ : state) {
    vcpumap::PinResult r = c->mock.pin_vcpu(c->id, 0, c->pins[++i & 1]);
    benchmark::DoNotOptimize(r.hard.words().data());
  }
  (void)c->mock.pin_vcpu(c->id, 0, c->pins[0]);  // leave vcpu 0 as it was
}

void bench_pin_libvirt(benchmark::State& state, MatrixCase* c) {
  unsigned i = 0;
  for (auto _ : state) {
    if (virDomainPinVcpu(c->dom, 0, c->pin_bytes[++i & 1].data(), c->maplen) != 0) {
      state.SkipWithError(libvirt_error("virDomainPinVcpu").c_str());
      break;
    }
  }
  (void)virDomainPinVcpu(c->dom, 0, c->pin_bytes[0].data(), c->maplen);
}

void bench_listing_vcpumap(benchmark::State& state, ListingCase* c) {
  for (auto _ : state) {
    vcpumap::HostSnapshot all = c->mock.snapshot_all();
    benchmark::DoNotOptimize(all.domains.data());
    benchmark::ClobberMemory();
  }
  state.counters["calls"] = static_cast<double>(c->mock.last_call_count());
}

void bench_listing_vcpumap_into(benchmark::State& state, ListingCase* c) {
  vcpumap::HostSnapshot all;
  for (auto _ : state) {
    c->mock.snapshot_all(vcpumap::SnapshotScope::full, all);
    benchmark::DoNotOptimize(all.domains.data());
    benchmark::ClobberMemory();
  }
  state.counters["calls"] = static_cast<double>(c->mock.last_call_count());
}

void bench_listing_libvirt(benchmark::State& state, ListingCase* c) {
  const int n = static_cast<int>(listing_vcpus);
  std::size_t calls = 0;
  for (auto _ : state) {
    virDomainPtr* doms = nullptr;
    const int count = virConnectListAllDomains(c->lv->conn, &doms, 0);
    if (count < 0) {
      state.SkipWithError(libvirt_error("virConnectListAllDomains").c_str());
      break;
    }
    bool ok = true;
    for (int i = 0; i < count; ++i) {
      ok = ok && virDomainGetVcpus(doms[i], c->info.data(), n, c->maps.data(), c->maplen) == n &&
           virDomainGetVcpuPinInfo(doms[i], n, c->pinmaps.data(), c->maplen, 0) == n;
      virDomainFree(doms[i]);
    }
    free(doms);
    calls = 1 + 2 * static_cast<std::size_t>(count);
    if (!ok) {
      state.SkipWithError(libvirt_error("virDomainGetVcpus/virDomainGetVcpuPinInfo").c_str());
      break;
    }
    benchmark::ClobberMemory();
  }
  state.counters["calls"] = static_cast<double>(calls);
}

void bench_call_libvirt(benchmark::State& state, MatrixCase* c) {
  for (auto _ : state) {
    int st = 0, reason = 0;
    if (virDomainGetState(c->dom, &st, &reason, 0) != 0) {
      state.SkipWithError(libvirt_error("virDomainGetState").c_str());
      break;
    }
    benchmark::DoNotOptimize(st);
  }
}

/// The source of the copies: a 512x4096 hard matrix as the mock reports it.
struct CopyCase {
  AffinityMatrix src;
  AffinityMatrix dst;
  std::size_t bytes;
  std::vector<std::uint64_t> raw_src, raw_dst;
  explicit CopyCase(MatrixCase& c) : src(c.mock.snapshot(c.id).hard), dst(src.rows(), src.cols()) {
    bytes = src.words().size_bytes();
    raw_src.assign(src.words().begin(), src.words().end());
    raw_dst.assign(raw_src.size(), 0);
  }
};

void bench_copy_matrix(benchmark::State& state, CopyCase* c) {
  for (auto _ : state) {
    AffinityMatrix copy(c->src);
    benchmark::DoNotOptimize(copy.words().data());
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * c->bytes));
}

void bench_copy_matrix_assign(benchmark::State& state, CopyCase* c) {
  for (auto _ : state) {
    c->dst = c->src;
    benchmark::DoNotOptimize(c->dst.words().data());
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * c->bytes));
}

void bench_copy_memcpy(benchmark::State& state, CopyCase* c) {
  for (auto _ : state) {
    std::memcpy(c->raw_dst.data(), c->raw_src.data(), c->bytes);
    benchmark::DoNotOptimize(c->raw_dst.data());
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * c->bytes));
}


std::string us(double ns) { return std::isnan(ns) ? "-" : fmt::format("{:.3f}", ns / 1e3); }
std::string ratio(double x) { return std::isnan(x) ? "-" : fmt::format("{:.2f}", x); }

void print_table(const RatioReporter& rep) {
  struct Row {
    std::string what, shape, base_name, other_name;  // ratio = other / base
    std::string base_bench, other_bench;
    double min_ratio = std::nan(""), max_ratio = std::nan("");
  };
  std::vector<Row> rows;
  // "reused": vcpumap fills one DomainSnapshot call after call, as libvirt fills the caller's
  // cpumaps; "fresh": each snapshot is a new DomainSnapshot (allocated, then freed).
  for (const char* peer : {"pininfo", "getvcpus"}) {
    const std::string what = peer == std::string_view("pininfo") ? "whole matrix: GetVcpuPinInfo"
                                                                 : "whole matrix: GetVcpus+maps";
    for (const Shape& s : matrix_shapes) {
      rows.push_back({what, s.name(), "reused", "libvirt", "matrix/vcpumap_into/" + s.name(),
                      fmt::format("matrix/libvirt_{}/{}", peer, s.name()), 20.0});
      // A fresh snapshot allocates its matrices: issue 14 asks >= 2x against GetVcpuPinInfo.
      rows.push_back({what, s.name(), "fresh", "libvirt", "matrix/vcpumap/" + s.name(),
                      fmt::format("matrix/libvirt_{}/{}", peer, s.name()), peer == std::string_view("pininfo") ? 2.0 : std::nan("")});
    }
  }
  // How far the reused snapshot is from copying its output bytes, and what that floor
  // would allow against GetVcpuPinInfo (libvirt / floor: the best ratio any code could reach).
  for (const Shape& s : matrix_shapes)
    rows.push_back({"snapshot vs its memcpy floor", s.name(), "floor", "reused", "matrix/memcpy_floor/" + s.name(),
                    "matrix/vcpumap_into/" + s.name()});
  for (const Shape& s : matrix_shapes)
    rows.push_back({"best possible vs PinInfo", s.name(), "floor", "libvirt", "matrix/memcpy_floor/" + s.name(),
                    "matrix/libvirt_pininfo/" + s.name()});
  for (const Shape& s : matrix_shapes)
    rows.push_back({"pin one vcpu", s.name(), "vcpumap", "libvirt", "pin/vcpumap/" + s.name(),
                    "pin/libvirt/" + s.name()});
  rows.push_back({"host listing (100 domains)", listing_name, "reused", "libvirt",
                  "listing/vcpumap_into/" + listing_name, "listing/libvirt/" + listing_name, 20.0});
  rows.push_back({"host listing (100 domains)", listing_name, "fresh", "libvirt", "listing/vcpumap/" + listing_name,
                  "listing/libvirt/" + listing_name, 20.0});
  const std::string cs = copy_shape.name();
  rows.push_back({"matrix copy (construct)", cs, "memcpy", "matrix", "copy/memcpy/" + cs, "copy/matrix/" + cs,
                  std::nan(""), 2.0});
  rows.push_back({"matrix copy (assign)", cs, "memcpy", "matrix", "copy/memcpy/" + cs, "copy/matrix_assign/" + cs,
                  std::nan(""), 2.0});

  std::printf("\nlibvirt time / vcpumap time (above 1: vcpumap faster), and matrix copy / memcpy "
              "(CPU time per operation, us)\n");
  std::printf("build: %s; compiler %s; libvirt is Debian's libvirt.so (test driver, in process)\n\n",
              VCPUMAP_BENCH_BUILD, __VERSION__);
  std::printf("%-30s %-9s %-8s %12s %-8s %12s %9s   %s\n", "case", "shape", "base", "us", "other", "us",
              "other/base", "target (reported only)");
  bool any = false;
  for (const Row& r : rows) {
    const double base = rep.time(r.base_bench), other = rep.time(r.other_bench);
    if (std::isnan(base) && std::isnan(other)) continue;
    any = true;
    const double x = other / base;
    std::string target;
    if (!std::isnan(r.min_ratio))
      target = std::isnan(x) ? "-" : fmt::format("{:<4} need >= {:.0f}", x >= r.min_ratio ? "MET" : "MISS", r.min_ratio);
    if (!std::isnan(r.max_ratio))
      target = std::isnan(x) ? "-" : fmt::format("{:<4} need <= {:.0f}", x <= r.max_ratio ? "MET" : "MISS", r.max_ratio);
    const double call = rep.time("call/libvirt_getstate");
    if (r.shape == "4x16" && r.other_name == "libvirt" && !std::isnan(call) && !std::isnan(other))
      target += fmt::format("{}[libvirt: {:.0f}% fixed per-call cost]", target.empty() ? "" : "  ",
                            100.0 * std::min(1.0, call / other));
    std::printf("%-30s %-9s %-8s %12s %-8s %12s %9s   %s\n", r.what.c_str(), r.shape.c_str(), r.base_name.c_str(),
                us(base).c_str(), r.other_name.c_str(), us(other).c_str(), ratio(x).c_str(), target.c_str());
  }
  if (!any) return;
  const double call = rep.time("call/libvirt_getstate");
  if (!std::isnan(call))
    std::printf("\nlibvirt fixed cost of one API call (virDomainGetState): %s us\n", us(call).c_str());
  const double lst = rep.time("listing/libvirt/" + listing_name);
  if (!std::isnan(lst))
    std::printf("libvirt host listing: %s us per domain (%u domains, 2 calls each + 1 listing call)\n",
                us(lst / listing_domains).c_str(), listing_domains);

  // The 64-vcpu series: time per output word (4 matrices of 64 x ceil(N/64) words), fresh and
  // reused. Flat: from each host size to the next larger, the fresh snapshot's time per word
  // grows by at most 25% (fixed costs make it fall at first; an allocation that maps and
  // faults in new pages would make it jump). fresh/reused is shown, not a target: a fresh
  // snapshot also allocates and clears what a reused one overwrites.
  std::printf("\n64-vcpu snapshot, time per output word (ns; fresh / reused)\n\n");
  std::printf("%-10s %10s %12s %12s %12s %12s %9s   %s\n", "shape", "words", "fresh us", "reused us", "fresh ns/w",
              "reused ns/w", "fresh/re", "target (reported only)");
  double prev = std::nan("");
  for (const Shape& s : flat_shapes) {
    const double fresh = rep.time("flat/vcpumap/" + s.name()), reused = rep.time("flat/vcpumap_into/" + s.name());
    if (std::isnan(fresh) && std::isnan(reused)) continue;
    const double words = 4.0 * s.vcpus * ((s.cpus + 63) / 64);
    const double per = fresh / words, ratio_fr = fresh / reused;
    std::string verdict;
    if (!std::isnan(prev))
      verdict = fmt::format("{} fresh per word <= 1.25x the smaller host's", per <= 1.25 * prev ? "MET " : "MISS");
    std::printf("%-10s %10.0f %12s %12s %12.3f %12.3f %9s   %s\n", s.name().c_str(), words, us(fresh).c_str(),
                us(reused).c_str(), per, reused / words, ratio(ratio_fr).c_str(), verdict.c_str());
    prev = per;
  }
}

// ---------------------------------------------------------------------------------------

void no_error_printing(void*, virErrorPtr) {}

/// A temporary directory for the node XML files, removed at exit unless kept.
struct TempDir {
  std::filesystem::path path;
  bool keep = false;
  TempDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "hypervisor-bench.XXXXXX").string();
    if (!mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed");
    path = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    if (keep) std::fprintf(stderr, "hypervisor-bench: node XML files kept in %s\n", path.c_str());
    else std::filesystem::remove_all(path, ec);
  }
};

int run(int argc, char** argv) {
  bool keep_xml = false;
  std::vector<char*> args;
  for (int i = 0; i < argc; ++i) {
    if (std::string_view(argv[i]) == "--keep-xml") keep_xml = true;
    else args.push_back(argv[i]);
  }
  int nargs = static_cast<int>(args.size());
  benchmark::Initialize(&nargs, args.data());
  if (benchmark::ReportUnrecognizedArguments(nargs, args.data())) return 1;

  virSetErrorFunc(nullptr, no_error_printing);
  TempDir dir;
  dir.keep = keep_xml;

  std::vector<std::unique_ptr<MatrixCase>> matrices;
  for (const Shape& s : matrix_shapes) {
    matrices.push_back(std::make_unique<MatrixCase>(s, dir.path));
    self_check(*matrices.back());
  }
  auto listing = std::make_unique<ListingCase>(dir.path);
  self_check(*listing);
  MatrixCase* copy_source = nullptr;
  for (auto& m : matrices)
    if (m->shape.vcpus == copy_shape.vcpus && m->shape.cpus == copy_shape.cpus) copy_source = m.get();
  auto copy = std::make_unique<CopyCase>(*copy_source);

  for (auto& m : matrices) {
    const std::string s = m->shape.name();
    benchmark::RegisterBenchmark(("matrix/vcpumap/" + s).c_str(), bench_matrix_vcpumap, m.get())
        ->Unit(benchmark::kMicrosecond);
    benchmark::RegisterBenchmark(("matrix/vcpumap_into/" + s).c_str(), bench_matrix_vcpumap_into, m.get())
        ->Unit(benchmark::kMicrosecond);
    benchmark::RegisterBenchmark(("matrix/memcpy_floor/" + s).c_str(), bench_matrix_memcpy_floor, m.get())
        ->Unit(benchmark::kMicrosecond);
    benchmark::RegisterBenchmark(("matrix/libvirt_pininfo/" + s).c_str(), bench_matrix_libvirt_pininfo, m.get())
        ->Unit(benchmark::kMicrosecond);
    benchmark::RegisterBenchmark(("matrix/libvirt_getvcpus/" + s).c_str(), bench_matrix_libvirt_getvcpus, m.get())
        ->Unit(benchmark::kMicrosecond);
  }
  for (auto& m : matrices) {
    const std::string s = m->shape.name();
    benchmark::RegisterBenchmark(("pin/vcpumap/" + s).c_str(), bench_pin_vcpumap, m.get())
        ->Unit(benchmark::kMicrosecond);
    benchmark::RegisterBenchmark(("pin/libvirt/" + s).c_str(), bench_pin_libvirt, m.get())
        ->Unit(benchmark::kMicrosecond);
  }
  benchmark::RegisterBenchmark(("listing/vcpumap/" + listing_name).c_str(), bench_listing_vcpumap, listing.get())
      ->Unit(benchmark::kMicrosecond);
  benchmark::RegisterBenchmark(("listing/vcpumap_into/" + listing_name).c_str(), bench_listing_vcpumap_into,
                               listing.get())
      ->Unit(benchmark::kMicrosecond);
  benchmark::RegisterBenchmark(("listing/libvirt/" + listing_name).c_str(), bench_listing_libvirt, listing.get())
      ->Unit(benchmark::kMicrosecond);
  const std::string cs = copy_shape.name();
  benchmark::RegisterBenchmark(("copy/matrix/" + cs).c_str(), bench_copy_matrix, copy.get())
      ->Unit(benchmark::kMicrosecond);
  benchmark::RegisterBenchmark(("copy/matrix_assign/" + cs).c_str(), bench_copy_matrix_assign, copy.get())
      ->Unit(benchmark::kMicrosecond);
  benchmark::RegisterBenchmark(("copy/memcpy/" + cs).c_str(), bench_copy_memcpy, copy.get())
      ->Unit(benchmark::kMicrosecond);
  benchmark::RegisterBenchmark("call/libvirt_getstate", bench_call_libvirt, matrices.front().get())
      ->Unit(benchmark::kMicrosecond);
  std::vector<std::unique_ptr<FlatCase>> flats;
  for (const Shape& s : flat_shapes) {
    flats.push_back(std::make_unique<FlatCase>(s));
    benchmark::RegisterBenchmark(("flat/vcpumap/" + s.name()).c_str(), bench_flat_vcpumap, flats.back().get())
        ->Unit(benchmark::kMicrosecond);
    benchmark::RegisterBenchmark(("flat/vcpumap_into/" + s.name()).c_str(), bench_flat_vcpumap_into,
                                 flats.back().get())
        ->Unit(benchmark::kMicrosecond);
  }

  RatioReporter reporter(isatty(STDOUT_FILENO) ? benchmark::ConsoleReporter::OO_ColorTabular
                                               : benchmark::ConsoleReporter::OO_Tabular);
  benchmark::RunSpecifiedBenchmarks(&reporter);
  print_table(reporter);
  std::fflush(stdout);
  benchmark::Shutdown();
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "hypervisor-bench: %s\n", e.what());
    return 1;
  }
}
