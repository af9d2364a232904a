"""Async work on ferry's Rust worker pool: concurrent.futures and asyncio futures.

Submitting. ``submit_many``/``submit_many_async`` hand a whole list of jobs to Rust in one
``ferry_async_submit_batch`` call (one queue lookup, one pool lock, one wake-up per worker).
``submit_async`` coalesces: the first submit of a loop turn goes at once (a lone submit waits for
nothing), and those after it wait in a per-thread buffer that is flushed in one call when the
loop turns (a ``call_soon`` handle scheduled by that first submit), or as soon as it holds
``coalesce`` jobs. ``submit`` submits at once.

Delivering. One completion queue and one poller thread per process: the poller sits in
ferry_queue_wait with the GIL released, which returns as soon as one completion is ready and
hands over up to ``batch`` at once. It resolves concurrent.futures.Futures itself, and hands the
completions of asyncio futures to each event loop in one ``call_soon_threadsafe`` per batch, so a
burst of completions costs one crossing from Rust, one GIL acquisition and one loop wake-up, not
one of each per completion.

Tags. A job's tag is ``id()`` of its future: the engine's ``calls`` dict holds the future from the
submit until its completion is delivered (or the engine closes), so no other live object can have
that id while the tag is in flight, and the future needs no attribute of its own. The engine is a
class attribute of per-engine subclasses of Future and AsyncioFuture.
"""

from __future__ import annotations

import array
import asyncio
import atexit
import concurrent.futures
import concurrent.futures._base as _cf_base
import os
import sys
import threading
import time
from itertools import repeat
from typing import Iterable, NamedTuple, Optional

from ._bindings import DEFINES
from ._buffer import Buffer
from ._callback import Payload, result_error
from ._errors import OK, STATUS, Closed, FerryError, InvalidArgument, check, error
from ._lib import ffi, lib

OP_ECHO = DEFINES["OP_ECHO"]
OP_CHECKSUM = DEFINES["OP_CHECKSUM"]
OP_SLEEP = DEFINES["OP_SLEEP"]
OP_PANIC = DEFINES["OP_PANIC"]
OP_CALL = DEFINES["OP_CALL"]

_CLOSED = STATUS["CLOSED"]
_INVALID_HANDLE = STATUS["INVALID_HANDLE"]
_QUEUE_FULL = STATUS["QUEUE_FULL"]
# Refusals that concern one job (its op, its input or callback id, its arguments): the jobs after
# it in a batch are submitted all the same. Any other refusal (QUEUE_FULL, CLOSED, ALLOC_FAILED,
# WOULD_DEADLOCK) concerns the pool or the queue and fails the jobs after it too.
_JOB_REFUSALS = frozenset({STATUS["UNSUPPORTED"], _INVALID_HANDLE, STATUS["INVALID_ARGUMENT"]})
_U64 = (1 << 64) - 1
_SHUT_DOWN = "ferry: async machinery shut down"
_U32 = 0xFFFFFFFF
_LITTLE = sys.byteorder == "little"
_OP_SHIFT = 0 if _LITTLE else 32  # FerryJob.op is the low half of its 64-bit word on little-endian
_STATUS_WORD = 6 if _LITTLE else 7  # FerryCompletion.status among its eight 32-bit words
_WORDS = 5  # FerryJob: tag, op|reserved, input, arg, value (five 64-bit words, no padding)

#: Completions taken from Rust per crossing at most.
DEFAULT_BATCH = 1024
#: Jobs coalesced by submit_async before a flush at most (the flush also happens when the loop
#: turns, whichever comes first).
DEFAULT_COALESCE = 1024

_tuple_new = tuple.__new__
_INVALID_STATE = (asyncio.InvalidStateError, concurrent.futures.InvalidStateError)
_get_loop = asyncio.Future.get_loop


class Request(NamedTuple):
    """One job for ``submit_many``/``submit_many_async``: the arguments of one ``submit``. A plain
    tuple ``(op, buffer, arg, value)`` (or a shorter one, as the defaults allow) does too."""

    op: int
    buffer: Optional[Buffer] = None
    arg: int = 0
    value: int = 0


