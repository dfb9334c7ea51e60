#!/usr/bin/env python3
"""The checks of run-prometheus-test.sh (stdlib only): prints `ok - ...` / `FAIL - ...` lines,
`# ...` measurements, then a count; exit 0 when every check passed.

    check_prometheus.py --list VCPU_LIST --pin VCPU_PIN --prometheus URL
        --node-exporter HOST=URL... --textfile HOST=PATH... --guest NAME=PID...
        [--libvirt-guest NAME --libvirt-exporter URL --libvirt-exporter-pid PID]

HOST is the `host` label the Prometheus config gives each node_exporter: demo (the mock's demo
host) and linux (this machine's QEMU guests).
"""
import argparse
import json
import os
import re
import resource
import subprocess
import sys
import time
import urllib.parse
import urllib.request

PASSED = 0
FAILED = 0


def ok(cond, what, detail=""):
    global PASSED, FAILED
    if cond:
        PASSED += 1
        print(f"ok - {what}")
    else:
        FAILED += 1
        print(f"FAIL - {what}" + (f": {detail}" if detail else ""))
    return cond


def get(url, timeout=10):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.read().decode("utf-8")


def wait_for(what, fn, timeout=60, interval=0.25):
    """fn() until it returns something true (exceptions count as not yet); that value, or None."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            value = fn()
            if value:
                return value
        except Exception as e:  # a server still starting
            last = e
        time.sleep(interval)
    print(f"# {what}: gave up after {timeout} s ({last})")
    return None


def samples(text):
    """[(name, {labels}, value)] of an exposition (the unescaping a Prometheus parser does)."""
    out = []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = re.fullmatch(r'([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)(?: \d+)?', line)
        if not m:
            raise ValueError(f"not a sample line: {line!r}")
        labels = {k: re.sub(r'\\(.)', lambda e: "\n" if e.group(1) == "n" else e.group(1), v)
                  for k, v in re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"', m.group(2) or "")}
        out.append((m.group(1), labels, float(m.group(3))))
    return out


class Prometheus:
    def __init__(self, url):
        self.url = url

    def query(self, promql):
        """The instant vector of a PromQL query: [(labels, value)]; raises on an API error."""
        body = json.loads(get(f"{self.url}/api/v1/query?" + urllib.parse.urlencode({"query": promql})))
        if body.get("status") != "success":
            raise RuntimeError(f"{promql}: {body}")
        return [(r["metric"], float(r["value"][1])) for r in body["data"]["result"]]


def vcpus_of(tool, backend, *domains):
    """{(domain, vcpu): vcpu object} as vcpu-list --json gives them (domains seen only)."""
    out = subprocess.run([tool, "--json", f"--backend={backend}", *domains], capture_output=True, text=True,
                         check=True, timeout=60).stdout
    return {(v["domain"], str(v["vcpu"])): v for v in json.loads(out) if "vcpu" in v and "problem" not in v}


def timed_run(argv):
    """(wall seconds, CPU seconds of the child, stdout) of one run."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    p = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if p.returncode != 0:
        raise RuntimeError(f"{argv}: exit {p.returncode}: {p.stderr}")
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), p.stdout


