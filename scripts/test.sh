#!/usr/bin/env bash
# The whole test suite, from a fresh Debian 12 machine: installs what is missing, then
#   1. g++ 12, warnings as errors: unit tests, example tests, the Python module (suite python,
#      pytest), install + consumer builds (suite consumers), the real-Xen test (suite xen), real
#      QEMU guests and a real libvirt daemon (suite linux, serial), vcpu-list --prometheus against
#      real node_exporter and Prometheus servers on 127.0.0.1 (suite prometheus, serial);
#   2. clang 14 with ASan+UBSan (any report fails): the unit and example tests;
#   3. clang libFuzzer targets (cpulist, fixture, procfs) sharing fuzz_seconds, with the round-trip checks.
# Usage: scripts/test.sh [--quick]   (--quick skips the fuzzers, the real-Xen boot, the real guests and servers)
set -euo pipefail
cd "$(dirname "$0")/.."

quick=0
for arg in "$@"; do
  case "$arg" in
    --quick) quick=1 ;;
    *) echo "test.sh: unknown option '$arg' (usage: scripts/test.sh [--quick])" >&2; exit 2 ;;
  esac
done

if [ "$quick" = 1 ]; then scripts/setup-debian.sh; else scripts/setup-debian.sh --xen-test --linux-test --prometheus-test; fi

# configure DIR [meson options...]: set up once, reconfigure after.
configure() {
  local dir=$1; shift
  if [ -f "$dir/build.ninja" ]; then meson setup --reconfigure "$dir" "$@" >/dev/null
  else meson setup "$dir" "$@" >/dev/null; fi
}
step() { printf '\n=== %s ===\n' "$*"; }

step "g++ build, warnings as errors"
CXX=g++ configure _build/gcc -Dwerror=true
ninja -C _build/gcc
suites=(--no-suite fuzz)
[ "$quick" = 1 ] && suites+=(--no-suite xen --no-suite linux --no-suite prometheus)
meson test -C _build/gcc --print-errorlogs "${suites[@]}"

step "clang build with AddressSanitizer + UndefinedBehaviorSanitizer"
CXX=clang++ configure _build/clang-asan -Dwerror=true -Db_sanitize=address,undefined -Db_lundef=false \
  -Dcpp_args=-fno-sanitize-recover=all -Dbenchmarks=disabled
ninja -C _build/clang-asan
# Not the python suite: the module is built here (clang compiles it) but not run, since an
# ASan-instrumented extension needs libasan preloaded into python3, whose own allocations then
# flood LeakSanitizer; the g++ step runs the suite.
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  meson test -C _build/clang-asan --print-errorlogs --no-suite fuzz --no-suite xen --no-suite consumers --no-suite linux --no-suite prometheus \
  --no-suite python

if [ "$quick" = 0 ]; then
  step "libFuzzer targets"
  CXX=clang++ configure _build/fuzz -Dfuzz=true -Dbenchmarks=disabled -Dexamples=false
  ninja -C _build/fuzz tests/fuzz/fuzz-cpulist tests/fuzz/fuzz-fixture tests/fuzz/fuzz-procfs   # the fuzzers only: the rest ran above
  meson test -C _build/fuzz --no-rebuild --print-errorlogs --suite fuzz
fi
echo
echo "all test steps passed"
