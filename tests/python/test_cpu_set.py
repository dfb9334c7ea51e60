"""CpuMap and VcpuSet: construction, text forms against the C++ cpulist tool, set algebra
against Python's sets, hashing, immutability, parse options and ParseError."""
import copy
import pickle
import random

import pytest

import vcpumap
from conftest import run_tool
from vcpumap import CpuMap, Dialect, Exclusion, TextForm, VcpuSet


def random_map(rng, universe):
    return CpuMap([c for c in range(universe) if rng.random() < 0.4], universe=universe)


def test_text_and_iterable_construction_agree():
    m = CpuMap("0-3,8-11")
    assert str(m) == "0-3,8-11"
    assert list(m) == [0, 1, 2, 3, 8, 9, 10, 11]
    assert m.universe == 12
    assert m == CpuMap([11, 0, 1, 2, 3, 8, 9, 10])
    assert m == CpuMap(b"0-3,8-11")
    assert len(m) == m.count() == 8
    assert 8 in m and 4 not in m and -1 not in m and 10**40 not in m and "3" not in m
    assert m.first == 0 and m.last == 11
    assert CpuMap().universe == 0 and not CpuMap() and str(CpuMap()) == ""
    assert CpuMap("", universe=4).first is None
    assert CpuMap.full(5) == CpuMap("0-4")


def test_against_the_cpp_cpulist_tool():
    """Every text form of each set as the C++ tool prints it (examples/cpulist)."""
    inputs = ["0-3,^2,8-11", "0xff", "0-15:2/4", "5", "1,3,5,7,9,64-70,127"]
    out = run_tool("cpulist", *inputs)
    lines = out.strip().splitlines()
    per_input = [lines[i:i + 6] for i in range(0, len(lines), 6)]
    assert len(per_input) == len(inputs), out
    for text, block in zip(inputs, per_input):
        forms = dict(line.split(None, 1) for line in block)
        m = CpuMap(text)
        assert forms["list"] == format(m, "") == str(m) == format(m, "l")
        assert forms["xl"] == format(m, "a")
        assert forms["sysfs"] == format(m, "m") == m.to_string(TextForm.SYSFS_MASK)
        assert forms["hex"] == format(m, "x") == m.to_string("hex")
        assert forms["yn"] == format(m, "y")
        assert forms["count"] == f"{len(m)} of {m.universe}"


def test_round_trips_every_form():
    rng = random.Random(15)
    for universe in (1, 7, 63, 64, 65, 130, 1000):
        for _ in range(20):
            m = random_map(rng, universe)
            assert CpuMap(str(m), universe=universe) == m
            assert CpuMap.parse(str(m), universe=universe, dialect=Dialect.STRICT) == m
            assert eval(repr(m), {"vcpumap": vcpumap}) == m
            assert CpuMap(format(m, "m"), form=TextForm.SYSFS_MASK, universe=universe) == m
            assert CpuMap(format(m, "x"), form=TextForm.HEX, universe=universe) == m
            assert CpuMap(format(m, "y"), form=TextForm.YN) == m
            assert CpuMap.from_bytes(m.to_bytes(), universe) == m
            assert pickle.loads(pickle.dumps(m)) == m
            assert copy.deepcopy(m) == m


def test_set_algebra_matches_python_sets():
    rng = random.Random(7)
    for _ in range(200):
        a = random_map(rng, rng.choice([5, 64, 70, 200]))
        b = random_map(rng, rng.choice([5, 64, 70, 200]))
        sa, sb = set(a), set(b)
        assert set(a & b) == sa & sb
        assert set(a | b) == sa | sb
        assert set(a ^ b) == sa ^ sb
        assert set(a - b) == sa - sb
        assert (a & b).universe == max(a.universe, b.universe)
        assert set(~a) == set(range(a.universe)) - sa
        assert a.issubset(b) == (sa <= sb) == (a <= b)
        assert a.issuperset(b) == (sa >= sb)
        assert a.intersects(b) == bool(sa & sb) == (not a.isdisjoint(b))
        assert (a < b) == (sa < sb)
        assert a.same_members(b) == (sa == sb)


