"""Measurements shared by bench.py (make bench-python) and the demo (python/demo/demo.py)."""

from __future__ import annotations

import asyncio
import ctypes
import gc
import statistics
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


#: The ways completions() submits and delivers: (kind, batched).
#   asyncio, batched: submit_many_async (one crossing per window), batched delivery;
#   asyncio-coalesced, batched: submit_async per job, coalesced into one crossing per loop turn;
#   concurrent, batched: submit_many; and each kind unbatched: one submit crossing per job
#   (ferry_async_submit) and one completion per delivery crossing.
KINDS = ("asyncio", "asyncio-coalesced", "concurrent")
#: What compare() reports each (kind, batched) as.
LABELS = {
    ("asyncio", True): "asyncio, submit_many_async, batched",
    ("asyncio-coalesced", True): "asyncio, submit_async coalesced, batched",
    ("concurrent", True): "concurrent.futures, submit_many, batched",
    ("asyncio", False): "asyncio, submit_async, one per crossing",
    ("concurrent", False): "concurrent.futures, submit, one per crossing",
    ("delivery", True): "delivery alone, batched",
    ("delivery", False): "delivery alone, one per crossing",
}
#: The ratios the goal is about: (batched kind, kind whose one-per-crossing run it is set against).
RATIOS = (("asyncio", "asyncio"), ("asyncio-coalesced", "asyncio"), ("concurrent", "concurrent"),
          ("delivery", "delivery"))


def ratios(results: list[dict]) -> list[tuple[str, str, float]]:
    """(batched label, one-per-crossing label, batched / one per crossing) from compare()."""
    rate = {(r["kind"], r["batched"]): r["per_s"] for r in results}
    return [(LABELS[k, True], LABELS[b, False], rate[k, True] / rate[b, False]) for k, b in RATIOS
            if (k, True) in rate and (b, False) in rate]


async def _asyncio_run(engine, n: int, window: int, mode: str) -> None:
    loop = asyncio.get_running_loop()
    submit, submit_many, op = engine.submit_asyncio, engine.submit_many, _async.OP_ECHO
    done = 0
    while done < n:
        k = min(window, n - done)
        if mode == "many":
            futs = submit_many([(op, None, 0, i) for i in range(k)], loop)
        else:
            futs = [submit(op, None, 0, i, loop) for i in range(k)]
        for f in futs:
            await f
        done += k


def _threads_run(engine, n: int, window: int, mode: str) -> None:
    submit, submit_many, op = engine.submit, engine.submit_many, _async.OP_ECHO
    done = 0
    while done < n:
        k = min(window, n - done)
        if mode == "many":
            futs = submit_many([(op, None, 0, i) for i in range(k)])
        else:
            futs = [submit(op, None, 0, i) for i in range(k)]
        for f in futs:
            f.result()
        done += k


def completions(n: int, kind: str = "asyncio", batched: bool = True, window: int = 4096,
                batch: int = _async.DEFAULT_BATCH) -> dict:
    """Runs n async jobs (OP_ECHO) end to end, `window` in flight at a time; returns
    completions/s and the crossings each way. Batched: submits as `kind` says (KINDS) and takes at
    most `batch` completions per crossing. Unbatched: one ferry_async_submit per job and one
    completion per crossing."""
    ferry.shutdown_async()
    engine = _async.Engine(batch=batch if batched else 1,
                           coalesce=_async.DEFAULT_COALESCE if batched else 0)
    mode = "many" if batched and kind != "asyncio-coalesced" else "each"
    try:
        gc.collect()
        t0 = time.perf_counter()
        if kind == "concurrent":
            _threads_run(engine, n, window, mode)
        else:
            asyncio.run(_asyncio_run(engine, n, window, mode))
        dt = time.perf_counter() - t0
        return {"kind": kind, "batched": batched, "batch": engine.batch, "n": n, "seconds": dt,
                "per_s": n / dt, "crossings": engine.crossings,
                "per_crossing": engine.delivered / max(engine.crossings, 1),
                "submit_calls": engine.submit_calls}
    finally:
        engine.close()
        ferry.shutdown_async()


