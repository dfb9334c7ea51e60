# Type stubs of the vcpumap package (the extension vcpumap._vcpumap and vcpumap._types), so
# editors and type checkers complete the API. Keep in step with python/src/*.cpp: a new model
# field is one line in its class below.
import datetime
import os
from typing import Any, ClassVar, Iterable, Iterator, Optional, Self, Sequence, Union, overload

import numpy.typing

__version__: str
backends: tuple[str, ...]

# The enums and the exceptions are plain Python (vcpumap/_types.py): their definitions there
# are their types.
from vcpumap._types import (
    BusyError as BusyError, Dialect as Dialect, Error as Error, ErrorCode as ErrorCode, Exclusion as Exclusion,
    InternalError as InternalError, InvalidArgumentError as InvalidArgumentError, NotFoundError as NotFoundError,
    ParseError as ParseError, PermissionDeniedError as PermissionDeniedError, PinError as PinError,
    SnapshotScope as SnapshotScope, TextForm as TextForm, TransactionError as TransactionError,
    UnavailableError as UnavailableError, UnsupportedError as UnsupportedError, VcpuState as VcpuState,
)

# ---- sets ----

_Text = Union[str, bytes]
_DialectArg = Optional[Union[Dialect, str]]
_FormArg = Optional[Union[TextForm, str]]
_ExclusionArg = Optional[Union[Exclusion, str]]

class _BasicCpuSet:
    """What CpuMap and VcpuSet share (one C++ template); they do not mix with each other."""
    def __init__(self, members: Union[_Text, Iterable[int]] = ..., *, universe: Optional[int] = None,
                 dialect: _DialectArg = None, form: _FormArg = None, exclusion: _ExclusionArg = None,
                 limit: Optional[int] = None) -> None: ...
    @classmethod
    def parse(cls, text: _Text, *, universe: Optional[int] = None, dialect: _DialectArg = None,
              form: _FormArg = None, exclusion: _ExclusionArg = None, limit: Optional[int] = None) -> Self: ...
    @classmethod
    def full(cls, universe: int) -> Self: ...
    @classmethod
    def from_bytes(cls, data: bytes, universe: int) -> Self: ...
    def to_bytes(self) -> bytes: ...
    def to_string(self, form: Union[TextForm, str] = ...) -> str: ...
    def __format__(self, spec: str) -> str: ...
    @property
    def universe(self) -> int: ...
    @property
    def first(self) -> Optional[int]: ...
    @property
    def last(self) -> Optional[int]: ...
    def count(self) -> int: ...
    def __len__(self) -> int: ...
    def __bool__(self) -> bool: ...
    def __contains__(self, n: object) -> bool: ...
    def __iter__(self) -> Iterator[int]: ...
    def issubset(self, other: Self) -> bool: ...
    def issuperset(self, other: Self) -> bool: ...
    def intersects(self, other: Self) -> bool: ...
    def isdisjoint(self, other: Self) -> bool: ...
    def same_members(self, other: Self) -> bool: ...
    def resized(self, universe: int) -> Self: ...
    def __eq__(self, other: object) -> bool: ...
    def __le__(self, other: Self) -> bool: ...
    def __lt__(self, other: Self) -> bool: ...
    def __ge__(self, other: Self) -> bool: ...
    def __gt__(self, other: Self) -> bool: ...
    def __hash__(self) -> int: ...
    def __and__(self, other: Self) -> Self: ...
    def __or__(self, other: Self) -> Self: ...
    def __xor__(self, other: Self) -> Self: ...
    def __sub__(self, other: Self) -> Self: ...
    def __invert__(self) -> Self: ...

class CpuMap(_BasicCpuSet):
    """A set of physical CPUs with a universe; immutable and hashable."""

class VcpuSet(_BasicCpuSet):
    """A set of one domain's vcpus with a universe; immutable and hashable."""

class NodeSet(_BasicCpuSet):
    """A set of NUMA nodes with a universe (a domain's node affinity); immutable and hashable."""

_MapArg = Union[CpuMap, _Text, Iterable[int]]

class AffinityMatrix:
    """vcpu x CPU bits, immutable. numpy.asarray(m): read-only (rows, row_words) uint64, no copy."""
    def __init__(self, rows: int, cols: int) -> None: ...
    @staticmethod
    def full(rows: int, cols: int) -> AffinityMatrix: ...
    @staticmethod
    def from_rows(rows: Sequence[_MapArg], cols: int) -> AffinityMatrix: ...
    @staticmethod
    def from_bools(array: Any) -> AffinityMatrix: ...
    def unpacked(self) -> numpy.typing.NDArray[numpy.bool_]: ...
    def __buffer__(self, flags: int) -> memoryview: ...
    @property
    def rows(self) -> int: ...
    @property
    def cols(self) -> int: ...
    @property
    def row_words(self) -> int: ...
    @property
    def shape(self) -> tuple[int, int]: ...
    def row(self, vcpu: int) -> CpuMap: ...
    def column(self, cpu: int) -> VcpuSet: ...
    def test(self, vcpu: int, cpu: int) -> bool: ...
    def with_row(self, vcpu: int, cpus: _MapArg) -> AffinityMatrix: ...
    def __len__(self) -> int: ...
    @overload
    def __getitem__(self, vcpu: int) -> CpuMap: ...
    @overload
    def __getitem__(self, vcpu_cpu: tuple[int, int]) -> bool: ...
    def __iter__(self) -> Iterator[CpuMap]: ...
    def __eq__(self, other: object) -> bool: ...
    def __and__(self, other: AffinityMatrix) -> AffinityMatrix: ...
    def __or__(self, other: AffinityMatrix) -> AffinityMatrix: ...

