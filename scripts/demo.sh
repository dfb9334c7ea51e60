#!/usr/bin/env bash
# The main job: build vcpumap and run the demo. Without a Xen hypervisor the example tools
# use the built-in demo host (the one of the 2006 libvir-list thread).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup-debian.sh
if [ -f _build/release/build.ninja ]; then meson setup --reconfigure _build/release --buildtype=release -Dtests=false >/dev/null
else meson setup _build/release --buildtype=release -Dtests=false >/dev/null; fi
ninja -C _build/release >/dev/null
exec _build/release/examples/vcpu-list "$@"
