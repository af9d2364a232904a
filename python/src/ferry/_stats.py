"""Counters of ferry's process-wide tables, for leak checks and monitoring."""

from __future__ import annotations

from typing import NamedTuple

from ._errors import check
from ._lib import ffi, lib


class Stats(NamedTuple):
    """The buffer table's counters (FerryStats); shared by every language in the process."""

    live_ids: int
    live_bytes: int
    peak_bytes: int
    created: int
    released: int
    limit_bytes: int


class CallbackStats(NamedTuple):
    """The callback machinery's counters (FerryCallbackStats)."""

    registered: int
    alive: int
    queues: int
    in_flight: int
    workers: int


def stats() -> Stats:
    """Returns the buffer table's counters: live ids and bytes, peak, created, released, limit."""
    s = ffi.new("FerryStats *")
    check(lib.ferry_stats_get(s))
    return Stats(s.live_ids, s.live_bytes, s.peak_bytes, s.created, s.released, s.limit_bytes)


def callback_stats() -> CallbackStats:
    """Returns the callback machinery's counters."""
    s = ffi.new("FerryCallbackStats *")
    check(lib.ferry_callback_stats(s))
    return CallbackStats(s.registered, s.alive, s.queues, s.in_flight, s.workers)


def reset_peak() -> None:
    """Starts peak tracking again from the current live bytes."""
    check(lib.ferry_peak_reset())
