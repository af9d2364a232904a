"""Builds the ferry wheel: the pure-Python package plus libferry.so, which cargo builds.

The package has no compiled extension of its own (it reaches the library through cffi's ABI mode),
so the wheel is tagged py3-none-<platform>: one wheel per platform serves every CPython >= 3.9.

Where libferry.so comes from (environment variables, read at build time):

- default: ``cargo build --release --lib`` of the crate one directory up (this package lives in
  the ferry repository's python/ folder), from $CARGO (default ``cargo``), into $CARGO_TARGET_DIR
  (default <repo>/target); the library is copied into the wheel as ferry/_lib/libferry.so.
- FERRY_LIB_DIR=/some/dir: bundle /some/dir/libferry.so instead of running cargo.
- FERRY_BUNDLE=0: bundle nothing; at run time the package then loads the library named by
  FERRY_LIBRARY, or an installed ferry found with pkg-config (``make install``), or libferry.so.N (N the ABI version)
  from the dynamic linker's path. The wheel is then pure (py3-none-any).
"""

from __future__ import annotations

import os
import pathlib
import shutil
import subprocess
import sysconfig

from setuptools import setup
from setuptools.command.build_py import build_py

try:  # setuptools >= 70.1 ships bdist_wheel; older ones use the wheel package's
    from setuptools.command.bdist_wheel import bdist_wheel
except ImportError:  # pragma: no cover
    from wheel.bdist_wheel import bdist_wheel

HERE = pathlib.Path(__file__).resolve().parent
REPO = HERE.parent


def _bundling() -> bool:
    return os.environ.get("FERRY_BUNDLE", "1").strip() not in ("0", "no", "false", "")


def _library() -> pathlib.Path:
    lib_dir = os.environ.get("FERRY_LIB_DIR", "").strip()
    if lib_dir:
        lib = pathlib.Path(lib_dir) / "libferry.so"
        if not lib.exists():
            raise SystemExit(f"ferry: FERRY_LIB_DIR={lib_dir} has no libferry.so")
        return lib
    manifest = REPO / "Cargo.toml"
    if not manifest.exists():
        raise SystemExit(
            "ferry: the Rust crate is not next to this package (../Cargo.toml). Build from the "
            "ferry repository, or set FERRY_LIB_DIR to a directory with libferry.so, or "
            "FERRY_BUNDLE=0 to use an installed ferry (pkg-config or FERRY_LIBRARY) at run time."
        )
    cargo = os.environ.get("CARGO", "cargo")
    cmd = [cargo, "build", "--release", "--lib", "--manifest-path", str(manifest)]
    print("ferry: " + " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True)
    target = pathlib.Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target"))
    if not target.is_absolute():
        target = REPO / target
    lib = target / "release" / "libferry.so"
    if not lib.exists():
        raise SystemExit(f"ferry: cargo finished but {lib} is missing")
    return lib


class build_py_with_lib(build_py):
    """build_py, then cargo: puts libferry.so into the package as ferry/_lib/libferry.so."""

    def run(self):
        super().run()
        if not _bundling():
            return
        src = _library()
        dst = pathlib.Path(self.build_lib) / "ferry" / "_lib"
        dst.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, dst / "libferry.so")


class bdist_wheel_platform(bdist_wheel):
    """A wheel with libferry.so inside is platform-specific but Python-ABI-independent."""

    def finalize_options(self):
        super().finalize_options()
        self.root_is_pure = not _bundling()

    def get_tag(self):
        if not _bundling():
            return super().get_tag()
        plat = sysconfig.get_platform().replace("-", "_").replace(".", "_")
        return "py3", "none", plat


setup(cmdclass={"build_py": build_py_with_lib, "bdist_wheel": bdist_wheel_platform})
