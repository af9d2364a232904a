"""The soft limit: Buffers lost in reference cycles are collected before the hard limit bites."""

from __future__ import annotations

import gc

import pytest

import ferry
from ferry import _pressure

pytestmark = pytest.mark.usefixtures("live")


def test_parse_limit():
    p = _pressure.parse_limit
    assert p(None) == p("") == p("junk") == _pressure.DEFAULT_SOFT_LIMIT
    assert p("off") == 0 and p("OFF") == 0
    assert p("123") == 123
    assert p("4K") == p("4KiB") == 4096
    assert p("2 MiB") == 2 << 20 and p("1G") == 1 << 30


@pytest.fixture
def small_limit():
    prev = ferry.set_soft_limit(8 << 20)
    gc.collect()
    ferry.reset_peak()
    yield
    ferry.set_soft_limit(prev)


def test_cycles_are_collected_past_the_soft_limit(small_limit):
    # With automatic GC off, only ferry's own pressure collections can free these cycles.
    gc.disable()
    try:
        before = _pressure.collections
        for _ in range(400):  # 400 MiB through an 8 MiB soft limit (16 MiB hard)
            b = ferry.Buffer.new(1 << 20)
            cycle = [b]
            cycle.append(cycle)
        del b, cycle
    finally:
        gc.enable()
    st = ferry.stats()
    assert _pressure.collections > before
    assert st.peak_bytes <= 16 << 20  # never past the hard limit, and no LimitReached raised
    assert st.limit_bytes == 16 << 20


def test_limit_reached_when_really_held(small_limit):
    held = [ferry.Buffer.new(4 << 20) for _ in range(3)]
    try:
        with pytest.raises(ferry.LimitReached):
            ferry.Buffer.new(8 << 20)
        with pytest.raises(ferry.LimitReached):
            ferry.Buffer.new(64 << 20)  # past the hard limit: refused without retrying
    finally:
        for b in held:
            b.close()


def test_soft_limit_setting():
    prev = ferry.set_soft_limit(0)
    try:
        assert ferry.soft_limit() == 0 and ferry.stats().limit_bytes == 0
        with pytest.raises(ValueError):
            ferry.set_soft_limit(-1)
    finally:
        ferry.set_soft_limit(prev)
    assert ferry.soft_limit() == prev
