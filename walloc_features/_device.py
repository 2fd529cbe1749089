"""Parsing the ``device`` parameter every torch-backed estimator and transformer has."""

from __future__ import annotations

import os
import threading
from contextlib import contextmanager

import torch

#: Held while torch's process-wide state is in use: its generators (:func:`seeded`: two threads at once, as under
#: joblib's threading backend, drew from one another's streams and restored one another's states) and the global
#: module hooks of its FLOP counter (``count_flops``: they reached the other thread's training and changed it).
TORCH_GLOBALS = threading.RLock()
_forker_holds_it = False


def _before_fork() -> None:
    global _forker_holds_it
    _forker_holds_it = TORCH_GLOBALS._is_owned()


def _after_fork_in_child() -> None:
    """A child forked while another thread held the lock (a DataLoader's workers started during a fit) inherits
    it held by a thread it does not have, so its predict_proba, fit or FLOP count would wait forever: it gets a
    free lock. Held by the forking thread itself, it stays so: that thread goes on in the child and releases it."""
    if not _forker_holds_it:
        TORCH_GLOBALS._at_fork_reinit()


if hasattr(os, "register_at_fork") and all(hasattr(TORCH_GLOBALS, m) for m in ("_is_owned", "_at_fork_reinit")):
    os.register_at_fork(before=_before_fork, after_in_child=_after_fork_in_child)


def torch_device(spec) -> torch.device:
    """``spec`` ("cpu", "cuda", "cuda:1", a torch.device) as a usable torch.device, or a ValueError.

    Other device types (mps, xpu, meta, ...) are refused here, as untested: they failed deep in torch, and a
    fitted model moved to the meta device lost its weights.
    """
    try:
        device = torch.device(spec)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(f"device={spec!r} is not a torch device (e.g. 'cpu', 'cuda', 'cuda:1')") from exc
    if device.type not in ("cpu", "cuda"):
        raise ValueError(f"device={spec!r}: this package runs on 'cpu' and 'cuda' (or 'cuda:N') devices only")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={spec!r} was requested, but CUDA is not available")
    if device.type == "cuda" and device.index is None:  # "cuda" as tensors report it ("cuda:0"), so they compare equal
        device = torch.device("cuda", torch.cuda.current_device())
    if device.type == "cuda" and device.index >= torch.cuda.device_count():
        count = torch.cuda.device_count()
        raise ValueError(f"device={spec!r}: {count} CUDA device(s) are visible here (cuda:0 to cuda:{count - 1})")
    if device.type == "cpu":  # "cpu:0" as tensors report it ("cpu"): unequal, every call moved the model again
        device = torch.device("cpu")
    return device


@contextmanager
def seeded(seed: int, device: torch.device):
    """Torch's global generators seeded for work on ``device``, restored afterwards; other GPUs untouched.

    ``fork_rng`` over every CUDA device (and ``torch.manual_seed``, which seeds them all) would
    create a context on each GPU for a CPU fit: memory on every card, and a CUDA state that
    fork-based workers cannot inherit. Seeded sections of different threads run one at a time (``TORCH_GLOBALS``),
    so each is reproducible, unless a thread outside this package draws from torch's global generator meanwhile
    (it then shares the seeded stream): dropout and initialisation take no private generator.
    """
    devices = [device.index] if device.type == "cuda" else []
    with TORCH_GLOBALS, torch.random.fork_rng(devices=devices):
        torch.random.default_generator.manual_seed(seed)
        if devices:
            with torch.cuda.device(device):
                torch.cuda.manual_seed(seed)
        yield
