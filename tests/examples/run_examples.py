#!/usr/bin/env python3
"""Tests of the example tools (vcpu-list, vcpu-pin, vcpu-matrix, vcpu-balance, vcpu-set, cpulist).

    run_examples.py --list                          the test names, one a line (for meson)
    run_examples.py NAME LIST PIN MATRIX BALANCE CPULIST SET   run test NAME with the tools' paths

Exit 0 pass, 1 fail, 77 skip. Golden files live in golden/ next to this script; with
VCPUMAP_UPDATE_GOLDEN=1 a golden test rewrites its file instead of comparing (never the
xm table of the 2006 thread, which is the reference itself). Pictures (SVG, PNG) are left in
$EXAMPLES_TEST_OUTPUT (default: a temporary directory) for a person to look at.

The mock backend runs in each process from a fixture; --persist writes the host back to the
fixture file, which is how these tests see what a command changed (or did not change).
"""
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET

HERE = os.path.dirname(os.path.abspath(__file__))
GOLDEN = os.path.join(HERE, "golden")
BIG = os.path.join(HERE, "big-host.txt")
XEN = os.path.join(HERE, "xen-host.txt")  # cpupools, SMT, node memory and affinity, vcpu_set=yes
HOST_8192 = os.path.join(HERE, "host-8192.txt")  # 16 sockets, 32 NUMA nodes: vcpu-matrix's folded grid
XM_2006 = "xm-vcpu-list-2006.txt"  # verbatim from the libvir-list thread: never regenerated
TESTS = {}
TOOLS = {}


def test(fn):
    TESTS[fn.__name__.replace("_", "-")] = fn
    return fn


class Skip(Exception):
    pass


def check(cond, what):
    if not cond:
        raise AssertionError(what)


def run(tool, *args, env=None, code=0):
    """Runs a tool; checks the exit code; returns (stdout, stderr)."""
    full_env = dict(os.environ)
    full_env.pop("VCPUMAP_MOCK_FAIL_CALL", None)
    full_env.update(env or {})
    p = subprocess.run([TOOLS[tool], *args], capture_output=True, text=True, errors="surrogateescape",
                       env=full_env, timeout=120)
    if code is not None and p.returncode != code:
        raise AssertionError(f"{tool} {' '.join(args)}: exit {p.returncode}, expected {code}\n"
                             f"stdout:\n{p.stdout}stderr:\n{p.stderr}")
    return p.stdout, p.stderr


def run_code(tool, *args, env=None, **kwargs):
    full_env = dict(os.environ)
    full_env.update(env or {})
    p = subprocess.run([TOOLS[tool], *args], capture_output=True, text=True, errors="surrogateescape",
                       env=full_env, timeout=120, **kwargs)
    return p.returncode, p.stdout, p.stderr


def golden(name, text):
    path = os.path.join(GOLDEN, name)
    if os.environ.get("VCPUMAP_UPDATE_GOLDEN") == "1" and name != XM_2006:
        with open(path, "w") as f:
            f.write(text)
        return
    with open(path) as f:
        expected = f.read()
    if text != expected:
        import difflib
        diff = "".join(difflib.unified_diff(expected.splitlines(True), text.splitlines(True), name, "actual"))
        raise AssertionError(f"output differs from golden/{name}:\n{diff}")


def output_dir():
    d = os.environ.get("EXAMPLES_TEST_OUTPUT") or tempfile.mkdtemp(prefix="vcpumap-examples-")
    os.makedirs(d, exist_ok=True)
    return d


def scratch_fixture(source=BIG):
    """A copy of a fixture, normalised by one --persist round (so files compare as written)."""
    d = tempfile.mkdtemp(prefix="vcpumap-fixture-")
    path = os.path.join(d, "host.txt")
    shutil.copy(source, path)
    run("list", "--fixture", path, "--persist")
    return path


def read(path):
    with open(path) as f:
        return f.read()


# ---- golden outputs ----

MOCK = ["--backend=mock"]
GOLDEN_RUNS = {
    "list-xl-demo": ("list", MOCK),
    "list-xl-big": ("list", ["--fixture", BIG]),
    "list-xm-big": ("list", ["--xm", "--fixture", BIG]),
    "list-filter": ("list", MOCK + ["xperf2", "1"]),
    "pin-all": ("pin", MOCK + ["xperf2", "all", "2-3"]),
    "pin-one": ("pin", MOCK + ["Domain-0", "2", "^1", "2-3"]),
    "pin-soft-only": ("pin", MOCK + ["-f", "3", "0-1", "-", "1"]),
    "pin-node": ("pin", ["--fixture", BIG, "web", "all", "node:1", "nodes:1"]),
    "pin-dry-run": ("pin", MOCK + ["--dry-run", "xperf2", "0-1", "node:0", "^3"]),
    "pin-dry-run-big": ("pin", ["--fixture", BIG, "--dry-run", "db", "all", "^node:0", "-"]),
    "matrix-demo": ("matrix", MOCK + ["Domain-0"]),
    "matrix-big-effective": ("matrix", ["--fixture", BIG, "web"]),
    "matrix-big-hard": ("matrix", ["--fixture", BIG, "--hard", "0"]),
    "matrix-big-soft": ("matrix", ["--fixture", BIG, "--soft", "analytics-batch-worker-with-a-long-name"]),
    "balance-demo": ("balance", MOCK),
    "balance-big": ("balance", ["--fixture", BIG]),
    "list-xl-xen": ("list", ["--fixture", XEN]),
    "list-pools-xen": ("list", ["--fixture", XEN, "--pools"]),
    "list-host-xen": ("list", ["--fixture", XEN, "--host"]),
    "list-host-big": ("list", ["--fixture", BIG, "--host"]),
    "matrix-xen-smt": ("matrix", ["--fixture", XEN, "--hard", "db"]),
    "balance-xen": ("balance", ["--fixture", XEN]),
    "balance-xen-any-node": ("balance", ["--fixture", XEN, "--any-node", "--include-pinned"]),
    "balance-big-include-pinned": ("balance", ["--fixture", BIG, "--include-pinned"]),
    "pin-list-demo": ("pin", MOCK + ["xperf2"]),
    "pin-list-big": ("pin", ["--fixture", BIG, "db"]),
    "pin-list-xen": ("pin", ["--fixture", XEN, "web"]),
    "matrix-8192-hard": ("matrix", ["--fixture", HOST_8192, "--hard", "db"]),
    "set-dry-run-xen": ("set", ["--fixture", XEN, "--dry-run", "db", "--vcpus", "0,3"]),
}


def golden_test(name, tool, args):
    def body():
        out, err = run(tool, *args)
        check(err == "", f"unexpected stderr: {err!r}")
        golden(name + ".txt", out)
    body.__name__ = name.replace("-", "_")
    return body


for _name, (_tool, _args) in GOLDEN_RUNS.items():
    test(golden_test(_name, _tool, _args))


@test
def list_xm_demo():
    """On the demo host, --xm is byte for byte the table of the 2006 thread."""
    out, err = run("list", "--backend=mock", "--xm")
    check(err == "", f"unexpected stderr: {err!r}")
    golden(XM_2006, out)


@test
def list_auto_falls_back():
    """auto without a usable Xen: the demo host, and one line on stderr saying so."""
    if os.path.exists("/dev/xen/privcmd"):
        raise Skip("/dev/xen/privcmd exists: auto would use Xen")
    out, err = run("list")
    lines = err.splitlines()
    check(len(lines) == 1 and re.fullmatch(r"vcpu-list: .*: using the built-in demo host .*", lines[0]),
          f"stderr should be one line naming the demo host: {err!r}")
    golden("list-xl-demo.txt", out)
    out, err = run("list", "--backend=xen", code=1)
    check(len(err.splitlines()) == 1 and "vcpu-list:" in err, f"--backend=xen without Xen: {err!r}")


# ---- JSON ----

CPULIST = re.compile(r"(\d+(-\d+)?(,\d+(-\d+)?)*)?")


def check_json(args, table_args):
    out, _ = run("list", "--json", *args)
    vcpus = json.loads(out)
    table, _ = run("list", *table_args)
    rows = table.splitlines()[1:]
    check(len(vcpus) == len(rows), f"{len(vcpus)} JSON objects for {len(rows)} table rows")
    keys = {"domain", "id", "vcpu", "state", "cpu", "time_ns", "wait_ns", "hard", "soft", "limit", "effective"}
    for obj, row in zip(vcpus, rows):
        check(set(obj) == keys, f"keys {sorted(obj)}")
        check(isinstance(obj["domain"], str) and isinstance(obj["id"], int) and isinstance(obj["vcpu"], int), obj)
        check(obj["state"] in {"offline", "running", "blocked", "runnable", "unknown"}, obj)
        check((obj["cpu"] is None) == (obj["state"] == "offline"), f"cpu null exactly when offline: {obj}")
        check(isinstance(obj["time_ns"], int) and obj["time_ns"] >= 0, obj)
        for k in ("hard", "soft", "limit", "effective"):
            check(CPULIST.fullmatch(obj[k]), f"{k} is not a canonical cpulist: {obj}")
        fields = row.split()
        check(fields[0] == obj["domain"] and int(fields[1]) == obj["id"] and int(fields[2]) == obj["vcpu"],
              f"JSON {obj} vs table row {row!r}")
        check(fields[3] == ("-" if obj["cpu"] is None else str(obj["cpu"])), f"cpu: {obj} vs {row!r}")
    return vcpus


@test
def list_json_demo():
    vcpus = check_json(MOCK, MOCK)
    check(len(vcpus) == 9 and vcpus[2]["state"] == "running" and vcpus[0]["time_ns"] == 636_800_000_000, vcpus[:3])
    check(all(v["hard"] == "0-3" and v["effective"] == "0-3" for v in vcpus), "demo affinity is 0-3")


@test
def list_json_big():
    vcpus = check_json(["--fixture", BIG], ["--fixture", BIG])
    by = {(v["domain"], v["vcpu"]): v for v in vcpus}
    check(by[("web", 0)]["hard"] == "0-7" and by[("web", 0)]["effective"] == "2-3", by[("web", 0)])
    # soft ∩ hard ∩ online empty: effective falls back to hard ∩ online
    check(by[("analytics-batch-worker-with-a-long-name", 2)]["effective"] == "0-5,8-13", "effective of a none soft")
    check(by[("db", 3)]["cpu"] is None and by[("db", 3)]["state"] == "offline", by[("db", 3)])
    check(not any(v["domain"] == "empty" for v in vcpus), "a domain with no vcpus has no rows")


