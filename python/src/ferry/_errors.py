"""ferry's exceptions: one class per status of ffi/ferry.h, all under FerryError."""

from __future__ import annotations

from ._bindings import STATUSES
from ._lib import ffi, lib

#: Status values by name, e.g. STATUS["INVALID_HANDLE"] == 1.
STATUS = {name: value for value, name, _ in STATUSES}
OK = STATUS["OK"]


def status_message(status: int) -> str:
    """Returns the library's message for a status value ("unknown status" for an unknown one)."""
    n = ffi.new("size_t *")
    lib.ferry_status_message(status, ffi.NULL, 0, n)
    buf = ffi.new("char[]", n[0] + 1)
    lib.ferry_status_message(status, buf, n[0] + 1, ffi.NULL)
    return ffi.string(buf).decode("utf-8", "replace")


_MESSAGES = {value: status_message(value) for value, _, _ in STATUSES}


class FerryError(Exception):
    """A failed ferry call. ``status`` is the FerryStatus code, ``status_name`` its name.

    Each status has its own subclass (``InvalidHandle``, ``Closed``, ``LimitReached``, ...), so
    ``except ferry.LimitReached`` catches exactly that one; ``except ferry.FerryError`` catches all.
    """

    status: int = -1

    def __init__(self, message: str | None = None, *, status: int | None = None):
        if status is not None:
            self.status = status
        if message is None:
            message = _MESSAGES.get(self.status, "unknown status")
        super().__init__(message)

    @property
    def status_name(self) -> str:
        for value, name, _ in STATUSES:
            if value == self.status:
                return name
        return f"STATUS_{self.status}"


class InvalidHandle(FerryError):
    """The id is 0, unknown, forged or already released."""

    status = STATUS["INVALID_HANDLE"]


class NullPointer(FerryError):
    """A required pointer argument is NULL (a bug in the bindings if you ever see it)."""

    status = STATUS["NULL_POINTER"]


class OutOfRange(FerryError, IndexError):
    """An offset or length reaches outside the buffer."""

    status = STATUS["OUT_OF_RANGE"]


class Overflow(FerryError, OverflowError):
    """offset + length overflows."""

    status = STATUS["OVERFLOW"]


class TooLarge(FerryError, ValueError):
    """A size exceeds ferry.MAX_LEN."""

    status = STATUS["TOO_LARGE"]


class LimitReached(FerryError):
    """The live-byte limit refused the create (see ferry.set_soft_limit)."""

    status = STATUS["LIMIT_REACHED"]


class Panic(FerryError):
    """A Rust panic was caught at the boundary; ferry's state is still consistent."""

    status = STATUS["PANIC"]


class AllocFailed(FerryError, MemoryError):
    """The allocator returned no memory."""

    status = STATUS["ALLOC_FAILED"]


class TableFull(FerryError):
    """The handle table has no free slot."""

    status = STATUS["TABLE_FULL"]


class InvalidArgument(FerryError, ValueError):
    """An argument has a value outside its documented domain."""

    status = STATUS["INVALID_ARGUMENT"]


class CallbackFailed(FerryError):
    """A callback failed. ``detail`` is the failure's detail value (a C callback's own code).

    A Python callback's exception is re-raised as itself, not as this class; this one reports
    failures of Go and C callbacks, whose detail Python cannot interpret.
    """

    status = STATUS["CALLBACK_FAILED"]

    def __init__(self, message: str | None = None, *, status: int | None = None, detail: int = 0):
        super().__init__(message, status=status)
        self.detail = detail


class CallbackPanic(CallbackFailed):
    """A callback panicked (Go) or otherwise failed abnormally; it was recovered."""

    status = STATUS["CALLBACK_PANIC"]


class Cancelled(FerryError):
    """The operation was cancelled before it finished."""

    status = STATUS["CANCELLED"]


class Closed(FerryError):
    """The service (worker pool, queue) is shut down, or a Buffer or Callback is closed."""

    status = STATUS["CLOSED"]


class QueueFull(FerryError):
    """A bounded queue is full; try again later."""

    status = STATUS["QUEUE_FULL"]


class Unsupported(FerryError):
    """The operation name or code is not known."""

    status = STATUS["UNSUPPORTED"]


class WouldDeadlock(FerryError):
    """Work submitted from a worker thread found every worker busy and the pool at its most workers."""

    status = STATUS["WOULD_DEADLOCK"]


class NestedTooDeep(FerryError, RecursionError):
    """A callback was invoked with too little stack left on its thread (callbacks nested too deeply)."""

    status = STATUS["NESTED_TOO_DEEP"]


#: The exception class for each status value (OK has none).
ERRORS: dict[int, type[FerryError]] = {
    cls.status: cls
    for cls in (
        InvalidHandle,
        NullPointer,
        OutOfRange,
        Overflow,
        TooLarge,
        LimitReached,
        Panic,
        AllocFailed,
        TableFull,
        InvalidArgument,
        CallbackFailed,
        CallbackPanic,
        Cancelled,
        Closed,
        QueueFull,
        Unsupported,
        WouldDeadlock,
        NestedTooDeep,
    )
}


def error(status: int, message: str | None = None) -> FerryError:
    """Returns the exception for a failed status (a plain FerryError for an unknown value)."""
    cls = ERRORS.get(status)
    if cls is None:
        return FerryError(message, status=status)
    return cls(message)


def check(status: int) -> None:
    """Raises the exception for ``status`` unless it is OK."""
    if status != OK:
        raise error(status)
