"""Float32 ``.npy`` matrices written and read in row batches.

Rows go to disk with plain file writes and come back with plain reads (no ``mmap``), so the
process's resident memory holds one batch at a time whatever the matrix size: pages of a mapped
file would count towards the resident set size while they stay mapped.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np

DTYPE = np.dtype("<f4")


class NpyWriter:
    """Write an ``(rows, dim)`` float32 ``.npy`` file batch by batch; sha256 computed on the way."""

    def __init__(self, path: Path, rows: int, dim: int):
        self.path, self.rows, self.dim = path, rows, dim
        self.written = 0
        self.digest = hashlib.sha256()
        self._handle = path.open("wb")
        header = {"descr": DTYPE.str, "fortran_order": False, "shape": (rows, dim)}
        np.lib.format.write_array_header_1_0(_HashingFile(self._handle, self.digest), header)

    def write(self, batch: np.ndarray) -> None:
        batch = np.ascontiguousarray(batch, dtype=DTYPE)
        if batch.ndim != 2 or batch.shape[1] != self.dim:
            raise ValueError(f"expected rows of {self.dim} floats, got shape {batch.shape}")
        if self.written + len(batch) > self.rows:
            raise ValueError(f"{self.path}: more than the announced {self.rows} rows")
        data = batch.tobytes()
        self.digest.update(data)
        self._handle.write(data)
        self.written += len(batch)

    def close(self) -> str:
        """Finish the file; returns its sha256. Fails if fewer rows were written than announced."""
        self._handle.close()
        if self.written != self.rows:
            raise ValueError(f"{self.path}: wrote {self.written} rows, announced {self.rows}")
        return self.digest.hexdigest()

    def __enter__(self) -> NpyWriter:
        return self

    def __exit__(self, *exc_info) -> None:
        if not self._handle.closed:
            self._handle.close()


class _HashingFile:
    def __init__(self, handle, digest):
        self.handle, self.digest = handle, digest

    def write(self, data: bytes) -> int:
        self.digest.update(data)
        return self.handle.write(data)


def npy_shape(path: Path) -> tuple[tuple[int, int], int]:
    """``((rows, dim), data_offset)`` of a 2-D float32 C-order ``.npy``; ValueError otherwise."""
    with path.open("rb") as handle:
        version = np.lib.format.read_magic(handle)
        read_header = (
            np.lib.format.read_array_header_1_0
            if version == (1, 0)
            else np.lib.format.read_array_header_2_0
        )
        shape, fortran, dtype = read_header(handle)
        offset = handle.tell()
    if len(shape) != 2 or fortran or np.dtype(dtype) != DTYPE:
        raise ValueError(f"{path}: not a 2-D little-endian float32 C-order array")
    expected = offset + shape[0] * shape[1] * DTYPE.itemsize
    if path.stat().st_size != expected:
        raise ValueError(f"{path}: {path.stat().st_size} bytes, expected {expected} (truncated?)")
    return (int(shape[0]), int(shape[1])), offset


def iter_rows(path: Path, batch_rows: int, start: int = 0) -> Iterator[tuple[int, np.ndarray]]:
    """Yield ``(first_row, batch)`` over the matrix, ``batch_rows`` rows at a time."""
    (rows, dim), offset = npy_shape(path)
    with path.open("rb") as handle:
        handle.seek(offset + start * dim * DTYPE.itemsize)
        for first in range(start, rows, batch_rows):
            count = min(batch_rows, rows - first)
            yield first, np.fromfile(handle, dtype=DTYPE, count=count * dim).reshape(count, dim)


def read_rows(path: Path, rows: np.ndarray, batch_rows: int = 8192) -> np.ndarray:
    """The given rows (any order, no repeats needed), read in one sequential pass."""
    (total, dim), _ = npy_shape(path)
    rows = np.asarray(rows, dtype=np.int64)
    order = np.argsort(rows, kind="stable")
    wanted = rows[order]
    out = np.empty((len(rows), dim), dtype=DTYPE)
    cursor = 0
    for first, batch in iter_rows(path, batch_rows):
        end = np.searchsorted(wanted, first + len(batch), side="left")
        if end > cursor:
            out[order[cursor:end]] = batch[wanted[cursor:end] - first]
            cursor = end
        if cursor == len(wanted):
            break
    if cursor != len(wanted):
        raise IndexError(f"{path}: row {wanted[cursor]} is out of range ({total} rows)")
    return out
