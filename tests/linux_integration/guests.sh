# shellcheck shell=bash
# Real QEMU guests and a real libvirt daemon for the Linux/KVM backend's tests. Source it:
#
#   source tests/linux_integration/guests.sh
#   guests_init                       # state dir; then: trap teardown EXIT; trap 'exit 130' INT ...
#   guests_ensure_packages qemu-system-x86 util-linux     # apt-get install only what is missing
#   pid=$(start_qemu g1 4 "$GUESTS_STATE/g1.qmp")          # paused TCG guest, 4 vcpu threads
#   start_libvirt                                         # virtlogd + libvirtd, qemu:///system
#   pid=$(define_libvirt_guest lv1 4)                     # defined + started paused
#   guests_track exporter "$pid" node-exporter             # any other process teardown must stop
#   teardown                                              # everything back as it was
#
# Every process started here, every file and account made, is recorded in the state dir
# ($GUESTS_STATE, a private folder under /tmp) and undone by `teardown`, which is safe to call
# twice and after a partial setup. State lives in files, not variables, so the functions also
# work inside $(...). Functions print results on stdout and diagnostics on stderr, and return
# nonzero on failure; guests_skip (exit 77, meson's skip code) is for missing prerequisites.
# Needs root (libvirtd for qemu:///system, useradd, apt-get).

[ -z "${GUESTS_SH_LOADED:-}" ] || return 0
GUESTS_SH_LOADED=1
readonly GUESTS_QEMU=qemu-system-x86_64
readonly GUESTS_URI=qemu:///system
readonly GUESTS_QEMU_CONF=/etc/libvirt/qemu.conf
# The first line of the qemu.conf we write; the second names the backup ("none": there was none),
# so a run killed with SIGKILL can be undone by the next one.
readonly GUESTS_CONF_MARK="# written by vcpumap tests/linux_integration/guests.sh: not the machine's own"
# Folders libvirtd and virtlogd write to: what is new there after a run is removed by teardown.
readonly GUESTS_LIBVIRT_DIRS=(/etc/libvirt /var/lib/libvirt /var/cache/libvirt /var/log/libvirt /run/libvirt)
readonly GUESTS_DAEMON_WAIT=20   # seconds for a daemon to exit after SIGTERM (then SIGKILL)

guests_log() { echo "guests: $*" >&2; }
guests_skip() {
  echo "SKIP: $*"
  echo "SKIP: $*" >&2
  exit 77
}
guests_now() { date +%s.%N; }
# Seconds since a guests_now stamp, to 0.01 s.
guests_since() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2f", b - a }'; }

# guests_init [DIR]: the state dir (created once; exported as GUESTS_STATE).
guests_init() {
  if [ -n "${GUESTS_STATE:-}" ] && [ -d "$GUESTS_STATE" ]; then return 0; fi
  if [ -n "${1:-}" ]; then mkdir -p "$1" && GUESTS_STATE=$(readlink -f "$1")
  else GUESTS_STATE=$(mktemp -d "${TMPDIR:-/tmp}/vcpumap-linux.XXXXXX"); fi
  mkdir -p "$GUESTS_STATE/pids" "$GUESTS_STATE/logs"
  export GUESTS_STATE
}
guests_state() {
  if [ -z "${GUESTS_STATE:-}" ] || [ ! -d "$GUESTS_STATE" ]; then
    guests_log "no state dir: call guests_init first"
    return 1
  fi
  echo "$GUESTS_STATE"
}

