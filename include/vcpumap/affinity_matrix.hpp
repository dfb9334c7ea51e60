// vcpumap/affinity_matrix.hpp — the VCPU×CPU affinity bit matrix of one domain.
//
//   vcpumap::AffinityMatrix hard(4, 16);        // 4 vcpus, 16 host CPUs, no bits
//   hard.set_row(0, vcpumap::CpuMap::parse("0-3", {.universe = 16}));
//   vcpumap::VcpuSet on_cpu2 = hard.column(2);  // the vcpus allowed on CPU 2
//   fmt::print("{}", hard);                     // "0: 0-3\n1: \n2: \n3: \n"
//
// One contiguous allocation: row v is `row_words()` 64-bit words starting at v*row_words();
// bit c of a row is CPU c. Rows never hold bits at or beyond cols().
//
// - Rows are indexed by std::size_t: a vcpu number (unsigned, as VcpuSet's members and
//   VcpuMetrics::vcpu) converts without loss; column(c) gives the vcpus as a VcpuSet.
// - row(v) returns a CpuMap *copy* of `cols()` CPUs (a memcpy of one row: cheap, and it
//   keeps CpuMap a plain value with no views into a matrix that may change).
// - column(c) returns the VcpuSet of the vcpus whose row holds CPU c.
// - Indexes out of range throw vcpumap::Error (invalid_argument) naming vcpu/CPU and the
//   matrix's shape; set_row with a map holding CPUs >= cols() throws and changes nothing.
// - Copy-assignment and reshape() reuse the storage when it is large enough.
// - A shape whose storage cannot be addressed (rows x row_words() words, or rows x maplen
//   cpumaps bytes, wrapping size_t or beyond a std::vector's max_size()) throws
//   vcpumap::Error (invalid_argument) naming it, "affinity matrix of R x C does not fit in
//   memory", before anything is allocated or changed; one that is merely too large for the
//   machine still throws std::bad_alloc.
// - 0 columns (a host with no CPUs) or 0 rows: every row is the empty map of cols() CPUs,
//   every column the empty set of rows() vcpus, and the cpumaps are empty.
// - Equality compares the shape and every bit. & and | combine matrices of equal shape.
// - libvirt's "cpumaps" layout (virDomainGetVcpuPinInfo, virDomainGetVcpus): rows of
//   maplen bytes, VIR_CPU_MAPLEN(cols) = (cols+7)/8 by default; CPU c of vcpu v is bit
//   c%8 of byte v*maplen + c/8.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <new>
#include <span>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "cpu_map.hpp"
#include "error.hpp"

namespace vcpumap {

namespace detail {

/// a * b when the product neither wraps nor exceeds `max` (a container's max_size());
/// otherwise throws Error(invalid_argument, what() + " does not fit in memory"). `what` is
/// called only then, to name the thing sized ("affinity matrix of 4 x 16").
template <class What>
std::size_t checked_mul(std::size_t a, std::size_t b, std::size_t max, What what) {
  if (b != 0 && a > max / b) [[unlikely]]  // a * b <= max exactly when a <= max / b: no wrap
    throw Error(ErrorCode::invalid_argument, std::string(what()) + " does not fit in memory");
  return a * b;
}

/// Where the storage of large matrices goes when they die: a few blocks per thread, kept
/// for the next matrix of the same size. A matrix of 64 vcpus x 65,536 CPUs is 512 KiB,
/// above glibc's mmap threshold: without this, each fresh DomainSnapshot (four such
/// matrices) maps them, faults in every page, and unmaps them when it is freed, which costs
/// 8x the copying it holds. With it, a fresh snapshot costs what one reused costs, plus a
/// lookup per matrix. Bounded: blocks of at least min_bytes, at most max_blocks of them and
/// max_bytes in all per thread; freed at thread exit. Off under AddressSanitizer, so that
/// a use after free of a matrix is still caught.
class MatrixStorageCache {
 public:
  static constexpr std::size_t min_bytes = std::size_t{64} << 10;
  static constexpr std::size_t max_blocks = 8;
  static constexpr std::size_t max_bytes = std::size_t{16} << 20;

