// What vcpumap allocates, counted by a replaced global operator new (this program only):
// CpuMap::parse makes one allocation and keeps no slack, and a large AffinityMatrix freed
// and made again of the same size reuses its storage (detail::MatrixStorageCache) instead
// of mapping new pages.
#include <vcpumap/cpulist.hpp>
#include <vcpumap/mock.hpp>
#include <vcpumap/model.hpp>

#include <cstddef>
#include <cstdlib>
#include <new>
#include <string>

#include <catch2/catch.hpp>

#include "counting_new.hpp"

using vcpumap_test::allocations;

using namespace vcpumap;

namespace {

/// The operator new calls `fn` makes (0 when they are not counted: see above).
template <class Fn>
std::size_t allocations_of(Fn fn) {
#if VCPUMAP_TEST_COUNTS_ALLOCATIONS
  const std::size_t before = allocations;
  fn();
  return allocations - before;
#else
  fn();
  return 0;
#endif
}

std::string every_other(std::size_t universe) {
  std::string s;
  for (std::size_t c = 0; c < universe; c += 2) {
    if (!s.empty()) s += ',';
    s += std::to_string(c);
  }
  return s;
}

}  // namespace

TEST_CASE("parse: one allocation, no slack", "[alloc]") {
  if (!VCPUMAP_TEST_COUNTS_ALLOCATIONS) {
    WARN("allocations are not counted under AddressSanitizer");
    return;
  }
  for (std::size_t universe : {8, 64, 65, 4096, 16384}) {
    const std::string text = every_other(universe);
    INFO(universe << " CPUs");
    CpuMap m;
    CHECK(allocations_of([&] { m = CpuMap::parse(text); }) == 1);
    const std::size_t last = (universe - 1) / 2 * 2;  // the highest even CPU below universe
    CHECK(m.universe() == last + 1);
    CHECK(m.bits().capacity() == detail::blocks_for(m.universe()) * detail::block_bits);
    CHECK(m.count() == last / 2 + 1);
  }
  CpuMap m;
  CHECK(allocations_of([&] { m = CpuMap::parse("0-3,^2,8-15"); }) == 1);
  CHECK(allocations_of([&] { m = CpuMap::parse("0-4095"); }) == 1);
  const std::string alt = every_other(4096);
  CHECK(allocations_of([&] { m = CpuMap::parse(alt, {.universe = 4096}); }) == 1);
  CHECK(m.bits().capacity() == 4096);
}

TEST_CASE("parse: beyond the stack buffer and through the general reader, still no slack", "[alloc]") {
  // 100,000 CPUs: past the 16,384 the fast path gathers on the stack.
  const CpuMap wide = CpuMap::parse(every_other(100000));
  CHECK(wide.universe() == 99999);
  CHECK(wide.bits().capacity() == detail::blocks_for(99999) * detail::block_bits);
  CHECK(wide.count() == 50000);
  // Spaces and strides take the general reader.
  const CpuMap general = CpuMap::parse("0-4095:1/2 , 5000");
  CHECK(general.universe() == 5001);
  CHECK(general.bits().capacity() == detail::blocks_for(5001) * detail::block_bits);
  CHECK(general.count() == 2049);
}

TEST_CASE("a large matrix made again reuses the storage of one freed", "[alloc]") {
  const std::size_t rows = 64, cols = 65536;  // 512 KiB: above glibc's mmap threshold
  { AffinityMatrix warm(rows, cols); }
  const std::size_t n = allocations_of([&] {
    AffinityMatrix m(rows, cols);
    m.set(63, 65535);
    CHECK(m.test(63, 65535));
  });
  CHECK(n == 0);  // reused (and under AddressSanitizer, where the cache is off, not counted)
  // The storage reused is cleared like new.
  AffinityMatrix again(rows, cols);
  CHECK(!again.test(63, 65535));
  for (Word w : again.words()) REQUIRE(w == 0);
}

TEST_CASE("a fresh snapshot of 64 x 65,536 costs no new matrix storage once warm", "[alloc]") {
  HostInfo host;
  host.possible = host.present = host.online = CpuMap::full(65536);
  host.numa_nodes = {CpuMap::full(65536)};
  MockHypervisor hv(host);
  DomainInfo info;
  info.id = DomainId{1};
  info.name = "wide";
  info.flags.running = true;
  info.max_vcpus = 64;
  hv.add_domain(info, {});
  (void)hv.snapshot(DomainId{1});
  const DomainSnapshot a = hv.snapshot(DomainId{1});
  const DomainSnapshot b = hv.snapshot(DomainId{1});
  CHECK(a.hard == b.hard);
  CHECK(a.effective == b.effective);
  CHECK(b.effective.row(5) == CpuMap::full(65536));
}
