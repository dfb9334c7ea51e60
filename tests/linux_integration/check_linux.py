#!/usr/bin/env python3
"""Checks of vcpu-list / vcpu-pin --backend=linux against real QEMU guests (tests/linux_integration).

    check_linux.py [--env-only] --list PATH --pin PATH plain   --guest g1=PID,QMP --guest g2=PID,QMP --guest g3=PID
    check_linux.py [--env-only] --list PATH --pin PATH libvirt --guest lv1=PID

The guests are started by run-linux-test.sh (guests.sh), paused (-S), with TCG:
  g1   -smp 4, debug-threads=on, QMP, an IOThread "iot1"
  g2   -smp 2,maxcpus=4, debug-threads=on, QMP: vcpus 2-3 offline until this script hot-plugs one
  g3   -smp 2 WITHOUT debug-threads and without QMP: its vcpu threads cannot be told apart
  lv1  4 vcpus, defined and started paused by a real libvirtd (qemu:///system)
Each check prints "ok - ..." or "FAIL - ..."; "# ..." lines are information. The last line
counts them. --env-only runs only what needs no tool (threads, taskset, QMP hot-plug, virsh
parsing, cpusets) to prove the environment works before the backend exists.
Exit 0 all ok, 1 a failure, 2 usage error. Python 3 standard library only.
"""
import argparse
import json
import os
import re
import socket
import subprocess
import sys
import time

VCPU_COMM = re.compile(r"CPU (\d+)/(TCG|KVM)")
STATES = {"running", "blocked", "runnable", "offline", "paused", "stopped", "sleeping", "unknown"}


# ---- reporting ----------------------------------------------------------------------------------

class Report:
    def __init__(self):
        self.passed = 0
        self.failed = 0

    def check(self, cond, what, detail=""):
        """One check: "ok - what" or "FAIL - what" with the detail on the next lines."""
        if cond:
            self.passed += 1
            print(f"ok - {what}", flush=True)
        else:
            self.failed += 1
            print(f"FAIL - {what}", flush=True)
            for line in str(detail).splitlines():
                print(f"#   {line}", flush=True)
        return bool(cond)

    @staticmethod
    def note(text):
        for line in str(text).splitlines() or [""]:
            print(f"# {line}", flush=True)

    def group(self, fn, *args):
        """Runs a group of checks; an exception fails the group and the next group still runs."""
        try:
            fn(*args)
        except Exception as e:  # noqa: BLE001 (a broken group is a failure, not a crash)
            import traceback
            self.check(False, f"{fn.__name__}: {type(e).__name__}: {e}", traceback.format_exc())


R = Report()


# ---- cpulists -----------------------------------------------------------------------------------

def parse_cpulist(text):
    """'0-1,3' -> frozenset({0, 1, 3}); '' -> empty. Raises ValueError on anything else."""
    cpus = set()
    for part in filter(None, text.strip().split(",")):
        lo, _, hi = part.partition("-")
        lo, hi = int(lo), int(hi or lo)
        if lo > hi:
            raise ValueError(f"range {part!r}")
        cpus.update(range(lo, hi + 1))
    return frozenset(cpus)


def cpulist(cpus):
    """The canonical form vcpumap prints: runs of two or more as 'a-b', else single numbers."""
    out, run = [], []
    for c in sorted(cpus):
        if run and c == run[-1] + 1:
            run.append(c)
            continue
        if run:
            out.append(f"{run[0]}-{run[-1]}" if len(run) > 1 else str(run[0]))
        run = [c]
    if run:
        out.append(f"{run[0]}-{run[-1]}" if len(run) > 1 else str(run[0]))
    return ",".join(out)


def is_canonical(text):
    try:
        return isinstance(text, str) and cpulist(parse_cpulist(text)) == text
    except ValueError:
        return False


def read(path):
    with open(path) as f:
        return f.read()


HOST_ONLINE = parse_cpulist(read("/sys/devices/system/cpu/online"))


# ---- threads, taskset, cpusets --------------------------------------------------------------------

def threads(pid):
    """{tid: comm} of a process."""
    out = {}
    for t in os.listdir(f"/proc/{pid}/task"):
        try:
            out[int(t)] = read(f"/proc/{pid}/task/{t}/comm").rstrip("\n")
        except OSError:
            pass
    return out


def vcpu_threads(pid):
    """{vcpu: tid} from the "CPU n/TCG" thread names (debug-threads=on)."""
    out = {}
    for tid, comm in threads(pid).items():
        m = VCPU_COMM.fullmatch(comm)
        if m:
            out[int(m.group(1))] = tid
    return out