async def _delivery_run(engine, n: int, window: int) -> None:
    loop = asyncio.get_running_loop()
    items = ffi.new("FerryCompletion[]", window)
    cls = engine.asyncio_future_class
    done = 0
    while done < n:
        k = min(window, n - done)
        futs = [cls(loop=loop) for _ in range(k)]
        for i, f in enumerate(futs):
            items[i].tag, items[i].value = id(f), i
        engine.calls.update(zip(map(id, futs), futs))
        st = lib.ferry_queue_post(engine.queue, items, k)
        if st:
            raise ferry.FerryError(status=st)
        for f in futs:
            await f
        done += k


def delivery(n: int, batch: int = _async.DEFAULT_BATCH, window: int = 4096) -> dict:
    """Delivery alone: n completions posted to the queue ready-made (ferry_queue_post, `window`
    per call), taken by the poller at most `batch` per crossing and resolved into asyncio futures
    on the loop. The posting is not timed apart: it costs the same per job in both modes."""
    ferry.shutdown_async()
    engine = _async.Engine(batch=batch)
    try:
        gc.collect()
        t0 = time.perf_counter()
        asyncio.run(_delivery_run(engine, n, window))
        dt = time.perf_counter() - t0
        return {"kind": "delivery", "batched": batch > 1, "batch": batch, "n": n, "seconds": dt,
                "per_s": n / dt, "crossings": engine.crossings,
                "per_crossing": engine.delivered / max(engine.crossings, 1), "submit_calls": 0}
    finally:
        engine.close()
        ferry.shutdown_async()


def compare(n: int, kinds=KINDS, rounds: int = 4, window: int = 4096) -> list[dict]:
    """Each kind batched and one per crossing, plus delivery alone, n completions per mode. The
    modes take turns in `rounds` rounds of n / rounds jobs, so a change in the machine's load
    falls on every mode alike; each mode's figures are the sums over its rounds."""
    per = max(1, n // rounds)
    modes = [(k, True) for k in kinds] + [(k, False) for k in kinds if k != "asyncio-coalesced"]
    modes += [("delivery", True), ("delivery", False)]  # asyncio-coalesced unbatched is asyncio's
    total = {m: None for m in modes}
    for _ in range(rounds):
        for kind, batched in modes:
            if kind == "delivery":
                r = delivery(per, _async.DEFAULT_BATCH if batched else 1, window)
            else:
                r = completions(per, kind, batched, window)
            t = total[kind, batched]
            if t is None:
                total[kind, batched] = r
            else:
                for key in ("n", "seconds", "crossings", "submit_calls"):
                    t[key] += r[key]
    out = []
    for m in modes:
        t = total[m]
        t["per_s"] = t["n"] / t["seconds"]
        t["per_crossing"] = t["n"] / max(t["crossings"], 1)
        t["rounds"] = rounds
        out.append(t)
    return out


async def _latency_run(engine, n: int) -> list[float]:
    loop = asyncio.get_running_loop()
    submit, op, clock = engine.submit_asyncio, _async.OP_ECHO, time.perf_counter
    out = []
    for i in range(n):
        t0 = clock()
        await submit(op, None, 0, i, loop)
        out.append(clock() - t0)
    return out


def latency(n: int = 20_000, rounds: int = 4) -> dict:
    """The round trip of a lone ``await submit_async(...)`` (nothing else in flight), with
    submit_async coalescing (the flush waits for the loop to turn) and without (one
    ferry_async_submit at once), in alternating rounds; median and 99th percentile in us."""
    samples: dict = {True: [], False: []}
    for _ in range(rounds):
        for coalesce in (True, False):
            ferry.shutdown_async()
            engine = _async.Engine(coalesce=_async.DEFAULT_COALESCE if coalesce else 0)
            try:
                samples[coalesce] += asyncio.run(_latency_run(engine, n // rounds))
            finally:
                engine.close()
                ferry.shutdown_async()
    out = {}
    for coalesce, xs in samples.items():
        xs.sort()
        out["coalesced" if coalesce else "at once"] = {
            "median_us": statistics.median(xs) * 1e6, "p99_us": xs[int(len(xs) * 0.99)] * 1e6,
            "n": len(xs)}
    return out
