"""Atomic writes (saves, store indexes, caches): a replaced file keeps its permissions and its links."""

import os
import stat

import pytest

from walloc_features._files import TMP_PREFIX, _umask, write_atomic


def test_a_new_file_gets_the_umask_and_a_replaced_one_keeps_its_mode(tmp_path):
    umask = os.umask(0o027)
    try:
        assert _umask() == 0o027
        write_atomic({tmp_path / "new": b"a"})
        assert stat.S_IMODE((tmp_path / "new").stat().st_mode) == 0o640
    finally:
        os.umask(umask)
    private = tmp_path / "private"
    private.write_bytes(b"old")
    private.chmod(0o600)  # a private file must not turn world-readable when overwritten
    write_atomic({private: b"new"})
    assert private.read_bytes() == b"new" and stat.S_IMODE(private.stat().st_mode) == 0o600
    tool = tmp_path / "tool"
    tool.write_bytes(b"old")
    tool.chmod(0o4755)
    write_atomic({tool: b"new"})
    assert stat.S_IMODE(tool.stat().st_mode) == 0o755  # permission bits kept, set-user-id not copied


def test_a_link_at_the_target_is_replaced_not_followed(tmp_path):
    """In a shared folder (a speech data home) a planted link would redirect the write to its target."""
    victim = tmp_path / "victim"
    victim.write_bytes(b"precious")
    victim.chmod(0o600)
    link = tmp_path / "cache.npz"
    link.symlink_to(victim)
    write_atomic({link: b"new"})
    assert not link.is_symlink() and link.read_bytes() == b"new" and victim.read_bytes() == b"precious"
    assert stat.S_IMODE(link.stat().st_mode) == 0o666 & ~_umask()  # a new file's mode, not the target's
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(TMP_PREFIX)]


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "config.json"
    target.write_bytes(b"old")

    def fails(f):
        f.write(b"half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        write_atomic({target: fails})
    assert target.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["config.json"]


def test_a_pair_cut_off_between_its_renames_leaves_its_config_missing_not_stale(tmp_path, monkeypatch):
    """Weights and config written as a pair with ``remove_first``: a kill after the first rename leaves the new
    weights and no config (an error when loaded), never the new weights beside the old config, and no temporary."""
    weights, config = tmp_path / "walloc.pth", tmp_path / "walloc.json"
    weights.write_bytes(b"old weights")
    config.write_bytes(b"old config")
    real_replace, renames = os.replace, []

    def killed_on_the_second(src, dst):
        if renames:
            raise KeyboardInterrupt
        renames.append(dst)
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", killed_on_the_second)
    with pytest.raises(KeyboardInterrupt):
        write_atomic({weights: b"new weights", config: b"new config"}, remove_first=[config])
    monkeypatch.undo()
    assert weights.read_bytes() == b"new weights" and not config.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["walloc.pth"]


def test_every_temporary_is_on_disk_before_any_rename(tmp_path, monkeypatch):
    """A crash after a rename must find the renamed file's data on disk: each temporary is fsynced first."""
    events, real_fsync, real_replace = [], os.fsync, os.replace
    monkeypatch.setattr(os, "fsync", lambda fd: events.append("fsync") or real_fsync(fd))
    monkeypatch.setattr(os, "replace", lambda src, dst: events.append("replace") or real_replace(src, dst))
    write_atomic({tmp_path / "a": b"1", tmp_path / "b": b"2"})
    assert events[:4] == ["fsync", "fsync", "replace", "replace"]  # then the folder's own fsync
