#!/usr/bin/env python3
"""make bench-python: the binding choice, zero-copy views against copies, and async completions
batched against one per crossing. One run; every ratio compares figures from this same run.

    python python/bench/bench.py [--completions N] [--sizes-only] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import platform
import sys

import measure

import ferry


def fmt_ns(ns: float) -> str:
    if ns >= 1e6:
        return f"{ns / 1e6:.2f} ms"
    if ns >= 1e3:
        return f"{ns / 1e3:.2f} us"
    return f"{ns:.0f} ns"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--completions", type=int, default=1_000_000, help="async jobs per mode")
    ap.add_argument("--json", help="also write the figures here")
    args = ap.parse_args()
    print(f"Python {platform.python_version()} ({platform.python_implementation()}), "
          f"ferry {ferry.__version__}, library {ferry.library_path()}\n")
    figures: dict = {}

    print("Binding choice (ns per call, best of 5):")
    rows = measure.binding_choice()
    for name, ns in rows:
        print(f"  {name:<48} {ns:8.0f} ns")
    figures["binding"] = dict(rows)

    print("\nZero-copy view against a copy (per call, best of 5):")
    vc = measure.view_vs_copy()
    has_mv = "memoryview_ns" in vc[0]
    print(f"  {'size':>8} {'buf.view()':>12}" + (f" {'memoryview(buf)':>16}" if has_mv else "")
          + f" {'bytes(buf)':>12} {'copy/view':>10}")
    for r in vc:
        line = f"  {r['label']:>8} {fmt_ns(r['view_ns']):>12}"
        if has_mv:
            line += f" {fmt_ns(r['memoryview_ns']):>16}"
        line += f" {fmt_ns(r['copy_ns']):>12} {r['copy_ns'] / r['view_ns']:>9.0f}x"
        print(line)
    flat = vc[-1]["view_ns"] / vc[0]["view_ns"]
    ratio = vc[-1]["copy_ns"] / vc[-1]["view_ns"]
    print(f"  view at 64 MiB vs copy: {ratio:,.0f}x (goal >= 1,000x); "
          f"view 64 MiB / view 64 B: {flat:.2f}x (goal <= 1.2x)")
    figures["view_vs_copy"] = vc

    n = args.completions
    print(f"\nAsync completions, {n:,} per mode, 4,096 in flight. asyncio/concurrent: jobs (OP_ECHO)"
          " submitted and awaited end to end;\n  delivery: completions posted ready-made"
          " (ferry_queue_post) and resolved into asyncio futures, i.e. the crossing alone:")
    print(f"  {'futures':<20} {'per crossing':>14} {'completions/s':>14} {'seconds':>8} {'crossings':>10}")
    comp = []
    for kind in ("asyncio", "concurrent"):
        for batch in (256, 1):
            r = measure.completions(n, batch, kind)
            comp.append(r)
            print(f"  {kind:<20} {'<= ' + str(batch):>14} {r['per_s']:>14,.0f} {r['seconds']:>8.2f} "
                  f"{r['crossings']:>10,}  (avg {r['per_crossing']:.1f})")
    for batch in (256, 1):
        r = measure.delivery(n, batch)
        comp.append(r)
        print(f"  {'delivery (posted)':<20} {'<= ' + str(batch):>14} {r['per_s']:>14,.0f} {r['seconds']:>8.2f} "
              f"{r['crossings']:>10,}  (avg {r['per_crossing']:.1f})")
    for kind in ("asyncio", "concurrent", "delivery"):
        b = next(r for r in comp if r["kind"] == kind and r["batch"] == 256)
        o = next(r for r in comp if r["kind"] == kind and r["batch"] == 1)
        print(f"  {kind}: batched / one per crossing = {b['per_s'] / o['per_s']:.1f}x (goal >= 5x)")
    figures["completions"] = comp

    st = ferry.stats()
    print(f"\nlive ids {st.live_ids}, live bytes {st.live_bytes} at the end")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(figures, f, indent=1)
    return 0 if st.live_ids == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