# A concurrent.futures.Future's state lives in attributes that concurrent.futures.wait and
# as_completed read directly (_condition, _state, _waiters, ...), the same from 3.9 to 3.13. ferry
# relies on them for two savings: the futures of one batch share one Condition (a Condition costs
# ~1 us to make), and a delivered batch is resolved under that lock once with one notify_all,
# instead of one lock, one notify_all and one wake-up of the waiting thread per future. If the
# layout ever differs, ferry falls back to one Condition per future and set_result.
_PENDING = getattr(_cf_base, "PENDING", None)
_FINISHED = getattr(_cf_base, "FINISHED", None)
_FINAL = frozenset({getattr(_cf_base, "CANCELLED", None),
                    getattr(_cf_base, "CANCELLED_AND_NOTIFIED", None), _FINISHED})


def _fast_futures_ok() -> bool:
    f = concurrent.futures.Future()
    return (None not in _FINAL and f._state == _PENDING and f._result is None
            and f._exception is None and f._waiters == [] and f._done_callbacks == []
            and callable(getattr(f, "_invoke_callbacks", None))
            and isinstance(f._condition, type(threading.Condition())))


_FAST_FUTURES = _fast_futures_ok()


class _LazyList:
    """A concurrent.futures.Future attribute (``_waiters``, ``_done_callbacks``) whose list is made
    on first use: most futures never get a waiter or a callback, and two lists fewer per future
    is two objects fewer for the cycle collector to track. The base class reads and appends to
    both only under the future's Condition (or once the future is done, when nothing appends)."""

    def __init__(self, attr: str):
        self.attr = attr

    def __get__(self, obj, cls=None):
        if obj is None:
            return self
        v = getattr(obj, self.attr)
        if v is None:
            v = []
            setattr(obj, self.attr, v)
        return v

    def __set__(self, obj, value) -> None:
        setattr(obj, self.attr, value)


class Future(concurrent.futures.Future):
    """A concurrent.futures.Future for a ferry job: ``cancel()`` also cancels the job in Rust (a
    job that has not started is skipped; a running one can see the flag). Its result is a
    ``ferry.Payload``; a result Buffer that arrives after a cancel is released.

    The futures of one submit_many share one Condition, so a wake-up may be for another future:
    ``result`` and ``exception`` wait until this one is done (or the timeout passes)."""

    _ferry_engine: Engine  # set on each engine's subclass
    if _FAST_FUTURES:
        _waiters = _LazyList("_ferry_waiters")
        _done_callbacks = _LazyList("_ferry_callbacks")
    _ferry_waiters = None
    _ferry_callbacks = None

    def __init__(self, condition: threading.Condition | None = None):
        if condition is None or not _FAST_FUTURES:
            super().__init__()
            return
        self._condition = condition
        self._state = _PENDING
        self._result = None
        self._exception = None

    def cancel(self) -> bool:
        if not super().cancel():
            return False
        # As an executor does: move to CANCELLED_AND_NOTIFIED, so concurrent.futures.wait and
        # as_completed see the future as done.
        self.set_running_or_notify_cancel()
        self._ferry_engine.cancel(id(self))
        return True

    if _FAST_FUTURES:
        # A shared Condition wakes every waiter of the batch: wait until this future is done.

        def _wait(self, timeout: float | None) -> None:
            if self._state in _FINAL:
                return
            cond = self._condition
            with cond:
                if timeout is None:
                    while self._state not in _FINAL:
                        cond.wait()
                    return
                deadline = time.monotonic() + timeout
                while self._state not in _FINAL:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        return
                    cond.wait(left)

        def result(self, timeout: float | None = None):
            if self._state == _FINISHED and self._exception is None:
                return self._result
            self._wait(timeout)
            return super().result(0)  # done by now, or TimeoutError

        def exception(self, timeout: float | None = None):
            self._wait(timeout)
            return super().exception(0)

    def __await__(self):
        return asyncio.wrap_future(self).__await__()


class AsyncioFuture(asyncio.Future):
    """An asyncio.Future for a ferry job; cancelling it (or the Task awaiting it) cancels the job."""

    __slots__ = ()
    _ferry_engine: Engine  # set on each engine's subclass

    def cancel(self, msg=None) -> bool:
        if not super().cancel(msg=msg):
            return False
        self._ferry_engine.cancel(id(self))
        return True


