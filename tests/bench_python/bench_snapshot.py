#!/usr/bin/env python3
"""What Python costs on top of C++: snapshot_all() of the mock's 100 x 4 host (100 domains of 4
vcpus, 16 CPUs: hypervisor-bench's listing case, built the same way) from Python, against the
same call in C++ (hypervisor-bench's listing/vcpumap/100x4), per vcpu.

    PYTHONPATH=<build>/python bench_snapshot.py [--cpp <build>/tests/bench_hypervisor/hypervisor-bench]
        [--seconds 2]

Three Python figures: the call alone (the C++ call plus converting the result's shell: the
GIL released and taken, one Python object), the call and walking every vcpu's state, CPU time
and hard row as Python values, and the call with numpy views of every hard matrix (zero copy).
All are CPU time of this process per call (median of 5 runs), like the C++ figure.
The C++ figure is read from hypervisor-bench's JSON (its CPU time per iteration, median of 5);
without --cpp only the Python figures print. The libvirt-python comparison against a real
libvirt guest is in tests/linux_integration/check_python.py (suite linux), since libvirt-python
has no in-process mock of this host. Timings, not a test: nothing is asserted.
"""
import argparse
import json
import subprocess
import sys
import tempfile
import time

import vcpumap

DOMAINS, VCPUS, CPUS = 100, 4, 16


def fixture():
    """The listing host of hypervisor-bench: vcpu v of each domain hard on socket v%2's half of
    the CPUs plus CPU v, soft all, running, 10(v+1) ms of CPU time."""
    lines = [f"host cpus={CPUS} sockets=2"]
    half = CPUS // 2
    for d in range(1, DOMAINS + 1):
        lines.append(f"domain {d} guest{d:03d} vcpus={VCPUS} flags=running")
        for v in range(VCPUS):
            lo = (v % 2) * half
            hard = sorted(set(range(lo, lo + half)) | {v % CPUS})
            lines.append(f"vcpu {v} state=running cpu={hard[-1]} time_ns={10_000_000 * (v + 1)} "
                         f"hard={','.join(map(str, hard))}")
    return "\n".join(lines) + "\n"


def per_call(fn, seconds):
    """Median CPU seconds per call (this process's CPU time, as hypervisor-bench's figure: on a
    shared machine wall time counts the other processes too) of 5 runs of `seconds`/5 each."""
    fn()
    runs = []
    for _ in range(5):
        n, t0 = 0, time.process_time()
        while time.process_time() - t0 < seconds / 5:
            fn()
            n += 1
        runs.append((time.process_time() - t0) / n)
    return sorted(runs)[2]


def cpp_figure(path):
    """hypervisor-bench's listing/vcpumap/100x4: CPU seconds per call (median of 5)."""
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        subprocess.run([path, "--benchmark_filter=^listing/vcpumap/100x4$", "--benchmark_repetitions=5",
                        "--benchmark_report_aggregates_only=true", f"--benchmark_out={out.name}",
                        "--benchmark_out_format=json"], capture_output=True, text=True, check=True)
        data = json.load(open(out.name))
    for b in data["benchmarks"]:
        if b.get("aggregate_name") == "median":
            scale = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1}[b["time_unit"]]
            return b["cpu_time"] * scale
    raise RuntimeError("no median in hypervisor-bench's output")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cpp", help="path of hypervisor-bench, for the C++ figure")
    ap.add_argument("--seconds", type=float, default=2.0, help="time per Python figure")
    args = ap.parse_args()
    hv = vcpumap.open("mock", fixture=fixture())
    snap = hv.snapshot_all()
    assert len(snap.domains) == DOMAINS and all(len(d.vcpus) == VCPUS for d in snap.domains)
    n = DOMAINS * VCPUS

    def walk():
        s = hv.snapshot_all()
        for d in s.domains:
            hard = d.hard
            for v in d.vcpus:
                v.state, v.cpu_time_ns, hard.row(v.vcpu)

    def views():
        import numpy
        s = hv.snapshot_all()
        return [numpy.asarray(d.hard) for d in s.domains]

    call = per_call(hv.snapshot_all, args.seconds)
    walked = per_call(walk, args.seconds)
    try:
        viewed = per_call(views, args.seconds)
    except ImportError:
        viewed = None
    print(f"snapshot_all() of {DOMAINS} domains x {VCPUS} vcpus, {CPUS} CPUs (mock), per call and per vcpu:")
    print(f"  python, call only                 {call * 1e6:9.1f} us  {call * 1e9 / n:8.0f} ns/vcpu")
    print(f"  python, + state/time/hard row     {walked * 1e6:9.1f} us  {walked * 1e9 / n:8.0f} ns/vcpu")
    if viewed is not None:
        print(f"  python, + numpy view of each hard {viewed * 1e6:9.1f} us  {viewed * 1e9 / n:8.0f} ns/vcpu")
    if args.cpp:
        cpp = cpp_figure(args.cpp)
        print(f"  C++ (hypervisor-bench)            {cpp * 1e6:9.1f} us  {cpp * 1e9 / n:8.0f} ns/vcpu")
        print(f"  python overhead per vcpu: call {(call - cpp) * 1e9 / n:.0f} ns, "
              f"walking every vcpu {(walked - cpp) * 1e9 / n:.0f} ns; ratio call {call / cpp:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
