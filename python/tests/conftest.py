"""Shared fixtures. The session ends by checking that nothing leaked: no live id, no live byte,
no Python callable still registered, no unclaimed callback exception."""

from __future__ import annotations

import gc
import time

import pytest

import ferry
from ferry import _callback


def wait_for(cond, timeout: float = 30.0, what: str = "condition"):
    """Polls cond() until it is true or the (generous) deadline passes."""
    deadline = time.monotonic() + timeout
    while True:
        if cond():
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.001)


@pytest.fixture(scope="session", autouse=True)
def no_leaks_at_end():
    yield
    ferry.shutdown_async()
    gc.collect()
    st = ferry.stats()
    cb = ferry.callback_stats()
    print(f"\nferry after the suite: {st}\n{cb}")
    assert st.live_ids == 0, st
    assert st.live_bytes == 0, st
    assert cb.registered == 0 and cb.alive == 0 and cb.in_flight == 0, cb
    assert _callback.registered() == 0
    assert _callback.pending_failures() == 0


@pytest.fixture
def live():
    """Asserts that a test leaves the live-id count where it found it."""
    gc.collect()
    before = ferry.stats().live_ids
    yield
    gc.collect()
    wait_for(lambda: ferry.stats().live_ids == before, what="live ids back to the start")
