#!/usr/bin/env bash
# linux-bench against real guests: one libvirt guest, then a host of plain QEMU guests, then
# everything put back as it was (see README.md next to this script).
#
#   tests/bench_linux/run-linux-bench.sh [--guests N] [--repetitions R] [--no-strace] [--no-perf]
#                                        BUILD_DIR
#
#   BUILD_DIR        a meson build folder with tests/bench_linux/linux-bench
#   --guests N       plain QEMU guests (-smp 4, paused, TCG) for the host-wide group (50)
#   --repetitions R  Google Benchmark repetitions, run in random order; medians reported (5)
#   --no-strace      skip counting system calls with strace -c (done by default when strace
#                    is installed: vcpumap's own count, the loops', and libvirtd's per call)
#   --no-perf        skip the perf profiles (done by default when perf works: where vcpumap's
#                    snapshot, the system-call floor and the plain loop spend their time)
#
# Steps: virtlogd + libvirtd (qemu:///system) and guest lvbench (4 vcpus, started paused);
# the single-guest group; libvirt torn down (checked gone); N plain guests; the host-wide
# group; teardown, then a check that no qemu, libvirtd or virtlogd is left. Results (the
# Google Benchmark output of each group, strace counts, a summary) go to
# BUILD_DIR/tests/bench_linux/results/ (or $LINUX_BENCH_OUT) and the summary to stdout.
# Exit status: 0 ran, 1 a benchmark or the cleanup failed, 2 usage error, 77 skipped (not root,
# packages missing, QEMU or libvirt already running, not enough memory).
# Needs root. ~3-4 min on the 2-CPU dev machine.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=../linux_integration/guests.sh
source "$here/../linux_integration/guests.sh"

log() { echo "run-linux-bench: $*" >&2; }
die() { log "error: $*"; exit 2; }
usage() { sed -n '5,15p' "$0" | sed 's/^# \{0,1\}//'; }

guests=50 reps=5 use_strace=1 use_perf=1 build_dir=""
while [ $# -gt 0 ]; do
  case "$1" in
    --guests) guests=${2:?}; shift 2 ;;
    --repetitions) reps=${2:?}; shift 2 ;;
    --no-strace) use_strace=0; shift ;;
    --no-perf) use_perf=0; shift ;;
    -h|--help) usage; exit 0 ;;
    -*) usage >&2; die "unknown option '$1'" ;;
    *) [ -z "$build_dir" ] || die "one BUILD_DIR only"; build_dir=$1; shift ;;
  esac
done
[ -n "$build_dir" ] || { usage >&2; die "BUILD_DIR is required"; }
[[ $guests =~ ^[1-9][0-9]*$ ]] || die "--guests wants a positive number"
[[ $reps =~ ^[1-9][0-9]*$ ]] || die "--repetitions wants a positive number"
bench=$(readlink -f "$build_dir")/tests/bench_linux/linux-bench
[ -x "$bench" ] || die "$bench is not built (meson setup with benchmarks enabled, then ninja)"
out=${LINUX_BENCH_OUT:-$(readlink -f "$build_dir")/tests/bench_linux/results}
export LC_ALL=C

[ "$(id -u)" -eq 0 ] || guests_skip "run-linux-bench.sh needs root (libvirtd for qemu:///system), this is uid $(id -u)"
guests_ensure_packages qemu-system-x86 util-linux procps libvirt-clients libvirt-daemon libvirt-daemon-driver-qemu
guests_require_cmd qemu-system-x86_64 taskset ps virsh libvirtd virtlogd
[ "$use_strace" = 0 ] || command -v strace >/dev/null || { log "strace not installed: no system-call counts"; use_strace=0; }
[ "$use_perf" = 0 ] || perf record -q -o /dev/null true >/dev/null 2>&1 || { log "perf does not work here: no profiles"; use_perf=0; }