def _resolve(futs: list, bufs: list, vals: list, sts: list) -> None:
    """Resolves futures of one kind (all concurrent, or all of one event loop, run on that loop)
    with their completions. A cancelled future's result Buffer is released."""
    if any(sts) or any(bufs):
        for fut, buf, value, st in zip(futs, bufs, vals, sts):
            if fut.done():  # cancelled meanwhile
                if buf:
                    lib.ferry_buffer_release(buf)
                continue
            try:
                if st == OK:
                    out = Buffer.from_id(buf) if buf else None
                    fut.set_result(_tuple_new(Payload, (out, value)))
                else:
                    fut.set_exception(result_error(st, value))
            except _INVALID_STATE:
                pass  # cancelled from another thread just now; a result Buffer is collected
            except FerryError as exc:  # Buffer.from_id refused the id: not expected, not fatal
                fut.set_exception(exc)
        return
    # The common case: no buffers, no errors. set_result raises on a cancelled future; the zip
    # iterator carries on with the next one after the except.
    it = zip(futs, map(_tuple_new, repeat(Payload), zip(repeat(None), vals)))
    while True:
        try:
            for fut, p in it:
                fut.set_result(p)
            return
        except _INVALID_STATE:
            pass


def _resolve_concurrent(futs: list, bufs: list, vals: list, sts: list) -> None:
    """Resolves concurrent futures with their completions: under each shared Condition once (a
    run of futures from one submit_many), with one notify_all per run. As set_result and
    set_exception do, but for the batching; done callbacks run after the locks are let go."""
    if not _FAST_FUTURES:
        _resolve(futs, bufs, vals, sts)
        return
    later = []
    cond = None
    try:
        for fut, buf, value, st in zip(futs, bufs, vals, sts):
            c = fut._condition
            if c is not cond:
                if cond is not None:
                    cond.notify_all()
                    cond.release()
                    cond = None
                c.acquire()
                cond = c
            if fut._state in _FINAL:  # cancelled
                if buf:
                    lib.ferry_buffer_release(buf)
                continue
            if st != OK:
                fut._exception = result_error(st, value)
            elif not buf:
                fut._result = _tuple_new(Payload, (None, value))
            else:
                try:
                    fut._result = _tuple_new(Payload, (Buffer.from_id(buf), value))
                except FerryError as exc:  # Buffer.from_id refused the id: not expected
                    fut._exception = exc
            fut._state = _FINISHED
            waiters = fut._ferry_waiters  # concurrent.futures.wait / as_completed
            if waiters:
                failed = fut._exception is not None
                for w in waiters:
                    if failed:
                        w.add_exception(fut)
                    else:
                        w.add_result(fut)
            if fut._ferry_callbacks:
                later.append(fut)
    finally:
        if cond is not None:
            cond.notify_all()
            cond.release()
    for fut in later:
        fut._invoke_callbacks()


def _release_all(bufs) -> None:
    for buf in bufs:
        if buf:
            lib.ferry_buffer_release(buf)


def _set_exception(fut, exc) -> None:
    try:
        fut.set_exception(exc)
    except _INVALID_STATE:
        pass  # cancelled


