#!/usr/bin/env python3
"""The Python module against the real QEMU guests of run-linux-test.sh: vcpumap.open("linux")
agrees with `taskset -p` of every vcpu thread and with its cpuset, pins through Python show in
taskset and the other way round; for the libvirt guest, it agrees with libvirt-python's
dom.vcpus() and the two are timed side by side.

    PYTHONPATH=<build>/python check_python.py plain   --guest g1=PID --guest g2=PID --guest g3=PID
    PYTHONPATH=<build>/python check_python.py libvirt --guest lv1=PID

Prints "ok - ..." / "FAIL - ..." lines and a count, as check_linux.py (whose helpers it uses:
thread names, taskset, cpusets). Exit 0 all ok, 1 a failure, 2 usage error.
"""
import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import check_linux as cl  # noqa: E402  (its helpers; R counts the checks)

import vcpumap  # noqa: E402

R = cl.R


def rows(matrix):
    return [frozenset(r) for r in matrix]


def words_agree(matrix):
    """The numpy view holds the same bits as row(): (vcpu, word) uint64."""
    try:
        import numpy as np
    except ImportError:
        return True, "numpy not installed: not compared"
    a = np.asarray(matrix)
    got = [frozenset(w * 64 + b for w in range(a.shape[1]) for b in range(64) if (int(a[v, w]) >> b) & 1)
           for v in range(a.shape[0])]
    return got == rows(matrix), f"numpy {got} rows {rows(matrix)}"


def agree_with_taskset(hv, pid, name):
    """Every vcpu of one guest: hard = taskset -p of its thread, limit = its cpuset; a vcpu
    without a thread is offline."""
    s = hv.snapshot(pid)
    threads = cl.vcpu_threads(pid)
    R.check(s.domain.name == name and s.domain.id == pid, f"{name}: python names the domain {name} (pid {pid})",
            repr(s.domain))
    R.check(s.domain.online_vcpus == len(threads), f"{name}: online_vcpus {s.domain.online_vcpus} = vcpu threads",
            f"threads {threads}")
    for v in s.vcpus:
        tid = threads.get(v.vcpu)
        if tid is None:
            R.check(v.state is vcpumap.VcpuState.OFFLINE and v.cpu is None,
                    f"{name}: vcpu {v.vcpu} has no thread and python says offline", repr(v))
            continue
        want = cl.taskset_get(tid)
        R.check(frozenset(s.hard.row(v.vcpu)) == want,
                f"{name}: vcpu {v.vcpu} hard {s.hard.row(v.vcpu)} = taskset -p {tid} {cl.cpulist(want)}")
        _, cpuset = cl.cpuset_of(tid)
        R.check(frozenset(s.limit.row(v.vcpu)) == cpuset,
                f"{name}: vcpu {v.vcpu} limit {s.limit.row(v.vcpu)} = its cpuset {cl.cpulist(cpuset)}")
        R.check(v.state is not vcpumap.VcpuState.OFFLINE and v.cpu_time_ns >= 0,
                f"{name}: vcpu {v.vcpu} with a thread is online ({v.state.value})", repr(v))
    ok, detail = words_agree(s.hard)
    R.check(ok, f"{name}: numpy.asarray(snapshot.hard) = row() for every vcpu", detail)
    return s


def plain(guests):
    hv = vcpumap.open("linux")
    R.check(hv.kind == "linux", "vcpumap.open('linux') opens the Linux backend", repr(hv))
    host = hv.host_info()
    R.check(frozenset(host.online) == cl.HOST_ONLINE, f"host online {host.online} = /sys online",
            cl.cpulist(cl.HOST_ONLINE))
    R.check(host.caps.vcpu_limit == "cpuset" and not host.caps.soft_affinity, "caps: cpuset limit, no soft affinity",
            repr(host.caps))
    listed = {d.id: d for d in hv.domains()}
    for name, pid in guests.items():
        R.check(pid in listed and listed[pid].name == name, f"domains() lists {name} as pid {pid}", repr(listed))

    for name in ("g1", "g2"):
        if name in guests:
            R.group(agree_with_taskset, hv, guests[name], name)

    if "g3" in guests:
        def g3():
            d = hv.snapshot(guests["g3"]).domain
            R.check(d.vcpu_problem != "", "g3 (no debug-threads): python reports vcpu_problem", repr(d))
            try:
                hv.pin(guests["g3"], 0, hard=[0])
                R.check(False, "g3: a pin is refused")
            except vcpumap.Error as e:
                R.check(True, f"g3: a pin is refused ({type(e).__name__}: {e})")
        R.group(g3)

    if "g1" in guests:
        R.group(pins_g1, hv, guests["g1"])
    hv.close()


