"""Memory pressure: the bytes of open Buffers, the soft limit, and when to run gc.collect().

CPython frees an unreachable Buffer at once by reference counting, so its Rust memory goes back
immediately; only Buffers caught in reference cycles wait for the cycle collector, which cannot see
the Rust bytes they hold. So, as the Go package does (golang/pressure.go), ferry counts the bytes of
Buffers whose id is not yet released (tracked bytes), and:

- when they pass the soft limit, the allocating thread runs ``gc.collect()``; the next trigger is
  the soft limit again if that freed at least a quarter of it, or else half the soft limit above
  what is still held, so a program that really holds that much is not collected over and over;
- the core's live-byte limit is set to twice the soft limit; when a create is refused with
  LIMIT_REACHED, ferry collects and retries (up to 4 times) before it raises ``LimitReached``.

The core's limit is process-wide: a Go library in the same process (examples/python-go) sets it
too, and the last setting wins (both default to the same value).
"""

from __future__ import annotations

import gc
import os
import re
import threading

from ._lib import lib

DEFAULT_SOFT_LIMIT = 256 << 20
SOFT_LIMIT_ENV = "FERRY_SOFT_LIMIT"
RELIEVE_ATTEMPTS = 4

_lock = threading.Lock()  # guards _tracked and _freed; held only for integer arithmetic
_collect_lock = threading.Lock()
_tracked = 0
_freed = 0  # bytes released by finalizers and closes, to judge what a collection freed
_soft = 0
_next_trigger = 1 << 62
collections = 0


def parse_limit(text: str | None) -> int:
    """Parses FERRY_SOFT_LIMIT: bytes with an optional K, M, G, KiB, MiB or GiB suffix, or "off".
    An empty or malformed value gives the default."""
    s = (text or "").strip()
    if not s:
        return DEFAULT_SOFT_LIMIT
    if s.lower() == "off":
        return 0
    m = re.fullmatch(r"(\d+)\s*(KiB|MiB|GiB|K|M|G)?", s)
    if not m:
        return DEFAULT_SOFT_LIMIT
    mult = {None: 1, "K": 1 << 10, "KiB": 1 << 10, "M": 1 << 20, "MiB": 1 << 20,
            "G": 1 << 30, "GiB": 1 << 30}[m.group(2)]
    value = int(m.group(1)) * mult
    return value if value < 1 << 62 else DEFAULT_SOFT_LIMIT


def set_soft_limit(nbytes: int) -> int:
    """Sets the soft limit on the bytes of open Buffers and returns the previous one.

    Past it ferry runs ``gc.collect()`` so that Buffers in unreachable cycles release their
    memory; the core's live-byte limit becomes twice the soft limit. 0 turns both off. It
    overrides FERRY_SOFT_LIMIT."""
    global _soft, _next_trigger
    if not isinstance(nbytes, int) or nbytes < 0:
        raise ValueError("set_soft_limit: nbytes must be an int >= 0")
    prev, _soft = _soft, nbytes
    _next_trigger = nbytes if nbytes > 0 else 1 << 62
    lib.ferry_limit_set(2 * nbytes)
    return prev


def soft_limit() -> int:
    """Returns the soft limit in bytes (0: off)."""
    return _soft


def tracked_bytes() -> int:
    """Returns the bytes of Buffers whose id this process has not released yet."""
    return _tracked


def track(n: int) -> None:
    global _tracked
    with _lock:
        _tracked += n
        t = _tracked
    if t >= _next_trigger:
        _paced_collect()


def untrack(n: int) -> None:
    global _tracked, _freed
    with _lock:
        _tracked -= n
        _freed += n


def _paced_collect() -> None:
    global _next_trigger
    if not _collect_lock.acquire(blocking=False):
        return  # another thread is collecting
    try:
        if _tracked < _next_trigger:
            return
        before = _freed
        _collect()
        soft = _soft
        if soft <= 0:
            return
        if _freed - before >= soft // 4:
            _next_trigger = soft
        else:
            _next_trigger = max(soft, _tracked + soft // 2)
    finally:
        _collect_lock.release()


def _collect() -> None:
    global collections
    gc.collect()
    collections += 1


def relieve(attempt: int, n: int) -> bool:
    """Called after the core refused a create of n bytes: collects and says whether to retry."""
    hard = 2 * _soft
    if attempt >= RELIEVE_ATTEMPTS or (hard > 0 and n > hard):
        return False
    with _collect_lock:
        _collect()
    return True


set_soft_limit(parse_limit(os.environ.get(SOFT_LIMIT_ENV)))