def cpu_seconds(pid):
    """utime + stime of a process, in seconds (clock-tick resolution)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def median(xs):
    xs = sorted(xs)
    return xs[len(xs) // 2]


def pairs(items):
    out = {}
    for item in items or []:
        k, _, v = item.partition("=")
        out[k] = v
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--list", required=True)
    ap.add_argument("--pin", required=True)
    ap.add_argument("--prometheus", required=True)
    ap.add_argument("--node-exporter", action="append")
    ap.add_argument("--textfile", action="append")
    ap.add_argument("--guest", action="append")
    ap.add_argument("--libvirt-guest")
    ap.add_argument("--libvirt-exporter")
    ap.add_argument("--libvirt-exporter-pid", type=int)
    a = ap.parse_args()
    exporters, textfiles, guests = pairs(a.node_exporter), pairs(a.textfile), pairs(a.guest)

    # ---- the files the watchers write, through promtool -------------------------------------------
    for host, path in textfiles.items():
        text = wait_for(f"{path} written", lambda p=path: os.path.exists(p) and open(p).read(), timeout=30)
        if not ok(text, f"{host}: vcpu-list --watch wrote {path}"):
            continue
        p = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, text=True)
        ok(p.returncode == 0 and not (p.stdout + p.stderr).strip(), f"{host}: promtool check metrics accepts the file",
           p.stdout + p.stderr)
        left = [f for f in os.listdir(os.path.dirname(path)) if f != os.path.basename(path)]
        ok(not left, f"{host}: only the .prom file in the textfile folder (no temporary file)", str(left))
    out = subprocess.run([a.list, "--prometheus", "--backend=linux"], capture_output=True, text=True, timeout=60)
    p = subprocess.run(["promtool", "check", "metrics"], input=out.stdout, capture_output=True, text=True)
    ok(out.returncode == 0 and p.returncode == 0 and not (p.stdout + p.stderr).strip(),
       "linux: promtool check metrics accepts vcpu-list --prometheus --backend=linux", out.stderr + p.stdout + p.stderr)

    # ---- node_exporter serves them -------------------------------------------------------------
    for host, url in exporters.items():
        text = wait_for(f"node_exporter {host}", lambda u=url: "vcpumap_vcpu_cpu_seconds_total" in get(u + "/metrics")
                        and get(u + "/metrics"))
        if not ok(text, f"{host}: node_exporter at {url} serves vcpumap's metrics"):
            continue
        s = samples(text)
        errors = [v for n, _, v in s if n == "node_textfile_scrape_error"]
        ok(errors == [0.0], f"{host}: node_textfile_scrape_error is 0", str(errors))
        # node_exporter gives a family's series the union of its label names, "" where one had
        # none: an empty label is an absent one, so those are dropped before comparing.
        def series(ss):
            return {(n, tuple(sorted((k, v) for k, v in l.items() if v))) for n, l, _ in ss
                    if n.startswith("vcpumap_") and "timestamp" not in n}
        ours, fresh = series(s), series(samples(open(textfiles[host]).read()))
        ok(ours == fresh, f"{host}: node_exporter serves the file's {len(fresh)} series, no more, no fewer",
           f"only served: {sorted(ours - fresh)[:3]}, only in file: {sorted(fresh - ours)[:3]}")

    # ---- Prometheus scrapes them; PromQL over the HTTP API --------------------------------------
    prom = Prometheus(a.prometheus)
    up = wait_for("targets up", lambda: len([1 for _, v in prom.query('up{job="vcpumap"}') if v == 1]) == len(exporters)
                  and all(prom.query(f'count(vcpumap_vcpu_cpu_seconds_total{{host="{h}"}})') for h in exporters))
    ok(up, f"Prometheus at {a.prometheus} scrapes {len(exporters)} node_exporters (up == 1) with vcpumap's series")
    expected = {"demo": vcpus_of(a.list, "mock"), "linux": vcpus_of(a.list, "linux")}
    for host in exporters:
        got = prom.query(f'vcpumap_vcpu_cpu_seconds_total{{host="{host}"}}')
        seen = {(m["domain"], m["vcpu"]) for m, _ in got}
        ok(seen == set(expected[host]), f"{host}: PromQL vcpumap_vcpu_cpu_seconds_total gives every vcpu of vcpu-list "
           f"--json ({len(seen)} vcpus)", f"PromQL {sorted(seen)} vs {sorted(expected[host])}")
        info = {(m["domain"], m["vcpu"]): m["hard"] for m, _ in prom.query(f'vcpumap_vcpu_affinity_info{{host="{host}"}}')}
        wrong = [k for k, v in expected[host].items() if info.get(k) != v["hard"]]
        ok(not wrong, f"{host}: each vcpu's hard affinity in Prometheus equals vcpu-list --json",
           str([(k, info.get(k), expected[host][k]["hard"]) for k in wrong[:3]]))
    demo_names = {d for d, _ in expected["demo"]}
    ok({"Domain-0", "xperf1", "xperf2"} <= demo_names, "demo: the demo host's domains are there", str(demo_names))
    for name in guests:
        ok(any(d == name for d, _ in expected["linux"]), f"linux: QEMU guest {name} is among Prometheus' vcpus")

    # A pin made with vcpu-pin reaches Prometheus through the watcher, and its removal too.
    g1 = next(iter(guests))
    cpus = os.sched_getaffinity(0)
    target = str(max(cpus))
    sel = f'host="linux",domain="{g1}",vcpu="0"'
    t0 = time.monotonic()
    subprocess.run([a.pin, "--backend=linux", g1, "0", target], check=True, capture_output=True, timeout=60)
    pinned = wait_for("pin visible", lambda: prom.query(f"vcpumap_vcpu_pinned{{{sel}}} == 1"), timeout=30)
    latency = time.monotonic() - t0
    if ok(pinned, f"linux: vcpu-pin {g1} 0 {target} shows in Prometheus as vcpumap_vcpu_pinned == 1 "
                  f"({latency:.1f} s: watcher 1 s + scrape 1 s)"):
        print(f"# pin to PromQL latency: {latency:.2f} s")
    ok(prom.query(f'vcpumap_domain_pinned{{host="linux",domain="{g1}"}} == 1'), f"linux: vcpumap_domain_pinned of {g1} is 1")
    ok(prom.query(f'vcpumap_cpu_pinned_vcpus{{host="linux",cpu="{target}"}} >= 1'),
       f"linux: vcpumap_cpu_pinned_vcpus of CPU {target} counts it")
    hard = prom.query(f"vcpumap_vcpu_affinity_info{{{sel}}}")
    ok(hard and hard[0][0].get("hard") == target, f"linux: its affinity info says hard={target}", str(hard))
    # The README's alert: a vcpu that was pinned and is not any more.
    all_cpus = ",".join(str(c) for c in sorted(cpus))
    subprocess.run([a.pin, "--backend=linux", g1, "0", all_cpus], check=True, capture_output=True, timeout=60)
    lost = wait_for("unpin visible", lambda: prom.query(
        f"vcpumap_vcpu_pinned{{{sel}}} == 0 and on(instance, domain_id, vcpu) "
        f"max_over_time(vcpumap_vcpu_pinned{{{sel}}}[5m]) == 1"), timeout=30)
    ok(lost, "linux: the README's 'lost its pin' PromQL fires after vcpu-pin puts the vcpu back on every CPU")

    # The README's other examples answer (success, and on the demo host the values it has).
    examples = {
        "CPU use of each vcpu": 'rate(vcpumap_vcpu_cpu_seconds_total{host="demo"}[30s])',
        "pinned domains sharing a CPU": 'vcpumap_cpu_pinned_domains > 1',
        "where each vcpu runs, with its pin": 'vcpumap_vcpu_last_cpu * on(instance, domain_id, vcpu) '
                                              'group_left(hard) vcpumap_vcpu_affinity_info',
        "pinned domains per core": 'sum by (instance, socket, core) (vcpumap_cpu_pinned_domains '
                                   '* on(instance, cpu) group_left(socket, core) vcpumap_cpu_info) > 1',
    }
    demo_online = [k for k, v in expected["demo"].items() if v["state"] != "offline" and v["cpu"] is not None]
    for what, q in examples.items():
        try:  # the two that must have series may wait for a second sample (rate needs two)
            must = what in ("CPU use of each vcpu", "where each vcpu runs, with its pin")
            r = (wait_for(what, lambda q=q: prom.query(q), timeout=20) or []) if must else prom.query(q)
        except Exception as e:
            ok(False, f"PromQL {what}: {q}", str(e))
            continue
        if what == "CPU use of each vcpu":
            ok(len(r) == len(expected["demo"]), f"PromQL {what}: one rate per demo vcpu ({len(r)})", str(r[:2]))
        elif what == "where each vcpu runs, with its pin":
            demo = [m for m, _ in r if m.get("host") == "demo"]
            ok(len(demo) == len(demo_online) and all("hard" in m for m in demo),
               f"PromQL {what}: each online demo vcpu with its hard label ({len(demo)})", str(demo[:2]))
        else:
            ok(True, f"PromQL {what}: answered ({len(r)} series)")

    # ---- side by side with prometheus-libvirt-exporter ------------------------------------------
    if a.libvirt_exporter and a.libvirt_guest:
        side_by_side(a, a.libvirt_guest)

    print(f"# {PASSED} passed, {FAILED} failed")
    return 0 if FAILED == 0 else 1


def side_by_side(a, guest, n=20):
    url = a.libvirt_exporter + "/metrics"
    first = wait_for("libvirt exporter", lambda: get(url, timeout=30), timeout=60)
    if not ok(first and guest in first, f"prometheus-libvirt-exporter at {a.libvirt_exporter} publishes {guest}"):
        return
    libvirtd = int(subprocess.run(["pidof", "-s", "libvirtd"], capture_output=True, text=True).stdout.split()[0])
    walls, cpus, daemon_cpus = [], [], []
    for _ in range(n):
        c0, d0 = cpu_seconds(a.libvirt_exporter_pid), cpu_seconds(libvirtd)
        t0 = time.perf_counter()
        text = get(url, timeout=30)
        walls.append(time.perf_counter() - t0)
        cpus.append(cpu_seconds(a.libvirt_exporter_pid) - c0)
        daemon_cpus.append(cpu_seconds(libvirtd) - d0)
    theirs = samples(text)
    ours_walls, ours_cpus = [], []
    for _ in range(n):
        wall, cpu, ours_text = timed_run([a.list, "--prometheus", "--backend=linux", guest])
        ours_walls.append(wall)
        ours_cpus.append(cpu)
    ours = samples(ours_text)
    host_wall, host_cpu, host_text = timed_run([a.list, "--prometheus", "--backend=linux"])
    # A watcher's cost per sample, as a daemon like the exporter pays it: (41 samples - 1) / 40.
    w1, c1, _ = timed_run([a.list, "--prometheus", "--backend=linux", "--watch", "0.01", "--count", "1", guest])
    w41, c41, _ = timed_run([a.list, "--prometheus", "--backend=linux", "--watch", "0.01", "--count", "41", guest])
    sample_cpu = (c41 - c1) / 40
    sample_wall = (w41 - w1) / 40 - 0.01
    their_cpu = (sum(cpus) + sum(daemon_cpus)) / n
    our_cpu = sum(ours_cpus) / n
    print(f"# side by side, {n} runs each, one guest ({guest}, 2 vcpus), medians:")
    print(f"#   prometheus-libvirt-exporter 0.2.0 scrape: {median(walls) * 1e3:.1f} ms wall; CPU per scrape "
          f"{sum(cpus) / n * 1e3:.1f} ms exporter + {sum(daemon_cpus) / n * 1e3:.1f} ms libvirtd (clock ticks, mean)")
    print(f"#   vcpu-list --prometheus --backend=linux {guest}: {median(ours_walls) * 1e3:.1f} ms wall (a whole process), "
          f"CPU {our_cpu * 1e3:.1f} ms (rusage, mean)")
    print(f"#   vcpu-list --prometheus --backend=linux, whole host: {host_wall * 1e3:.1f} ms wall, CPU {host_cpu * 1e3:.1f} ms")
    print(f"#   vcpu-list --prometheus --watch, per sample after the first (a daemon's cost): {sample_wall * 1e3:.2f} ms "
          f"wall, CPU {sample_cpu * 1e3:.2f} ms")
    if our_cpu > 0 and sample_cpu > 0:
        print(f"#   CPU ratio libvirt-exporter(+libvirtd) / vcpu-list: {their_cpu / our_cpu:.1f}x against a whole process, "
              f"{their_cpu / sample_cpu:.1f}x against a watcher's sample; wall {median(walls) / median(ours_walls):.1f}x "
              f"and {median(walls) / sample_wall:.1f}x")
    their_families = sorted({n for n, _, _ in theirs})
    our_families = sorted({n for n, _, _ in ours})
    vcpu_theirs = [f for f in their_families if "vcpu" in f]
    print(f"#   libvirt-exporter publishes {len(theirs)} series in {len(their_families)} families; for vcpus: "
          f"{', '.join(vcpu_theirs) or 'none'}")
    print(f"#   vcpu-list publishes {len(ours)} series in {len(our_families)} families for {guest}")
    print(f"#   libvirt-exporter's families: {' '.join(their_families)}")
    ok(not [f for f in their_families if "affinity" in f or "pin" in f],
       "prometheus-libvirt-exporter publishes no affinity (no family names affinity or pin)", str(their_families))
    ok(any("affinity" in f for f in our_families) and any("pinned" in f for f in our_families),
       "vcpu-list --prometheus publishes the affinity and whether each vcpu is pinned")
    # Where both publish a vcpu's CPU time, they agree (libvirt reads the same thread's schedstat).
    their_time = {l.get("vcpu"): v for n, l, v in theirs if n == "libvirt_domain_vcpu_time_seconds_total"
                  and l.get("domain") == guest}
    if their_time:
        our_time = {l["vcpu"]: v for n, l, v in ours if n == "vcpumap_vcpu_cpu_seconds_total"}
        far = [k for k in their_time if k not in our_time or abs(their_time[k] - our_time[k]) > 1.0]
        ok(not far, "the vcpu CPU seconds of both agree within 1 s", f"{their_time} vs {our_time}")


if __name__ == "__main__":
    sys.exit(main())
