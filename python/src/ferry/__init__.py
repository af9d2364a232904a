"""ferry for Python: Rust-owned memory as zero-copy memoryviews, Python callbacks that Rust calls,
and async work on Rust threads, over ferry's C ABI (cffi in ABI mode, no compiled extension).

    import ferry
    with ferry.Buffer.copy(b"hello") as buf:
        mv = buf.view()                  # a memoryview over the Rust bytes: no copy
        print(ferry.checksum(buf))       # computed on a Rust worker thread

Everything that fails raises a subclass of ``ferry.FerryError`` (one per status).
"""

from __future__ import annotations

from ._async import (
    OP_CALL,
    OP_CHECKSUM,
    OP_ECHO,
    OP_PANIC,
    OP_SLEEP,
    AsyncioFuture,
    Future,
    Request,
    checksum,
    checksum_async,
    echo,
    set_workers,
    shutdown_async,
    submit,
    submit_async,
    submit_many,
    submit_many_async,
)
from ._bindings import DEFINES as _DEFINES
from ._buffer import MAX_LEN, Buffer
from ._callback import Callback, Payload, invoke
from ._errors import (
    AllocFailed,
    CallbackFailed,
    CallbackPanic,
    Cancelled,
    Closed,
    FerryError,
    InvalidArgument,
    InvalidHandle,
    LimitReached,
    NullPointer,
    OutOfRange,
    Overflow,
    Panic,
    QueueFull,
    TableFull,
    TooLarge,
    Unsupported,
    WouldDeadlock,
    NestedTooDeep,
    status_message,
)
from ._lib import LIBRARY_PATH as _LIBRARY_PATH
from ._lib import lib as _cdll
from ._pressure import DEFAULT_SOFT_LIMIT, set_soft_limit, soft_limit
from ._stats import CallbackStats, Stats, callback_stats, reset_peak, stats

__version__ = "0.1.0"

#: The C ABI version these bindings were generated for (FERRY_ABI_VERSION).
ABI_VERSION = _DEFINES["ABI_VERSION"]


def library_path() -> str:
    """The path (or name) of the libferry that was loaded."""
    return _LIBRARY_PATH


def abi_version() -> int:
    """The ABI version of the loaded library (equal to ABI_VERSION, checked at import)."""
    return _cdll.ferry_abi_version()


__all__ = [
    "ABI_VERSION",
    "DEFAULT_SOFT_LIMIT",
    "MAX_LEN",
    "OP_CALL",
    "OP_CHECKSUM",
    "OP_ECHO",
    "OP_PANIC",
    "OP_SLEEP",
    "AllocFailed",
    "AsyncioFuture",
    "Buffer",
    "Callback",
    "CallbackFailed",
    "CallbackPanic",
    "CallbackStats",
    "Cancelled",
    "Closed",
    "FerryError",
    "Future",
    "InvalidArgument",
    "InvalidHandle",
    "LimitReached",
    "NullPointer",
    "OutOfRange",
    "Overflow",
    "Panic",
    "Payload",
    "QueueFull",
    "Request",
    "Stats",
    "TableFull",
    "TooLarge",
    "Unsupported",
    "WouldDeadlock",
    "NestedTooDeep",
    "abi_version",
    "callback_stats",
    "checksum",
    "checksum_async",
    "echo",
    "invoke",
    "library_path",
    "reset_peak",
    "set_soft_limit",
    "set_workers",
    "shutdown_async",
    "soft_limit",
    "stats",
    "status_message",
    "submit",
    "submit_async",
    "submit_many",
    "submit_many_async",
]
