#!/usr/bin/env bash
# run_consumers.sh — the 'consumers' suite: install vcpumap into a temporary prefix from a
# separate build of the source tree, then build and run out-of-tree consumers of it:
#   pkg-config  c++ -std=c++20 consumer.cpp $(pkg-config --cflags --libs vcpumap)
#               (+ vcpumap-xen, vcpumap-linux when those backends are built; each backend
#               consumer is also linked with the static library, pkg-config --static)
#   cmake       find_package(vcpumap CONFIG REQUIRED), vcpumap::vcpumap (+ COMPONENTS xen,
#               linux: vcpumap::xen, vcpumap::linux), against the prefix moved elsewhere (the
#               package is relocatable)
#   meson       a parent project with the source tree as subprojects/vcpumap
#
#   run_consumers.sh SOURCE_DIR VERSION WITH_XEN(0|1) MESON CXX [WITH_LINUX(0|1)] [CONSUMER...]
#
# The Python module is not built here (-Dpython=disabled): these are C++ consumers, and the
# python suite proves the module's install (tests/python/test_install.py).
#
# WITH_XEN and WITH_LINUX say whether the Xen backend (libvcpumap) and the Linux/KVM backend
# (libvcpumap-linux) are built (-Dxen, -Dlinux enabled or disabled); WITH_LINUX may be left
# out (0), so the older argument list still works.
#
# Exits 0 when every consumer that could run passed, 77 (skipped) when none could run (a
# tool is missing), 1 on the first failure, with what failed.
set -euo pipefail

