"""vcpumap: see and set where virtual CPUs run, from Python.

    >>> import vcpumap
    >>> hv = vcpumap.open("mock")                   # or "auto", "xen", "linux"
    >>> s = hv.snapshot("xperf2")                   # a domain by name or id
    >>> [str(s.hard.row(v.vcpu)) for v in s.vcpus]  # every vcpu's hard affinity, a cpulist
    ['0-3', '0-3', '0-3', '0-3']
    >>> numpy.asarray(s.hard)                       # (vcpus, words) uint64, zero-copy, read-only

The bindings of the C++ library (include/vcpumap/), through its front layer
vcpumap::AnyHypervisor: every backend gives the same results and errors.

- CpuMap / VcpuSet: immutable, hashable sets of CPUs / vcpus with a universe; str() is the
  canonical cpulist, repr() evaluates back (vcpumap.CpuMap('0-3', universe=8)).
- HostInfo, DomainInfo, VcpuMetrics, DomainSnapshot, HostSnapshot: read-only values; times
  as int nanoseconds (``cpu_time_ns``) and as datetime.timedelta (``cpu_time``, microseconds).
- AffinityMatrix: the buffer protocol gives numpy the storage itself, a read-only
  (vcpus, words) array of uint64 (bit c % 64 of word c // 64 is CPU c, little-endian), zero
  copy, keeping its snapshot alive; ``unpacked()`` gives a (vcpus, cpus) bool copy.
- Strings from the hypervisor (domain names: guest owners choose them) are str decoded from
  UTF-8 with invalid bytes replaced by U+FFFD, so they always print and encode; the exact bytes
  are ``name_bytes``.
- Errors: vcpumap.Error and a subclass per ErrorCode; ParseError (column), PinError
  (failed_vcpu, rolled_back).
- Hypervisor calls release the GIL; one Hypervisor serves one call at a time (others wait).
"""
from ._types import (  # noqa: F401
    BusyError, Dialect, Error, ErrorCode, Exclusion, InternalError, InvalidArgumentError,
    NotFoundError, ParseError, PermissionDeniedError, PinError, SnapshotScope, TextForm,
    TransactionError, UnavailableError, UnsupportedError, VcpuState,
)
from ._vcpumap import (  # noqa: F401
    AffinityMatrix, Capabilities, CpuMap, CpuPool, DomainFlags, DomainInfo, DomainSnapshot, HostInfo,
    HostSnapshot, Hypervisor, MatrixPinResult, NodeMemory, NodeSet, PinPlan, PinResult, VcpuMetrics, VcpuSet,
    __version__, backends, open,
)

# Classes print and pickle as vcpumap.X, where users find them.
for _cls in (AffinityMatrix, Capabilities, CpuMap, CpuPool, NodeMemory, NodeSet, DomainFlags, DomainInfo, DomainSnapshot, HostInfo, HostSnapshot,
             Hypervisor, MatrixPinResult, PinPlan, PinResult, VcpuMetrics, VcpuSet, BusyError, Dialect, Error,
             ErrorCode, Exclusion, InternalError, InvalidArgumentError, NotFoundError, ParseError,
             PermissionDeniedError, PinError, SnapshotScope, TextForm, TransactionError, UnavailableError,
             UnsupportedError, VcpuState):
    _cls.__module__ = __name__
del _cls

__all__ = [
    "AffinityMatrix", "BusyError", "Capabilities", "CpuMap", "CpuPool", "NodeMemory", "NodeSet", "Dialect", "DomainFlags", "DomainInfo",
    "DomainSnapshot", "Error", "ErrorCode", "Exclusion", "HostInfo", "HostSnapshot", "Hypervisor",
    "InternalError", "InvalidArgumentError", "MatrixPinResult", "NotFoundError", "ParseError",
    "PermissionDeniedError", "PinError", "PinPlan", "PinResult", "SnapshotScope", "TextForm",
    "TransactionError", "UnavailableError", "UnsupportedError", "VcpuMetrics", "VcpuSet", "VcpuState",
    "__version__", "backends", "open",
]
