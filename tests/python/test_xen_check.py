"""xen_check.py (run in a Xen dom0 by the real-Xen boot) tested here on a mock host with a fake
xl that prints the host in xl's format: it passes when they agree, and fails on a difference in
affinity, state, CPU, time, or a vcpu missing."""
import os
import pathlib
import re
import subprocess
import sys

import pytest

import vcpumap

HERE = pathlib.Path(__file__).parent
FIXTURE = """host cpus=8
domain 0 Domain-0 vcpus=2 flags=running
vcpu 0 state=running cpu=0 time=55.7 hard=0-7
vcpu 1 state=blocked cpu=1 time=48.84 hard=0-7 soft=0-3
domain 1 guest1 vcpus=3
vcpu 0 state=runnable cpu=5 time=9 hard=2-3,5 soft=2-3
vcpu 1 state=blocked cpu=2 time=2.7 hard=2
"""


def xl_text(fixture_hv, tweak=None):
    """The mock host as `xl vcpu-list` prints it (xl's printf formats)."""
    lines = ["Name                                ID  VCPU   CPU State   Time(s) Affinity (Hard / Soft)"]
    snap = fixture_hv.snapshot_all()
    universe = snap.host.cpu_universe

    def aff(m):
        return "all" if len(m) == universe else ("none" if not m else str(m))

    for d in snap.domains:
        for v in d.vcpus:
            if v.state is vcpumap.VcpuState.OFFLINE:
                cpu_state = "    -   --p "
            else:
                r = "r" if v.state is vcpumap.VcpuState.RUNNING else "-"
                b = "b" if v.state is vcpumap.VcpuState.BLOCKED else "-"
                cpu_state = f"{v.cpu:5d} {r:>3}{b}- "
            line = (f"{d.domain.name:<32} {d.domain.id:5d} {v.vcpu:5d}{cpu_state}{v.cpu_time_ns / 1e9:9.1f}  "
                    f"{aff(d.hard.row(v.vcpu))} / {aff(d.soft.row(v.vcpu))}")
            lines.append(line)
    if tweak:
        lines = tweak(lines)
    return "\n".join(lines) + "\n"


def run_check(tmp_path, text, *extra):
    fixture = tmp_path / "host.txt"
    fixture.write_text(FIXTURE)
    xl = tmp_path / "xl"
    (tmp_path / "out.txt").write_text(text)
    xl.write_text(f"#!/bin/sh\n[ \"$1\" = vcpu-list ] || exit 2\ncat '{tmp_path / 'out.txt'}'\n")
    xl.chmod(0o755)
    p = subprocess.run([sys.executable, str(HERE / "xen_check.py"), "--xl", str(xl), "--mock", str(fixture), *extra],
                       capture_output=True, text=True, env=dict(os.environ), timeout=60)
    return p.returncode, p.stdout + p.stderr


@pytest.fixture
def host():
    with vcpumap.open("mock", fixture=FIXTURE) as hv:
        yield hv


def test_agreement_passes(tmp_path, host):
    text = xl_text(host)
    assert "guest1                               1     2    -   --p       0.0  all / all" in text
    assert "Domain-0                             0     0    0   r--      55.7  all / all" in text
    rc, out = run_check(tmp_path, text)
    assert rc == 0 and "FAIL" not in out, out
    assert "ok - domain 1 vcpu 2: python agrees with xl (--p cpu - all / all)" in out
    # the host, the domain list, 2 vcpu counts, 5 vcpus, 2 numpy views
    assert "# xen_check: 11 passed, 0 failed" in out
@pytest.mark.parametrize("change,expect", [
    (lambda l: [l[0]] + [x.replace("2-3,5 / 2-3", "2-3 / 2-3") for x in l[1:]], "hard xl 2-3 python 2-3,5"),
    (lambda l: [l[0]] + [x.replace("0-3", "0-2") for x in l[1:]], "soft xl 0-2"),
    # An online vcpu xl shows offline (running and blocked may change between reads: not checked).
    (lambda l: [l[0]] + [re.sub(r" +\d+ +r--( +55\.7)", r"    -   --p\1", x) for x in l[1:]], "state xl --p"),
    (lambda l: [l[0]] + [x.replace("55.7", "57.7") for x in l[1:]], "time xl 57.7"),
    (lambda l: l[:-1], "xl lists 2 vcpus, python max_vcpus 3"),
    (lambda l: l + ["garbage"], "not in xl's format"),
])
def test_a_difference_fails(tmp_path, host, change, expect):
    rc, out = run_check(tmp_path, xl_text(host, change))
    assert rc == 1 and expect in out, out


def test_a_pin_that_xl_does_not_show_fails(tmp_path, host):
    """--pin: the fake xl does not follow the mock's pin, as a stale or broken one would not."""
    rc, out = run_check(tmp_path, xl_text(host), "--pin", "guest1")
    assert rc == 1 and "FAIL - hv.pin(guest1, 0, hard=[2]) shows in xl vcpu-list (2-3,5)" in out, out
    assert "ok - a CPU beyond the host is refused" in out
