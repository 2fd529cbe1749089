"""``JPEGCoefficients``: learn from JPEG files without decoding them to pixels."""

from __future__ import annotations

import os
import tempfile
from numbers import Integral, Real
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted
from tqdm.auto import tqdm

from ._base import SignalTransformer
from ._jpeg import block_idct, ycbcr_to_rgb, zigzag_order
from ._signals import SignalLayout

__all__ = ["JPEGCoefficients", "read_jpeg_coefficients"]


def read_jpeg_coefficients(source):
    """Quantized DCT blocks of one JPEG (a path or its bytes), read by libjpeg through jpeglib.

    Returns ``(planes, tables, size)``: a list of int16 arrays ``(blocks_h, blocks_w, 8, 8)``
    (Y, then Cb and Cr when present), their 8x8 quantization tables, and ``(height, width)``.
    """
    try:
        import jpeglib
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("JPEGCoefficients needs jpeglib: pip install 'walloc-features[jpeg]'") from exc

    if isinstance(source, (bytes, bytearray, memoryview)):
        with tempfile.NamedTemporaryFile(suffix=".jpg", delete=False) as f:
            f.write(bytes(source))
        try:
            return read_jpeg_coefficients(f.name)
        finally:
            os.unlink(f.name)
    path = Path(source)
    if not path.is_file():
        raise FileNotFoundError(f"no JPEG file at {path}")
    try:
        jpeg = jpeglib.read_dct(str(path))
        planes = [jpeg.Y] + ([jpeg.Cb, jpeg.Cr] if jpeg.has_chrominance else [])
        tables = [jpeg.qt[i] for i in jpeg.quant_tbl_no[: len(planes)]]
        size = (int(jpeg.height), int(jpeg.width))
    except Exception as exc:  # libjpeg reports corrupt or foreign files in several ways
        raise ValueError(f"{path} could not be read as a JPEG: {exc}") from exc
    if jpeg.has_black:
        raise ValueError(f"{path} is a CMYK/YCCK JPEG; only grayscale and YCbCr JPEGs are supported")
    return [np.asarray(p, dtype=np.int16) for p in planes], [np.asarray(t, dtype=np.float32) for t in tables], size


