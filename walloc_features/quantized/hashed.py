"""``HashedCodes``: feature hashing of (position, code) tokens, for very large, sparse alphabets."""

from __future__ import annotations

from numbers import Integral

import numpy as np
import scipy.sparse as sp
from sklearn.feature_extraction import FeatureHasher
from sklearn.utils._param_validation import Interval

from .. import _memory
from ._codes import CodeTransformer

__all__ = ["HashedCodes"]

#: Codes turned into token strings at once (bounds the temporary memory of ``transform``).
_CHUNK_CODES = 50_000


class HashedCodes(CodeTransformer):
    """Hash each ``"{position}={code}"`` token into ``n_features`` columns (scikit-learn's ``FeatureHasher``).

    The one-hot of an unbounded alphabet (JPEG coefficients, packed symbols, large codebooks)
    without storing the alphabet: no vocabulary is learned, unknown codes need no handling
    (they hash like any other), and memory is one entry per code whatever the alphabet. Two
    tokens may share a column (a collision); with ``alternate_sign=True`` (the default, as in
    ``FeatureHasher``) collisions cancel in expectation rather than add up.

    Parameters
    ----------
    n_features : int, default=2**18
        Output columns.
    alternate_sign : bool, default=True
        Give each token a hashed sign of +1 or -1.

    Attributes
    ----------
    sample_shape_ : tuple of int
    n_features_in_ : int
    feature_names_in_ : ndarray of str
        Column names of a DataFrame seen in ``fit`` (only then).

    Examples
    --------
    >>> import numpy as np
    >>> from walloc_features.quantized import HashedCodes
    >>> codes = np.array([[3, -70000], [3, 5]])
    >>> H = HashedCodes(n_features=1024).fit_transform(codes)
    >>> H.shape, H.nnz, abs(H[0] @ H[1].T).toarray()  # one token ("0=3") in common
    ((2, 1024), 4, array([[1.]], dtype=float32))
    """

    _uses_alphabet = False
    _parameter_constraints: dict = {
        "n_features": [Interval(Integral, 1, np.iinfo(np.int32).max, closed="both")],
        "alternate_sign": ["boolean"],
    }

    def __init__(self, n_features=2**18, *, alternate_sign=True):
        self.n_features = n_features
        self.alternate_sign = alternate_sign

    def fit(self, X, y=None):
        """Record the sample shape (hashing learns nothing)."""
        self._fit_codes(X)
        return self

    def transform(self, X):
        """Codes -> CSR matrix ``(N, n_features)`` float32 with one (signed) unit per code."""
        codes = self._codes(X)
        flat = codes.reshape(len(codes), -1)
        prefixes = np.char.add(np.arange(flat.shape[1]).astype(str), "=")
        hasher = FeatureHasher(
            self.n_features, input_type="string", dtype=np.float32, alternate_sign=self.alternate_sign
        )
        rows = max(1, _CHUNK_CODES // flat.shape[1])  # token strings exist for one chunk at a time
        # Each chunk's entries are written into arrays sized for one entry a code (collisions only merge entries),
        # trimmed in place at the end: a list of chunks, then vstack, held the matrix twice.
        bound = flat.size
        index_dtype = np.int32 if bound < 2**31 else np.int64
        data, indices = np.empty(bound, np.float32), np.empty(bound, index_dtype)
        indptr = np.zeros(len(flat) + 1, index_dtype)
        nnz = 0
        for i in range(0, len(flat), rows):
            chunk = hasher.transform(np.char.add(prefixes[None, :], flat[i : i + rows].astype(str)).tolist())
            data[nnz : nnz + chunk.nnz], indices[nnz : nnz + chunk.nnz] = chunk.data, chunk.indices
            indptr[i + 1 : i + 1 + chunk.shape[0]] = chunk.indptr[1:] + nnz
            nnz += chunk.nnz
        _memory.shrink_in_place(data, nnz)  # safe: no view of them exists
        _memory.shrink_in_place(indices, nnz)
        return sp.csr_matrix((data, indices, indptr), shape=(len(flat), self.n_features))

    def get_feature_names_out(self, input_features=None):
        """``hash0, hash1, ...``: hashed columns have no names of their own (``input_features`` is only checked)."""
        from sklearn.utils.validation import _check_feature_names_in, check_is_fitted

        check_is_fitted(self)
        _check_feature_names_in(self, input_features)
        return np.asarray([f"hash{i}" for i in range(self.n_features)], dtype=object)
