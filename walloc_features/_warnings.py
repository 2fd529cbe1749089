"""Warnings that point at the user's own line, however deep in the package (or scikit-learn) they start.

A fixed ``stacklevel`` is right for one call path only: the same warning reached through a
``Pipeline``, ``cross_val_score``, ``set_output``'s wrapper, a progress bar or ``fit_transform``
instead of ``fit`` points into their code. :func:`warn` counts the frames instead, as pandas'
``find_stack_level`` does: the warning is attributed to the first frame that is not
walloc-features, a library that calls estimators for the user (scikit-learn, joblib, skorch,
torch, tqdm) or the standard library. The command line (``cli.py``, ``__main__.py``) counts as the
user's code. Where no such frame exists (a worker thread or process), the package's own line is given.
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
_ENTRY_POINTS = tuple(_OWN + name for name in ("cli.py", "__main__.py"))  # the user's commands, not internals
_STDLIB = os.path.abspath(sysconfig.get_paths()["stdlib"]) + os.sep
_INSTALLED = (os.sep + "site-packages" + os.sep, os.sep + "dist-packages" + os.sep)


def is_internal(filename: str) -> bool:
    """Whether a frame of ``filename`` is skipped on the way to the user's line."""
    if filename.startswith("<"):  # <frozen runpy> is the interpreter's; <stdin>, <string>, <doctest ...> the user's
        return filename.startswith("<frozen ")
    path = os.path.abspath(filename)
    if path.startswith(_ENTRY_POINTS):
        return False
    if path.startswith(SKIPPED_DIRS):
        return True
    return path.startswith(_STDLIB) and not any(part in path for part in _INSTALLED)


def warn(message: str, category: type[Warning] = UserWarning) -> None:
    """``warnings.warn`` attributed to the nearest caller that :func:`is_internal` does not skip."""
    level, frame = 1, sys._getframe(1)
    while frame is not None and is_internal(frame.f_code.co_filename):
        level, frame = level + 1, frame.f_back
    warnings.warn(message, category, stacklevel=level + 1 if frame is not None else 2)
