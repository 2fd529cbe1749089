"""Closed-form linear code: the Karhunen-Loeve transform (PCA) of wavelet packet vectors.

Each spatial position of the packet array is a vector of ``C * B**J`` coefficients. Under mean
squared error the best linear code of ``k`` numbers per vector is its projection on the ``k``
leading eigenvectors of their covariance, and the best linear decoder is the transpose (the
KLT / PCA optimum). The statistics are accumulated in float64, batch by batch, so memory does
not grow with the dataset.
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["MomentAccumulator", "principal_axes"]


class MomentAccumulator:
    """Streaming mean and covariance of the channel vectors of ``(N, D, *spatial)`` tensors.

    Examples
    --------
    >>> import torch
    >>> acc = MomentAccumulator()
    >>> acc.update(torch.randn(4, 3, 8, 8))
    >>> mean, cov = acc.finalize()
    >>> mean.shape, cov.shape
    ((3,), (3, 3))
    """

    def __init__(self):
        self.count = 0
        self._sum = None
        self._outer = None

    def update(self, coeffs: torch.Tensor) -> None:
        vectors = coeffs.detach().movedim(1, -1).reshape(-1, coeffs.shape[1]).to(torch.float64)
        if self._sum is None:
            self._sum = vectors.sum(0)
            self._outer = vectors.T @ vectors
        else:
            self._sum += vectors.sum(0)
            self._outer += vectors.T @ vectors
        self.count += vectors.shape[0]

    def finalize(self) -> tuple[np.ndarray, np.ndarray]:
        """Return ``(mean (D,), covariance (D, D))`` as float64 numpy arrays."""
        if not self.count:
            raise ValueError("no data was accumulated")
        mean = (self._sum / self.count).cpu().numpy()
        cov = (self._outer / self.count).cpu().numpy() - np.outer(mean, mean)
        return mean, (cov + cov.T) / 2


def principal_axes(cov: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Eigenvalues (descending, clipped at 0) and eigenvectors (columns) of a covariance.

    Each eigenvector's sign is fixed so its largest-magnitude entry is positive, which makes the
    learned code reproducible across LAPACK builds.
    """
    eigvals, eigvecs = np.linalg.eigh(cov)
    order = np.argsort(eigvals)[::-1]
    eigvals, eigvecs = np.clip(eigvals[order], 0.0, None), eigvecs[:, order]
    pivots = eigvecs[np.abs(eigvecs).argmax(axis=0), np.arange(eigvecs.shape[1])]
    return eigvals, eigvecs * np.where(pivots < 0, -1.0, 1.0)
