"""Writing files so that a reader sees the old version or the new one, never a half-written file.

Each file is written to a temporary beside it (prefix :data:`TMP_PREFIX`), flushed to disk, and
renamed over the target; on failure the temporaries are removed. Used by the compressed store and
by the transformers' ``save`` (a weights file and its config, renamed only once both are written).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

__all__ = ["TMP_PREFIX", "write_atomic", "fsync_dir", "unlink_quietly"]

#: Name prefix of temporaries; a folder scan may delete leftovers of a killed writer by it.
TMP_PREFIX = ".tmp-"


def write_atomic(contents: dict, *, sync_dir: bool = True) -> None:
    """Write ``{path: bytes or callable(file)}``: every file to a fsynced temporary, then all renamed.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> folder = Path(tempfile.mkdtemp())
    >>> write_atomic({folder / "a.bin": b"weights", folder / "a.json": lambda f: f.write(b"{}")})
    >>> sorted(p.name for p in folder.iterdir()), (folder / "a.json").read_bytes()
    (['a.bin', 'a.json'], b'{}')
    """
    temps = []
    try:
        for path, content in contents.items():
            temps.append(_write_temporary(Path(path), content))
        for tmp, path in zip(temps, contents, strict=True):
            os.replace(tmp, path)
    except BaseException:
        for tmp in temps:
            unlink_quietly(tmp)
        raise
    if sync_dir:
        for folder in {Path(path).parent for path in contents}:
            fsync_dir(folder)


def _write_temporary(path: Path, content) -> Path:
    """``content`` in a fsynced temporary beside ``path`` (removed again if writing fails)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f"{TMP_PREFIX}{path.name}.")
    os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes owner-only files; these are shared like any file
    try:
        with os.fdopen(fd, "wb") as f:
            if callable(content):
                content(f)
            else:
                f.write(content)
            f.flush()
            os.fsync(f.fileno())
    except BaseException:
        unlink_quietly(Path(tmp))
        raise
    return Path(tmp)


def _umask() -> int:
    """The process umask (read by setting and restoring it)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def fsync_dir(path: Path) -> None:
    """Make a rename durable (POSIX); a no-op where directories cannot be opened (Windows)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def unlink_quietly(path: Path) -> None:
    """Remove ``path`` if it can be removed (cleanup must not mask the error being raised)."""
    try:
        path.unlink()
    except OSError:
        pass
