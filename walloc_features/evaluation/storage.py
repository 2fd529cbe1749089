"""Storage cost of integer latents: our entropy-coded blobs against the upstream route.

Upstream WaLLoC stored 8-bit latents by tiling them into uint8 images and saving those losslessly
with Pillow (WebP, PNG or TIFF). :func:`compare_storage` writes the same latents both ways and
reports sizes and coder speeds; :func:`tile_latents` is that tiling.
"""

from __future__ import annotations

import copy
import io
import math
import time

import numpy as np
import pandas as pd
from PIL import Image
from sklearn.utils.validation import check_is_fitted

__all__ = ["compare_storage", "tile_latents", "UPSTREAM_FORMATS"]

#: Pillow's lossless settings per format (the strongest each offers).
UPSTREAM_FORMATS = {
    "WebP": {"format": "WEBP", "lossless": True, "quality": 100, "method": 6},
    "PNG": {"format": "PNG", "optimize": True},
    "TIFF": {"format": "TIFF", "compression": "tiff_adobe_deflate"},
}
#: Bits per sample of the uncompressed signals (8-bit images, 16-bit PCM audio).
RAW_BITS = {"image": 8, "audio": 16}


def tile_latents(codes, *, bits: int = 8, mode: str = "rgb") -> Image.Image:
    """Lay one sample's integer latents out as a uint8 image, as upstream WaLLoC stored them.

    Codes are offset by ``2**(bits - 1)`` into ``[0, 255]``. ``mode="rgb"`` packs channels three
    at a time into the colour planes of equal tiles (a missing last plane is mid-grey);
    ``mode="gray"`` makes one tile per channel. Tiles fill a near-square grid. Audio latents
    ``(C, t)`` are tiled as ``(C, 1, t)`` strips.

    Parameters
    ----------
    codes : ndarray of int, shape (C, h, w) or (C, t)
    bits : int, default=8
        Code width; only 8-bit (or narrower) codes fit a uint8 image.
    mode : {"rgb", "gray"}, default="rgb"

    Returns
    -------
    PIL.Image.Image

    Examples
    --------
    >>> import numpy as np
    >>> tile_latents(np.zeros((12, 8, 8), dtype=np.int8)).size  # 4 RGB tiles on a 2 x 2 grid
    (16, 16)
    """
    codes = np.asarray(codes)
    if codes.dtype.kind not in "iu" or codes.ndim not in (2, 3):
        raise ValueError(f"codes must be integer latents (C, h, w) or (C, t), got {codes.dtype} {codes.shape}")
    if bits > 8:
        raise ValueError(f"{bits}-bit codes do not fit uint8 images; the upstream route stores 8-bit latents")
    if mode not in ("rgb", "gray"):
        raise ValueError(f"mode must be 'rgb' or 'gray', got {mode!r}")
    if codes.ndim == 2:
        codes = codes[:, None, :]
    pixels = (codes.astype(np.int16) + 2 ** (bits - 1)).clip(0, 255).astype(np.uint8)
    planes = 3 if mode == "rgb" else 1
    n_tiles = math.ceil(len(pixels) / planes)
    missing = n_tiles * planes - len(pixels)
    if missing:
        pixels = np.concatenate([pixels, np.full((missing, *pixels.shape[1:]), 128, np.uint8)])
    tiles = pixels.reshape(n_tiles, planes, *pixels.shape[1:]).transpose(0, 2, 3, 1)
    cols = math.ceil(math.sqrt(n_tiles))
    rows = math.ceil(n_tiles / cols)
    h, w = tiles.shape[1:3]
    canvas = np.full((rows * h, cols * w, planes), 128, np.uint8)
    for i, tile in enumerate(tiles):
        r, c = divmod(i, cols)
        canvas[r * h : (r + 1) * h, c * w : (c + 1) * w] = tile
    return Image.fromarray(canvas if mode == "rgb" else canvas[..., 0])


