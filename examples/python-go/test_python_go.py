"""Runs main.py against the c-shared Go library that make test-python-go builds."""

from __future__ import annotations

import pathlib
import subprocess
import sys

HERE = pathlib.Path(__file__).resolve().parent
LIB = HERE.parents[1] / "build" / "python-go" / "libpygo.so"


def test_go_library_lends_to_python_through_one_table():
    r = subprocess.run([sys.executable, str(HERE / "main.py"), str(LIB)], capture_output=True, text=True)
    print(r.stdout)
    assert r.returncode == 0, r.stderr
    assert "Go made a 1 MiB frame                           1              1" in r.stdout
    assert "Go summed and released it                       0              0" in r.stdout


def test_without_pythons_ferry_the_go_library_finds_no_libferry():
    # libpygo.so carries no copy of ferry: loaded before the ferry package (and with libferry
    # not on the linker's path), it cannot resolve libferry.so.N (N the ABI version). So in main.py
    # it uses the one the Python package loaded.
    code = f"import ctypes; ctypes.CDLL({str(LIB)!r})"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       env={"PATH": "/usr/bin:/bin"})
    from ferry import _lib

    assert r.returncode != 0 and _lib.SONAME in r.stderr, r.stderr
