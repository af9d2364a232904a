"""Loads libferry through cffi in ABI mode (no compiled extension of ferry's own).

The library is looked for, in order:

1. ``FERRY_LIBRARY``: the path of a libferry.so to load (nothing else is tried when it is set);
2. the copy bundled in this package (``ferry/_lib/libferry.so``, put there by ``pip install``);
3. an installed ferry found by ``pkg-config --variable=libdir ferry`` (``make install``);
4. the dynamic linker's search path (``libferry.so.N``, N the ABI version: the library's SONAME).

The library's ABI version must match the header the bindings were generated from.
"""

from __future__ import annotations

import os
import pathlib
import shutil
import subprocess

from cffi import FFI

from . import _bindings

LIBRARY_ENV = "FERRY_LIBRARY"
#: The shared library's SONAME: its major number is the ABI version the bindings were made for.
SONAME = f"libferry.so.{_bindings.DEFINES['ABI_VERSION']}"

ffi = FFI()
ffi.cdef(_bindings.CDEF)


def _candidates() -> list[str]:
    env = os.environ.get(LIBRARY_ENV, "").strip()
    if env:
        return [env]
    found = []
    bundled = pathlib.Path(__file__).resolve().parent / "_lib" / "libferry.so"
    if bundled.exists():
        found.append(str(bundled))
    pkg_config = shutil.which("pkg-config")
    if pkg_config:
        try:
            libdir = subprocess.run(
                [pkg_config, "--variable=libdir", "ferry"],
                capture_output=True,
                text=True,
                timeout=10,
                check=False,
            ).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            libdir = ""
        for name in (SONAME, "libferry.so"):
            if libdir and (pathlib.Path(libdir) / name).exists():
                found.append(str(pathlib.Path(libdir) / name))
                break
    found.append(SONAME)
    return found


def _load():
    errors = []
    for path in _candidates():
        try:
            lib = ffi.dlopen(path)
        except OSError as e:
            errors.append(f"{path}: {e}")
            continue
        missing = [f for f in _bindings.FUNCTIONS if not hasattr(lib, f)]
        if missing:
            raise ImportError(f"ferry: {path} lacks {', '.join(missing)} (an older library?)")
        have, want = lib.ferry_abi_version(), _bindings.DEFINES["ABI_VERSION"]
        if have != want:
            raise ImportError(f"ferry: {path} has ABI version {have}, these bindings need {want}")
        return lib, path
    raise ImportError(
        "ferry: cannot load libferry ("
        + "; ".join(errors)
        + f"). Install the wheel (pip install ./python), set {LIBRARY_ENV}, or `make install`."
    )


lib, LIBRARY_PATH = _load()
