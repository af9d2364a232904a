"""The memory-safety checks that run under valgrind (PYTHONMALLOC=malloc, so every Python object
is a malloc block valgrind tracks): views that outlive close, slices of views, every close order,
shares and slices, callbacks from this thread and from Rust workers, async and asyncio jobs,
cancellation. pytest itself is too slow under valgrind for the whole suite; this script covers the
paths where a wrong lifetime would read freed memory. Ends with no live id.

    PYTHONMALLOC=malloc valgrind --suppressions=python/tests/valgrind.supp python valgrind_check.py
"""

from __future__ import annotations

import asyncio
import gc
import random
import sys

import ferry

checks = 0


def check(cond, what):
    global checks
    if not cond:
        print(f"valgrind check failed: {what}", file=sys.stderr)
        sys.exit(1)
    checks += 1


def buffers():
    rng = random.Random(3)
    for i in range(300):
        buf = ferry.Buffer.new(rng.randrange(1, 8192))
        views = [buf.view() for _ in range(rng.randrange(0, 3))]
        views += [v[rng.randrange(0, 1):] for v in list(views)]
        order = list(range(len(views) + 1))
        rng.shuffle(order)
        for k in order:
            if k == len(views):
                buf.close()
            else:
                v = views[k]
                v[0] = i & 0xFF  # write through every view before it goes
                views[k] = None
    b = ferry.Buffer.copy(bytes(range(200)))
    part = b.slice(50, 10)
    mv = b.view()[100:]
    b.close()
    check(bytes(part) == bytes(range(50, 60)), "slice after close")
    check(bytes(mv[:3]) == bytes([100, 101, 102]), "view after close")
    part.close()
    del mv
    with ferry.Buffer.copy(b"x" * 100) as b:
        id_ = b.share().detach()
    with ferry.Buffer.from_id(id_) as again:
        check(bytes(again) == b"x" * 100, "detached id")


def callbacks():
    def fn(buf, value):
        if value == 13:
            raise ValueError("thirteen")
        if buf is not None:
            return buf, value + len(buf)
        return value + 1

    with ferry.Callback(fn) as cb, ferry.Buffer.copy(b"abc") as arg:
        check(cb(value=1).value == 2, "sync invoke")
        out = cb(arg, 1)
        check(out.value == 4 and bytes(out.buffer) == b"abc", "buffer round trip")
        out.buffer.close()
        try:
            cb(value=13)
            check(False, "exception re-raised")
        except ValueError:
            check(True, "exception re-raised")
        futs = [cb.call_async(arg if i % 2 else None, 100 + i) for i in range(200)]
        check([f.result().value for f in futs] == [103 + i if i % 2 else 101 + i for i in range(200)],
              "calls on Rust worker threads")


def jobs():
    with ferry.Buffer.copy(b"hello") as buf:
        check(ferry.checksum(buf) == 0xA430D84680AABD0B, "checksum")
        with ferry.echo(buf) as e:
            check(bytes(e) == b"hello", "echo")
    slow = ferry.submit(ferry.OP_SLEEP, arg=30_000_000)
    check(slow.cancel(), "cancel")
    # A batch read from a Python array in place, resubmitted past a refused job (pointer + offset).
    with ferry.Buffer.copy(b"batch") as buf:
        futs = ferry.submit_many([(ferry.OP_ECHO, buf, 0, 1), (999,), (ferry.OP_CHECKSUM, buf)])
    with futs[0].result(timeout=60).buffer as e:
        check(bytes(e) == b"batch", "submit_many echo")
    check(isinstance(futs[1].exception(timeout=60), ferry.Unsupported), "submit_many refusal")
    check(futs[2].result(timeout=60).value == 0x99954E824B0D0E3B, "submit_many checksum")

    async def main():
        futs = [ferry.submit_async(ferry.OP_ECHO, value=i) for i in range(300)]
        out = await asyncio.gather(*futs)
        check([p.value for p in out] == list(range(300)), "asyncio")
        t = asyncio.ensure_future(ferry.submit_async(ferry.OP_SLEEP, arg=30_000_000))
        await asyncio.sleep(0)
        t.cancel()
        try:
            await t
        except asyncio.CancelledError:
            check(True, "task cancel")

    asyncio.run(main())


def main():
    buffers()
    callbacks()
    jobs()
    ferry.shutdown_async()
    gc.collect()
    st = ferry.stats()
    check(st.live_ids == 0 and st.live_bytes == 0, f"nothing live at the end: {st}")
    print(f"valgrind check: {checks} passed, 0 failed")


if __name__ == "__main__":
    main()
