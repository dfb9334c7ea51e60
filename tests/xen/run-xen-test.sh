#!/usr/bin/env bash
# Runs a test program inside dom0 of a real Xen 4.17 hypervisor booted under QEMU (TCG).
#
#   tests/xen/run-xen-test.sh --program PATH [--workdir DIR] [--timeout SECONDS]
#                             [--guest-vcpus N] [--dom0-vcpus N] [--wide-vcpus N]
#
# What happens:
#   1. Debian's Xen hypervisor, Xen tools and linux-image-6.1.0-NN-amd64 kernel are fetched with
#      `apt-get download` and unpacked (dpkg-deb) into a cache folder; nothing is installed on the
#      host. The cache is keyed by package versions, so later runs download nothing.
#   2. A dom0 initramfs is built: busybox-static, the Xen modules, xl + xenstored +
#      xen-init-dom0 + xenconsoled, their shared libraries, and the --program binary as
#      /vcpumap-xen-test together with the libraries ldd reports for it. Its /init starts the Xen toolstack, creates one small
#      PV guest "guest1" and a paused PV domain "wide" with many vcpus (1 online; it never
#      runs, it is there to be read), runs /vcpumap-xen-test and prints exactly one line
#      "VCPUMAP-XEN-TEST: PASS" or "VCPUMAP-XEN-TEST: FAIL (exit N)".
#   3. QEMU boots Xen + dom0 (-smp 4 -m 1024) under `timeout`; the serial console goes to
#      WORKDIR/logs/serial-*.log (WORKDIR/serial.log points to the latest). The test program's
#      part of that log is printed to stdout.
#
# Inside dom0 the program runs as root with xl on PATH (/usr/sbin) and these variables set:
#   VCPUMAP_XEN_HOST_CPUS, VCPUMAP_XEN_DOM0_VCPUS, VCPUMAP_XEN_GUEST_NAME (guest1),
#   VCPUMAP_XEN_GUEST_DOMID, VCPUMAP_XEN_GUEST_VCPUS, VCPUMAP_XEN_GUEST_READY (1 when all the
#   guest's vcpus were online before the program started, else 0), VCPUMAP_XEN_WIDE_NAME (wide,
#   empty when it could not be created) and VCPUMAP_XEN_WIDE_VCPUS.
#
# Exit status: 0 PASS, 1 FAIL, 2 usage or preparation error, 3 no result (timeout, boot failure
# or toolstack setup failure inside dom0).
#
# Needs (Debian 12): qemu-system-x86 busybox-static cpio xz-utils libxen-dev, and apt access to
# the Debian archive for the first run (scripts/setup-debian.sh --xen-test installs them). Runs as
# root or as a user (then `sudo -n apt-get update`, only if the package lists are missing).
set -euo pipefail

readonly XEN_SERIES=4.17
readonly XEN_PKGS=("xen-hypervisor-${XEN_SERIES}-amd64" "xen-utils-${XEN_SERIES}" xenstore-utils)
readonly XEN_LIBEXEC=/usr/lib/xen-${XEN_SERIES}/bin
# Xen tool binaries copied into dom0 (from xen-utils-4.17); the first four get /usr/sbin links.
readonly XEN_TOOLS=(xl xenstored xen-init-dom0 xenconsoled xenconsole libxl-save-helper)
# dom0 kernel modules, in load order (xenfs needs xen-privcmd).
readonly XEN_MODULES=(xen-privcmd xen-evtchn xenfs xen-gntdev xen-gntalloc)
readonly HOST_CPUS=4      # QEMU -smp
readonly HOST_MEM_MB=1024 # QEMU -m
readonly DOM0_MEM=512M    # 256M is too small for `xl create` of the 128 MiB guest
readonly GUEST_MEM_MB=128
readonly WIDE_MEM_MB=96   # never runs: enough to load the kernel and initrd

program=""
extras=()
python_package=""   # --python-package: a build's python/ folder (the vcpumap package)
python_scripts=()
workdir="${XDG_CACHE_HOME:-${HOME:-/tmp}/.cache}/vcpumap-xen"
timeout_s=240
guest_vcpus=2
dom0_vcpus=4
wide_vcpus=200  # more than one multicall of vcpumap's (128 vcpus) holds

log() { echo "run-xen-test: $*" >&2; }
die() { log "error: $*"; exit 2; }

usage() {
  sed -n '2,5p' "$0" | sed 's/^# \{0,1\}//'
  cat <<EOF

Options:
  --program PATH      test program to run inside dom0 (required; static or dynamic)
  --extra PATH        another program to put in dom0's /usr/bin (repeatable)
  --python-package DIR  put Debian's python3 with its minimal standard library in dom0, and
                      DIR/vcpumap (the package as built) in /usr/lib/vcpumap-python
  --python-script PATH  a script to put beside it (repeatable; needs --python-package)
  --workdir DIR       cache + log folder (default: \${XDG_CACHE_HOME:-\$HOME/.cache}/vcpumap-xen)
  --timeout SECONDS   limit for one QEMU boot (default: $timeout_s); a boot that stalls before
                      dom0's /init starts is stopped after 90 s of silence and retried once
  --guest-vcpus N     vcpus of the PV guest "guest1" (default: $guest_vcpus)
  --dom0-vcpus N      dom0_max_vcpus (default: $dom0_vcpus; the host has $HOST_CPUS CPUs)
  --wide-vcpus N      maxvcpus of the paused domain "wide" (default: $wide_vcpus)
Exit status: 0 PASS, 1 FAIL, 2 usage/preparation error, 3 no result.
EOF
}

