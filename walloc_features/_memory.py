"""Bounded memory: file-backed arrays (``numpy.memmap``) read batch by batch without keeping them resident,
and buffers trimmed in place (:func:`shrink_in_place`).

Pages of a memory-mapped file that a process has read count in its resident set (RSS) until the
kernel needs the memory back, so a pass over a 20 GB memmap can show 20 GB of RSS. After each batch,
:func:`iter_rows` tells the kernel this process no longer needs the pages it has consumed
(``madvise(MADV_DONTNEED)``), which keeps RSS bounded by the batch size. That is only done for
*shared* mappings (numpy modes ``"r"``, ``"r+"``, ``"w+"``), where the file's page cache holds every
write, so nothing is lost; copy-on-write memmaps (mode ``"c"``) keep their private pages untouched.
"""

from __future__ import annotations

import ctypes
import mmap
import os

import numpy as np

__all__ = ["Releaser", "is_file_backed", "iter_rows", "physical_memory", "shrink_in_place"]


def _madvise():
    """The C library's ``madvise`` where the platform has one (not on Windows), else None."""
    if not hasattr(mmap, "MADV_DONTNEED"):
        return None
    try:
        madvise = ctypes.CDLL(None, use_errno=True).madvise  # the running process's C library
    except (OSError, TypeError, AttributeError):
        return None
    madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    return madvise


_MADVISE = _madvise()


def shrink_in_place(array: np.ndarray, length: int) -> None:
    """Keep the first ``length`` rows of ``array`` by ``realloc``, not a copy: its owner must hold no view of it.

    A buffer sized for the most rows, filled, then trimmed, holds the data once where a list of parts and a
    concatenation held it twice.
    """
    array.resize((length, *array.shape[1:]), refcheck=False)


def physical_memory() -> int | None:
    """This machine's memory in bytes, or None where the OS does not say (a size check is then skipped)."""
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):  # Windows has no sysconf
        return None


def _memmap_of(array) -> np.memmap | None:
    """The ``numpy.memmap`` an array views (``check_array`` returns plain views of memmaps), or None."""
    while array is not None:
        if isinstance(array, np.memmap):
            return array
        array = getattr(array, "base", None)
    return None


def is_file_backed(array) -> bool:
    """Whether ``array`` views a memory-mapped file (reading all of it would make all of it resident)."""
    return isinstance(array, np.ndarray) and _memmap_of(array) is not None


def _releasable(array) -> bool:
    backing = _memmap_of(array) if isinstance(array, np.ndarray) else None
    return (
        _MADVISE is not None
        and backing is not None
        and getattr(backing, "mode", "c") in ("r", "r+", "w+")  # numpy's normalised modes; not "c"
        and array.ndim >= 1
        and array.size > 0  # (an empty axis gives no row extent)
        and array.strides[0] > 0  # rows further into the file: any layout within a row (a transposed memmap)
    )


def _release(start: int, stop: int) -> None:
    """Drop this process's mapping of the whole pages in ``[start, stop)`` (addresses)."""
    page = mmap.PAGESIZE
    first, last = -(-start // page) * page, stop // page * page
    if last > first:
        _MADVISE(first, last - first, mmap.MADV_DONTNEED)  # a failure only leaves the pages resident


class Releaser:
    """Releases the pages of a shared memmap's rows once they are consumed: all below a row (:meth:`before`, for
    reads in increasing row order) or those within some rows (:meth:`rows`, for reads in any order).

    Row ``i`` of ``X`` touches bytes ``[row(i) + low, row(i) + high)`` with ``row(i) = X.ctypes.data + i *
    X.strides[0]``; the offsets come from the other axes' strides, so views of any layout within a row
    (channel-last memmaps transposed, column slices) are released as C-contiguous ones are.
    """

    def __init__(self, X):
        self.active = _releasable(X)
        if self.active:
            inner = list(zip(X.shape[1:], X.strides[1:], strict=True))
            self.low = sum(min(0, (n - 1) * s) for n, s in inner)
            self.high = sum(max(0, (n - 1) * s) for n, s in inner) + X.itemsize
            self.base, self.stride, self.n = X.ctypes.data, X.strides[0], len(X)
            self.done = self.base + self.low

    def rows(self, start: int, stop: int) -> None:
        """Release the whole pages within rows ``[start, stop)`` (read in any order: a shuffled epoch).

        Only where rows do not interleave (a row's extent ends before the next one starts): a Fortran-ordered
        memmap's row spans nearly the whole file, which would be dropped and read back for every row.
        """
        if not self.active or self.stride < self.high - self.low:
            return
        start, stop = max(start, 0), min(stop, self.n)
        if stop > start:
            _release(self.base + start * self.stride + self.low, self.base + (stop - 1) * self.stride + self.high)

    def before(self, row: int) -> None:
        """Release every whole page below the first byte of row ``row`` (the end of ``X`` for ``len(X)``)."""
        if not self.active:
            return
        if row >= self.n:
            end = self.base + (self.n - 1) * self.stride + self.high
        else:
            end = self.base + row * self.stride + self.low
        if end > self.done:
            _release(self.done, end)
            self.done = end // mmap.PAGESIZE * mmap.PAGESIZE


def iter_rows(X, batch_size: int, rows=None):
    """Yield ``(start, X[start : start + batch_size])``; consumed pages of a shared memmap are released.

    ``rows``: increasing row indices to read instead of all rows; then ``start`` counts positions in
    ``rows`` and each batch is ``X[rows[start : start + batch_size]]`` (a copy), and only pages
    below the next row to read are released. The caller must be done with a batch (copied what it
    keeps) before asking for the next one.
    """
    releaser = Releaser(X)
    total = len(X) if rows is None else len(rows)
    for start in range(0, total, batch_size):
        stop = min(start + batch_size, total)
        if rows is None:
            yield start, X[start:stop]
            releaser.before(stop)
        else:
            yield start, X[rows[start:stop]]
            releaser.before(int(rows[stop]) if stop < total else len(X))
