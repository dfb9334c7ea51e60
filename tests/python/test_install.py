"""The module as installed (meson install, tag python-runtime, into a scratch folder): the
package imports from there alone and works, and its extension needs no libvcpumap*.so beside
it (the backends are linked in)."""
import os
import pathlib
import subprocess
import sys

import pytest


def test_the_installed_package_works(tmp_path):
    build, meson = os.environ.get("VCPUMAP_BUILD_DIR"), os.environ.get("VCPUMAP_MESON")
    if not build or not meson:
        pytest.skip("needs VCPUMAP_BUILD_DIR and VCPUMAP_MESON (set by meson test)")
    subprocess.run([meson, "install", "-C", build, "--no-rebuild", "--destdir", str(tmp_path),
                    "--tags", "python-runtime"], check=True, capture_output=True)
    inits = list(tmp_path.rglob("vcpumap/__init__.py"))
    assert len(inits) == 1, inits
    package = inits[0].parent
    installed = sorted(p.name for p in package.iterdir())
    assert {"__init__.py", "__init__.pyi", "_types.py", "py.typed"} <= set(installed)
    sos = list(package.glob("_vcpumap.*.so"))
    assert len(sos) == 1, installed
    needed = subprocess.run(["readelf", "-d", str(sos[0])], capture_output=True, text=True, check=True).stdout
    assert "libvcpumap" not in needed, needed
    smoke = ("import vcpumap, sys; assert vcpumap.__file__.startswith(sys.argv[1]), vcpumap.__file__; "
             "s = vcpumap.open('mock').snapshot_all(); assert [d.domain.name for d in s.domains] == "
             "['Domain-0', 'xperf1', 'xperf2']; print(vcpumap.backends)")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PYTHONPATH"] = str(package.parent)
    p = subprocess.run([sys.executable, "-c", smoke, str(package)], env=env, capture_output=True, text=True,
                       cwd=pathlib.Path("/"))
    assert p.returncode == 0, p.stderr
    assert "mock" in p.stdout