class Engine:
    """A completion queue, the futures waiting on it, and its poller thread.

    ``batch``: completions taken per crossing at most. ``coalesce``: jobs submit_async buffers
    per event loop before a flush at most; 0 submits each at once (one crossing per job)."""

    def __init__(self, batch: int = DEFAULT_BATCH, coalesce: int = DEFAULT_COALESCE):
        if batch < 1:
            raise ValueError("batch must be >= 1")
        if coalesce < 0:
            raise ValueError("coalesce must be >= 0")
        q = ffi.new("uint64_t *")
        check(lib.ferry_queue_new(q))
        self.queue = q[0]
        self.batch = batch
        self.coalesce = coalesce
        self.calls: dict[int, object] = {}
        self.future_class = type("Future", (Future,), {"_ferry_engine": self})
        self.asyncio_future_class = type(
            "AsyncioFuture", (AsyncioFuture,), {"_ferry_engine": self, "__slots__": ()})
        self._local = threading.local()  # .pending: submit_async's buffer on this thread's loop
        self._closed = False
        self.delivered = 0  # completions delivered
        self.crossings = 0  # ferry_queue_wait calls that delivered any
        self.submitted = 0  # jobs accepted
        self.submit_calls = 0  # ferry_async_submit(_batch) calls
        self._thread = threading.Thread(target=self._poll, name="ferry-poller", daemon=True)
        self._thread.start()

    # -- submitting ----------------------------------------------------------------------------

    def submit(self, op: int, buffer: Buffer | None, arg: int, value: int) -> Future:
        input_id, pin = _input(buffer)
        if not (0 <= arg <= _U64 and 0 <= value <= _U64):
            raise ValueError("arg and value must fit in 64 bits")
        fut = self.future_class()
        self._submit_one(fut, op, input_id, arg, value, True)
        del pin  # the job holds the bytes itself once submitted
        return fut

    def submit_asyncio(self, op: int, buffer: Buffer | None, arg: int, value: int,
                       loop) -> AsyncioFuture:
        input_id, pin = _input(buffer)
        if not (0 <= arg <= _U64 and 0 <= value <= _U64):
            raise ValueError("arg and value must fit in 64 bits")
        fut = self.asyncio_future_class(loop=loop)
        if self.coalesce:
            local = self._local
            pend = getattr(local, "pending", None)
            if pend is not None and pend[0] is loop:
                # Not the first submit of this loop turn: wait for the turn's flush.
                futs = pend[1]
                futs.append(fut)
                pend[2] += (0, op << _OP_SHIFT, input_id, arg, value)
                if pin is not None:
                    pend[3].append(pin)
                if len(futs) >= self.coalesce:
                    self._flush(pend)
                return fut
            # The first submit of a loop turn goes at once, so a lone submit waits for nothing;
            # the ones after it are coalesced until the loop runs its next callbacks.
            pend = local.pending = [loop, [], [], []]  # loop, futures, job words, pins
            loop.call_soon(self._flush_turn, pend)
        try:
            # No retry on QUEUE_FULL here: blocking would stall the loop that resolves the futures.
            self._submit_one(fut, op, input_id, arg, value, False)
        except FerryError as exc:
            fut.set_exception(exc)
        return fut

    def _flush_turn(self, pend: list) -> None:
        """The call_soon handle of a loop turn: flushes what is left and ends the turn's buffer."""
        local = self._local
        if getattr(local, "pending", None) is pend:
            local.pending = None
        self._flush(pend)

    def _flush(self, pend: list) -> None:
        futs, words, pins = pend[1], pend[2], pend[3]
        if not futs:
            return
        pend[1], pend[2], pend[3] = [], [], []
        if any(map(_done, futs)):  # cancelled before the flush: never submitted
            keep = [i for i, f in enumerate(futs) if not f.done()]
            words = [w for i in keep for w in words[_WORDS * i:_WORDS * i + _WORDS]]
            futs = [futs[i] for i in keep]
            if not futs:
                return
        self._submit_words(futs, array.array("Q", words), False)
        del pins  # the jobs hold the bytes themselves once submitted

    def submit_many(self, requests: Iterable, asyncio_loop=None) -> list:
        """Submits ``requests`` in one crossing (more only after a refusal); returns their futures,
        asyncio futures of ``asyncio_loop`` when given. Argument errors raise before any job is
        submitted; a job that ferry refuses fails its future (see _submit_words)."""
        words, pins = _job_words(requests)
        n = len(words) // _WORDS
        if asyncio_loop is None:
            cls = self.future_class
            futs = [cls(cond) for cond in repeat(threading.Condition(), n)]
        else:
            cls = self.asyncio_future_class
            futs = [cls(loop=asyncio_loop) for _ in range(n)]
        if n:
            self._submit_words(futs, words, asyncio_loop is None)
        del pins
        return futs

    def _submit_one(self, fut, op: int, input_id: int, arg: int, value: int, retry: bool) -> None:
        tag = id(fut)
        self.calls[tag] = fut
        while True:
            self.submit_calls += 1
            st = lib.ferry_async_submit(self.queue, tag, op, input_id, arg, value)
            if st != _QUEUE_FULL or not retry:
                break
            # The pool's job queue is full: wait for one of ours to finish, then retry.
            if not self._wait_any_done():
                break
        if st != OK:
            self.calls.pop(tag, None)
            if self._closed:
                raise Closed(_SHUT_DOWN)
            raise error(st)
        self.submitted += 1

    def _submit_words(self, futs: list, words: array.array, retry: bool) -> None:
        """Submits the jobs in ``words`` (five 64-bit words each, tags not yet filled in) for
        ``futs`` with ferry_async_submit_batch. Jobs are taken in order; a refused job fails its
        future with the status's exception. After a refusal of the job itself (UNSUPPORTED,
        INVALID_HANDLE, INVALID_ARGUMENT) the jobs after it are submitted in a new call; after
        QUEUE_FULL with ``retry`` it waits for a completion and submits again from the refused
        job; after any other refusal (QUEUE_FULL without retry, CLOSED, ...) the jobs after it fail
        with the same exception, unsubmitted."""
        n = len(futs)
        if self._closed:
            for fut in futs:
                _set_exception(fut, Closed(_SHUT_DOWN))
            return
        tags = list(map(id, futs))
        words[0::_WORDS] = array.array("Q", tags)
        calls = self.calls
        calls.update(zip(tags, futs))  # before the submit: a completion can arrive at once
        jobs = ffi.from_buffer("FerryJob[]", words)
        taken = ffi.new("size_t *")
        start = 0
        while True:
            self.submit_calls += 1
            st = lib.ferry_async_submit_batch(self.queue, jobs + start, n - start, taken)
            self.submitted += taken[0]
            start += taken[0]
            if st == OK:
                return
            closed = self._closed
            if closed:
                end = n
            elif st == _QUEUE_FULL and retry and self._wait_any_done():
                continue
            else:
                end = start + 1 if st in _JOB_REFUSALS else n
            for i in range(start, end):
                calls.pop(tags[i], None)
                _set_exception(futs[i], Closed(_SHUT_DOWN) if closed else error(st))
            start = end
            if start == n:
                return

    def _wait_any_done(self) -> bool:
        pending = [f for f in list(self.calls.values()) if isinstance(f, concurrent.futures.Future)]
        if not pending:
            return False
        concurrent.futures.wait(pending[:64], timeout=1.0,
                                return_when=concurrent.futures.FIRST_COMPLETED)
        return True

    def cancel(self, tag: int) -> None:
        # INVALID_HANDLE means the job just finished or was never submitted (a coalesced job
        # cancelled before its flush): its completion, if any, stands (and is released).
        lib.ferry_async_cancel(self.queue, tag)

    # -- delivering ----------------------------------------------------------------------------

    def _poll(self) -> None:
        batch = self.batch
        items = ffi.new("FerryCompletion[]", batch)
        raw = ffi.buffer(items)
        w64 = memoryview(raw).cast("Q")  # 4 uint64 words per completion
        w32 = memoryview(raw).cast("I")  # 8 uint32 words per completion
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
                m = 4 * n
                self._deliver(w64[0:m:4].tolist(), w64[1:m:4].tolist(), w64[2:m:4].tolist(),
                              w32[_STATUS_WORD:2 * m:8].tolist(), calls)
            if st != OK:
                break  # CLOSED (or the queue id is gone): nothing more will come
        for tag in list(calls):
            fut = calls.pop(tag, None)
            if fut is not None:
                self._fail(fut, Closed(_SHUT_DOWN))

    @staticmethod
    def _fail(fut, exc) -> None:
        if isinstance(fut, asyncio.Future):
            try:
                fut.get_loop().call_soon_threadsafe(_set_exception, fut, exc)
            except RuntimeError:
                pass  # the loop is closed
        else:
            _set_exception(fut, exc)

    def _deliver(self, tags: list, bufs: list, vals: list, sts: list, calls: dict) -> None:
        futs = list(map(calls.pop, tags, repeat(None)))
        kinds = set(map(type, futs))
        if len(kinds) == 1:
            kind = kinds.pop()
            if kind is self.asyncio_future_class:
                loops = set(map(_get_loop, futs))
                if len(loops) == 1:
                    _post(loops.pop(), futs, bufs, vals, sts)
                    return
            elif kind is self.future_class:
                _resolve_concurrent(futs, bufs, vals, sts)
                return
        # Mixed: concurrent futures, several loops, or stray completions.
        groups: dict = {}
        for fut, buf, value, st in zip(futs, bufs, vals, sts):
            if fut is None:
                if buf:
                    lib.ferry_buffer_release(buf)  # a stray completion: not ours to keep
                continue
            key = fut.get_loop() if isinstance(fut, asyncio.Future) else None
            g = groups.get(key)
            if g is None:
                g = groups[key] = ([], [], [], [])
            g[0].append(fut)
            g[1].append(buf)
            g[2].append(value)
            g[3].append(st)
        for key, g in groups.items():
            if key is None:
                _resolve_concurrent(*g)
            else:
                _post(key, *g)

    def close(self) -> None:
        """Closes the queue (jobs in flight are cancelled, waiting futures fail with Closed) and
        waits for the poller to exit."""
        self._closed = True
        st = lib.ferry_queue_close(self.queue)
        if st not in (OK, _INVALID_HANDLE):
            raise error(st)
        if threading.current_thread() is not self._thread:
            self._thread.join()


