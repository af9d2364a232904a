"""Batched submits: submit_many, submit_many_async, submit_async coalescing per loop turn, partial
acceptance, cancellation, the shared Condition of a batch's concurrent futures, and leaks."""

from __future__ import annotations

import asyncio
import concurrent.futures
import subprocess
import sys
import textwrap
import threading

import pytest

import ferry
from ferry import _async
from ferry._lib import ffi, lib

from conftest import wait_for

pytestmark = pytest.mark.usefixtures("live", "no_calls_left")

LONG = 30_000_000  # OP_SLEEP for 30 s: these jobs end only by being cancelled


def fnv1a(data: bytes) -> int:
    h = 0xCBF29CE484222325
    for b in data:
        h = ((h ^ b) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h


@pytest.fixture
def no_calls_left():
    """Every future the default engine tracked is gone from its table after the test."""
    yield
    e = _async._engine
    if e is not None:
        wait_for(lambda: not e.calls, what="the engine's table of calls to empty")
    wait_for(lambda: ferry.callback_stats().in_flight == 0, what="jobs in flight to end")


@pytest.fixture
def small_pool():
    """One worker and a job queue of 4, so QUEUE_FULL is reached on purpose."""
    ferry.shutdown_async()
    assert lib.ferry_pool_configure(1, 4, 0) == 0
    yield
    ferry.shutdown_async()
    assert lib.ferry_pool_configure(0, 0, 0) == 0


def counters():
    e = _async.default_engine()
    return e.submitted, e.submit_calls


def delta(before):
    s, c = counters()
    return s - before[0], c - before[1]


# -- submit_many (concurrent.futures) ----------------------------------------------------------


def test_submit_many_results_in_order_in_one_crossing():
    before = counters()
    reqs = [ferry.Request(ferry.OP_ECHO, value=i) for i in range(3000)]
    reqs += [(ferry.OP_ECHO, None, 0, 3000 + i) for i in range(1000)]  # plain tuples
    reqs += [(ferry.OP_ECHO,), (ferry.OP_ECHO, None), (ferry.OP_ECHO, None, 7)]  # short ones
    futs = ferry.submit_many(reqs)
    assert len(futs) == len(reqs)
    assert all(isinstance(f, ferry.Future) for f in futs)
    assert delta(before) == (len(reqs), 1)  # every job taken, in one call
    assert [f.result(timeout=60).value for f in futs] == list(range(4000)) + [0, 0, 0]
    assert all(f.result().buffer is None for f in futs)


def test_submit_many_empty():
    before = counters()
    assert ferry.submit_many([]) == []
    assert ferry.submit_many(iter(())) == []
    assert delta(before) == (0, 0)


def test_submit_many_buffers_lent_for_the_call():
    datas = [bytes([i]) * (100 + i) for i in range(50)]
    bufs = [ferry.Buffer.copy(d) for d in datas]
    futs = ferry.submit_many([(ferry.OP_CHECKSUM, b) for b in bufs]
                             + [(ferry.OP_ECHO, b) for b in bufs])
    for b in bufs:
        b.close()  # the jobs hold the bytes themselves
    sums = [f.result(timeout=60).value for f in futs[:50]]
    assert sums == [fnv1a(d) for d in datas]
    for f, d in zip(futs[50:], datas):
        with f.result(timeout=60).buffer as out:
            assert bytes(out) == d


@pytest.mark.parametrize("bad, exc", [
    ((999.0,), ferry.InvalidArgument),
    (("echo",), ferry.InvalidArgument),
    ((True,), ferry.InvalidArgument),
    ((1 << 32,), ferry.InvalidArgument),
    ((ferry.OP_ECHO, None, 0, -1), ValueError),
    ((ferry.OP_ECHO, None, 1 << 64, 0), ValueError),
    ((ferry.OP_ECHO, None, 0, 1.5), TypeError),
    ((ferry.OP_ECHO, b"bytes"), TypeError),
    ((ferry.OP_ECHO, None, 0, 0, 0), TypeError),
    (None, TypeError),
])
def test_submit_many_bad_argument_raises_before_any_submit(bad, exc):
    before = counters()
    reqs = [ferry.Request(ferry.OP_ECHO, value=1), bad, ferry.Request(ferry.OP_ECHO, value=2)]
    with pytest.raises(exc):
        ferry.submit_many(reqs)
    with pytest.raises(exc):
        asyncio.run(_many_async(reqs))
    assert delta(before) == (0, 0)


async def _many_async(reqs):
    return ferry.submit_many_async(reqs)


def test_submit_many_closed_buffer_raises_before_any_submit():
    before = counters()
    buf = ferry.Buffer.new(8)
    buf.close()
    with pytest.raises(ferry.Closed):
        ferry.submit_many([(ferry.OP_ECHO,), (ferry.OP_CHECKSUM, buf)])
    assert delta(before) == (0, 0)


def test_submit_many_refused_jobs_fail_alone():
    # A refusal of the job itself fails its future; the jobs after it are submitted all the same.
    before = counters()
    futs = ferry.submit_many([
        (ferry.OP_ECHO, None, 0, 1),
        (999,),                                   # Unsupported
        (ferry.OP_ECHO, None, 0, 2),
        (ferry.OP_CALL, None, 12345),             # InvalidHandle: no such callback
        (ferry.OP_ECHO, None, 0, 3),
    ])
    assert delta(before) == (3, 3)  # one call, and one more after each refusal
    assert futs[0].result(timeout=60).value == 1
    assert futs[2].result(timeout=60).value == 2
    assert futs[4].result(timeout=60).value == 3
    with pytest.raises(ferry.Unsupported):
        futs[1].result(timeout=0)
    assert isinstance(futs[3].exception(timeout=0), ferry.InvalidHandle)


def test_submit_many_waits_when_the_job_queue_is_full(small_pool):
    # One worker, four queued at most: the first call takes four (the pool is locked for the whole
    # batch), then submit_many waits for a completion and goes on, so every job runs.
    futs = ferry.submit_many([(ferry.OP_SLEEP, None, 1000, i) for i in range(12)])
    e = _async.default_engine()
    assert e.submitted == 12
    assert e.submit_calls >= 2
    assert [f.result(timeout=60).value for f in futs] == list(range(12))


def test_submit_many_async_queue_full_fails_the_rest(small_pool):
    async def main():
        futs = ferry.submit_many_async([(ferry.OP_SLEEP, None, LONG, i) for i in range(10)])
        e = _async.default_engine()
        assert e.submitted == 4 and e.submit_calls == 1  # the rest were not submitted
        for f in futs[4:]:
            with pytest.raises(ferry.QueueFull):
                await f
        for f in futs[:4]:
            assert not f.done()
            f.cancel()
        await asyncio.gather(*futs[:4], return_exceptions=True)
        assert all(f.cancelled() for f in futs[:4])

    asyncio.run(main())


def test_closed_engine_fails_every_future():
    e = _async.Engine()
    e.close()
    futs = e.submit_many([(ferry.OP_ECHO,)] * 3)
    for f in futs:
        with pytest.raises(ferry.Closed):
            f.result(timeout=0)
    assert e.submitted == 0 and not e.calls


def test_cancel_submit_many_futures_cancels_the_jobs():
    # Three sleepers on two workers: two running and one queued when they are cancelled.
    futs = ferry.submit_many([(ferry.OP_SLEEP, None, LONG)] * 3)
    for f in futs:
        assert f.cancel()
        assert f.cancelled()
    done, not_done = concurrent.futures.wait(futs, timeout=60)
    assert not not_done
    with pytest.raises(concurrent.futures.CancelledError):
        futs[0].result()
    # no_calls_left: the cancelled jobs end within a millisecond and their completions are taken


def test_result_buffers_of_cancelled_batch_released():
    with ferry.Buffer.new(1 << 20) as buf:
        futs = ferry.submit_many([(ferry.OP_ECHO, buf)] * 200)
        for f in futs:
            f.cancel()
    concurrent.futures.wait(futs, timeout=60)
    # the live fixture: every result Buffer (an id each) was released


# -- the shared Condition of a batch -----------------------------------------------------------


def test_batch_futures_share_a_condition_and_wait_correctly():
    futs = ferry.submit_many([(ferry.OP_SLEEP, None, LONG)]
                             + [(ferry.OP_ECHO, None, 0, i) for i in range(500)])
    if _async._FAST_FUTURES:
        assert len({id(f._condition) for f in futs}) == 1
    # The echoes complete and notify the shared Condition while futs[0] is waited for: those
    # wake-ups are not futs[0]'s, and result() keeps waiting until its timeout.
    with pytest.raises(concurrent.futures.TimeoutError):
        futs[0].result(timeout=0.2)
    with pytest.raises(concurrent.futures.TimeoutError):
        futs[0].exception(timeout=0)
    assert [f.result(timeout=60).value for f in futs[1:]] == list(range(500))
    assert futs[0].cancel()


def test_batch_future_result_waits_through_other_futures_wakeups():
    # futs[0] sleeps 300 ms while the echoes of its batch complete and notify the shared
    # Condition: result() must go on waiting (a plain Future.result would raise TimeoutError at
    # the first wake-up that is not its own).
    futs = ferry.submit_many([(ferry.OP_SLEEP, None, 300_000, 1)]
                             + [(ferry.OP_ECHO, None, 0, i) for i in range(2000)])
    assert futs[0].result(timeout=60).value == 1
    assert futs[0].exception(timeout=60) is None
    assert [f.result(timeout=60).value for f in futs[1:]] == list(range(2000))


def test_batch_futures_with_wait_as_completed_callbacks_and_threads():
    futs = ferry.submit_many([(ferry.OP_SLEEP, None, 2000, i) for i in range(300)])
    called = []
    lock = threading.Lock()

    def cb(f):
        with lock:
            called.append(f.result().value)

    for f in futs[::2]:
        f.add_done_callback(cb)
    # Several threads wait on different futures of the one batch at once.
    results: dict = {}

    def waiter(i):
        results[i] = futs[i].result(timeout=60).value

    threads = [threading.Thread(target=waiter, args=(i,)) for i in (299, 150, 7, 0)]
    for t in threads:
        t.start()
    seen = [f.result().value for f in concurrent.futures.as_completed(futs[100:], timeout=60)]
    assert sorted(seen) == list(range(100, 300))
    done, not_done = concurrent.futures.wait(futs, timeout=60)
    assert len(done) == 300 and not not_done
    for t in threads:
        t.join(60)
    assert results == {299: 299, 150: 150, 7: 7, 0: 0}
    wait_for(lambda: len(called) == 150, what="done callbacks")
    assert sorted(called) == list(range(0, 300, 2))
    # A callback added after the future is done runs at once, as for any Future.
    late = []
    futs[1].add_done_callback(late.append)
    assert late == [futs[1]]


def test_errors_and_buffers_through_a_batch():
    def fn(buf, value):
        if value == 3:
            raise KeyError("three")
        return None, value * 10

    with ferry.Callback(fn) as cb, ferry.Buffer.copy(b"xyz") as buf:
        futs = ferry.submit_many([(ferry.OP_CALL, None, cb.id, v) for v in range(6)]
                                 + [(ferry.OP_PANIC,), (ferry.OP_ECHO, buf, 0, 5)])
        for v in (0, 1, 2, 4, 5):
            assert futs[v].result(timeout=60).value == v * 10
        with pytest.raises(KeyError):
            futs[3].result(timeout=60)
        with pytest.raises(ferry.Panic):
            futs[6].result(timeout=60)
        with futs[7].result(timeout=60).buffer as out:
            assert bytes(out) == b"xyz"


# -- asyncio: submit_many_async and submit_async coalescing ------------------------------------


def test_submit_many_async():
    async def main():
        before = counters()
        futs = ferry.submit_many_async([(ferry.OP_ECHO, None, 0, i) for i in range(3000)])
        assert delta(before) == (3000, 1)
        assert all(isinstance(f, ferry.AsyncioFuture) for f in futs)
        out = await asyncio.gather(*futs)
        assert [p.value for p in out] == list(range(3000))

    asyncio.run(main())


def test_submit_async_coalesces_one_loop_turn():
    async def main():
        before = counters()
        first = ferry.submit_async(ferry.OP_ECHO, value=0)
        # The first of a turn goes at once: a lone submit waits for nothing.
        assert delta(before) == (1, 1)
        futs = [ferry.submit_async(ferry.OP_ECHO, value=i) for i in range(1, 3000)]
        # 2,999 more: two flushes of 1,024 at once, the remaining 951 wait for the loop to turn.
        assert delta(before) == (1 + 2048, 3)
        await asyncio.sleep(0)
        assert delta(before) == (3000, 4)
        out = await asyncio.gather(first, *futs)
        assert [p.value for p in out] == list(range(3000))
        # A new turn: its first submit goes at once again.
        before = counters()
        assert (await ferry.submit_async(ferry.OP_ECHO, value=5)).value == 5
        assert delta(before) == (1, 1)

    asyncio.run(main())


def test_submit_async_refusals_fail_the_future():
    async def main():
        # Bad arguments raise at the call...
        with pytest.raises(ferry.InvalidArgument):
            ferry.submit_async("echo")
        with pytest.raises(ValueError):
            ferry.submit_async(ferry.OP_ECHO, value=-1)
        with pytest.raises(TypeError):
            ferry.submit_async(ferry.OP_ECHO, b"not a Buffer")
        buf = ferry.Buffer.new(1)
        buf.close()
        with pytest.raises(ferry.Closed):
            ferry.submit_async(ferry.OP_CHECKSUM, buf)
        # ...refusals by ferry fail the future, whether submitted at once or coalesced.
        await asyncio.sleep(0)
        at_once = ferry.submit_async(999)
        coalesced = [ferry.submit_async(ferry.OP_ECHO, value=1), ferry.submit_async(999),
                     ferry.submit_async(ferry.OP_CALL, arg=12345),
                     ferry.submit_async(ferry.OP_ECHO, value=2)]
        with pytest.raises(ferry.Unsupported):
            await at_once
        assert (await coalesced[0]).value == 1
        with pytest.raises(ferry.Unsupported):
            await coalesced[1]
        with pytest.raises(ferry.InvalidHandle):
            await coalesced[2]
        assert (await coalesced[3]).value == 2

    asyncio.run(main())


def test_coalesced_submit_holds_its_buffer_until_the_flush():
    async def main():
        await asyncio.sleep(0)
        ferry.submit_async(ferry.OP_ECHO)  # the turn's first, so the next one is coalesced
        buf = ferry.Buffer.copy(b"held until the flush")
        fut = ferry.submit_async(ferry.OP_CHECKSUM, buf)
        buf.close()  # before the flush: the pending job keeps the bytes
        assert (await fut).value == fnv1a(b"held until the flush")

    asyncio.run(main())


def test_cancel_coalesced_before_flush_never_submits():
    async def main():
        await asyncio.sleep(0)
        before = counters()
        a = ferry.submit_async(ferry.OP_ECHO, value=1)  # at once
        b = ferry.submit_async(ferry.OP_SLEEP, arg=LONG)  # coalesced
        c = ferry.submit_async(ferry.OP_ECHO, value=3)  # coalesced
        assert b.cancel()
        await asyncio.sleep(0)  # the flush: b is left out
        assert delta(before) == (2, 2)
        assert (await a).value == 1 and (await c).value == 3
        with pytest.raises(asyncio.CancelledError):
            await b
        # All cancelled: the flush submits nothing.
        await asyncio.sleep(0)
        before = counters()
        ferry.submit_async(ferry.OP_ECHO)
        d = ferry.submit_async(ferry.OP_ECHO)
        d.cancel()
        await asyncio.sleep(0)
        assert delta(before) == (1, 1)

    asyncio.run(main())


def test_cancel_submitted_asyncio_batch_cancels_the_jobs():
    async def main():
        futs = ferry.submit_many_async([(ferry.OP_SLEEP, None, LONG)] * 3)
        coalesced = [ferry.submit_async(ferry.OP_SLEEP, arg=LONG) for _ in range(3)]
        await asyncio.sleep(0)
        tasks = [asyncio.ensure_future(f) for f in futs + coalesced]
        await asyncio.sleep(0)
        for t in tasks:
            t.cancel()
        res = await asyncio.gather(*tasks, return_exceptions=True)
        assert all(isinstance(r, asyncio.CancelledError) for r in res)

    asyncio.run(main())
    # no_calls_left: every job stopped at the flag and its completion was taken


def test_closed_engine_fails_pending_and_coalesced_futures():
    async def main():
        e = _async.Engine()
        loop = asyncio.get_running_loop()
        running = e.submit_asyncio(ferry.OP_SLEEP, None, LONG, 0, loop)  # at once
        pending = e.submit_asyncio(ferry.OP_ECHO, None, 0, 0, loop)  # waits for the flush
        e.close()
        with pytest.raises(ferry.Closed):
            await pending
        with pytest.raises((ferry.Closed, ferry.Cancelled)):
            await running
        assert not e.calls

    asyncio.run(main())
    wait_for(lambda: ferry.callback_stats().in_flight == 0, what="the closed queue's job to end")


# -- delivery ----------------------------------------------------------------------------------


def test_mixed_delivery_concurrent_and_two_loops():
    # Completions of concurrent futures and of two event loops' futures share the poller's
    # batches: each goes to its own kind and loop.
    n = 2000

    async def on_loop(base):
        cf = ferry.submit_many([(ferry.OP_ECHO, None, 0, base + i) for i in range(n)])
        aio = ferry.submit_many_async([(ferry.OP_ECHO, None, 0, base + n + i) for i in range(n)])
        co = [ferry.submit_async(ferry.OP_ECHO, value=base + 2 * n + i) for i in range(n)]
        a = await asyncio.gather(*aio, *co)
        c = await asyncio.gather(*(asyncio.wrap_future(f) for f in cf))
        return [p.value for p in c + a]

    out = {}
    t = threading.Thread(target=lambda: out.setdefault(1, asyncio.run(on_loop(10 * n))))
    t.start()
    out[0] = asyncio.run(on_loop(0))
    t.join(60)
    assert out[0] == list(range(3 * n))
    assert out[1] == list(range(10 * n, 13 * n))


def test_stray_completion_buffer_released():
    e = _async.Engine()
    try:
        b = ferry.Buffer.copy(b"stray").detach()
        items = ffi.new("FerryCompletion[]", 2)
        items[0].tag, items[0].buffer = 12345, b  # no future has this tag
        f = e.future_class()
        e.calls[id(f)] = f
        items[1].tag, items[1].value = id(f), 77
        assert lib.ferry_queue_post(e.queue, items, 2) == 0
        assert f.result(timeout=60).value == 77
    finally:
        e.close()
    # the live fixture: the stray completion's buffer was released


def test_fallback_when_future_internals_differ():
    # If concurrent.futures.Future ever lays its state out differently, ferry gives each future
    # its own Condition and resolves it with set_result. Simulated in a fresh interpreter.
    code = textwrap.dedent("""
        import collections, concurrent.futures as cf
        orig = cf.Future.__init__
        def init(self):
            orig(self)
            self._done_callbacks = collections.deque()  # not the list ferry expects
        cf.Future.__init__ = init
        import ferry
        from ferry import _async
        assert not _async._FAST_FUTURES
        futs = ferry.submit_many([(ferry.OP_ECHO, None, 0, i) for i in range(500)]
                                 + [(999,), (ferry.OP_SLEEP, None, 30_000_000)])
        assert len({id(f._condition) for f in futs}) == len(futs)
        assert [f.result(timeout=60).value for f in futs[:500]] == list(range(500))
        assert isinstance(futs[500].exception(timeout=60), ferry.Unsupported)
        assert futs[501].cancel()
        done, _ = cf.wait(futs, timeout=60)
        assert len(done) == 502
        ferry.shutdown_async()
        assert ferry.stats().live_ids == 0
        print("fallback ok")
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "fallback ok" in out.stdout
