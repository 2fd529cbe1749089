"""Which way of feeding integer codes to a model works best? Every strategy, one table.

:func:`compare_quantized_strategies` encodes a dataset once with a quantizing transformer
(WaLLoC with ``quantize=True``, ResidualVQ, JPEG coefficients, EnCodec), then trains each
strategy of :mod:`walloc_features.quantized` with a suitable classifier on the same codes and
reports accuracy and costs side by side.
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import scipy.sparse as sp
from sklearn.base import clone
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from ..estimators import CodeEmbeddingClassifier, MLPHeadClassifier
from ..quantized import BitPlanes, Dequantize, HashedCodes, OneHotCodes, PackedCodes
from ..quantized._codes import bits_for, read_codes
from .benchmark import _MODEL_FLOP_SAMPLES, _check_stratifiable, _steps_flops, timed_fit_predict
from .flops import classifier_flops_per_sample

__all__ = ["compare_quantized_strategies", "default_strategies"]

#: Columns of the comparison table, in order.
COLUMNS = ["representation", "classifier", "accuracy", "fit_time_s", "predict_time_s", "feature_dim",
           "train_bytes", "flops_per_sample"]  # fmt: skip


def default_strategies(alphabet: tuple[int, int], *, random_state=0) -> dict:
    """The strategies compared by default, each an estimator that takes codes ``(N, C, *grid)``.

    Linear models (scikit-learn's ``LogisticRegression``) on every fixed encoding, and torch
    models with the same MLP head (256 hidden units) on dequantized values and on learned code
    embeddings (random and ordinal initialisation). Packed pairs of neighbouring codes are
    included while a pair fits 16 bits (alphabets up to 256 symbols).

    Parameters
    ----------
    alphabet : (int, int)
        Inclusive code range (the codes transformer's ``code_range_``).
    random_state : int, default=0
        Seeds the torch models.

    Returns
    -------
    dict of str -> estimator
    """

    def logistic():
        return LogisticRegression(max_iter=1000)

    def torch_kwargs():
        return {"max_epochs": 30, "batch_size": 128, "random_state": random_state}

    strategies = {
        "dequantize + logistic": make_pipeline(Dequantize(), StandardScaler(), logistic()),
        "one-hot + logistic": make_pipeline(
            OneHotCodes(alphabet=alphabet, handle_unknown="ignore", columns="seen"), logistic()
        ),
        "bit planes + logistic": make_pipeline(BitPlanes(alphabet=alphabet, handle_unknown="clip"), logistic()),
        "packed pairs + logistic": make_pipeline(
            PackedCodes(2, axis=-1, alphabet=alphabet, handle_unknown="clip"), logistic()
        ),
        "hashed + logistic": make_pipeline(HashedCodes(2**16), logistic()),
        "dequantize + MLP": make_pipeline(Dequantize(), MLPHeadClassifier((256,), **torch_kwargs())),
        **{
            f"embedding ({init} init) + MLP": CodeEmbeddingClassifier(
                "mlp", embedding_dim=8, init=init, hidden_layer_sizes=(256,), alphabet=alphabet,
                handle_unknown="clip", **torch_kwargs(),
            )
            for init in ("normal", "ordinal")
        },
    }  # fmt: skip
    if 2 * bits_for(alphabet[1] - alphabet[0] + 1) > 16:  # pairs would exceed PackedCodes' max_alphabet
        del strategies["packed pairs + logistic"]
    return strategies


def compare_quantized_strategies(
    codes_transformer, X, y, *, X_test=None, y_test=None, test_size=0.2, strategies=None, random_state=0,
    verbose=False,
) -> pd.DataFrame:  # fmt: skip
    """Train every quantized-input strategy on the same integer codes and tabulate the results.

    ``codes_transformer`` is cloned, set to emit channel-first integer codes (``quantize=True``,
    ``output="tensor"`` where it has those parameters) and fitted on the training signals; the
    codes of both splits are computed once. Each strategy then trains on the training codes and
    is scored on the test codes. Its alphabet is the transformer's ``code_range_`` (else the
    range of the training codes); codes outside it are clipped or, for one-hot, ignored.

    Parameters
    ----------
    codes_transformer : transformer
        A transformer that produces integer codes, e.g.
        ``WaLLoCTransformer(reduction=16, quantize=True)`` or ``ResidualVQ(reduction=16)``.
    X, y : array-like
        Signals (images / audio) and labels. Split into train and test with ``test_size``
        (stratified) unless ``X_test`` and ``y_test`` are given.
    X_test, y_test : array-like, default=None
        A separate test set.
    test_size : float or int, default=0.2
    strategies : dict of str -> estimator, default=None
        Estimators (usually Pipelines) that take codes ``(N, C, *grid)``; None uses
        :func:`default_strategies`. A Pipeline's first step is taken as the representation
        (its output is measured) and its last as the classifier.
    random_state : int, default=0
        Seeds the split and the default torch models.
    verbose : bool, default=False
        Print each row as it is computed.

    Returns
    -------
    pandas.DataFrame
        One row per strategy (indexed by name) with columns ``representation``,
        ``classifier``, ``accuracy``, ``fit_time_s`` (representation + training on the training
        codes), ``predict_time_s`` (representation + prediction on the test codes),
        ``feature_dim`` (width of the representation per sample), ``train_bytes`` (memory of the
        encoded training matrix: data + indices for sparse ones) and ``flops_per_sample``
        (classifier forward FLOPs: ``2 * active inputs * n_outputs`` for a linear model on the
        representation, ``flops_per_sample_`` for torch models; lookups, scaling and hashing
        count 0; steps in between as :func:`run_benchmark` prices them: a projection ``2 * inputs
        * components``, an unknown step NaN). ``attrs`` holds the codes transformer, code shape and
        range, split sizes and ``encode_time_s`` (encoding the training and test sets, after the
        transformer's fit).

    Examples
    --------
    >>> from walloc_features import ResidualVQ
    >>> from walloc_features.datasets import load_mnist
    >>> from walloc_features.evaluation import compare_quantized_strategies
    >>> from walloc_features.quantized import Dequantize, OneHotCodes
    >>> from sklearn.linear_model import LogisticRegression
    >>> from sklearn.pipeline import make_pipeline
    >>> X, y = load_mnist()
    >>> table = compare_quantized_strategies(
    ...     ResidualVQ(reduction=16, random_state=0), X[:2000], y[:2000],
    ...     strategies={"value": make_pipeline(Dequantize(), LogisticRegression(max_iter=1000)),
    ...                 "one-hot": make_pipeline(OneHotCodes(alphabet=256), LogisticRegression(max_iter=1000))},
    ... )
    >>> bool(table.loc["one-hot", "accuracy"] > table.loc["value", "accuracy"])  # indices are categories
    True
    """
    if (X_test is None) != (y_test is None):
        raise ValueError("pass both X_test and y_test, or neither")
    if X_test is None:
        _check_stratifiable(y)
        X, X_test, y, y_test = train_test_split(X, y, test_size=test_size, stratify=y, random_state=random_state)
    y, y_test = np.asarray(y), np.asarray(y_test)

    encoder = clone(codes_transformer)
    params = encoder.get_params(deep=False)
    encoder.set_params(**{k: v for k, v in {"quantize": True, "output": "tensor"}.items() if k in params})
    encoder.fit(X)
    start = time.perf_counter()  # encoding only: fitting (k-means, the KLT) is not the codes' cost
    codes = read_codes(encoder, encoder.transform(X), input_name="the transformer's output")
    codes_test = read_codes(encoder, encoder.transform(X_test), input_name="the transformer's output")
    encode_time = time.perf_counter() - start
    alphabet = getattr(encoder, "code_range_", None) or (int(codes.min()), int(codes.max()))
    strategies = default_strategies(alphabet, random_state=random_state) if strategies is None else strategies

    rows = {}
    for name, strategy in strategies.items():
        model, predicted, fit_time, predict_time = timed_fit_predict(strategy, codes, y, codes_test)
        rows[name] = {
            **_costs(model, codes, codes_test),
            "accuracy": float(np.mean(predicted == y_test)),
            "fit_time_s": fit_time,
            "predict_time_s": predict_time,
        }
        if verbose:
            print(f"{name}: " + ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                                          for k, v in rows[name].items()))  # fmt: skip
    table = pd.DataFrame.from_dict(rows, orient="index")[COLUMNS]
    table.index.name = "strategy"
    table.attrs.update(
        codes_transformer=repr(encoder), code_shape=tuple(codes.shape[1:]), code_dtype=str(codes.dtype),
        code_range=tuple(alphabet), n_train=len(codes), n_test=len(codes_test), encode_time_s=encode_time,
    )  # fmt: skip
    return table


def _costs(model, codes: np.ndarray, codes_test: np.ndarray) -> dict:
    """Representation name, width, training-matrix bytes and classifier FLOPs of a fitted strategy."""
    rows = codes_test[:_MODEL_FLOP_SAMPLES]
    steps = 0.0  # the steps between representation and classifier, priced as run_benchmark prices them
    if isinstance(model, Pipeline) and len(model.steps) > 1:
        representation, classifier = model.steps[0][1], model.steps[-1][1]
        encoded = representation.transform(codes)
        # the representation's lookups count 0, whatever it is; the steps after it are priced
        steps, _, classifier_input = _steps_flops(Pipeline(model.steps[1:]), representation.transform(rows))
    else:
        representation, classifier, encoded, classifier_input = None, model, codes, rows
    width = int(np.prod(encoded.shape[1:]))
    if isinstance(classifier, CodeEmbeddingClassifier):  # what its head sees: a vector per code
        width = classifier.n_features_in_ * classifier.embedding_dim
    return {
        "representation": type(representation).__name__ if representation is not None else "codes",
        "classifier": type(classifier).__name__,
        "feature_dim": width,
        "train_bytes": _nbytes(encoded),
        "flops_per_sample": steps + classifier_flops_per_sample(classifier, classifier_input),
    }


def _nbytes(matrix) -> int:
    """Memory of a dense array, or of a sparse matrix's data and index arrays."""
    if sp.issparse(matrix):
        compressed = matrix.tocsr()
        return int(compressed.data.nbytes + compressed.indices.nbytes + compressed.indptr.nbytes)
    return int(np.asarray(matrix).nbytes)