def wait_vcpu_thread(pid, vcpu, seconds=10):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        tid = vcpu_threads(pid).get(vcpu)
        if tid:
            return tid
        time.sleep(0.05)
    return None


TASKSET_OUT = re.compile(r"pid (\d+)'s (?:current|new) affinity list: (\S*)")


def taskset_get(tid):
    """Affinity as `taskset -pc TID` prints it (the outside view), as a set."""
    p = subprocess.run(["taskset", "-pc", str(tid)], capture_output=True, text=True, timeout=30)
    m = TASKSET_OUT.search(p.stdout)
    if p.returncode != 0 or not m or int(m.group(1)) != tid:
        raise RuntimeError(f"taskset -pc {tid}: exit {p.returncode}, {p.stdout!r} {p.stderr!r}")
    return parse_cpulist(m.group(2))


def taskset_set(tid, cpus):
    """`taskset -pc CPUS TID`: (exit status, stderr)."""
    p = subprocess.run(["taskset", "-pc", cpulist(cpus), str(tid)], capture_output=True, text=True, timeout=30)
    return p.returncode, p.stderr.strip()


def _mounts():
    """{'v1:cpuset': mount point, 'v2': mount point} from /proc/self/mountinfo."""
    out = {}
    for line in read("/proc/self/mountinfo").splitlines():
        left, _, right = line.partition(" - ")
        fstype, _, opts = right.split(" ", 2)
        point = left.split()[4]
        if fstype == "cgroup2":
            out.setdefault("v2", point)
        elif fstype == "cgroup" and "cpuset" in opts.split()[-1].split(","):
            out.setdefault("v1:cpuset", point)
    return out


MOUNTS = _mounts()


def cpuset_of(tid):
    """(cgroup path, effective CPUs of the cpuset the thread is confined to)."""
    lines = read(f"/proc/{tid}/cgroup").splitlines()
    for line in lines:
        _, ctrls, path = line.split(":", 2)
        if "cpuset" in ctrls.split(",") and "v1:cpuset" in MOUNTS:
            return path, parse_cpulist(read(os.path.join(MOUNTS["v1:cpuset"] + path, "cpuset.effective_cpus")))
    for line in lines:
        hid, _, path = line.split(":", 2)
        if hid == "0" and "v2" in MOUNTS:
            d = MOUNTS["v2"] + path
            while d.startswith(MOUNTS["v2"]):
                f = os.path.join(d, "cpuset.cpus.effective")
                if os.path.exists(f):
                    return path, parse_cpulist(read(f))
                d = os.path.dirname(d)
    return "/", HOST_ONLINE


# ---- QMP --------------------------------------------------------------------------------------------

class QmpError(Exception):
    pass


class Qmp:
    """A QMP client. A monitor takes one client: use it in a `with` block and close it before a
    tool runs (the tool may want the monitor itself)."""

    def __init__(self, path, timeout=10):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(path)
        self.file = self.sock.makefile("rw", encoding="utf-8")
        self.next_id = 0
        greeting = self._read()
        if "QMP" not in greeting:
            raise QmpError(f"no greeting: {greeting}")
        self.version = greeting["QMP"]["version"]["qemu"]
        self.execute("qmp_capabilities")

    def _read(self):
        line = self.file.readline()
        if not line:
            raise QmpError("QEMU closed the monitor")
        return json.loads(line)

    def execute(self, command, **arguments):
        self.next_id += 1
        msg = {"execute": command, "id": self.next_id}
        if arguments:
            msg["arguments"] = arguments
        self.file.write(json.dumps(msg) + "\n")
        self.file.flush()
        while True:
            reply = self._read()
            if "event" in reply or reply.get("id") != self.next_id:
                continue  # events may come between replies
            if "error" in reply:
                raise QmpError(f"{command}: {reply['error']}")
            return reply["return"]

    def close(self):
        self.file.close()
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


# ---- the tools ------------------------------------------------------------------------------------

class Tools:
    def __init__(self, list_path, pin_path):
        self.list_path, self.pin_path = list_path, pin_path
        self.have_backend = None

    def run(self, path, *args):
        p = subprocess.run([path, *args], capture_output=True, text=True, errors="surrogateescape", timeout=120)
        return p.returncode, p.stdout, p.stderr

    def probe(self, domain):
        """Whether the tools know --backend=linux (a usage error naming the backend: they do not)."""
        rc, out, err = self.run(self.list_path, "--backend=linux", "--json", domain)
        self.have_backend = not (rc == 2 and "backend" in err and "linux" in err)
        return rc, out, err

    def list_json(self, *args):
        """(exit status, parsed JSON or None, stderr, stdout) of vcpu-list --backend=linux --json ARGS."""
        rc, out, err = self.run(self.list_path, "--backend=linux", "--json", *args)
        try:
            data = json.loads(out) if out.strip() else None
        except json.JSONDecodeError:
            data = None
        return rc, data, err, out

    def list_vcpus(self, domain):
        """{vcpu: object} of one domain; fails the calling group when the tool fails."""
        rc, data, err, out = self.list_json(domain)
        if rc != 0 or not isinstance(data, list):
            raise AssertionError(f"vcpu-list --backend=linux --json {domain}: exit {rc}\nstdout: {out}\nstderr: {err}")
        return {o["vcpu"]: o for o in data if "thread" not in o or o.get("thread") == "vcpu"}

    def pin(self, *args):
        return self.run(self.pin_path, "--backend=linux", *args)


