"""ferry.Buffer: Rust memory viewed from Python without a copy."""

from __future__ import annotations

import sys
from functools import partial

from . import _pressure
from ._bindings import DEFINES
from ._errors import OK, STATUS, Closed, check, error
from ._lib import ffi, lib

MAX_LEN = DEFINES["MAX_LEN"]
_LIMIT_REACHED = STATUS["LIMIT_REACHED"]
_U64 = (1 << 64) - 1

_ffi_buffer = ffi.buffer
_ffi_gc = ffi.gc
_ffi_new = ffi.new
_release = lib.ferry_buffer_release
_track = _pressure.track
_untrack = _pressure.untrack


def _release_id(id_: int, n: int, _ptr) -> None:
    # The pin's destructor: runs once, when the Buffer is closed (or unreachable) and the last
    # memoryview over its memory is gone. It must not raise (cffi would only print the error).
    _release(id_)
    _untrack(n)


def _check_size(name: str, n) -> int:
    if not isinstance(n, int) or isinstance(n, bool):
        raise TypeError(f"{name} must be an int, not {type(n).__name__}")
    if n < 0:
        raise ValueError(f"{name} must be >= 0, got {n}")
    return n


class Buffer:
    """One ferry id and the Rust memory it names, viewed from Python without a copy.

    Make one with ``Buffer.new(n)`` (zeroed), ``Buffer.copy(data)``, ``buf.share()`` or
    ``buf.slice(off, n)``, or take over an id with ``Buffer.from_id(id)``.

    Zero-copy access: ``buf.view()`` returns a writable ``memoryview`` (format ``B``) over the
    Rust bytes, at the same cost whatever the size; ``memoryview(buf)`` does the same on Python
    3.12 and later (PEP 688), as do ``numpy.asarray(buf)`` on any version and
    ``numpy.frombuffer(buf)`` on 3.12+ (``numpy.frombuffer(buf.view())`` before). ``bytes(buf)``
    copies.

    The lifetime rule: **the Rust memory is released when the Buffer is closed and no memoryview
    of it is alive.** Every view (and every slice of a view, a numpy array over it, ...) holds the
    memory, so a view never dangles: ``close()`` releases the id at once when no view is alive,
    and otherwise when the last one is released or garbage-collected. After ``close()``, new
    views and every method but ``close`` raise ``ferry.Closed``. ``close()`` can be called more
    than once; ``with Buffer.new(n) as buf:`` closes at the end of the block. A Buffer that becomes
    unreachable without ``close()`` is released by its finalizer; its bytes count toward the soft
    limit (``ferry.set_soft_limit``) until then.

    Methods are safe to call from several threads; synchronising writers of the bytes is the
    caller's job, as with any shared memory.
    """

    # _pin is a `uint8_t *` cdata with a destructor (ffi.gc) that releases _id; every view holds
    # it through a cffi buffer object, the Buffer holds it until close(). None once closed.
    __slots__ = ("_id", "_len", "_pin", "__weakref__")

    def __init__(self) -> None:
        raise TypeError("use Buffer.new(n), Buffer.copy(data) or Buffer.from_id(id)")

    @classmethod
    def _from_view(cls, v) -> Buffer:
        b = object.__new__(cls)
        id_, n = v.id, v.len
        b._id = id_
        b._len = n
        b._pin = _ffi_gc(v.ptr, partial(_release_id, id_, n))
        _track(n)
        return b

    @classmethod
    def new(cls, n: int) -> Buffer:
        """Returns a new zeroed Buffer of ``n`` bytes (an empty one for 0).

        Raises TooLarge past ferry.MAX_LEN, LimitReached when the live-byte limit refuses it even
        after a garbage collection, AllocFailed when the allocator has no memory."""
        _check_size("n", n)
        v = _ffi_new("FerryView *")
        attempt = 0
        while True:
            st = lib.ferry_buffer_new(n, v)
            if st == OK:
                return cls._from_view(v)
            if st != _LIMIT_REACHED or not _pressure.relieve(attempt, n):
                raise error(st)
            attempt += 1

    @classmethod
    def copy(cls, data) -> Buffer:
        """Returns a new Buffer holding a copy of ``data`` (bytes, bytearray, memoryview, array,
        numpy array, another Buffer: anything C-contiguous with the buffer protocol)."""
        if isinstance(data, Buffer):
            data = data.view()
        elif isinstance(data, str):
            raise TypeError("Buffer.copy needs bytes-like data, not str (encode it first)")
        mv = memoryview(data)
        if not mv.c_contiguous:
            raise ValueError("Buffer.copy needs C-contiguous data")
        n = mv.nbytes
        src = ffi.from_buffer("uint8_t[]", mv) if n else ffi.NULL
        v = _ffi_new("FerryView *")
        attempt = 0
        while True:
            st = lib.ferry_buffer_copy(src, n, v)
            if st == OK:
                return cls._from_view(v)
            if st != _LIMIT_REACHED or not _pressure.relieve(attempt, n):
                raise error(st)
            attempt += 1

    @classmethod
    def from_id(cls, id: int) -> Buffer:
        """Takes ownership of buffer ``id`` (made by Rust, Go or C, or detached) and returns it as
        a Buffer, which releases it on close. Raises InvalidHandle for an unknown id."""
        _check_size("id", id)
        v = _ffi_new("FerryView *")
        check(lib.ferry_buffer_view(id, v))
        return cls._from_view(v)

    # -- zero-copy views ---------------------------------------------------------------------

    def view(self, *, readonly: bool = False) -> memoryview:
        """Returns a memoryview (format ``B``) over the Rust bytes: no copy, any size, ~0.5 us.

        The view holds the memory: it stays valid after ``close()`` until it (and every slice of
        it) is released or collected. Use ``with buf.view() as mv:`` to release it promptly.
        Raises Closed after close()."""
        pin = self._pin
        if pin is None:
            raise Closed("buffer is closed")
        if self._len == 0:
            mv = memoryview(bytearray())
        else:
            mv = memoryview(_ffi_buffer(pin, self._len))
        return mv.toreadonly() if readonly else mv

    if sys.version_info >= (3, 12):

        def __buffer__(self, flags: int, /) -> memoryview:
            """PEP 688: ``memoryview(buf)``, ``numpy.frombuffer(buf)`` and every C consumer of the
            buffer protocol get the Rust bytes without a copy; the export holds the memory."""
            return self.view()

        def __release_buffer__(self, view: memoryview, /) -> None:
            view.release()

    def __array__(self, dtype=None, copy=None):
        """numpy.asarray(buf): a uint8 array over the Rust bytes (no copy unless asked for)."""
        import numpy  # only ever called by numpy, so numpy is there

        arr = numpy.frombuffer(self.view(), dtype=numpy.uint8)
        if dtype is not None and numpy.dtype(dtype) != arr.dtype:
            return arr.astype(dtype)
        return arr.copy() if copy else arr

    def __bytes__(self) -> bytes:
        """bytes(buf) copies the bytes."""
        pin = self._pin
        if pin is None:
            raise Closed("buffer is closed")
        return _ffi_buffer(pin, self._len)[:] if self._len else b""

    def tobytes(self) -> bytes:
        """Returns a copy of the bytes, as bytes(buf)."""
        return self.__bytes__()

    # -- more ids over the same memory -------------------------------------------------------

    def share(self) -> Buffer:
        """Returns a second Buffer over the same memory, with its own id; either may be closed
        first."""
        pin = self._pin
        if pin is None:
            raise Closed("buffer is closed")
        v = _ffi_new("FerryView *")
        st = lib.ferry_buffer_share(self._id, v)
        del pin  # held across the call, so the id cannot be released meanwhile
        check(st)
        return Buffer._from_view(v)

    def slice(self, offset: int, n: int) -> Buffer:
        """Returns a Buffer over ``n`` bytes from ``offset``, sharing this one's memory (no copy).
        Raises OutOfRange when the range reaches past the end."""
        _check_size("offset", offset)
        _check_size("n", n)
        pin = self._pin
        if pin is None:
            raise Closed("buffer is closed")
        if offset > _U64 or n > _U64:
            raise error(STATUS["OVERFLOW"])
        v = _ffi_new("FerryView *")
        st = lib.ferry_buffer_slice(self._id, offset, n, v)
        del pin
        check(st)
        return Buffer._from_view(v)

    # -- ownership ---------------------------------------------------------------------------

    def close(self) -> None:
        """Closes the Buffer: its id is released now if no view of it is alive, or else when the
        last one goes. Can be called more than once; only the first call does anything."""
        pin = self._pin
        if pin is not None:
            self._pin = None
            del pin  # the last reference unless a view holds it: the destructor releases the id

    def detach(self) -> int:
        """Closes the Buffer and returns an id that the caller now owns (to hand to Rust, Go or C,
        which must release it). It is this Buffer's id when no view is alive, or else a new id
        over the same memory (the views keep the old one until they go)."""
        pin = self._pin
        if pin is None:
            raise Closed("buffer is closed")
        self._pin = None
        if sys.getrefcount(pin) == 2:  # `pin` and the argument: no view, no other thread holds it
            ffi.gc(pin, None)  # disarm the destructor: the id is the caller's now
            _untrack(self._len)
            return self._id
        v = _ffi_new("FerryView *")
        check(lib.ferry_buffer_share(self._id, v))
        return v.id

    # -- properties and protocol -------------------------------------------------------------

    @property
    def id(self) -> int:
        """The ferry id (the same after close, but invalid once released)."""
        return self._id

    @property
    def closed(self) -> bool:
        """True after close() or detach()."""
        return self._pin is None

    def __len__(self) -> int:
        return self._len

    def __enter__(self) -> Buffer:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._pin is None else "open"
        return f"<ferry.Buffer id={self._id:#x} len={self._len} {state}>"

    def __reduce__(self):
        raise TypeError("a ferry.Buffer cannot be pickled; pickle bytes(buf) instead")