class JPEGCoefficients(SignalTransformer):
    """Quantized DCT coefficients read straight out of JPEG files, never decoded to pixels.

    The output has :class:`DCTTransformer`'s layout, ``(N, C * keep, H / 8, W / 8)`` on the
    luminance block grid, so the same models apply. Coefficients are those libjpeg stores
    (zig-zag order, first ``keep`` per block): integers with ``quantize=True``, or multiplied by
    their quantization table (the DCT of the level-shifted YCbCr pixels, as
    ``DCTTransformer(quality=None)`` computes it) with ``quantize=False``.

    Chroma subsampling: in a 4:2:0 (or 4:2:2) JPEG the Cb and Cr planes have fewer blocks than
    Y. ``chroma="repeat"`` repeats each chroma block over the luminance blocks it covers (2x2 for
    4:2:0), so all channels share one grid; ``chroma="drop"`` keeps Y alone. ``inverse_transform``
    decodes the chroma planes at their own resolution and upsamples them bilinearly (close to,
    not identical with, libjpeg's "fancy" upsampling).

    Parameters
    ----------
    reduction : float, default=16
        Sets ``keep = round(64 / reduction)`` when ``keep`` is None.
    keep : int, default=None
        Coefficients per block and channel (1 = DC only, 64 = all).
    chroma : {"repeat", "drop"}, default="repeat"
    quantize : bool, default=True
        Integer coefficients (int16) as stored; False: dequantized float32.
    output : {"flat", "tensor"}, default="flat"
    verbose : bool, default=False

    Attributes
    ----------
    keep_ : int
    channels_ : int
        1 (grayscale or ``chroma="drop"``) or 3.
    image_size_ : tuple
        ``(height, width)`` of the fitted files; all files must share their block grid.
    quant_tables_ : ndarray of shape (channels_, keep_)
        Zig-zag quantization steps of the first fitted file, used to dequantize integer codes
        in ``inverse_transform``.
    latent_shape_ : tuple
        ``(channels_ * keep_, H / 8, W / 8)``.
    reduction_ : float
        Pixels (times channels) per coefficient.

    Examples
    --------
    >>> import io
    >>> import numpy as np
    >>> from PIL import Image
    >>> from walloc_features.features import JPEGCoefficients
    >>> rgb = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    >>> buffer = io.BytesIO()
    >>> Image.fromarray(rgb).save(buffer, format="JPEG", quality=90)
    >>> jpeg = JPEGCoefficients(keep=6, output="tensor").fit([buffer.getvalue()])
    >>> jpeg.transform([buffer.getvalue()]).shape
    (1, 18, 4, 4)
    """

    _parameter_constraints: dict = {
        "reduction": [Interval(Real, 1, None, closed="left")],
        "keep": [Interval(Integral, 1, 64, closed="both"), None],
        "chroma": [StrOptions({"repeat", "drop"})],
        "quantize": ["boolean"],
        "output": [StrOptions({"flat", "tensor"})],
        "verbose": ["verbose"],
    }

    def __init__(self, reduction=16, *, keep=None, chroma="repeat", quantize=True, output="flat", verbose=False):
        self.reduction = reduction
        self.keep = keep
        self.chroma = chroma
        self.quantize = quantize
        self.output = output
        self.verbose = verbose

    def fit(self, X, y=None):
        """Read the first file's geometry and tables (``X``: list of paths or bytes)."""
        self._validate_params()
        for name in [k for k in vars(self) if k.endswith("_") and not k.startswith("_")]:
            delattr(self, name)
        sources = self._sources(X)
        planes, tables, size = read_jpeg_coefficients(sources[0])
        keep = self.keep or int(np.clip(round(64 / self.reduction), 1, 64))
        channels = 1 if self.chroma == "drop" else len(planes)
        zigzag = zigzag_order()[:keep]
        self.keep_ = keep
        self.channels_ = channels
        self.image_size_ = size
        self.grid_ = planes[0].shape[:2]
        self.chroma_factor_ = _chroma_factor(planes) if channels == 3 else (1, 1)
        self.quant_tables_ = np.stack([t.ravel()[zigzag] for t in tables[:channels]])
        self.bits_per_code_ = 11  # baseline JPEG: 8-bit samples give coefficients in [-1024, 1023]
        layout = SignalLayout("image", channels, size, has_channel_axis=True)
        self._set_fitted(layout, np.uint8, (channels * keep, *self.grid_))
        return self

    def transform(self, X):
        """Coefficients ``(N, channels * keep, H / 8, W / 8)`` (flat rows by default)."""
        check_is_fitted(self)
        sources = self._sources(X)
        zigzag = zigzag_order()[: self.keep_]
        out = np.empty((len(sources), *self.latent_shape_), dtype=np.int16 if self.quantize else np.float32)
        for i, source in enumerate(tqdm(sources, desc="JPEG", disable=not self.verbose, leave=False)):
            planes, tables, size = read_jpeg_coefficients(source)
            if planes[0].shape[:2] != self.grid_:
                raise ValueError(
                    f"file {i} has {planes[0].shape[0]}x{planes[0].shape[1]} blocks, but the fitted files have "
                    f"{self.grid_[0]}x{self.grid_[1]}; resize the images to one size first"
                )
            if len(planes) < self.channels_:
                raise ValueError(f"file {i} is grayscale, but {type(self).__name__} was fitted on colour JPEGs")
            for c in range(self.channels_):
                coeffs = planes[c].reshape(*planes[c].shape[:2], 64)[..., zigzag]  # (bh, bw, keep)
                if not self.quantize:
                    coeffs = coeffs * tables[c].ravel()[zigzag]
                coeffs = _repeat_to_grid(coeffs, self.grid_)
                out[i, c * self.keep_ : (c + 1) * self.keep_] = np.moveaxis(coeffs, -1, 0)
        return self._format_output(out)

    def inverse_transform(self, X, output_size=None):
        """Pixels ``(N, C, H, W)`` in [0, 1] from coefficients (integer codes use ``quant_tables_``)."""
        Z = self._read_latents(X).astype(np.float32)
        if self.quantize:
            Z = Z * self.quant_tables_.reshape(1, -1, 1, 1)
        n = len(Z)
        coeffs = torch.from_numpy(Z).view(n, self.channels_, self.keep_, *Z.shape[2:])
        order = zigzag_order()[: self.keep_]
        planes = [block_idct(coeffs[:, :1], 8, order)]  # Y on the full grid
        if self.channels_ == 3:
            factor = self.chroma_factor_
            chroma = coeffs[:, 1:, :, :: factor[0], :: factor[1]]
            small = block_idct(chroma, 8, order)
            planes.append(F.interpolate(small, scale_factor=factor, mode="bilinear", align_corners=False))
        x = torch.cat([p[..., : planes[0].shape[2], : planes[0].shape[3]] for p in planes], dim=1) + 128
        if self.channels_ == 3:
            x = ycbcr_to_rgb(x)
        height, width = self._output_size(Z.shape[2:], output_size) or self.image_size_
        return self._restore((x[..., :height, :width] / 255).numpy())

    # ---------------------------------------------------------------------------- helpers --
    @staticmethod
    def _sources(X) -> list:
        if isinstance(X, (str, bytes, os.PathLike)) or not hasattr(X, "__len__"):
            raise TypeError("X must be a list of JPEG paths or bytes, not a single item")
        if len(X) == 0:
            raise ValueError("Found 0 JPEG file(s) while a minimum of 1 is required.")
        return list(X)


def _chroma_factor(planes) -> tuple:
    """Luminance blocks per chroma block along rows and columns (2, 2 for 4:2:0)."""
    (bh, bw), (ch, cw) = planes[0].shape[:2], planes[1].shape[:2]
    return (-(-bh // ch), -(-bw // cw))


def _repeat_to_grid(coeffs: np.ndarray, grid: tuple) -> np.ndarray:
    """Repeat subsampled chroma blocks ``(ch, cw, k)`` over the luminance grid they cover."""
    fy, fx = -(-grid[0] // coeffs.shape[0]), -(-grid[1] // coeffs.shape[1])
    return np.repeat(np.repeat(coeffs, fy, axis=0), fx, axis=1)[: grid[0], : grid[1]]