def check_vcpu_object(o, pid, name, where):
    """Field types of one vcpu object of the JSON contract."""
    problems = []
    for key, types in (("domain", str), ("id", int), ("vcpu", int), ("state", str), ("time_ns", int)):
        if not isinstance(o.get(key), types):
            problems.append(f"{key}={o.get(key)!r}")
    if o.get("id") != pid or o.get("domain") != name:
        problems.append(f"domain/id {o.get('domain')!r}/{o.get('id')!r}, expected {name!r}/{pid}")
    if o.get("state") not in STATES:
        problems.append(f"state {o.get('state')!r}")
    online = o.get("state") != "offline"
    if online:
        for key in ("hard", "soft", "effective", "limit"):
            if not is_canonical(o.get(key)):
                problems.append(f"{key}={o.get(key)!r} is not a canonical cpulist")
        if not (o.get("cpu") is None or (isinstance(o.get("cpu"), int) and o["cpu"] in HOST_ONLINE)):
            problems.append(f"cpu={o.get('cpu')!r}")
        if not (o.get("wait_ns") is None or (isinstance(o.get("wait_ns"), int) and o["wait_ns"] >= 0)):
            problems.append(f"wait_ns={o.get('wait_ns')!r}")
        if not problems:
            hard, limit, eff = (parse_cpulist(o[k]) for k in ("hard", "limit", "effective"))
            if eff != hard & limit:
                problems.append(f"effective {o['effective']} is not hard {o['hard']} & limit {o['limit']}")
    elif o.get("cpu") is not None:
        problems.append(f"offline with cpu={o.get('cpu')!r}")
    if isinstance(o.get("time_ns"), int) and o["time_ns"] < 0:
        problems.append(f"time_ns={o['time_ns']}")
    R.check(not problems, f"{where}: vcpu {o.get('vcpu')} has the fields of the contract", "; ".join(problems) + f"\n{o}")


def time_ns_plausible(o, pid, tid):
    """time_ns lies between what /proc says before and after (ticks or schedstat), give or take."""
    ticks = os.sysconf("SC_CLK_TCK")
    fields = read(f"/proc/{pid}/task/{tid}/stat").rsplit(")", 1)[1].split()
    stat_ns = (int(fields[11]) + int(fields[12])) * 10**9 // ticks
    sched_ns = int(read(f"/proc/{pid}/task/{tid}/schedstat").split()[0])
    slack = 200_000_000
    return o["time_ns"] <= max(stat_ns, sched_ns) + slack, f"time_ns {o['time_ns']}, stat {stat_ns}, schedstat {sched_ns}"


# ---- plain QEMU -------------------------------------------------------------------------------------

