"""Hostile input: names that are not UTF-8 (a fixture can carry any bytes), huge numbers,
control characters. Names surface as valid str, invalid bytes replaced by U+FFFD (the exact
bytes in name_bytes); numbers beyond a limit are InvalidArgumentError, never an allocation."""
import pytest

import vcpumap

EVIL = b"\xff\xfeevil\x1b]0;pwned\x07\xe2\x80\xae"   # invalid UTF-8, an escape sequence, U+202E
FIXTURE = (
    "host cpus=4\n"
    'domain 5 "\\xff\\xfeevil\\x1b]0;pwned\\x07\\xe2\\x80\\xae" vcpus=2\n'
    "vcpu 0 state=running cpu=1 time=1\n"
    'domain 6 "caf\\xc3\\xa9" vcpus=1\n'
)


@pytest.fixture
def hostile():
    with vcpumap.open("mock", fixture=FIXTURE) as hv:
        yield hv


def test_non_utf8_names_are_valid_str_with_replacement(hostile):
    d5, d6 = hostile.domains()
    assert d5.name_bytes == EVIL
    assert d5.name == EVIL.decode("utf-8", "replace")
    assert d5.name.startswith("\ufffd\ufffdevil") and "\u202e" in d5.name
    d5.name.encode("utf-8")  # always encodes: no lone surrogates
    repr(d5)
    assert d6.name == "café" and d6.name_bytes == "café".encode()


def test_a_non_utf8_name_is_found_by_its_bytes(hostile):
    assert hostile.snapshot(EVIL).domain.id == 5
    assert hostile.snapshot("café").domain.id == 6
    with pytest.raises(vcpumap.NotFoundError) as e:
        hostile.snapshot(EVIL + b"x")
    message = str(e.value)
    message.encode("utf-8")
    assert "\x1b" not in message and "\x07" not in message  # escaped by the library


def test_errors_about_a_hostile_domain_are_clean_text(hostile):
    with pytest.raises(vcpumap.InvalidArgumentError) as e:
        hostile.pin(5, 7, hard="0")
    message = str(e.value)
    message.encode("utf-8")
    assert "\x1b" not in message and "domain 5" in message


def test_a_parse_error_of_bytes_that_are_not_utf8():
    with pytest.raises(vcpumap.ParseError) as e:
        vcpumap.CpuMap(b"0-3,\xff\xfe")
    assert e.value.column == 5
    e.value.input.encode("utf-8")
    str(e.value).encode("utf-8")


@pytest.mark.parametrize("fixture", [
    "host cpus=4294967296\n",
    "host cpus=4\ndomain 4294967296 big\n",
    "host cpus=4\ndomain 1 a vcpus=99999999999999999999999\n",
    "host cpus=4\ndomain 1 a vcpus=1\nvcpu 0 time_ns=9223372036854775808\n",
    "host cpus=4\ndomain 1 a vcpus=1\nvcpu 0 hard=0-99999999999\n",
])
def test_huge_numbers_in_a_fixture(fixture):
    with pytest.raises(vcpumap.InvalidArgumentError):
        vcpumap.open("mock", fixture=fixture)


def test_huge_numbers_as_arguments(hostile):
    for vcpu in (2**32, 2**64, 10**100, -1):
        with pytest.raises(vcpumap.InvalidArgumentError):
            hostile.pin(5, vcpu, hard="0")
    with pytest.raises(vcpumap.InvalidArgumentError):
        hostile.pin(5, 0, hard=[2**70])
    with pytest.raises(vcpumap.ParseError) as e:
        hostile.pin(5, 0, hard="0-3,18446744073709551616")
    assert e.value.out_of_range
    with pytest.raises(vcpumap.InvalidArgumentError):
        hostile.mock_advance(2**63)
    big = 10**100000  # a message quotes a cut rendering of it, not 100,000 digits
    with pytest.raises(vcpumap.InvalidArgumentError) as e:
        hostile.snapshot(big)
    assert len(str(e.value)) < 200
    with pytest.raises(vcpumap.InvalidArgumentError):
        vcpumap.AffinityMatrix(2**40, 4)