  /// A block of exactly `bytes` kept earlier, or null.
  static void* take(std::size_t bytes) noexcept {
    if (!enabled || bytes < min_bytes) return nullptr;
    Blocks& c = blocks();
    for (std::size_t i = c.count; i-- > 0;) {
      if (c.bytes[i] != bytes) continue;
      void* p = c.ptr[i];
      --c.count;
      c.ptr[i] = c.ptr[c.count];
      c.bytes[i] = c.bytes[c.count];
      c.total -= bytes;
      return p;
    }
    return nullptr;
  }
  /// Keeps a block of `bytes` (from operator new) for later; false when it is not kept (too
  /// small, the cache full, the thread exiting): the caller frees it.
  static bool give(void* p, std::size_t bytes) noexcept {
    if (!enabled || bytes < min_bytes || bytes > max_bytes) return false;
    Blocks& c = blocks();
    if (c.closed) return false;
    if (!c.armed) {  // the first block kept: free them all when the thread exits
      static thread_local Releaser releaser;
      (void)releaser;
      c.armed = true;
    }
    while (c.count != 0 && (c.count == max_blocks || c.total + bytes > max_bytes)) {  // oldest out
      ::operator delete(c.ptr[0]);
      c.total -= c.bytes[0];
      --c.count;
      for (std::size_t i = 0; i < c.count; ++i) {
        c.ptr[i] = c.ptr[i + 1];
        c.bytes[i] = c.bytes[i + 1];
      }
    }
    c.ptr[c.count] = p;
    c.bytes[c.count] = bytes;
    ++c.count;
    c.total += bytes;
    return true;
  }

 private:
#if defined(__SANITIZE_ADDRESS__)
  static constexpr bool enabled = false;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
  static constexpr bool enabled = false;
#else
  static constexpr bool enabled = true;
#endif
#else
  static constexpr bool enabled = true;
#endif
  // Trivially destructible, so still usable while other thread-local and static objects
  // (matrices among them) are destroyed after the releaser has run.
  struct Blocks {
    void* ptr[max_blocks];
    std::size_t bytes[max_blocks];
    std::size_t count, total;
    bool armed, closed;
  };
  static Blocks& blocks() noexcept {
    static thread_local Blocks c{};
    return c;
  }
  struct Releaser {
    Releaser() = default;
    Releaser(const Releaser&) = delete;
    Releaser& operator=(const Releaser&) = delete;
    ~Releaser() {
      Blocks& c = blocks();
      for (std::size_t i = 0; i < c.count; ++i) ::operator delete(c.ptr[i]);
      c.count = c.total = 0;
      c.closed = true;
    }
  };
};

/// The allocator of AffinityMatrix's words: operator new and delete, through
/// MatrixStorageCache for large blocks.
template <class T>
struct MatrixAllocator {
  using value_type = T;
  MatrixAllocator() = default;
  template <class U>
  constexpr MatrixAllocator(const MatrixAllocator<U>&) noexcept {}
  T* allocate(std::size_t n) {
    if (n > std::size_t(-1) / sizeof(T)) throw std::bad_array_new_length();
    if (void* p = MatrixStorageCache::take(n * sizeof(T))) return static_cast<T*>(p);
    return static_cast<T*>(::operator new(n * sizeof(T)));
  }
  void deallocate(T* p, std::size_t n) noexcept {
    if (!MatrixStorageCache::give(p, n * sizeof(T))) ::operator delete(p);
  }
  friend bool operator==(const MatrixAllocator&, const MatrixAllocator&) noexcept { return true; }
};

}  // namespace detail

class AffinityMatrix {
 public:
  AffinityMatrix() = default;
  /// rows vcpus × cols CPUs, every bit clear.
  /// Throws Error (invalid_argument) for a shape whose words cannot be addressed (see above).
  AffinityMatrix(std::size_t rows, std::size_t cols)
      : rows_(rows), cols_(cols), stride_(detail::blocks_for(cols)), words_(storage_words(rows, cols), 0) {}
  /// Every vcpu allowed on every CPU ("any cpu"). O(words), whatever the number of rows.
  static AffinityMatrix full(std::size_t rows, std::size_t cols) {
    AffinityMatrix m(rows, cols);
    std::fill(m.words_.begin(), m.words_.end(), ~detail::Block{0});
    if (const detail::Block tail = detail::last_block_mask(cols); tail != ~detail::Block{0})
      for (std::size_t i = m.stride_ - 1; i < m.words_.size(); i += m.stride_) m.words_[i] = tail;
    return m;
  }

