#!/usr/bin/env bash
# vcpu-list --prometheus against the real programs: promtool, node_exporter's textfile
# collector, a Prometheus server and its HTTP API, and prometheus-libvirt-exporter side by side
# (never in parallel with another test that starts guests: suite 'prometheus', serial).
#
#   tests/prometheus_integration/run-prometheus-test.sh BUILD_DIR
#
#   BUILD_DIR    a meson build folder with examples/vcpu-list and examples/vcpu-pin
#
# What happens (see README.md next to this script):
#   1. scripts/setup-debian.sh --prometheus-test installs what is missing of prometheus
#      prometheus-node-exporter prometheus-libvirt-exporter and the guests' packages
#      (qemu-system-x86, libvirt's daemon), with no service of theirs started;
#   2. a paused TCG guest g1 (plain QEMU, 4 vcpus), libvirtd and a libvirt guest lv1 (2 vcpus);
#   3. two watchers, `vcpu-list --prometheus --output DIR/vcpumap.prom --watch 1`, one on the demo
#      host (--backend=mock), one on this Linux host (--backend=linux), each in its own textfile
#      folder; two node_exporters (127.0.0.1, textfile collector only) serve them, as two hosts
#      of a fleet would; a Prometheus server (127.0.0.1) scrapes both every second;
#   4. check_prometheus.py: promtool check metrics; node_exporter's own view; PromQL over the
#      HTTP API gives the demo host's vcpus and g1's and lv1's, equal to vcpu-list --json; a pin
#      made with vcpu-pin reaches Prometheus; the README's PromQL examples answer; then one
#      scrape of prometheus-libvirt-exporter against one run of vcpu-list --prometheus on lv1,
#      timed, with what each publishes;
#   5. teardown: every process started here stopped by PID, guests and libvirtd as for the
#      Linux test, files removed.
# Exit status: 0 pass, 1 a check failed, 2 usage error, 77 skipped (not root, or the packages
# cannot be installed; the reason is printed). Needs root. Takes ~40 s on the 2-core machine.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=../linux_integration/guests.sh
source "$here/../linux_integration/guests.sh"

log() { echo "run-prometheus-test: $*" >&2; }
die() { log "error: $*"; exit 2; }

