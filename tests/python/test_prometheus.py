"""HostSnapshot.to_prometheus(): the text of vcpu-list --prometheus, for a program's own exporter."""
import re

import vcpumap
from conftest import run_tool

STABLE = re.compile(r"^vcpumap_read_(duration_seconds|calls|timestamp_seconds) .*\n|^# (HELP|TYPE) vcpumap_read_.*\n",
                    re.M)


def test_the_same_text_as_the_tool(demo):
    text = demo.snapshot_all().to_prometheus()
    assert isinstance(text, str)
    assert STABLE.sub("", text) == STABLE.sub("", run_tool("vcpu-list", "--backend=mock", "--prometheus"))
    assert 'vcpumap_vcpu_cpu_seconds_total{domain="xperf2",domain_id="3",vcpu="0"} 20.000000000' in text
    assert re.search(r"^vcpumap_read_timestamp_seconds \d+\.\d{9}$", text, re.M)


def test_hostile_names_stay_in_their_label():
    fixture = 'host cpus=2\ndomain 1 "evil\\x1b]0;x\\x07\\"\\x0a} 1\\xff" vcpus=1\nvcpu 0 state=running cpu=0\n'
    with vcpumap.open("mock", fixture=fixture) as hv:
        text = hv.snapshot_all().to_prometheus()
    line = next(x for x in text.splitlines() if x.startswith("vcpumap_domain_vcpus{"))
    assert line == 'vcpumap_domain_vcpus{domain="evil\\\\x1b]0;x\\\\x07\\"\\\\x0a} 1\\\\xff",domain_id="1"} 1'
    assert all(ord(c) >= 0x20 for c in text.replace("\n", ""))
