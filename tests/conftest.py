"""Shared fixtures: real data only (embedded MNIST, scikit-image photos)."""

import tracemalloc

import numpy as np
import pytest


@pytest.fixture(scope="session")
def mnist():
    from walloc_features.datasets import load_mnist

    return load_mnist()


@pytest.fixture(scope="session")
def photos():
    """The four RGB photographs scikit-image ships as PNG, (H, W, 3) uint8."""
    from skimage import data

    return {
        "astronaut": data.astronaut(),
        "coffee": data.coffee(),
        "chelsea": data.chelsea(),
        "motorcycle": data.stereo_motorcycle()[0],
    }


@pytest.fixture(scope="session")
def random_crops():
    """``random_crops(images, n, size, rng, rows=None)``: (n, 3, size, size) uint8 crops."""
    return _random_crops


def _random_crops(images, n, size, rng, rows=None):
    """``n`` random ``size``x``size`` crops; ``rows(image) -> (top, bottom)`` limits the band."""
    crops = []
    for i in range(n):
        image = images[i % len(images)]
        top, bottom = rows(image) if rows else (0, image.shape[0])
        y = rng.integers(top, bottom - size + 1)
        x = rng.integers(0, image.shape[1] - size + 1)
        crops.append(image[y : y + size, x : x + size].transpose(2, 0, 1))
    return np.stack(crops)


@pytest.fixture(scope="session")
def traced_peak():
    """``result, peak = traced_peak(call, *args, **kwargs)``: peak bytes tracemalloc saw during the call."""
    return _traced_peak


def _traced_peak(call, *args, **kwargs):
    tracemalloc.start()
    try:
        result = call(*args, **kwargs)
        return result, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