def plain_g1(t, g, env_only):
    pid, qmp = g["pid"], g["qmp"]
    vt = vcpu_threads(pid)
    R.check(sorted(vt) == [0, 1, 2, 3], "g1: 4 vcpu threads named CPU n/TCG", f"{vt} in {threads(pid)}")
    with Qmp(qmp) as m:
        fast = m.execute("query-cpus-fast")
        iothreads = m.execute("query-iothreads")
    R.check({c["cpu-index"]: c["thread-id"] for c in fast} == vt,
            "g1: QMP query-cpus-fast gives the same thread ids as the thread names", f"{fast}\n{vt}")
    R.check([i["id"] for i in iothreads] == ["iot1"], "g1: QMP lists the one IOThread iot1", iothreads)
    comms = threads(pid).values()
    R.note(f"g1 threads: {sorted(comms)} (QEMU's own monitor thread 'IO mon_iothread' is no -object iothread)")
    for v, tid in vt.items():
        got = taskset_get(tid)
        with open(f"/proc/{pid}/task/{tid}/status") as f:
            status = next(line.split()[1] for line in f if line.startswith("Cpus_allowed_list:"))
        R.check(got == parse_cpulist(status), f"g1: taskset -pc of vcpu {v} agrees with /proc status",
                f"{got} vs {status}")
    if env_only:
        return
    vcpus = t.list_vcpus("g1")
    R.check(sorted(vcpus) == [0, 1, 2, 3], "g1: vcpu-list finds 4 vcpus", vcpus)
    for v, o in sorted(vcpus.items()):
        check_vcpu_object(o, pid, "g1", "g1")
        tid = vt.get(v)
        if tid is None:
            continue
        R.check(o.get("hard") == cpulist(taskset_get(tid)), f"g1: vcpu {v} hard {o.get('hard')} is taskset's",
                f"taskset -pc {tid}: {cpulist(taskset_get(tid))}")
        limit = cpuset_of(tid)[1]
        R.check(o.get("limit") == cpulist(limit), f"g1: vcpu {v} limit {o.get('limit')} is its cpuset's",
                f"cpuset {cpuset_of(tid)}")
        ok, detail = time_ns_plausible(o, pid, tid)
        R.check(ok, f"g1: vcpu {v} time_ns is plausible", detail)

    # vcpu-pin writes what taskset reads...
    rc, out, err = t.pin("g1", "3", "1")
    R.check(rc == 0, "g1: vcpu-pin g1 3 1 succeeds", f"exit {rc}\n{out}{err}")
    R.check(taskset_get(vt[3]) == {1}, "g1: taskset -pc of vcpu 3's thread shows 1", cpulist(taskset_get(vt[3])))
    # ...and vcpu-list reads what taskset writes.
    rc, err = taskset_set(vt[2], {0})
    R.check(rc == 0, "g1: taskset -pc 0 on vcpu 2's thread", err)
    vcpus = t.list_vcpus("g1")
    R.check(vcpus[2].get("hard") == "0", f"g1: vcpu-list shows hard 0 for vcpu 2 (got {vcpus[2].get('hard')})", vcpus[2])
    R.check(vcpus[3].get("hard") == "1", f"g1: vcpu-list shows hard 1 for vcpu 3 (got {vcpus[3].get('hard')})", vcpus[3])
    for v in (0, 1):
        R.check(vcpus[v].get("hard") == cpulist(HOST_ONLINE), f"g1: vcpu {v} untouched ({vcpus[v].get('hard')})", vcpus[v])
    rc, out, err = t.pin("g1", "all", cpulist(HOST_ONLINE))
    R.check(rc == 0 and all(taskset_get(tid) == HOST_ONLINE for tid in vt.values()),
            f"g1: vcpu-pin g1 all {cpulist(HOST_ONLINE)} resets every vcpu thread", f"exit {rc}\n{out}{err}")
    rc, out, err = t.pin("g1", "0-1", "0")
    R.check(rc == 0 and taskset_get(vt[0]) == {0} and taskset_get(vt[1]) == {0} and taskset_get(vt[2]) == HOST_ONLINE,
            "g1: vcpu-pin g1 0-1 0 pins vcpus 0 and 1 only", f"exit {rc}\n{out}{err}")
    rc, out, err = t.pin(str(pid), "1", "1")
    R.check(rc == 0 and taskset_get(vt[1]) == {1}, f"g1: vcpu-pin by PID ({pid}) works", f"exit {rc}\n{out}{err}")

    # A domain by name and by PID is the same domain.
    by_name, by_pid = t.list_vcpus("g1"), t.list_vcpus(str(pid))
    stable = ("domain", "id", "vcpu", "hard", "soft", "effective", "limit")
    strip = lambda vs: {v: {k: o.get(k) for k in stable} for v, o in vs.items()}  # noqa: E731
    R.check(strip(by_name) == strip(by_pid), f"g1: vcpu-list g1 and vcpu-list {pid} agree",
            f"{strip(by_name)}\n{strip(by_pid)}")

    # The other threads (optional: --threads).
    rc, data, err, out = t.list_json("--threads", "g1")
    if rc != 0 or not isinstance(data, list):
        R.note(f"vcpu-list --threads g1: exit {rc}, stderr {err.strip()!r}: emulator/iothread checks not run")
        return
    others = [o for o in data if o.get("thread") in ("emulator", "iothread")]
    R.note(f"vcpu-list --threads g1, non-vcpu objects: {others}")
    emulator = [o for o in others if o["thread"] == "emulator"]
    R.check(len(emulator) == 1 and emulator[0].get("hard") == cpulist(taskset_get(pid)),
            "g1: --threads lists one emulator thread with the main thread's affinity", emulator)
    io = {str(o.get("iothread")): o for o in others if o["thread"] == "iothread"}
    R.check(set(io) == {"iot1"}, "g1: --threads lists exactly the IOThreads QMP knows (iot1; not QEMU's mon_iothread)",
            sorted(io))
    io_tid = next((tid for tid, c in threads(pid).items() if c == "IO iot1"), None)
    if "iot1" in io and io_tid:
        R.check(io["iot1"].get("hard") == cpulist(taskset_get(io_tid)), "g1: iothread iot1's hard is taskset's", io["iot1"])


