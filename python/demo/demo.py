#!/usr/bin/env python3
"""The Python part of `make demo`: frames of Rust memory viewed from Python zero-copy against
bytes copies, async completions batched against one per crossing, Buffers lost in reference
cycles under the soft limit, and a final leak check. Prints a table and appends a "Python"
section to the demo's report (results/report.md).

    python python/demo/demo.py [--report results/report.md] [--quick]
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import pathlib
import platform
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "bench"))

import measure  # noqa: E402

import ferry  # noqa: E402


def fmt_ns(ns: float) -> str:
    if ns >= 1e6:
        return f"{ns / 1e6:.2f} ms"
    if ns >= 1e3:
        return f"{ns / 1e3:.2f} µs"
    return f"{ns:.0f} ns"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--report", default="results/report.md")
    ap.add_argument("--quick", action="store_true", help="fewer jobs (a few seconds)")
    args = ap.parse_args()
    md = [f"\n## Python (CPython {platform.python_version()}, cffi ABI mode)\n"]
    ok = True

    # 1. Frames: the same bytes through a zero-copy view and through a copy, hashed both ways.
    rows = measure.view_vs_copy(min_time=0.05 if args.quick else 0.2)
    print("Frames: Rust memory viewed from Python (buf.view()) vs copied (bytes(buf))")
    print(f"{'size':>8} {'view':>10} {'copy':>10} {'copy/view':>10} {'same bytes':>11}")
    md += ["Frames of Rust memory in Python: `buf.view()` (a memoryview, no copy) against "
           "`bytes(buf)` (a copy); both hashed with BLAKE2b to show they see the same bytes.\n",
           "| size | view | copy | copy / view | same bytes |", "|---:|---:|---:|---:|:---:|"]
    for r in rows:
        with ferry.Buffer.new(r["size"]) as buf:
            mv = buf.view()
            for i in range(0, r["size"], 4093):
                mv[i] = i & 0xFF
            same = hashlib.blake2b(mv).digest() == hashlib.blake2b(bytes(buf)).digest()
            del mv
        ok &= same
        ratio = r["copy_ns"] / r["view_ns"]
        print(f"{r['label']:>8} {fmt_ns(r['view_ns']):>10} {fmt_ns(r['copy_ns']):>10} {ratio:>9.0f}x {'yes' if same else 'NO':>11}")
        md.append(f"| {r['label']} | {fmt_ns(r['view_ns'])} | {fmt_ns(r['copy_ns'])} | {ratio:,.0f}× | {'yes' if same else 'NO'} |")

    # 2. Async completions, batched vs one per crossing.
    n = 50_000 if args.quick else 200_000
    print(f"\nAsync: {n:,} jobs per mode, 4,096 in flight, the modes taking turns in 2 rounds")
    print(f"{'mode':>44} {'completions/s':>14} {'submit calls':>13} {'deliveries':>11}")
    md += [f"\nAsync: {n:,} jobs (OP_ECHO) per mode, 4,096 in flight, the modes taking turns in 2 "
           "rounds. Batched: one `ferry_async_submit_batch` per 4,096 jobs (submit_async: per loop "
           "turn) and up to 1,024 completions per delivery crossing (one `call_soon_threadsafe` "
           "per batch); one per crossing: one submit and one delivery crossing per job.\n",
           "| mode | completions/s | submit calls | delivery crossings |", "|---|---:|---:|---:|"]
    comp = measure.compare(n, rounds=2)
    for r in comp:
        label = measure.LABELS[r["kind"], r["batched"]]
        print(f"{label:>44} {r['per_s']:>14,.0f} {r['submit_calls']:>13,} {r['crossings']:>11,}")
        md.append(f"| {label} | {r['per_s']:,.0f} | {r['submit_calls']:,} | {r['crossings']:,} |")
    for batched, one, ratio in measure.ratios(comp):
        print(f"{batched} / one per crossing: {ratio:.1f}x")
        md.append(f"| {batched} / {one} | {ratio:.1f}× | | |")

    # 3. Buffers lost in reference cycles: the soft limit makes ferry collect them.
    total_mib = 256 if args.quick else 1024
    prev = ferry.set_soft_limit(64 << 20)
    gc.collect()
    ferry.reset_peak()
    gc.disable()
    try:
        for _ in range(total_mib):
            b = ferry.Buffer.new(1 << 20)
            cycle = [b]
            cycle.append(cycle)
        del b, cycle
    finally:
        gc.enable()
    gc.collect()
    peak = ferry.stats().peak_bytes
    ferry.set_soft_limit(prev)
    bounded = peak <= 128 << 20
    ok &= bounded
    print(f"\nDropped {total_mib} MiB of Buffers in reference cycles, automatic gc off, soft limit "
          f"64 MiB: peak live {peak / (1 << 20):.0f} MiB ({'bounded' if bounded else 'NOT bounded'})")
    md.append(f"\n{total_mib} MiB of 1 MiB Buffers dropped in reference cycles with the automatic "
              f"collector off and a 64 MiB soft limit: ferry's own collections kept the peak of live "
              f"Rust bytes at {peak / (1 << 20):.0f} MiB (hard limit 128 MiB).\n")

    ferry.shutdown_async()
    gc.collect()
    st = ferry.stats()
    clean = st.live_ids == 0 and st.live_bytes == 0
    ok &= clean
    print(f"\nlive ids {st.live_ids}, live bytes {st.live_bytes}: {'clean' if clean else 'LEAK'}")
    md.append(f"At the end: {st.live_ids} live ids, {st.live_bytes} live bytes.\n")

    report = pathlib.Path(args.report)
    report.parent.mkdir(parents=True, exist_ok=True)
    with report.open("a") as f:
        f.write("\n".join(md) + "\n")
    print(f"appended the Python section to {report}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
