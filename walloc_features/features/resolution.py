"""``ResolutionReducer``: the baseline every compressed-learning result is measured against."""

from __future__ import annotations

import itertools
import math
from fractions import Fraction
from numbers import Integral, Real

import numpy as np
import torch
import torch.nn.functional as F
from scipy.signal import resample_poly
from sklearn.utils._param_validation import Interval
from sklearn.utils.validation import check_is_fitted

from ._base import SIGNAL_CONSTRAINTS, SignalTransformer, fill_rows

__all__ = ["ResolutionReducer"]

#: Integer containers of quantized output: 8-bit pixels, 16-bit PCM on the package's scale (x / 2**15, as
#: int16 input is read): (dtype, scale, bits, lowest, highest code).
_CODES = {"image": (np.uint8, 255.0, 8, 0, 255), "audio": (np.int16, 32768.0, 16, -32768, 32767)}


class ResolutionReducer(SignalTransformer):
    """Fewer pixels or samples: anti-aliased downsampling to a given reduction.

    Images are resized by ``sqrt(reduction)`` per axis with anti-aliased bicubic interpolation
    (``torch.nn.functional.interpolate(..., antialias=True)``); audio is resampled by
    ``1 / reduction`` with a polyphase filter (``scipy.signal.resample_poly``).
    ``inverse_transform`` resamples back (bicubic / polyphase), so its PSNR can be compared with
    a codec's.

    Parameters
    ----------
    reduction : float, default=16
        Input samples per output sample. Ignored when ``size`` is given. Each axis shrinks by
        ``reduction ** (1 / ndim)``, rounded up or down, whichever combination comes closest to
        ``reduction`` (a warning says when that is more than 10% away).
    size : int or tuple of int, default=None
        Explicit output size ``(h, w)`` (images) or ``t`` (audio).
    output : {"flat", "tensor"}, default="flat"
        ``(N, D)`` rows, or ``(N, C, h, w)`` / ``(N, C, t)``.
    quantize : bool, default=False
        Return stored-format integers: uint8 pixels (images) or int16 PCM (audio).
    modality : {"auto", "image", "audio"}, default="auto"
        As for :class:`~walloc_features.WaLLoCTransformer`.
    input_shape : tuple of int, default=None
        Per-sample shape of flat input.
    batch_size : int, default=64
        Samples resampled at a time.
    device : str, default="cpu"
        Torch device for image resizing.
    verbose : bool, default=False
        Progress bars.

    Attributes
    ----------
    output_size_ : tuple
        ``(h, w)`` or ``(t,)``.
    latent_shape_ : tuple
        Per-sample output shape ``(C, *output_size_)``.
    reduction_ : float
        Achieved reduction.
    bits_per_code_ : int
        8 (images) or 16 (audio) for quantized output.
    code_range_ : tuple of int
        ``(0, 255)`` pixels or ``(-32768, 32767)`` PCM: what ``quantize=True`` emits.
    input_range_ : tuple of float
        Lowest and highest sample of fit input read as stored (floats, bool, int64; absent after a fit
        on uint8 / int16 and the other integers divided by their full scale): after a fit on the
        [0, 1] image / [-1, 1] audio scale, such samples far off it (pixels on 0-255) are refused.
    n_features_in_, modality_, input_shape_, input_dtype_, layout_
        How ``fit`` read the input, as in :class:`WaLLoCTransformer`.

    Examples
    --------
    >>> import numpy as np
    >>> from walloc_features.features import ResolutionReducer
    >>> X = np.random.default_rng(0).integers(0, 256, (4, 3, 64, 64), dtype=np.uint8)
    >>> reducer = ResolutionReducer(reduction=16, output="tensor").fit(X)
    >>> reducer.transform(X).shape, reducer.reduction_
    ((4, 3, 16, 16), 16.0)
    >>> reducer.inverse_transform(reducer.transform(X)).shape
    (4, 3, 64, 64)
    """

    _off_scale_consequence = "its quantized codes saturate, and inverse_transform clips reconstructions to {scale}"
    _parameter_constraints: dict = {
        **SIGNAL_CONSTRAINTS,
        "reduction": [Interval(Real, 1, None, closed="left")],
        "size": [Interval(Integral, 1, None, closed="left"), tuple, list, None],
        "quantize": ["boolean"],
    }

    def __init__(
        self, reduction=16, *, size=None, output="flat", quantize=False, modality="auto", input_shape=None,
        batch_size=64, device="cpu", verbose=False,
    ):  # fmt: skip
        self.reduction = reduction
        self.size = size
        self.output = output
        self.quantize = quantize
        self.modality = modality
        self.input_shape = input_shape
        self.batch_size = batch_size
        self.device = device
        self.verbose = verbose

    def fit(self, X, y=None):
        """Record the input layout and derive the output size (``y`` is ignored)."""
        self._validate_params()
        X, layout = self._read_fit(X, checked_by_batches=True)
        sample_range = self._sample_range(X, layout.modality)  # (the batches' NaN check included)
        self._torch_device()
        if self.size is not None:
            size = (self.size,) if np.isscalar(self.size) else tuple(self.size)
            if len(size) != layout.ndim or not all(
                isinstance(s, Integral) and not isinstance(s, (bool, np.bool_)) and s >= 1 for s in size
            ):
                raise ValueError(
                    f"size must be {layout.ndim} positive integer(s) for {layout.modality}, got {self.size!r}"
                )
        else:
            size = _closest_size(layout.spatial, self.reduction)
        size = tuple(int(s) for s in size)  # (numpy integers: JSON-able, printed plainly)
        if any(s > n for s, n in zip(size, layout.spatial, strict=True)):
            raise ValueError(f"size {size} is larger than the input {layout.spatial}: this reducer only downsamples")
        self.output_size_ = size
        self.bits_per_code_ = _CODES[layout.modality][2]
        self._set_fitted(layout, X.dtype, (layout.channels, *size))
        if sample_range is not None:  # samples read as stored: after a fit on the scale, transform refuses far off it
            self.input_range_ = sample_range
        if self.size is None:
            self._warn_if_reduction_missed(self.reduction, f" (output size {size})")
        return self

    @property
    def code_range_(self) -> tuple[int, int]:
        """Inclusive range of the values ``quantize=True`` emits: ``(0, 255)`` pixels, ``(-32768, 32767)`` PCM."""
        check_is_fitted(self)
        return _CODES[self.modality_][3:]

    def transform(self, X):
        """Downsample ``X``; see the class docstring for shapes and dtypes."""
        X, layout = self._read(X, batched=True)
        size = self.output_size_ if layout.spatial == self.layout_.spatial else self._scaled_size(layout.spatial)

        def batches():
            for start, batch in self._iter_batches(X, self._torch_device(), desc="resample"):
                z = self._resample(batch, size)
                if self.quantize:
                    dtype, scale, _, low, high = _CODES[self.modality_]
                    z = np.clip(np.round(z * scale), low, high).astype(dtype)
                yield start, z

        return self._format_output(fill_rows(len(X), batches()))

    def inverse_transform(self, X, output_size=None):
        """Upsample back to the fitted size (or to ``output_size``, any size), clipped to the valid range.

        Latents of another size (tensor mode) are upsampled by the fitted ratio, each axis rounded: that can
        differ from the size they were encoded from by a few samples (64x64 fitted, 50x70 encoded to 12x18,
        back to 48x72), so pass that size as ``output_size`` to get it exactly. Integer arrays are read as
        the stored-format codes of ``quantize=True`` (uint8 pixels, int16 PCM) whatever ``quantize`` is now,
        as WaLLoC and DCT decode their codes either way (read as [0, 1] floats, they decoded to white).
        """
        Z = self._read_latents(X)
        device = self._torch_device()  # images are resized there, as in transform (audio: scipy, on the CPU)
        size = self._output_size(Z.shape[2:], output_size) or tuple(
            round(s * n / m) for s, n, m in zip(Z.shape[2:], self.layout_.spatial, self.output_size_, strict=True)
        )

        def batches():  # one batch converted at a time, written into the output: memory holds it once
            for start in range(0, len(Z), self.batch_size):
                part = np.asarray(Z[start : start + self.batch_size])
                if self.quantize or part.dtype.kind in "iu":  # stored-format integers, whatever dtype they travel in
                    if not np.array_equal(part, np.round(part)):
                        raise ValueError("quantize=True: expected integer pixels/PCM values, got fractions")
                    part = part.astype(np.float32) / _CODES[self.modality_][1]
                part = torch.from_numpy(np.array(part, dtype=np.float32))
                yield start, self._resample(part.to(device) if len(size) == 2 else part, size)

        return self._restore(fill_rows(len(Z), batches()))

    def _uncounted_flops_per_sample(self) -> float:
        """Resampling FLOPs torch's counter misses (interpolation; scipy's polyphase filter), per sample.

        Images: separable bicubic, 4 taps widened by the downscale factor when antialiasing, one
        pass per axis. Audio: ``resample_poly``'s FIR (``20 * max(up, down) + 1`` taps), ``taps / up``
        multiply-adds per output sample. 2 FLOPs per multiply-add.
        """
        check_is_fitted(self)
        channels, spatial, out = self.layout_.channels, self.layout_.spatial, self.output_size_
        if len(spatial) == 2:
            (height, width), (h, w) = spatial, out
            taps_w, taps_h = 4 * max(1.0, width / w), 4 * max(1.0, height / h)
            return 2.0 * channels * (taps_w * height * w + taps_h * h * w)
        ratio = _audio_ratio(spatial[0], out[0])
        taps = 20 * max(ratio.numerator, ratio.denominator) + 1
        return 2.0 * channels * taps / ratio.numerator * out[0]

    # ----------------------------------------------------------------------------- helpers --
    def _scaled_size(self, spatial) -> tuple:
        """Output size for another input size, at the fitted ratio (tensor mode)."""
        ratios = zip(spatial, self.output_size_, self.layout_.spatial, strict=True)
        return tuple(max(1, round(s * o / f)) for s, o, f in ratios)

    def _resample(self, batch: torch.Tensor, size: tuple) -> np.ndarray:
        """Resize one float batch ``(n, C, *spatial)`` to ``size``."""
        if len(size) == 2:
            down = size[0] < batch.shape[2] or size[1] < batch.shape[3]
            with torch.no_grad():
                out = F.interpolate(batch, size=size, mode="bicubic", align_corners=False, antialias=down)
            return out.cpu().numpy()
        x = batch.cpu().numpy().astype(np.float64)
        ratio = _audio_ratio(x.shape[-1], size[0])
        # padtype="line": beyond its ends the signal continues its trend (a constant stays constant, as images'
        # edges do), not zeros, which halved the first code of a clip that does not start at 0. One sample has no
        # trend (scipy's line divides by length - 1: NaN): it continues as itself
        pad = "line" if x.shape[-1] > 1 else "edge"
        y = resample_poly(x, ratio.numerator, ratio.denominator, axis=-1, padtype=pad)
        if y.shape[-1] < size[0]:  # resample_poly rounds the length up or down
            y = np.pad(y, [(0, 0)] * (y.ndim - 1) + [(0, size[0] - y.shape[-1])], mode="edge")
        return y[..., : size[0]].astype(np.float32)


