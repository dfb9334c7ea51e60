#!/usr/bin/env bash
# The Linux/KVM backend (--backend=linux of vcpu-list and vcpu-pin) against real QEMU guests and a
# real libvirt daemon, one step after another (never in parallel with another such test).
#
#   tests/linux_integration/run-linux-test.sh [--env-only] BUILD_DIR
#
#   BUILD_DIR    a meson build folder with examples/vcpu-list and examples/vcpu-pin
#   --env-only   only the environment (guests, QMP hot-plug, taskset, virsh parsing, cpusets);
#                no tool runs, BUILD_DIR may be left out
#
# What happens (see README.md next to this script):
#   1. apt-get installs what is missing of qemu-system-x86 libvirt-daemon
#      libvirt-daemon-driver-qemu libvirt-clients util-linux (never libvirt-daemon-system: it
#      pulls in systemd);
#   2. three paused TCG guests without disks: g1 (-smp 4, an IOThread), g2 (-smp 2,maxcpus=4),
#      g3 (-smp 2, no debug-threads; its QMP socket only for the --qmp checks); check_linux.py plain,
#      then check_python.py plain (the Python module, when built: VCPUMAP_PYTHONPATH);
#   3. virtlogd + libvirtd (qemu:///system), guests lv1 (4 vcpus) and lv2 (2 vcpus) defined and
#      started paused; check_linux.py libvirt, check_python.py libvirt (against libvirt-python);
#   4. teardown: everything stopped, qemu.conf and the libvirt folders as they were.
# Exit status: 0 pass, 1 a check failed (or the tools have no linux backend), 2 usage error,
# 77 skipped (not root, or the packages cannot be installed; the reason is printed).
# Needs root. Takes ~25 s on the 2-core dev machine (libvirtd's first start probes QEMU: ~8 s).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=guests.sh
source "$here/guests.sh"

log() { echo "run-linux-test: $*" >&2; }
die() { log "error: $*"; exit 2; }
usage() { sed -n '5,9p' "$0" | sed 's/^# \{0,1\}//'; }

env_only=0
build_dir=""
while [ $# -gt 0 ]; do
  case "$1" in
    --env-only) env_only=1; shift ;;
    -h|--help) usage; exit 0 ;;
    -*) usage >&2; die "unknown option '$1'" ;;
    *) [ -z "$build_dir" ] || die "one BUILD_DIR only"; build_dir=$1; shift ;;
  esac
done
list_tool=none pin_tool=none
if [ "$env_only" = 0 ]; then
  [ -n "$build_dir" ] || { usage >&2; die "BUILD_DIR is required (or --env-only)"; }
  list_tool=$build_dir/examples/vcpu-list pin_tool=$build_dir/examples/vcpu-pin
  for t in "$list_tool" "$pin_tool"; do
    [ -x "$t" ] || die "$t is not built (meson setup with -Dexamples=true, then ninja)"
  done
fi
export LC_ALL=C

[ "$(id -u)" -eq 0 ] || guests_skip "run-linux-test.sh needs root (libvirtd for qemu:///system, apt-get), this is uid $(id -u)"
guests_ensure_packages qemu-system-x86 util-linux libvirt-clients libvirt-daemon libvirt-daemon-driver-qemu
guests_require_cmd qemu-system-x86_64 taskset python3 virsh libvirtd virtlogd

# shellcheck disable=SC2119  # guests_init takes an optional folder, not the script's arguments
guests_init
trap 'teardown' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
log "state in $GUESTS_STATE"

