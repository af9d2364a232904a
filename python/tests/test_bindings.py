"""The bindings cannot drift from ffi/ferry.h, and every status has its exception."""

from __future__ import annotations

import pathlib
import subprocess
import sys

import pytest

import ferry
from ferry import _bindings, _errors

REPO = pathlib.Path(__file__).resolve().parents[2]


def test_generated_bindings_match_header():
    gen = REPO / "python" / "tools" / "gen_bindings.py"
    if not (REPO / "ffi" / "ferry.h").exists():
        pytest.skip("not run from the ferry repository")
    r = subprocess.run([sys.executable, str(gen), "--check"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def test_installed_bindings_are_the_repository_ones():
    # The wheel under test carries the same generated file as the source tree.
    src = REPO / "python" / "src" / "ferry" / "_bindings.py"
    assert pathlib.Path(_bindings.__file__).read_text() == src.read_text()


def test_abi_version_matches():
    assert ferry.abi_version() == ferry.ABI_VERSION == _bindings.DEFINES["ABI_VERSION"]


def test_every_function_resolves():
    from ferry._lib import lib

    for name in _bindings.FUNCTIONS:
        assert hasattr(lib, name)
    assert len(_bindings.FUNCTIONS) >= 28


def test_every_status_has_its_exception():
    for value, name, _doc in _bindings.STATUSES:
        if value == 0:
            continue
        cls = _errors.ERRORS[value]
        assert issubclass(cls, ferry.FerryError)
        assert cls.status == value
        exc = cls()
        assert exc.status == value and exc.status_name == name
        assert str(exc) == ferry.status_message(value)
        # The public name is the status name in CamelCase.
        camel = "".join(p.capitalize() for p in name.split("_"))
        assert getattr(ferry, camel) is cls


def test_unknown_status():
    e = _errors.error(999)
    assert type(e) is ferry.FerryError and e.status == 999
    assert ferry.status_message(999) == "unknown status"


def test_pythonic_bases():
    assert issubclass(ferry.OutOfRange, IndexError)
    assert issubclass(ferry.InvalidArgument, ValueError)
    assert issubclass(ferry.AllocFailed, MemoryError)
    assert issubclass(ferry.CallbackPanic, ferry.CallbackFailed)


def test_library_is_the_bundled_copy():
    import os

    if os.environ.get("FERRY_LIBRARY"):
        pytest.skip("FERRY_LIBRARY overrides the bundled library")
    path = pathlib.Path(ferry.library_path())
    assert path.parent == pathlib.Path(ferry.__file__).resolve().parent / "_lib", path


def test_library_env_override(tmp_path):
    code = "import ferry; print(ferry.library_path())"
    env = {"FERRY_LIBRARY": str(REPO / "target" / "release" / "libferry.so"), "PATH": "/usr/bin:/bin"}
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == env["FERRY_LIBRARY"]
    env["FERRY_LIBRARY"] = str(tmp_path / "missing.so")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert r.returncode != 0 and "cannot load libferry" in r.stderr


def test_pkg_config_candidate(tmp_path, monkeypatch):
    from ferry import _lib

    libdir = tmp_path / "lib"
    (libdir / "pkgconfig").mkdir(parents=True)
    (libdir / _lib.SONAME).write_bytes(b"")
    (libdir / "pkgconfig" / "ferry.pc").write_text(
        f"prefix={tmp_path}\nlibdir={libdir}\n\nName: ferry\nDescription: t\nVersion: 0.1.0\n"
    )
    monkeypatch.delenv("FERRY_LIBRARY", raising=False)
    monkeypatch.setenv("PKG_CONFIG_PATH", str(libdir / "pkgconfig"))
    cands = _lib._candidates()
    import shutil

    if shutil.which("pkg-config") is None:
        pytest.skip("no pkg-config")
    assert str(libdir / _lib.SONAME) in cands
    assert cands[-1] == _lib.SONAME