def _audio_ratio(length: int, size: int) -> Fraction:
    """``size / length`` as resample_poly's up / down: the shorter over the longer, its denominator limited (to
    keep the filter short) only as far as the shorter signal then drifts by at most half a sample at its end.

    Limited the same way in both directions, the inverse uses the exact reciprocal of the forward ratio
    (limiting 2756 / 44100 to 1 / 16 one way and keeping 44100 / 2756 the other stretched reconstructions in
    time: 4 samples late after 1 s). A fixed limit of 1000 turned 1 / 1600 into 1 / 1000 (10 outputs that
    covered the first 62% of the clip) and 1 / 4000 into 0.
    """
    short, long = sorted((length, size))
    exact, limit = Fraction(short, long), 1000
    while True:  # ends: from limit >= long on, the fraction is exact
        ratio = exact.limit_denominator(limit)
        if ratio > 0 and abs(ratio / exact - 1) * short <= 0.5:
            return ratio if size <= length else 1 / ratio
        limit *= 2


def _closest_size(spatial: tuple, reduction: float) -> tuple:
    """Output size near ``spatial / reduction**(1/ndim)`` per axis whose reduction is closest."""
    factor = reduction ** (1 / len(spatial))
    options = [(max(1, math.floor(s / factor)), max(1, math.ceil(s / factor))) for s in spatial]
    candidates = itertools.product(*options)
    total = float(np.prod(spatial))
    return min(candidates, key=lambda size: abs(math.log(total / np.prod(size) / reduction)))
