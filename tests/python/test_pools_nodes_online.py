"""cpupools, NUMA node affinity and memory, core ids and online vcpus from Python (issue 13),
on the mock, which models them as Xen does."""
import pytest

import vcpumap

FIXTURE = b"""host cpus=8 threads_per_core=2 cores_per_socket=2 sockets=2 limit=cpupool vcpu_set=yes node_affinity=yes
node 0 0-3 mem=1073741824 free=536870912
node 1 4-7 mem=2147483648 free=1073741824
pool 0 Pool-0 cpus=0-3
pool 1 "fast\\x1b" sched=credit cpus=4-7
domain 0 Domain-0 vcpus=2 flags=running
vcpu 0 state=running cpu=0 time=1.0
vcpu 1 state=blocked cpu=1 time=1.0
domain 3 db vcpus=4 flags=blocked pool=1 nodes=1
vcpu 0 state=blocked cpu=4 time=1.0
vcpu 1 state=blocked cpu=5 time=1.0
vcpu 2 state=blocked cpu=6 time=1.0
vcpu 3 state=blocked cpu=7 time=1.0
"""


@pytest.fixture
def hv():
    with vcpumap.open("mock", fixture=FIXTURE) as h:
        yield h


def test_host_pools_memory_cores(hv):
    host = hv.host_info()
    assert host.caps.vcpu_limit == "cpupool" and host.caps.set_online and host.caps.node_affinity
    assert [(p.id, p.name, p.scheduler, str(p.cpus), p.domains) for p in host.pools] == [
        (0, "Pool-0", "credit2", "0-3", 1), (1, "fast\x1b", "credit", "4-7", 1)]
    assert [(m.size, m.free) for m in host.node_memory] == [(1 << 30, 1 << 29), (1 << 31, 1 << 30)]
    assert host.cpu_core == [0, 0, 1, 1, 0, 0, 1, 1]


def test_domain_pool_limit_and_node_affinity(hv):
    s = hv.snapshot("db")
    assert s.domain.pool == 1
    assert isinstance(s.node_affinity, vcpumap.NodeSet) and str(s.node_affinity) == "1"
    assert all(str(s.limit.row(v)) == "4-7" for v in range(4))
    assert all(s.effective.row(v).same_members(vcpumap.CpuMap("4-7")) for v in range(4))
    assert hv.snapshot("db", "metrics_only").node_affinity is None


def test_pin_outside_the_pool_is_refused_naming_it(hv):
    with pytest.raises(vcpumap.InvalidArgumentError, match=r"cpupool 1 \(fast\\x1b\)"):
        hv.pin("db", 0, hard="0-1")
    assert str(hv.pin("db", 0, hard="3-4").hard) == "4"


def test_set_online_vcpus(hv):
    hv.set_online_vcpus("db", 2)
    assert [v.state for v in hv.snapshot("db").vcpus][2:] == [vcpumap.VcpuState.OFFLINE] * 2
    hv.set_online_vcpus("db", "1,3")
    assert [v.state == vcpumap.VcpuState.OFFLINE for v in hv.snapshot("db").vcpus] == [True, False, True, False]
    with pytest.raises(vcpumap.InvalidArgumentError, match="at least one vcpu"):
        hv.set_online_vcpus("db", 0)
    with pytest.raises(vcpumap.InvalidArgumentError):
        hv.set_online_vcpus("db", 5)
