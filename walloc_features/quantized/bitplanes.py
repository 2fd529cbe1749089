"""``BitPlanes``: each b-bit code as b binary features, the input of binary-network style models."""

from __future__ import annotations

import numpy as np
from sklearn.utils._param_validation import StrOptions
from sklearn.utils.validation import _check_feature_names_in, check_is_fitted

from ._codes import CODE_CONSTRAINTS, CodeTransformer, bits_for, read_encoded

__all__ = ["BitPlanes"]


class BitPlanes(CodeTransformer):
    """Codes as their binary digits: ``bits_ = max(1, ceil(log2 K))`` per code, most significant first.

    A code ``v`` is offset to ``v - low`` (so signed codes need no two's complement) and written
    in ``bits_`` binary digits. A linear model on bit planes weighs each bit separately: more
    expressive than the code's value (a slope), far smaller than its one-hot (a table).

    Parameters
    ----------
    alphabet : None, int or (int, int), default=None
        Inclusive code range (see :class:`OneHotCodes`); None learns it in ``fit``.
    handle_unknown : {"error", "clip"}, default="error"
        Codes outside the alphabet at transform time: raise, or clip to its ends.
    signed : bool, default=False
        Output ``-1`` / ``+1`` instead of ``0`` / ``1``.
    output : {"flat", "tensor"}, default="flat"
        ``"flat"``: ``(N, positions * bits_)``, column ``p * bits_ + j`` for bit ``j`` (0 = most
        significant) of position ``p``; ``"tensor"``: channel-first ``(N, C * bits_, *grid)`` for
        codes ``(N, C, *grid)``.

    Attributes
    ----------
    alphabet_ : tuple of int
    alphabet_size_ : int
    bits_ : int
        Binary digits per code.
    sample_shape_ : tuple of int
    n_features_in_ : int
    feature_names_in_ : ndarray of str
        Column names of a DataFrame seen in ``fit`` (only then).

    Examples
    --------
    >>> import numpy as np
    >>> from walloc_features.quantized import BitPlanes
    >>> codes = np.array([[-1, 2], [0, 1]])  # alphabet learned: [-1, 2], 2 bits
    >>> BitPlanes().fit_transform(codes)
    array([[0., 0., 1., 1.],
           [0., 1., 1., 0.]], dtype=float32)
    """

    _parameter_constraints: dict = {
        **CODE_CONSTRAINTS,
        "signed": ["boolean"],
        "output": [StrOptions({"flat", "tensor"})],
    }

    def __init__(self, *, alphabet=None, handle_unknown="error", signed=False, output="flat"):
        self.alphabet = alphabet
        self.handle_unknown = handle_unknown
        self.signed = signed
        self.output = output

    def fit(self, X, y=None):
        """Record the sample shape, the alphabet and the bits per code."""
        self._fit_codes(X)
        self.bits_ = bits_for(self.alphabet_size_)
        return self

    def transform(self, X):
        """Codes -> bit planes as float32 (``output`` decides the layout)."""
        offsets = self._offsets(self._codes(X))  # in their smallest unsigned type
        n, channels, grid = len(offsets), self.sample_shape_[0], self.sample_shape_[1:]
        # Each plane is written into the output where the layout puts it, so memory is the output plus one plane
        # in the offsets' type (64-bit planes, then a float copy and a transposed one, held 3.5x the output).
        if self.output == "flat":
            out = np.empty((*offsets.shape, self.bits_), dtype=np.float32)  # column p * bits_ + j
            planes = [out[..., j] for j in range(self.bits_)]
        else:
            out = np.empty((n, channels, self.bits_, *grid), dtype=np.float32)  # channel c * bits_ + j
            planes = [out[:, :, j] for j in range(self.bits_)]
        plane = np.empty_like(offsets)
        for j, shift in enumerate(range(self.bits_ - 1, -1, -1)):  # most significant first
            np.right_shift(offsets, shift, out=plane)
            np.bitwise_and(plane, 1, out=plane)
            planes[j][...] = plane
        if self.signed:
            out *= 2
            out -= 1
        return out.reshape(n, -1) if self.output == "flat" else out.reshape(n, channels * self.bits_, *grid)

    def inverse_transform(self, X):
        """Bit planes -> codes ``(N, *sample_shape_)``: each value is read as 1 when above 0 (signed) or 0.5."""
        check_is_fitted(self)
        X = read_encoded(self, X, dense=True)
        channels, grid = self.sample_shape_[0], self.sample_shape_[1:]
        if self.output == "flat":
            if X.ndim != 2 or X.shape[1] != self.n_features_in_ * self.bits_:
                raise ValueError(f"X must have shape (N, {self.n_features_in_ * self.bits_}), got {X.shape}")
            bits = X.reshape(len(X), *self.sample_shape_, self.bits_)
        else:
            expected = (channels * self.bits_, *grid)
            if X.shape[1:] != expected:
                raise ValueError(f"X has samples of shape {X.shape[1:]}, expected {expected}")
            bits = np.moveaxis(X.reshape(len(X), channels, self.bits_, *grid), 2, -1)
        ones = bits > (0.0 if self.signed else 0.5)
        weights = 2 ** np.arange(self.bits_ - 1, -1, -1, dtype=np.int64)
        offsets = ones.astype(np.int64) @ weights
        if offsets.size and offsets.max() >= self.alphabet_size_:
            raise ValueError(f"X holds bit patterns beyond the alphabet's {self.alphabet_size_} symbols")
        return offsets + self.alphabet_[0]

    def get_feature_names_out(self, input_features=None):
        """``{input name}_b{k}`` (bit of weight ``2**k``) for each column of the flat output (``x{position}_b{k}``)."""
        check_is_fitted(self)
        names = _check_feature_names_in(self, input_features)
        return np.asarray([f"{name}_b{k}" for name in names for k in range(self.bits_ - 1, -1, -1)], dtype=object)