  /// Makes this a rows x cols matrix with every bit clear, reusing the storage when it is
  /// large enough (a matrix refilled in a loop allocates once). reshape(0, 0) empties it
  /// and keeps the storage. A shape whose words cannot be addressed throws Error
  /// (invalid_argument) and leaves the matrix as it was.
  AffinityMatrix& reshape(std::size_t rows, std::size_t cols) {
    const std::size_t stride = detail::blocks_for(cols);
    words_.assign(storage_words(rows, cols), 0);
    rows_ = rows;
    cols_ = cols;
    stride_ = stride;
    return *this;
  }

  std::size_t rows() const noexcept { return rows_; }
  std::size_t cols() const noexcept { return cols_; }
  /// 64-bit words per row.
  std::size_t row_words() const noexcept { return stride_; }

  bool test(std::size_t vcpu, std::size_t cpu) const {
    check(vcpu, cpu);
    return (words_[vcpu * stride_ + cpu / 64] >> (cpu % 64)) & 1;
  }
  AffinityMatrix& set(std::size_t vcpu, std::size_t cpu) {
    check(vcpu, cpu);
    words_[vcpu * stride_ + cpu / 64] |= detail::Block{1} << (cpu % 64);
    return *this;
  }
  AffinityMatrix& reset(std::size_t vcpu, std::size_t cpu) {
    check(vcpu, cpu);
    words_[vcpu * stride_ + cpu / 64] &= ~(detail::Block{1} << (cpu % 64));
    return *this;
  }

  /// The CPUs of vcpu v, as a CpuMap of cols() CPUs (a copy; with 0 columns, the empty
  /// map of 0 CPUs).
  CpuMap row(std::size_t vcpu) const {
    check_row(vcpu);
    detail::Bits bits(cols_);
    auto dst = detail::blocks(bits);
    // Not with 0 columns: both pointers may be null, which memcpy must not be given.
    if (stride_ != 0) std::memcpy(dst.data(), words_.data() + vcpu * stride_, stride_ * sizeof(detail::Block));
    return CpuMap::from_bits(std::move(bits));
  }
  /// The words of row v, for code that works a word at a time.
  std::span<const Word> row_span(std::size_t vcpu) const {
    check_row(vcpu);
    return {words_.data() + vcpu * stride_, stride_};
  }
  /// Replaces row v. The map may have any universe, but no CPU at or beyond cols() (with 0
  /// columns: only an empty map, which changes nothing).
  AffinityMatrix& set_row(std::size_t vcpu, const CpuMap& cpus) {
    check_row(vcpu);
    if (auto top = cpus.last(); top && *top >= cols_)
      throw Error(ErrorCode::invalid_argument, "vcpu " + std::to_string(vcpu) + ": CPU " + std::to_string(*top) +
                                                   " is beyond the matrix's " + std::to_string(cols_) + " CPUs");
    const auto src = cpus.words();
    const std::size_t n = stride_, k = std::min(n, src.size());
    detail::Block* dst = words_.data() + vcpu * n;
    // Either pointer may be null when its length is 0 (no columns, a map of 0 CPUs).
    if (k != 0) std::memcpy(dst, src.data(), k * sizeof(detail::Block));
    if (n != k) std::memset(dst + k, 0, (n - k) * sizeof(detail::Block));
    return *this;
  }
  /// The vcpus whose row holds CPU c, a VcpuSet of rows() vcpus (empty with 0 rows). With 0
  /// columns every c is out of range and throws.
  VcpuSet column(std::size_t cpu) const {
    if (cpu >= cols_) throw Error(ErrorCode::invalid_argument, "CPU " + std::to_string(cpu) + " is beyond the matrix's " + std::to_string(cols_) + " CPUs");
    detail::Bits bits(rows_);
    auto dst = detail::blocks(bits);
    const std::size_t word = cpu / 64, shift = cpu % 64;
    for (std::size_t v = 0; v < rows_; ++v) dst[v / 64] |= ((words_[v * stride_ + word] >> shift) & 1) << (v % 64);
    return VcpuSet::from_bits(std::move(bits));
  }

  friend bool operator==(const AffinityMatrix&, const AffinityMatrix&) = default;

