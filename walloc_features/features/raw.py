"""``RawSignal``: the uncompressed baseline, samples as features under the same conventions."""

from __future__ import annotations

import numpy as np
import torch

from ._base import SIGNAL_CONSTRAINTS, SignalTransformer, check_float32_range
from ._signals import input_scale

__all__ = ["RawSignal"]


class RawSignal(SignalTransformer):
    """Pixels or audio samples as features: what every compressed representation is compared with.

    It reads input exactly like the codecs (uint8 pixels / 255, int16 PCM / 32768, channel-first
    layouts, ``input_shape`` for flat rows) and returns float32 samples on the [0, 1] image /
    [-1, 1] audio scale, so ``Pipeline([RawSignal(), clf])`` is the no-compression row of a
    benchmark. ``reduction_`` is 1.

    Parameters
    ----------
    output : {"flat", "tensor"}, default="flat"
        ``(N, C * H * W)`` rows, or channel-first ``(N, C, H, W)`` / ``(N, C, T)`` arrays.
    modality : {"auto", "image", "audio"}, default="auto"
    input_shape : tuple of int, default=None
        Per-sample shape of flat ``(N, D)`` input.
    batch_size : int, default=256
        Samples read, checked and converted at a time (a memmap's or an HDF5 dataset's batches).
    device : str, default="cpu"
        Unused: samples stay numpy arrays. Checked as the other transformers check it ("cpu",
        "cuda", "cuda:N"), so a pipeline's settings fail alike on every step.
    verbose : bool, default=False
        Show a progress bar over the batches.

    Attributes
    ----------
    latent_shape_ : tuple of int
        ``(C, *spatial)``.
    reduction_ : float
        1.0.
    bits_per_code_ : int
        Bits per stored input sample: 1 (bool), 8 (uint8 pixels), 16 (int16 PCM), 32 (float32), ...
    n_features_in_, modality_, input_shape_, input_dtype_, layout_
        How ``fit`` read the input, as in :class:`WaLLoCTransformer`.

    Examples
    --------
    >>> from walloc_features.datasets import load_mnist
    >>> from walloc_features.features import RawSignal
    >>> X, _ = load_mnist()
    >>> raw = RawSignal().fit(X[:10])
    >>> raw.transform(X[:10]).shape, raw.reduction_, raw.bits_per_code_
    ((10, 784), 1.0, 8)
    """

    _parameter_constraints: dict = dict(SIGNAL_CONSTRAINTS)

    def __init__(
        self, *, output="flat", modality="auto", input_shape=None, batch_size=256, device="cpu", verbose=False
    ):
        self.output = output
        self.modality = modality
        self.input_shape = input_shape
        self.batch_size = batch_size
        self.device = device
        self.verbose = verbose

    def fit(self, X, y=None):
        """Record the input layout (nothing is learned)."""
        self._validate_params()
        self._torch_device()  # refused as by the other transformers ("mps" passed here alone)
        stored = getattr(X, "dtype", None)  # bools, and tensors' float16/bfloat16, are read as float32: ask before
        is_bool = stored == np.bool_ or str(stored) == "torch.bool"
        X, layout = self._read_fit(X)
        itemsize = stored.itemsize if isinstance(stored, torch.dtype) else X.dtype.itemsize
        self.bits_per_code_ = 1 if is_bool else 8 * itemsize
        self._set_fitted(layout, X.dtype, layout.sample_shape)
        return self

    def transform(self, X):
        """Samples as float32 on the signal scale (see the class docstring for shapes)."""
        X, _ = self._read(X, batched=True)
        scale = np.float32(input_scale(X.dtype))
        samples = np.empty(X.shape, dtype=np.float32)
        for start, batch in self._stored_batches(X, "raw"):  # a memmap is read, checked and released in batches
            with np.errstate(over="ignore"):  # (refused just below)
                np.multiply(batch, scale, out=samples[start : start + len(batch)], dtype=np.float32)
            if X.dtype.itemsize > 4 and X.dtype.kind == "f":
                check_float32_range(samples[start : start + len(batch)], start)
        return self._format_output(samples)

    def inverse_transform(self, X, output_size=None):
        """Features back to signals in the fit input's layout (clipped to the valid range).

        ``output_size`` crops them, as the codecs' ``inverse_transform`` crops reconstructions (at most
        the size of the samples given).
        """
        Z = self._read_latents(X)
        size = self._output_size(Z.shape[2:], output_size, limit=Z.shape[2:])
        if size is not None:
            Z = Z[(..., *[slice(0, n) for n in size])]
        return self._restore(np.array(Z, dtype=np.float32))