def pins_g1(hv, pid):
    """Pins through Python show in taskset; taskset's show in Python; then as before."""
    tid = cl.vcpu_threads(pid)[1]
    before = cl.taskset_get(tid)
    first = min(cl.HOST_ONLINE)
    r = hv.pin(pid, 1, hard=[first])
    R.check(frozenset(r.hard) == {first} and cl.taskset_get(tid) == {first},
            f"hv.pin(g1, 1, hard=[{first}]) shows in taskset -p {tid}", f"{r} / {cl.taskset_get(tid)}")
    rc, err = cl.taskset_set(tid, cl.HOST_ONLINE)
    s = hv.snapshot(pid)
    R.check(rc == 0 and frozenset(s.hard.row(1)) == cl.HOST_ONLINE,
            "taskset -pc ALL on vcpu 1 shows in python", f"{rc} {err} {s.hard.row(1)}")
    online = sorted(cl.HOST_ONLINE)
    plan = [str(online[v % len(online)]) for v in range(s.domain.max_vcpus)]
    res = hv.pin_matrix(pid, hard=plan)
    got = [cl.taskset_get(cl.vcpu_threads(pid)[v]) for v in range(s.domain.max_vcpus)]
    R.check(got == [{int(c)} for c in plan] and [str(r) for r in res.hard] == plan,
            f"hv.pin_matrix(g1, {plan}) shows in taskset of every vcpu", f"{got}")
    try:
        hv.pin(pid, 0, soft=[first])
        R.check(False, "a soft pin is refused on Linux")
    except vcpumap.UnsupportedError as e:
        R.check(True, f"a soft pin is refused on Linux: UnsupportedError ({e})")
    earlier = res.before_hard
    hv.pin_matrix(pid, hard=earlier, restore=True)
    got = [cl.taskset_get(cl.vcpu_threads(pid)[v]) for v in range(s.domain.max_vcpus)]
    R.check(got == rows(earlier), "pin_matrix(restore=True) puts every vcpu back", f"{got} / {rows(earlier)}")
    cl.taskset_set(tid, before)


def libvirt_part(guests):
    name, pid = "lv1", guests["lv1"]
    hv = vcpumap.open("linux")
    s = agree_with_taskset(hv, pid, name)
    try:
        import libvirt
    except ImportError:
        R.note("libvirt-python (python3-libvirt) is not installed: no dom.vcpus() comparison or timing")
        return
    conn = libvirt.open("qemu:///system")
    try:
        dom = conn.lookupByName(name)
        infos, maps = dom.vcpus()
        for (number, state, cpu_time, cpu), cpumap in zip(infos, maps):
            cpus = frozenset(c for c, on in enumerate(cpumap) if on)
            R.check(cpus == frozenset(s.hard.row(number)),
                    f"lv1: vcpu {number} hard {s.hard.row(number)} = libvirt dom.vcpus() {cl.cpulist(cpus)}")
        R.check(len(infos) == s.domain.online_vcpus, f"lv1: libvirt lists {len(infos)} vcpus, python "
                f"{s.domain.online_vcpus} online")
        bench(hv, pid, dom, len(infos))
    finally:
        conn.close()
    hv.close()


def bench(hv, pid, dom, vcpus, seconds=1.5):
    """snapshot(pid) (every vcpu's state, time, CPU, affinity, cpuset) against libvirt-python's
    dom.vcpus() (state, time, CPU, affinity): the same guest, per call and per vcpu."""
    def rate(fn):
        fn()
        n, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            fn()
            n += 1
        return (time.perf_counter() - t0) / n

    ours = rate(lambda: hv.snapshot(pid))
    theirs = rate(dom.vcpus)
    R.note(f"bench: {vcpus} vcpus: vcpumap snapshot(pid) {ours * 1e6:.0f} us/call ({ours * 1e6 / vcpus:.1f} us/vcpu), "
           f"libvirt-python dom.vcpus() {theirs * 1e6:.0f} us/call ({theirs * 1e6 / vcpus:.1f} us/vcpu), "
           f"ratio {theirs / ours:.2f}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("part", choices=("plain", "libvirt"))
    ap.add_argument("--guest", type=cl.parse_guest, action="append", default=[], help="NAME=PID")
    args = ap.parse_args()
    guests = {name: g["pid"] for name, g in args.guest}
    if args.part == "plain":
        R.group(plain, guests)
    else:
        R.group(libvirt_part, guests)
    print(f"# python {args.part}: {R.passed} passed, {R.failed} failed", flush=True)
    return 1 if R.failed or not R.passed else 0


if __name__ == "__main__":
    sys.exit(main())
