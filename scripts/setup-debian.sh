#!/usr/bin/env bash
# Installs what vcpumap needs on Debian 12, and only what is missing.
# Usage: scripts/setup-debian.sh [--xen-test] [--linux-test] [--prometheus-test]
#   --xen-test    QEMU and friends for the real-Xen test
#   --linux-test  QEMU and a libvirt daemon (no systemd) for the real QEMU/libvirt test, and
#                 libvirt-python for the Python benchmark's comparison
#   --prometheus-test  Prometheus, node_exporter and prometheus-libvirt-exporter (their services
#                 are not started: the test starts its own on 127.0.0.1), with --linux-test's packages
set -euo pipefail

packages=(meson ninja-build g++ clang pkg-config libboost-dev libfmt-dev catch2
          libbenchmark-dev libhwloc-dev libxen-dev libvirt-dev libclang-rt-14-dev python3 librsvg2-bin
          nlohmann-json3-dev pybind11-dev python3-dev python3-numpy python3-pytest)
for arg in "$@"; do
  case "$arg" in
    --xen-test) packages+=(qemu-system-x86 busybox-static cpio xz-utils kmod) ;;
    --linux-test) packages+=(qemu-system-x86 libvirt-daemon libvirt-daemon-driver-qemu libvirt-clients util-linux
                             python3-libvirt) ;;
    --prometheus-test) packages+=(prometheus prometheus-node-exporter prometheus-libvirt-exporter qemu-system-x86
                                  libvirt-daemon libvirt-daemon-driver-qemu libvirt-clients util-linux) ;;
    *) echo "setup-debian.sh: unknown option '$arg'" >&2; exit 2 ;;
  esac
done

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q '^install ok installed' || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

sudo=()
[ "$(id -u)" -eq 0 ] || sudo=(sudo)
echo "setup-debian.sh: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
# Packages with services (prometheus, node_exporter, the libvirt exporter) would start them on a
# machine with systemd, listening on every interface: a policy-rc.d that refuses, for the
# install only, unless the machine has its own (containers do; it refuses too).
if [ ! -e /usr/sbin/policy-rc.d ]; then
  "${sudo[@]}" sh -c 'printf "#!/bin/sh\n# vcpumap setup-debian.sh: no service starts during this install\nexit 101\n" >/usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d'
  trap '"${sudo[@]}" rm -f /usr/sbin/policy-rc.d' EXIT
fi
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