timings=()
failed=0
# shellcheck disable=SC2034  # set by `timed` (printf -v)
g1="" g2="" g3="" lv1="" lv2="" ignored=""
checks() {   # check_linux.py PART GUEST-ARGS...; counts a failure, never stops the run
  local part=$1; shift
  local extra=()
  [ "$env_only" = 1 ] && extra=(--env-only)
  python3 "$here/check_linux.py" ${extra[@]+"${extra[@]}"} --list "$list_tool" --pin "$pin_tool" "$part" "$@" || {
    log "check_linux.py $part failed"
    failed=1
  }
}
# The Python module's checks (check_python.py), when the build has the module: meson's test
# sets VCPUMAP_PYTHONPATH (<build>/python) and VCPUMAP_PYTHON (the interpreter it was built for).
pychecks() {   # check_python.py PART GUEST-ARGS...; counts a failure, never stops the run
  local part=$1; shift
  if [ "$env_only" = 1 ] || [ -z "${VCPUMAP_PYTHONPATH:-}" ]; then
    echo "# python $part: not run (no Python module in this build, or --env-only)"
    return 0
  fi
  PYTHONPATH=$VCPUMAP_PYTHONPATH "${VCPUMAP_PYTHON:-python3}" "$here/check_python.py" "$part" "$@" || {
    log "check_python.py $part failed"
    failed=1
  }
}
# timed LABEL VAR COMMAND...: VAR=$(COMMAND...), adds "LABEL N s" to the timings.
timed() {
  local label=$1 var=$2 t0 out
  shift 2
  t0=$(guests_now)
  out=$("$@") || return 1
  timings+=("$label $(guests_since "$t0") s")
  printf -v "$var" '%s' "$out"
}

# ---- plain QEMU -------------------------------------------------------------------------------------
echo "=== plain QEMU guests ==="
s=$GUESTS_STATE
if timed "plain QEMU g1 (-smp 4) to vcpu threads:" g1 start_qemu g1 4 "$s/g1.qmp" -object iothread,id=iot1 &&
   timed "plain QEMU g2 (-smp 2,maxcpus=4):" g2 start_qemu g2 2,maxcpus=4 "$s/g2.qmp" &&
   timed "plain QEMU g3 (no debug-threads):" g3 start_qemu --no-debug-threads g3 2 "$s/g3.qmp"; then
  checks plain --guest "g1=$g1,$s/g1.qmp" --guest "g2=$g2,$s/g2.qmp" --guest "g3=$g3,$s/g3.qmp"
  pychecks plain --guest "g1=$g1" --guest "g2=$g2" --guest "g3=$g3"
else
  echo "FAIL - the plain QEMU guests did not start"
  failed=1
fi

# ---- libvirt --------------------------------------------------------------------------------------
echo "=== libvirt ==="
if timed "libvirtd + virtlogd up (cold: includes libvirtd's QEMU capability probe):" ignored start_libvirt &&
   timed "libvirt guest lv1 (4 vcpus) define + start --paused, first guest:" lv1 define_libvirt_guest lv1 4 &&
   timed "libvirt guest lv2 (2 vcpus) define + start --paused, warm:" lv2 define_libvirt_guest lv2 2 &&
   timed "libvirt guest lv2 destroy:" ignored stop_libvirt_guest lv2 &&
   timed "libvirt guest lv2 start --paused again, warm:" lv2 start_libvirt_guest lv2 2; then
  checks libvirt --guest "lv1=$lv1"
  pychecks libvirt --guest "lv1=$lv1"
  if [ "$failed" = 1 ]; then
    log "the end of lv1's QEMU log:"; tail -n 5 /var/log/libvirt/qemu/lv1.log >&2 || true
  fi
else
  echo "FAIL - libvirtd or its guests did not start"
  failed=1
  log "the end of libvirtd's log:"; tail -n 20 "$GUESTS_STATE/logs/libvirtd.log" >&2 2>/dev/null || true
fi

# ---- teardown -------------------------------------------------------------------------------------
t0=$(guests_now)
if teardown; then
  timings+=("teardown (guests, daemons, files): $(guests_since "$t0") s")
else
  echo "FAIL - teardown left something behind (see above)"
  failed=1
fi
echo "=== timings ==="
printf '  %s\n' "${timings[@]}"
if [ "$failed" = 1 ]; then echo "run-linux-test: FAIL"; exit 1; fi
echo "run-linux-test: PASS$([ "$env_only" = 1 ] && echo " (environment only)")"
