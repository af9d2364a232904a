"""Buffers: zero-copy views, the lifetime rule, ownership and errors."""

from __future__ import annotations

import array
import gc
import random
import sys
import threading

import pytest

import ferry

pytestmark = pytest.mark.usefixtures("live")


def live_ids() -> int:
    return ferry.stats().live_ids


def test_new_is_zeroed_and_writable():
    with ferry.Buffer.new(4096) as buf:
        assert len(buf) == 4096 and not buf.closed
        mv = buf.view()
        assert mv.format == "B" and mv.nbytes == 4096 and not mv.readonly
        assert bytes(mv) == bytes(4096)
        mv[10:15] = b"hello"
        assert bytes(buf)[10:15] == b"hello"
        del mv
    assert buf.closed


def test_copy_from_bytes_like():
    for data in (b"abc", bytearray(b"abc"), memoryview(b"xabc")[1:], array.array("B", b"abc")):
        with ferry.Buffer.copy(data) as b:
            assert bytes(b) == b"abc"
    with ferry.Buffer.copy(array.array("I", [1, 2])) as b:
        assert len(b) == 8
    with ferry.Buffer.copy(b"") as b:
        assert len(b) == 0 and bytes(b) == b"" and b.view().nbytes == 0
    with pytest.raises(TypeError):
        ferry.Buffer.copy("text")
    with pytest.raises(ValueError):
        ferry.Buffer.copy(memoryview(b"abcdef")[::2])


def test_view_is_zero_copy():
    with ferry.Buffer.new(64) as buf:
        a, b = buf.view(), buf.view()
        a[0] = 7
        assert b[0] == 7  # two views, one memory
        with buf.share() as other:
            other.view()[1] = 9
            assert a[1] == 9  # a share names the same memory
        ro = buf.view(readonly=True)
        assert ro.readonly and ro[0] == 7
        with pytest.raises(TypeError):
            ro[0] = 1


def test_close_releases_at_once_without_views():
    before = live_ids()
    buf = ferry.Buffer.new(100)
    assert live_ids() == before + 1
    buf.close()
    assert live_ids() == before
    buf.close()  # idempotent
    assert live_ids() == before


def test_view_outlives_close():
    before = live_ids()
    buf = ferry.Buffer.copy(b"0123456789")
    mv = buf.view()
    buf.close()
    assert buf.closed and live_ids() == before + 1  # the view holds the memory
    assert bytes(mv) == b"0123456789"
    mv.release()
    assert live_ids() == before


def test_slices_of_memoryviews_hold_the_memory():
    before = live_ids()
    buf = ferry.Buffer.copy(bytes(range(100)))
    mv = buf.view()
    part = mv[10:20]
    sub = part[2:4]
    cast = mv.cast("H")
    del mv
    buf.close()
    assert live_ids() == before + 1
    assert bytes(part) == bytes(range(10, 20))
    del part
    assert live_ids() == before + 1  # sub and cast still hold it
    assert bytes(sub) == bytes([12, 13])
    del sub
    assert live_ids() == before + 1
    assert cast[0] == 0x0100
    del cast
    assert live_ids() == before  # the last view gone: released


def test_views_made_before_close_and_random_release_order():
    rng = random.Random(5)
    before = live_ids()
    for _ in range(200):
        buf = ferry.Buffer.new(rng.randrange(1, 4096))
        views = [buf.view() for _ in range(rng.randrange(0, 4))]
        views += [v[rng.randrange(0, 2):] for v in list(views)]
        order = list(range(len(views) + 1))
        rng.shuffle(order)
        for i in order:
            if i == len(views):
                buf.close()
            else:
                views[i] = None
        assert live_ids() == before


def test_new_views_after_close_raise():
    buf = ferry.Buffer.new(8)
    buf.close()
    for call in (buf.view, buf.share, buf.detach, buf.tobytes, lambda: bytes(buf),
                 lambda: buf.slice(0, 1)):
        with pytest.raises(ferry.Closed, match="closed"):
            call()


def test_slice():
    with ferry.Buffer.copy(b"hello, ferry") as buf:
        with buf.slice(7, 5) as part:
            assert bytes(part) == b"ferry"
            part.view()[0] = ord("F")
        assert bytes(buf) == b"hello, Ferry"
        with pytest.raises(ferry.OutOfRange):
            buf.slice(10, 5)
        with pytest.raises(ferry.Overflow):
            buf.slice(2**64 - 1, 2)
        with pytest.raises(ValueError):
            buf.slice(-1, 1)
        with buf.slice(12, 0) as empty:
            assert len(empty) == 0


def test_memory_lives_until_every_id_goes():
    before = live_ids()
    buf = ferry.Buffer.copy(b"abcdef")
    part = buf.slice(2, 2)
    buf.close()
    assert bytes(part) == b"cd"
    part.close()
    assert live_ids() == before


