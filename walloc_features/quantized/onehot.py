"""``OneHotCodes``: one indicator per (code position, symbol), sparse for linear models."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from sklearn.utils._param_validation import StrOptions
from sklearn.exceptions import NotFittedError
from sklearn.utils.validation import _check_feature_names_in, check_is_fitted

from ._codes import CODE_CONSTRAINTS, CodeTransformer, read_encoded

__all__ = ["OneHotCodes", "one_hot_rows", "rows_to_codes", "select_columns", "expand_columns", "seen_columns"]


class OneHotCodes(CodeTransformer):
    """One-hot encoding of every code position over the alphabet ``[low, high]``.

    Position ``p`` holding code ``v`` lights column ``p * K + (v - low)``, ``K = high - low + 1``.
    The sparse output stores one entry per code (``N x positions`` non-zeros, whatever the
    alphabet size), so a linear model learns one weight per (position, symbol): a lookup table
    rather than a slope, which is what categorical codes (codebook indices) need.

    Parameters
    ----------
    alphabet : None, int or (int, int), default=None
        Inclusive code range. None learns ``(min, max)`` of the codes seen in ``fit``; an int
        ``K`` means ``[0, K)``; pass the upstream transformer's ``code_range_`` to cover every
        code it can emit.
    handle_unknown : {"error", "ignore", "clip"}, default="error"
        Codes outside the alphabet at transform time: raise a ValueError; give the position
        no active column (an all-zero block, as scikit-learn's ``OneHotEncoder``); or clip
        them to the nearest end of the alphabet.
    output : {"sparse", "dense", "tensor"}, default="sparse"
        ``"sparse"``: a CSR matrix ``(N, positions * K)``; ``"dense"``: the same as an array;
        ``"tensor"``: a dense channel-first float32 array ``(N, C * K, *grid)`` for codes
        ``(N, C, *grid)`` (channel ``c * K + k`` lit where channel ``c`` holds ``low + k``), the
        input of a torch / timm model. Dense outputs take ``N x positions x K x 4`` bytes.
    columns : {"all", "seen"}, default="all"
        Flat outputs: a column for every (position, symbol) of the alphabet, or only for those
        seen in ``fit`` (``seen_columns_``), as scikit-learn's ``OneHotEncoder`` learns its
        categories; symbols unseen in fit then light no column. Same predictions for an
        L2-regularised linear model, far fewer columns for large alphabets. The seen columns are
        recorded by a fit with ``columns="seen"``: setting it afterwards needs a new fit (a
        NotFittedError says so).

    Attributes
    ----------
    alphabet_ : tuple of int
        ``(low, high)``.
    alphabet_size_ : int
        ``K``.
    seen_columns_ : ndarray of int
        With ``columns="seen"``: the full-width column of each output column.
    sample_shape_ : tuple of int
    n_features_in_ : int
    feature_names_in_ : ndarray of str
        Column names of a DataFrame seen in ``fit`` (only then).

    Examples
    --------
    >>> import numpy as np
    >>> from walloc_features.quantized import OneHotCodes
    >>> codes = np.array([[0, 2], [1, 0]])
    >>> OneHotCodes(alphabet=3).fit_transform(codes).toarray()
    array([[1., 0., 0., 0., 0., 1.],
           [0., 1., 0., 1., 0., 0.]], dtype=float32)
    """

    _parameter_constraints: dict = {
        **CODE_CONSTRAINTS,
        "handle_unknown": [StrOptions({"error", "ignore", "clip"})],
        "output": [StrOptions({"sparse", "dense", "tensor"})],
        "columns": [StrOptions({"all", "seen"})],
    }

    def __init__(self, *, alphabet=None, handle_unknown="error", output="sparse", columns="all"):
        self.alphabet = alphabet
        self.handle_unknown = handle_unknown
        self.output = output
        self.columns = columns

    def fit(self, X, y=None):
        """Record the sample shape, the alphabet and (``columns="seen"``) the columns lit."""
        with self._fitting():
            codes = self._fit_codes(X)
            check_one_hot_width(self.n_features_in_, self.alphabet_size_, "use a smaller alphabet, or HashedCodes")
            if self.columns == "seen":
                if self.output == "tensor":
                    raise ValueError('columns="seen" selects flat columns; output="tensor" keeps every symbol')
                self.seen_columns_ = np.unique(self._rows(codes).indices).astype(np.int64)
        return self

    def _rows(self, codes: np.ndarray) -> sp.csr_matrix:
        """Full-width one-hot rows of codes."""
        return one_hot_rows(codes.reshape(len(codes), -1), self.alphabet_size_, self.alphabet_[0])

    @property
    def _n_full_columns(self) -> int:
        return self.n_features_in_ * self.alphabet_size_

    def transform(self, X):
        """Codes -> one-hot (CSR matrix, dense rows, or channel-first tensor; see ``output``)."""
        codes = self._codes(X)  # with handle_unknown="ignore", unknown codes pass and light no column
        if self.output == "tensor":
            return one_hot_tensor(codes, self.alphabet_size_, self.alphabet_[0])
        rows = self._rows(codes)
        if self.columns == "seen":
            rows = select_columns(rows, seen_columns(self))
        return rows.toarray() if self.output == "dense" else rows

    def inverse_transform(self, X):
        """One-hot (any of the outputs) -> codes ``(N, *sample_shape_)``; the largest entry of a block wins."""
        check_is_fitted(self)
        K, low = self.alphabet_size_, self.alphabet_[0]
        X = read_encoded(self, X)
        if self.output == "tensor":  # (every symbol has its channel: no seen columns involved)
            expected = (self.sample_shape_[0] * K, *self.sample_shape_[1:])
            if X.shape[1:] != expected:
                raise ValueError(f"X has samples of shape {X.shape[1:]}, expected {expected}")
            blocks = X.reshape(len(X), self.sample_shape_[0], K, *self.sample_shape_[1:])
            if np.any(blocks.max(axis=2) <= 0):
                raise ValueError("X has code positions with no active symbol; they have no code to invert to")
            return (blocks.argmax(axis=2) + low).reshape(len(X), *self.sample_shape_)
        n_flat = len(seen_columns(self)) if self.columns == "seen" else self._n_full_columns
        if X.ndim != 2 or X.shape[1] != n_flat:
            raise ValueError(f"X must have shape (N, {n_flat}), got {X.shape}")
        if self.columns == "seen":
            X = expand_columns(X, self.seen_columns_, self._n_full_columns)
        offsets = rows_to_codes(X, self.n_features_in_, K)
        return (offsets + low).reshape(len(offsets), *self.sample_shape_)

    def get_feature_names_out(self, input_features=None):
        """``{input name}_{code}`` for each column of the flat outputs (``x{position}_{code}`` without names)."""
        check_is_fitted(self)
        low, high = self.alphabet_
        positions = _check_feature_names_in(self, input_features).astype(str)
        if self.columns == "seen":  # only the seen columns: a huge alphabet costs nothing here either
            position, offset = np.divmod(seen_columns(self), self.alphabet_size_)
            names = [f"{positions[p]}_{low + v}" for p, v in zip(position, offset, strict=True)]
            return np.asarray(names, dtype=object)
        values = np.arange(low, high + 1).astype(str)
        return np.char.add(np.char.add(positions[:, None], "_"), values[None, :]).ravel().astype(object)


def seen_columns(transformer) -> np.ndarray:
    """``seen_columns_`` for ``columns="seen"``; a clear error when that was set after a fit that recorded none."""
    check_is_fitted(transformer)
    if not hasattr(transformer, "seen_columns_"):
        raise NotFittedError(
            f'{type(transformer).__name__} has no seen columns: columns="seen" was set after a fit that did not '
            "record them (a fit with columns=\"all\", or an output without one-hot columns); fit it again"
        )
    return transformer.seen_columns_


def check_one_hot_width(n_positions: int, size: int, advice: str) -> None:
    """Refuse a one-hot layout of ``2**63`` columns or more: scipy's index arrays would overflow instead."""
    n_columns = int(n_positions) * int(size)
    if n_columns >= 2**63:
        raise ValueError(
            f"the one-hot of {n_positions} positions of {size} values has {n_columns} columns, more than 64-bit "
            f"column indices hold; {advice}"
        )


def one_hot_rows(codes: np.ndarray, size: int, low: int = 0) -> sp.csr_matrix:
    """``(N, P)`` codes of the alphabet ``[low, low + size)`` -> CSR ``(N, P * size)`` float32; codes outside it
    light nothing.

    Memory is one float32 value and one index per known code: the column indices are computed in place, in 32
    bits where they fit (a 64-bit copy of the codes is only made when some fall outside the alphabet).
    """
    n, p = codes.shape
    n_columns = p * size
    index_dtype = np.int32 if n_columns < 2**31 and n * p < 2**31 else np.int64
    if not codes.size or (int(codes.min()) >= low and int(codes.max()) < low + size):
        indices = np.empty((n, p), dtype=index_dtype)
        np.subtract(codes, low, out=indices, dtype=np.int64, casting="unsafe")  # in 64 bits, a buffer at a time
        indices += np.arange(0, n_columns, size, dtype=index_dtype)  # + position * size
        indices = indices.reshape(-1)
        indptr = np.arange(0, n * p + 1, p, dtype=index_dtype)
    else:
        offsets = codes.astype(np.int64) - low
        known = (offsets >= 0) & (offsets < size)
        columns = offsets + (np.arange(p, dtype=np.int64) * size)[None, :]
        indices = columns[known].astype(index_dtype)
        indptr = np.zeros(n + 1, dtype=index_dtype)
        np.cumsum(known.sum(axis=1), out=indptr[1:])
    data = np.ones(len(indices), dtype=np.float32)
    return sp.csr_matrix((data, indices, indptr), shape=(n, n_columns))


#: Codes one-hot encoded into a tensor at a time (their 64-bit offsets and masks: a few MB).
_TENSOR_CHUNK = 2**18


def one_hot_tensor(codes: np.ndarray, size: int, low: int = 0) -> np.ndarray:
    """``(N, C, *grid)`` codes of ``[low, low + size)`` -> dense ``(N, C * size, *grid)`` float32; codes outside
    light nothing. Samples are written a chunk at a time: 64-bit offsets of every code held 1.3x the output."""
    n, c, *grid = codes.shape
    out = np.zeros((n, c, size, *grid), dtype=np.float32)
    step = max(1, _TENSOR_CHUNK // max(1, codes[0].size))
    for start in range(0, n, step):
        offsets = codes[start : start + step].astype(np.int64) - low
        known = (offsets >= 0) & (offsets < size)
        np.put_along_axis(out[start : start + step], np.where(known, offsets, 0)[:, :, None],
                          known[:, :, None].astype(np.float32), axis=2)  # fmt: skip
    return out.reshape(n, c * size, *grid)


#: Entries renumbered at a time by :func:`select_columns` (its 64-bit positions: 0.5 MB).
_SELECT_CHUNK = 2**16


def select_columns(rows: sp.csr_matrix, columns: np.ndarray) -> sp.csr_matrix:
    """Keep the sorted ``columns`` of ``rows`` (renumbered in order); entries elsewhere are dropped.

    This is how a huge one-hot alphabet costs only the symbols seen in ``fit``. For an
    L2-regularised linear model it loses nothing: a column that is zero on every training row
    has no data gradient, so the penalty holds its weight at exactly 0.

    ``rows`` is consumed: its column indices are renumbered in place, a chunk at a time, and when
    every entry is kept (training data) its arrays become the result's without a copy.
    """
    indices = rows.indices
    hit = np.empty(len(indices), dtype=bool)
    columns = columns.astype(indices.dtype)  # (they index the same matrix) so searchsorted converts no chunk
    last = len(columns) - 1
    for start in range(0, len(indices), _SELECT_CHUNK):
        part = indices[start : start + _SELECT_CHUNK]
        position = np.searchsorted(columns, part)
        hit[start : start + len(part)] = columns[np.minimum(position, last)] == part
        part[...] = position  # a miss's renumbered index is dropped below
    shape = (rows.shape[0], len(columns))
    if hit.all():
        return sp.csr_matrix((rows.data, indices, rows.indptr), shape=shape)
    kept = np.zeros(len(indices) + 1, dtype=rows.indptr.dtype)  # kept[i]: entries kept before entry i
    np.cumsum(hit, out=kept[1:])
    return sp.csr_matrix((rows.data[hit], indices[hit], kept[rows.indptr]), shape=shape)


def expand_columns(X, columns: np.ndarray, n_columns: int) -> sp.csr_matrix:
    """Inverse of :func:`select_columns`: rows over ``columns`` back to the full width."""
    coo = sp.coo_matrix(X)
    return sp.csr_matrix((coo.data, (coo.row, columns[coo.col])), shape=(X.shape[0], n_columns))


def rows_to_codes(X, n_positions: int, size: int) -> np.ndarray:
    """Inverse of :func:`one_hot_rows` (sparse or dense): the largest entry of each block wins."""
    n = X.shape[0]
    if sp.issparse(X):
        coo = sp.coo_matrix(X)
        keep = coo.data > 0
        rows, cols, data = coo.row[keep], coo.col[keep], coo.data[keep]
    else:
        X = np.asarray(X)
        rows, cols = np.nonzero(X > 0)
        data = X[rows, cols]
    positions, symbols = np.divmod(cols.astype(np.int64), size)
    filled = np.zeros((n, n_positions), dtype=bool)
    filled[rows, positions] = True
    if not filled.all():
        raise ValueError("X has code positions with no active symbol; they have no code to invert to")
    codes = np.zeros((n, n_positions), dtype=np.int64)
    order = np.lexsort((data, positions, rows))  # ascending, so the largest entry is written last
    codes[rows[order], positions[order]] = symbols[order]
    return codes
