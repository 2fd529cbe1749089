"""Writing files so that a reader sees the old version or the new one, never a half-written file.

Each file is written to a temporary beside it (prefix :data:`TMP_PREFIX`), flushed to disk, and
renamed over the target; on failure the temporaries are removed. A file replaced keeps its permission
bits; a symbolic link at the target is replaced by the file, as a rename replaces it, not followed (in a
shared folder, a planted link would otherwise redirect the write anywhere its writer may write). Used by
the compressed store and by the transformers' ``save`` (a weights file and its config, renamed only once
both are written).
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import tempfile
import zipfile
from pathlib import Path

__all__ = ["TMP_PREFIX", "write_atomic", "fsync_dir", "unlink_quietly", "check_torch_file", "exclusive_lock"]

#: Name prefix of temporaries; a folder scan may delete leftovers of a killed writer by it.
TMP_PREFIX = ".tmp-"


def write_atomic(contents: dict, *, sync_dir: bool = True, remove_first=()) -> None:
    """Write ``{path: bytes or callable(file)}``: every file to a fsynced temporary, then all renamed.

    ``remove_first``: paths deleted once every temporary is written, before the renames, for a pair of
    files whose formats cannot tie them to each other: a kill between two renames then leaves one of them
    missing, an error when read, instead of a new file beside an old one that still loads.

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
        for path in remove_first:
            Path(path).unlink(missing_ok=True)
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
    try:  # a file replaced keeps its mode (a private 0600 one stays private; set-id bits are not copied)
        mode = os.lstat(path).st_mode
        if not stat.S_ISREG(mode):
            raise FileNotFoundError(path)  # a link (replaced, not followed) or other: made as a new file
        mode &= 0o777
    except OSError:
        mode = 0o666 & ~_umask()  # mkstemp makes owner-only files; new ones are shared like any file
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f"{TMP_PREFIX}{path.name}.")
    try:
        with os.fdopen(fd, "wb") as f:
            os.chmod(tmp, mode)  # (os.fchmod is POSIX-only before Python 3.13)
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
    """The process umask: from Linux's /proc without touching it, else by setting and restoring it (another
    thread creating a file meanwhile would get 022)."""
    try:
        with open("/proc/self/status", "rb") as status:  # (bytes: the process name may be any)
            for line in status:
                if line.startswith(b"Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def exclusive_lock(path: Path):
    """Hold an exclusive advisory lock on file ``path`` (made if missing), waiting for other holders: writers
    of one folder in several processes take turns. The system drops it when its process dies, so a killed
    writer never leaves it held.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> with exclusive_lock(Path(tempfile.mkdtemp()) / ".lock"):
    ...     pass
    """
    # (flock needs no write access: other users who may write to the folder but not to a .lock another user
    # made, 0644 under the usual umask, can still take it; msvcrt's byte locks want a writable handle)
    fd = os.open(path, (os.O_RDWR if os.name == "nt" else os.O_RDONLY) | os.O_CREAT, 0o666)
    try:
        if os.name == "nt":  # (msvcrt locks a byte range; 1 byte from offset 0 serves as the whole file)
            import msvcrt

            while True:  # LK_LOCK gives up after 10 tries a second apart; holders may take longer
                try:
                    msvcrt.locking(fd, msvcrt.LK_LOCK, 1)
                    break
                except OSError as exc:
                    if exc.errno != errno.EDEADLOCK:
                        raise
        else:
            import fcntl

            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # (closing releases the lock)


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


def check_torch_file(path, error: type[Exception] = ValueError) -> None:
    """Say what a file is when it is no torch checkpoint, and catch the damage ``torch.load`` misses.

    ``torch.load`` reads a zip checkpoint without checking its members' CRC-32: one flipped bit
    gives wrong weights and no error. Text (a Git LFS pointer left by a clone without LFS, an HTML
    error page, the JSON config) would otherwise be reported as unsafe pickled objects.
    """
    path = Path(path)
    with open(path, "rb") as f:
        head = f.read(64)
    size = path.stat().st_size
    if not head:
        raise error(f"{path} is empty (0 bytes): download or export it again")
    if head.startswith(b"version https://git-lfs"):
        raise error(f"{path} is a Git LFS pointer ({size} bytes), not the weights: run `git lfs pull` "
                    "in its repository, or download the file itself")  # fmt: skip
    if head.startswith(b"PK\x03\x04"):  # torch.save's zip format
        try:
            with zipfile.ZipFile(path) as archive:
                damaged = archive.testzip()  # reads every member once: CRC-32 against the directory
        except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, ValueError) as exc:
            raise error(f"{path} ({size} bytes) is a damaged or truncated torch checkpoint ({exc}): "
                        "download or export it again") from None  # fmt: skip
        if damaged is not None:
            raise error(f"{path} is damaged: its member {damaged} fails its CRC-32 check "
                        "(a bad download or disk); download or export it again")  # fmt: skip
    elif not head.startswith(b"\x80"):  # torch's legacy format is a pickle (protocol 2+)
        raise error(f"{path} ({size} bytes) is not a torch checkpoint: it starts with {head[:24]!r}")