if [[ $# -lt 5 ]]; then
  echo "usage: $0 SOURCE_DIR VERSION WITH_XEN MESON CXX [WITH_LINUX] [pkg-config|cmake|meson...]" >&2
  exit 2
fi
src=$(cd "$1" && pwd)
version=$2
with_xen=$3
meson=$4
cxx=$5
shift 5
with_linux=0
if [[ $# -gt 0 && ($1 == 0 || $1 == 1) ]]; then
  with_linux=$1
  shift
fi
consumers=("$@")
[[ ${#consumers[@]} -gt 0 ]] || consumers=(pkg-config cmake meson)
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
jobs=${VCPUMAP_CONSUMERS_JOBS:-2}

fail() {
  echo "run_consumers: FAIL: $*" >&2
  exit 1
}
step() { echo "=== $*"; }

work=$(mktemp -d "${TMPDIR:-/tmp}/vcpumap-consumers.XXXXXX")
if [[ -n ${VCPUMAP_CONSUMERS_KEEP:-} ]]; then
  echo "keeping $work"
else
  trap 'rm -rf "$work"' EXIT
fi
prefix=$work/prefix

# ---- 1. a separate build of the source tree, installed into $prefix ----
step "building vcpumap $version from $src into $prefix (Xen backend: $with_xen, Linux backend: $with_linux)"
xen_opt=disabled
[[ $with_xen == 1 ]] && xen_opt=enabled
linux_opt=disabled
[[ $with_linux == 1 ]] && linux_opt=enabled
CXX=$cxx "$meson" setup "$work/build" "$src" --prefix="$prefix" --buildtype=plain \
  -Dtests=false -Dexamples=true -Dbenchmarks=disabled -Dxen=$xen_opt -Dlinux=$linux_opt -Dpython=disabled \
  >"$work/setup.log" 2>&1 ||
  { cat "$work/setup.log" >&2; fail "meson setup of the inner build"; }
"$meson" compile -C "$work/build" -j "$jobs" >"$work/compile.log" 2>&1 ||
  { tail -n 50 "$work/compile.log" >&2; fail "building vcpumap"; }
"$meson" install -C "$work/build" --no-rebuild >"$work/install.log" 2>&1 ||
  { cat "$work/install.log" >&2; fail "meson install"; }
(cd "$prefix" && find . -type f -o -type l | sed 's#^\./##' | sort) >"$work/installed.txt"
echo "installed $(wc -l <"$work/installed.txt") files into $prefix"

# What must be there: the headers, the examples, pkg-config and CMake files, the library.
pc=$(grep -E '(^|/)pkgconfig/vcpumap\.pc$' "$work/installed.txt" || true)
[[ -n $pc ]] || fail "no pkgconfig/vcpumap.pc installed"
libdir=${pc%/pkgconfig/vcpumap.pc}
expected_files=(include/vcpumap/vcpumap.hpp include/vcpumap/version.hpp include/vcpumap/detail/blocks.hpp
  bin/cpulist bin/vcpu-list bin/vcpu-pin bin/vcpu-matrix bin/vcpu-balance bin/vcpu-set
  "$libdir/pkgconfig/vcpumap.pc" "$libdir/cmake/vcpumap/vcpumapConfig.cmake"
  "$libdir/cmake/vcpumap/vcpumapConfigVersion.cmake")
if [[ $with_xen == 1 ]]; then
  expected_files+=("$libdir/pkgconfig/vcpumap-xen.pc" "$libdir/libvcpumap.so" "$libdir/libvcpumap.so.0"
    "$libdir/libvcpumap.so.$version" "$libdir/libvcpumap.a")
fi
if [[ $with_linux == 1 ]]; then
  expected_files+=(include/vcpumap/linux.hpp "$libdir/pkgconfig/vcpumap-linux.pc" "$libdir/libvcpumap-linux.so"
    "$libdir/libvcpumap-linux.so.0" "$libdir/libvcpumap-linux.so.$version" "$libdir/libvcpumap-linux.a")
fi
for f in "${expected_files[@]}"; do
  grep -qxF "$f" "$work/installed.txt" || { cat "$work/installed.txt" >&2; fail "$f was not installed"; }
done
for f in include/vcpumap/*.hpp include/vcpumap/detail/*.hpp; do
  [[ -e $src/$f ]] || continue
  cmp -s "$src/$f" "$prefix/$f" || fail "$prefix/$f differs from $src/$f"
done
if [[ $with_xen == 0 ]] && grep -qE '(^|/)(libvcpumap\.(so|a)|vcpumap-xen\.pc)' "$work/installed.txt"; then
  fail "the Xen backend is off, yet libvcpumap or vcpumap-xen.pc was installed"
fi
if [[ $with_linux == 0 ]] && grep -qE '(^|/)(libvcpumap-linux\.|vcpumap-linux\.pc)' "$work/installed.txt"; then
  fail "the Linux backend is off, yet libvcpumap-linux or vcpumap-linux.pc was installed"
fi
# nlohmann_json is used only inside libvcpumap-linux's .cpp files: no installed header may
# include it (consumers are not asked for it).
if grep -rlE '#[[:space:]]*include[[:space:]]*[<"]nlohmann' "$prefix/include" >&2; then
  fail "an installed header includes nlohmann_json"
fi
grep -q "\"$version\"" "$prefix/include/vcpumap/version.hpp" || fail "the installed version.hpp is not version $version"
# The tools find the installed libvcpumap by themselves (an RPATH to a prefix of their own).
"$prefix/bin/cpulist" '0-3,^2' >/dev/null || fail "the installed cpulist does not run"
"$prefix/bin/vcpu-list" --backend=mock >/dev/null || fail "the installed vcpu-list does not run"

ran=0
skipped=()

# Runs the Linux backend consumer (PROGRAM [ARG...]) with the expected version. Exit 77 is
# LinuxHypervisor's hypervisor_unavailable (this host's /sys/devices/system/cpu cannot be
# read): the program linked, loaded and ran the library, which is what is tested here.
run_linux_consumer() {
  local rc=0
  "$@" "$version" || rc=$?
  if [[ $rc -eq 77 ]]; then
    echo "note: $1 could not read this host (hypervisor_unavailable); it linked and ran"
    return 0
  fi
  return "$rc"
}

# Links a backend consumer with the installed static library: the flags of
# `pkg-config --static --cflags --libs PC` with -lLIB turned into -l:libLIB.a, so that
# Libs.private and Requires.private alone must bring what the archive needs; then checks that
# the program does not need libLIB.so.
#   link_static PC LIB SOURCE OUTPUT
link_static() {
  local pc=$1 lib=$2 source=$3 output=$4 word found=0 args=()
  local flags
  flags=$(pkg-config --static --cflags --libs "$pc") || fail "pkg-config --static --cflags --libs $pc"
  echo "$pc (static): $flags"
  for word in $flags; do
    if [[ $word == "-l$lib" ]]; then
      word="-l:lib$lib.a"
      found=1
    fi
    args+=("$word")
  done
  [[ $found == 1 ]] || fail "pkg-config --static --libs $pc lacks -l$lib"
  $cxx -std=c++20 -o "$output" "$source" "${args[@]}" ||
    fail "linking $(basename "$source") with lib$lib.a and pkg-config --static $pc"
  if command -v readelf >/dev/null && readelf -d "$output" | grep -q "NEEDED.*\[lib$lib\.so"; then
    fail "$output, linked with lib$lib.a, still needs lib$lib.so"
  fi
}

# ---- 2. pkg-config ----
consumer_pkg_config() {
  if ! command -v pkg-config >/dev/null; then
    skipped+=("pkg-config (no pkg-config)")
    return
  fi
  step "pkg-config consumer"
  local out=$work/pkg-config
  mkdir -p "$out"
  export PKG_CONFIG_PATH=$prefix/$libdir/pkgconfig
  local pc_version
  pc_version=$(pkg-config --modversion vcpumap) || fail "pkg-config does not find vcpumap in $PKG_CONFIG_PATH"
  [[ $pc_version == "$version" ]] || fail "pkg-config --modversion vcpumap is '$pc_version', expected '$version'"
  local flags
  flags=$(pkg-config --cflags --libs vcpumap) || fail "pkg-config --cflags --libs vcpumap"
  echo "vcpumap: $flags"
  [[ $flags == *"-I$prefix/include"* ]] || fail "pkg-config --cflags vcpumap lacks -I$prefix/include"
  [[ $flags != *-lvcpumap* ]] || fail "vcpumap.pc links libvcpumap (it is header-only)"
  # shellcheck disable=SC2086
  $cxx -std=c++20 -o "$out/consumer" "$here/consumer.cpp" $flags || fail "compiling consumer.cpp with pkg-config vcpumap"
  "$out/consumer" "$version" || fail "the pkg-config consumer"
  if [[ $with_xen == 1 ]]; then
    flags=$(pkg-config --cflags --libs vcpumap-xen) || fail "pkg-config --cflags --libs vcpumap-xen"
    echo "vcpumap-xen: $flags"
    [[ $flags == *-lvcpumap* ]] || fail "pkg-config --libs vcpumap-xen lacks -lvcpumap"
    pkg-config --static --libs vcpumap-xen | grep -q -- -lxenctrl ||
      fail "pkg-config --static --libs vcpumap-xen lacks libxenctrl"
    # shellcheck disable=SC2086
    $cxx -std=c++20 -o "$out/xen-consumer" "$here/xen_consumer.cpp" $flags ||
      fail "compiling xen_consumer.cpp with pkg-config vcpumap-xen"
    LD_LIBRARY_PATH=$prefix/$libdir "$out/xen-consumer" "$version" || fail "the pkg-config xen consumer"
    link_static vcpumap-xen vcpumap "$here/xen_consumer.cpp" "$out/xen-consumer-static"
    "$out/xen-consumer-static" "$version" || fail "the pkg-config xen consumer linked with libvcpumap.a"
  fi
  if [[ $with_linux == 1 ]]; then
    flags=$(pkg-config --cflags --libs vcpumap-linux) || fail "pkg-config --cflags --libs vcpumap-linux"
    echo "vcpumap-linux: $flags"
    [[ " $flags " == *" -lvcpumap-linux "* ]] || fail "pkg-config --libs vcpumap-linux lacks -lvcpumap-linux"
    [[ $(pkg-config --modversion vcpumap-linux) == "$version" ]] || fail "pkg-config --modversion vcpumap-linux"
    # nlohmann_json (header-only, used inside the library) is no requirement of consumers.
    local requires
    requires=$(pkg-config --print-requires vcpumap-linux; pkg-config --print-requires-private vcpumap-linux;
      pkg-config --static --cflags --libs vcpumap-linux)
    [[ $requires != *nlohmann* ]] || fail "vcpumap-linux.pc asks consumers for nlohmann_json: $requires"
    pkg-config --print-requires vcpumap-linux | grep -qx "vcpumap *= *$version" ||
      fail "vcpumap-linux.pc does not require vcpumap = $version"
    pkg-config --static --libs vcpumap-linux | grep -q -- -pthread ||
      fail "pkg-config --static --libs vcpumap-linux lacks -pthread"
    # shellcheck disable=SC2086
    $cxx -std=c++20 -o "$out/linux-consumer" "$here/linux_consumer.cpp" $flags ||
      fail "compiling linux_consumer.cpp with pkg-config vcpumap-linux"
    LD_LIBRARY_PATH=$prefix/$libdir run_linux_consumer "$out/linux-consumer" || fail "the pkg-config linux consumer"
    link_static vcpumap-linux vcpumap-linux "$here/linux_consumer.cpp" "$out/linux-consumer-static"
    run_linux_consumer "$out/linux-consumer-static" ||
      fail "the pkg-config linux consumer linked with libvcpumap-linux.a"
  fi
  unset PKG_CONFIG_PATH
  ran=$((ran + 1))
}

# ---- 3. CMake, on the prefix moved elsewhere ----
consumer_cmake() {
  if ! command -v cmake >/dev/null; then
    skipped+=("cmake (no cmake)")
    return
  fi
  step "CMake consumer"
  local moved=$work/moved-prefix
  cp -a "$prefix" "$moved"
  cmake -S "$here/cmake" -B "$work/cmake" -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_COMPILER="$cxx" \
    -DCMAKE_PREFIX_PATH="$moved" -DVCPUMAP_EXPECTED_VERSION="$version" -DVCPUMAP_EXPECT_XEN="$with_xen" \
    -DVCPUMAP_EXPECT_LINUX="$with_linux" ||
    fail "configuring the CMake consumer (find_package(vcpumap CONFIG))"
  grep -q "^vcpumap_DIR:PATH=$moved/" "$work/cmake/CMakeCache.txt" ||
    fail "CMake found vcpumap elsewhere than in $moved: $(grep '^vcpumap_DIR' "$work/cmake/CMakeCache.txt")"
  cmake --build "$work/cmake" -j "$jobs" || fail "building the CMake consumer"
  "$work/cmake/consumer" "$version" || fail "the CMake consumer"
  if [[ $with_xen == 1 ]]; then
    # No LD_LIBRARY_PATH: CMake gives build-tree programs the RPATH of imported libraries.
    "$work/cmake/xen-consumer" "$version" || fail "the CMake xen consumer"
    ldd "$work/cmake/xen-consumer" | grep -q "$moved/.*libvcpumap.so.0" ||
      fail "the CMake xen consumer does not load libvcpumap from $moved"
  fi
  if [[ $with_linux == 1 ]]; then
    run_linux_consumer "$work/cmake/linux-consumer" || fail "the CMake linux consumer"
    ldd "$work/cmake/linux-consumer" | grep -q "libvcpumap-linux.so.0 => $moved/" ||
      fail "the CMake linux consumer does not load libvcpumap-linux from $moved"
  fi
  # The next major version must not match.
  local next="$((${version%%.*} + 1)).0"
  if cmake -S "$here/cmake" -B "$work/cmake-$next" -DCMAKE_CXX_COMPILER="$cxx" -DCMAKE_PREFIX_PATH="$moved" \
    -DVCPUMAP_EXPECTED_VERSION="$next" -DVCPUMAP_EXPECT_XEN="$with_xen" -DVCPUMAP_EXPECT_LINUX="$with_linux" \
    >"$work/cmake-$next.log" 2>&1; then
    fail "find_package(vcpumap $next) accepted version $version"
  fi
  ran=$((ran + 1))
}

# ---- 4. meson, vcpumap as a subproject ----
consumer_meson() {
  step "meson subproject consumer"
  local parent=$work/parent
  mkdir -p "$parent/subprojects"
  cp "$here/meson/meson.build" "$here/meson/meson_options.txt" "$here/consumer.cpp" "$here/xen_consumer.cpp" \
    "$here/linux_consumer.cpp" "$parent/"
  ln -s "$src" "$parent/subprojects/vcpumap"
  # vcpumap's own wraps (fmt, catch2) are found through the subproject's subprojects/; a
  # system vcpumap.pc must not win over the subproject.
  local xen_feature=disabled linux_feature=disabled
  [[ $with_xen == 1 ]] && xen_feature=enabled
  [[ $with_linux == 1 ]] && linux_feature=enabled
  CXX=$cxx "$meson" setup "$parent/build" "$parent" --buildtype=plain \
    --force-fallback-for=vcpumap,vcpumap-xen,vcpumap-linux -Dexpected_version="$version" \
    -Dexpect_xen=$xen_feature -Dvcpumap:xen=$xen_feature -Dexpect_linux=$linux_feature -Dvcpumap:linux=$linux_feature \
    -Dvcpumap:python=disabled ||
    fail "meson setup of the parent project (dependency('vcpumap') from subprojects/vcpumap)"
  "$meson" compile -C "$parent/build" -j "$jobs" || fail "building the meson parent project"
  "$meson" test -C "$parent/build" --print-errorlogs || fail "the meson subproject consumers"
  ran=$((ran + 1))
}

for c in "${consumers[@]}"; do
  case $c in
    pkg-config) consumer_pkg_config ;;
    cmake) consumer_cmake ;;
    meson) consumer_meson ;;
    *) fail "unknown consumer '$c'" ;;
  esac
done

for s in "${skipped[@]}"; do echo "SKIPPED: $s"; done
if [[ $ran -eq 0 ]]; then
  echo "no consumer could run"
  exit 77
fi
echo "run_consumers: OK ($ran consumer(s))"
