"""Python views frames that a Go c-shared library made in Rust memory, through one ferry table.

    python examples/python-go/main.py build/python-go/libpygo.so

The ferry package is imported first: it loads libferry.so (SONAME libferry.so.N, N the ABI version). libpygo.so
needs libferry.so.N, and the dynamic linker finds it already loaded, so Go, Python and Rust share
one copy of ferry and one handle table: an id made in Go is valid in Python, and the live-id
count reads the same from both languages.
"""

from __future__ import annotations

import ctypes
import sys

import ferry


def load(path: str) -> ctypes.CDLL:
    go = ctypes.CDLL(path)
    go.pygo_frame.argtypes = [ctypes.c_size_t, ctypes.c_uint8, ctypes.POINTER(ctypes.c_uint64)]
    go.pygo_frame.restype = ctypes.c_uint32
    go.pygo_sum.argtypes = [ctypes.c_uint64, ctypes.POINTER(ctypes.c_uint64)]
    go.pygo_sum.restype = ctypes.c_uint32
    go.pygo_live_ids.argtypes = []
    go.pygo_live_ids.restype = ctypes.c_uint64
    return go


def go_frame(go: ctypes.CDLL, n: int, seed: int) -> ferry.Buffer:
    """A frame made by Go in Rust memory, owned by Python from now on."""
    id_ = ctypes.c_uint64()
    st = go.pygo_frame(n, seed, ctypes.byref(id_))
    if st:
        raise ferry.FerryError(status=st)
    return ferry.Buffer.from_id(id_.value)


def libferry_mappings() -> set[str]:
    with open("/proc/self/maps") as f:
        return {line.split()[-1] for line in f if "libferry" in line}


def main(path: str) -> None:
    go = load(path)
    base = ferry.stats().live_ids
    rows = []

    frame = go_frame(go, 1 << 20, 7)
    rows.append(("Go made a 1 MiB frame", ferry.stats().live_ids - base, go.pygo_live_ids() - base))
    mv = frame.view()  # zero-copy: Python reads the bytes Go wrote into Rust memory
    assert mv[0] == 7 and mv[255] == (7 + 255) & 0xFF and mv[256] == 7
    total = sum(mv[:1000])
    del mv
    frame.close()
    rows.append(("Python viewed and closed it", ferry.stats().live_ids - base, go.pygo_live_ids() - base))

    mine = ferry.Buffer.copy(bytes(range(100)))
    rows.append(("Python made a buffer", ferry.stats().live_ids - base, go.pygo_live_ids() - base))
    s = ctypes.c_uint64()
    assert go.pygo_sum(mine.detach(), ctypes.byref(s)) == 0  # Go adopts the id and releases it
    assert s.value == sum(range(100))
    rows.append(("Go summed and released it", ferry.stats().live_ids - base, go.pygo_live_ids() - base))

    print(f"{'step':<30} {'live ids (Python)':>18} {'live ids (Go)':>14}")
    for step, py, g in rows:
        print(f"{step:<30} {py:>18} {g:>14}")
    maps = libferry_mappings()
    print(f"checksum of 1000 bytes: {total}; libferry mapped from: {', '.join(sorted(maps))}")
    assert [r[1:] for r in rows] == [(1, 1), (0, 0), (1, 1), (0, 0)], rows
    assert len(maps) == 1, maps


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "build/python-go/libpygo.so")