def plain_g2(t, g, env_only):
    """vcpus 2-3 offline; a hot-plugged vcpu is online with a thread and the emulator's affinity."""
    pid, qmp = g["pid"], g["qmp"]
    vt = vcpu_threads(pid)
    R.check(sorted(vt) == [0, 1], "g2: 2 vcpu threads before the hot-plug", vt)
    if not env_only:
        vcpus = t.list_vcpus("g2")
        R.check(sorted(vcpus) == [0, 1, 2, 3], f"g2: vcpu-list shows maxcpus=4 vcpus ({sorted(vcpus)})", vcpus)
        for v in (2, 3):
            o = vcpus.get(v, {})
            R.check(o.get("state") == "offline" and o.get("cpu") is None,
                    f"g2: vcpu {v} is offline with cpu null before the hot-plug", o)
        for o in vcpus.values():
            check_vcpu_object(o, pid, "g2", "g2")
    # The main thread on CPU 1 only: a hot-plugged vcpu thread inherits that, the others keep 0-1.
    main_cpus = {max(HOST_ONLINE)}
    if env_only:
        rc, err = taskset_set(pid, main_cpus)
        R.check(rc == 0, f"g2: taskset -pc {cpulist(main_cpus)} on the main thread", err)
    else:
        rc, out, err = t.pin("--emulator", "g2", cpulist(main_cpus))
        R.check(rc == 0, f"g2: vcpu-pin --emulator g2 {cpulist(main_cpus)} succeeds", f"exit {rc}\n{out}{err}")
        if rc != 0:
            taskset_set(pid, main_cpus)  # so that the hot-plug check below still means something
    R.check(taskset_get(pid) == main_cpus, f"g2: the main thread's affinity is {cpulist(main_cpus)}",
            cpulist(taskset_get(pid)))
    R.check(all(taskset_get(tid) == HOST_ONLINE for tid in vt.values()), "g2: the vcpu threads kept theirs",
            {v: cpulist(taskset_get(tid)) for v, tid in vt.items()})

    with Qmp(qmp) as m:
        slots = m.execute("query-hotpluggable-cpus")
        free = [s for s in slots if "qom-path" not in s]
        R.note(f"g2: {len(slots)} hot-pluggable slots, {len(free)} free: {[s['props'] for s in free]}")
        key = lambda s: tuple(s["props"].get(k, 0) for k in ("socket-id", "die-id", "core-id", "thread-id"))  # noqa: E731
        slot = min(free, key=key)  # the lowest free slot becomes cpu-index 2
        m.execute("device_add", driver=slot["type"], id="hotplug-vcpu2", **slot["props"])
        R.check(True, f"g2: QMP device_add driver={slot['type']} {slot['props']}")
        fast = m.execute("query-cpus-fast")
    tid = wait_vcpu_thread(pid, 2)
    R.check(tid is not None, "g2: a thread CPU 2/TCG appears after the hot-plug", threads(pid))
    if tid is None:
        return
    R.check({c["cpu-index"]: c["thread-id"] for c in fast}.get(2) == tid,
            "g2: QMP query-cpus-fast reports the new vcpu's thread", fast)
    R.check(taskset_get(tid) == taskset_get(pid),
            f"g2: the hot-plugged vcpu inherited the main thread's affinity ({cpulist(taskset_get(tid))})",
            f"vcpu 2: {cpulist(taskset_get(tid))}, main: {cpulist(taskset_get(pid))}")
    if env_only:
        return
    vcpus = t.list_vcpus("g2")
    o2 = vcpus.get(2, {})
    R.check(o2.get("state") not in (None, "offline"), f"g2: vcpu-list shows vcpu 2 online (state {o2.get('state')})", o2)
    R.check(o2.get("hard") == cpulist(taskset_get(pid)),
            f"g2: vcpu 2's hard {o2.get('hard')} equals the emulator thread's {cpulist(taskset_get(pid))}", o2)
    R.check(vcpus.get(3, {}).get("state") == "offline", "g2: vcpu 3 still offline", vcpus.get(3))
    for v in (0, 1):
        R.check(vcpus[v].get("hard") == cpulist(HOST_ONLINE), f"g2: vcpu {v} hard still {cpulist(HOST_ONLINE)}", vcpus[v])