  AffinityMatrix& operator&=(const AffinityMatrix& o) { return combine(o, [](auto a, auto b) { return a & b; }); }
  AffinityMatrix& operator|=(const AffinityMatrix& o) { return combine(o, [](auto a, auto b) { return a | b; }); }
  friend AffinityMatrix operator&(AffinityMatrix a, const AffinityMatrix& b) { return a &= b; }
  friend AffinityMatrix operator|(AffinityMatrix a, const AffinityMatrix& b) { return a |= b; }
  /// Every row ANDed with `cpus` (e.g. the online CPUs).
  AffinityMatrix& restrict_to(const CpuMap& cpus) {
    const auto m = cpus.words();
    const std::size_t n = stride_, rows = rows_, k = std::min(n, m.size());
    if (n == 0) return *this;  // 0 columns: nothing to restrict, however many rows
    detail::Block* w = words_.data();
    for (std::size_t v = 0; v < rows; ++v, w += n) {
      for (std::size_t i = 0; i < k; ++i) w[i] &= m[i];
      for (std::size_t i = k; i < n; ++i) w[i] = 0;
    }
    return *this;
  }
  bool row_empty(std::size_t vcpu) const {
    for (detail::Block w : row_span(vcpu))
      if (w) return false;
    return true;
  }

  /// libvirt's cpumaps: rows of maplen bytes (default VIR_CPU_MAPLEN(cols())). A maplen
  /// too short for a CPU some row holds throws, naming the vcpu and CPU; rows() x maplen
  /// bytes that cannot be addressed throw Error (invalid_argument). 0 rows or 0 columns (and
  /// the default maplen): no bytes.
  std::vector<std::uint8_t> to_cpumaps(std::size_t maplen = 0) const {
    const std::size_t needed = map_bytes(cols_);
    if (maplen == 0) maplen = needed;
    const std::size_t total = cpumaps_bytes(rows_, maplen);
    if (maplen < needed)
      for (std::size_t v = 0; v < rows_; ++v) check_fits(v, maplen);
    std::vector<std::uint8_t> out(total, 0);
    const std::size_t n = std::min(maplen, needed);
    if (n == 0) return out;  // 0 columns: zeros, however many rows
    for (std::size_t v = 0; v < rows_; ++v) {
      const detail::Block* src = words_.data() + v * stride_;
      std::uint8_t* dst = out.data() + v * maplen;
      for (std::size_t b = 0; b < n; ++b) dst[b] = static_cast<std::uint8_t>(src[b / 8] >> (8 * (b % 8)));
    }
    return out;
  }
  /// Reads libvirt's cpumaps: `rows` rows of maplen bytes. Bits beyond cols throw (naming
  /// the vcpu and CPU); a maplen shorter than the CPUs need means absent CPUs. A shape that
  /// cannot be addressed (rows x maplen bytes, or the matrix's words) throws Error
  /// (invalid_argument), and so does a span shorter than rows x maplen bytes.
  static AffinityMatrix from_cpumaps(std::span<const std::uint8_t> maps, std::size_t rows, std::size_t cols,
                                     std::size_t maplen = 0) {
    if (maplen == 0) maplen = map_bytes(cols);
    if (maps.size() < cpumaps_bytes(rows, maplen))
      throw Error(ErrorCode::invalid_argument, "cpumaps of " + std::to_string(maps.size()) + " bytes cannot hold " +
                                                   std::to_string(rows) + " rows of " + std::to_string(maplen) + " bytes");
    AffinityMatrix m(rows, cols);
    if (maplen == 0) return m;  // 0 columns: no bytes to read, however many rows
    for (std::size_t v = 0; v < rows; ++v) {
      try {
        m.set_row(v, CpuMap::from_bytes(maps.subspan(v * maplen, maplen), cols));
      } catch (const Error& e) {
        throw Error(ErrorCode::invalid_argument, "vcpu " + std::to_string(v) + ": " + e.what());
      }
    }
    return m;
  }

  std::span<const Word> words() const noexcept { return words_; }
  /// The storage, writable: callers keep bits at or beyond cols() clear.
  std::span<Word> mutable_words() noexcept { return words_; }

