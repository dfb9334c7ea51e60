// tests/counting_new.hpp — a replaced global operator new that counts allocations, for the
// one program that includes it (alloc_test, cpulist-bench): include it in exactly one
// translation unit of a program. vcpumap_test::allocations counts this thread's calls of
// operator new (malloc underneath; what calls malloc itself, as hwloc, is not counted).
//
// Under AddressSanitizer the runtime's own operator new serves some allocations (ours would
// then free what it did not make): nothing is replaced, and VCPUMAP_TEST_COUNTS_ALLOCATIONS
// is 0 so that the counting checks can be left out.
#pragma once

#include <cstddef>
#include <cstdlib>
#include <new>

#if defined(__SANITIZE_ADDRESS__)
#define VCPUMAP_TEST_COUNTS_ALLOCATIONS 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define VCPUMAP_TEST_COUNTS_ALLOCATIONS 0
#endif
#endif
#ifndef VCPUMAP_TEST_COUNTS_ALLOCATIONS
#define VCPUMAP_TEST_COUNTS_ALLOCATIONS 1
#endif

namespace vcpumap_test {
inline thread_local std::size_t allocations = 0;
}  // namespace vcpumap_test

#if VCPUMAP_TEST_COUNTS_ALLOCATIONS
void* operator new(std::size_t n) {
  ++vcpumap_test::allocations;
  if (void* p = std::malloc(n == 0 ? 1 : n)) return p;
  throw std::bad_alloc();
}
// GCC sees free() of what operator new returned; here operator new is malloc.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif
#endif