# ---- --watch ----

@test
def list_watch():
    out, _ = run("list", "--backend=mock", "--watch", "0.05", "--count", "3", "Domain-0")
    samples = out.split("\n\n")
    check(len(samples) == 3, f"3 samples, got {len(samples)}")
    for i, sample in enumerate(samples):
        rows = sample.strip("\n").splitlines()
        check(rows[0].split()[-6:-4] == ["Time(s)", "CPU%"], f"header {rows[0]!r}")
        check(len(rows) == 5, f"4 vcpus of Domain-0: {rows}")
        use = [r.split()[6] for r in rows[1:]]
        check(use == (["-"] * 4 if i == 0 else ["0.0", "0.0", "100.0", "0.0"]), f"sample {i} CPU%: {use}")
    out, _ = run("list", "--backend=mock", "--json", "--watch", "0.01", "--count", "2", "xperf1")
    first, second = (json.loads(s) for s in out.split("\n\n"))
    check(first[0]["util"] is None and second[0]["util"] == 0.0, f"util {first} {second}")


# ---- errors and exit codes ----

ERRORS = [
    # (tool, args, exit code, what the one line on stderr must contain)
    ("list", ["--bogus"], 2, "unknown option '--bogus'"),
    ("list", ["--xm", "--json"], 2, "--xm, --json and --prometheus exclude each other"),
    ("list", ["--count", "2"], 2, "--count goes with --watch"),
    ("list", ["--watch", "soon"], 2, "--watch needs a number"),
    ("list", ["--watch"], 2, "--watch needs a value"),
    ("list", ["--watch", "1", "--count", "0"], 2, "--count"),
    ("list", ["--backend=kvm"], 2, "--backend is auto, xen, linux or mock"),
    ("list", ["--backend=xen", "--fixture", BIG], 2, "--fixture is for the mock"),
    ("list", ["--persist"], 2, "--persist needs --fixture"),
    ("list", ["--backend=mock", "nosuch"], 1, "no such domain 'nosuch'"),
    ("list", ["--backend=mock", "2"], 1, "no such domain '2'"),
    ("list", ["--fixture", "/nonexistent/host.txt"], 1, "fixture /nonexistent/host.txt: cannot open"),
    ("list", ["--fixture="], 2, "--fixture needs a file name"),
    ("list", ["--fixture", "/dev/zero"], 1, "fixture /dev/zero: larger than the limit of 67108864 bytes"),
    ("list", ["--fixture", "/tmp"], 1, "fixture /tmp: is a directory"),
    ("list", ["--backend=mock", "no\x1b]0;such\x07"], 1, "no such domain 'no\\x1b]0;such\\x07'"),
    ("pin", ["--backend=mock", "xperf2", "0", "99999999999999999999999"], 1,
     "domain 3 (xperf2): vcpu 0: hard affinity 99999999999999999999999 names CPU 99999999999999999999999, beyond the host's 4 CPUs"),
    ("pin", ["--backend=mock", "xperf2", "0", "16777216"], 1, "names CPU 16777216, beyond the host's 4 CPUs"),
    ("pin", ["--backend=mock", "xperf2", "0", "0x18"], 1, "hard affinity 0x18 names a CPU beyond the host's 4 CPUs"),
    ("pin", ["--backend=mock", "xperf2", "99999999999999999999", "1"], 1,
     "domain 3 (xperf2): vcpu 99999999999999999999 is beyond its 4 vcpus"),
    ("pin", ["--backend=mock"], 2, "needs DOMAIN [VCPUS [HARD [SOFT]]]"),
    ("pin", ["--backend=mock", "--dry-run", "xperf2", "0"], 2, "-f and --dry-run go with a pin"),
    ("pin", ["--backend=mock", "-f", "xperf2"], 2, "-f and --dry-run go with a pin"),
    ("pin", ["--backend=mock", "--json", "xperf2", "0", "1"], 2, "--json goes with the listing"),
    ("pin", ["--backend=mock", "xperf2", "7"], 1, "domain 3 (xperf2): vcpu 7 is beyond its 4 vcpus"),
    ("pin", ["--backend=mock", "xperf2", "0-x"], 2, "vcpus: cpulist \"0-x\""),
    ("pin", ["--backend=mock", "nosuch"], 1, "no such domain 'nosuch'"),
    ("pin", ["--backend=mock", "xperf2", "0", "1", "2", "3"], 2, "unexpected argument '3'"),
    ("pin", ["--backend=mock", "--bogus", "xperf2", "0", "1"], 2, "unknown option '--bogus'"),
    ("pin", ["--backend=mock", "nosuch", "0", "1"], 1, "no such domain 'nosuch'"),
    ("pin", ["--backend=mock", "xperf2", "9", "1"], 1, "domain 3 (xperf2): vcpu 9 is beyond its 4 vcpus"),
    ("pin", ["--backend=mock", "xperf2", "2-5", "1"], 1, "domain 3 (xperf2): vcpu 5 is beyond its 4 vcpus"),
    ("pin", ["--backend=mock", "xperf2", "x", "1"], 2, "vcpus: cpulist \"x\""),
    ("pin", ["--backend=mock", "xperf2", "0", "7"], 1, "domain 3 (xperf2): vcpu 0: hard affinity 7 names CPU 7"),
    ("pin", ["--backend=mock", "xperf2", "all", "-", "0-9"], 1, "vcpus 0-3: soft affinity 0-9 names CPU 9"),
    ("pin", ["--backend=mock", "xperf2", "0", "1-x"], 2, "hard affinity: cpulist \"1-x\": column 3"),
    ("pin", ["--backend=mock", "xperf2", "0", "node:1"], 2, "no such NUMA node"),
    ("pin", ["--backend=mock", "xperf2", "0", "-", "-"], 2, "nothing to pin"),
    ("pin", ["--backend=mock", "xperf2", "0", ""], 1, "domain 3 (xperf2): vcpu 0: empty hard affinity"),
    ("pin", ["--backend=mock", "--dry-run", "xperf2", "0", ""], 1, "domain 3 (xperf2): vcpu 0: empty hard affinity"),
    ("pin", ["--fixture", BIG, "web", "1", "6-7"], 1, "domain 4 (web): vcpu 1: hard affinity 6-7 holds no online CPU"),
    ("pin", ["--fixture", BIG, "web", "all", "6-7"], 1, "domain 4 (web): vcpu 0: hard affinity 6-7 holds no online CPU"),
    ("pin", ["--fixture", BIG, "--dry-run", "web", "1", "6-7"], 1, "domain 4 (web): vcpu 1: hard affinity 6-7 holds no online CPU"),
    ("pin", ["--fixture", BIG, "empty", "all", "1"], 1, "domain 30 (empty): no vcpu to pin"),
    ("matrix", ["--backend=mock"], 2, "needs a DOMAIN"),
    ("matrix", ["--backend=mock", "0", "1"], 2, "takes one DOMAIN"),
    ("matrix", ["--backend=mock", "--svg"], 2, "--svg needs a value"),
    ("matrix", ["--backend=mock", "nosuch"], 1, "no such domain 'nosuch'"),
    ("matrix", ["--backend=mock", "--svg", "/nonexistent/dir/m.svg", "0"], 1, "/nonexistent/dir/m.svg: cannot create a temporary file"),
    ("balance", ["--backend=mock", "--bogus"], 2, "unknown option '--bogus'"),
    ("balance", ["--backend=mock", "nosuch"], 1, "no such domain 'nosuch'"),
    ("cpulist", ["--universe", "-1", "0"], 2, "--universe needs a whole number from 0 to 16777216, not '-1'"),
    ("cpulist", ["--universe", "4000000000", "0"], 2, "--universe needs a whole number from 0 to 16777216"),
    ("cpulist", ["0-3,x"], 1, "cpulist \"0-3,x\": column 5"),
    ("cpulist", [], 2, "no TEXT given"),
    ("cpulist", ["--universe", "8"], 2, "no TEXT given"),
    ("cpulist", ["0-3", "--bogus"], 2, "unknown option '--bogus'"),
    ("cpulist", ["0-3", "--universe"], 2, "--universe needs a value"),
    ("cpulist", ["node:1"], 1, "node"),
    ("cpulist", ["--fixture", BIG, "--universe", "8", "0"], 2, "--universe and a host (--host or backend options) exclude each other"),
    ("cpulist", ["--fixture", BIG, "node:2"], 1, "node"),
    ("cpulist", ["--fixture", BIG, "16"], 1, "16"),
    ("cpulist", ["--backend=kvm", "0"], 2, "--backend is auto, xen, linux or mock"),
    ("balance", ["--backend=mock", "--include-pinned=yes"], 2, "unknown option '--include-pinned=yes'"),
    ("list", ["--backend=mock", "--pools", "--host"], 2, "--pools and --host exclude each other"),
    ("list", ["--backend=mock", "--pools", "--xm"], 2, "--pools takes --json, not --xm"),
    ("list", ["--backend=mock", "--host", "xperf2"], 2, "--host takes no DOMAIN"),
    ("list", ["--backend=mock", "--pools", "--watch", "1"], 2, "--pools takes neither --threads nor --watch"),
    ("list", ["--backend=mock", "--prometheus", "--json"], 2, "--xm, --json and --prometheus exclude each other"),
    ("list", ["--backend=mock", "--output", "x.prom"], 2, "--output goes with --prometheus"),
    ("list", ["--backend=mock", "--prometheus", "--output="], 2, "--output needs a file name"),
    ("list", ["--backend=mock", "--prometheus", "--threads"], 2, "--prometheus takes no --threads"),
    ("list", ["--backend=mock", "--pools", "--prometheus"], 2, "--pools takes --json, not --prometheus"),
    ("balance", ["--backend=mock", "--any-nodes"], 2, "unknown option '--any-nodes'"),
    ("set", ["--backend=mock"], 2, "needs DOMAIN COUNT"),
    ("set", ["--backend=mock", "xperf2"], 2, "needs DOMAIN COUNT"),
    ("set", ["--backend=mock", "xperf2", "two"], 2, "COUNT needs a whole number, not 'two'"),
    ("set", ["--backend=mock", "xperf2", "-1"], 2, "unknown option '-1'"),
    ("set", ["--backend=mock", "xperf2", "2", "3"], 2, "unexpected argument '3'"),
    ("set", ["--backend=mock", "xperf2", "2", "--vcpus", "0"], 2, "COUNT and --vcpus exclude each other"),
    ("set", ["--backend=mock", "xperf2", "--vcpus", "0", "--vcpus", "1"], 2, "--vcpus is given once"),
    ("set", ["--backend=mock", "xperf2", "--vcpus", "0-x"], 2, "--vcpus: cpulist \"0-x\""),
    ("set", ["--backend=mock", "--bogus", "xperf2", "2"], 2, "unknown option '--bogus'"),
    ("set", ["--backend=mock", "nosuch", "2"], 1, "no such domain 'nosuch'"),
    # The demo host (and Linux) cannot: the library's unsupported error, whatever was asked.
    ("set", ["--backend=mock", "xperf2", "2"], 1, "domain 3 (xperf2): this hypervisor cannot set which vcpus are online"),
    ("set", ["--backend=mock", "--dry-run", "xperf2", "0"], 1, "domain 3 (xperf2): this hypervisor cannot set which vcpus are online"),
    ("set", ["--fixture", BIG, "web", "--vcpus", "0-99"], 1, "domain 4 (web): this hypervisor cannot set which vcpus"),
    ("set", ["--fixture", XEN, "db", "0"], 1, "domain 2 (db): at least one vcpu must stay online (asked for none)"),
    ("set", ["--fixture", XEN, "--dry-run", "db", "0"], 1, "domain 2 (db): at least one vcpu must stay online"),
    ("set", ["--fixture", XEN, "db", "--vcpus", ""], 1, "domain 2 (db): at least one vcpu must stay online"),
    ("set", ["--fixture", XEN, "db", "5"], 1, "domain 2 (db): vcpus 0-4 asked online, but it has 4 vcpus (maxvcpus)"),
    ("set", ["--fixture", XEN, "db", "4294967295"], 1, "domain 2 (db): 4294967295 vcpus asked online, but it has 4 vcpus (maxvcpus)"),
    ("set", ["--fixture", XEN, "db", "4294967296"], 2, "COUNT needs a whole number"),
    ("set", ["--fixture", XEN, "db", "--vcpus", "1,7"], 1, "domain 2 (db): vcpu 7 is beyond its 4 vcpus (maxvcpus)"),
    ("set", ["--fixture", XEN, "web", "--vcpus", "0x18"], 1, "domain 1 (web): vcpus 0x18 name a vcpu beyond its 2 vcpus"),
    ("pin", ["--fixture", XEN, "web", "0", "0-3"], 1,
     "domain 1 (web): vcpu 0: hard affinity 0-3 holds no online CPU of the vcpu's cpupool 1 (fast) 10-11"),
]