def plain_g3(t, g, env_only):
    """Without debug-threads (and without QMP) the vcpu threads cannot be told apart: the tool must say
    so, not guess."""
    pid = g["pid"]
    comms = threads(pid)
    R.check(not vcpu_threads(pid) and len(comms) >= 4,
            f"g3: {len(comms)} threads, none named CPU n/TCG (no debug-threads)", comms)
    if env_only:
        return
    rc, data, err, out = t.list_json("g3")
    R.note(f"vcpu-list --json g3 (no debug-threads): exit {rc}\n  stdout: {out.strip()}\n  stderr: {err.strip()}")
    R.check(rc in (0, 1), f"g3: vcpu-list exits 0 or 1, not a usage error or a crash (exit {rc})", err)
    objs = [o for o in (data or []) if isinstance(o, dict) and o.get("id") == pid]
    guessed = [o for o in objs if o.get("hard") not in (None, "")]
    R.check(not guessed, "g3: no vcpu is reported with an affinity as if its thread were known", guessed)
    reason = err.strip() or any(o.get("problem") for o in objs)
    R.check(bool(reason), "g3: a reason is given (stderr or a problem field)", f"stdout {out!r}\nstderr {err!r}")
    rc, data, err, out = t.list_json(str(pid))
    R.check(not [o for o in (data or []) if isinstance(o, dict) and o.get("hard") not in (None, "")],
            f"g3 by PID: nothing guessed either (exit {rc})", out)


def plain_qmp(t, guests, env_only):
    """The QMP path (--qmp SOCKET): agrees with the name path on g1, and finds g3's vcpus, whose
    threads have no names, through query-cpus-fast alone."""
    if env_only:
        return
    g1, g3 = guests["g1"], guests["g3"]
    by_name = t.list_vcpus("g1")
    rc, data, err, out = t.list_json("--qmp", g1["qmp"], "g1")
    R.check(rc == 0 and isinstance(data, list), f"g1 --qmp: vcpu-list exits 0 (exit {rc})", err)
    by_qmp = {o["vcpu"]: o for o in (data or []) if "thread" not in o}
    R.check(sorted(by_qmp) == sorted(by_name) and all(by_qmp[v]["hard"] == by_name[v]["hard"] and
                                                       by_qmp[v]["state"] == by_name[v]["state"] for v in by_name),
            "g1: the QMP path and the name path agree (vcpus, state, hard)", f"{by_qmp}\n{by_name}")
    if not g3.get("qmp"):
        R.check(False, "g3 has a QMP socket for the QMP-only check", g3)
        return
    with Qmp(g3["qmp"]) as m:
        fast = {c["cpu-index"]: c["thread-id"] for c in m.execute("query-cpus-fast")}
    rc, data, err, out = t.list_json("--qmp", g3["qmp"], "g3")
    objs = {o["vcpu"]: o for o in (data or []) if "thread" not in o}
    R.check(rc == 0 and sorted(objs) == sorted(fast) and all("problem" not in o for o in objs.values()),
            f"g3 --qmp: its {len(fast)} vcpus are found through QMP alone (exit {rc})", out + err)
    for v, tid in fast.items():
        if v in objs:
            R.check(objs[v]["hard"] == cpulist(taskset_get(tid)),
                    f"g3 --qmp: vcpu {v} hard {objs[v]['hard']} is taskset's of QMP's thread {tid}", objs[v])
    rc, out, err = t.pin("--qmp", g3["qmp"], "g3", "1", "1")
    R.check(rc == 0 and taskset_get(fast[1]) == {1}, "g3 --qmp: vcpu-pin g3 1 1 pins QMP's thread of vcpu 1",
            out + err)


def plain_all(t, guests, env_only):
    """Without a DOMAIN, every guest is listed (g3 with its reason; other QEMUs may appear too)."""
    if env_only:
        return
    rc, data, err, out = t.list_json()
    R.note(f"vcpu-list --json (all domains): exit {rc}, stderr {err.strip()!r}")
    names = {o.get("domain") for o in (data or []) if isinstance(o, dict)}
    R.check(isinstance(data, list) and {"g1", "g2"} <= names, f"all domains: g1 and g2 are listed ({sorted(map(str, names))})", out)


# ---- libvirt ------------------------------------------------------------------------------------------

def virsh(*args):
    p = subprocess.run(["virsh", "-c", "qemu:///system", *args], capture_output=True, text=True, timeout=60)
    if p.returncode != 0:
        raise RuntimeError(f"virsh {' '.join(args)}: exit {p.returncode}: {p.stderr.strip()}")
    return p.stdout


