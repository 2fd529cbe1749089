"""``DCTTransformer``: JPEG-style block-DCT coefficients, in the same layout as WaLLoC latents."""

from __future__ import annotations

import math
from numbers import Integral, Real

import numpy as np
import torch
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted

from ..codecs.wavelets import pad_to_multiple
from ._base import SIGNAL_CONSTRAINTS, SignalTransformer, fill_rows
from ._jpeg import (
    CHROMA_TABLE,
    LUMA_TABLE,
    block_dct,
    block_idct,
    quality_table,
    rgb_to_ycbcr,
    ycbcr_to_rgb,
    zigzag_order,
)  # fmt: skip

__all__ = ["DCTTransformer"]

#: Default block edge: JPEG's 8x8 for images, 256-sample frames for audio.
DEFAULT_BLOCK = {"image": 8, "audio": 256}
#: Signal -> coefficient-domain units: JPEG's level-shifted 0..255 pixels, 16-bit PCM.
PEAK = {"image": 255.0, "audio": 32768.0}


def _code_range(modality: str, per_block: int, steps: np.ndarray) -> tuple[int, int]:
    """Inclusive range of the codes: a coefficient ``<b, x>`` with an orthonormal basis vector ``b`` (so
    ``|b|_1 <= sqrt(n)``), divided by the smallest step.

    Level-shifted pixels lie in [-128, 127] (luma) or [-127.5, 127.5] (chroma), so the lowest coefficient
    is -128 sqrt(n) (the DC of a black block); the highest is 127.5 sqrt(n): the DC reaches 127 sqrt(n), and
    an AC vector sums to 0, so at most half of ``|b|_1`` meets 127 and half -128 (JPEG's 8x8 blocks:
    [-1024, 1020], the 11 bits of baseline JPEG). Audio in [-1, 1] reaches +-32768 sqrt(n) in PCM units.
    """
    low, high = (128.0, 127.5) if modality == "image" else (PEAK[modality],) * 2
    scale = math.sqrt(per_block) / float(steps.min())
    return -math.floor(low * scale + 0.5), math.floor(high * scale + 0.5)