# ---------------------------------------------------------------------------------------------
# Arguments
# ---------------------------------------------------------------------------------------------
need_value() { [ $# -ge 2 ] && [ -n "$2" ] || die "option $1 needs a value (see --help)"; }
while [ $# -gt 0 ]; do
  case "$1" in
    --program)     need_value "$@"; program=$2; shift 2 ;;
    --extra)       need_value "$@"; extras+=("$(readlink -f "$2")"); shift 2 ;;
    --python-package) need_value "$@"; python_package=$(readlink -f "$2"); shift 2 ;;
    --python-script) need_value "$@"; python_scripts+=("$(readlink -f "$2")"); shift 2 ;;
    --workdir)     need_value "$@"; workdir=$2; shift 2 ;;
    --timeout)     need_value "$@"; timeout_s=$2; shift 2 ;;
    --guest-vcpus) need_value "$@"; guest_vcpus=$2; shift 2 ;;
    --dom0-vcpus)  need_value "$@"; dom0_vcpus=$2; shift 2 ;;
    --wide-vcpus)  need_value "$@"; wide_vcpus=$2; shift 2 ;;
    --program=*|--extra=*|--workdir=*|--timeout=*|--guest-vcpus=*|--dom0-vcpus=*|--wide-vcpus=*)
      set -- "${1%%=*}" "${1#*=}" "${@:2}" ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; die "unknown argument '$1'" ;;
  esac
done
[ -n "$program" ] || { usage >&2; die "--program is required"; }
[ -f "$program" ] && [ -x "$program" ] || die "--program '$program' is not an executable file"
program=$(readlink -f "$program")
for extra in ${extras[@]+"${extras[@]}"}; do
  [ -f "$extra" ] && [ -x "$extra" ] || die "--extra '$extra' is not an executable file"
