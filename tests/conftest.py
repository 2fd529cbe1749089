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
    """Peak traced bytes of ``call``, leaving out the instant of each in-place trim (``shrink_in_place``).

    numpy >= 2.5 tells tracemalloc of a ``realloc``'d block before it forgets the old one, so a trim shows the
    array twice though no byte is copied (2.2 GB trimmed by a row: the peak RSS stays put, in 0.3 ms).
    """
    from walloc_features import _memory

    shrink, peaks = _memory.shrink_in_place, []

    def traced_shrink(array, length):
        peaks.append(tracemalloc.get_traced_memory()[1])
        shrink(array, length)
        tracemalloc.reset_peak()  # the peak from here on starts at the trimmed size

    _memory.shrink_in_place = traced_shrink
    tracemalloc.start()
    try:
        result = call(*args, **kwargs)
        return result, max(peaks + [tracemalloc.get_traced_memory()[1]])
    finally:
        tracemalloc.stop()
        _memory.shrink_in_place = shrink
