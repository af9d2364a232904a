#!/usr/bin/env python3
"""Writes the Go module in MODULE_DIR as version VERSION into OUT, laid out as a Go module proxy
(GOPROXY=file://OUT): <escaped module path>/@v/{list, VERSION.info, VERSION.mod, VERSION.zip}.

Usage: go-proxy.py MODULE_DIR VERSION OUT

The zip holds what a release tag of the repository would give the public proxy: the files of
MODULE_DIR that git tracks or would track (not ignored), from the working tree, minus nested
modules; each under "<module path>@<version>/". Entries carry a fixed date, so the same files give
the same zip and the same go.sum hash. A module version is immutable: serve changed files under a
new version, or clear the module cache, or the go command keeps using its first copy.
"""

import datetime
import json
import os
import pathlib
import re
import subprocess
import sys
import zipfile


def escape(path: str) -> str:
    """The module proxy's case encoding: an upper-case letter becomes '!' and its lower case."""
    return re.sub(r"[A-Z]", lambda m: "!" + m.group(0).lower(), path)


def module_path(gomod: str) -> str:
    m = re.search(r"^module\s+(\S+)", gomod, re.M)
    if not m:
        sys.exit("go-proxy: no module line in go.mod")
    return m.group(1).strip('"')


def module_files(moddir: pathlib.Path) -> list:
    """Paths relative to moddir, sorted: tracked or untracked-but-not-ignored, present on disk."""
    out = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard", "--", "."],
        cwd=moddir, check=True, capture_output=True,
    ).stdout.decode()
    files = sorted({f for f in out.split("\0") if f})
    present = [f for f in files if (moddir / f).is_file() and not (moddir / f).is_symlink()]
    nested = {str(pathlib.PurePosixPath(f).parent) for f in present
              if f.endswith("/go.mod")}
    def in_nested(f):
        parts = pathlib.PurePosixPath(f).parts
        return any("/".join(parts[:i]) in nested for i in range(1, len(parts)))
    return [f for f in present if not in_nested(f)]


def commit_time(moddir: pathlib.Path) -> str:
    r = subprocess.run(["git", "log", "-1", "--format=%ct"], cwd=moddir, capture_output=True, text=True)
    secs = int(r.stdout.strip()) if r.returncode == 0 and r.stdout.strip() else 0
    t = datetime.datetime.fromtimestamp(secs, datetime.timezone.utc) if secs else datetime.datetime.now(datetime.timezone.utc)
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def main() -> None:
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    moddir, version, out = pathlib.Path(sys.argv[1]).resolve(), sys.argv[2], pathlib.Path(sys.argv[3])
    if not re.fullmatch(r"v\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?", version):
        sys.exit(f"go-proxy: {version!r} is not a semantic version like v0.1.0")
    gomod = (moddir / "go.mod").read_text()
    path = module_path(gomod)
    files = module_files(moddir)
    if "go.mod" not in files:
        sys.exit(f"go-proxy: {moddir}/go.mod is not tracked by git")

    vdir = out / escape(path) / "@v"
    vdir.mkdir(parents=True, exist_ok=True)
    zpath = vdir / f"{version}.zip"
    tmp = zpath.with_suffix(".zip.tmp")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as z:
        for f in files:
            info = zipfile.ZipInfo(f"{path}@{version}/{f}", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            z.writestr(info, (moddir / f).read_bytes())
    os.replace(tmp, zpath)
    (vdir / f"{version}.mod").write_text(gomod)
    (vdir / f"{version}.info").write_text(json.dumps({"Version": version, "Time": commit_time(moddir)}) + "\n")
    listed = set((vdir / "list").read_text().split()) if (vdir / "list").exists() else set()
    (vdir / "list").write_text("".join(v + "\n" for v in sorted(listed | {version})))
    print(f"go-proxy: {path}@{version}: {len(files)} files, {zpath.stat().st_size} bytes zipped, in {out}")


if __name__ == "__main__":
    main()
