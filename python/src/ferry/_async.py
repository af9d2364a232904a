"""Async work on ferry's Rust worker pool: concurrent.futures and asyncio futures.

One completion queue and one poller thread per process: the poller sits in ferry_queue_wait with
the GIL released, which returns as soon as one completion is ready and hands over up to 256 at
once. It resolves concurrent.futures.Futures itself, and hands the completions of asyncio futures
to each event loop in one ``call_soon_threadsafe`` per batch, so a burst of completions costs one
crossing from Rust, one GIL acquisition and one loop wake-up, not one of each per completion.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import itertools
import os
import sys
import threading

from ._bindings import DEFINES
from ._buffer import Buffer
from ._callback import Payload, result_error
from ._errors import OK, STATUS, Closed, InvalidArgument, check, error
from ._lib import ffi, lib

OP_ECHO = DEFINES["OP_ECHO"]
OP_CHECKSUM = DEFINES["OP_CHECKSUM"]
OP_SLEEP = DEFINES["OP_SLEEP"]
OP_PANIC = DEFINES["OP_PANIC"]
OP_CALL = DEFINES["OP_CALL"]

_CLOSED = STATUS["CLOSED"]
_INVALID_HANDLE = STATUS["INVALID_HANDLE"]
_QUEUE_FULL = STATUS["QUEUE_FULL"]
_U64 = (1 << 64) - 1
_LITTLE = sys.byteorder == "little"
DEFAULT_BATCH = 256


class Future(concurrent.futures.Future):
    """A concurrent.futures.Future for a ferry job: ``cancel()`` also cancels the job in Rust (a
    job that has not started is skipped; a running one can see the flag). Its result is a
    ``ferry.Payload``; a result Buffer that arrives after a cancel is released."""

    def __init__(self, engine: Engine, tag: int):
        super().__init__()
        self._ferry_engine = engine
        self._ferry_tag = tag

    def cancel(self) -> bool:
        if not super().cancel():
            return False
        # As an executor does: move to CANCELLED_AND_NOTIFIED, so concurrent.futures.wait and
        # as_completed see the future as done.
        self.set_running_or_notify_cancel()
        self._ferry_engine.cancel(self._ferry_tag)
        return True

    def __await__(self):
        return asyncio.wrap_future(self).__await__()


class AsyncioFuture(asyncio.Future):
    """An asyncio.Future for a ferry job; cancelling it (or the Task awaiting it) cancels the job."""

    def __init__(self, engine: Engine, tag: int, loop):
        super().__init__(loop=loop)
        self._ferry_engine = engine
        self._ferry_tag = tag

    def cancel(self, msg=None) -> bool:
        if not super().cancel(msg=msg):
            return False
        self._ferry_engine.cancel(self._ferry_tag)
        return True


def _payload(buf: int, value: int) -> Payload:
    return Payload(Buffer.from_id(buf) if buf else None, value)


def _resolve_batch(batch) -> None:
    """Runs on an event loop: resolves the asyncio futures of one delivered batch."""
    for fut, buf, value, status in batch:
        if fut.cancelled():
            if buf:
                lib.ferry_buffer_release(buf)
        elif status == OK:
            fut.set_result(_payload(buf, value))
        else:
            fut.set_exception(result_error(status, value))


class Engine:
    """A completion queue, the futures waiting on it, and its poller thread."""

    def __init__(self, batch: int = DEFAULT_BATCH):
        if batch < 1:
            raise ValueError("batch must be >= 1")
        q = ffi.new("uint64_t *")
        check(lib.ferry_queue_new(q))
        self.queue = q[0]
        self.batch = batch
        self.calls: dict[int, object] = {}
        self._tags = itertools.count(1)
        self.delivered = 0
        self.crossings = 0
        self._thread = threading.Thread(target=self._poll, name="ferry-poller", daemon=True)
        self._thread.start()

    def _submit(self, fut, tag: int, op: int, buffer: Buffer | None, arg: int, value: int,
                retry: bool) -> None:
        pin = None
        input_id = 0
        if buffer is not None:
            pin = buffer._pin
            if pin is None:
                raise Closed("buffer is closed")
            input_id = buffer._id
        if not (0 <= arg <= _U64 and 0 <= value <= _U64):
            raise ValueError("arg and value must fit in 64 bits")
        self.calls[tag] = fut
        while True:
            st = lib.ferry_async_submit(self.queue, tag, op, input_id, arg, value)
            if st != _QUEUE_FULL or not retry:
                break
            # The pool's job queue is full: wait for one of ours to finish, then retry.
            if not self._wait_any_done():
                break
        del pin  # the job holds the bytes itself once submitted
        if st != OK:
            self.calls.pop(tag, None)
            raise error(st)

    def _wait_any_done(self) -> bool:
        pending = [f for f in list(self.calls.values()) if isinstance(f, concurrent.futures.Future)]
        if not pending:
            return False
        concurrent.futures.wait(pending[:64], timeout=1.0,
                                return_when=concurrent.futures.FIRST_COMPLETED)
        return True

    def submit(self, op: int, buffer: Buffer | None, arg: int, value: int) -> Future:
        tag = next(self._tags)
        fut = Future(self, tag)
        self._submit(fut, tag, op, buffer, arg, value, True)
        return fut

    def submit_asyncio(self, op: int, buffer: Buffer | None, arg: int, value: int,
                       loop) -> AsyncioFuture:
        tag = next(self._tags)
        fut = AsyncioFuture(self, tag, loop)
        # No retry on QUEUE_FULL here: blocking would stall the loop that resolves the futures.
        self._submit(fut, tag, op, buffer, arg, value, False)
        return fut

    def cancel(self, tag: int) -> None:
        # INVALID_HANDLE means the job just finished: its completion stands (and is released).
        lib.ferry_async_cancel(self.queue, tag)

    def _poll(self) -> None:
        batch = self.batch
        items = ffi.new("FerryCompletion[]", batch)
        words = memoryview(ffi.buffer(items)).cast("Q")  # 4 uint64 words per completion
        n_out = ffi.new("size_t *")
        wait = lib.ferry_queue_wait
        queue = self.queue
        calls = self.calls
        while True:
            st = wait(queue, items, batch, -1, n_out)  # the GIL is released while it waits
            n = n_out[0]
            if n:
                self.crossings += 1
                self.delivered += n
                self._deliver(words[: 4 * n].tolist(), calls)
            if st != OK:
                break  # CLOSED (or the queue id is gone): nothing more will come
        for tag in list(calls):
            fut = calls.pop(tag, None)
            if fut is not None:
                self._fail(fut, Closed("ferry: async machinery shut down"))

    @staticmethod
    def _fail(fut, exc) -> None:
        if isinstance(fut, asyncio.Future):
            try:
                fut.get_loop().call_soon_threadsafe(_fail_aio, fut, exc)
            except RuntimeError:
                pass  # the loop is closed
        else:
            try:
                fut.set_exception(exc)
            except concurrent.futures.InvalidStateError:
                pass

    def _deliver(self, w: list, calls: dict) -> None:
        loops = None
        for i in range(0, len(w), 4):
            tag, buf, value, st = w[i], w[i + 1], w[i + 2], w[i + 3]
            st = st & 0xFFFFFFFF if _LITTLE else st >> 32
            fut = calls.pop(tag, None)
            if fut is None:
                if buf:
                    lib.ferry_buffer_release(buf)  # a stray completion: not ours to keep
                continue
            if type(fut) is Future:
                if fut.cancelled():
                    if buf:
                        lib.ferry_buffer_release(buf)
                    continue
                try:
                    if st == OK:
                        fut.set_result(_payload(buf, value))
                    else:
                        fut.set_exception(result_error(st, value))
                except concurrent.futures.InvalidStateError:
                    pass  # cancelled meanwhile; a result Buffer is collected and released
            else:
                if loops is None:
                    loops = {}
                loop = fut.get_loop()
                items = loops.get(loop)
                if items is None:
                    items = loops[loop] = []
                items.append((fut, buf, value, st))
        if loops:
            for loop, items in loops.items():
                try:
                    loop.call_soon_threadsafe(_resolve_batch, items)
                except RuntimeError:  # the loop is closed: nobody will take these results
                    for _, buf, _, _ in items:
                        if buf:
                            lib.ferry_buffer_release(buf)

    def close(self) -> None:
        """Closes the queue (jobs in flight are cancelled, waiting futures fail with Closed) and
        waits for the poller to exit."""
        st = lib.ferry_queue_close(self.queue)
        if st not in (OK, _INVALID_HANDLE):
            raise error(st)
        if threading.current_thread() is not self._thread:
            self._thread.join()


def _fail_aio(fut, exc) -> None:
    if not fut.done():
        fut.set_exception(exc)


_engine_lock = threading.Lock()
_engine: Engine | None = None
_started = False


def default_engine() -> Engine:
    global _engine, _started
    e = _engine
    if e is None:
        with _engine_lock:
            e = _engine
            if e is None:
                e = _engine = Engine()
                _started = True
    return e


def _check_op(op: int) -> int:
    if not isinstance(op, int) or isinstance(op, bool) or not 0 <= op <= 0xFFFFFFFF:
        raise InvalidArgument(f"op must be a FERRY_OP_* code, not {op!r}")
    return op


def submit(op: int, buffer: Buffer | None = None, *, arg: int = 0, value: int = 0) -> Future:
    """Submits built-in operation ``op`` (ferry.OP_ECHO, OP_CHECKSUM, OP_SLEEP, OP_CALL, ...) to
    the Rust worker pool and returns a concurrent.futures.Future of its Payload.

    ``buffer`` is lent for the submit only (the job holds the bytes itself). The future is
    awaitable from asyncio too (``await fut``), though ``submit_async`` delivers to a loop more
    cheaply. ``fut.cancel()`` cancels the job. Raises Unsupported for an unknown op,
    InvalidHandle for an unknown callback id, Closed for a closed buffer."""
    return default_engine().submit(_check_op(op), buffer, arg, value)


def submit_async(op: int, buffer: Buffer | None = None, *, arg: int = 0,
                 value: int = 0) -> AsyncioFuture:
    """As submit, for the running asyncio event loop: returns an asyncio.Future that the poller
    resolves in batches (one ``call_soon_threadsafe`` per batch). Cancelling it, or the Task
    awaiting it, cancels the job. Must be called from a coroutine or callback on the loop."""
    loop = asyncio.get_running_loop()
    return default_engine().submit_asyncio(_check_op(op), buffer, arg, value, loop)


def echo(buffer: Buffer, timeout: float | None = None) -> Buffer:
    """Returns buffer's bytes under a new Buffer made on a Rust worker (zero-copy: it shares the
    memory). Exercises the whole async path."""
    return submit(OP_ECHO, buffer).result(timeout).buffer


def checksum(buffer: Buffer, timeout: float | None = None) -> int:
    """Returns the 64-bit FNV-1a hash of buffer's bytes, computed on a Rust worker."""
    return submit(OP_CHECKSUM, buffer).result(timeout).value