def virsh_vcpuinfo(name):
    """{vcpu: {'cpu': int, 'state': str, 'affinity': set}} from `virsh vcpuinfo` ('yy' -> {0, 1})."""
    out, cur = {}, None
    for line in virsh("vcpuinfo", name).splitlines():
        key, sep, value = line.partition(":")
        if not sep:
            continue
        key, value = key.strip(), value.strip()
        if key == "VCPU":
            cur = out.setdefault(int(value), {})
        elif cur is None:
            continue
        elif key == "CPU":
            cur["cpu"] = int(value)
        elif key == "State":
            cur["state"] = value
        elif key == "CPU Affinity":
            if set(value) - {"y", "-"}:
                raise ValueError(f"CPU Affinity {value!r}")
            cur["affinity"] = frozenset(i for i, c in enumerate(value) if c == "y")
            cur["affinity_text"] = value
    return out


def virsh_vcpupin(name):
    """{vcpu: set} from the `virsh vcpupin NAME` table (libvirt's stored setting)."""
    out = {}
    for line in virsh("vcpupin", name).splitlines():
        m = re.fullmatch(r"\s*(\d+)\s+(\S+)\s*", line)
        if m:
            out[int(m.group(1))] = parse_cpulist(m.group(2))
    return out


def libvirt_lv1(t, g, env_only):
    pid, name = g["pid"], "lv1"
    R.check(read(f"/run/libvirt/qemu/{name}.pid").strip() == str(pid), "lv1: /run/libvirt/qemu/lv1.pid is the QEMU PID")
    vt = vcpu_threads(pid)
    R.check(sorted(vt) == [0, 1, 2, 3], "lv1: 4 vcpu threads named CPU n/TCG", threads(pid))
    info, pins = virsh_vcpuinfo(name), virsh_vcpupin(name)
    R.check(sorted(info) == [0, 1, 2, 3] and all("affinity" in i for i in info.values()),
            "lv1: virsh vcpuinfo parses into 4 vcpus with an affinity", info)
    R.check(sorted(pins) == [0, 1, 2, 3], "lv1: virsh vcpupin parses into 4 vcpus", pins)
    for v, tid in vt.items():
        path, limit = cpuset_of(tid)
        R.check(info[v]["affinity"] == taskset_get(tid) == pins[v],
                f"lv1: vcpu {v}: vcpuinfo {info[v]['affinity_text']}, vcpupin {cpulist(pins[v])} and taskset agree",
                cpulist(taskset_get(tid)))
        R.check(path.endswith(f"/vcpu{v}"), f"lv1: vcpu {v}'s thread is in libvirt's cgroup {path}", path)
    if not env_only:
        vcpus = t.list_vcpus(name)
        R.check(sorted(vcpus) == [0, 1, 2, 3], "lv1: vcpu-list finds 4 vcpus", vcpus)
        for v, o in sorted(vcpus.items()):
            check_vcpu_object(o, pid, name, "lv1")
            R.check(o.get("hard") == cpulist(info[v]["affinity"]) == cpulist(pins[v]),
                    f"lv1: vcpu {v} hard {o.get('hard')} agrees with virsh vcpuinfo and vcpupin", o)
            R.check(o.get("limit") == cpulist(cpuset_of(vt[v])[1]), f"lv1: vcpu {v} limit {o.get('limit')} is its cpuset's", o)
        by_pid = t.list_vcpus(str(pid))
        R.check({v: o.get("domain") for v, o in by_pid.items()} == {v: name for v in range(4)},
                f"lv1: vcpu-list {pid} names the domain lv1 (from -name guest=lv1)", by_pid)

    # A live pin from outside libvirt: vcpuinfo (the live mask) sees it, vcpupin (the stored setting) not.
    if env_only:
        rc, err = taskset_set(vt[1], {1})
        R.check(rc == 0, "lv1: taskset -pc 1 on vcpu 1's thread", err)
    else:
        rc, out, err = t.pin(name, "1", "1")
        R.check(rc == 0, "lv1: vcpu-pin lv1 1 1 succeeds", f"exit {rc}\n{out}{err}")
    info = virsh_vcpuinfo(name)
    R.check(info[1]["affinity_text"] == "-y", f"lv1: virsh vcpuinfo shows CPU Affinity '-y' for vcpu 1 "
            f"(got {info[1]['affinity_text']!r})", info[1])
    R.note(f"lv1: virsh vcpupin (libvirt's stored setting) for vcpu 1 now says {cpulist(virsh_vcpupin(name)[1])}")

    # libvirt pins vcpu 2 to CPU 1: affinity and its cgroup's cpuset both narrow.
    virsh("vcpupin", name, "2", "1")
    R.check(taskset_get(vt[2]) == {1}, "lv1: after virsh vcpupin lv1 2 1, taskset shows 1", cpulist(taskset_get(vt[2])))
    R.check(cpuset_of(vt[2])[1] == {1}, f"lv1: and vcpu 2's cpuset {cpuset_of(vt[2])[0]} is CPU 1",
            cpuset_of(vt[2]))
    if not env_only:
        o = t.list_vcpus(name)[2]
        R.check(o.get("hard") == "1" and o.get("limit") == "1",
                f"lv1: vcpu-list shows hard 1 and limit 1 for vcpu 2 (got {o.get('hard')}/{o.get('limit')})", o)
        rc, out, err = t.pin(name, "2", "0")
        R.check(rc != 0, f"lv1: vcpu-pin lv1 2 0 is refused (exit {rc})", f"{out}{err}")
        R.check("cpuset" in err, "lv1: the refusal mentions the cpuset", f"stderr: {err.strip()!r}")
        R.note(f"lv1: vcpu-pin lv1 2 0 said: {err.strip()}")
        R.check(taskset_get(vt[2]) == {1}, "lv1: vcpu 2's thread is still on CPU 1", cpulist(taskset_get(vt[2])))
    # The kernel's side of the refusal: nothing of {0} is in the cpuset, and {0,1} narrows to {1}.
    rc, err = taskset_set(vt[2], {0})
    R.check(rc != 0 and "Invalid argument" in err, "lv1: taskset -pc 0 on vcpu 2's thread fails with EINVAL",
            f"exit {rc}: {err}")
    rc, err = taskset_set(vt[2], HOST_ONLINE)
    R.check(rc == 0 and taskset_get(vt[2]) == {1},
            f"lv1: taskset -pc {cpulist(HOST_ONLINE)} on it succeeds and silently becomes 1",
            f"exit {rc} {err}, now {cpulist(taskset_get(vt[2]))}")

    if env_only:
        return
    rc, data, err, out = t.list_json("--threads", name)
    if rc == 0 and isinstance(data, list):
        emulator = [o for o in data if o.get("thread") == "emulator"]
        R.check(len(emulator) == 1 and emulator[0].get("hard") == cpulist(taskset_get(pid)),
                "lv1: --threads lists one emulator thread with the main thread's affinity", emulator)
        io = [o for o in data if o.get("thread") == "iothread"]
        R.check(not io, "lv1: --threads lists no IOThread (the domain has none; 'IO mon_iothread' is QEMU's monitor)", io)
    else:
        R.note(f"vcpu-list --threads lv1: exit {rc}, stderr {err.strip()!r}: not checked")


