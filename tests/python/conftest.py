"""pytest set-up for the vcpumap Python module (meson test suite 'python').

meson runs `python3 -m pytest tests/python` with PYTHONPATH=<build>/python (the package as
built) and VCPUMAP_BUILD_DIR=<build> (the C++ tools the results are checked against).
"""
import os
import pathlib
import subprocess

import pytest

import vcpumap

BUILD_DIR = pathlib.Path(os.environ.get("VCPUMAP_BUILD_DIR", ""))


def tool(name):
    """The path of a C++ example tool of this build, or a skip when examples are not built."""
    path = BUILD_DIR / "examples" / name
    if not os.environ.get("VCPUMAP_BUILD_DIR") or not path.exists():
        pytest.skip(f"{name} is not built (VCPUMAP_BUILD_DIR unset or -Dexamples=false)")
    return str(path)


def run_tool(name, *args):
    """stdout of a C++ tool; its failure fails the test."""
    return subprocess.run([tool(name), *args], check=True, capture_output=True, text=True).stdout


@pytest.fixture
def demo():
    """The mock's demo host: Domain-0 (4 vcpus), xperf1 (1), xperf2 (id 3, 4 vcpus), 4 CPUs."""
    with vcpumap.open("mock") as hv:
        yield hv


# A host of 130 CPUs (3 words a row), 3 NUMA nodes, a domain of 70 vcpus (2 words a column).
WIDE_FIXTURE = """host cpus=130 online=0-127
node 0 0-63
node 1 64-127
node 2 128-129
domain 0 Domain-0 vcpus=2 flags=running
vcpu 0 state=running cpu=0 time=1.5 hard=0-127
vcpu 1 state=blocked cpu=65 time=2.25 hard=64-129 soft=64-65
domain 7 wide vcpus=70
vcpu 0 state=runnable cpu=129 time_ns=123456789 hard=129
vcpu 1 state=blocked cpu=3 time=0.5 hard=1,3,5,64-70,128
vcpu 69 state=running cpu=100 time=9 hard=100-129 soft=0-1
"""


@pytest.fixture
def wide():
    with vcpumap.open("mock", fixture=WIDE_FIXTURE) as hv:
        yield hv