@test
def errors():
    failures = []
    for tool, args, code, needle in ERRORS:
        got, out, err = run_code(tool, *args)
        lines = err.splitlines()
        if got != code or len(lines) != 1 or needle not in lines[0] or not re.match(r"(vcpu-\w+|cpulist): ", lines[0]):
            failures.append(f"{tool} {args}: exit {got} (expected {code}), stderr {err!r} (expected one line with {needle!r})")
    check(not failures, "\n".join(failures))


@test
def bad_fixture():
    d = tempfile.mkdtemp(prefix="vcpumap-fixture-")
    path = os.path.join(d, "bad.txt")
    with open(path, "w") as f:
        f.write("host cpus=4\ndomain 1 a vcpus=2\nvcpu 5 state=blocked\n")
    for tool in ("list", "pin", "matrix", "balance", "set"):
        args = ["--fixture", path] + {"list": [], "pin": ["a", "0", "1"], "matrix": ["a"], "balance": [], "set": ["a", "1"]}[tool]
        _, err = run(tool, *args, code=1)
        check(re.fullmatch(r"vcpu-\w+: .*bad\.txt: fixture line 3: vcpu 5 is beyond .*\n", err), f"{tool}: {err!r}")


@test
def help():
    for tool, name in (("list", "vcpu-list"), ("pin", "vcpu-pin"), ("matrix", "vcpu-matrix"), ("balance", "vcpu-balance"),
                       ("set", "vcpu-set"), ("cpulist", "cpulist")):
        for flag in ("--help", "-h"):
            out, err = run(tool, "--backend=mock", flag)
            check(out.startswith(f"usage: {name} ") and "--backend=auto|xen|linux|mock" in out and err == "", f"{name} {flag}")


# ---- pins change what they should, and nothing else ----

@test
def pin_persists():
    host = scratch_fixture()
    out, _ = run("pin", "--fixture", host, "--persist", "web", "0-1", "8-9", "8")
    check(out.splitlines()[1:] == ["vcpu 0: 8-9 / 8", "vcpu 1: 8-9 / 8"], f"reported back: {out!r}")
    out, _ = run("list", "--fixture", host, "web")
    check([" ".join(r.split()[6:]) for r in out.splitlines()[1:3]] == ["8-9 / 8", "8-9 / 8"], out)
    check([" ".join(r.split()[6:]) for r in out.splitlines()[3:5]] == ["0-7 / 4-5", "0-7 / 4-5"], out)


@test
def dry_run_changes_nothing():
    host = scratch_fixture()
    before = read(host)
    for args in (["web", "all", "8-9"], ["web", "1", "-", "0"], ["db", "0-2", "node:0", "node:0"],
                 ["0", "all", "^0"], ["web", "1", "6-7"], ["web", "9", "1"]):
        run_code("pin", "--fixture", host, "--persist", "--dry-run", *args)
        check(read(host) == before, f"--dry-run {args} changed the host")
    out, _ = run("pin", "--fixture", host, "--persist", "--dry-run", "web", "all", "8-9")
    check("nothing applied" in out.splitlines()[0] and out.count("(changed)") == 6, out)


def every_failure_point(tool, args, expect_message):
    """Fails backend call K = 1, 2, ... in turn: every failing run leaves the host as it was;
    once K is past the command's calls, it succeeds. Returns the messages of the failures."""
    every_failure_point_of(BIG, tool, args, expect_message)


def every_failure_point_of(fixture, tool, args, expect_message):
    host = scratch_fixture(fixture)
    before = read(host)
    messages = []
    for k in range(1, 200):
        code, out, err = run_code(tool, "--fixture", host, "--persist", *args, env={"VCPUMAP_MOCK_FAIL_CALL": str(k)})
        if code == 0:
            check(read(host) != before, f"{tool} {args} succeeded but changed nothing")
            break
        check(code == 1 and len(err.splitlines()) == 1, f"K={k}: exit {code}, stderr {err!r}")
        check(read(host) == before, f"K={k}: the failed {tool} changed the host: {err}")
        messages.append(err)
    else:
        raise AssertionError(f"{tool} {args} never succeeded")
    check(any(re.search(expect_message, m) for m in messages), f"no failure matched {expect_message!r}: {messages}")


@test
def pin_all_or_nothing():
    every_failure_point("pin", ["web", "all", "8-9"],
                        r"domain 4 \(web\): pin failed at vcpu 3: .*; vcpus 0-2 restored")


@test
def balance_all_or_nothing():
    every_failure_point("balance", ["--apply", "--include-pinned"],
                        r"domain 7 \(db\): pin failed at vcpu \d: .*; domains 0,4 restored")


@test
def balance_apply():
    host = scratch_fixture(BIG)
    out, _ = run("balance", "--fixture", host, "--persist", "--apply", "--include-pinned")
    check("applying" in out and "effective hard affinity by vcpu" in out, out)
    out, _ = run("balance", "--fixture", host, "--include-pinned")
    check(out.rstrip().endswith("0 vcpus to re-pin in 4 domains; nothing applied (use --apply)"), out)
    out, _ = run("balance", "--fixture", host)
    check(out.rstrip().endswith("0 vcpus to re-pin in 4 domains (17 pinned vcpus left alone); nothing applied "
                                "(use --apply)"), out)
    listing, _ = run("list", "--fixture", host, "--json")
    for name in ("Domain-0", "web", "db", "analytics-batch-worker-with-a-long-name"):
        hard = [v["hard"] for v in json.loads(listing) if v["domain"] == name]
        check(len(set(hard)) == len(hard) and all(re.fullmatch(r"\d+", h) for h in hard), f"{name}: {hard}")


# ---- hostile input: nothing crashes, nothing is lost, nothing lies ----

def write(path, text):
    with open(path, "w") as f:
        f.write(text)


# ---- a host like Linux's: no soft affinity, vcpus confined by cpusets ----

LINUX_LIKE = """host cpus=4 soft=no limit=cpuset system=0
domain 4101 web vcpus=3 uuid=4a5b6c7d-1111-2222-3333-444455556666
vcpu 0 state=running cpu=1 time_ns=5000000 wait_ns=700 hard=0-3 limit=2-3
vcpu 1 state=blocked cpu=2 time_ns=4000000 wait_ns=0 hard=2-3 limit=2-3
domain 4200 "odd (name)" vcpus=2
problem "its vcpu threads are not named"
vcpu 0 state=unknown hard=none limit=none
vcpu 1 state=unknown hard=none limit=none
"""


