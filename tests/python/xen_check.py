#!/usr/bin/env python3
"""In a Xen dom0: vcpumap.open("xen") from Python agrees with `xl vcpu-list`, vcpu by vcpu.

    PYTHONPATH=DIR python3 xen_check.py [--xl PATH] [--pin DOMAIN]

DIR holds the package vcpumap (vcpumap/__init__.py, _types.py and _vcpumap.cpython-3XX-*.so,
built with the Xen backend). The host is read three times, Python - xl - Python, and each vcpu
of `xl vcpu-list` must match Python's: the same domains (id and name) and vcpus (0 ..
max_vcpus-1), the hard and soft affinity exactly, the state and CPU as one of the two Python
reads saw them (a vcpu may move or wake meanwhile; an offline vcpu is "--p" with CPU "-"), and
the time within the two reads (xl rounds to 0.1 s). With --pin DOMAIN, vcpu 0 of DOMAIN (a
name or id) is pinned through Python to its first allowed CPU, xl must show it, and it is put
back. The numpy view is compared with row() when numpy is there.

Needs: python3 (the version the module was built for) with the stdlib modules of Debian's
python3-minimal (re, subprocess, enum, datetime and what they import; numpy is optional), and xl. Prints "ok - ..." / "FAIL - ..." lines, then a count.
Exit 0: everything agrees; 1: a difference, or xl or the module failed.

xl's format (tests/xen/README.md, "Observed output"): a header line, then per vcpu
`"%-32s %5u %5u"` name, id, vcpu; `"%5u %3c%c- "` CPU and state (r running, b blocked) for an
online vcpu, `"    -   --p "` for an offline one; `"%9.1f  "` seconds; `hard / soft` as "all",
"none" or a cpulist.
"""
import re
import subprocess
import sys

LINE = re.compile(r"^(?P<name>.*?)\s+(?P<id>\d+)\s+(?P<vcpu>\d+)\s+(?P<cpu>\d+|-)\s+(?P<state>[r-][b-][p-])\s+"
                  r"(?P<time>\d+\.\d)\s+(?P<hard>\S+) / (?P<soft>\S+)\s*$")


class Report:
    def __init__(self):
        self.passed = self.failed = 0

    def check(self, ok, what, detail=""):
        if ok:
            self.passed += 1
            print(f"ok - {what}", flush=True)
        else:
            self.failed += 1
            print(f"FAIL - {what}", flush=True)
            for line in str(detail).splitlines():
                print(f"#   {line}", flush=True)
        return bool(ok)


R = Report()


def cpus_of(text, universe):
    """xl's affinity text as a set: 'all', 'none' or a cpulist."""
    if text == "all":
        return frozenset(range(universe))
    if text == "none":
        return frozenset()
    out = set()
    for part in text.split(","):
        lo, _, hi = part.partition("-")
        out.update(range(int(lo), int(hi or lo) + 1))
    return frozenset(out)


def xl_vcpu_list(xl):
    """{(domain id, vcpu): fields} of `xl vcpu-list`."""
    p = subprocess.run([xl, "vcpu-list"], capture_output=True, text=True, errors="replace", timeout=60)
    if p.returncode != 0:
        raise RuntimeError(f"{xl} vcpu-list: exit {p.returncode}: {p.stderr.strip()}")
    rows = {}
    lines = p.stdout.splitlines()
    if not lines or not lines[0].startswith("Name"):
        raise RuntimeError(f"{xl} vcpu-list: no header line: {p.stdout!r}")
    for line in lines[1:]:
        m = LINE.match(line)
        if not m:
            raise RuntimeError(f"{xl} vcpu-list: a line not in xl's format: {line!r}")
        rows[(int(m["id"]), int(m["vcpu"]))] = m.groupdict()
    return rows


def xl_state(state):
    """Python's VcpuState value of xl's state column."""
    if state.endswith("p"):
        return "offline"
    if state[0] == "r":
        return "running"
    return "blocked" if state[1] == "b" else "runnable"


def numpy_agrees(snapshot):
    try:
        import numpy as np
    except ImportError:
        return
    for d in snapshot.domains:
        a = np.asarray(d.hard)
        got = [frozenset(w * 64 + b for w in range(a.shape[1]) for b in range(64) if (int(a[v, w]) >> b) & 1)
               for v in range(a.shape[0])]
        R.check(got == [frozenset(r) for r in d.hard], f"domain {d.domain.id}: numpy view = hard rows")


