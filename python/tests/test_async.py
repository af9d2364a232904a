"""Async work: concurrent.futures and asyncio, batched delivery, cancellation, shutdown."""

from __future__ import annotations

import asyncio
import concurrent.futures

import pytest

import ferry
from ferry import _async

from conftest import wait_for

pytestmark = pytest.mark.usefixtures("live")


def fnv1a(data: bytes) -> int:
    h = 0xCBF29CE484222325
    for b in data:
        h = ((h ^ b) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h


def test_checksum_and_echo():
    data = bytes(range(256)) * 5
    with ferry.Buffer.copy(data) as buf:
        assert ferry.checksum(buf) == fnv1a(data)
        with ferry.echo(buf) as out:
            assert bytes(out) == data
            out.view()[0] = 1
            assert buf.view()[0] == 1  # echo shares the memory


def test_future_is_a_concurrent_future():
    fut = ferry.submit(ferry.OP_ECHO, value=11)
    assert isinstance(fut, concurrent.futures.Future)
    assert fut.result(timeout=60) == ferry.Payload(None, 11)


def test_many_in_flight_delivered_in_batches():
    e = _async.default_engine()
    crossings, delivered = e.crossings, e.delivered
    futs = [ferry.submit(ferry.OP_ECHO, value=i) for i in range(20000)]
    assert [f.result(timeout=60).value for f in futs] == list(range(20000))
    assert e.delivered - delivered == 20000
    assert e.crossings - crossings < 20000  # several completions per crossing


def test_errors_from_jobs():
    with pytest.raises(ferry.Panic):
        ferry.submit(ferry.OP_PANIC).result(timeout=60)
    with pytest.raises(ferry.Unsupported):
        ferry.submit(999)
    with pytest.raises(ferry.InvalidHandle):
        ferry.submit(ferry.OP_CALL, arg=12345)
    buf = ferry.Buffer.new(1)
    buf.close()
    with pytest.raises(ferry.Closed):
        ferry.submit(ferry.OP_CHECKSUM, buf)
    with pytest.raises(ValueError):
        ferry.submit(ferry.OP_ECHO, value=-1)


def test_cancel_concurrent_future_cancels_the_job():
    fut = ferry.submit(ferry.OP_SLEEP, arg=30_000_000)  # 30 s unless cancelled
    assert fut.cancel()
    assert fut.cancelled()
    with pytest.raises(concurrent.futures.CancelledError):
        fut.result()
    # The job stops within a millisecond of the flag; its completion is consumed and dropped.
    wait_for(lambda: ferry.callback_stats().in_flight == 0, what="the cancelled job to finish")


def test_asyncio_submit_and_gather():
    async def main():
        futs = [ferry.submit_async(ferry.OP_ECHO, value=i) for i in range(5000)]
        out = await asyncio.gather(*futs)
        assert [p.value for p in out] == list(range(5000))
        with ferry.Buffer.copy(b"abc") as buf:
            assert await ferry.checksum_async(buf) == fnv1a(b"abc")
            # A concurrent.futures.Future is awaitable too.
            assert (await ferry.submit(ferry.OP_CHECKSUM, buf)).value == fnv1a(b"abc")

    asyncio.run(main())


def test_asyncio_task_cancel_cancels_the_job():
    async def main():
        task = asyncio.ensure_future(ferry.submit_async(ferry.OP_SLEEP, arg=30_000_000))
        await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        # wait_for with a timeout cancels the inner future too
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(ferry.submit_async(ferry.OP_SLEEP, arg=30_000_000), 0.01)

    asyncio.run(main())
    wait_for(lambda: ferry.callback_stats().in_flight == 0, what="the cancelled jobs to finish")


def test_asyncio_callback_exception_reraised():
    def fn(buf, value):
        raise KeyError("in a worker")

    async def main():
        with ferry.Callback(fn) as cb:
            with pytest.raises(KeyError):
                await ferry.submit_async(ferry.OP_CALL, arg=cb.id)

    asyncio.run(main())


def test_result_buffer_of_a_cancelled_future_is_released():
    with ferry.Buffer.new(1 << 20) as buf:
        futs = [ferry.submit(ferry.OP_ECHO, buf) for _ in range(200)]
        for f in futs:
            f.cancel()
        concurrent.futures.wait(futs, timeout=60)
    wait_for(lambda: ferry.callback_stats().in_flight == 0, what="jobs to finish")


def test_shutdown_fails_waiting_futures_and_restarts():
    fut = ferry.submit(ferry.OP_SLEEP, arg=30_000_000)
    ferry.shutdown_async()
    with pytest.raises((ferry.Closed, ferry.Cancelled)):
        fut.result(timeout=60)
    assert ferry.callback_stats().workers == 0
    assert ferry.submit(ferry.OP_ECHO, value=3).result(timeout=60).value == 3  # starts again


def test_set_workers():
    with pytest.raises(ferry.InvalidArgument):
        ferry.set_workers(300)
    ferry.shutdown_async()
    ferry.set_workers(1)
    try:
        assert ferry.submit(ferry.OP_ECHO, value=1).result(timeout=60).value == 1
        assert ferry.callback_stats().workers == 1
    finally:
        ferry.shutdown_async()
        ferry.set_workers(0)