# ---- the model: read-only values (_fields lists the fields repr and _asdict show) ----

class _Record:
    _fields: ClassVar[tuple[str, ...]]
    def _asdict(self) -> dict[str, Any]: ...

class DomainFlags(_Record):
    running: bool
    blocked: bool
    paused: bool
    shutdown: bool
    dying: bool

class Capabilities(_Record):
    soft_affinity: bool
    vcpu_limit: str
    set_online: bool
    node_affinity: bool

class CpuPool(_Record):
    id: int
    name: str
    scheduler: str
    cpus: CpuMap
    domains: int

class NodeMemory(_Record):
    size: int
    free: int

class HostInfo(_Record):
    possible: CpuMap
    present: CpuMap
    online: CpuMap
    threads_per_core: int
    cores_per_socket: int
    sockets: int
    numa_nodes: list[CpuMap]
    cpu_socket: list[Optional[int]]
    cpu_node: list[Optional[int]]
    cpu_core: list[Optional[int]]
    node_memory: list[NodeMemory]
    pools: list[CpuPool]
    caps: Capabilities
    system_cpus: Optional[CpuMap]
    @property
    def cpu_universe(self) -> int: ...
    def parse(self, text: _Text, dialect: _DialectArg = None) -> CpuMap: ...

class DomainInfo(_Record):
    id: int
    name: str            # UTF-8, invalid bytes replaced by U+FFFD
    name_bytes: bytes    # the exact bytes
    flags: DomainFlags
    online_vcpus: int
    max_vcpus: int
    cpu_time_ns: int
    cpu_time: datetime.timedelta
    uuid: str
    vcpu_problem: str
    pool: Optional[int]

class VcpuMetrics(_Record):
    vcpu: int
    state: VcpuState
    cpu_time_ns: int
    cpu_time: datetime.timedelta
    cpu: Optional[int]
    wait_time_ns: Optional[int]
    wait_time: Optional[datetime.timedelta]

class DomainSnapshot(_Record):
    domain: DomainInfo
    vcpus: list[VcpuMetrics]
    hard: AffinityMatrix
    soft: AffinityMatrix
    effective: AffinityMatrix
    limit: AffinityMatrix
    node_affinity: Optional[NodeSet]
    scope: SnapshotScope
    taken_at: datetime.datetime
    taken_at_ns: int

class HostSnapshot(_Record):
    host: HostInfo
    domains: list[DomainSnapshot]
    taken_at: datetime.datetime
    taken_at_ns: int
    def to_prometheus(self) -> str: ...

class PinResult(_Record):
    hard: CpuMap
    soft: CpuMap

class MatrixPinResult(_Record):
    hard: AffinityMatrix
    soft: AffinityMatrix
    before_hard: AffinityMatrix
    before_soft: AffinityMatrix

class PinPlan(_Record):
    before: DomainSnapshot
    hard: AffinityMatrix
    soft: AffinityMatrix
    effective: AffinityMatrix
    changed: VcpuSet
    refusal: Optional[Error]

# ---- the hypervisor ----

_Domain = Union[int, str, bytes, DomainInfo, DomainSnapshot]
_MatrixArg = Union[AffinityMatrix, Sequence[_MapArg], Any]  # Any: a 2-D array of bools
_ScopeArg = Optional[Union[SnapshotScope, str]]

class Hypervisor:
    @property
    def kind(self) -> str: ...
    def host_info(self) -> HostInfo: ...
    def domains(self) -> list[DomainInfo]: ...
    def snapshot(self, domain: _Domain, scope: _ScopeArg = None) -> DomainSnapshot: ...
    def snapshot_all(self, scope: _ScopeArg = None) -> HostSnapshot: ...
    def pin(self, domain: _Domain, vcpu: int, *, hard: Optional[_MapArg] = None, soft: Optional[_MapArg] = None,
            force: bool = False) -> PinResult: ...
    def pin_vcpus(self, domain: _Domain, vcpus: Union[VcpuSet, _Text, Iterable[int]], *,
                  hard: Optional[_MapArg] = None, soft: Optional[_MapArg] = None,
                  force: bool = False) -> MatrixPinResult: ...
    def pin_matrix(self, domain: _Domain, *, hard: Optional[_MatrixArg] = None, soft: Optional[_MatrixArg] = None,
                   force: bool = False, restore: bool = False) -> MatrixPinResult: ...
    def plan_matrix(self, domain: _Domain, *, hard: Optional[_MatrixArg] = None, soft: Optional[_MatrixArg] = None,
                    force: bool = False) -> PinPlan: ...
    def set_online_vcpus(self, domain: _Domain, vcpus: Union[int, VcpuSet, _Text, Iterable[int]]) -> None: ...
    def plan_vcpus(self, domain: _Domain, vcpus: Union[VcpuSet, _Text, Iterable[int]], *,
                   hard: Optional[_MapArg] = None, soft: Optional[_MapArg] = None,
                   force: bool = False) -> PinPlan: ...
    @property
    def last_call_count(self) -> int: ...
    def mock_advance(self, nanoseconds: int) -> None: ...
    def mock_fail_call(self, k: int, code: Union[ErrorCode, str]) -> None: ...
    def close(self) -> None: ...
    def __enter__(self) -> Hypervisor: ...
    def __exit__(self, *args: object) -> None: ...

def open(kind: str = "auto", *, fixture: Union[str, bytes, os.PathLike[str], None] = None,
         qmp: Sequence[str] = ()) -> Hypervisor: ...
