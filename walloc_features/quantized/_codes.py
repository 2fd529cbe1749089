"""What every quantized-input strategy shares: reading integer codes and knowing their alphabet.

Codes arrive as ``(N, D)`` rows or channel-first ``(N, C, *grid)`` arrays of integers (WaLLoC
with ``quantize=True``, JPEG coefficients, EnCodec / ResidualVQ codebook indices). The
*alphabet* is the inclusive integer range ``(low, high)`` a code may take: given by the user
(often the upstream transformer's ``code_range_``), or learned in ``fit`` as the smallest and
largest code seen. Codes outside it at transform time are handled by ``handle_unknown``.
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from numbers import Integral, Real

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils._param_validation import StrOptions
from sklearn.utils.validation import _check_feature_names_in, check_array, check_is_fitted, validate_data

from ..features._base import forget_fit
from ..features._signals import to_numpy

__all__ = ["CodeTransformer", "read_codes", "read_encoded", "resolve_alphabet", "CODE_CONSTRAINTS"]

#: Parameter constraints shared by the strategies that need an alphabet.
CODE_CONSTRAINTS = {
    "alphabet": [Integral, tuple, list, None],
    "handle_unknown": [StrOptions({"error", "clip"})],
}


def read_codes(estimator, X, *, input_name: str = "X") -> np.ndarray:
    """Validate integer codes: at least 2-D, non-empty, finite, integer-valued; integer dtype out.

    Floats holding whole numbers (pandas, torch float tensors) are accepted and converted, and
    numbers boxed as objects are read exactly (Python ints never pass through float64);
    anything else is refused with an error that names the problem, never rounded silently.
    """
    X = check_array(to_numpy(X, input_name), dtype=None, ensure_2d=False, allow_nd=True, input_name=input_name,
                    estimator=estimator)
    name = type(estimator).__name__
    if X.dtype == object:
        X = _object_codes(X, name, input_name)
    if X.ndim < 2:
        raise ValueError(f"{name} takes codes (N, D) or (N, C, *grid), got shape {X.shape}. Reshape your data.")
    if min(X.shape[1:]) == 0:
        raise ValueError(f"{input_name} has an empty axis: shape {X.shape}")
    if X.dtype.kind == "b":
        return X.astype(np.int8)
    if X.dtype.kind in "iu":
        if X.dtype == np.uint64 and X.size and X.max() >= 2**62:
            raise ValueError(f"{input_name} holds codes too large for 64-bit integer arithmetic (>= 2**62)")
        return X
    if X.dtype.kind != "f":
        raise TypeError(f"{name} takes integer codes, got {input_name} of dtype {X.dtype}")
    if not np.array_equal(X, np.round(X)):
        raise _non_integer(name, input_name, X[X != np.round(X)][0])
    if float(np.abs(X).max(initial=0)) >= 2**62:  # in float64: 2**62 overflows float16
        raise ValueError(f"{input_name} holds codes too large for 64-bit integers")
    return X.astype(np.int64)


def read_encoded(estimator, X, *, input_name: str = "X", dense: bool = False):
    """Validate what an ``inverse_transform`` decodes (one-hot, bits, dequantized values): real, finite numbers.

    At least one sample; sparse matrices stay sparse (``dense=True``: made dense, for the inverses that reshape
    their input), dense arrays come out in native byte order (float16 as float32), as the seen columns' scipy
    expansion takes them. NaN won the one-hot argmax and read as a 0 bit, and strings were parsed as numbers:
    each is refused instead.
    """
    X = check_array(to_numpy(X, input_name), accept_sparse=True, dtype="numeric", ensure_2d=False, allow_nd=True,
                    input_name=input_name, estimator=estimator)  # fmt: skip
    if hasattr(X, "tocoo"):
        if not dense:
            return X
        X = X.toarray()
    native = np.float32 if X.dtype == np.float16 else X.dtype.newbyteorder("=")  # what scipy.sparse takes
    return X.astype(native, copy=False)


def _non_integer(name: str, input_name: str, value) -> ValueError:
    return ValueError(
        f"{name} takes integer codes, but {input_name} holds non-integer values (e.g. {value!r}); "
        "use quantize=True upstream, or round explicitly"
    )


def _object_codes(X: np.ndarray, name: str, input_name: str) -> np.ndarray:
    """Numbers boxed as objects -> int64, exactly; strings and other objects are refused."""
    if not all(issubclass(kind, Integral) for kind in set(map(type, X.flat))):  # ints only: straight to the cast
        for value in X.flat:
            if isinstance(value, Integral):
                continue
            if not isinstance(value, Real):  # str, bytes, None, Decimal, ...: not read as numbers
                raise TypeError(
                    f"{name} takes integer codes, but {input_name} holds {type(value).__name__} objects "
                    f"(e.g. {value!r}): each argument must be an int or a whole real number, and a string is not "
                    "read as a number"
                )
            if not math.isfinite(value) or value != math.floor(value):
                raise _non_integer(name, input_name, value)
        X = np.frompyfunc(int, 1, 1)(X)  # whole floats as exact ints
    try:
        codes = X.astype(np.int64)  # one cast (a value-by-value loop was 25x slower)
    except OverflowError:  # beyond 64 bits
        codes = None
    if codes is None or (codes.size and max(-int(codes.min()), int(codes.max())) >= 2**62):  # np.abs(-2**63) < 0
        raise ValueError(f"{input_name} holds codes too large for 64-bit integers")
    return codes


def resolve_alphabet(alphabet, codes: np.ndarray | None, name: str) -> tuple[int, int]:
    """``alphabet`` (None, size K, or inclusive ``(low, high)``) -> ``(low, high)``.

    None learns the range from ``codes``; given ranges must contain every code of ``codes``.
    """
    if alphabet is None:
        return int(codes.min()), int(codes.max())
    if isinstance(alphabet, bool):  # an Integral to the parameter constraints, but no size
        raise ValueError(f"{name}: alphabet must be a size K or an inclusive range (low, high), got {alphabet!r}")
    if isinstance(alphabet, Integral):
        if alphabet < 1:
            raise ValueError(f"{name}: alphabet size must be >= 1, got {alphabet}")
        low, high = 0, int(alphabet) - 1
    else:
        if len(alphabet) != 2 or not all(isinstance(v, Integral) and not isinstance(v, bool) for v in alphabet):
            raise ValueError(f"{name}: alphabet must be a size K or an inclusive range (low, high), got {alphabet!r}")
        low, high = int(alphabet[0]), int(alphabet[1])
        if low > high:
            raise ValueError(f"{name}: alphabet (low, high) needs low <= high, got {alphabet!r}")
    if high - low >= 2**62:
        raise ValueError(f"{name}: alphabet [{low}, {high}] is too wide for 64-bit integer arithmetic")
    if codes is not None and (int(codes.min()) < low or int(codes.max()) > high):
        raise ValueError(
            f"{name}: the codes in fit span [{codes.min()}, {codes.max()}], outside alphabet [{low}, {high}]"
        )
    return low, high


class CodeTransformer(TransformerMixin, BaseEstimator):
    """Base class of the quantized-input strategies (not for direct use).

    ``fit`` records the per-sample shape (``sample_shape_``, ``n_features_in_``), the column
    names of a DataFrame (``feature_names_in_``, checked at transform time as scikit-learn
    does) and, for strategies with ``alphabet`` / ``handle_unknown`` parameters, ``alphabet_``
    and ``alphabet_size_``. Subclasses call :meth:`_fit_codes` in ``fit`` and :meth:`_codes` in
    ``transform``.
    """

    #: Whether the strategy needs a bounded alphabet (everything but hashing).
    _uses_alphabet = True

    def _fit_codes(self, X) -> np.ndarray:
        """Forget an earlier fit, read X, record its shape and alphabet; return the codes."""
        self._validate_params()
        forget_fit(self)
        validate_data(self, X, skip_check_array=True, ensure_2d=False)  # feature_names_in_ of a DataFrame
        codes = read_codes(self, X)
        if self._uses_alphabet:
            low, high = resolve_alphabet(self.alphabet, codes, type(self).__name__)
            self.alphabet_ = (low, high)
            self.alphabet_size_ = high - low + 1
        self.sample_shape_ = tuple(int(s) for s in codes.shape[1:])
        self.n_features_in_ = int(np.prod(self.sample_shape_))
        return codes

    @contextmanager
    def _fitting(self):
        """Wrap a ``fit`` body: a fit that fails half-way leaves an unfitted estimator."""
        try:
            yield
        except BaseException:
            forget_fit(self)
            raise

    def _codes(self, X, *, input_name: str = "X") -> np.ndarray:
        """Transform-time codes: fitted shape, inside the alphabet (or clipped to it)."""
        check_is_fitted(self)
        validate_data(self, X, reset=False, skip_check_array=True, ensure_2d=False)  # warns on other column names
        codes = read_codes(self, X, input_name=input_name)
        if codes.ndim == 2 and len(self.sample_shape_) == 1 and codes.shape[1] != self.n_features_in_:
            raise ValueError(
                f"X has {codes.shape[1]} features, but {type(self).__name__} is expecting {self.n_features_in_} "
                "features as input"
            )
        if tuple(codes.shape[1:]) != self.sample_shape_:
            raise ValueError(
                f"{input_name} has samples of shape {tuple(codes.shape[1:])}, but {type(self).__name__} was fitted "
                f"on {self.sample_shape_}"
            )
        if self._uses_alphabet:
            codes = check_alphabet(codes, self.alphabet_, self.handle_unknown, type(self).__name__)
        return codes

    def _offsets(self, codes: np.ndarray) -> np.ndarray:
        """Codes as ``0 .. alphabet_size_ - 1`` in the smallest unsigned type that holds them.

        numpy subtracts in 64 bits one buffer at a time, so no 64-bit copy of the codes is made (8x int8 codes).
        """
        out = np.empty(codes.shape, dtype=np.min_scalar_type(self.alphabet_size_ - 1))
        return np.subtract(codes, self.alphabet_[0], out=out, dtype=np.int64, casting="unsafe")

    def get_feature_names_out(self, input_features=None):
        """One name per flat code position (strategies with more outputs override).

        The names are ``input_features``, else ``feature_names_in_`` (fitted on a DataFrame), else
        ``x0, x1, ...``, as scikit-learn's one-to-one transformers name their output.
        """
        check_is_fitted(self)
        return _check_feature_names_in(self, input_features)

    def __sklearn_is_fitted__(self):
        return hasattr(self, "sample_shape_")

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.three_d_array = True
        tags.transformer_tags.preserves_dtype = []
        return tags


def check_alphabet(codes: np.ndarray, alphabet: tuple[int, int], handle_unknown: str, name: str) -> np.ndarray:
    """Refuse (``"error"``), clip (``"clip"``) or pass on (``"ignore"``) codes outside ``alphabet``."""
    if handle_unknown == "ignore":
        return codes
    low, high = alphabet
    lo, hi = int(codes.min()), int(codes.max())
    if lo >= low and hi <= high:
        return codes
    if handle_unknown == "error":
        raise ValueError(
            f"{name}: codes in [{lo}, {hi}] fall outside the fitted alphabet [{low}, {high}]; pass "
            "handle_unknown='clip' to map them to the nearest end, or a wider alphabet"
        )
    return np.clip(codes.astype(np.int64), low, high)


def bits_for(size: int) -> int:
    """Bits that index an alphabet of ``size`` symbols (at least 1)."""
    return max(1, int(size - 1).bit_length())