async def checksum_async(buffer: Buffer) -> int:
    """As checksum, awaited on the running event loop."""
    return (await submit_async(OP_CHECKSUM, buffer)).value


def set_workers(n: int) -> None:
    """Sets the number of Rust worker threads (1 to 256) for the pool's next start; 0 means the
    default (the number of CPUs, at least 2). A running pool keeps its threads until
    shutdown_async."""
    if not isinstance(n, int) or not 0 <= n <= 256:
        raise InvalidArgument("set_workers: n must be in 0..256")
    check(lib.ferry_pool_configure(n, 0, 0))


def shutdown_async() -> None:
    """Stops the async machinery: waiting futures fail with Closed, the poller thread exits, and
    the Rust worker threads are joined. The next submit starts everything again. Must not be
    called from a callback running on a worker (InvalidArgument)."""
    global _engine
    with _engine_lock:
        e, _engine = _engine, None
    if e is not None:
        e.close()
    check(lib.ferry_pool_shutdown())


def _at_exit() -> None:
    # Before the interpreter finalizes: stop the poller and join the Rust workers, so no Rust
    # thread calls a Python callback into a finalizing interpreter.
    if _started:
        try:
            shutdown_async()
        except Exception:
            pass


def _after_fork_in_child() -> None:
    # The poller thread does not exist in a forked child; the next submit starts a new engine.
    global _engine, _engine_lock
    _engine = None
    _engine_lock = threading.Lock()


atexit.register(_at_exit)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