@test
def linux_like_hosts():
    host = fixture_file(LINUX_LIKE)
    out, _ = run("list", "--fixture", host)
    rows = out.splitlines()
    check(rows[0].endswith("Affinity (Hard [cpuset])"), f"header: {rows[0]!r}")
    check(rows[1].split()[6:] == ["all", "[cpuset", "2-3]"], f"the cpuset shows where it narrows: {rows[1]!r}")
    check(rows[2].split()[6:] == ["2-3"], f"and not where it does not: {rows[2]!r}")
    check(rows[3].split()[4] == "--p" and rows[3].split()[6:] == ["all"], f"offline vcpu: {rows[3]!r}")
    check("vcpus unknown: its vcpu threads are not named" in rows[4] and len(rows) == 5, f"the problem domain: {out!r}")
    vcpus = json.loads(run("list", "--fixture", host, "--json")[0])
    check(vcpus[0]["limit"] == "2-3" and vcpus[0]["effective"] == "2-3" and vcpus[0]["wait_ns"] == 700, vcpus[0])
    check(vcpus[3]["problem"] == "its vcpu threads are not named" and vcpus[3]["hard"] == "", vcpus[3])
    # A pin outside the cpuset, a soft map, a pin of the problem domain: refused, naming why.
    _, err = run("pin", "--fixture", host, "web", "1", "0-1", code=1)
    check("holds no online CPU of the vcpu's cpuset 2-3" in err, err)
    _, err = run("pin", "--fixture", host, "web", "1", "2", "3", code=1)
    check("no soft affinity" in err, err)
    _, err = run("pin", "--fixture", host, "odd (name)", "0", "1", code=1)
    check("its vcpus cannot be pinned: its vcpu threads are not named" in err, err)
    out, _ = run("pin", "--fixture", host, "web", "1", "3")
    check(out.splitlines()[1:] == ["vcpu 1: 3"], f"no soft column: {out!r}")
    # The balancer keeps to the cpusets and skips what it cannot see.
    out, _ = run("balance", "--fixture", host)
    check("domain 4200 (odd (name)): skipped: its vcpu threads are not named" in out, out)
    check(all(a.split("-> ")[-1] in ("2", "3") for a in out.splitlines() if "->" in a), out)
    # Helper threads need the linux backend: a usage error elsewhere.
    _, err = run("list", "--fixture", host, "--threads", code=2)
    check("--threads needs the linux backend" in err, err)
    _, err = run("pin", "--fixture", host, "--emulator", "web", "1", code=2)
    check("--emulator needs the linux backend" in err, err)


def fixture_file(text, name="host.txt"):
    path = os.path.join(tempfile.mkdtemp(prefix="vcpumap-fixture-"), name)
    write(path, text)
    return path


@test
def hostile_fixtures():
    """Two lines that used to divide by zero, allocate gigabytes or wrap: one error line each."""
    cases = [
        ("host cpus=4 threads_per_core=0\n", "fixture line 1: host: threads_per_core is 0: it must be 1 to 65536"),
        ("host cpus=1000000000\n", "fixture line 1: cpus 1000000000 is beyond the limit of 65536"),
        ("host cpus=4\ndomain 1 a vcpus=4294967298\n", "fixture line 2: vcpus 4294967298 is beyond the limit of 16384"),
        ("host cpus=4\ndomain 4294967296 a\n", "fixture line 2: domain id 4294967296 is beyond the limit of 4294967295"),
        ("host cpus=4\ndomain 1 a\nvcpu 0 time_ns=99999999999999999999\n",
         "fixture line 3: time_ns 99999999999999999999 is beyond the limit of 9223372036854775807"),
        ("host cpus=4\ndomain 1 a vcpus=2\nvcpu 0 time_ns=9223372036854775807\nvcpu 1 time=1\n",
         "fixture line 2: the vcpus' CPU times add up past the limit"),
        ("host cpus=0\ndomain 1 a vcpus=2\n\x1b[2J\n", "fixture line 3: unknown statement '\\x1b[2J'"),
    ]
    for text, needle in cases:
        path = fixture_file(text)
        for tool, extra in (("list", []), ("matrix", ["a"]), ("balance", []), ("pin", ["a", "0", "1"])):
            code, out, err = run_code(tool, "--fixture", path, *extra)
            check(code == 1 and len(err.splitlines()) == 1 and needle in err and "\x1b" not in err,
                  f"{tool} on {text!r}: exit {code}, stderr {err!r}")
    # A host of no CPUs reads, lists and pictures without undefined behaviour.
    path = fixture_file("host cpus=0\ndomain 1 a vcpus=2\n")
    run("list", "--fixture", path)
    run("matrix", "--fixture", path, "a")


HOSTILE_NAMES = {
    # name as the fixture spells it: what a guest owner might call a domain
    2: r'"osc\x1b]0;pwned\x07"',
    3: r'"csi\x1b[2J\x1b[31mred"',
    4: r'"bidi\xe2\x80\xaeevil"',
    5: r'"bad\xff\xfeutf8"',
    6: r'"c1\xc2\x9b2J"',
    7: r'"<svg>&amp;]]>--\"\\"',
    8: r'"tab\x09new\x0aline\x0dcr"',
}


def hostile_fixture():
    lines = ["host cpus=8 online=0-5", "node 0 0-3", "node 1 4-7"]
    for dom, name in HOSTILE_NAMES.items():
        lines += [f"domain {dom} {name} vcpus=2 flags=running", "vcpu 0 state=running cpu=1 hard=0-3", "vcpu 1 cpu=5"]
    return fixture_file("\n".join(lines) + "\n")


def check_inert(what, text):
    """No byte a terminal acts on: C0 controls but newline, DEL, C1 controls, invalid UTF-8, bidi."""
    try:
        decoded = text.encode("utf-8", "surrogateescape").decode("utf-8")
    except UnicodeDecodeError as e:
        raise AssertionError(f"{what}: not valid UTF-8: {e}: {text!r}")
    bad = [c for c in decoded if (ord(c) < 0x20 and c != "\n") or 0x7f <= ord(c) <= 0x9f
           or 0x202a <= ord(c) <= 0x202e or 0x2066 <= ord(c) <= 0x2069]
    check(not bad, f"{what}: raw control characters {bad!r} in {text!r}")


@test
def hostile_names():
    """Names chosen by guest owners reach the terminal escaped, JSON valid, SVG well formed."""
    host = hostile_fixture()
    for args in ([], ["--xm"]):
        out, err = run("list", "--fixture", host, *args)
        check_inert(f"vcpu-list {args}", out + err)
        check("osc\\x1b]0;pwned\\x07" in out and "bidi\\u202eevil" in out and "bad\\xff\\xfeutf8" in out, out)
    out, _ = run("list", "--fixture", host, "--json")
    check_inert("vcpu-list --json", out)
    names = [v["domain"] for v in json.loads(out)]
    check("osc\x1b]0;pwned\x07" in names and "bidi\u202eevil" in names and "bad\ufffd\ufffdutf8" in names
          and '<svg>&amp;]]>--"\\' in names, names)
    out, err = run("balance", "--fixture", host)
    check_inert("vcpu-balance", out + err)
    d = output_dir()
    for dom in HOSTILE_NAMES:
        out, err = run("matrix", "--fixture", host, str(dom))
        check_inert(f"vcpu-matrix {dom}", out + err)
        path = os.path.join(d, f"matrix-hostile-{dom}.svg")
        out, err = run("matrix", "--fixture", host, "--svg", path, str(dom))
        check_inert(f"vcpu-matrix --svg {dom}", out + err)
        check_svg(path, f"domain {dom} (")
        code, out, err = run_code("pin", "--fixture", host, "--persist", str(dom), "0", "7")  # CPU 7 is offline
        check(code == 1 and len(err.splitlines()) == 1 and f"domain {dom} (" in err, err)
        check_inert(f"vcpu-pin error {dom}", out + err)
    # The hostile names survive a write back byte for byte.
    run("pin", "--fixture", host, "--persist", "2", "1", "4")
    out, _ = run("list", "--fixture", host, "--json")
    check(sorted(v["domain"] for v in json.loads(out)) == sorted(names), "names changed by --persist")


@test
def persist_write_failure_keeps_the_file():
    """A write cut short (a file size limit, as a full disk) exits 1 and leaves the file as it was."""
    import resource
    host = scratch_fixture()
    before = read(host)

    def small_files():
        resource.setrlimit(resource.RLIMIT_FSIZE, (200, resource.RLIM_INFINITY))

    code, out, err = run_code("pin", "--fixture", host, "--persist", "web", "all", "8-9", preexec_fn=small_files)
    check(code == 1 and len(err.splitlines()) == 1 and "cannot write; the file is unchanged: File too large" in err,
          f"exit {code}, stderr {err!r}")
    check(read(host) == before, "the fixture changed")
    check(os.listdir(os.path.dirname(host)) == ["host.txt"], f"left behind: {os.listdir(os.path.dirname(host))}")


