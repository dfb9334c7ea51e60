"""The pure-Python part of vcpumap: its enums and its exceptions.

The extension (vcpumap._vcpumap) imports this module when it loads and hands these classes
to the C++ side, so the values it returns are these enum members and the errors it raises
are these exceptions. Import them from ``vcpumap``, not from here.
"""
import enum

__all__ = [
    "VcpuState", "ErrorCode", "Dialect", "TextForm", "Exclusion", "SnapshotScope",
    "Error", "NotFoundError", "InvalidArgumentError", "PermissionDeniedError", "UnavailableError",
    "BusyError", "InternalError", "UnsupportedError", "ParseError", "PinError", "TransactionError",
]


class VcpuState(enum.Enum):
    """What a vcpu is doing (vcpumap::VcpuState). Xen's three flags map as: not online ->
    OFFLINE; running -> RUNNING; blocked -> BLOCKED; online and neither -> RUNNABLE (waiting
    for a CPU). UNKNOWN where the backend cannot tell. The value is the name the tools print."""
    OFFLINE = "offline"
    RUNNING = "running"
    BLOCKED = "blocked"
    RUNNABLE = "runnable"
    UNKNOWN = "unknown"


class ErrorCode(enum.Enum):
    """The kind of a failure (vcpumap::ErrorCode); every vcpumap.Error has one as ``.code``."""
    NOT_FOUND = "not_found"
    INVALID_ARGUMENT = "invalid_argument"
    PERMISSION_DENIED = "permission_denied"
    HYPERVISOR_UNAVAILABLE = "hypervisor_unavailable"
    BUSY = "busy"
    INTERNAL = "internal"
    UNSUPPORTED = "unsupported"


class Dialect(enum.Enum):
    """How much of the cpulist grammar a parse accepts (vcpumap::Dialect): STRICT only the
    canonical text, STANDARD (the default) exclusions, strides, all/none, node:N and a 0x
    mask, COMPAT also hwloc's open ranges and virsh's y- strings."""
    STRICT = "strict"
    STANDARD = "standard"
    COMPAT = "compat"


class TextForm(enum.Enum):
    """A text form of a set (vcpumap::TextForm). format(m, spec) takes the letter:
    LIST 'l' (or '') "0-3,8", XL_LIST 'a' ("all"/"none" for full/empty), SYSFS_MASK 'm'
    "00000f0f", HEX 'x' "0xf0f", YN 'y' "yyyy----"."""
    LIST = "list"
    XL_LIST = "xl_list"
    SYSFS_MASK = "sysfs_mask"
    HEX = "hex"
    YN = "yn"


class Exclusion(enum.Enum):
    """When '^N' items apply (vcpumap::Exclusion): IN_ORDER (default, xl and libvirt) or
    AFTER_INCLUSIONS (OpenStack Nova's rule)."""
    IN_ORDER = "in_order"
    AFTER_INCLUSIONS = "after_inclusions"


class SnapshotScope(enum.Enum):
    """What a snapshot reads: FULL (metrics and affinity matrices) or METRICS_ONLY (no
    matrices: on Xen, a privileged call per vcpu less)."""
    METRICS_ONLY = "metrics_only"
    FULL = "full"


class Error(Exception):
    """Every error vcpumap raises (vcpumap::Error). ``code`` is an ErrorCode; str(e) is the
    library's message, which names the domain, vcpu and CPUs concerned (domain names escaped).
    The subclasses below are chosen by code, so ``except vcpumap.NotFoundError`` works; PinError,
    ParseError and TransactionError carry more."""

    def __init__(self, message, code=ErrorCode.INTERNAL):
        super().__init__(message)
        self.code = ErrorCode(code)

    def __str__(self):
        return str(self.args[0]) if self.args else ""


class NotFoundError(Error, LookupError):
    """No such domain (or it vanished while being read): ErrorCode.NOT_FOUND."""


class InvalidArgumentError(Error, ValueError):
    """Bad input: a vcpu or CPU beyond the domain or host, an empty hard map, a number beyond a
    limit: ErrorCode.INVALID_ARGUMENT. Also a ValueError."""


class PermissionDeniedError(Error):
    """The hypervisor refused (not privileged): ErrorCode.PERMISSION_DENIED."""


class UnavailableError(Error):
    """No such hypervisor here (no /dev/xen/privcmd, no QEMU guests, a backend not built):
    ErrorCode.HYPERVISOR_UNAVAILABLE."""


class BusyError(Error):
    """A transient failure; retrying may succeed: ErrorCode.BUSY."""


class InternalError(Error):
    """The hypervisor or the library broke a promise (a rollback that failed, a closed
    Hypervisor): ErrorCode.INTERNAL."""


class UnsupportedError(Error):
    """This hypervisor has no such thing (a soft affinity on Linux): ErrorCode.UNSUPPORTED."""


class ParseError(InvalidArgumentError):
    """A cpulist (mask, y- string) that does not read (vcpumap::ParseError).

    column: the 1-based column of the offending character (len(input) + 1 when the text ended
    too early); reason: the fixed reason text; input: the text read; out_of_range: True when the
    text is well formed but names a CPU that cannot be (beyond the universe or the parse limit),
    False for a syntax error."""

    def __init__(self, message, column=0, reason="", input="", out_of_range=False):  # noqa: A002
        super().__init__(message, ErrorCode.INVALID_ARGUMENT)
        self.column = column
        self.reason = reason
        self.input = input
        self.out_of_range = out_of_range


class PinError(Error):
    """A whole-matrix or sparse pin failed while being applied (vcpumap::PinError).

    failed_vcpu: the first vcpu whose pin failed. rolled_back: True when every vcpu the pin had
    changed was restored; False when restoring failed too (then code is ErrorCode.INTERNAL and
    the message lists the vcpus left changed). code is the failing call's. A pin refused before
    any change raises the plain Error subclass of its code instead."""

    def __init__(self, message, code=ErrorCode.INTERNAL, failed_vcpu=0, rolled_back=False):
        super().__init__(message, code)
        self.failed_vcpu = failed_vcpu
        self.rolled_back = rolled_back


class TransactionError(Error):
    """A pin of several domains failed at failed_domain; the domains pinned before it were
    restored when rolled_back is True (vcpumap::TransactionError)."""

    def __init__(self, message, code=ErrorCode.INTERNAL, failed_domain=0, rolled_back=False):
        super().__init__(message, code)
        self.failed_domain = failed_domain
        self.rolled_back = rolled_back


# The class raised for each code (PinError, ParseError and TransactionError aside).
ERROR_CLASSES = {
    ErrorCode.NOT_FOUND: NotFoundError,
    ErrorCode.INVALID_ARGUMENT: InvalidArgumentError,
    ErrorCode.PERMISSION_DENIED: PermissionDeniedError,
    ErrorCode.HYPERVISOR_UNAVAILABLE: UnavailableError,
    ErrorCode.BUSY: BusyError,
    ErrorCode.INTERNAL: InternalError,
    ErrorCode.UNSUPPORTED: UnsupportedError,
}
