"""``PackedCodes``: several low-precision codes packed into one categorical symbol, then one-hot."""

from __future__ import annotations

from numbers import Integral

import numpy as np
import scipy.sparse as sp
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import _check_feature_names_in, check_is_fitted

from ._codes import CODE_CONSTRAINTS, CodeTransformer, bits_for, read_codes, read_encoded
from .onehot import check_one_hot_width, expand_columns, one_hot_rows, rows_to_codes, seen_columns, select_columns

__all__ = ["PackedCodes"]

#: Largest packed alphabet: symbols are computed and returned as 64-bit integers, and the codes
#: read back by ``inverse_transform`` must stay below ``2**62`` like any other codes.
MAX_PACKED_ALPHABET = 2**62


class PackedCodes(CodeTransformer):
    """Pack ``group_size`` neighbouring codes into one symbol ``y = x1 + (x2 << b) + (x3 << 2b) + ...``.

    Each code is first offset to ``x = v - low`` and takes ``b = bits_`` bits, so a group becomes
    one symbol of an alphabet of ``2 ** (group_size * b)``; the symbols are then one-hot encoded.
    This is the naive way to let a linear model see *joint* values of neighbouring codes
    (codebooks of one frame, channels of one pixel, adjacent positions): its table grows
    exponentially with ``group_size`` while the data to fill it does not, which the comparison
    in :func:`~walloc_features.evaluation.compare_quantized_strategies` measures.

    Parameters
    ----------
    group_size : int, default=2
        Codes per symbol. When the grouped axis is not a multiple of it, the last group is
        padded with the alphabet's lowest code.
    axis : int, default=1
        Axis of the ``(N, ...)`` codes to group along: 1 is the channel / codebook axis of
        ``(N, C, *grid)`` codes (or the feature axis of ``(N, D)`` rows), -1 the last grid axis
        (neighbouring positions or frames).
    alphabet : None, int or (int, int), default=None
        Inclusive code range (see :class:`OneHotCodes`); None learns it in ``fit``.
    handle_unknown : {"error", "clip"}, default="error"
    output : {"sparse", "dense", "codes"}, default="sparse"
        One-hot of the packed symbols as a CSR matrix or dense array, or the packed symbols
        themselves ``(N, *packed_shape_)`` (e.g. for
        :class:`~walloc_features.estimators.CodeEmbeddingClassifier`).
    columns : {"seen", "all"}, default="seen"
        One-hot columns for the (symbol position, symbol) pairs seen in ``fit`` only (symbols
        unseen in fit light no column), or for every symbol of the packed alphabet
        (``n_symbols * packed_alphabet_size_`` columns, mostly empty). Same predictions for an
        L2-regularised linear model; "all" keeps a data-independent layout. The seen columns are
        recorded by a fit with ``columns="seen"`` and a one-hot output: setting either afterwards
        needs a new fit (a NotFittedError says so).
    max_alphabet : int, default=65536
        Largest packed alphabet accepted; beyond it ``fit`` raises a ValueError rather than
        building a table too large to one-hot or to learn. At most ``2**62``: symbols are
        64-bit integers, and wider ones would be truncated.

    Attributes
    ----------
    alphabet_ : tuple of int
        Inclusive ``(low, high)`` of the codes' alphabet.
    alphabet_size_ : int
        ``high - low + 1``.
    bits_ : int
        ``b``, bits per code.
    packed_alphabet_size_ : int
        ``2 ** (group_size_ * bits_)``.
    packed_shape_ : tuple of int
        Shape of one sample of packed symbols.
    seen_columns_ : ndarray of int
        With ``columns="seen"``: the full-width one-hot column of each output column.
    sample_shape_ : tuple of int
    n_features_in_ : int
    feature_names_in_ : ndarray of str
        Column names of a DataFrame seen in ``fit`` (only then).
    axis_ : int
        The grouping axis within one sample (``axis`` resolved against the fitted shape).
    group_size_ : int
        ``group_size`` at fit: ``transform`` packs groups of this size until the next fit.

    Examples
    --------
    >>> import numpy as np
    >>> from walloc_features.quantized import PackedCodes
    >>> codes = np.array([[1, 2, 3, 0]])  # 2-bit codes
    >>> PackedCodes(alphabet=4, output="codes").fit_transform(codes)  # 1 + (2 << 2), 3 + (0 << 2)
    array([[9, 3]], dtype=uint8)
    """

    _parameter_constraints: dict = {
        **CODE_CONSTRAINTS,
        "group_size": [Interval(Integral, 1, None, closed="left")],
        "axis": [Integral],
        "output": [StrOptions({"sparse", "dense", "codes"})],
        "columns": [StrOptions({"seen", "all"})],
        "max_alphabet": [Interval(Integral, 2, MAX_PACKED_ALPHABET, closed="both")],
    }

    def __init__(
        self, group_size=2, *, axis=1, alphabet=None, handle_unknown="error", output="sparse", columns="seen",
        max_alphabet=2**16,
    ):  # fmt: skip
        self.group_size = group_size
        self.axis = axis
        self.alphabet = alphabet
        self.handle_unknown = handle_unknown
        self.output = output
        self.columns = columns
        self.max_alphabet = max_alphabet

    def fit(self, X, y=None):
        """Record shape and alphabet; refuse packed alphabets larger than ``max_alphabet``."""
        with self._fitting():
            codes = self._fit_codes(X)
            ndim = codes.ndim
            if not -ndim < self.axis < ndim or self.axis % ndim == 0:
                raise ValueError(
                    f"axis={self.axis} is not a sample axis of codes of shape {codes.shape} (use 1..{ndim - 1} or -1)"
                )
            bits = bits_for(self.alphabet_size_)
            packed_bits = self.group_size * bits
            if 2**packed_bits > self.max_alphabet:
                raise ValueError(
                    f"group_size={self.group_size} codes of {bits} bits (alphabet of {self.alphabet_size_}) pack into "
                    f"2**{packed_bits} symbols, more than max_alphabet={self.max_alphabet} can one-hot; use a smaller "
                    "group_size, codes of fewer bits, or HashedCodes for very large alphabets"
                )
            self.bits_ = bits
            self.group_size_ = self.group_size  # transform packs as fitted: the alphabet and columns follow it
            self.packed_alphabet_size_ = 2**packed_bits
            self.axis_ = self.axis % ndim - 1  # axis within one sample
            shape = list(self.sample_shape_)
            shape[self.axis_] = -(-shape[self.axis_] // self.group_size_)
            self.packed_shape_ = tuple(shape)
            if self.output != "codes":
                self._check_width()
            if self.columns == "seen" and self.output != "codes":
                self.seen_columns_ = np.unique(self._rows(self._pack(self._offsets(codes))).indices).astype(np.int64)
        return self

    def transform(self, X):
        """Codes -> one-hot of the packed symbols, or the symbols (``output="codes"``)."""
        symbols = self._pack(self._offsets(self._codes(X)))
        if self.output == "codes":
            return symbols
        self._check_width()  # again: output may have been set to a one-hot after a fit with output="codes"
        rows = self._rows(symbols)
        if self.columns == "seen":
            rows = select_columns(rows, seen_columns(self))
        return rows.toarray() if self.output == "dense" else rows

    def _check_width(self) -> None:
        """Refuse a one-hot of the packed symbols too wide for 64-bit column indices."""
        check_one_hot_width(int(np.prod(self.packed_shape_)), self.packed_alphabet_size_,
                            "use output='codes', a smaller group_size, or HashedCodes")  # fmt: skip

    def _rows(self, symbols: np.ndarray) -> sp.csr_matrix:
        """Full-width one-hot rows of packed symbols."""
        return one_hot_rows(symbols.reshape(len(symbols), -1), self.packed_alphabet_size_)

    def inverse_transform(self, X):
        """Packed symbols (or their one-hot) -> codes ``(N, *sample_shape_)``, padding dropped."""
        check_is_fitted(self)
        n_symbols = int(np.prod(self.packed_shape_))
        n_full = n_symbols * self.packed_alphabet_size_
        if self.output == "codes":
            symbols = read_codes(self, X)
            if symbols.shape[1:] != self.packed_shape_:
                raise ValueError(f"X has samples of shape {symbols.shape[1:]}, expected {self.packed_shape_}")
            if symbols.min() < 0 or symbols.max() >= self.packed_alphabet_size_:
                raise ValueError(f"packed symbols must lie in [0, {self.packed_alphabet_size_})")
        else:
            X = read_encoded(self, X)
            n_columns = len(seen_columns(self)) if self.columns == "seen" else n_full
            if X.ndim != 2 or X.shape[1] != n_columns:
                raise ValueError(f"X must have shape (N, {n_columns}), got {X.shape}")
            if self.columns == "seen":
                X = expand_columns(X, self.seen_columns_, n_full)
            symbols = rows_to_codes(X, n_symbols, self.packed_alphabet_size_).reshape(-1, *self.packed_shape_)
        offsets = self._unpack(symbols.astype(np.int64))
        if offsets.size and offsets.max() >= self.alphabet_size_:
            raise ValueError(f"X unpacks to codes beyond the alphabet's {self.alphabet_size_} symbols")
        return offsets + self.alphabet_[0]

    def get_feature_names_out(self, input_features=None):
        """``{symbol position}_{packed symbol}`` per one-hot column; ``{symbol position}`` for ``output="codes"``.

        A symbol position is named after the codes it packs, ``a+b`` for inputs named ``a`` and
        ``b`` (``input_features``, or the columns of a DataFrame seen in ``fit``); without input
        names it is ``s{index}``.
        """
        check_is_fitted(self)
        n_symbols = int(np.prod(self.packed_shape_))
        names = _check_feature_names_in(self, input_features)
        if input_features is None and not hasattr(self, "feature_names_in_"):
            positions = np.char.add("s", np.arange(n_symbols).astype(str))
        else:
            positions = np.asarray(["+".join(names[i] for i in group if i >= 0) for group in self._groups()])
        if self.output == "codes":
            return positions.astype(object)
        if self.columns == "seen":
            position, symbol = np.divmod(seen_columns(self), self.packed_alphabet_size_)
            return np.asarray([f"{positions[p]}_{v}" for p, v in zip(position, symbol, strict=True)], dtype=object)
        values = np.arange(self.packed_alphabet_size_).astype(str)
        return np.char.add(np.char.add(positions[:, None], "_"), values[None, :]).ravel().astype(object)

    # ----------------------------------------------------------------------------- packing --
    @property
    def _fitted_group_size(self) -> int:
        """``group_size_``, or ``group_size`` for models pickled before fit recorded it."""
        return getattr(self, "group_size_", self.group_size)

    def _groups(self) -> np.ndarray:
        """Flat code positions packed into each symbol, in output order: ``(n_symbols, group_size)``, -1 for padding."""
        g, axis = self._fitted_group_size, self.axis_ + 1
        moved = np.moveaxis(np.arange(self.n_features_in_).reshape(1, *self.sample_shape_), axis, -1)
        pad = -moved.shape[-1] % g
        moved = np.concatenate([moved, np.full((*moved.shape[:-1], pad), -1)], axis=-1)
        groups = moved.reshape(*moved.shape[:-1], -1, g)
        return np.moveaxis(groups, -2, axis).reshape(-1, g)

    def _pack(self, offsets: np.ndarray) -> np.ndarray:
        """``(N, *sample)`` offsets -> ``(N, *packed_shape_)`` symbols, C-contiguous.

        Built in the symbols' own (smallest) type, one group member at a time: memory is the output plus one
        member's offsets, where 64-bit groups and their shifted copy held 16x the output for 4-bit pairs.
        """
        g, axis = self._fitted_group_size, self.axis_ + 1
        dtype = np.min_scalar_type(self.packed_alphabet_size_ - 1)
        moved = np.moveaxis(offsets, axis, -1)
        symbols = np.zeros((*moved.shape[:-1], -(-moved.shape[-1] // g)), dtype=dtype)  # padding: offset 0
        for k in range(g):
            member = moved[..., k::g]  # the k-th code of every group (the last, padded group may lack it)
            part = symbols[..., : member.shape[-1]]
            part |= member.astype(dtype) << dtype.type(k * self.bits_)
        return np.ascontiguousarray(np.moveaxis(symbols, -1, axis))

    def _unpack(self, symbols: np.ndarray) -> np.ndarray:
        """Inverse of :meth:`_pack`: ``(N, *packed_shape_)`` -> ``(N, *sample_shape_)`` offsets."""
        g, axis = self._fitted_group_size, self.axis_ + 1
        moved = np.moveaxis(symbols, axis, -1)
        shifts = np.arange(g, dtype=np.int64) * self.bits_
        groups = (moved[..., None] >> shifts) & ((1 << self.bits_) - 1)
        flat = groups.reshape(*moved.shape[:-1], -1)[..., : self.sample_shape_[self.axis_]]
        return np.moveaxis(flat, -1, axis)