def compare(hv, xl):
    import vcpumap
    before = hv.snapshot_all()
    rows = xl_vcpu_list(xl)
    after = hv.snapshot_all()
    universe = before.host.cpu_universe
    R.check(universe > 0, f"the host has {universe} CPU ids ({before.host.online} online)")
    ids = [d.domain.id for d in before.domains]
    xl_ids = sorted({i for i, _ in rows})
    R.check(ids == xl_ids or [d.domain.id for d in after.domains] == xl_ids,
            f"the same domains: python {ids}, xl {xl_ids}")
    later = {d.domain.id: d for d in after.domains}
    for d in before.domains:
        d2 = later.get(d.domain.id)
        n = len([k for k in rows if k[0] == d.domain.id])
        R.check(n == d.domain.max_vcpus, f"domain {d.domain.id}: xl lists {n} vcpus, python max_vcpus "
                f"{d.domain.max_vcpus}")
        for v in d.vcpus:
            x = rows.get((d.domain.id, v.vcpu))
            what = f"domain {d.domain.id} vcpu {v.vcpu}"
            if x is None:
                R.check(False, f"{what}: in xl vcpu-list")
                continue
            problems = []
            if x["name"] != d.domain.name:
                problems.append(f"name xl {x['name']!r} python {d.domain.name!r}")
            hard, soft = cpus_of(x["hard"], universe), cpus_of(x["soft"], universe)
            if hard != frozenset(d.hard.row(v.vcpu)):
                problems.append(f"hard xl {x['hard']} python {d.hard.row(v.vcpu)}")
            if soft != frozenset(d.soft.row(v.vcpu)):
                problems.append(f"soft xl {x['soft']} python {d.soft.row(v.vcpu)}")
            v2 = d2.vcpus[v.vcpu] if d2 and v.vcpu < len(d2.vcpus) else v
            # A running vcpu may change state and CPU between the three reads (dom0's run this
            # very script): online or not must agree; a CPU xl shows must be an online one.
            offline = {v.state == vcpumap.VcpuState.OFFLINE, v2.state == vcpumap.VcpuState.OFFLINE}
            if (xl_state(x["state"]) == "offline") not in offline:
                problems.append(f"state xl {x['state']} python {v.state.value}/{v2.state.value}")
            cpu = None if x["cpu"] == "-" else int(x["cpu"])
            if (cpu is None) != (x["state"] == "--p") or (cpu is not None and cpu not in before.host.online):
                problems.append(f"cpu xl {x['cpu']} python {v.cpu}/{v2.cpu} (online {before.host.online})")
            t = float(x["time"])
            if not (v.cpu_time_ns / 1e9 - 0.051 <= t <= v2.cpu_time_ns / 1e9 + 0.051):
                problems.append(f"time xl {t} s python {v.cpu_time_ns / 1e9:.3f} .. {v2.cpu_time_ns / 1e9:.3f} s")
            R.check(not problems, f"{what}: python agrees with xl ({x['state']} cpu {x['cpu']} {x['hard']} / "
                    f"{x['soft']})", "; ".join(problems))
    numpy_agrees(before)


def pin_check(hv, xl, domain):
    import vcpumap
    ref = int(domain) if domain.isdigit() else domain
    s = hv.snapshot(ref)
    hard0 = s.hard.row(0)
    allowed = hard0 & hv.host_info().online
    target = [allowed.first if allowed else hard0.first]
    r = hv.pin(ref, 0, hard=target)
    x = xl_vcpu_list(xl)[(s.domain.id, 0)]
    R.check(cpus_of(x["hard"], s.hard.cols) == frozenset(target) and frozenset(r.hard) <= frozenset(target),
            f"hv.pin({domain}, 0, hard={target}) shows in xl vcpu-list ({x['hard']})")
    hv.pin(ref, 0, hard=hard0)
    x = xl_vcpu_list(xl)[(s.domain.id, 0)]
    R.check(cpus_of(x["hard"], s.hard.cols) == frozenset(hard0), f"and back to {hard0} ({x['hard']})")
    try:
        hv.pin(ref, 0, hard=[s.hard.cols + 7])
        R.check(False, "a CPU beyond the host is refused")
    except vcpumap.InvalidArgumentError as e:
        R.check(True, f"a CPU beyond the host is refused: {e}")


def parse_args(argv):
    """--xl PATH, --pin DOMAIN, --mock FIXTURE (for this script's own test, tests/python/
    test_xen_check.py: a mock host from FIXTURE in place of Xen, with a fake xl). Not argparse:
    it needs gettext and shutil, beyond what a minimal dom0 python (python3-minimal) has."""
    args = {"--xl": "xl", "--pin": None, "--mock": None}
    i = 0
    while i < len(argv):
        if argv[i] in ("-h", "--help"):
            print(__doc__)
            sys.exit(0)
        if argv[i] not in args or i + 1 >= len(argv):
            print(f"xen_check.py: unknown option or missing value: {argv[i]!r} (see --help)", file=sys.stderr)
            sys.exit(2)
        args[argv[i]] = argv[i + 1]
        i += 2
    return args["--xl"], args["--pin"], args["--mock"]


def main():
    xl, pin, mock = parse_args(sys.argv[1:])
    try:
        import vcpumap
        if mock:
            hv = vcpumap.open("mock", fixture=mock)
        else:
            R.check("xen" in vcpumap.backends, f"the module has the Xen backend (backends {vcpumap.backends})")
            hv = vcpumap.open("xen")
            R.check(hv.kind == "xen", "vcpumap.open('xen') opens Xen")
        compare(hv, xl)
        if pin:
            pin_check(hv, xl, pin)
        hv.close()
    except Exception as e:  # noqa: BLE001 (any failure is a FAIL line and exit 1)
        R.check(False, f"{type(e).__name__}: {e}")
    print(f"# xen_check: {R.passed} passed, {R.failed} failed", flush=True)
    return 0 if R.passed and not R.failed else 1


if __name__ == "__main__":
    sys.exit(main())