done
for opt in timeout:timeout_s guest-vcpus:guest_vcpus dom0-vcpus:dom0_vcpus wide-vcpus:wide_vcpus; do
  var=${opt#*:}
  [[ ${!var} =~ ^[1-9][0-9]*$ ]] || die "--${opt%%:*} needs a positive integer, got '${!var}'"
done
[ "$dom0_vcpus" -le 128 ] && [ "$guest_vcpus" -le 128 ] || die "vcpu counts above 128 make no sense here"
[ "$wide_vcpus" -le 1024 ] || die "--wide-vcpus above 1024 makes no sense here"

missing=()
for tool in qemu-system-x86_64 cpio gzip dpkg-deb dpkg-query apt-get apt-cache ldd ldconfig timeout flock; do
  command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
[ -x /bin/busybox ] || missing+=("/bin/busybox")
[ ${#missing[@]} -eq 0 ] || die "missing ${missing[*]}; run scripts/setup-debian.sh --xen-test"
if ldd /bin/busybox >/dev/null 2>&1; then die "/bin/busybox is dynamically linked; install busybox-static"; fi

mkdir -p "$workdir"
workdir=$(readlink -f "$workdir")
export LC_ALL=C

# ---------------------------------------------------------------------------------------------
# Cleanup: the run folder and, if we are interrupted, QEMU. Nothing is left running.
# ---------------------------------------------------------------------------------------------
run_dir=""
qemu_pid=""
cleanup() {
  if [ -n "$qemu_pid" ] && kill -0 "$qemu_pid" 2>/dev/null; then
    kill -TERM "$qemu_pid" 2>/dev/null || true   # the `timeout` process; it forwards to QEMU
    wait "$qemu_pid" 2>/dev/null || true
  fi
  [ -z "$run_dir" ] || rm -rf "$run_dir"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

t_start=$SECONDS

# ---------------------------------------------------------------------------------------------
# 1. Package cache: $workdir/pkgs/<package>_<version>/ holds the unpacked files, complete once
#    it has a .complete stamp. Only one process prepares the cache at a time (flock).
# ---------------------------------------------------------------------------------------------
pkgs_dir=$workdir/pkgs
mkdir -p "$pkgs_dir"
exec 9>"$workdir/.lock"
flock -w 1800 9 || die "could not lock $workdir/.lock"

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo -n "$@"; fi; }

apt_updated=0
apt_update_once() {   # returns 1 when it already ran (so callers do not retry forever)
  [ "$apt_updated" -eq 0 ] || return 1
  apt_updated=1
  log "running apt-get update"
  DEBIAN_FRONTEND=noninteractive as_root apt-get update -qq >&2 || log "warning: apt-get update failed"
}

# Versions apt knows for package $1, newest first.
apt_versions() { apt-cache madison "$1" 2>/dev/null | awk -F'|' '{gsub(/ /, "", $2); print $2}'; }

pkg_dir() { echo "$pkgs_dir/${1}_${2//:/%}"; }   # epochs: ':' -> '%'
is_cached() { [ -f "$(pkg_dir "$1" "$2")/.complete" ]; }

# Downloads package $1 version $2 and unpacks it into its cache folder (unless already there).
# With $3 = kernel, only vmlinuz and the Xen modules are kept (the package unpacks to ~400 MB).
fetch_pkg() {
  local name=$1 version=$2 what=${3:-all} dest tmp deb
  dest=$(pkg_dir "$name" "$version")
  [ -f "$dest/.complete" ] && return 0
  tmp="$dest.tmp.$$"
  rm -rf "$tmp" && mkdir -p "$tmp/deb" "$tmp/root"
  log "downloading $name=$version"
  # Sandbox::User=root: the download folder need not be readable by the _apt user.
  if ! (cd "$tmp/deb" && apt-get download -qq -o APT::Sandbox::User=root "$name=$version" >&2); then
    if apt_update_once && (cd "$tmp/deb" && apt-get download -qq -o APT::Sandbox::User=root "$name=$version" >&2); then
      :
    else
      rm -rf "$tmp"
      return 1
    fi
  fi
  deb=$(echo "$tmp"/deb/*.deb)
  [ -f "$deb" ] || { rm -rf "$tmp"; log "apt-get download left no .deb for $name"; return 1; }
  if [ "$what" = kernel ]; then
    dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$tmp/root" --wildcards \
      './boot/vmlinuz-*' './lib/modules/*/kernel/drivers/xen/*'
  else
    dpkg-deb -x "$deb" "$tmp/root"
  fi
  rm -rf "$tmp/deb"
  echo "$name=$version" >"$tmp/.complete"
  rm -rf "$dest" && mv "$tmp" "$dest"
}

# Newest cached folder of a package whose name matches the glob $1 (used when apt cannot help).
newest_cached() {
  local d best=""
  for d in "$pkgs_dir"/$1_*/.complete; do [ -f "$d" ] && best=$(dirname "$d"); done
  [ -n "$best" ] && basename "$best"
}

kernel_candidates() {
  apt-cache pkgnames linux-image-6.1.0- 2>/dev/null | grep -E '^linux-image-6\.1\.0-[0-9]+-amd64$' | sort -Vr || true
}
# (apt-cache takes ~0.5 s per call: ask each question once.)
xen_versions=$(apt_versions "${XEN_PKGS[0]}")
candidates=$(kernel_candidates)
# A fresh machine or container may have no package lists yet.
if [ -z "$xen_versions" ] || [ -z "$candidates" ]; then
  apt_update_once
  xen_versions=$(apt_versions "${XEN_PKGS[0]}")
  candidates=$(kernel_candidates)
fi

# --- Xen: prefer the version of the installed libxenctrl (the test binary and xl use the host's
#     libxen* libraries, and domctl structures are version-locked), else apt's candidate.
resolve_xen_version() {
  local want versions=$xen_versions
  want=$(dpkg-query -W -f='${Version}' "libxenmisc${XEN_SERIES}" 2>/dev/null || true)
  if [ -n "$want" ] && grep -qxF -- "$want" <<<"$versions"; then
    echo "$want"
  elif [ -n "$versions" ]; then
    log "warning: host libxenctrl is '${want:-not installed}', apt offers $(head -n1 <<<"$versions");" \
        "install matching libxen-dev or the tools may not talk to this hypervisor"
    head -n1 <<<"$versions"
  fi
}
xen_version=$(resolve_xen_version)
if [ -n "$xen_version" ]; then
  for p in "${XEN_PKGS[@]}"; do
    fetch_pkg "$p" "$xen_version" || die "could not download $p=$xen_version"
  done
else
  cached=$(newest_cached "${XEN_PKGS[0]}") || die "apt knows no ${XEN_PKGS[0]} and nothing is cached"
  xen_version=${cached#*_}; xen_version=${xen_version//%/:}
  log "warning: apt knows no ${XEN_PKGS[0]}; using cached $xen_version"
  for p in "${XEN_PKGS[@]}"; do is_cached "$p" "$xen_version" || die "cache lacks $p=$xen_version"; done
fi

# --- Kernel: the newest linux-image-6.1.0-NN-amd64 that apt can download (or that is cached).
kernel_pkg="" kernel_version=""
for name in $candidates; do
  version=$(apt_versions "$name" | awk 'NR == 1')
  [ -n "$version" ] || continue
  if fetch_pkg "$name" "$version" kernel; then kernel_pkg=$name kernel_version=$version; break; fi
  log "warning: could not download $name=$version, trying an older kernel"
done
if [ -z "$kernel_pkg" ]; then
  cached=$(ls -d "$pkgs_dir"/linux-image-6.1.0-*-amd64_*/.complete 2>/dev/null | sort -V | tail -n1 || true)
  [ -n "$cached" ] || die "could not download any linux-image-6.1.0-NN-amd64 and nothing is cached"
  cached=$(basename "$(dirname "$cached")")
  kernel_pkg=${cached%%_*}; kernel_version=${cached#*_}; kernel_version=${kernel_version//%/:}
  log "warning: using cached $kernel_pkg=$kernel_version"
fi

# Drop cached packages this run does not use (older versions), and stale partial downloads.
for d in "$pkgs_dir"/*; do
  [ -e "$d" ] || continue
  keep=0
  for p in "${XEN_PKGS[@]}"; do [ "$d" = "$(pkg_dir "$p" "$xen_version")" ] && keep=1; done
  [ "$d" = "$(pkg_dir "$kernel_pkg" "$kernel_version")" ] && keep=1
  if [ "$keep" -eq 0 ]; then log "removing unused cache entry $(basename "$d")"; rm -rf "$d"; fi
done

xen_root=$(pkg_dir "${XEN_PKGS[1]}" "$xen_version")/root
store_root=$(pkg_dir xenstore-utils "$xen_version")/root
hyp_dir=$(pkg_dir "${XEN_PKGS[0]}" "$xen_version")
kernel_root=$(pkg_dir "$kernel_pkg" "$kernel_version")/root
kernel_release=${kernel_pkg#linux-image-}

# QEMU's multiboot loader wants Xen as a plain ELF, not xen.gz.
xen_elf=$hyp_dir/xen.elf
if [ ! -s "$xen_elf" ]; then
  gzip -dc "$hyp_dir/root/boot/xen-${XEN_SERIES}-amd64.gz" >"$xen_elf.tmp" && mv "$xen_elf.tmp" "$xen_elf"
fi
vmlinuz=$kernel_root/boot/vmlinuz-$kernel_release
moddir=$kernel_root/lib/modules/$kernel_release/kernel/drivers/xen
[ -s "$vmlinuz" ] || die "no $vmlinuz in the cache (remove $workdir/pkgs and retry)"

# The guest kernel: vmlinuz is xz-compressed, and unpacking it inside dom0 (libxenguest, under
# TCG) makes `xl create` take ~13 s. A gzip'd vmlinux ELF loads several times faster. It is made
# once per kernel: the ELF follows the xz magic inside the bzImage. Fallback: vmlinuz itself.
guest_kernel=$kernel_root/vmlinux.gz
if [ ! -s "$guest_kernel" ]; then
  xz_at=$(grep -obUaP '\xfd7zXZ\x00' "$vmlinuz" | head -n1 | cut -d: -f1 || true)
  if [ -n "$xz_at" ] && command -v xz >/dev/null &&
     { tail -c +$((xz_at + 1)) "$vmlinuz" || true; } |   # tail gets SIGPIPE: xz stops at the stream end
       xz -dc --single-stream 2>/dev/null | gzip -1 >"$guest_kernel.tmp" &&
     [ "$(gzip -dc "$guest_kernel.tmp" | head -c4 | od -An -tx1 | tr -d ' ')" = 7f454c46 ]; then
    mv "$guest_kernel.tmp" "$guest_kernel"
  else
    rm -f "$guest_kernel.tmp"
    log "note: could not extract vmlinux from $vmlinuz; the guest boots the bzImage (slower)"
    guest_kernel=$vmlinuz
  fi
fi
for t in "${XEN_TOOLS[@]}"; do
  [ -x "$xen_root$XEN_LIBEXEC/$t" ] || die "no $XEN_LIBEXEC/$t in xen-utils-$XEN_SERIES"
done

t_prepared=$SECONDS
log "using Xen $xen_version, $kernel_pkg $kernel_version (cache ready in $((t_prepared - t_start)) s)"

# ---------------------------------------------------------------------------------------------
# 2. Initramfs for dom0 (and a tiny one for the guest), built in a private temporary folder.
#    QEMU splits multiboot module arguments at spaces and commas, hence the checks.
# ---------------------------------------------------------------------------------------------
run_dir=$(mktemp -d "${TMPDIR:-/tmp}/vcpumap-xen.XXXXXX")
case "$run_dir" in *[,\ ]*) die "temporary folder '$run_dir' has a comma or space; set TMPDIR" ;; esac

# A usr-merged skeleton: /bin, /sbin, /lib, /lib64 point into /usr, like Debian 12's.
make_skeleton() {
  local root=$1
  mkdir -p "$root"/usr/{bin,sbin,lib,lib64} "$root"/{dev,proc,sys,run,tmp,etc,root,var/lib,var/log}
  ln -s usr/bin "$root/bin"; ln -s usr/sbin "$root/sbin"
  ln -s usr/lib "$root/lib"; ln -s usr/lib64 "$root/lib64"
  ln -s ../run "$root/var/run"; ln -s ../run/lock "$root/var/lock"
  chmod 1777 "$root/tmp"
  cp /bin/busybox "$root/usr/bin/busybox"
  local applet
  for applet in $(/bin/busybox --list-full); do
    [ -e "$root/$applet" ] || [ -L "$root/$applet" ] || ln -s /usr/bin/busybox "$root/$applet"
  done
  # The kernel opens /dev/console before /init runs; without root we cannot mknod, and /init
  # reopens the console from devtmpfs anyway.
  [ "$(id -u)" -ne 0 ] || mknod -m 600 "$root/dev/console" c 5 1
}

# Writes a newc cpio of folder $1 (all files owned by root) to stdout.
pack_cpio() { (cd "$1" && find . | sort | cpio -o -H newc -R 0:0 --quiet); }

# Absolute paths of the shared objects (including the dynamic loader) that ELF file $1 needs.
needed_libs() {
  local out
  if ! out=$(ldd "$1" 2>&1); then
    case "$out" in *"not a dynamic executable"*|*"statically linked"*) return 0 ;; esac
    die "ldd $1 failed: $out"
  fi
  if grep -q 'not found' <<<"$out"; then
    die "$1 needs libraries this host lacks:"$'\n'"$(grep 'not found' <<<"$out")"
  fi
  awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }' <<<"$out"
}

# Guest initrd: busybox whose /init just keeps the domain alive.
guest_stage=$run_dir/guest
make_skeleton "$guest_stage"
cat >"$guest_stage/init" <<'EOF'
#!/bin/sh
# /init of guest1 (vcpumap real-Xen test): come up, then idle forever, bringing online
# every vcpu Xen hot-plugs (xenstore cpu/N/availability "online"), as udev's rule
# SUBSYSTEM=="cpu", ACTION=="add", ATTR{online}="1" does in a full guest.
mount -t devtmpfs devtmpfs /dev
exec </dev/console >/dev/console 2>&1
mount -t proc proc /proc
mount -t sysfs sysfs /sys
echo "guest1: up with $(grep -c ^processor /proc/cpuinfo) vcpu(s)"
while :; do
  for f in /sys/devices/system/cpu/cpu*/online; do
    [ "$(cat "$f" 2>/dev/null)" = 0 ] && echo 1 >"$f" 2>/dev/null
  done
  sleep 1
done
EOF
chmod 755 "$guest_stage/init"
guest_cpio=$run_dir/guest-initrd.gz
pack_cpio "$guest_stage" | gzip -1 >"$guest_cpio"

# dom0 root.
stage=$run_dir/dom0
make_skeleton "$stage"
mkdir -p "$stage$XEN_LIBEXEC" "$stage/lib/modules/xen" "$stage/etc/xen" "$stage/usr/share/vcpumap-xen"

elfs=()
for t in "${XEN_TOOLS[@]}"; do
  cp "$xen_root$XEN_LIBEXEC/$t" "$stage$XEN_LIBEXEC/$t"
  elfs+=("$xen_root$XEN_LIBEXEC/$t")
done
for t in xl xenstored xen-init-dom0 xenconsoled; do ln -s "$XEN_LIBEXEC/$t" "$stage/usr/sbin/$t"; done
ln -s "$XEN_LIBEXEC/xenconsole" "$stage/usr/bin/xenconsole"
cp "$store_root/usr/bin/xenstore" "$stage/usr/bin/xenstore"   # one binary, named by argv[0]
elfs+=("$store_root/usr/bin/xenstore")
for t in read write ls list exists rm watch chmod; do ln -s xenstore "$stage/usr/bin/xenstore-$t"; done

cp "$program" "$stage/vcpumap-xen-test"
chmod 755 "$stage/vcpumap-xen-test"
elfs+=("$program")
for extra in ${extras[@]+"${extras[@]}"}; do
  cp "$extra" "$stage/usr/bin/"
  elfs+=("$extra")
done
# Python for tests/python/xen_check.py: Debian's interpreter (its C modules are built in) with
# the files of libpythonX.Y-minimal, and the package as built, its extension without debug info.
if [ -n "$python_package" ]; then
  [ -f "$python_package/vcpumap/__init__.py" ] || die "--python-package '$python_package' holds no vcpumap package"
  py=$(readlink -f /usr/bin/python3) || die "no /usr/bin/python3"
  pyver=$(basename "$py")
  cp "$py" "$stage/usr/bin/$pyver"
  ln -s "$pyver" "$stage/usr/bin/python3"
  elfs+=("$py")
  dpkg -L "lib$pyver-minimal" | while read -r f; do
    if [ -f "$f" ] && [ "${f#/usr/lib/$pyver/}" != "$f" ]; then
      mkdir -p "$stage$(dirname "$f")"
      cp "$f" "$stage$f"
    fi
  done
  mkdir -p "$stage/usr/lib/vcpumap-python/vcpumap"
  for f in "$python_package"/vcpumap/*.py "$python_package"/vcpumap/*.so; do
    [ -f "$f" ] || continue
    case "$f" in
      *.so) strip -g -o "$stage/usr/lib/vcpumap-python/vcpumap/$(basename "$f")" "$f"; elfs+=("$f") ;;
      *) cp "$f" "$stage/usr/lib/vcpumap-python/vcpumap/" ;;
    esac
  done
  for f in ${python_scripts[@]+"${python_scripts[@]}"}; do cp "$f" "$stage/usr/lib/vcpumap-python/"; done
fi

# Shared libraries, copied to the same absolute path as on the host. libgcc_s.so.1 is loaded by
# glibc at run time (pthread_cancel; `xl create` aborts without it), so ldd does not list it.
libgcc=$(ldconfig -p | awk '$1 == "libgcc_s.so.1" && /x86-64/ && !found { print $NF; found = 1 }')
[ -n "$libgcc" ] || die "libgcc_s.so.1 (x86-64) not found via ldconfig"
# (Listed into a file, not via $(...), so that die() in needed_libs stops the script.)
{ for e in "${elfs[@]}"; do needed_libs "$e"; done; echo "$libgcc"; } >"$run_dir/libs"
declare -A lib_dirs=()
for lib in $(sort -u "$run_dir/libs"); do
  mkdir -p "$stage$(dirname "$lib")"
  [ -e "$stage$lib" ] || cp -L "$lib" "$stage$lib"
  lib_dirs[$(dirname "$lib")]=1
done
ld_path=$(printf '%s\n' /usr/lib/x86_64-linux-gnu "${!lib_dirs[@]}" | awk '!seen[$0]++' | paste -sd:)

modules_present=()
for m in "${XEN_MODULES[@]}"; do
  f=$(find "$moddir" \( -name "$m.ko" -o -name "$m.ko.xz" \) -print -quit)
  if [ -z "$f" ]; then log "note: no $m module (built into the kernel?)"; continue; fi
  case "$f" in
    *.xz) xz -dc "$f" >"$stage/lib/modules/xen/$m.ko" ;;
    *) cp "$f" "$stage/lib/modules/xen/$m.ko" ;;
  esac
  modules_present+=("$m")
done

cp "$guest_kernel" "$stage/usr/share/vcpumap-xen/guest-kernel"
cp "$guest_cpio" "$stage/usr/share/vcpumap-xen/guest-initrd.gz"
# xl complains on stderr about a missing xl.conf (the defaults are fine).
echo "# xl defaults (vcpumap real-Xen test)" >"$stage/etc/xen/xl.conf"
cat >"$stage/etc/xen/guest1.cfg" <<EOF
# Tiny PV guest for the vcpumap real-Xen test: no disk, no network.
name = "guest1"
type = "pv"
kernel = "/usr/share/vcpumap-xen/guest-kernel"
ramdisk = "/usr/share/vcpumap-xen/guest-initrd.gz"
extra = "console=hvc0 quiet"
memory = $GUEST_MEM_MB
vcpus = $guest_vcpus
on_poweroff = "destroy"
on_reboot = "destroy"
on_crash = "destroy"
EOF
# "wide": created paused (xl create -p) and never unpaused, so its kernel never runs; vcpu 0
# is up, the others exist offline. Many vcpus for little memory: what a host with a big
# guest looks like to anything that reads vcpus.
cat >"$stage/etc/xen/wide.cfg" <<EOF
# Paused PV domain with many vcpus for the vcpumap real-Xen test.
name = "wide"
type = "pv"
kernel = "/usr/share/vcpumap-xen/guest-kernel"
ramdisk = "/usr/share/vcpumap-xen/guest-initrd.gz"
memory = $WIDE_MEM_MB
vcpus = 1
maxvcpus = $wide_vcpus
on_poweroff = "destroy"
on_reboot = "destroy"
on_crash = "destroy"
EOF

# Settings /init reads (kept out of the init script so that one needs no escaping).
cat >"$stage/etc/vcpumap-xen-test.env" <<EOF
LIB_PATH='$ld_path'
XEN_MODULES='${modules_present[*]}'
HOST_CPUS=$HOST_CPUS
DOM0_VCPUS=$dom0_vcpus
GUEST_VCPUS=$guest_vcpus
WIDE_VCPUS=$wide_vcpus
EOF

cat >"$stage/init" <<'EOF'
#!/bin/sh
# /init of dom0 for the vcpumap real-Xen test (generated by tests/xen/run-xen-test.sh).
# Starts the Xen toolstack, creates guest1, runs /vcpumap-xen-test, reports, powers off.
. /etc/vcpumap-xen-test.env
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
export LD_LIBRARY_PATH="$LIB_PATH"
export HOME=/root TERM=dumb

mount -t devtmpfs devtmpfs /dev
exec </dev/console >/dev/console 2>&1     # console=hvc0; Xen copies it to the serial port
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /dev/shm
mount -t tmpfs tmpfs /run
mkdir -p /run/lock /run/xen /run/xenstored /var/lib/xenstored /var/lib/xen /var/log/xen/console
hostname dom0

# Messages carry dom0's uptime, to see where a slow run spends its time.
say() { read -r up _ </proc/uptime; echo "vcpumap-init [${up}s]: $*"; }

# Ends the QEMU run: isa-debug-exit on I/O port 0xf4 turns byte B into QEMU exit status 2*B+1.
# poweroff -f is the fallback (QEMU then exits 0; the host reads the result from the log anyway).
end_run() {
  sync
  printf "$1" | dd of=/dev/port bs=1 seek=244 count=1 2>/dev/null
  sleep 2
  poweroff -f
  sleep 30
}

# Toolstack trouble is no test result: say so, show what may help, and stop.
setup_error() {
  echo "VCPUMAP-XEN-SETUP: ERROR: $*"
  dmesg | tail -n 20
  for f in /var/log/xen/*.log /var/log/xen/console/*.log; do
    [ -f "$f" ] && { echo "--- $f"; tail -n 30 "$f"; }
  done
  end_run '\022'
}

# Waits up to $1 seconds for command "$2 ..." to succeed.
wait_for() {
  t=$1; shift
  while ! "$@" >/dev/null 2>&1; do
    t=$((t - 1))
    [ "$t" -gt 0 ] || return 1
    sleep 1
  done
}

say "dom0 up: $(nproc) vcpu(s), $(awk '/MemTotal/ { print $2 " kB" }' /proc/meminfo), kernel $(uname -r)"
for m in $XEN_MODULES; do
  insmod "/lib/modules/xen/$m.ko" || setup_error "insmod $m"
done
mkdir -p /proc/xen
mount -t xenfs xenfs /proc/xen || setup_error "mount xenfs"
wait_for 10 test -c /dev/xen/privcmd || setup_error "/dev/xen/privcmd did not appear"
say "Xen modules loaded"
dmesg -n 1   # keep kernel messages off the console from here on

xenstored --pid-file /run/xen/xenstored.pid || setup_error "xenstored did not start"
wait_for 30 xenstore-read -s / || setup_error "xenstored does not answer"
xen-init-dom0 || setup_error "xen-init-dom0 failed"
xenconsoled --pid-file=/run/xen/xenconsoled.pid --log=guest --log-dir=/var/log/xen/console ||
  setup_error "xenconsoled did not start"
say "toolstack up"

xl create /etc/xen/guest1.cfg || setup_error "xl create guest1 failed"
guest_domid=$(xl domid guest1) || setup_error "xl domid guest1 failed"
say "guest1 created"

# A PV guest starts with vcpu0 only; its kernel brings the others online while booting.
# Wait for that so the test sees a settled layout ("--p" in the state column = offline).
# A line every 15 s tells the host-side stall watchdog that dom0 is alive.
guest_ready=0
for i in $(seq 1 120); do
  online=$(xl vcpu-list guest1 2>/dev/null | awk 'NR > 1 && $5 != "--p"' | wc -l)
  if [ "$online" -eq "$GUEST_VCPUS" ]; then guest_ready=1; break; fi
  [ $((i % 15)) -ne 0 ] || say "waiting for guest1: $online of $GUEST_VCPUS vcpus online"
  sleep 1
done
if [ "$guest_ready" -eq 0 ]; then
  say "warning: guest1 did not bring all $GUEST_VCPUS vcpus online in time; its console:"
  tail -n 20 /var/log/xen/console/guest-guest1.log 2>/dev/null
fi
say "guest1 is domain $guest_domid (ready=$guest_ready)"
wide_name=wide
if xl create -p /etc/xen/wide.cfg; then
  say "wide created paused (maxvcpus $WIDE_VCPUS)"
else
  say "warning: xl create -p wide failed: the test runs without it"
  wide_name=
fi

export VCPUMAP_XEN_HOST_CPUS=$HOST_CPUS VCPUMAP_XEN_DOM0_VCPUS=$DOM0_VCPUS
export VCPUMAP_XEN_GUEST_NAME=guest1 VCPUMAP_XEN_GUEST_DOMID=$guest_domid
export VCPUMAP_XEN_GUEST_VCPUS=$GUEST_VCPUS VCPUMAP_XEN_GUEST_READY=$guest_ready
export VCPUMAP_XEN_WIDE_NAME=$wide_name VCPUMAP_XEN_WIDE_VCPUS=$WIDE_VCPUS
cd /tmp
echo "===== VCPUMAP-XEN-TEST: BEGIN /vcpumap-xen-test ====="
/vcpumap-xen-test
rc=$?
echo "===== VCPUMAP-XEN-TEST: END (exit $rc) ====="
if [ "$rc" -eq 0 ]; then
  echo "VCPUMAP-XEN-TEST: PASS"
  end_run '\020'
else
  echo "VCPUMAP-XEN-TEST: FAIL (exit $rc)"
  end_run '\021'
fi
EOF
chmod 755 "$stage/init"

dom0_cpio=$run_dir/dom0-initrd.cpio
pack_cpio "$stage" >"$dom0_cpio"
rm -rf "$stage" "$guest_stage"
# Copies, not links: once the lock is released another run may prune this cache version.
cp "$xen_elf" "$run_dir/xen"
cp "$vmlinuz" "$run_dir/vmlinuz"
flock -u 9
exec 9>&-
t_built=$SECONDS
log "dom0 initramfs: $(du -m "$dom0_cpio" | cut -f1) MiB (built in $((t_built - t_prepared)) s)"

# ---------------------------------------------------------------------------------------------
# 3. Boot. Serial log: $workdir/logs/serial-<time>-<pid>.log, $workdir/serial.log -> latest.
# ---------------------------------------------------------------------------------------------
mkdir -p "$workdir/logs"
log_file=$workdir/logs/serial-$(date +%Y%m%d-%H%M%S)-$$.log
qemu_log=${log_file%.log}.qemu.log
: >"$log_file"
ln -sfn "logs/$(basename "$log_file")" "$workdir/serial.log"
# Keep the 10 newest runs.
# shellcheck disable=SC2010  # our own file names
ls -t "$workdir"/logs/serial-*.log 2>/dev/null | grep -v '\.qemu\.log$' | tail -n +11 |
  while read -r old; do rm -f "$old" "${old%.log}.qemu.log"; done || true

xen_cmdline="console=com1 com1=115200,8n1 dom0_mem=$DOM0_MEM,max:$DOM0_MEM dom0_max_vcpus=$dom0_vcpus smap=0"
# panic=1: a dom0 panic reboots, which ends QEMU at once (-no-reboot) instead of waiting for timeout.
dom0_cmdline="console=hvc0 earlyprintk=xen panic=1"
# shellcheck disable=SC2054  # the commas belong to QEMU options
qemu_cmd=(qemu-system-x86_64
  -machine pc -accel tcg,thread=multi -cpu max,-smap   # KVM here cannot run Xen; SMAP must be off
  -smp "$HOST_CPUS" -m "$HOST_MEM_MB"
  -no-reboot -display none -monitor none -parallel none
  -serial "file:${log_file//,/,,}"
  -device isa-debug-exit,iobase=0xf4,iosize=4
  -kernel "$run_dir/xen" -append "$xen_cmdline"
  -initrd "$run_dir/vmlinuz $dom0_cmdline,$dom0_cpio")

# Boot-stall watchdog. Under heavy host load we have seen dom0's kernel stop for good part-way
# through its boot (no output for minutes, not even an RCU stall report). Until dom0's /init has
# spoken, a serial log that does not grow for $stall_s s means that; QEMU is then stopped and the
# boot retried once. After /init starts, only --timeout applies (it prints progress while waiting).
stall_s=90
boot() {   # sets qemu_rc; returns 1 on a boot stall
  local size last_size=-1 last_change=$SECONDS
  : >"$log_file"
  timeout -k 10 "$timeout_s" "${qemu_cmd[@]}" </dev/null >"$qemu_log" 2>&1 &
  qemu_pid=$!
  while kill -0 "$qemu_pid" 2>/dev/null; do
    sleep 2
    size=$(stat -c %s "$log_file")
    if [ "$size" != "$last_size" ]; then last_size=$size last_change=$SECONDS; continue; fi
    if [ $((SECONDS - last_change)) -ge "$stall_s" ] && ! grep -aq 'vcpumap-init' "$log_file"; then
      kill -TERM "$qemu_pid" 2>/dev/null || true
      wait "$qemu_pid" 2>/dev/null || true
      qemu_pid=""
      return 1
    fi
  done
  qemu_rc=0
  wait "$qemu_pid" || qemu_rc=$?
  qemu_pid=""
}

qemu_rc=""
for attempt in 1 2; do
  log "booting Xen + dom0 under QEMU (timeout ${timeout_s} s), serial log: $log_file"
  if boot; then break; fi
  stalled_log=${log_file%.log}.stalled-$attempt.log
  mv "$log_file" "$stalled_log"
  log "boot stalled: no serial output for $stall_s s before dom0's /init (log: $stalled_log)"
  if [ "$attempt" -lt 2 ]; then log "retrying the boot once"; fi
done
t_done=$SECONDS
if [ -n "$qemu_rc" ]; then
  log "QEMU exited with status $qemu_rc after $((t_done - t_built)) s (33 = pass, 35 = fail, 124 = timeout)"
else
  cp "$stalled_log" "$log_file"
  log "both boots stalled ($((t_done - t_built)) s)"
fi

# ---------------------------------------------------------------------------------------------
# 4. Result.
# ---------------------------------------------------------------------------------------------
# Note: no `producer | grep -q` here: with pipefail, grep -q quitting early can fail the pipeline.
clean_log() { tr -d '\r' <"$log_file"; }
in_log() { grep -aqE "$1" "$log_file"; }
if in_log 'VCPUMAP-XEN-TEST: BEGIN'; then
  clean_log | sed -n '/VCPUMAP-XEN-TEST: BEGIN/,/^VCPUMAP-XEN-TEST: \(PASS\|FAIL\)/p'
fi
total="total $((t_done - t_start)) s"
if in_log '^VCPUMAP-XEN-TEST: PASS'; then
  log "PASS ($total)"
  exit 0
elif in_log '^VCPUMAP-XEN-TEST: FAIL'; then
  log "FAIL ($total), see $log_file"
  exit 1
fi
echo "----- last 40 lines of $log_file -----"
clean_log | tail -n 40
if [ -s "$qemu_log" ]; then echo "----- QEMU said -----"; tail -n 20 "$qemu_log"; fi
setup=$(grep -a -m1 'VCPUMAP-XEN-SETUP: ERROR' "$log_file" | tr -d '\r' || true)
log "no result (timeout or boot failure)${setup:+: $setup}, see $log_file ($total)"
exit 3