[ $# -eq 1 ] || die "usage: run-prometheus-test.sh BUILD_DIR"
build_dir=$1
list_tool=$build_dir/examples/vcpu-list pin_tool=$build_dir/examples/vcpu-pin
for t in "$list_tool" "$pin_tool"; do
  [ -x "$t" ] || die "$t is not built (meson setup with -Dexamples=true, then ninja)"
done
list_tool=$(readlink -f "$list_tool") pin_tool=$(readlink -f "$pin_tool")
export LC_ALL=C

[ "$(id -u)" -eq 0 ] || guests_skip "run-prometheus-test.sh needs root (libvirtd for qemu:///system, apt-get), this is uid $(id -u)"
# setup-debian.sh: the packages' own services are never started by the install.
"$here/../../scripts/setup-debian.sh" --prometheus-test >&2 ||
  guests_skip "packages for the Prometheus test could not be installed because setup-debian.sh failed (no archive access?)"
guests_require_cmd prometheus promtool prometheus-node-exporter prometheus-libvirt-exporter qemu-system-x86_64 \
  python3 virsh libvirtd virtlogd

# shellcheck disable=SC2119  # guests_init takes an optional folder, not the script's arguments
guests_init
trap 'teardown' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
s=$GUESTS_STATE
log "state in $s"
failed=0

# free_ports N: N TCP ports on 127.0.0.1 that nothing listens on now.
free_ports() {
  python3 -c '
import socket, sys
socks = [socket.socket() for _ in range(int(sys.argv[1]))]
for k in socks: k.bind(("127.0.0.1", 0))
print(" ".join(str(k.getsockname()[1]) for k in socks))' "$1"
}
# background NAME WORD COMMAND...: starts COMMAND with its output in the state dir, tracked for
# teardown (stopped by PID while its command line holds WORD); prints the PID.
background() {
  local name=$1 word=$2
  shift 2
  "$@" </dev/null >>"$s/logs/$name.log" 2>&1 &
  local pid=$!
  guests_track "$name" "$pid" "$word"
  echo "$pid"
}

# ---- guests --------------------------------------------------------------------------------------
echo "=== guests ==="
g1=$(start_qemu g1 4 none) || { echo "FAIL - plain QEMU guest g1 did not start"; exit 1; }
lv1=""
if start_libvirt >/dev/null && lv1=$(define_libvirt_guest lv1 2); then :; else
  echo "FAIL - libvirtd or guest lv1 did not start"
  tail -n 20 "$s/logs/libvirtd.log" >&2 2>/dev/null || true
  failed=1
fi

# ---- watchers, exporters, Prometheus ---------------------------------------------------------------
echo "=== exporters and Prometheus on 127.0.0.1 ==="
read -r p_demo p_linux p_prom p_libvirt < <(free_ports 4)
mkdir -p "$s/textfile-demo" "$s/textfile-linux" "$s/tsdb"
background watch-demo "$list_tool" "$list_tool" --prometheus --backend=mock --watch 1 \
  --output "$s/textfile-demo/vcpumap.prom" >/dev/null
background watch-linux "$list_tool" "$list_tool" --prometheus --backend=linux --watch 1 \
  --output "$s/textfile-linux/vcpumap.prom" >/dev/null
# Only the textfile collector: the test reads vcpumap's files, not the machine.
background node-exporter-demo prometheus-node-exporter prometheus-node-exporter \
  --web.listen-address="127.0.0.1:$p_demo" --collector.disable-defaults --collector.textfile \
  --collector.textfile.directory="$s/textfile-demo" >/dev/null
background node-exporter-linux prometheus-node-exporter prometheus-node-exporter \
  --web.listen-address="127.0.0.1:$p_linux" --collector.disable-defaults --collector.textfile \
  --collector.textfile.directory="$s/textfile-linux" >/dev/null
cat >"$s/prometheus.yml" <<EOF
global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: vcpumap
    static_configs:
      - targets: ['127.0.0.1:$p_demo']
        labels: {host: demo}
      - targets: ['127.0.0.1:$p_linux']
        labels: {host: linux}
EOF
promtool check config "$s/prometheus.yml" >/dev/null || { echo "FAIL - promtool check config"; failed=1; }
background prometheus "$s/prometheus.yml" prometheus --config.file="$s/prometheus.yml" \
  --storage.tsdb.path="$s/tsdb" --web.listen-address="127.0.0.1:$p_prom" >/dev/null
libvirt_exporter=$(background libvirt-exporter prometheus-libvirt-exporter prometheus-libvirt-exporter \
  --web.listen-address="127.0.0.1:$p_libvirt" --libvirt.uri=qemu:///system)

# ---- checks ----------------------------------------------------------------------------------------
guest_args=(--guest "g1=$g1")
[ -n "$lv1" ] && guest_args+=(--guest "lv1=$lv1" --libvirt-guest lv1)
python3 "$here/check_prometheus.py" --list "$list_tool" --pin "$pin_tool" \
  --prometheus "http://127.0.0.1:$p_prom" --node-exporter "demo=http://127.0.0.1:$p_demo" \
  --node-exporter "linux=http://127.0.0.1:$p_linux" --textfile "demo=$s/textfile-demo/vcpumap.prom" \
  --textfile "linux=$s/textfile-linux/vcpumap.prom" \
  --libvirt-exporter "http://127.0.0.1:$p_libvirt" --libvirt-exporter-pid "$libvirt_exporter" \
  "${guest_args[@]}" || failed=1
if [ "$failed" = 1 ]; then
  for f in "$s"/logs/{watch-demo,watch-linux,node-exporter-demo,prometheus,libvirt-exporter}.log; do
    [ -s "$f" ] && { log "the end of ${f##*/}:"; tail -n 5 "$f" >&2; }
  done
fi

# ---- teardown -------------------------------------------------------------------------------------
t0=$(guests_now)
if teardown; then
  echo "# teardown (servers, watchers, guests, libvirtd, files): $(guests_since "$t0") s"
else
  echo "FAIL - teardown left something behind (see above)"
  failed=1
fi
for port in $p_demo $p_linux $p_prom $p_libvirt; do   # loopback ports given back
  if python3 -c 'import socket,sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), 1)' "$port" 2>/dev/null; then
    echo "FAIL - something still listens on 127.0.0.1:$port"
    failed=1
  fi
done
if [ "$failed" = 1 ]; then echo "run-prometheus-test: FAIL"; exit 1; fi
echo "run-prometheus-test: PASS"