class DCTTransformer(SignalTransformer):
    """Block DCT-II coefficients as JPEG computes them, keeping the lowest frequencies.

    Images: optional RGB -> YCbCr (JFIF), level shift to [-128, 127], orthonormal 8x8 DCT-II
    (the transform of JPEG), optional division by the standard JPEG tables scaled by ``quality``
    (IJG formula), zig-zag order, and the first ``keep`` coefficients of every block per channel.
    Audio: the same on frames of ``block_size`` samples (16-bit PCM units) with a 1-D DCT-II,
    coefficients in frequency order.

    The output ``(N, C * keep, H / 8, W / 8)`` (channel-major, ``c * keep + k``) has the shape
    family of WaLLoC latents, so the same downstream models apply. Sides that are not a multiple
    of the block are padded half-sample symmetrically (mirrored, as the wavelet transforms are),
    where libjpeg repeats the last row and column: the blocks of that last block row and column
    differ from a JPEG file's.

    Parameters
    ----------
    reduction : float, default=16
        Sets ``keep = round(block_size**d / reduction)`` (``d`` = 2 for images, 1 for audio) when
        ``keep`` is None.
    keep : int, default=None
        Coefficients kept per block and channel, in zig-zag (frequency) order.
    block_size : int, default=None
        8 for images, 256 for audio.
    color : {"ycbcr", "rgb"}, default="ycbcr"
        Colour transform of 3-channel images (other channel counts are left as they are).
    quality : int, default=None
        JPEG quality 1-100: coefficients are divided by the scaled standard tables (luminance
        table for Y and single-channel images, chrominance for Cb/Cr). ``None`` divides by 1.
        Images only.
    quantize : bool, default=False
        Round to integer coefficients, as JPEG stores them, in the smallest type that holds
        ``code_range_``: int8 when ``bits_per_code_ <= 8`` (coarse ``quality`` tables), int16 up to
        16 bits (images), int32 otherwise (audio frames, whose DC reaches ``32768 * sqrt(block_size)``).
        Coefficients of input off the signal scale are saturated to ``code_range_``, with a warning.
    output : {"flat", "tensor"}, default="flat"
    modality : {"auto", "image", "audio"}, default="auto"
    input_shape : tuple of int, default=None
    batch_size : int, default=64
    device : str, default="cpu"
    verbose : bool, default=False

    Attributes
    ----------
    keep_ : int
        Coefficients kept per block and channel.
    block_size_ : int
    latent_shape_ : tuple
        ``(C * keep_, H / block, W / block)`` or ``(C * keep_, T / block)``.
    reduction_ : float
        Achieved reduction (after padding to whole blocks).
    bits_per_code_ : int
        Bits that hold any quantized coefficient of this configuration (those of ``code_range_``).
    code_range_ : tuple of int
        Inclusive bound of the codes ``quantize=True`` emits for input on the signal scale.
    input_range_ : tuple of float
        Lowest and highest sample of fit input read as stored (floats, bool, int64; absent after a fit
        on uint8 / int16 and the other integers divided by their full scale): after a fit on the
        [0, 1] image / [-1, 1] audio scale, such samples far off it (pixels on 0-255) are refused.
    color_ : str
        The colour transform fitted (``color`` as it was at fit: the tables follow it).
    n_features_in_, modality_, input_shape_, input_dtype_, layout_
        How ``fit`` read the input, as in :class:`WaLLoCTransformer`.
    steps_ : ndarray of shape (C, block_size_**d)
        Quantization divisor of every coefficient of a block, per channel, in zig-zag order: the
        ``quality`` tables, or ones without them.
    order_ : ndarray of int
        Positions (row-major within the block) of the ``keep_`` coefficients kept, in output order.

    Examples
    --------
    >>> import numpy as np
    >>> from walloc_features.features import DCTTransformer
    >>> X = np.random.default_rng(0).integers(0, 256, (2, 3, 32, 32), dtype=np.uint8)
    >>> dct = DCTTransformer(reduction=16, output="tensor").fit(X)
    >>> dct.keep_, dct.transform(X).shape
    (4, (2, 12, 4, 4))
    >>> lossless = DCTTransformer(keep=64).fit(X)
    >>> bool(np.abs(lossless.inverse_transform(lossless.transform(X)) - X / 255).max() < 1e-5)
    True
    """

    _off_scale_consequence = "its quantized codes saturate, and inverse_transform clips reconstructions to {scale}"
    _parameter_constraints: dict = {
        **SIGNAL_CONSTRAINTS,
        "reduction": [Interval(Real, 1, None, closed="left")],
        "keep": [Interval(Integral, 1, None, closed="left"), None],
        "block_size": [Interval(Integral, 2, None, closed="left"), None],
        "color": [StrOptions({"ycbcr", "rgb"})],
        "quality": [Interval(Integral, 1, 100, closed="both"), None],
        "quantize": ["boolean"],
    }

    def __init__(
        self, reduction=16, *, keep=None, block_size=None, color="ycbcr", quality=None, quantize=False,
        output="flat", modality="auto", input_shape=None, batch_size=64, device="cpu", verbose=False,
    ):  # fmt: skip
        self.reduction = reduction
        self.keep = keep
        self.block_size = block_size
        self.color = color
        self.quality = quality
        self.quantize = quantize
        self.output = output
        self.modality = modality
        self.input_shape = input_shape
        self.batch_size = batch_size
        self.device = device
        self.verbose = verbose

    def fit(self, X, y=None):
        """Fix the block geometry, tables and kept coefficients for this input (``y`` ignored)."""
        self._validate_params()
        X, layout = self._read_fit(X, checked_by_batches=True)
        sample_range = self._sample_range(X, layout.modality)  # (the batches' NaN check included)
        self._torch_device()
        block = self.block_size or DEFAULT_BLOCK[layout.modality]
        per_block = block**layout.ndim
        keep = self.keep if self.keep is not None else int(np.clip(round(per_block / self.reduction), 1, per_block))
        if keep > per_block:
            raise ValueError(f"keep={keep} exceeds the {per_block} coefficients of a {block}-sample block")
        if self.quality is not None and layout.modality != "image":
            raise ValueError("quality scales JPEG's image tables; it does not apply to audio")
        steps = self._steps(layout.channels, block, layout.ndim)
        self.block_size_ = block
        self.keep_ = keep
        self.steps_ = steps  # (C, block**d) divisors of every coefficient, in zig-zag order
        self.order_ = zigzag_order(block)[:keep] if layout.ndim == 2 else np.arange(keep)
        self.color_ = self.color  # read at fit, as the tables it chose: a later set_params waits for the next fit
        low, high = _code_range(layout.modality, per_block, steps)
        self.bits_per_code_ = int(math.ceil(math.log2(high - low + 1)))  # the bits of code_range_
        grid = tuple(math.ceil(s / block) for s in layout.spatial)
        self._set_fitted(layout, X.dtype, (layout.channels * keep, *grid))
        if sample_range is not None:  # samples read as stored: after a fit on the scale, transform refuses far off it
            self.input_range_ = sample_range
        if self.keep is None:  # a reduction no whole number of coefficients gives, or tiny samples padded up
            self._warn_if_reduction_missed(self.reduction, f" with {keep} of {per_block} coefficients a block",
                                           per_block=per_block / keep)  # fmt: skip
        return self

    def _steps(self, channels: int, block: int, ndim: int) -> np.ndarray:
        """Quantization divisor of every (channel, zig-zag position); ones without ``quality``."""
        if self.quality is None:
            return np.ones((channels, block**ndim))
        if block != 8:
            raise ValueError("quality uses JPEG's 8x8 tables; it needs block_size=8")
        luma = quality_table(LUMA_TABLE, self.quality).ravel()[zigzag_order()]
        chroma = quality_table(CHROMA_TABLE, self.quality).ravel()[zigzag_order()]
        is_ycbcr = channels == 3 and self.color == "ycbcr"
        return np.stack([chroma if is_ycbcr and c > 0 else luma for c in range(channels)])

    # -------------------------------------------------------------------------- transform --
    @property
    def code_range_(self) -> tuple[int, int]:
        """Inclusive bound of the codes ``quantize=True`` emits for inputs in range.

        ``(-round(128 sqrt(n) / step), round(127.5 sqrt(n) / step))`` for images (``n`` samples per
        block, the smallest step): ``(-1024, 1020)`` for 8x8 blocks without tables, JPEG's 11 bits;
        ``+-round(32768 sqrt(n) / step)`` for audio in PCM units.
        """
        check_is_fitted(self)
        return _code_range(self.modality_, self.block_size_ ** self.layout_.ndim, self.steps_)

    def transform(self, X):
        """Block-DCT coefficients ``(N, C * keep, *grid)`` (flat rows by default)."""
        X, _ = self._read(X, batched=True)
        device = self._torch_device()
        kept = self.steps_[:, : self.keep_]
        divisor = torch.as_tensor(kept, dtype=torch.float32, device=device)

        def batches():
            for start, batch in self._iter_batches(X, device, desc="block DCT"):
                coeffs = self._analysis(batch) / divisor.view(1, *kept.shape, *([1] * self.layout_.ndim))
                coeffs = coeffs.flatten(1, 2)
                yield start, (torch.round(coeffs) if self.quantize else coeffs).cpu().numpy()

        if not self.quantize:
            return self._format_output(fill_rows(len(X), batches(), np.float32))
        return self._format_output(fill_rows(len(X), batches(), self._code_dtype(), code_range=self.code_range_))

    def inverse_transform(self, X, output_size=None):
        """Zero-fill dropped coefficients, dequantize, inverse DCT; clipped, fit layout."""
        Z = self._read_latents(X)
        device = self._torch_device()
        size = self._output_size(Z.shape[2:], output_size, limit=[n * self.block_size_ for n in Z.shape[2:]])
        channels, keep = self.layout_.channels, self.keep_
        steps = torch.as_tensor(self.steps_[:, :keep], dtype=torch.float32, device=device)

        def batches():
            for start, batch in self._iter_batches(Z, device, desc="inverse DCT", scale=1.0, samples=False):
                coeffs = batch.view(len(batch), channels, keep, *batch.shape[2:])
                x = self._synthesis(coeffs * steps.view(1, channels, keep, *([1] * self.layout_.ndim)))
                if size is not None:
                    for axis, n in enumerate(size, start=2):
                        x = x.narrow(axis, 0, n)
                yield start, x.cpu().numpy()

        return self._restore(fill_rows(len(Z), batches(), np.float32))

    def _code_dtype(self):
        """The smallest signed type holding every code: int8 for coarse tables, int16 for JPEG's 11 bits, int32
        beyond (e.g. 256-sample audio frames)."""
        return np.int8 if self.bits_per_code_ <= 8 else np.int16 if self.bits_per_code_ <= 16 else np.int32

    # -------------------------------------------------------------------------- the math --
    def _is_ycbcr(self) -> bool:
        color = getattr(self, "color_", self.color)  # (models pickled before color_ existed)
        return self.layout_.modality == "image" and self.layout_.channels == 3 and color == "ycbcr"

    def _analysis(self, x: torch.Tensor) -> torch.Tensor:
        """Signals ``(n, C, *S)`` -> kept coefficients ``(n, C, keep, *grid)``."""
        x = x * PEAK[self.modality_]
        if self.modality_ == "image":
            x = (rgb_to_ycbcr(x) if self._is_ycbcr() else x) - 128
        return block_dct(pad_to_multiple(x, self.block_size_, self.layout_.ndim), self.block_size_, self.order_)

    def _synthesis(self, coeffs: torch.Tensor) -> torch.Tensor:
        """Kept coefficients ``(n, C, keep, *grid)`` -> signals ``(n, C, *grid * block)``."""
        x = block_idct(coeffs, self.block_size_, self.order_)
        if self.modality_ == "image":
            x = x + 128
            x = ycbcr_to_rgb(x) if self._is_ycbcr() else x
        return x / PEAK[self.modality_]
