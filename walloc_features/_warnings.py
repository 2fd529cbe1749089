"""Warnings that point at the user's own line, however deep in the package (or scikit-learn) they start.

A fixed ``stacklevel`` is right for one call path only: the same warning reached through a
``Pipeline``, ``cross_val_score``, ``set_output``'s wrapper, a progress bar or ``fit_transform``
instead of ``fit`` points into their code. :func:`warn` counts the frames instead, as pandas'
``find_stack_level`` does: the warning is attributed to the first frame that is not
walloc-features, a library that calls estimators for the user (scikit-learn, joblib, skorch,
torch, tqdm), the standard library or a console-script stub. Where no such frame exists, the
command line's own line is given when it ran (``python -m walloc_features``, the ``walloc-features``
command), else the package's line (a worker thread or process).
"""

from __future__ import annotations

import importlib.util
import os
import sys
import sysconfig
import warnings

__all__ = ["warn"]


def _package_dirs(names) -> tuple:
    """Where each installed package lives (found, not imported: skorch stays unimported until used)."""
    dirs = []
    for name in names:
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.submodule_search_locations:
            dirs += [os.path.abspath(d) + os.sep for d in spec.submodule_search_locations]
    return tuple(dirs)


#: Frames from these directories are skipped: walloc-features itself and the libraries that call it.
SKIPPED_DIRS = _package_dirs([__package__, "sklearn", "joblib", "skorch", "torch", "tqdm"])
_OWN = SKIPPED_DIRS[0]
#: The command line: the user's line when nothing of theirs called it (``python -m``, the console script).
_ENTRY_POINTS = tuple(_OWN + name for name in ("cli.py", "__main__.py"))
_STDLIB = os.path.abspath(sysconfig.get_paths()["stdlib"]) + os.sep
_SCRIPTS = os.path.abspath(sysconfig.get_paths()["scripts"]) + os.sep  # console-script stubs (walloc-features)
_INSTALLED = (os.sep + "site-packages" + os.sep, os.sep + "dist-packages" + os.sep)


def is_internal(filename: str) -> bool:
    """Whether a frame of ``filename`` is skipped on the way to the user's line."""
    if filename.startswith("<"):  # <frozen runpy> is the interpreter's; <stdin>, <string>, <doctest ...> the user's
        return filename.startswith("<frozen ")
    path = os.path.abspath(filename)
    if path.startswith(SKIPPED_DIRS) or path.startswith(_SCRIPTS):
        return True
    return path.startswith(_STDLIB) and not any(part in path for part in _INSTALLED)


def _uncounted(filename: str) -> bool:
    """Frames ``warnings.warn`` itself leaves out of ``stacklevel`` (CPython's import machinery)."""
    return "importlib" in filename and "_bootstrap" in filename


def warn(message: str, category: type[Warning] = UserWarning) -> None:
    """``warnings.warn`` attributed to the nearest caller that :func:`is_internal` does not skip.

    With none (the command line, a worker thread), the command line's own line is given if it ran, else the
    package's line that called this.
    """
    level, frame, entry = 1, sys._getframe(1), None
    while frame is not None and is_internal(name := frame.f_code.co_filename):
        if entry is None and os.path.abspath(name).startswith(_ENTRY_POINTS):
            entry = level
        frame = frame.f_back
        if frame is not None and not _uncounted(frame.f_code.co_filename):
            level += 1
    if frame is None:
        level = entry or 1
    warnings.warn(message, category, stacklevel=level + 1)
