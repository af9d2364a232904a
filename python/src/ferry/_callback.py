"""Python callables that Rust, Go and C call through ferry by callback id."""

from __future__ import annotations

import itertools
import threading
from collections import OrderedDict
from typing import Any, Callable, NamedTuple, Optional

from ._buffer import Buffer
from ._errors import OK, STATUS, CallbackFailed, CallbackPanic, Closed, check, error
from ._lib import ffi, lib

_CALLBACK_FAILED = STATUS["CALLBACK_FAILED"]
_CALLBACK_PANIC = STATUS["CALLBACK_PANIC"]
_U64 = (1 << 64) - 1


class Payload(NamedTuple):
    """What a callback or an async job returns: an optional Buffer (owned by the receiver) and a
    64-bit value."""

    buffer: Optional[Buffer]
    value: int


# -- failures travel through Rust as tokens ---------------------------------------------------
#
# A Python callback's exception cannot cross Rust, so the trampoline stores it here and hands
# Rust a token as the failure's detail value; the Python caller that gets the failure back
# (invoke, a Future) claims the exception by token and re-raises it. Tokens carry a tag in the
# high 16 bits (Go uses another), so a C callback's own detail code is never mistaken for one.
# Failures nobody claims (the caller was Rust, Go or C) are dropped after _FAILURE_KEEP newer ones.

_TOKEN_TAG = 0xFE79 << 48
_TOKEN_MASK = (1 << 48) - 1
_FAILURE_KEEP = 1024
_failures: OrderedDict[int, BaseException] = OrderedDict()
_failures_lock = threading.Lock()
_failure_seq = itertools.count(1)


def _put_failure(exc: BaseException) -> int:
    token = _TOKEN_TAG | (next(_failure_seq) & _TOKEN_MASK)
    with _failures_lock:
        _failures[token] = exc
        while len(_failures) > _FAILURE_KEEP:
            _failures.popitem(last=False)
    return token


def _take_failure(token: int) -> BaseException | None:
    if token & ~_TOKEN_MASK != _TOKEN_TAG:
        return None
    with _failures_lock:
        return _failures.pop(token, None)


def result_error(status: int, detail: int) -> BaseException:
    """The exception for a failed invoke or job: a Python callback's own exception when the detail
    is one of our tokens, else the FerryError for the status."""
    if status in (_CALLBACK_FAILED, _CALLBACK_PANIC):
        exc = _take_failure(detail)
        if exc is not None:
            return exc
        cls = CallbackPanic if status == _CALLBACK_PANIC else CallbackFailed
        return cls(f"ferry: callback failed (detail {detail:#x})", detail=detail)
    return error(status)


def pending_failures() -> int:
    """The number of stored callback exceptions not yet claimed (for leak checks)."""
    return len(_failures)


# -- the trampolines ---------------------------------------------------------------------------
#
# One cffi callback for every Python callable: ferry stores an integer key as user_data, and the
# trampoline finds the callable in _registry. cffi takes the GIL when Rust calls it from a thread
# Python never saw (a worker), and releases it on return; ferry holds no lock meanwhile.

_registry: dict[int, Callable[..., Any]] = {}
_keys = itertools.count(1)


def _to_result(res) -> tuple[int, int]:
    """Turns what a callable returned into (buffer id handed over, value)."""
    if res is None:
        return 0, 0
    if isinstance(res, Buffer):
        return res.detach(), 0
    if isinstance(res, int) and not isinstance(res, bool):
        if not 0 <= res <= _U64:
            raise ValueError(f"callback result {res} does not fit in 64 bits")
        return 0, res
    if isinstance(res, tuple) and len(res) == 2:
        buf, value = res
        if buf is not None and not isinstance(buf, Buffer):
            raise TypeError(f"callback result buffer must be a ferry.Buffer or None, not {type(buf).__name__}")
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= _U64:
            raise ValueError(f"callback result value must be an int in 0..2**64-1, not {value!r}")
        return (buf.detach() if buf is not None else 0), value
    raise TypeError(
        "a ferry callback returns None, an int, a Buffer or a (Buffer | None, int) pair, "
        f"not {type(res).__name__}"
    )


def _trampoline(user_data, buffer, value, result_out):
    arg = None
    out_buf = 0
    try:
        fn = _registry.get(int(ffi.cast("uintptr_t", user_data)))
        if fn is None:
            raise LookupError("ferry: callback key not registered on the Python side")
        if buffer:
            # The argument is borrowed for the call: Python takes an id of its own (a share), so
            # views made in the callback stay valid however long they are kept.
            v = ffi.new("FerryView *")
            check(lib.ferry_buffer_share(buffer, v))
            arg = Buffer._from_view(v)
        out_buf, out_val = _to_result(fn(arg, value))
        result_out.buffer = out_buf
        result_out.value = out_val
        return OK
    except Exception as exc:  # the callable's failure: a status for Rust, re-raised in Python
        if out_buf:
            lib.ferry_buffer_release(out_buf)
        result_out.buffer = 0
        result_out.value = _put_failure(exc)
        return _CALLBACK_FAILED
    except BaseException as exc:  # KeyboardInterrupt, SystemExit: abnormal, but never unwinds
        if out_buf:
            lib.ferry_buffer_release(out_buf)
        result_out.buffer = 0
        result_out.value = _put_failure(exc)
        return _CALLBACK_PANIC
    finally:
        if arg is not None:
            arg.close()