def compare_storage(transformer, X, *, formats=tuple(UPSTREAM_FORMATS), modes=("rgb", "gray")) -> pd.DataFrame:
    """Bytes on disk of ``X``'s quantized latents: ``compress`` blobs vs tiled lossless images.

    Every route stores the same integer latents (``transform`` with ``quantize=True``) one
    file per sample, and is checked to read them back exactly.

    Parameters
    ----------
    transformer : WaLLoCTransformer
        Fitted, with 8-bit codes (the upstream route's limit).
    X : array-like
        Signals to store.
    formats : tuple of str, default=("WebP", "PNG", "TIFF")
        Keys of :data:`UPSTREAM_FORMATS`.
    modes : tuple of str, default=("rgb", "gray")
        Tilings (:func:`tile_latents`); ``"rgb"`` is upstream's.

    Returns
    -------
    pandas.DataFrame
        One row per route (``"ours"`` first, then ``"<format> (<mode>)"``), with ``bytes``
        (total over the samples), ``bytes_per_sample``, ``bits_per_sample`` (per input value),
        ``bpp`` (images: per pixel), ``compression_ratio`` (against 8-bit images / 16-bit PCM),
        ``relative_to_best_upstream`` (bytes over the smallest image route's), ``encode_seconds``
        and ``decode_seconds`` (totals; every route starts from the computed codes, so ours
        times the entropy coder alone, the others tiling plus Pillow).

    Examples
    --------
    >>> from walloc_features import WaLLoCTransformer
    >>> from walloc_features.datasets import load_mnist
    >>> X, _ = load_mnist()
    >>> codec = WaLLoCTransformer(reduction=4).fit(X[:1000])
    >>> table = compare_storage(codec, X[1000:1010], formats=("PNG",), modes=("gray",))
    >>> list(table.index)
    ['ours', 'PNG (gray)']
    """
    check_is_fitted(transformer)
    if not hasattr(transformer, "compress"):
        raise TypeError(f"{type(transformer).__name__} has no compress(); compare_storage needs one")
    unknown = set(formats) - set(UPSTREAM_FORMATS)
    if unknown or not formats:
        raise ValueError(f"formats must be a non-empty subset of {sorted(UPSTREAM_FORMATS)}, got {formats!r}")
    bits = int(transformer.bits_per_code_)
    if bits > 8:
        raise ValueError(f"{bits}-bit codes do not fit uint8 images; the upstream route stores 8-bit latents")
    codes = np.asarray(copy.copy(transformer).set_params(output="tensor", quantize=True).transform(X))
    _, layout = transformer._read(X)  # X's own size (tensor mode encodes other sizes than fit's)
    n_values = len(codes) * int(np.prod(layout.sample_shape))
    pixels = len(codes) * int(np.prod(layout.spatial))
    rows = {}

    start = time.perf_counter()
    blobs = transformer._compress_codes(codes)  # like the image routes, from the codes (coder alone)
    encode = time.perf_counter() - start
    start = time.perf_counter()
    decoded = transformer.decompress(blobs)
    decode = time.perf_counter() - start
    if not np.array_equal(np.asarray(decoded).reshape(codes.shape), codes):
        raise RuntimeError("compress/decompress did not round-trip the codes")
    rows["ours"] = (sum(map(len, blobs)), encode, decode)

    for mode in modes:
        for name in formats:
            options = UPSTREAM_FORMATS[name]
            total, encode, decode = 0, 0.0, 0.0
            for sample in codes:
                start = time.perf_counter()
                image = tile_latents(sample, bits=bits, mode=mode)
                buffer = io.BytesIO()
                image.save(buffer, **options)
                encode += time.perf_counter() - start
                start = time.perf_counter()
                restored = np.asarray(Image.open(io.BytesIO(buffer.getvalue())).convert(image.mode))
                decode += time.perf_counter() - start
                if not np.array_equal(restored, np.asarray(image)):
                    raise RuntimeError(f"{name} did not store the tiled latents losslessly")
                total += buffer.tell()
            rows[f"{name} ({mode})"] = (total, encode, decode)

    table = pd.DataFrame.from_dict(rows, orient="index", columns=["bytes", "encode_seconds", "decode_seconds"])
    table["bytes_per_sample"] = table["bytes"] / len(codes)
    table["bits_per_sample"] = 8 * table["bytes"] / n_values
    table["bpp"] = 8 * table["bytes"] / pixels if transformer.modality_ == "image" else np.nan
    table["compression_ratio"] = RAW_BITS[transformer.modality_] / table["bits_per_sample"]
    table["relative_to_best_upstream"] = table["bytes"] / table["bytes"].iloc[1:].min()
    columns = ["bytes", "bytes_per_sample", "bits_per_sample", "bpp", "compression_ratio",
               "relative_to_best_upstream", "encode_seconds", "decode_seconds"]  # fmt: skip
    return table[columns]