def _done(fut) -> bool:
    return fut.done()


def _post(loop, futs: list, bufs: list, vals: list, sts: list) -> None:
    """Hands one loop its completions in one call_soon_threadsafe."""
    try:
        loop.call_soon_threadsafe(_resolve, futs, bufs, vals, sts)
    except RuntimeError:  # the loop is closed: nobody will take these results
        _release_all(bufs)


def _input(buffer: Buffer | None):
    """The input id and the pin that keeps it alive until the submit returns."""
    if buffer is None:
        return 0, None
    if not isinstance(buffer, Buffer):
        raise TypeError(f"buffer must be a ferry.Buffer or None, not {type(buffer).__name__}")
    pin = buffer._pin
    if pin is None:
        raise Closed("buffer is closed")
    return buffer._id, pin


def _job_words(requests: Iterable) -> tuple[array.array, list]:
    """The FerryJob words of ``requests`` (tags left 0) and the pins of their input buffers.
    Raises InvalidArgument, TypeError, ValueError or Closed for a bad request."""
    words: list = []
    pins: list = []
    for r in requests:
        if r.__class__ is not Request and len(r) != 4:
            r = Request(*r)
        op, buffer, arg, value = r
        if op.__class__ is not int or not 0 <= op <= _U32:
            raise InvalidArgument(f"op must be a FERRY_OP_* code, not {op!r}")
        if buffer is None:
            input_id = 0
        else:
            input_id, pin = _input(buffer)
            pins.append(pin)
        words += (0, op << _OP_SHIFT, input_id, arg, value)
    try:
        return array.array("Q", words), pins
    except OverflowError:
        raise ValueError("arg and value must fit in 64 bits") from None


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
    if op.__class__ is not int or not 0 <= op <= _U32:
        raise InvalidArgument(f"op must be a FERRY_OP_* code, not {op!r}")
    return op