@test
def persist_concurrent_pins_take_turns():
    """Twenty vcpu-pin --persist at once on one file: every pin is there at the end."""
    n = 20
    host = fixture_file("host cpus=8\ndomain 1 g vcpus=%d\n" % n + "".join(f"vcpu {v}\n" for v in range(n)))
    procs = [subprocess.Popen([TOOLS["pin"], "--fixture", host, "--persist", "g", str(v), str(v % 8)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) for v in range(n)]
    for p in procs:
        _, err = p.communicate(timeout=120)
        check(p.returncode == 0, f"a pin failed: {err!r}")
    out, _ = run("list", "--fixture", host, "--json")
    hard = {v["vcpu"]: v["hard"] for v in json.loads(out)}
    check(hard == {v: str(v % 8) for v in range(n)}, f"pins lost: {hard}")


@test
def persist_keeps_an_unchanged_file():
    """--dry-run, a reading tool and a failed, rolled back pin never rewrite the file (its comments stay)."""
    host = fixture_file("# comments the writer would drop\n" + read(BIG))
    before = read(host)
    run("pin", "--fixture", host, "--persist", "--dry-run", "web", "all", "8-9")
    run("list", "--fixture", host, "--persist")
    run("balance", "--fixture", host, "--persist")
    code, _, _ = run_code("pin", "--fixture", host, "--persist", "web", "all", "8-9", env={"VCPUMAP_MOCK_FAIL_CALL": "12"})
    check(code == 1, "the injected failure did not fail the pin")
    check(read(host) == before, "the fixture was rewritten")


@test
def changing_tools_need_a_real_backend():
    """auto without a usable Xen: reading tools fall back to the demo host, changing ones refuse."""
    if os.path.exists("/dev/xen/privcmd"):
        raise Skip("/dev/xen/privcmd exists: auto would use Xen")
    for tool, args in (("pin", ["xperf2", "0", "1"]), ("pin", ["xperf2", "all", "1"]), ("balance", ["--apply"]),
                       ("set", ["xperf2", "2"])):
        code, out, err = run_code(tool, *args)
        check(code == 1 and out == "" and len(err.splitlines()) == 1 and "nothing changed" in err
              and "--backend=mock" in err, f"{tool} {args}: exit {code}, stdout {out!r}, stderr {err!r}")
    for tool, args in (("pin", ["--dry-run", "xperf2", "0", "1"]), ("pin", ["xperf2"]), ("balance", []), ("list", [])):
        _, err = run(tool, *args)
        check("using the built-in demo host" in err, f"{tool} {args}: {err!r}")
    run("pin", "--backend=mock", "xperf2", "0", "1")  # explicitly the mock: fine


@test
def pins_leave_other_vcpus_alone():
    """On a host whose CPU ids have holes, pinning some vcpus never checks the others' maps,
    and a rollback restores exactly what was read."""
    host = fixture_file("host cpus=8 present=0-5\ndomain 1 g vcpus=3\nvcpu 0\nvcpu 1\nvcpu 2\n"
                        "domain 2 h vcpus=2\nvcpu 0\nvcpu 1\n")
    out, _ = run("pin", "--fixture", host, "--dry-run", "g", "1-2", "1")
    check(out.count("(changed)") == 2, out)
    out, _ = run("pin", "--fixture", host, "--persist", "g", "1-2", "1")
    check(out.splitlines()[1:] == ["vcpu 1: 1 / 1", "vcpu 2: 1 / 1"], out)
    listing, _ = run("list", "--fixture", host, "--json")
    check([v["hard"] for v in json.loads(listing) if v["domain"] == "g"] == ["0-7", "1", "1"], listing)
    # balance fails on h after pinning g: g is put back to what was read (CPUs 6-7 absent and all).
    before = read(host)
    messages = []
    for k in range(1, 40):
        code, out, err = run_code("balance", "--fixture", host, "--persist", "--apply", env={"VCPUMAP_MOCK_FAIL_CALL": str(k)})
        if code == 0:
            break
        check("restoring" not in err and read(host) == before, f"K={k}: {err!r}")
        messages.append(err)
    check(any("domain 1 restored" in m for m in messages), messages)


@test
def balance_names_each_domain_once():
    out, _ = run("balance", "--fixture", BIG, "web", "4", "web")
    check(out.count("domain 4 (web)") == 1 and "in 1 domain " in out, out)


@test
def write_errors_are_failures():
    """A full disk on standard output is exit 1 with a message, never a silent success."""
    if not os.path.exists("/dev/full"):
        raise Skip("no /dev/full")
    for tool, args in (("list", ["--backend=mock", "--json"]), ("list", ["--backend=mock"]),
                       ("matrix", ["--backend=mock", "0"]), ("cpulist", ["0-3"])):
        with open("/dev/full", "w") as full:
            p = subprocess.run([TOOLS[tool], *args], stdout=full, stderr=subprocess.PIPE, text=True, timeout=60)
        check(p.returncode == 1 and "No space left on device" in p.stderr and len(p.stderr.splitlines()) == 1,
              f"{tool} {args} > /dev/full: exit {p.returncode}, stderr {p.stderr!r}")


@test
def cpulist_costs_what_it_reads():
    """800 stride items over 2^24 CPUs: linear in the words, well under the old 15 s."""
    import time
    text = ",".join(["0-16777215:1/2"] * 800)
    start = time.monotonic()
    out, _ = run("cpulist", text)
    check(time.monotonic() - start < 10, f"took {time.monotonic() - start:.1f} s")
    check("count  8388608 of 16777216" in out, out[-200:])


# ---- Xen: cpupools, online vcpus, NUMA node affinity and memory, SMT ----

def vcpu_states(host, domain):
    """{vcpu: state} of a domain, as vcpu-list --json reads it from a fixture."""
    out, _ = run("list", "--fixture", host, "--json", domain)
    return {v["vcpu"]: v["state"] for v in json.loads(out)}


@test
def set_persists():
    """vcpu-set COUNT and --vcpus change the online vcpus; a following vcpu-list shows it."""
    host = scratch_fixture(XEN)
    check(vcpu_states(host, "db") == {0: "running", 1: "blocked", 2: "blocked", 3: "offline"}, vcpu_states(host, "db"))
    out, err = run("set", "--fixture", host, "--persist", "db", "2")
    check(err == "" and out == "domain 2 (db): online vcpus 0-2, asked 0-1 (vcpu 2 to go offline)\n"
          "domain 2 (db): online vcpus now 0-1\n", out)
    check(vcpu_states(host, "db") == {0: "running", 1: "blocked", 2: "offline", 3: "offline"}, vcpu_states(host, "db"))
    listing, _ = run("list", "--fixture", host, "db")
    rows = listing.splitlines()[1:]
    check([r.split()[3:5] for r in rows] == [["7", "r--"], ["8", "-b-"], ["-", "--p"], ["-", "--p"]], listing)
    # An exact set: vcpu 3 comes online (on a CPU of its pool: Xen gives an online vcpu one), 1 goes.
    out, _ = run("set", "--fixture", host, "--persist", "db", "--vcpus", "0,3")
    check(out.splitlines()[0] == "domain 2 (db): online vcpus 0-1, asked 0,3 (vcpu 1 to go offline, vcpu 3 to come online)", out)
    states = vcpu_states(host, "db")
    check(states[1] == "offline" and states[2] == "offline" and states[3] != "offline", states)
    vcpus = json.loads(run("list", "--fixture", host, "--json", "db")[0])
    check(vcpus[3]["cpu"] is not None and int(vcpus[3]["cpu"]) in range(0, 10), f"vcpu 3 on a CPU of Pool-0: {vcpus[3]}")
    # The same again: no change, and the file is not rewritten.
    before = read(host)
    out, _ = run("set", "--fixture", host, "--persist", "db", "--vcpus", "0,3")
    check("(no change)" in out and read(host) == before, out)
    # COUNT as xl: every vcpu.
    run("set", "--fixture", host, "--persist", "db", "4")
    check(set(vcpu_states(host, "db").values()) <= {"running", "blocked", "runnable"}, vcpu_states(host, "db"))
    # By id, and --json.
    out, _ = run("set", "--fixture", host, "--persist", "--json", "2", "1")
    obj = json.loads(out)
    check(obj == {"domain": "db", "id": 2, "max_vcpus": 4, "online_before": "0-3", "asked": "0", "to_offline": "1-3",
                  "to_online": "", "online_after": "0", "dry_run": False}, obj)


@test
def set_dry_run_changes_nothing():
    host = scratch_fixture(XEN)
    before = read(host)
    out, _ = run("set", "--fixture", host, "--persist", "--dry-run", "db", "1")
    check(out == "domain 2 (db): dry run, nothing changed: online vcpus 0-2, asked 0 (vcpus 1-2 would go offline)\n", out)
    out, _ = run("set", "--fixture", host, "--persist", "--dry-run", "--json", "db", "--vcpus", "all")
    check(json.loads(out) == {"domain": "db", "id": 2, "max_vcpus": 4, "online_before": "0-2", "asked": "0-3",
                              "to_offline": "", "to_online": "3", "online_after": None, "dry_run": True}, out)
    for args in (["db", "0"], ["db", "9"], ["web", "--vcpus", "5"]):
        run("set", "--fixture", host, "--persist", "--dry-run", *args, code=1)
    check(read(host) == before, "--dry-run changed the host")


@test
def set_all_or_nothing():
    """A failure at any backend call before the xenstore write changes nothing."""
    every_failure_point_of(XEN, "set", ["db", "1"], r"domain 2 \(db\): ")


@test
def list_pools_and_node_affinity():
    """vcpu-list names the pool of a domain on a host of several pools, where it narrows the
    affinity its CPUs, and a node affinity that is not every node; --json carries them."""
    out, _ = run("list", "--fixture", XEN)
    rows = {(r.split()[0], r.split()[2]): r for r in out.splitlines()[1:]}
    check(rows[("Domain-0", "0")].endswith("all / all [cpupool Pool-0: 0-9]"), rows[("Domain-0", "0")])
    check(rows[("web", "0")].endswith("10-11 / all [cpupool fast] [node 0]"), rows[("web", "0")])
    check(rows[("web", "1")].endswith("8-11 / all [cpupool fast: 10-11] [node 0]"), rows[("web", "1")])
    check(rows[("batch", "0")].endswith("all / all [cpupool Pool-0: 0-9]"), "every node: no node note")
    vcpus = json.loads(run("list", "--fixture", XEN, "--json")[0])
    by = {(v["domain"], v["vcpu"]): v for v in vcpus}
    check(by[("web", 0)]["pool"] == 1 and by[("web", 0)]["pool_name"] == "fast" and by[("web", 0)]["limit"] == "10-11", by[("web", 0)])
    check(by[("web", 1)]["effective"] == "10" and by[("web", 0)]["node_affinity"] == "0", by[("web", 1)])
    check(by[("db", 0)]["effective"] == "0-5" and by[("db", 1)]["effective"] == "0-9", "soft node:0 within Pool-0")
    check(by[("batch", 0)]["node_affinity"] == "0-1" and by[("batch", 0)]["pool"] == 0, by[("batch", 0)])
    # The pools: xl cpupool-list -c and more; JSON.
    pools = json.loads(run("list", "--fixture", XEN, "--pools", "--json")[0])
    check(pools == [{"id": 0, "name": "Pool-0", "scheduler": "credit2", "cpus": "0-9", "domains": 3},
                    {"id": 1, "name": "fast", "scheduler": "credit", "cpus": "10-11", "domains": 1}], pools)
    # A host without pools: no pool notes or keys, an empty pool list.
    check(json.loads(run("list", "--fixture", BIG, "--pools", "--json")[0]) == [], "BIG has no pools")
    out, _ = run("list", "--backend=mock", "--pools")
    check(out == "this host has no cpupools\n", out)
    # One pool only: the pool is not named per vcpu (it holds every domain).
    one = fixture_file("host cpus=4 limit=cpupool\npool 0 Pool-0 cpus=0-3\ndomain 1 g vcpus=1\nvcpu 0 cpu=1\n")
    out, _ = run("list", "--fixture", one)
    check("cpupool" not in out and out.splitlines()[1].endswith("all / all"), out)
    check(json.loads(run("list", "--fixture", one, "--json")[0])[0]["pool"] == 0, "pool key with one pool")


@test
def list_host_json():
    host = json.loads(run("list", "--fixture", XEN, "--host", "--json")[0])
    check(host["cpus"] == 12 and host["online"] == "0-10" and host["threads_per_core"] == 2, host)
    check(host["nodes"] == [{"id": 0, "cpus": "0-5", "memory": 17179869184, "free": 4294967296},
                            {"id": 1, "cpus": "6-11", "memory": 17179869184, "free": 16106127360}], host["nodes"])
    check(host["caps"] == {"soft_affinity": True, "vcpu_limit": "cpupool", "set_online": True, "node_affinity": True},
          host["caps"])
    check([p["name"] for p in host["pools"]] == ["Pool-0", "fast"], host["pools"])
    topo = host["cpu_topology"]
    check(len(topo) == 12 and topo[11] == {"cpu": 11, "online": False, "socket": 1, "core": 2, "node": 1}, topo[11])
    check([t["core"] for t in topo[:6]] == [0, 0, 1, 1, 2, 2], "consecutive CPUs share a core")
    big = json.loads(run("list", "--fixture", BIG, "--host", "--json")[0])
    check(all(n["memory"] is None for n in big["nodes"]) and big["pools"] == [] and big["caps"]["vcpu_limit"] is None, big)
    demo = json.loads(run("list", "--backend=mock", "--host", "--json")[0])
    check(demo["cpus"] == 4 and demo["caps"]["set_online"] is False, demo)


@test
def balance_keeps_pools_and_nodes():
    """vcpu-balance keeps each domain in its cpupool (the limit rows) and on the nodes of its
    node affinity, saying why; --any-node drops the node affinity, never the pool."""
    def targets(out, domain):
        lines = out.splitlines()
        start = next(i for i, l in enumerate(lines) if f"({domain})" in l)
        cpus = set()
        for l in lines[start + 1:]:
            if not l.startswith("  vcpu "):
                break
            cpus.add(l.split()[-1] if "->" in l else l.split()[3])
        return lines[start], cpus

    out, _ = run("balance", "--fixture", XEN)
    head, cpus = targets(out, "web")  # hard 10-11 and 8-11: pinned (not "all"), so web stays
    check(head == "domain 1 (web): stays: vcpus 0-1 pinned, left as they are (--include-pinned moves them)", head)
    out, _ = run("balance", "--fixture", XEN, "--include-pinned")
    head, cpus = targets(out, "web")
    check(cpus == {"10"}, f"web stays in pool fast's online CPUs: {cpus}")
    check("within its cpupool 1 (fast): online CPUs 10" in head and "node affinity (node 0) ignored" in head, head)
    head, cpus = targets(out, "db")
    check(head == "domain 2 (db): 4 vcpus on node 0, the least loaded it may use (within its cpupool 0 (Pool-0): online "
                  "CPUs 0-9; on its node affinity: node 0)", head)
    check(cpus <= {str(c) for c in range(6)}, f"db on node 0: {cpus}")
    out, _ = run("balance", "--fixture", XEN, "--any-node", "--include-pinned")
    head, cpus = targets(out, "db")
    check("on node 1" in head and "node affinity (node 0) ignored: --any-node" in head, head)
    check(cpus <= {"6", "7", "8", "9"}, f"db within Pool-0 on node 1: {cpus}")
    check(targets(out, "web")[1] == {"10"}, "--any-node keeps the pool")
    # Applied, the pins hold.
    host = scratch_fixture(XEN)
    run("balance", "--fixture", host, "--persist", "--apply", "--include-pinned")
    vcpus = json.loads(run("list", "--fixture", host, "--json")[0])
    check([v["hard"] for v in vcpus if v["domain"] == "web"] == ["10", "10"], vcpus)
    check(all(int(v["hard"]) < 6 for v in vcpus if v["domain"] == "db"), vcpus)


@test
def matrix_smt_siblings():
    """On a host with SMT the grid brackets each core's threads; without, no such line."""
    out, _ = run("matrix", "--fixture", XEN, "db")
    lines = out.splitlines()
    cores = [l for l in lines if l.startswith("cores")]
    check(cores == ["cores   [][][] [][][]"], lines)
    out, _ = run("matrix", "--backend=mock", "0")
    check(not any(l.startswith("cores") for l in out.splitlines()), out)
    # Four threads a core; a CPU that is not present has no core.
    host = fixture_file("host cpus=10 present=0-8 threads_per_core=4 cores_per_socket=2\n"
                        "domain 1 g vcpus=1\nvcpu 0 cpu=5 hard=1,5\n")
    out, _ = run("matrix", "--fixture", host, "--hard", "g")
    check([l for l in out.splitlines() if l.startswith("cores")] == ["cores   [--][--] | |"], out)
    path = os.path.join(output_dir(), "matrix-xen-smt.svg")
    run("matrix", "--fixture", XEN, "--svg", path, "db")
    root, texts = check_svg(path, "domain 2 (db): effective affinity")
    check("2 threads per core" in texts, texts)
    lines = [l for l in root.iter("{http://www.w3.org/2000/svg}line")]
    check(len(lines) == 6, f"a line over each of the 6 cores: {len(lines)}")


@test
def hostile_pool_names():
    """Pool names come from xenstore: escaped in every output, valid JSON."""
    host = fixture_file("host cpus=4 limit=cpupool node_affinity=yes vcpu_set=yes\npool 0 Pool-0 cpus=0-1\n"
                        "pool 7 \"p\\x1b]0;pwned\\x07\\xe2\\x80\\xaeevil\\xff\" sched=null cpus=2-3\n"
                        "domain 1 g vcpus=2 pool=7\nvcpu 0 cpu=2\nvcpu 1 cpu=3\n")
    outs = []
    for args in ([], ["--pools"], ["--host"], ["--xm"]):
        out, err = run("list", "--fixture", host, *args)
        check_inert(f"vcpu-list {args}", out + err)
        outs.append(out)
    check("p\\x1b]0;pwned\\x07\\u202eevil\\xff" in outs[1] and "[cpupool p\\x1b]0;pwned" in outs[0], outs)
    for args in (["--json"], ["--pools", "--json"], ["--host", "--json"]):
        out, _ = run("list", "--fixture", host, *args)
        check_inert(f"vcpu-list {args}", out)
        json.loads(out)
    check(json.loads(run("list", "--fixture", host, "--pools", "--json")[0])[1]["name"] == "p\x1b]0;pwned\x07\u202eevil\ufffd",
          "the name as JSON")
    out, err = run("balance", "--fixture", host)
    check_inert("vcpu-balance", out + err)
    code, out, err = run_code("pin", "--fixture", host, "g", "0", "0-1")
    check(code == 1 and "cpupool 7 (p\\x1b]0;pwned" in err, err)
    check_inert("vcpu-pin", out + err)
    # Domain names in vcpu-set's output: escaped, valid JSON.
    names = hostile_fixture()
    with open(names) as f:
        text = f.read().replace("host cpus=8 online=0-5", "host cpus=8 online=0-5 vcpu_set=yes")
    write(names, text)
    for dom in HOSTILE_NAMES:
        out, err = run("set", "--fixture", names, "--persist", str(dom), "1")
        check_inert(f"vcpu-set {dom}", out + err)
        check(f"domain {dom} (" in out and "online vcpus now 0" in out, out)
        out, err = run("set", "--fixture", names, "--json", "--dry-run", str(dom), "2")
        check_inert(f"vcpu-set --json {dom}", out + err)
        check(json.loads(out)["to_online"] == "1", out)
    code, out, err = run_code("set", "--fixture", names, "3", "9")
    check(code == 1 and "domain 3 (csi\\x1b[2J" in err and "but it has 2 vcpus" in err, err)
    check_inert("vcpu-set error", out + err)


# ---- vcpu-pin lists pins; warns as xl does ----

@test
def pin_lists_pins():
    """vcpu-pin DOMAIN [VCPUS] lists the pins (virsh vcpupin): hard / soft / effective, as vcpu-list reads them."""
    out, err = run("pin", "--backend=mock", "xperf2", "1")
    check(err == "" and out == "domain 3 (xperf2): affinity (hard / soft / effective):\nvcpu 1: all / all / 0-3\n", out)
    out, _ = run("pin", "--fixture", BIG, "db", "1-2")
    check(out.splitlines()[1:] == ["vcpu 1: 11 / all / 11", "vcpu 2: 12 / 12-13 / 12"], out)
    for fixture, domain in ((BIG, "web"), (BIG, "analytics-batch-worker-with-a-long-name"), (XEN, "db"), (XEN, "web")):
        pins = json.loads(run("pin", "--fixture", fixture, "--json", domain)[0])
        listed = [v for v in json.loads(run("list", "--fixture", fixture, "--json", domain)[0])]
        check([{k: v[k] for k in ("domain", "id", "vcpu", "state", "hard", "soft", "limit", "effective")} for v in listed]
              == pins, f"{domain}: vcpu-pin --json {pins} vs vcpu-list --json {listed}")
    check(json.loads(run("pin", "--fixture", BIG, "--json", "empty")[0]) == [], "no vcpus: an empty array")
    out, _ = run("pin", "--fixture", BIG, "empty")
    check(out == "domain 30 (empty): no vcpus\n", out)
    # Names chosen by guest owners: escaped on the terminal, valid JSON.
    names = hostile_fixture()
    for dom in HOSTILE_NAMES:
        out, err = run("pin", "--fixture", names, str(dom))
        check_inert(f"vcpu-pin {dom}", out + err)
        out, err = run("pin", "--fixture", names, "--json", str(dom))
        check_inert(f"vcpu-pin --json {dom}", out + err)
        check(json.loads(out)[1]["hard"] == "0-7", out)
    # Listing changes nothing.
    host = scratch_fixture()
    before = read(host)
    run("pin", "--fixture", host, "--persist", "web")
    check(read(host) == before, "listing rewrote the fixture")


@test
def pin_lists_pins_without_soft_affinity():
    """Linux: hard / effective, the cpuset where it narrows the hard affinity; a domain whose
    vcpus cannot be seen is a clear error."""
    host = fixture_file(LINUX_LIKE)
    out, _ = run("pin", "--fixture", host, "web")
    check(out == "domain 4101 (web): affinity (hard [cpuset] / effective):\n"
                 "vcpu 0: all [cpuset 2-3] / 2-3\nvcpu 1: 2-3 / 2-3\nvcpu 2: all / 0-3 (offline)\n", out)
    pins = json.loads(run("pin", "--fixture", host, "--json", "web", "0")[0])
    check(pins == [{"domain": "web", "id": 4101, "vcpu": 0, "state": "running", "hard": "0-3", "soft": None,
                    "limit": "2-3", "effective": "2-3"}], pins)
    for args in ([], ["0"], ["--json"]):
        code, out, err = run_code("pin", "--fixture", host, "odd (name)", *args)
        check(code == 1 and out == "" and err == "vcpu-pin: domain 4200 (odd (name)): its vcpus cannot be seen: "
              "its vcpu threads are not named\n", f"{args}: exit {code}, {out!r}, {err!r}")


@test
def pin_warns_of_unreachable_soft():
    """A soft map with no CPU of the resulting hard map: exit 0, xl's warning on stderr naming
    domain, vcpus, soft and hard; for --dry-run too; never for a soft map that overlaps."""
    host = scratch_fixture()
    want = ("vcpu-pin: warning: domain 4 (web): vcpus 0-1: soft affinity 8-9 has no CPU in hard affinity 2-3: all CPUs "
            "in its soft affinity are unreachable, only the hard affinity will be considered for scheduling\n")
    for extra in (["--dry-run"], []):
        out, err = run("pin", "--fixture", host, "--persist", *extra, "web", "0-1", "2-3", "8-9")
        check(err == want, f"{extra}: {err!r}")
    check(run("list", "--fixture", host, "web")[0].splitlines()[1].endswith("2-3 / 8-9"), "the pin was applied")
    # Judged on the resulting hard map: db's vcpu 0 keeps hard 10; one vcpu: "vcpu 0".
    _, err = run("pin", "--fixture", host, "db", "0", "-", "12-13")
    check(err.startswith("vcpu-pin: warning: domain 7 (db): vcpu 0: soft affinity 12-13 has no CPU in hard affinity 10:"),
          err)
    # Vcpus of different hard maps: a line each.
    _, err = run("pin", "--fixture", host, "--dry-run", "0", "all", "-", "4-5")
    check([l.split(": soft")[0] for l in err.splitlines()] == [
        "vcpu-pin: warning: domain 0 (Domain-0): vcpu 0", "vcpu-pin: warning: domain 0 (Domain-0): vcpu 1",
        "vcpu-pin: warning: domain 0 (Domain-0): vcpu 2", "vcpu-pin: warning: domain 0 (Domain-0): vcpu 3"], err)
    for args in (["web", "0-1", "2-3", "3-4"], ["web", "2", "8-9"], ["web", "3", "-", "all"], ["db", "1", "11", "-"]):
        _, err = run("pin", "--fixture", host, *args)
        check(err == "", f"{args}: {err!r}")
    _, err = run("pin", "--fixture", hostile_fixture(), "--dry-run", "2", "0", "1", "2")
    check("domain 2 (osc\\x1b]0;pwned\\x07)" in err, err)
    check_inert("the warning", err)


# ---- vcpu-balance leaves pinned vcpus alone ----

@test
def balance_leaves_pinned_vcpus():
    """A domain pinned 1:1 on node 1 stays there; --include-pinned moves it; a domain with
    some pinned vcpus has the others balanced around them, and each domain's line says why."""
    out, _ = run("balance", "--fixture", BIG)
    lines = out.splitlines()
    check("domain 7 (db): stays: vcpus 0-3 pinned, left as they are (--include-pinned moves them)" in lines, out)
    moves = [l for l in lines if l.startswith("  vcpu ") and "->" in l]
    check(len(moves) == 1 and moves[0].startswith("  vcpu 2: hard all -> "), out)
    head = next(l for l in lines if "(analytics" in l)
    check(re.fullmatch(r"domain 12 \(analytics-batch-worker-with-a-long-name\): 1 vcpu on node \d, the least loaded it "
                       r"may use; vcpus 0-1 pinned, left as they are \(--include-pinned moves them\)", head), head)
    out, _ = run("balance", "--fixture", BIG, "--include-pinned", "db")
    check(out.splitlines()[0] == "domain 7 (db): 4 vcpus on node 0, the least loaded it may use; pins of vcpus 0-3 "
                                 "overridden: --include-pinned", out)
    # Applied: db stays 1:1 on node 1 (and is not even re-pinned); --include-pinned moves it.
    host = scratch_fixture(BIG)
    out, _ = run("balance", "--fixture", host, "--persist", "--apply")
    check([l.split(":")[0] for l in out.splitlines() if "effective hard affinity" in l]
          == ["domain 12 (analytics-batch-worker-with-a-long-name)"], out)
    hard = lambda: [v["hard"] for v in json.loads(run("list", "--fixture", host, "--json", "db")[0])]
    check(hard() == ["10", "11", "12", "13"], hard())
    run("balance", "--fixture", host, "--persist", "--apply", "--include-pinned", "db")
    check(all(int(h) < 8 for h in hard()), f"moved to node 0: {hard()}")
    # Pinned means xl's "hard is not all" (HostInfo::is_pinned, as vcpu-list --prometheus says):
    # a vcpu confined only by its cpupool is not pinned (db, hard all in Pool-0); web's hard
    # 10-11, its pool's CPUs, is (xl shows 10-11).
    out, _ = run("balance", "--fixture", XEN, "db")
    check("pinned" not in out and "hard all -> 3" in out, out)
    out, _ = run("balance", "--fixture", XEN, "web")
    check("stays: vcpus 0-1 pinned" in out, out)


# ---- cpulist: options anywhere, a host on demand ----

@test
def cpulist_options_anywhere():
    """Options after a TEXT apply to every TEXT (they were silently ignored); '--' ends them."""
    out, _ = run("cpulist", "0-3", "--universe", "8")
    check("count  4 of 8" in out and "yn     yyyy----" in out, out)
    out, _ = run("cpulist", "all", "^0", "--universe", "4", "--compat")
    check(out.count("count  ") == 2 and "list   0-3\n" in out and "list   1-3\n" in out, out)
    out, _ = run("cpulist", "--universe", "8", "--", "1")
    check("count  1 of 8" in out, out)
    out, _ = run("cpulist", "ff", "--from", "hex")
    check("list   0-7" in out, out)
    code, _, err = run_code("cpulist", "--", "--universe")
    check(code == 1 and "cpulist \"--universe\"" in err, f"after '--' a TEXT: {err!r}")


@test
def cpulist_on_a_host():
    """Backend options make cpulist read the sets for that host: its nodes and CPU count."""
    out, err = run("cpulist", "--fixture", BIG, "node:1,^9", "all")
    check(err == "" and out.splitlines()[0] == "list   8,10-15" and "count  7 of 16" in out and "count  16 of 16" in out,
          out)
    out, _ = run("cpulist", "node:0", "--backend=mock", "--host")
    check("count  4 of 4" in out, out)
    out, _ = run("cpulist", "--from", "sysfs_mask", "ff00", "--fixture", BIG)
    check("list   8-15" in out, out)
    # Offline (no backend option): no host, as before.
    out, _ = run("cpulist", "0-3")
    check("count  4 of 4" in out, out)


# ---- vcpu-matrix at 8,192 CPUs ----

@test
def matrix_8192_labels():
    """A folded grid names each heading line on the left and gives every group of columns its
    node, socket and first CPU, each label whole and apart from the next."""
    for domain in ("db", "web", "0"):
        out, _ = run("matrix", "--fixture", HOST_8192, "--hard", domain)
        lines = out.splitlines()
        check("x 8192 CPUs (64 CPUs per column)" in lines[0], lines[0])
        heads = {l.split()[0]: l for l in lines[1:4]}
        heads["first CPU"] = heads.pop("first")
        check(set(heads) == {"node", "socket", "first CPU"}, lines[:5])
        # The groups' first columns, from the grid: runs of cells separated by one space.
        row = next(l for l in lines if l.startswith("vcpu "))
        start = len(re.match(r"vcpu \d+ +", row).group(0))
        cells = row[start:].split(" ")[:32]
        firsts, col = [], start
        for c in cells:
            firsts.append(col)
            col += len(c) + 1
        check(len(firsts) == 32 and all(len(c) == 4 for c in cells), f"32 groups of 4 columns: {cells}")
        for name, expected in (("node", [str(n) for n in range(32)]), ("socket", [str(n // 2) if n % 2 == 0 else None
                                                                                 for n in range(32)]),
                               ("first CPU", [str(256 * n) for n in range(32)])):
            line = heads[name]
            check(line.startswith(name), line)
            labels = [(m.start(), m.group(0)) for m in re.finditer(r"\S+", line[start:])]
            labels = [(start + at, text) for at, text in labels]
            want = [(firsts[i], e) for i, e in enumerate(expected) if e is not None]
            check(labels == want, f"{name}: {labels} != {want}")
            for (a, t), (b, _) in zip(labels, labels[1:]):
                check(a + len(t) < b, f"{name}: labels {t!r} and the next touch")
        check(all(len(l) < 200 for l in lines), "lines stay short")


# ---- pictures ----

def huge_fixture():
    """512 vcpus x 4096 CPUs: 4 sockets x 2 NUMA nodes of 512 CPUs, CPUs 2048-2111 offline."""
    out = ["host cpus=4096 online=0-2047,2112-4095 threads_per_core=2 cores_per_socket=512 sockets=4"]
    out += [f"node {n} {512 * n}-{512 * n + 511}" for n in range(8)]
    out.append("domain 1 huge vcpus=512 flags=running")
    for v in range(512):
        if v < 128:
            hard, cpu = f"{4 * v}-{4 * v + 3}", 4 * v          # 1:1 blocks on node 0
        elif v < 256:
            hard, cpu = "nodes:1-2", 512 + 8 * (v - 128)      # 128 vcpus share nodes 1-2
        elif v < 384:
            lo = 1536 + 12 * (v - 256)
            hard, cpu = f"{lo}-{lo + 7}", lo                  # a wider diagonal over nodes 3-5
        elif v < 448:
            hard, cpu = "all", 3072 + 8 * (v - 384)           # unpinned
        else:
            hard, cpu = "node:7", 3584 + 8 * (v - 448)        # 64 vcpus share node 7
        state = "offline" if v >= 500 else "running" if v % 7 == 0 else "blocked"
        out.append(f"vcpu {v} state={state} cpu={cpu} time_ns={v * 1000003} hard={hard}")
    return "\n".join(out) + "\n"


def check_svg(path, title, min_size=(300, 150)):
    root = ET.parse(path).getroot()  # well-formed, or this raises
    ns = "{http://www.w3.org/2000/svg}"
    check(root.tag == ns + "svg", f"root element {root.tag}")
    w, h = float(root.get("width")), float(root.get("height"))
    check(w >= min_size[0] and h >= min_size[1] and w <= 4000 and h <= 4000, f"size {w}x{h}")
    texts = " ".join("".join(t.itertext()) for t in root.iter(ns + "text"))
    check(title in texts, f"title {title!r} not in the SVG's text")
    check(len(list(root.iter(ns + "rect"))) > 10, "no cells")
    rsvg = shutil.which("rsvg-convert")
    if rsvg:
        png = path[:-4] + ".png"
        subprocess.run([rsvg, "-o", png, path], check=True, timeout=120)
        with open(png, "rb") as f:
            head = f.read(24)
        check(head[:8] == b"\x89PNG\r\n\x1a\n", "rsvg-convert wrote no PNG")
        pw, ph = struct.unpack(">II", head[16:24])
        check((pw, ph) == (round(w), round(h)), f"PNG {pw}x{ph} for an SVG of {w}x{h}")
    return root, texts


@test
def svg_demo():
    path = os.path.join(output_dir(), "matrix-demo.svg")
    out, _ = run("matrix", "--backend=mock", "--svg", path, "xperf2")
    check(out == f"domain 3 (xperf2): effective affinity of 4 vcpus x 4 CPUs written to {path}\n", out)
    root, texts = check_svg(path, "domain 3 (xperf2): effective affinity")
    check("vcpu 3" in texts and "node 0" in texts, texts)
    circles = list(root.iter("{http://www.w3.org/2000/svg}circle"))
    check(len(circles) == 4 + 2, f"a mark per online vcpu (+2 in the legend): {len(circles)}")


@test
def svg_big():
    for kind, domain in (("--hard", "web"), ("--soft", "analytics-batch-worker-with-a-long-name"), ("--effective", "db")):
        path = os.path.join(output_dir(), f"matrix-big-{kind[2:]}-{domain[:9]}.svg")
        run("matrix", "--fixture", BIG, kind, "--svg", path, domain)
        check_svg(path, f"{kind[2:]} affinity")


@test
def svg_huge():
    d = output_dir()
    fixture = os.path.join(d, "huge-host.txt")
    with open(fixture, "w") as f:
        f.write(huge_fixture())
    path = os.path.join(d, "matrix-512x4096.svg")
    run("matrix", "--fixture", fixture, "--hard", "--svg", path, "huge")
    check(os.path.getsize(path) < 2_000_000, f"SVG of {os.path.getsize(path)} bytes")
    _, texts = check_svg(path, "domain 1 (huge): hard affinity", (800, 600))
    check("512 vcpus (rows) × 4096 CPUs (columns), 8 NUMA nodes; heat map" in texts, texts[:300])
    check("node 7 · socket 3" in texts and "vcpu 496" in texts, "node and vcpu labels")
    # The terminal grid folds the CPUs too: one line per vcpu, 128 columns + gaps.
    out, _ = run("matrix", "--fixture", fixture, "--hard", "huge")
    rows = [r for r in out.splitlines() if r.startswith("vcpu ")]
    check(len(rows) == 512 and "(32 CPUs per column)" in out.splitlines()[0], out.splitlines()[0])
    check(all(len(r.split("  ")[0]) < 200 for r in rows), "grid lines stay short")


# ---- --prometheus ----

def prometheus_stable(text):
    """An exposition with the values that change from run to run (read time, duration) as X."""
    return re.sub(r"^(vcpumap_read_(?:duration|timestamp)_seconds) \S+$", r"\1 X", text, flags=re.M)


def prometheus_samples(text):
    """{(name, frozenset(labels)): value} of an exposition (the writer's own simple form)."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = re.fullmatch(r'([a-z_]+)(?:\{(.*)\})? (\S+)', line)
        check(m, f"not a sample line: {line!r}")
        labels = frozenset(re.findall(r'([a-z_]+)="((?:[^"\\]|\\.)*)"', m.group(2) or ""))
        out[(m.group(1), labels)] = float(m.group(3))
    return out


@test
def prometheus_golden():
    """The demo host and the Xen fixture (pools, node affinity, pins) as Prometheus reads them."""
    for name, args in (("prometheus-demo.txt", MOCK), ("prometheus-xen.txt", ["--fixture", XEN])):
        out, err = run("list", "--prometheus", *args)
        check(err == "", err)
        golden(name, prometheus_stable(out))
    promtool = shutil.which("promtool")
    if promtool:  # the real parser, when Debian's prometheus package is installed (suite prometheus needs it)
        for args in (MOCK, ["--fixture", XEN], ["--fixture", BIG], ["--fixture", hostile_fixture()]):
            out, _ = run("list", "--prometheus", *args)
            p = subprocess.run([promtool, "check", "metrics"], input=out, capture_output=True, text=True)
            check(p.returncode == 0 and p.stdout == "" and p.stderr == "",
                  f"promtool check metrics {args}: {p.returncode} {p.stdout} {p.stderr}")


@test
def prometheus_values():
    """Each vcpu's series agree with vcpu-list --json; a DOMAIN filter narrows them."""
    for args in (MOCK, ["--fixture", BIG], ["--fixture", XEN]):
        samples = prometheus_samples(run("list", "--prometheus", *args)[0])
        vcpus = json.loads(run("list", "--json", *args)[0])
        for v in vcpus:
            if "problem" in v:
                continue
            key = {("domain_id", str(v["id"])), ("vcpu", str(v["vcpu"]))}
            def one(name, extra=()):
                found = [val for (n, labels), val in samples.items() if n == name and key | set(extra) <= labels]
                check(len(found) == 1, f"{name} {key}: {found}")
                return found[0]
            check(abs(one("vcpumap_vcpu_cpu_seconds_total") - v["time_ns"] / 1e9) < 1e-9, f"time of {key}")
            check(one("vcpumap_vcpu_state", [("state", v["state"])]) == 1, f"state of {key}")
            info = [labels for (n, labels), _ in samples.items() if n == "vcpumap_vcpu_affinity_info" and key <= labels]
            check(len(info) == 1 and ("hard", v["hard"]) in info[0] and ("effective", v["effective"]) in info[0],
                  f"affinity of {key}: {info} vs {v}")
            if v["cpu"] is not None and v["state"] != "offline":
                check(one("vcpumap_vcpu_last_cpu") == v["cpu"], f"last cpu of {key}")
        shown = prometheus_samples(run("list", "--prometheus", *args, vcpus[-1]["domain"])[0])
        doms = {dict(labels)["domain_id"] for (n, labels) in shown if n == "vcpumap_domain_vcpus"}
        check(doms == {str(vcpus[-1]["id"])}, f"filter: {doms}")


@test
def prometheus_output():
    """--output replaces the file atomically, once or at every --watch sample; SIGTERM ends the
    watch after the sample in hand, with no temporary file left; a failed write is an error."""
    import signal
    import time
    d = tempfile.mkdtemp(prefix="vcpumap-prom-")
    path = os.path.join(d, "vcpumap.prom")
    with open(path, "w") as f:
        f.write("old\n")
    out, err = run("list", "--prometheus", "--output", path, *MOCK)
    check(out == "" and err == "", f"--output prints nothing: {out!r} {err!r}")
    check(prometheus_stable(read(path)) == prometheus_stable(run("list", "--prometheus", *MOCK)[0]), "file = stdout")
    check(os.listdir(d) == ["vcpumap.prom"], f"left behind: {os.listdir(d)}")
    # --watch: the file is replaced at each sample; the mock's running vcpus accrue time.
    os.remove(path)
    run("list", "--prometheus", "--output", path, "--watch", "0.05", "--count", "3", *MOCK)
    check(os.listdir(d) == ["vcpumap.prom"], f"left behind: {os.listdir(d)}")
    p = subprocess.Popen([TOOLS["list"], "--prometheus", "--output", path, "--watch", "0.1", *MOCK],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    first = None
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        text = read(path)
        stamp = re.search(r"^vcpumap_read_timestamp_seconds (\S+)$", text, re.M)
        check(stamp and text.endswith("\n"), f"a half-written file: {text[-200:]!r}")  # never partial
        if first is None:
            first = stamp.group(1)
        elif stamp.group(1) != first:
            break
        time.sleep(0.02)
    check(first is not None and stamp.group(1) != first, "--watch did not refresh the file")
    p.send_signal(signal.SIGTERM)
    out, err = p.communicate(timeout=30)
    check(p.returncode == 0 and out == "" and err == "", f"SIGTERM: exit {p.returncode} {out!r} {err!r}")
    check(os.listdir(d) == ["vcpumap.prom"], f"left behind: {os.listdir(d)}")
    check(prometheus_samples(read(path)), "the last file is whole")
    # A folder that cannot be written: exit 1 naming the file, the old file untouched.
    if os.geteuid() != 0:
        os.chmod(d, 0o555)
        code, out, err = run_code("list", "--prometheus", "--output", path, *MOCK)
        os.chmod(d, 0o755)
        check(code == 1 and path in err, f"read-only folder: {code} {err!r}")
    code, out, err = run_code("list", "--prometheus", "--output", os.path.join(d, "missing", "x.prom"), *MOCK)
    check(code == 1 and "missing/x.prom" in err and len(err.splitlines()) == 1, f"missing folder: {code} {err!r}")
    check(os.listdir(d) == ["vcpumap.prom"], f"left behind: {os.listdir(d)}")
    # Hostile names: every line of the exposition stays one valid line.
    out, _ = run("list", "--prometheus", "--fixture", hostile_fixture())
    check_inert("vcpu-list --prometheus", out)
    check('domain="osc\\\\x1b]0;pwned\\\\x07"' in out, "escaped name in a label")



def main():
    if sys.argv[1:] == ["--list"]:
        print("\n".join(TESTS))
        return 0
    if len(sys.argv) != 8 or sys.argv[1] not in TESTS:
        print(__doc__, file=sys.stderr)
        return 2
    TOOLS.update(zip(("list", "pin", "matrix", "balance", "cpulist", "set"), sys.argv[2:]))
    try:
        TESTS[sys.argv[1]]()
    except Skip as e:
        print(f"skipped: {e}")
        return 77
    except AssertionError as e:
        print(f"FAIL: {e}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
