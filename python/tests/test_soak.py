"""A create/view/release loop with random early closes keeps RSS flat.

FERRY_PY_SOAK sets the cycle count (default 1,000,000; `make test-python` runs the default)."""

from __future__ import annotations

import gc
import os
import random

import pytest

import ferry

pytestmark = pytest.mark.usefixtures("live")


def rss_kib() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def test_soak_rss_flat():
    cycles = int(os.environ.get("FERRY_PY_SOAK", "1000000"))
    rng = random.Random(1)
    sizes = [64, 512, 4096, 65536]
    held: list = []  # a few views kept alive across iterations, dropped at random
    warm = max(cycles // 10, 1)
    start = peak = 0
    for i in range(cycles):
        buf = ferry.Buffer.new(sizes[i & 3])
        mv = buf.view()
        mv[0] = i & 0xFF
        r = rng.random()
        if r < 0.25:
            buf.close()  # closed early, while the view is alive: released when mv goes
            part = mv[1:]
            del mv
            if rng.random() < 0.5:
                held.append(part)
        elif r < 0.5:
            part = buf.slice(0, 8)
            buf.close()
            part.close()
        # else: dropped without close; the finalizer releases it
        if len(held) > 64:
            del held[rng.randrange(len(held))]
        if i == warm:
            gc.collect()
            start = peak = rss_kib()
        elif i > warm and i % 4096 == 0:
            peak = max(peak, rss_kib())
    held.clear()
    gc.collect()
    end = rss_kib()
    peak = max(peak, end)
    st = ferry.stats()
    print(f"\nsoak: {cycles} cycles, RSS start {start} KiB, end {end} KiB, peak {peak} KiB; {st}")
    # Flat: what ferry and Python keep after the warm-up does not grow with the cycle count.
    assert peak - start < 16 * 1024, (start, end, peak)