# guests_ensure_packages PKG...: installs (apt-get, no recommends) the packages that are not
# installed; skips (exit 77) when that is impossible. Run it in the main shell, not in $(...).
guests_ensure_packages() {
  local p missing=()
  for p in "$@"; do
    [ "$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null)" = installed ] || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  [ "$(id -u)" -eq 0 ] || guests_skip "packages ${missing[*]} are missing because apt-get needs root and this is uid $(id -u)"
  guests_log "installing ${missing[*]}"
  if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2; then
    guests_log "apt-get install failed; running apt-get update and retrying once"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2 || true
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2 ||
      guests_skip "packages ${missing[*]} could not be installed because apt-get failed (no archive access?)"
  fi
}
# guests_require_cmd CMD...: skips when a command is still missing.
guests_require_cmd() {
  local c
  for c in "$@"; do
    command -v "$c" >/dev/null 2>&1 || guests_skip "$c is not installed because its package did not provide it"
  done
}

# ---------------------------------------------------------------------------------------------
# Processes
# ---------------------------------------------------------------------------------------------
# A process is alive when /proc has it and it is not a zombie. (On these machines PID 1 reaps
# orphans only every ~2 s, so a daemon that has exited stays a zombie for a moment.)
guests_alive() {
  local stat
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  stat=${stat##*) }
  [ "${stat%% *}" != Z ] && [ "${stat%% *}" != X ]
}
# guests_wait_gone PID SECONDS
guests_wait_gone() {
  local pid=$1 deadline=$((SECONDS + $2))
  while guests_alive "$pid"; do
    [ $SECONDS -lt "$deadline" ] || return 1
    sleep 0.1
  done
}
# guests_stop_pid PID LABEL CMDLINE_WORD: SIGTERM, wait, SIGKILL, wait. The PID is only signalled
# while its command line still contains CMDLINE_WORD (a recycled PID is left alone).
guests_stop_pid() {
  local pid=$1 label=$2 word=$3
  guests_alive "$pid" || return 0
  if ! tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$word"; then
    guests_log "PID $pid ($label) is no longer ours (command line lacks '$word'): left alone"
    return 0
  fi
  kill -TERM "$pid" 2>/dev/null || true
  guests_wait_gone "$pid" "$GUESTS_DAEMON_WAIT" && return 0
  guests_log "$label (PID $pid) ignored SIGTERM for ${GUESTS_DAEMON_WAIT} s: SIGKILL"
  kill -KILL "$pid" 2>/dev/null || true
  guests_wait_gone "$pid" 5 && return 0
  guests_log "error: $label (PID $pid) is still alive"
  return 1
}
# guests_vcpu_threads PID: how many threads are named "CPU n/TCG" or "CPU n/KVM".
guests_vcpu_threads() {
  local t n=0 comm
  for t in /proc/"$1"/task/*/comm; do
    comm=$(cat "$t" 2>/dev/null) || continue
    [[ $comm =~ ^CPU\ [0-9]+/(TCG|KVM)$ ]] && n=$((n + 1))
  done
  echo "$n"
}
guests_threads() { local t n=0; for t in /proc/"$1"/task/*; do [ -e "$t" ] && n=$((n + 1)); done; echo "$n"; }

# guests_track NAME PID CMDLINE_WORD: teardown stops PID (a server or watcher a test started:
# exporters, Prometheus, a tool in --watch) before the guests and daemons, while its command line
# still contains CMDLINE_WORD.
guests_track() {
  local state
  state=$(guests_state) || return 1
  printf '%s %s\n' "$2" "$3" >"$state/pids/proc-$1"
}

# ---------------------------------------------------------------------------------------------
# Plain QEMU
# ---------------------------------------------------------------------------------------------
# start_qemu [--no-debug-threads] NAME SMP_SPEC QMP_PATH|none [QEMU_ARG...]
# Starts a paused (-S) TCG guest with 64 MiB and no devices, daemonized, and waits (10 s at most)
# until its vcpu threads exist: one per vcpu online at start (SMP_SPEC "4", "2,maxcpus=4",
# "cpus=2,..."). Prints the PID. Without debug-threads the threads have no names, so it waits
# for main + call_rcu + the vcpus instead.
start_qemu() {
  local debug=on
  if [ "${1:-}" = --no-debug-threads ]; then debug=off; shift; fi
  [ $# -ge 3 ] || { guests_log "usage: start_qemu [--no-debug-threads] NAME SMP_SPEC QMP_PATH|none [ARG...]"; return 2; }
  local name=$1 smp=$2 qmp=$3 state pidfile log pid want args deadline
  shift 3
  state=$(guests_state) || return 1
  pidfile=$state/qemu-$name.pid
  log=$state/logs/qemu-$name.log
  case "$smp" in
    [0-9]*) want=${smp%%,*} ;;
    *cpus=*) want=${smp#*cpus=}; want=${want%%,*} ;;
    *) guests_log "start_qemu: cannot tell the vcpu count of -smp '$smp'"; return 2 ;;
  esac
  # shellcheck disable=SC2054  # commas inside QEMU option values
  args=(-S -accel tcg,thread=multi -smp "$smp" -m 64 -nodefaults -display none)
  if [ "$debug" = on ]; then args+=(-name "guest=$name,debug-threads=on"); else args+=(-name "guest=$name"); fi
  [ "$qmp" = none ] || args+=(-qmp "unix:$qmp,server=on,wait=off")
  args+=(-daemonize -pidfile "$pidfile" "$@")
  rm -f "$pidfile"
  # stdio to a file: a daemon holding the caller's stdout would keep meson waiting for EOF.
  if ! "$GUESTS_QEMU" "${args[@]}" </dev/null >>"$log" 2>&1; then
    guests_log "error: $GUESTS_QEMU ${args[*]} failed:"; cat "$log" >&2
    return 1
  fi
  pid=$(cat "$pidfile" 2>/dev/null) || { guests_log "error: QEMU wrote no $pidfile"; return 1; }
  echo "$pid" >"$state/pids/qemu-$name"   # QEMU removes its pidfile when it exits cleanly
  deadline=$((SECONDS + 10))
  while :; do
    guests_alive "$pid" || { guests_log "error: QEMU $name (PID $pid) exited:"; cat "$log" >&2; return 1; }
    if [ "$debug" = on ]; then [ "$(guests_vcpu_threads "$pid")" -ge "$want" ] && break
    else [ "$(guests_threads "$pid")" -ge $((want + 2)) ] && break; fi
    [ $SECONDS -lt "$deadline" ] || { guests_log "error: QEMU $name has no $want vcpu threads after 10 s"; return 1; }
    sleep 0.05
  done
  echo "$pid"
}

# ---------------------------------------------------------------------------------------------
# libvirt
# ---------------------------------------------------------------------------------------------
guests_virsh() { timeout 60 virsh -q -c "$GUESTS_URI" "$@"; }

# Every path in the daemons' folders, and every cgroup under a "machine" group (libvirt's
# partition without systemd), sorted.
guests_libvirt_paths() {
  { find "${GUESTS_LIBVIRT_DIRS[@]}" 2>/dev/null || true   # the folders need not exist
    find /sys/fs/cgroup/machine* /sys/fs/cgroup/*/machine* -type d 2>/dev/null || true
  } | LC_ALL=C sort
}

