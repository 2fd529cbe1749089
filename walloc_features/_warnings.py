"""Warnings that point at the user's own line, however deep in the package (or scikit-learn) they start.

A fixed ``stacklevel`` is right for one call path only: the same warning reached through a
``Pipeline``, ``cross_val_score``, ``set_output``'s wrapper or ``fit_transform`` instead of ``fit``
points into their code. :func:`warn` counts the frames instead, as pandas' ``find_stack_level``
does: the warning is attributed to the first frame outside walloc-features and the libraries that
call estimators for the user (scikit-learn, joblib, skorch).
"""

from __future__ import annotations

import importlib.util
import os
import sys
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
SKIPPED_DIRS = _package_dirs([__package__, "sklearn", "joblib", "skorch"])


def warn(message: str, category: type[Warning] = UserWarning) -> None:
    """``warnings.warn`` attributed to the nearest caller outside :data:`SKIPPED_DIRS`."""
    level, frame = 1, sys._getframe(1)
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(SKIPPED_DIRS):
        level, frame = level + 1, frame.f_back
    warnings.warn(message, category, stacklevel=level + 1)
