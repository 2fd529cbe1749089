"""Reading file-backed arrays (``numpy.memmap``) batch by batch without keeping them resident.

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

import numpy as np

__all__ = ["is_file_backed", "iter_rows"]


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
        and array.flags.c_contiguous
    )


def _release(start: int, stop: int) -> None:
    """Drop this process's mapping of the whole pages in ``[start, stop)`` (addresses)."""
    page = mmap.PAGESIZE
    first, last = -(-start // page) * page, stop // page * page
    if last > first:
        _MADVISE(first, last - first, mmap.MADV_DONTNEED)  # a failure only leaves the pages resident


def iter_rows(X, batch_size: int):
    """Yield ``(start, X[start : start + batch_size])``; consumed pages of a shared memmap are released.

    The caller must be done with a batch (copied what it keeps) before asking for the next one.
    """
    release = _releasable(X)
    base = X.ctypes.data if release else 0
    done = base
    for start in range(0, len(X), batch_size):
        yield start, X[start : start + batch_size]
        if release:
            end = base + min(start + batch_size, len(X)) * X[0].nbytes
            _release(done, end)
            done = max(done, end // mmap.PAGESIZE * mmap.PAGESIZE)
