"""``Dequantize``: integer codes back to numbers, the usual way to feed codes to a model."""

from __future__ import annotations

from numbers import Real

import numpy as np
from sklearn.utils._param_validation import StrOptions
from sklearn.utils.validation import check_is_fitted

from ._codes import CodeTransformer, read_codes, read_encoded

__all__ = ["Dequantize"]


class Dequantize(CodeTransformer):
    """Codes to float32 values ``code * step``: the baseline every other strategy is compared with.

    For WaLLoC codes this gives the companded latents (uniformly distributed); decoding them
    to the Gaussian latents is the codec's job (``inverse_transform`` of the codes transformer).

    Parameters
    ----------
    step : float or array-like, default=1.0
        Quantization step: a scalar, or an array broadcastable to one sample's shape (e.g.
        ``(C, 1, 1)`` per channel, or JPEG's per-coefficient table).
    output : {"flat", "tensor"}, default="flat"
        ``"flat"``: rows ``(N, D)`` for scikit-learn models; ``"tensor"``: the input's own
        layout (``(N, C, *grid)`` stays channel-first, for a torch / timm model).

    Attributes
    ----------
    sample_shape_ : tuple of int
        Shape of one sample of codes seen in ``fit``.
    n_features_in_ : int
    feature_names_in_ : ndarray of str
        Column names of a DataFrame seen in ``fit`` (only then); the flat output keeps them.
    step_ : ndarray of float32
        ``step`` broadcast to ``sample_shape_``.
    code_dtype_ : str
        Dtype of the codes seen in ``fit`` as integers: their own, or int64 for whole-valued floats.

    Examples
    --------
    >>> import numpy as np
    >>> from walloc_features.quantized import Dequantize
    >>> codes = np.array([[-2, 0, 3], [1, 1, -1]], dtype=np.int8)
    >>> Dequantize(step=0.5).fit_transform(codes)
    array([[-1. ,  0. ,  1.5],
           [ 0.5,  0.5, -0.5]], dtype=float32)
    """

    _uses_alphabet = False
    _parameter_constraints: dict = {"step": [Real, "array-like"], "output": [StrOptions({"flat", "tensor"})]}

    def __init__(self, step=1.0, *, output="flat"):
        self.step = step
        self.output = output

    def fit(self, X, y=None):
        """Record the sample shape and check ``step`` against it."""
        with self._fitting():
            codes = self._fit_codes(X)
            step = np.asarray(self.step, dtype=np.float64)
            try:
                step = np.broadcast_to(step, self.sample_shape_)
            except ValueError:
                raise ValueError(
                    f"step of shape {step.shape} does not broadcast to samples of shape {self.sample_shape_}"
                ) from None
            if not np.all(np.isfinite(step)) or np.any(step <= 0):
                raise ValueError("step must be finite and positive")
            self.code_dtype_ = codes.dtype.str
            self.step_ = step.astype(np.float32)
        return self

    def transform(self, X):
        """``codes * step_`` as float32 (rows, or the input's layout with ``output="tensor"``)."""
        codes = self._codes(X)
        if max(-int(codes.min()), int(codes.max())) > 2**24:
            raise ValueError("codes beyond +-2**24 have no exact float32 value; Dequantize would round them")
        values = np.multiply(codes, self.step_, dtype=np.float32)
        return values.reshape(len(values), -1) if self.output == "flat" else values

    def inverse_transform(self, X):
        """Values back to codes: ``round(X / step_)`` in the fitted codes' integer type."""
        check_is_fitted(self)
        X = read_encoded(self, X, dense=True).astype(np.float64, copy=False)
        if X.ndim == 2 and X.shape[1] == self.n_features_in_:
            X = X.reshape(len(X), *self.sample_shape_)
        if tuple(X.shape[1:]) != self.sample_shape_:
            raise ValueError(
                f"X has samples of shape {X.shape[1:]}, expected {self.sample_shape_} or ({self.n_features_in_},)"
            )
        values = read_codes(self, np.round(X / self.step_), input_name="X / step_")
        dtype = np.dtype(self.code_dtype_)
        info = np.iinfo(dtype)
        if values.min() < info.min or values.max() > info.max:
            raise ValueError(f"X / step_ leaves the range of the fitted codes' type {dtype}")
        return values.astype(dtype)
