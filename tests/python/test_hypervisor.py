"""The hypervisor through the module: the mock's snapshots against the C++ vcpu-list tool, the
numpy view against row(), pins, plans, the errors of every code, threads."""
import datetime
import json
import threading

import numpy as np
import pytest

import vcpumap
from conftest import WIDE_FIXTURE, run_tool
from vcpumap import CpuMap, ErrorCode, SnapshotScope, VcpuSet, VcpuState


def test_open_reports_its_backend(demo):
    assert demo.kind == "mock"
    assert "mock" in vcpumap.backends
    assert repr(demo) == "<vcpumap.Hypervisor mock>"


def test_snapshot_all_agrees_with_the_cpp_tool(tmp_path):
    """Every vcpu of a fixture host as `vcpu-list --json` (C++) prints it."""
    path = tmp_path / "host.txt"
    path.write_text(WIDE_FIXTURE)
    rows = json.loads(run_tool("vcpu-list", "--backend=mock", "--fixture", str(path), "--json"))
    with vcpumap.open("mock", fixture=path) as hv:
        snap = hv.snapshot_all()
    ours = []
    for d in snap.domains:
        for v in d.vcpus:
            ours.append({
                "domain": d.domain.name, "id": d.domain.id, "vcpu": v.vcpu, "state": v.state.value,
                "cpu": v.cpu, "time_ns": v.cpu_time_ns, "wait_ns": v.wait_time_ns,
                "hard": str(d.hard.row(v.vcpu)), "soft": str(d.soft.row(v.vcpu)),
                "limit": str(d.limit.row(v.vcpu)), "effective": str(d.effective.row(v.vcpu)),
            })
    assert len(ours) == len(rows) == 72
    for mine, theirs in zip(ours, rows):
        assert mine == {k: theirs[k] for k in mine}, (mine, theirs)


def test_model_values(wide):
    host = wide.host_info()
    assert host.cpu_universe == 130
    assert str(host.online) == "0-127" and str(host.present) == "0-129"
    assert [str(n) for n in host.numa_nodes] == ["0-63", "64-127", "128-129"]
    assert host.cpu_node[64] == 1 and host.cpu_node[129] == 2
    assert host.caps.soft_affinity is True and host.caps.vcpu_limit == ""
    assert str(host.parse("node:1,^64")) == "65-127"
    assert host == wide.host_info() and host._asdict()["sockets"] == 1
    s = wide.snapshot(7)
    assert s.domain.name == "wide" and s.domain.max_vcpus == 70 and s.domain.online_vcpus == 3
    v0, v1 = s.vcpus[0], s.vcpus[1]
    assert v0.state is VcpuState.RUNNABLE and v0.cpu == 129 and v0.cpu_time_ns == 123456789
    assert v0.cpu_time == datetime.timedelta(microseconds=123457)  # rounded to the microsecond
    assert v1.cpu_time == datetime.timedelta(seconds=0.5)
    assert s.vcpus[2].state is VcpuState.OFFLINE and s.vcpus[2].cpu is None
    assert s.domain.cpu_time_ns == 123456789 + 500_000_000 + 9_000_000_000
    assert s.scope is SnapshotScope.FULL
    assert s.taken_at.tzinfo is not None and s.taken_at_ns == int(s.taken_at.timestamp()) * 10**9
    with pytest.raises(AttributeError):
        s.domain.name = "other"
    m = wide.snapshot("wide", scope=SnapshotScope.METRICS_ONLY)
    assert m.hard.shape == (0, 0) and len(m.vcpus) == 70