# Undoes the qemu.conf of a run that was killed before its teardown (its first line is ours).
guests_recover_qemu_conf() {
  local orig
  [ -f "$GUESTS_QEMU_CONF" ] && [ "$(head -n1 "$GUESTS_QEMU_CONF")" = "$GUESTS_CONF_MARK" ] || return 0
  orig=$(sed -n '2s/^# original: //p' "$GUESTS_QEMU_CONF")
  if [ "$orig" = none ]; then
    guests_log "removing $GUESTS_QEMU_CONF left by an earlier run that was killed"
    rm -f "$GUESTS_QEMU_CONF"
  elif [ -n "$orig" ] && [ -f "$orig" ]; then
    guests_log "restoring $GUESTS_QEMU_CONF from $orig (an earlier run was killed)"
    cp -p "$orig" "$GUESTS_QEMU_CONF" && rm -f "$orig"
  else
    guests_log "error: $GUESTS_QEMU_CONF was written by an earlier run whose backup '$orig' is gone; fix it by hand"
    return 1
  fi
}

# start_libvirt: prepares what libvirt needs without systemd (libvirt-qemu user and group,
# /var/log/libvirt/qemu, a qemu.conf running QEMU as root with no security driver; each only if
# missing, each undone by teardown), then starts virtlogd and libvirtd and waits (30 s at most)
# until `virsh version` answers. Does nothing when its daemons already run.
start_libvirt() {
  local state pid deadline d conf_backup
  state=$(guests_state) || return 1
  if [ -f "$state/pids/libvirtd" ] && guests_alive "$(cat "$state/pids/libvirtd")"; then return 0; fi
  [ "$(id -u)" -eq 0 ] || { guests_log "error: start_libvirt needs root"; return 1; }
  for pid in $(pgrep -x libvirtd; pgrep -x virtlogd); do
    guests_alive "$pid" || continue   # the zombie of an earlier run's daemon, not yet reaped by PID 1
    guests_log "error: a $(cat "/proc/$pid/comm") not started by this run is running (PID $pid); this test needs the machine's libvirt to itself"
    return 1
  done
  # What exists before the daemons first run stays; anything new in their folders goes at teardown.
  if [ ! -f "$state/libvirt-preexisting" ]; then
    guests_libvirt_paths >"$state/libvirt-preexisting.tmp"
    mv "$state/libvirt-preexisting.tmp" "$state/libvirt-preexisting"
  fi
  # libvirt resolves its built-in user before it reads qemu.conf: the names must exist.
  if ! getent group libvirt-qemu >/dev/null; then
    groupadd --system libvirt-qemu && echo "group libvirt-qemu" >>"$state/created" || return 1
  fi
  if ! getent passwd libvirt-qemu >/dev/null; then
    useradd --system --no-create-home --home-dir /var/lib/libvirt --shell /usr/sbin/nologin -g libvirt-qemu libvirt-qemu &&
      echo "user libvirt-qemu" >>"$state/created" || return 1
  fi
  for d in /var/log/libvirt /var/log/libvirt/qemu; do   # both daemons exit without it
    if [ ! -d "$d" ]; then mkdir "$d" && echo "dir $d" >>"$state/created" || return 1; fi
  done
  guests_recover_qemu_conf || return 1
  if [ ! -f "$state/qemu.conf.saved" ]; then
    if [ -e "$GUESTS_QEMU_CONF" ]; then
      conf_backup=$GUESTS_QEMU_CONF.vcpumap-test-backup
      cp -p "$GUESTS_QEMU_CONF" "$conf_backup" || return 1
    else
      conf_backup=none
    fi
    echo "$conf_backup" >"$state/qemu.conf.saved"
    mkdir -p "$(dirname "$GUESTS_QEMU_CONF")"
    cat >"$GUESTS_QEMU_CONF.tmp" <<EOF
$GUESTS_CONF_MARK
# original: $conf_backup
user = "root"
group = "root"
dynamic_ownership = 0
security_driver = "none"
EOF
    mv "$GUESTS_QEMU_CONF.tmp" "$GUESTS_QEMU_CONF"
  fi
  export LIBVIRT_DEFAULT_URI=$GUESTS_URI
  # virtlogd removes its pid file before it has exited: keep our own copy of each PID.
  guests_start_daemon virtlogd || return 1
  guests_start_daemon libvirtd || return 1
  deadline=$((SECONDS + 30))
  until timeout 5 virsh -c "$GUESTS_URI" version >/dev/null 2>&1; do
    if ! guests_alive "$(cat "$state/pids/libvirtd")" || [ $SECONDS -ge "$deadline" ]; then
      guests_log "error: libvirtd does not answer on $GUESTS_URI; the end of its log:"
      tail -n 20 "$state/logs/libvirtd.log" >&2
      return 1
    fi
    sleep 0.1
  done
}
# guests_start_daemon virtlogd|libvirtd: `NAME -d --pid-file`, logging to the state dir.
guests_start_daemon() {
  local name=$1 state pidfile deadline
  state=$(guests_state) || return 1
  pidfile=$state/$name.pid
  rm -f "$pidfile"
  LIBVIRT_LOG_OUTPUTS="3:file:$state/logs/$name.log" "$name" -d --pid-file "$pidfile" \
    </dev/null >>"$state/logs/$name.stdio" 2>&1 || { guests_log "error: $name -d failed:"; cat "$state/logs/$name.stdio" >&2; return 1; }
  deadline=$((SECONDS + 10))
  until [ -s "$pidfile" ]; do
    [ $SECONDS -lt "$deadline" ] || { guests_log "error: $name wrote no pid file in 10 s"; return 1; }
    sleep 0.05
  done
  cp "$pidfile" "$state/pids/$name"
}