 private:
  /// VIR_CPU_MAPLEN(cols), (cols + 7) / 8 without the wrap of cols + 7.
  static constexpr std::size_t map_bytes(std::size_t cols) noexcept { return cols / 8 + (cols % 8 != 0); }
  /// rows x row_words() of cols, the words of the storage; throws when it cannot be addressed.
  static std::size_t storage_words(std::size_t rows, std::size_t cols) {
    return detail::checked_mul(rows, detail::blocks_for(cols), decltype(words_)().max_size(), [&] {
      return "affinity matrix of " + std::to_string(rows) + " x " + std::to_string(cols);
    });
  }
  /// rows x maplen, the bytes of cpumaps; throws when they cannot be addressed.
  static std::size_t cpumaps_bytes(std::size_t rows, std::size_t maplen) {
    return detail::checked_mul(rows, maplen, std::vector<std::uint8_t>().max_size(), [&] {
      return "cpumaps array of " + std::to_string(rows) + " rows of " + std::to_string(maplen) + " bytes";
    });
  }

  // The checks throw through [[noreturn]] helpers so the compiler knows the index is in
  // range after them (g++ 12 otherwise warns about the unreachable out-of-range access).
  void check_row(std::size_t vcpu) const {
    if (vcpu >= rows_) [[unlikely]]
      row_out_of_range(vcpu);
  }
  void check(std::size_t vcpu, std::size_t cpu) const {
    check_row(vcpu);
    if (cpu >= cols_) [[unlikely]]
      cpu_out_of_range(vcpu, cpu);
  }
  [[noreturn]] void row_out_of_range(std::size_t vcpu) const {
    throw Error(ErrorCode::invalid_argument,
                "vcpu " + std::to_string(vcpu) + " is beyond the matrix's " + std::to_string(rows_) + " vcpus");
  }
  [[noreturn]] void cpu_out_of_range(std::size_t vcpu, std::size_t cpu) const {
    throw Error(ErrorCode::invalid_argument, "vcpu " + std::to_string(vcpu) + ": CPU " + std::to_string(cpu) +
                                                 " is beyond the matrix's " + std::to_string(cols_) + " CPUs");
  }
  void check_fits(std::size_t vcpu, std::size_t maplen) const {
    if (auto top = row(vcpu).last(); top && *top / 8 >= maplen)
      throw Error(ErrorCode::invalid_argument, "vcpu " + std::to_string(vcpu) + ": CPU " + std::to_string(*top) +
                                                   " does not fit in a " + std::to_string(maplen) + "-byte map");
  }
  template <class Op>
  AffinityMatrix& combine(const AffinityMatrix& o, Op op) {
    if (o.rows_ != rows_ || o.cols_ != cols_)
      throw Error(ErrorCode::invalid_argument, "matrices of " + std::to_string(rows_) + "x" + std::to_string(cols_) +
                                                   " and " + std::to_string(o.rows_) + "x" + std::to_string(o.cols_) +
                                                   " do not combine");
    detail::Block* a = words_.data();
    const detail::Block* b = o.words_.data();
    const std::size_t n = words_.size();
    for (std::size_t i = 0; i < n; ++i) a[i] = op(a[i], b[i]);
    return *this;
  }

  std::size_t rows_ = 0;
  std::size_t cols_ = 0;
  std::size_t stride_ = 0;
  std::vector<detail::Block, detail::MatrixAllocator<detail::Block>> words_;
};

}  // namespace vcpumap

/// "{}" prints one line per vcpu, "0: 0-3"; "{:y}" prints a y- grid, one row per vcpu.
template <>
struct fmt::formatter<vcpumap::AffinityMatrix> {
  bool grid = false;
  constexpr auto parse(fmt::format_parse_context& ctx) -> decltype(ctx.begin()) {
    auto it = ctx.begin();
    if (it != ctx.end() && *it == 'y') {
      grid = true;
      ++it;
    }
    if (it != ctx.end() && *it != '}') throw fmt::format_error("vcpumap: matrix format spec is empty or 'y'");
    return it;
  }
  template <class FormatContext>
  auto format(const vcpumap::AffinityMatrix& m, FormatContext& ctx) const -> decltype(ctx.out()) {
    auto out = ctx.out();
    for (std::size_t v = 0; v < m.rows(); ++v) {
      const vcpumap::CpuMap row = m.row(v);
      out = grid ? fmt::format_to(out, "{}\n", row.to_string(vcpumap::TextForm::yn))
                 : fmt::format_to(out, "{}: {}\n", v, row.to_string());
    }
    return out;
  }
};