def test_numpy_view_agrees_with_row(wide):
    for d in wide.snapshot_all().domains:
        for matrix in (d.hard, d.soft, d.effective, d.limit):
            words = np.asarray(matrix)
            assert words.dtype == np.uint64 and words.shape == (matrix.rows, matrix.row_words)
            assert words.shape == (d.domain.max_vcpus, (130 + 63) // 64)
            assert not words.flags.writeable
            bools = matrix.unpacked()
            assert bools.shape == (matrix.rows, 130) and bools.dtype == np.bool_
            for v in range(matrix.rows):
                row = matrix.row(v)
                from_words = {w * 64 + b for w in range(words.shape[1]) for b in range(64)
                              if (int(words[v, w]) >> b) & 1}
                assert from_words == set(row) == set(np.flatnonzero(bools[v]))
                assert matrix[v] == row
            for c in (0, 63, 64, 129):
                assert set(matrix.column(c)) == set(np.flatnonzero(bools[:, c]))
    s = wide.snapshot(7)
    assert str(s.hard.row(1)) == "1,3,5,64-70,128"
    assert np.asarray(s.hard)[1, 2] == 1  # CPU 128: bit 0 of word 2


def test_numpy_view_is_zero_copy_and_keeps_the_snapshot_alive(wide):
    s = wide.snapshot(7)
    a, b = np.asarray(s.hard), np.asarray(s.hard)
    assert np.shares_memory(a, b)  # the C++ storage itself, not a copy
    expected = [str(s.hard.row(v)) for v in range(70)]
    del s, b
    wide.pin(7, 0, hard="0")  # a new snapshot elsewhere does not touch a's storage
    fresh = [wide.snapshot(7) for _ in range(20)]
    got = [str(CpuMap([w * 64 + i for w in range(3) for i in range(64) if (int(a[v, w]) >> i) & 1],
                      universe=130)) for v in range(70)]
    assert got == expected and len(fresh) == 20


def test_pins_on_the_mock(demo):
    r = demo.pin("xperf2", 0, hard="2-3", soft=[3])
    assert str(r.hard) == "2-3" and str(r.soft) == "3"
    s = demo.snapshot(3)
    assert str(s.hard.row(0)) == "2-3" and str(s.soft.row(0)) == "3"
    assert str(s.effective.row(0)) == "3"
    assert demo.last_call_count > 0

    res = demo.pin_vcpus(3, "all", hard=CpuMap("1", universe=4))
    assert all(str(res.hard.row(v)) == "1" for v in range(4))
    assert str(res.before_hard.row(0)) == "2-3"
    res = demo.pin_vcpus(3, VcpuSet("0-1"), hard="0")
    assert [str(demo.snapshot(3).hard.row(v)) for v in range(4)] == ["0", "0", "1", "1"]

    plan = np.zeros((4, 4), dtype=bool)
    for v in range(4):
        plan[v, 3 - v] = True
    res = demo.pin_matrix(3, hard=plan)
    assert [str(res.hard.row(v)) for v in range(4)] == ["3", "2", "1", "0"]
    res = demo.pin_matrix("xperf2", hard=["0-1", "0-1", "2-3", "2-3"])
    assert demo.snapshot(3).hard == vcpumap.AffinityMatrix.from_rows(["0-1", "0-1", "2-3", "2-3"], 4)


def test_dry_runs_change_nothing(demo):
    before = demo.snapshot(3).hard
    p = demo.plan_vcpus(3, [1, 2], hard="node:0,^0")
    assert p.refusal is None and p.changed == VcpuSet("1-2", universe=4)
    assert str(p.hard.row(1)) == "1-3" and str(p.hard.row(0)) == "0-3"
    p = demo.plan_matrix(3, hard=[[], "0", "0", "0"])
    assert isinstance(p.refusal, vcpumap.InvalidArgumentError) and "vcpu 0" in str(p.refusal)
    assert p.refusal.code is ErrorCode.INVALID_ARGUMENT
    assert demo.snapshot(3).hard == before


def test_every_error_type(demo):
    with pytest.raises(vcpumap.NotFoundError) as e:
        demo.snapshot(99)
    assert e.value.code is ErrorCode.NOT_FOUND and isinstance(e.value, LookupError)
    with pytest.raises(vcpumap.NotFoundError):
        demo.snapshot("no-such-guest")
    with pytest.raises(vcpumap.InvalidArgumentError) as e:
        demo.pin(3, 9, hard="0")
    assert "vcpu 9" in str(e.value)
    with pytest.raises(vcpumap.InvalidArgumentError):
        demo.pin(3, 0, hard=[])  # an empty hard map
    with pytest.raises(vcpumap.ParseError) as e:
        demo.pin(3, 0, hard="0-9")  # beyond the host's 4 CPUs
    assert e.value.out_of_range and e.value.column == 3
    for code, cls in [(ErrorCode.BUSY, vcpumap.BusyError), (ErrorCode.PERMISSION_DENIED, vcpumap.PermissionDeniedError),
                      (ErrorCode.INTERNAL, vcpumap.InternalError)]:
        demo.mock_fail_call(1, code)
        with pytest.raises(cls) as e:
            demo.snapshot(3)
        assert e.value.code is code and isinstance(e.value, vcpumap.Error)
    with vcpumap.open("mock", fixture="host cpus=2 soft=no\ndomain 1 g vcpus=1\n") as nosoft:
        with pytest.raises(vcpumap.UnsupportedError):
            nosoft.pin(1, 0, soft="0")
    if "xen" not in vcpumap.backends or not __import__("os").path.exists("/dev/xen/privcmd"):
        with pytest.raises(vcpumap.UnavailableError) as e:
            vcpumap.open("xen")
        assert e.value.code is ErrorCode.HYPERVISOR_UNAVAILABLE
    with pytest.raises(vcpumap.InvalidArgumentError):
        vcpumap.open("hyper-v")
    with pytest.raises(vcpumap.InvalidArgumentError):
        vcpumap.open("xen", fixture="host cpus=2\n")
    with pytest.raises(vcpumap.NotFoundError):
        vcpumap.open("mock", fixture="/nonexistent/host.txt")
    with pytest.raises(vcpumap.InvalidArgumentError) as e:
        vcpumap.open("mock", fixture="host cpus=4\ndomain 1 a vcpus=4294967298\n")
    assert "16384" in str(e.value)
    hv = vcpumap.open("mock")
    hv.close()
    with pytest.raises(vcpumap.InternalError):
        hv.domains()


def test_pin_error_rolls_back():
    """A fault at each backend call of a whole-matrix pin in turn (a fresh mock each time): the
    pin fails before any change (the Error of its code) or part-way (PinError, everything
    restored), until k is past its calls and it succeeds."""
    target = ["3", "2", "1", "0"]
    part_way, refused = 0, 0
    for k in range(1, 60):
        with vcpumap.open("mock") as hv:
            before = hv.snapshot(3)
            hv.mock_fail_call(k, ErrorCode.BUSY)
            try:
                result = hv.pin_matrix(3, hard=target)
            except vcpumap.PinError as e:
                part_way += 1
                assert e.rolled_back and e.code is ErrorCode.BUSY and 0 <= e.failed_vcpu < 4
                assert f"vcpu {e.failed_vcpu}" in str(e)
            except vcpumap.BusyError:
                refused += 1  # failed while reading, before any change
            else:  # the fault is still pending, for a later call: the result says what was set
                assert [str(r) for r in result.hard] == target
                break
            assert hv.snapshot(3).hard == before.hard, k
    else:
        pytest.fail("the pin never succeeded")
    assert part_way == 4 and refused >= 1  # one PinError per vcpu's setvcpuaffinity


def test_pin_error_when_the_rollback_fails_too(demo):
    found = False
    for k in range(1, 30):
        for extra in range(1, 4):
            with vcpumap.open("mock") as hv:
                hv.mock_fail_call(k, ErrorCode.BUSY)
                hv.mock_fail_call(k + extra, ErrorCode.PERMISSION_DENIED)
                try:
                    hv.pin_matrix(3, hard=["3", "2", "1", "0"])
                except vcpumap.PinError as e:
                    if not e.rolled_back:
                        found = True
                        assert e.code is ErrorCode.INTERNAL and "restoring" in str(e)
                except vcpumap.Error:
                    pass
    assert found


def test_domains_by_name_id_info_and_bytes(demo):
    info = demo.domains()[2]
    for ref in (3, "xperf2", b"xperf2", info, demo.snapshot(3)):
        assert demo.snapshot(ref).domain.id == 3
    with pytest.raises(vcpumap.InvalidArgumentError):
        demo.snapshot(2**32)
    with pytest.raises(vcpumap.InvalidArgumentError):
        demo.snapshot(-1)
    with pytest.raises(TypeError):
        demo.snapshot(3.0)
    with vcpumap.open("mock", fixture="domain 1 twin\ndomain 2 twin\n") as hv:
        with pytest.raises(vcpumap.InvalidArgumentError):
            hv.snapshot("twin")


def test_threads_take_turns():
    """Calls release the GIL and take the object's lock: threads pinning and reading one
    Hypervisor see whole snapshots."""
    hv = vcpumap.open("mock")
    errors = []

    def pinner(n):
        try:
            for i in range(200):
                hv.pin_matrix(3, hard=[str((i + v + n) % 4) for v in range(4)])
        except Exception as e:  # noqa: BLE001
            errors.append(e)

    def reader():
        try:
            for _ in range(200):
                s = hv.snapshot_all()
                assert [d.domain.id for d in s.domains] == [0, 1, 3]
                rows = sorted(str(r) for r in s.domains[2].hard)
                assert rows in (["0-3"] * 4, ["0", "1", "2", "3"]), rows  # never half a pin
        except Exception as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=pinner, args=(n,)) for n in range(2)] + [threading.Thread(target=reader)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
