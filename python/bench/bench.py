#!/usr/bin/env python3
"""make bench-python: the binding choice, zero-copy views against copies, and async completions
batched against one per crossing. One run; every ratio compares figures from this same run.

    python python/bench/bench.py [--completions N] [--rounds R] [--skip-sync] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys

import measure

import ferry
from ferry import _async


def fmt_ns(ns: float) -> str:
    if ns >= 1e6:
        return f"{ns / 1e6:.2f} ms"
    if ns >= 1e3:
        return f"{ns / 1e3:.2f} us"
    return f"{ns:.0f} ns"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--completions", type=int, default=1_000_000, help="async jobs per mode")
    ap.add_argument("--rounds", type=int, default=4, help="turns the async modes take")
    ap.add_argument("--latency", type=int, default=20_000, help="lone round trips per mode")
    ap.add_argument("--skip-sync", action="store_true", help="only the async figures")
    ap.add_argument("--json", help="also write the figures here")
    args = ap.parse_args()
    print(f"Python {platform.python_version()} ({platform.python_implementation()}), "
          f"ferry {ferry.__version__}, library {ferry.library_path()}\n")
    figures: dict = {}

    if not args.skip_sync:
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
    load0 = os.getloadavg()
    print(f"\nAsync completions, {n:,} per mode, 4,096 in flight, the modes taking turns in "
          f"{args.rounds} rounds of {n // args.rounds:,}.\n"
          "  asyncio/concurrent: OP_ECHO jobs submitted and awaited end to end.\n"
          "  Batched: submit_many(_async) (one crossing per 4,096 jobs) or submit_async coalesced"
          f" per loop turn,\n  and <= {_async.DEFAULT_BATCH} completions per delivery crossing."
          " One per crossing: one ferry_async_submit\n  and one delivery crossing per job."
          " delivery: completions posted ready-made (ferry_queue_post)\n  and resolved into"
          " asyncio futures.")
    print(f"  {'mode':<44} {'completions/s':>14} {'seconds':>8} {'submit calls':>13} "
          f"{'deliveries':>11} {'per delivery':>13}")
    comp = measure.compare(n, rounds=args.rounds)
    for r in comp:
        print(f"  {measure.LABELS[r['kind'], r['batched']]:<44} {r['per_s']:>14,.0f} "
              f"{r['seconds']:>8.2f} {r['submit_calls']:>13,} {r['crossings']:>11,} "
              f"{r['per_crossing']:>13.1f}")
    for batched, one, ratio in measure.ratios(comp):
        print(f"  {batched} / {one}: {ratio:.1f}x (goal >= 5x)")
    load1 = os.getloadavg()
    print(f"  load average (1 min) {load0[0]:.2f} before, {load1[0]:.2f} after, on "
          f"{os.cpu_count()} CPUs")
    figures["completions"] = comp
    figures["load"] = {"before": load0, "after": load1, "cpus": os.cpu_count()}

    lat = measure.latency(args.latency)
    print(f"\nA lone `await submit_async(OP_ECHO)` round trip, {args.latency:,} in turns "
          "(the first submit of a loop turn goes at once; later ones wait for the turn's flush):")
    for mode, r in lat.items():
        print(f"  {mode:<12} median {r['median_us']:8.1f} us   p99 {r['p99_us']:8.1f} us")
    figures["latency"] = lat

    st = ferry.stats()
    print(f"\nlive ids {st.live_ids}, live bytes {st.live_bytes} at the end")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(figures, f, indent=1)
    return 0 if st.live_ids == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