def _on_trampoline_error(exc_type, exc, tb):
    # Reached only if the trampoline itself failed before its try (cffi then returns `error`).
    return None


def _drop(user_data):
    _registry.pop(int(ffi.cast("uintptr_t", user_data)), None)


_c_trampoline = ffi.callback("FerryCallbackFn", _trampoline, error=_CALLBACK_PANIC,
                             onerror=_on_trampoline_error)
_c_drop = ffi.callback("FerryDropFn", _drop)


class Callback:
    """A Python callable registered with ferry, so that Rust, Go and C can call it by id.

    ``fn(buffer, value)`` gets an optional ``ferry.Buffer`` (closed after the call: ``share()`` it
    to keep it; views made during the call stay valid) and a 64-bit int, and returns None, an int,
    a Buffer (handed over to the caller), or a ``(Buffer | None, int)`` pair. It may run on any
    thread, Rust worker threads included, concurrently with itself, and may call ferry again.

    An exception raised by ``fn`` becomes FERRY_STATUS_CALLBACK_FAILED on the Rust side (a
    BaseException that is not an Exception, such as KeyboardInterrupt, CALLBACK_PANIC), and a
    Python caller (``cb(...)``, ``ferry.invoke``, a Future) gets the same exception object
    re-raised; it never unwinds through Rust.

    Close it when done (or use ``with``): like the Go package's Callback, it is not released by
    the garbage collector, since Rust code may hold its id. The callable is dropped when Rust lets
    go of it (after close, and after every running call and queued job).
    """

    __slots__ = ("_id", "_closed", "__weakref__")

    def __init__(self, fn: Callable[[Optional[Buffer], int], Any]):
        if not callable(fn):
            raise TypeError("ferry.Callback needs a callable")
        key = next(_keys)
        _registry[key] = fn
        out = ffi.new("uint64_t *")
        st = lib.ferry_callback_register(_c_trampoline, ffi.cast("void *", key), _c_drop, out)
        if st != OK:
            _registry.pop(key, None)  # ferry kept nothing and will not call the drop function
            raise error(st)
        self._id = out[0]
        self._closed = False

    @property
    def id(self) -> int:
        """The callback id to hand to Rust, Go or C (ferry_callback_invoke, FERRY_OP_CALL)."""
        return self._id

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        """Unregisters the callback; its id is invalid from now on. Can be called more than once."""
        if not self._closed:
            self._closed = True
            check(lib.ferry_callback_unregister(self._id))

    def __call__(self, buffer: Buffer | None = None, value: int = 0) -> Payload:
        """Calls the callback through ferry on this thread (see ferry.invoke)."""
        if self._closed:
            raise Closed("callback is closed")
        return invoke(self._id, buffer, value)

    def call_async(self, buffer: Buffer | None = None, value: int = 0):
        """Runs the callback on a Rust worker thread; returns a concurrent.futures.Future."""
        from ._async import OP_CALL, submit

        return submit(OP_CALL, buffer, arg=self._id, value=value)

    def __enter__(self) -> Callback:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<ferry.Callback id={self._id:#x}{' closed' if self._closed else ''}>"


def invoke(id: int, buffer: Buffer | None = None, value: int = 0) -> Payload:
    """Calls callback ``id`` (registered from Python, Go or C) on this thread, through Rust.

    ``buffer`` is lent for the call. Returns a Payload whose buffer, if any, the caller owns. A
    Python callback's exception is re-raised here; a Go or C callback's failure raises
    CallbackFailed or CallbackPanic with its detail; an unknown id raises InvalidHandle."""
    if not 0 <= value <= _U64:
        raise ValueError("value must fit in 64 bits")
    pin = None
    buf_id = 0
    if buffer is not None:
        pin = buffer._pin
        if pin is None:
            raise Closed("buffer is closed")
        buf_id = buffer._id
    out = ffi.new("FerryPayload *")
    st = lib.ferry_callback_invoke(id, buf_id, value, out)
    del pin
    if st != OK:
        raise result_error(st, out.value)
    return Payload(Buffer.from_id(out.buffer) if out.buffer else None, out.value)


def registered() -> int:
    """The number of Python callables ferry still holds (for leak checks)."""
    return len(_registry)
