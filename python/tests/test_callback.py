"""Python callables called by Rust: on this thread, on Rust worker threads, with failures."""

from __future__ import annotations

import concurrent.futures
import threading

import pytest

import ferry
from ferry import _callback
from ferry._errors import STATUS
from ferry._lib import ffi, lib

pytestmark = pytest.mark.usefixtures("live")


def test_invoke_returns_value_and_buffer():
    def fn(buf, value):
        assert buf is None
        return ferry.Buffer.copy(b"made in python"), value * 2

    with ferry.Callback(fn) as cb:
        out = cb(value=21)
        assert out.value == 42
        with out.buffer as b:
            assert bytes(b) == b"made in python"
        assert ferry.invoke(cb.id, None, 1).value == 2  # by id, as Go or C would
        out.buffer.close()


def test_result_shapes():
    results = {0: None, 1: 7, 2: (None, 9)}

    def fn(buf, value):
        return results[value]

    with ferry.Callback(fn) as cb:
        assert cb(value=0) == ferry.Payload(None, 0)
        assert cb(value=1) == ferry.Payload(None, 7)
        assert cb(value=2) == ferry.Payload(None, 9)


def test_buffer_argument_is_lent_and_views_survive():
    kept = []

    def fn(buf, value):
        kept.append(buf.view())  # a view made during the call stays valid after it
        return buf  # handed back: the caller gets an id of its own

    with ferry.Callback(fn) as cb, ferry.Buffer.copy(b"lent bytes") as arg:
        out = cb(arg, 0)
        assert not arg.closed  # the caller's Buffer stays the caller's
        with out.buffer as echoed:
            echoed.view()[0] = ord("L")
            assert bytes(arg) == b"Lent bytes"  # same memory, no copy
    assert bytes(kept[0]) == b"Lent bytes"
    kept.clear()


def test_exception_is_reraised_to_the_python_caller():
    class Boom(Exception):
        pass

    raised = Boom("from the callback")

    def fn(buf, value):
        raise raised

    with ferry.Callback(fn) as cb:
        with pytest.raises(Boom) as info:
            cb()
        assert info.value is raised  # the same object, traceback included
        with pytest.raises(Boom):
            cb.call_async().result(timeout=60)
    assert _callback.pending_failures() == 0


def test_failure_is_a_status_on_the_rust_side():
    def fail(buf, value):
        raise ValueError("no")

    def exit_(buf, value):
        raise SystemExit(3)

    with ferry.Callback(fail) as a, ferry.Callback(exit_) as b:
        out = ffi.new("FerryPayload *")
        assert lib.ferry_callback_invoke(a.id, 0, 0, out) == STATUS["CALLBACK_FAILED"]
        assert isinstance(_callback._take_failure(out.value), ValueError)
        assert lib.ferry_callback_invoke(b.id, 0, 0, out) == STATUS["CALLBACK_PANIC"]
        assert isinstance(_callback._take_failure(out.value), SystemExit)
        with pytest.raises(SystemExit):
            b()


def test_bad_results_become_errors():
    def fn(buf, value):
        return [("not", "a result"), -1, 2**64, (ferry.Buffer.new(1), "x")][value]

    with ferry.Callback(fn) as cb:
        with pytest.raises(TypeError):
            cb(value=0)
        with pytest.raises(ValueError):
            cb(value=1)
        with pytest.raises(ValueError):
            cb(value=2)
        with pytest.raises(ValueError):
            cb(value=3)


def test_foreign_detail_is_not_mistaken_for_a_python_failure():
    e = _callback.result_error(STATUS["CALLBACK_FAILED"], 42)
    assert isinstance(e, ferry.CallbackFailed) and e.detail == 42
    e = _callback.result_error(STATUS["CALLBACK_PANIC"], 0xFE77 << 48 | 1)  # a Go token
    assert isinstance(e, ferry.CallbackPanic)


def test_closed_callback():
    cb = ferry.Callback(lambda b, v: v)
    id_ = cb.id
    cb.close()
    cb.close()
    with pytest.raises(ferry.Closed):
        cb()
    with pytest.raises(ferry.InvalidHandle):
        ferry.invoke(id_)
    assert _callback.registered() == 0


def test_callable_dropped_when_rust_lets_go():
    before = _callback.registered()
    cb = ferry.Callback(lambda b, v: v)
    assert _callback.registered() == before + 1
    cb.close()
    assert _callback.registered() == before
    with pytest.raises(TypeError):
        ferry.Callback(42)


def test_rust_worker_threads_call_python_concurrently():
    seen = set()
    lock = threading.Lock()

    def fn(buf, value):
        with lock:
            seen.add(threading.get_ident())
        return None if buf is None else (None, len(buf) + value)

    main = threading.get_ident()
    with ferry.Callback(fn) as cb, ferry.Buffer.new(10) as arg:
        futs = [cb.call_async(arg if i % 2 else None, i) for i in range(2000)]
        for i, f in enumerate(futs):
            assert f.result(timeout=60).value == (10 + i if i % 2 else 0)
    assert main not in seen  # they ran on Rust's threads, each taking the GIL
    assert len(seen) >= 1


def test_python_threads_invoke_concurrently():
    with ferry.Callback(lambda b, v: v + 1) as cb:
        with concurrent.futures.ThreadPoolExecutor(4) as ex:
            results = list(ex.map(lambda i: cb(value=i).value, range(2000)))
    assert results == [i + 1 for i in range(2000)]


def test_callback_calls_ferry_again():
    def inner(buf, value):
        return value + 1

    with ferry.Callback(inner) as cb_inner:

        def outer(buf, value):
            return ferry.invoke(cb_inner.id, None, value).value * 10

        with ferry.Callback(outer) as cb_outer:
            assert cb_outer(value=1).value == 20
            assert cb_outer.call_async(None, 2).result(timeout=60).value == 30