# PIDs of live processes whose name (comm) is one of the arguments' prefixes.
live_named() {
  local d comm pid p
  for d in /proc/[0-9]*; do
    pid=${d#/proc/}
    comm=$(cat "$d/comm" 2>/dev/null) || continue
    for p in "$@"; do
      if [[ $comm == "$p"* ]] && guests_alive "$pid"; then echo "$pid $comm"; break; fi
    done
  done
}
# The host-wide group counts every QEMU of the host, and guests.sh refuses a libvirtd it did
# not start: run on a quiet machine only.
busy=$(live_named qemu-system libvirtd virtlogd)
[ -z "$busy" ] || guests_skip "QEMU or libvirt is already running here ($(echo "$busy" | tr '\n' ' ')) and would skew or block the run"
# ~27 MB resident per paused TCG guest (measured), 60 MB allowed, + 1 GiB for libvirtd and the rest.
avail_mb=$(awk '/^MemAvailable:/ { print int($2 / 1024) }' /proc/meminfo)
need_mb=$((guests * 60 + 1024))
[ "$avail_mb" -ge "$need_mb" ] || guests_skip "$guests guests want ~$need_mb MB and only $avail_mb MB are available"

mkdir -p "$out"
for g in guest host; do rm -f "$out/$g.txt" "$out/$g.load" "$out/$g-strace.txt" "$out/$g-perf.txt"; done
rm -f "$out/summary.txt"
# shellcheck disable=SC2119
guests_init
trap 'teardown' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
log "state in $GUESTS_STATE, results in $out"
failed=0
bench_args=(--benchmark_repetitions="$reps" --benchmark_enable_random_interleaving=true
            --benchmark_report_aggregates_only=true)

# strace_loop NAME N: the system calls of N bare calls of benchmark NAME (strace -f -c of
# `linux-bench --loop` with N calls minus one with 0), one "syscall count" line each and a
# "total" line. The group's environment must be exported.
syscalls_of() {   # FILE: "name calls" from a strace -c summary
  awk '$NF != "syscall" && $NF != "total" && $1 ~ /^[0-9.]+$/ && NF >= 5 { print $NF, $4 }' "$1" | LC_ALL=C sort
}
loop_failed() {   # the message of a `linux-bench --loop` that failed
  echo "  failed: $(tail -n 1 "$GUESTS_STATE/loop.err" 2>/dev/null)"
  log "linux-bench --loop=$1 failed: $(tail -n 1 "$GUESTS_STATE/loop.err" 2>/dev/null)"
  return 1
}
strace_loop() {
  local name=$1 n=$2 f0 f1
  f0=$GUESTS_STATE/strace0 f1=$GUESTS_STATE/strace1
  strace -f -c -o "$f0" "$bench" --loop="$name" --loop-count=0 >/dev/null 2>"$GUESTS_STATE/loop.err" &&
    strace -f -c -o "$f1" "$bench" --loop="$name" --loop-count="$n" >/dev/null 2>"$GUESTS_STATE/loop.err" ||
    loop_failed "$name" || return 1
  LC_ALL=C join -a 2 -e 0 -o 0,1.2,2.2 <(syscalls_of "$f0") <(syscalls_of "$f1") |
    awk -v n="$n" '{ d = ($3 - $2) / n; if (d >= 0.005) { printf "  %-18s %10.2f per call\n", $1, d; t += d } }
                   END { printf "  %-18s %10.2f per call\n", "total", t }'
}
# strace_pid PID NAME N: the system calls PID (libvirtd) makes for N calls of NAME, as above.
strace_pid() {
  local pid=$1 name=$2 n=$3 k f0 f1 sp
  f0=$GUESTS_STATE/strace-pid0 f1=$GUESTS_STATE/strace-pid1
  for k in 0 1; do
    local f=$f0 count=0
    [ $k = 1 ] && f=$f1 count=$n
    strace -f -c -o "$f" -p "$pid" 2>/dev/null &
    sp=$!
    sleep 1   # attached to every thread
    local ok=1
    "$bench" --loop="$name" --loop-count="$count" >/dev/null 2>"$GUESTS_STATE/loop.err" || ok=0
    sleep 0.3
    kill -INT "$sp"
    wait "$sp" || true
    [ $ok = 1 ] || loop_failed "$name" || return 1
  done
  LC_ALL=C join -a 2 -e 0 -o 0,1.2,2.2 <(syscalls_of "$f0") <(syscalls_of "$f1") |
    awk -v n="$n" '{ d = ($3 - $2) / n; if (d >= 0.005) { printf "  %-18s %10.2f per call\n", $1, d; t += d } }
                   END { printf "  %-18s %10.2f per call\n", "total", t }'
}

# perf_profile NAME N: where N bare calls of benchmark NAME spend their time (perf record -g):
# share of samples per object, the kernel functions under the system calls, the top symbols.
perf_profile() {
  local name=$1 n=$2 data=$GUESTS_STATE/perf.data
  perf record -q -g -o "$data" "$bench" --loop="$name" --loop-count="$n" >/dev/null 2>"$GUESTS_STATE/loop.err" ||
    loop_failed "$name" || return 1
  echo "$name ($n calls):"
  echo "  by object:"
  perf report -i "$data" --stdio --no-children --sort dso -g none 2>/dev/null | grep -E '^ +[0-9]' | head -6
  echo "  system calls and /proc handlers, with what they call (children):"
  perf report -i "$data" --stdio --children --sort sym -g none 2>/dev/null |
    grep -E '\] (__x64_sys_[a-z0-9_]+|proc_cgroup_show|do_task_stat|proc_pid_schedstat|cpuset_common_seq_show|proc_task_readdir|proc_pid_cmdline_read|path_openat|__fput)$' |
    awk '$1 + 0 >= 0.5' | head -16
  echo "  top symbols (self):"
  perf report -i "$data" --stdio --no-children --sort dso,sym -g none 2>/dev/null | grep -E '^ +[0-9]' | head -10
  rm -f "$data"
}

# ---- 1. one libvirt guest ----
t0=$(guests_now)
start_libvirt
lvpid=$(define_libvirt_guest lvbench 4)
log "libvirtd up and guest lvbench (PID $lvpid) started paused in $(guests_since "$t0") s"
export VCPUMAP_BENCH_GUEST=lvbench VCPUMAP_BENCH_URI=qemu:///system
VCPUMAP_BENCH_DAEMON_PID=$(cat "$GUESTS_STATE/pids/libvirtd")
export VCPUMAP_BENCH_DAEMON_PID
cut -d' ' -f1-3 /proc/loadavg >"$out/guest.load"
"$bench" "${bench_args[@]}" >"$out/guest.txt" || failed=1
cat "$out/guest.txt"
if [ "$use_strace" = 1 ]; then
  {
    echo "system calls per call (strace -f -c, N calls minus 0 calls), guest lvbench, 4 vcpus:"
    for op in guest/vcpumap_full:2000 guest/vcpumap_metrics:2000 guest/plain_loop:2000 guest/plain_kept_open:2000 \
              guest/floor_same_reads:2000 guest/floor_cached_cgroup:2000; do
      echo "${op%%:*} (this process):"; strace_loop "${op%%:*}" "${op##*:}" || failed=1
    done
    for op in guest/libvirt_getvcpus:500 guest/libvirt_getvcpus_nomaps:500 guest/libvirt_pininfo:500; do
      echo "${op%%:*} (the client):"; strace_loop "${op%%:*}" "${op##*:}" || failed=1
      echo "${op%%:*} (libvirtd, every thread):"
      strace_pid "$(cat "$GUESTS_STATE/pids/libvirtd")" "${op%%:*}" "${op##*:}" || failed=1
    done
  } >"$out/guest-strace.txt"
  cat "$out/guest-strace.txt"
fi
if [ "$use_perf" = 1 ]; then
  for op in guest/vcpumap_full:20000 guest/vcpumap_metrics:20000 guest/floor_same_reads:20000 guest/plain_loop:20000; do
    perf_profile "${op%%:*}" "${op##*:}" || failed=1
  done >"$out/guest-perf.txt"
  cat "$out/guest-perf.txt"
fi
unset VCPUMAP_BENCH_GUEST VCPUMAP_BENCH_URI VCPUMAP_BENCH_DAEMON_PID

t0=$(guests_now)
teardown || failed=1
left=$(live_named qemu-system libvirtd virtlogd)
[ -z "$left" ] || { log "error: still running after the libvirt teardown: $left"; failed=1; }
log "libvirt torn down in $(guests_since "$t0") s"
unset GUESTS_STATE
# shellcheck disable=SC2119
guests_init

# ---- 2. a host of plain guests ----
t0=$(guests_now)
for i in $(seq 1 "$guests"); do start_qemu "hb$i" 4 none >/dev/null; done
rss=$(for f in "$GUESTS_STATE"/pids/qemu-*; do awk '/^VmRSS:/ { print $2 }' "/proc/$(cat "$f")/status"; done |
      awk '{ s += $1 } END { printf "%.0f", s / 1024 }')
log "$guests plain guests started in $(guests_since "$t0") s, $rss MB resident in all, $(awk '/^MemAvailable:/ { print int($2 / 1024) }' /proc/meminfo) MB still available"
export VCPUMAP_BENCH_HOST=$guests
cut -d' ' -f1-3 /proc/loadavg >"$out/host.load"
"$bench" "${bench_args[@]}" >"$out/host.txt" || failed=1
cat "$out/host.txt"
if [ "$use_strace" = 1 ]; then
  {
    echo "system calls per call (strace -f -c, N calls minus 0 calls), $guests guests, $((guests * 4)) vcpus:"
    for op in host/vcpumap_all_full:100 host/vcpumap_all_metrics:100 host/plain_loop:100 host/plain_kept_open:100 \
              host/script_ps_taskset:2; do
      echo "${op%%:*}:"; strace_loop "${op%%:*}" "${op##*:}" || failed=1
    done
  } >"$out/host-strace.txt"
  cat "$out/host-strace.txt"
fi
if [ "$use_perf" = 1 ]; then
  for op in host/vcpumap_all_full:300 host/plain_loop:1000; do
    perf_profile "${op%%:*}" "${op##*:}" || failed=1
  done >"$out/host-perf.txt"
  cat "$out/host-perf.txt"
fi
unset VCPUMAP_BENCH_HOST

# ---- 3. cleanup, checked ----
t0=$(guests_now)
teardown || failed=1
trap - EXIT
sleep 2   # PID 1 reaps orphans every ~2 s here: zombies are not "left", but wait for them anyway
left=$(live_named qemu-system libvirtd virtlogd)
if [ -n "$left" ]; then log "error: still running after teardown: $left"; failed=1
else log "cleanup done in $(guests_since "$t0") s: no qemu, libvirtd or virtlogd left"; fi

# ---- summary ----
{
  echo
  btype=$(python3 -c 'import json,sys; print(next(o["value"] for o in json.load(open(sys.argv[1])) if o["name"] == "buildtype"))' \
          "$build_dir/meson-info/intro-buildoptions.json" 2>/dev/null || echo '?')
  echo "==== linux-bench summary: kernel $(uname -r), $(nproc) CPUs, buildtype $btype"
  for g in guest host; do
    [ -f "$out/$g.txt" ] || continue
    echo "($g group: load average (1, 5, 15 min) when it started: $(cat "$out/$g.load" 2>/dev/null || echo '?'))"
    sed -n '/wall time per call (median)/,$p' "$out/$g.txt"
    if [ -f "$out/$g-strace.txt" ]; then grep -E '^[a-z]|total' "$out/$g-strace.txt"; fi
  done
} | tee "$out/summary.txt"
exit "$failed"
