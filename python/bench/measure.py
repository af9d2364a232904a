"""Measurements shared by bench.py (make bench-python) and the demo (python/demo/demo.py)."""

from __future__ import annotations

import asyncio
import ctypes
import gc
import time
import timeit
import weakref

import ferry
from ferry import _async
from ferry._lib import LIBRARY_PATH, ffi, lib

SIZES = [(64, "64 B"), (4096, "4 KiB"), (1 << 20, "1 MiB"), (64 << 20, "64 MiB")]


def per_op_ns(fn, min_time: float = 0.2, repeat: int = 5) -> float:
    """Best of `repeat` runs of fn, each long enough to last min_time, in ns per call."""
    t = timeit.Timer(fn)
    number, _ = t.autorange()
    number = max(1, int(number * min_time / 0.2))
    return min(t.repeat(repeat=repeat, number=number)) / number * 1e9


def binding_choice() -> list[tuple[str, float]]:
    """cffi ABI mode against ctypes on the calls and views the package makes."""
    cl = ctypes.CDLL(LIBRARY_PATH)

    class View(ctypes.Structure):
        _fields_ = [("id", ctypes.c_uint64), ("ptr", ctypes.c_void_p), ("len", ctypes.c_size_t)]

    cl.ferry_abi_version.argtypes, cl.ferry_abi_version.restype = [], ctypes.c_uint32
    cl.ferry_buffer_view.argtypes = [ctypes.c_uint64, ctypes.POINTER(View)]
    cl.ferry_buffer_view.restype = ctypes.c_uint32
    with ferry.Buffer.new(4096) as buf:
        v, cv = ffi.new("FerryView *"), View()
        cffi_abi, ct_abi = lib.ferry_abi_version, cl.ferry_abi_version
        cffi_view, ct_view, byref, bid = lib.ferry_buffer_view, cl.ferry_buffer_view, ctypes.byref, buf.id
        cffi_view(bid, v)
        ptr, addr = v.ptr, int(ffi.cast("uintptr_t", v.ptr))
        arr_t = ctypes.c_ubyte * 4096

        def ct_from_address_finalize():
            a = arr_t.from_address(addr)
            weakref.finalize(a, int)
            return memoryview(a)

        rows = [
            ("cffi ABI: ferry_abi_version()", per_op_ns(lambda: cffi_abi())),
            ("ctypes:   ferry_abi_version()", per_op_ns(lambda: ct_abi())),
            ("cffi ABI: ferry_buffer_view(id, &view)", per_op_ns(lambda: cffi_view(bid, v))),
            ("ctypes:   ferry_buffer_view(id, byref(view))", per_op_ns(lambda: ct_view(bid, byref(cv)))),
            ("cffi:   memoryview(ffi.buffer(ptr, n))", per_op_ns(lambda: memoryview(ffi.buffer(ptr, 4096)))),
            ("ctypes: memoryview(from_address)", per_op_ns(lambda: memoryview(arr_t.from_address(addr)))),
            ("ctypes: from_address + weakref.finalize", per_op_ns(ct_from_address_finalize)),
            ("ferry: buf.view() (what users call)", per_op_ns(buf.view)),
        ]
    return rows


def view_vs_copy(sizes=SIZES, min_time: float = 0.2) -> list[dict]:
    """Per size: buf.view() (zero-copy), memoryview(buf) on 3.12+, and bytes(buf) (a copy)."""
    out = []
    for n, label in sizes:
        with ferry.Buffer.new(n) as buf:
            buf.view()[n - 1] = 1  # touch the pages, so the copy is not of untouched memory
            view = per_op_ns(buf.view, min_time)
            copy = per_op_ns(buf.tobytes, min_time, repeat=3 if n >= 1 << 20 else 5)
            row = {"size": n, "label": label, "view_ns": view, "copy_ns": copy}
            try:
                row["memoryview_ns"] = per_op_ns(lambda: memoryview(buf), min_time)
            except TypeError:
                pass  # before Python 3.12
            out.append(row)
    return out


async def _asyncio_run(engine, n: int, window: int) -> None:
    submit, loop = engine.submit_asyncio, asyncio.get_running_loop()
    done = 0
    while done < n:
        k = min(window, n - done)
        futs = [submit(_async.OP_ECHO, None, 0, i, loop) for i in range(k)]
        for f in futs:
            await f
        done += k


def _threads_run(engine, n: int, window: int) -> None:
    done = 0
    while done < n:
        k = min(window, n - done)
        futs = [engine.submit(_async.OP_ECHO, None, 0, i) for i in range(k)]
        for f in futs:
            f.result()
        done += k


def completions(n: int, batch: int, kind: str = "asyncio", window: int = 4096) -> dict:
    """Runs n async jobs (OP_ECHO) through an engine that takes at most `batch` completions per
    crossing, `window` in flight at a time; returns completions/s and crossings."""
    ferry.shutdown_async()
    engine = _async.Engine(batch=batch)
    try:
        gc.collect()
        t0 = time.perf_counter()
        if kind == "asyncio":
            asyncio.run(_asyncio_run(engine, n, window))
        else:
            _threads_run(engine, n, window)
        dt = time.perf_counter() - t0
        return {"kind": kind, "batch": batch, "n": n, "seconds": dt, "per_s": n / dt,
                "crossings": engine.crossings, "per_crossing": engine.delivered / max(engine.crossings, 1)}
    finally:
        engine.close()
        ferry.shutdown_async()


async def _delivery_run(engine, n: int, window: int) -> None:
    loop = asyncio.get_running_loop()
    items = ffi.new("FerryCompletion[]", window)
    for i in range(window):
        items[i].tag, items[i].value = i + 1, i
    tags = range(1, window + 1)
    done = 0
    while done < n:
        k = min(window, n - done)
        futs = [_async.AsyncioFuture(engine, t, loop) for t in tags[:k]]
        engine.calls.update(zip(tags[:k], futs))
        st = lib.ferry_queue_post(engine.queue, items, k)
        if st:
            raise ferry.FerryError(status=st)
        for f in futs:
            await f
        done += k


def delivery(n: int, batch: int, window: int = 4096) -> dict:
    """Delivery alone: n completions posted to the queue ready-made (ferry_queue_post, `window`
    per call), taken by the poller at most `batch` per crossing and resolved into asyncio futures
    on the loop. Submitting costs the same per job in both modes, so this is the part batching
    changes."""
    ferry.shutdown_async()
    engine = _async.Engine(batch=batch)
    try:
        gc.collect()
        t0 = time.perf_counter()
        asyncio.run(_delivery_run(engine, n, window))
        dt = time.perf_counter() - t0
        return {"kind": "delivery", "batch": batch, "n": n, "seconds": dt, "per_s": n / dt,
                "crossings": engine.crossings, "per_crossing": engine.delivered / max(engine.crossings, 1)}
    finally:
        engine.close()
        ferry.shutdown_async()