def test_from_id_and_detach():
    buf = ferry.Buffer.copy(b"xyz")
    id_ = buf.detach()  # no view alive: the same id, now the caller's
    assert id_ == buf.id and buf.closed
    again = ferry.Buffer.from_id(id_)
    assert bytes(again) == b"xyz"
    mv = again.view()
    other = again.detach()  # a view is alive: a new id, the view keeps the old one
    assert other != id_
    assert bytes(mv) == b"xyz"
    del mv
    with ferry.Buffer.from_id(other) as b:
        assert bytes(b) == b"xyz"
    with pytest.raises(ferry.InvalidHandle):
        ferry.Buffer.from_id(id_)  # released when the view went
    with pytest.raises(ferry.InvalidHandle):
        ferry.Buffer.from_id(0)


def test_errors_for_bad_sizes():
    with pytest.raises(ferry.TooLarge):
        ferry.Buffer.new(ferry.MAX_LEN + 1)
    with pytest.raises(ValueError):
        ferry.Buffer.new(-1)
    with pytest.raises(TypeError):
        ferry.Buffer.new(1.5)
    with pytest.raises(TypeError):
        ferry.Buffer()


def test_unclosed_buffers_are_released_by_the_finalizer():
    before = live_ids()
    for _ in range(100):
        ferry.Buffer.new(128).view()
    assert live_ids() == before
    # In a reference cycle: released by the cycle collector.
    a = ferry.Buffer.new(1024)
    holder = [a]
    holder.append(holder)
    del a, holder
    gc.collect()
    assert live_ids() == before


def test_numpy_zero_copy():
    numpy = pytest.importorskip("numpy")
    with ferry.Buffer.copy(bytes(range(16))) as buf:
        arr = numpy.asarray(buf)
        assert arr.dtype == numpy.uint8 and arr.shape == (16,)
        arr[0] = 200
        assert buf.view()[0] == 200  # the array is over the Rust memory
        f = numpy.frombuffer(buf.view(), dtype=numpy.uint32)
        assert f.shape == (4,)
        assert numpy.asarray(buf, dtype=numpy.float64)[1] == 1.0  # a converted copy
    before = live_ids()
    buf = ferry.Buffer.new(32)
    arr = numpy.asarray(buf)[8:]
    buf.close()
    assert live_ids() == before + 1  # the array keeps the memory
    del arr
    assert live_ids() == before


def test_concurrent_close_and_views():
    # Threads make views and slices while another closes: no view ever dangles.
    for _ in range(20):
        buf = ferry.Buffer.copy(b"q" * 4096)
        errors = []

        def reader():
            for _ in range(200):
                try:
                    mv = buf.view()
                except ferry.Closed:
                    return
                if bytes(mv[:4]) != b"qqqq":
                    errors.append("bad bytes")

        threads = [threading.Thread(target=reader) for _ in range(3)]
        for t in threads:
            t.start()
        buf.close()
        for t in threads:
            t.join()
        assert not errors


def test_repr_and_pickle():
    with ferry.Buffer.new(3) as buf:
        assert "len=3 open" in repr(buf)
        import pickle

        with pytest.raises(TypeError):
            pickle.dumps(buf)
    assert "closed" in repr(buf)


@pytest.mark.skipif(sys.version_info >= (3, 12), reason="3.11 and older only")
def test_before_pep688_memoryview_of_the_buffer_itself_is_refused():
    # A pure-Python class cannot export the buffer protocol before 3.12: buf.view() is the way.
    with ferry.Buffer.new(4) as buf:
        with pytest.raises(TypeError):
            memoryview(buf)
        assert not hasattr(buf, "__buffer__")


@pytest.mark.skipif(sys.version_info < (3, 12), reason="PEP 688 needs Python 3.12")
def test_pep688_buffer_protocol():
    before = live_ids()
    buf = ferry.Buffer.copy(b"pep 688!")
    mv = memoryview(buf)
    assert bytes(mv) == b"pep 688!" and not mv.readonly
    mv[0] = ord("P")
    assert bytes(buf) == b"Pep 688!"
    part = mv[4:]
    del mv
    buf.close()
    assert live_ids() == before + 1  # the slice of the export holds the memory
    assert bytes(part) == b"688!"
    del part
    gc.collect()
    assert live_ids() == before
    with ferry.Buffer.copy(b"with") as b2:
        with memoryview(b2) as m2:
            assert bytes(m2) == b"with"
    assert live_ids() == before
    numpy = pytest.importorskip("numpy")
    with ferry.Buffer.copy(bytes(8)) as b3:
        arr = numpy.frombuffer(b3, dtype=numpy.uint8)
        assert arr.shape == (8,)
        del arr