# define_libvirt_guest NAME VCPUS: defines the smallest domain libvirt's QEMU driver accepts
# (type qemu, 64 MiB, no disk, no network, no graphics element), starts it paused, prints the
# QEMU PID.
define_libvirt_guest() {
  [ $# -eq 2 ] || { guests_log "usage: define_libvirt_guest NAME VCPUS"; return 2; }
  local name=$1 vcpus=$2 state xml
  state=$(guests_state) || return 1
  xml=$state/$name.xml
  cat >"$xml" <<EOF
<domain type='qemu'>
  <name>$name</name>
  <memory unit='MiB'>64</memory>
  <vcpu>$vcpus</vcpu>
  <os><type arch='x86_64' machine='pc'>hvm</type></os>
  <devices>
    <controller type='usb' model='none'/>
    <video><model type='none'/></video>
    <memballoon model='none'/>
  </devices>
</domain>
EOF
  grep -qxF "$name" "$state/libvirt-guests" 2>/dev/null || echo "$name" >>"$state/libvirt-guests"
  guests_virsh define "$xml" >/dev/null || { guests_log "error: virsh define $xml failed"; return 1; }
  start_libvirt_guest "$name" "$vcpus"
}

# start_libvirt_guest NAME [VCPUS]: `virsh start --paused`, waits (20 s at most) for the vcpu
# threads, prints the QEMU PID (/run/libvirt/qemu/NAME.pid).
start_libvirt_guest() {
  local name=$1 vcpus=${2:-} state pid deadline
  state=$(guests_state) || return 1
  if [ -z "$vcpus" ]; then
    vcpus=$(guests_virsh vcpucount "$name" --maximum --config) || return 1
  fi
  guests_virsh start --paused "$name" >/dev/null || {
    guests_log "error: virsh start --paused $name failed; the end of its log:"
    tail -n 20 "/var/log/libvirt/qemu/$name.log" >&2 2>/dev/null
    return 1
  }
  pid=$(cat "/run/libvirt/qemu/$name.pid" 2>/dev/null) || { guests_log "error: no /run/libvirt/qemu/$name.pid"; return 1; }
  echo "$pid" >"$state/pids/lvqemu-$name"
  deadline=$((SECONDS + 20))
  until [ "$(guests_vcpu_threads "$pid")" -ge "$vcpus" ]; do
    [ $SECONDS -lt "$deadline" ] || { guests_log "error: $name (PID $pid) has no $vcpus vcpu threads after 20 s"; return 1; }
    sleep 0.05
  done
  echo "$pid"
}
stop_libvirt_guest() { guests_virsh destroy "$1" >/dev/null; }

# ---------------------------------------------------------------------------------------------
# Teardown
# ---------------------------------------------------------------------------------------------
# teardown: libvirt guests (destroy + undefine, before the daemon stops: libvirtd leaves guests
# running when it stops), libvirtd and virtlogd (waiting until their PIDs are gone), plain
# QEMUs, then qemu.conf, the accounts and folders made, the files the daemons left, the state
# dir. Safe to call twice and after a partial setup; returns nonzero if something survived.
teardown() {
  local state=${GUESTS_STATE:-}
  [ -n "$state" ] && [ -d "$state" ] || return 0
  # INT and TERM ignored: a second Ctrl-C must not leave half a teardown (it is bounded: ~5 s).
  ( trap '' INT TERM; set +e; guests_teardown_in "$state" )
  local rc=$?
  if [ $rc -eq 0 ]; then rm -rf "$state"; else guests_log "teardown incomplete: state kept in $state"; fi
  return $rc
}
guests_teardown_in() {
  local state=$1 rc=0 name f pid lvd="" kind what
  [ -f "$state/pids/libvirtd" ] && lvd=$(cat "$state/pids/libvirtd")
  for f in "$state"/pids/proc-*; do   # guests_track: exporters and watchers first (some talk to libvirtd)
    [ -f "$f" ] || continue
    read -r pid what <"$f"
    guests_stop_pid "$pid" "${f##*/proc-}" "$what" || rc=1
  done
  if [ -f "$state/libvirt-guests" ]; then
    while read -r name; do
      if [ -n "$lvd" ] && guests_alive "$lvd"; then
        timeout 30 virsh -q -c "$GUESTS_URI" destroy "$name" >/dev/null 2>&1
        timeout 30 virsh -q -c "$GUESTS_URI" undefine "$name" >/dev/null 2>&1
      fi
      # Still there when libvirtd was gone or did not manage: stop its QEMU directly.
      f=$state/pids/lvqemu-$name
      [ -f "$f" ] && { guests_stop_pid "$(cat "$f")" "QEMU of $name" "guest=$name" || rc=1; }
    done <"$state/libvirt-guests"
  fi
  for name in libvirtd virtlogd; do
    f=$state/pids/$name
    [ -f "$f" ] && { guests_stop_pid "$(cat "$f")" "$name" "$name" || rc=1; }
  done
  for f in "$state"/pids/qemu-*; do
    [ -f "$f" ] || continue
    name=${f##*/qemu-}
    guests_stop_pid "$(cat "$f")" "QEMU $name" "guest=$name" || rc=1
  done
  if [ -f "$state/qemu.conf.saved" ]; then
    what=$(cat "$state/qemu.conf.saved")
    if [ "$what" = none ]; then rm -f "$GUESTS_QEMU_CONF"
    elif [ -f "$what" ]; then cp -p "$what" "$GUESTS_QEMU_CONF" && rm -f "$what" || rc=1
    fi
    rm -f "$state/qemu.conf.saved"
  fi
  # Files the daemons made (only once they are surely gone: /run/libvirt holds their sockets).
  if [ $rc -eq 0 ] && [ -f "$state/libvirt-preexisting" ]; then
    guests_libvirt_paths | LC_ALL=C comm -13 "$state/libvirt-preexisting" - | LC_ALL=C sort -r | while read -r f; do
        case "$f" in
          /sys/fs/cgroup/*) [ -d "$f" ] && rmdir "$f" 2>/dev/null ;;   # empty cgroups only
          *) if [ -d "$f" ] && [ ! -L "$f" ]; then rmdir "$f" 2>/dev/null; else rm -f "$f"; fi ;;
        esac
      done
    rm -f "$state/libvirt-preexisting"
  fi
  if [ -f "$state/created" ]; then   # undone in reverse order: user before group, inner dir first
    tac "$state/created" | while read -r kind what; do
      case "$kind" in
        user) userdel "$what" 2>/dev/null ;;
        group) groupdel "$what" 2>/dev/null ;;
        dir) rmdir "$what" 2>/dev/null ;;
      esac
    done
    rm -f "$state/created"
  fi
  return $rc
}