def test_equality_hashing_and_immutability():
    a, b = CpuMap("0", universe=4), CpuMap("0", universe=8)
    assert a != b and a.same_members(b)  # == compares the universe too
    assert a == CpuMap([0], universe=4) and hash(a) == hash(CpuMap([0], universe=4))
    assert len({a, b, CpuMap("0", universe=4)}) == 2
    assert a.resized(8) == b
    with pytest.raises(AttributeError):
        a.universe = 9
    assert (a != "0") and a != {0}
    with pytest.raises(TypeError):
        _ = a & VcpuSet("0", universe=4)  # CPUs and vcpus do not mix


def test_vcpu_set_is_its_own_type():
    v = VcpuSet("0-2,5")
    assert isinstance(next(iter(v)), int) and list(v) == [0, 1, 2, 5]
    assert repr(v) == "vcpumap.VcpuSet('0-2,5', universe=6)"
    assert v != CpuMap("0-2,5")


def test_parse_options():
    assert str(CpuMap("all,^0", universe=4)) == "1-3"
    assert str(CpuMap("^1", universe=4)) == "0,2-3"
    assert str(CpuMap("0-3,^2,2")) == "0-3"
    assert str(CpuMap("0-3,^2,2", exclusion=Exclusion.AFTER_INCLUSIONS)) == "0-1,3"
    assert str(CpuMap("4-", universe=8, dialect=Dialect.COMPAT)) == "4-7"
    assert str(CpuMap("yy--y", dialect="compat")) == "0-1,4"
    assert CpuMap("ff,00000000", form=TextForm.SYSFS_MASK).universe == 64
    with pytest.raises(vcpumap.ParseError):
        CpuMap("3,1", dialect=Dialect.STRICT)
    with pytest.raises(ValueError):
        CpuMap("0", dialect="sloppy")  # not a Dialect
    with pytest.raises(ValueError):
        format(CpuMap("0"), "q")


@pytest.mark.parametrize("text,column,out_of_range", [
    ("0-3,x", 5, False),
    ("1,,2", 3, False),
    ("5-3", 1, False),
    ("99999999999999999999", 1, True),
    ("4000000000", 1, True),
    ("0-3,^9", 6, True),  # with universe 8
])
def test_parse_error_has_the_column(text, column, out_of_range):
    with pytest.raises(vcpumap.ParseError) as e:
        CpuMap(text, universe=8 if "^9" in text else None)
    err = e.value
    assert err.column == column
    assert err.out_of_range == out_of_range
    assert err.input == text and err.reason
    assert err.code == vcpumap.ErrorCode.INVALID_ARGUMENT
    assert isinstance(err, vcpumap.InvalidArgumentError) and isinstance(err, ValueError)
    assert f"column {column}" in str(err)


def test_huge_and_negative_numbers_are_refused_not_allocated():
    for members in ([10**30], [2**64], [2**63 - 1], [-1], [1 << 24]):
        with pytest.raises(vcpumap.InvalidArgumentError):
            CpuMap(members)
    with pytest.raises(vcpumap.InvalidArgumentError):
        CpuMap([5], universe=4)
    with pytest.raises(vcpumap.InvalidArgumentError):
        CpuMap("0", universe=10**20)
    with pytest.raises(TypeError):
        CpuMap([1.5])
    with pytest.raises(TypeError):
        CpuMap(3)
    assert CpuMap([1 << 20], limit=1 << 21).last == 1 << 20
    import numpy as np
    assert CpuMap(np.flatnonzero([True, False, True])) == CpuMap("0,2")  # numpy ints: __index__
    assert np.int64(2) in CpuMap("0,2") and True not in CpuMap("1")
    with pytest.raises(vcpumap.ParseError) as e:
        CpuMap.from_bytes(b"\x00\x80", 10)
    assert e.value.column == 2 and e.value.out_of_range