def submit(op: int, buffer: Buffer | None = None, *, arg: int = 0, value: int = 0) -> Future:
    """Submits built-in operation ``op`` (ferry.OP_ECHO, OP_CHECKSUM, OP_SLEEP, OP_CALL, ...) to
    the Rust worker pool and returns a concurrent.futures.Future of its Payload.

    ``buffer`` is lent for the submit only (the job holds the bytes itself). The future is
    awaitable from asyncio too (``await fut``), though ``submit_async`` delivers to a loop more
    cheaply. ``fut.cancel()`` cancels the job. Raises Unsupported for an unknown op,
    InvalidHandle for an unknown callback id, Closed for a closed buffer. When the pool's job
    queue is full it waits for one of its jobs to finish and tries again."""
    return default_engine().submit(_check_op(op), buffer, arg, value)


def submit_many(requests: Iterable) -> list[Future]:
    """Submits many jobs in one crossing: ``requests`` holds ``ferry.Request(op, buffer, arg,
    value)`` items (or plain tuples in that order); returns one concurrent.futures.Future per
    request, in order. The same as ``[submit(*r) for r in requests]`` but for the cost, and but
    for where errors go:

    - a bad argument (op, buffer, arg, value) raises before any job is submitted;
    - a job that ferry refuses fails its own future with the status's exception (Unsupported,
      InvalidHandle, InvalidArgument), and the jobs after it are submitted all the same;
    - when the pool's job queue is full it waits for one of its jobs to finish and goes on;
    - any other refusal (Closed, AllocFailed, WouldDeadlock) fails that job and every job after
      it, which are not submitted."""
    return default_engine().submit_many(requests)


def submit_async(op: int, buffer: Buffer | None = None, *, arg: int = 0,
                 value: int = 0) -> AsyncioFuture:
    """As submit, for the running asyncio event loop: returns an asyncio.Future that the poller
    resolves in batches (one ``call_soon_threadsafe`` per batch). Cancelling it, or the Task
    awaiting it, cancels the job. Must be called from a coroutine or callback on the loop.

    Jobs submitted while one callback or task step runs are coalesced: they are handed to Rust
    together, in one crossing, when the loop turns (or at once every 1,024 jobs). So the job
    starts once the caller yields to the loop (``await``), and a refusal by ferry (Unsupported,
    InvalidHandle, QueueFull, ...) fails the future, as for submit_many_async, instead of
    raising here; a bad argument still raises here. ``buffer`` is held until the flush."""
    loop = asyncio.get_running_loop()
    return default_engine().submit_asyncio(_check_op(op), buffer, arg, value, loop)


def submit_many_async(requests: Iterable) -> list[AsyncioFuture]:
    """As submit_many, for the running asyncio event loop: submits at once, in one crossing, and
    returns one asyncio.Future per request. A full job queue fails the job with QueueFull and
    the jobs after it with the same exception (blocking would stall the loop)."""
    loop = asyncio.get_running_loop()
    return default_engine().submit_many(requests, loop)


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
