"""Distortion metrics shared by transformers' ``score`` and the evaluation suite."""

from __future__ import annotations

import numpy as np

__all__ = ["psnr"]


def psnr(reference, reconstruction, data_range: float = 1.0, *, axis=None) -> np.ndarray | float:
    """Peak signal-to-noise ratio ``10 log10(data_range**2 / MSE)`` in dB.

    Parameters
    ----------
    reference, reconstruction : array-like of the same shape
    data_range : float, default=1.0
        Peak-to-peak range of the signal: 1 for images in [0, 1], 2 for audio in [-1, 1].
    axis : None or int or tuple of int, default=None
        Axes the MSE averages over; ``None`` averages everything and returns a float. Use
        ``axis=tuple(range(1, x.ndim))`` for one PSNR per sample.

    Returns
    -------
    float or ndarray
        PSNR in dB, ``inf`` where the reconstruction is exact.

    Examples
    --------
    >>> import numpy as np
    >>> round(psnr(np.zeros(4), np.full(4, 0.1)), 6)
    20.0
    """
    if not (np.ndim(data_range) == 0 and np.isfinite(data_range) and data_range > 0):
        raise ValueError(f"data_range must be a positive number (the signal's peak-to-peak range), got {data_range!r}")
    reference = np.asarray(reference, dtype=np.float64)
    reconstruction = np.asarray(reconstruction, dtype=np.float64)
    if reference.shape != reconstruction.shape:
        raise ValueError(f"shapes differ: {reference.shape} vs {reconstruction.shape}")
    mse = np.mean((reference - reconstruction) ** 2, axis=axis)
    with np.errstate(divide="ignore"):
        value = 10 * np.log10(data_range**2 / mse)
    return float(value) if np.ndim(value) == 0 else value