# ---- main -----------------------------------------------------------------------------------------

def parse_guest(text):
    name, sep, rest = text.partition("=")
    fields = rest.split(",")
    if not sep or not fields[0].isdigit():
        raise argparse.ArgumentTypeError(f"--guest NAME=PID[,QMP], not {text!r}")
    return name, {"pid": int(fields[0]), "qmp": fields[1] if len(fields) > 1 else None}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--env-only", action="store_true", help="only the environment checks (no tool runs)")
    ap.add_argument("--list", required=True, help="path of vcpu-list")
    ap.add_argument("--pin", required=True, help="path of vcpu-pin")
    ap.add_argument("part", choices=("plain", "libvirt"))
    ap.add_argument("--guest", type=parse_guest, action="append", default=[], help="NAME=PID[,QMP_PATH]")
    args = ap.parse_args()
    guests = dict(args.guest)
    needed = {"plain": ("g1", "g2", "g3"), "libvirt": ("lv1",)}[args.part]
    missing = [n for n in needed if n not in guests]
    if missing:
        ap.error(f"part {args.part} needs --guest for {', '.join(missing)}")

    t = Tools(args.list, args.pin)
    env_only = args.env_only
    R.note(f"host CPUs online: {cpulist(HOST_ONLINE)}; cgroup mounts: {MOUNTS}")
    if not env_only:
        rc, out, err = t.probe(needed[0])
        if not t.have_backend:
            R.check(False, "the tools have no linux backend", f"vcpu-list --backend=linux: exit {rc}: {err.strip()}")
            R.note("only the environment checks run")
            env_only = True
    if args.part == "plain":
        R.group(plain_g1, t, guests["g1"], env_only)
        R.group(plain_g2, t, guests["g2"], env_only)
        R.group(plain_g3, t, guests["g3"], env_only)
        R.group(plain_qmp, t, guests, env_only)
        R.group(plain_all, t, guests, env_only)
    else:
        R.group(libvirt_lv1, t, guests["lv1"], env_only)
    print(f"# {args.part}: {R.passed} ok, {R.failed} failed" + (" (environment checks only)" if env_only else ""))
    return 1 if R.failed else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("# interrupted", flush=True)
        sys.exit(130)
