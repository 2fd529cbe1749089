"""Accuracy against data and compute budgets: every pipeline, every training-set size, every seed.

:func:`run_benchmark` answers "what does compressed-domain learning buy me?" for a dataset: each
pipeline's feature transformer is fitted once (unsupervised) and its features cached; then every
(pipeline, training-set size, repeat) cell trains the pipeline's model on a stratified subset
and is scored on one fixed test set. Cells run through joblib, so they spread over local cores
with ``n_jobs`` or over a cluster with ``joblib.parallel_config(backend="dask")`` (or ray).
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import math
import os
import time
import warnings
from fractions import Fraction
from numbers import Integral, Real
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.exceptions import FitFailedWarning
from sklearn.metrics import accuracy_score, f1_score
from sklearn.model_selection import GroupShuffleSplit, train_test_split
from sklearn.pipeline import Pipeline
from sklearn.utils import check_random_state

from .._progress import progress
from .._warnings import warn
from ..features.raw import RawSignal
from ..quantized._codes import CodeTransformer
from .flops import active_inputs, classifier_flops_per_sample, is_linear_model, transform_flops_per_sample

__all__ = ["run_benchmark", "RESULT_COLUMNS"]

#: Columns of :func:`run_benchmark`'s table, in order.
RESULT_COLUMNS = [
    "pipeline", "features", "classifier", "train_size", "repeat", "accuracy", "f1_macro", "feature_dim",
    "reduction", "bits_per_sample", "encode_flops_per_sample", "model_flops_per_sample", "training_flops",
    "total_gflops", "encode_seconds", "fit_seconds", "predict_seconds",
]  # fmt: skip

#: Samples whose transform FLOPs are counted (the count is per sample and does not depend on N).
_FLOP_SAMPLES = 4
#: Test rows whose active inputs price a model's forward pass (sparse rows light different numbers of columns: 4
#: rows put one-hot packed pairs 8% off the mean of 256).
_MODEL_FLOP_SAMPLES = 256
#: Training rows whose active inputs price a linear model's training (sparse one-hot rows of unseen test codes light
#: fewer columns than training rows do).
_TRAINING_FLOP_SAMPLES = 256


def run_benchmark(
    X, y, pipelines, *, train_sizes=(0.25, 0.5, 1.0), n_repeats=3, test_size=0.2, groups=None, random_state=0,
    n_jobs=None, memory=None, error_score="raise", verbose=False,
) -> pd.DataFrame:  # fmt: skip
    """Train every pipeline at every training-set size, repeated over seeds; one tidy row per cell.

    A fixed test set is held out first (stratified, or group-disjoint when ``groups`` is given,
    e.g. speakers). Each pipeline's first step, its feature transformer, is fitted once on the
    whole remaining pool (unlabelled data, as a pretrained codec would be) and the pool and test
    features are computed once per distinct transformer, cached with ``joblib.Memory`` when
    ``memory`` is a directory, so data-budget sweeps never re-encode. The rest of the pipeline
    (scaler, classifier) is what each budget cell trains, on a stratified subset of the pool.

    Each subset holds every class: a stratified draw rounds a class rarer than one sample in the
    subset down to none, so one sample of each class it lacks is swapped in for one of its largest
    class. Cells (in worker processes too) run under the caller's warning filters.

    Parameters
    ----------
    X : array-like
        Signals: images ``(N, C, H, W)`` / ``(N, H, W)`` or audio ``(N, C, T)`` / ``(N, T)``; or a
        list or 1-D array of JPEG files (paths or bytes) for pipelines of :class:`JPEGCoefficients`.
    y : array-like of shape (N,)
    pipelines : dict of str -> sklearn.pipeline.Pipeline
        Each Pipeline's first step is the feature transformer (``"passthrough"`` for raw input
        that the model takes as is); the remaining steps are the model.
    train_sizes : sequence of int or float, default=(0.25, 0.5, 1.0)
        Training-set sizes: counts, or fractions (0, 1] of the pool.
    n_repeats : int, default=3
        Subsets drawn per size; the full pool is one subset, so its repeats differ only where the
        model itself is random. The feature transformer is fitted once, so a random encoder
        (k-means) does not vary across repeats.
    test_size : float or int, default=0.2
        Size of the test set: a fraction (0, 1) of the samples, or a number of samples. With
        ``groups``, whole groups go to the test set, ``ceil(fraction x n_groups)`` of them (the
        fraction as written: 0.28 of 25 groups is 7; a fraction taking every group is refused); a
        number of samples takes ``ceil(test_size x n_groups / N)`` groups (at least one, all
        but one at most), so the test set holds about that many samples (exactly, for groups of
        equal size that divide it).
    groups : array-like of shape (N,), default=None
        Group labels; the test set then shares no group with the pool (speaker-disjoint speech).
    random_state : int, RandomState instance or None, default=0
        Seeds the test split and the subsets.
    n_jobs : int, default=None
        Parallel cells (joblib); ``-1`` uses every core. Timings are cleanest with 1.
    memory : str, path or joblib.Memory, default=None
        Cache of the encoded features, reused across calls with the same data, transformer parameters,
        package source and dependency versions, and the same files the parameters name (a checkpoint
        rewritten in place is encoded again). A cached entry keeps the encoding time measured when it
        was written (``encode_seconds``). An unseeded transformer (``random_state=None``) is cached like a
        seeded one: later calls get the encoding of the call that wrote the entry.
    error_score : "raise" or float, default="raise"
        What a cell whose model fails to fit or predict records, as in scikit-learn's
        ``learning_curve``: ``"raise"`` stops the run with the error (noted with the pipeline, size
        and repeat); a number becomes that cell's accuracy (``np.nan``: a gap in tables and plots),
        its other scores NaN, with a ``FitFailedWarning`` naming the cell and the error.
    verbose : bool, default=False
        Progress bars.

    Returns
    -------
    pandas.DataFrame
        One row per (pipeline, train_size, repeat), columns :data:`RESULT_COLUMNS`:
        ``accuracy``, ``f1_macro`` (test set); ``feature_dim``, ``reduction`` and
        ``bits_per_sample`` (``bits_per_code_ / reduction_`` for quantized features and raw
        integer samples, e.g. 8 for uint8 pixels; NaN for continuous features)
        of the features; ``encode_flops_per_sample`` (FLOPs of ``transform``: torch-counted
        plus analytic counts of interpolation and codebook search),
        ``model_flops_per_sample`` (forward FLOPs: ``flops_per_sample_`` of torch models,
        ``2 x features x outputs`` for linear models, NaN for others) and ``training_flops``
        (``3 x forward x samples x epochs``, validation samples 1 x forward; a linear model's
        solver iterations count as epochs, those of every fold and setting of a cross-validated
        one such as ``LogisticRegressionCV`` on its fold's share of the samples, plus its refit
        if any);
        ``total_gflops`` = (encoding the training set + training) / 1e9; wall-clock
        ``encode_seconds`` (per sample), ``fit_seconds`` and ``predict_seconds`` (whole test set).
        ``attrs`` records the split sizes, sizes and classes.

    Examples
    --------
    >>> from sklearn.linear_model import LogisticRegression
    >>> from sklearn.pipeline import make_pipeline
    >>> from walloc_features import ResolutionReducer, WaLLoCTransformer
    >>> from walloc_features.datasets import load_mnist
    >>> from walloc_features.evaluation import run_benchmark
    >>> X, y = load_mnist()
    >>> table = run_benchmark(
    ...     X[:1500], y[:1500],
    ...     {"WaLLoC": make_pipeline(WaLLoCTransformer(reduction=16), LogisticRegression(max_iter=300)),
    ...      "resize": make_pipeline(ResolutionReducer(16), LogisticRegression(max_iter=300))},
    ...     train_sizes=[200, 1000], n_repeats=2, test_size=500,
    ... )
    >>> table.shape[0], sorted(table.train_size.unique().tolist())  # 2 pipelines x 2 sizes x 2 repeats
    (8, [200, 1000])
    """
    _check_pipelines(pipelines)
    if not (isinstance(n_repeats, Integral) and n_repeats >= 1):
        raise ValueError(f"n_repeats must be a positive integer, got {n_repeats!r}")
    if n_jobs is not None and (isinstance(n_jobs, bool) or not isinstance(n_jobs, Integral) or n_jobs == 0):
        raise ValueError(f"n_jobs must be None or a non-zero integer (-1: every core), got {n_jobs!r}")
    if not (isinstance(error_score, str) and error_score == "raise") and (
        isinstance(error_score, bool) or not isinstance(error_score, Real)
    ):
        raise ValueError(f"error_score must be 'raise' or a number, got {error_score!r}")
    X, y = _as_array(X), np.asarray(y)
    if len(X) != len(y):
        raise ValueError(f"X has {len(X)} samples but y has {len(y)}")
    if len(np.unique(y)) < 2:  # before any encoding: every classifier would refuse it
        raise ValueError(f"y has {len(np.unique(y))} class; a benchmark of classifiers needs at least 2")
    seed = int(check_random_state(random_state).randint(np.iinfo(np.int32).max - n_repeats))
    pool, test = _test_split(y, groups, test_size, seed)
    sizes = _resolve_sizes(train_sizes, len(pool), len(np.unique(y[pool])))
    cache = memory if isinstance(memory, joblib.Memory) else joblib.Memory(memory, verbose=0)
    cached_encode = cache.cache(_encode)

    encoded = {}  # transformer key -> (pool features, test features, info)
    input_files = _input_files(X)  # (stated once: every cached transformer's key holds them)
    for pipeline in progress(pipelines.values(), verbose, desc="encode", leave=False):
        features = pipeline.steps[0][1]
        key = _transformer_key(features)
        if key in encoded:
            continue
        cacheable = "@" not in key and key != "passthrough"
        if cacheable:  # versions, this package's source and the files it reads: other code or weights re-encode
            files = (_files_read(features), input_files)
            encoded[key] = cached_encode(features, X[pool], X[test], key=(key, _versions(), files))
        else:
            encoded[key] = _encode(features, X[pool], X[test])

    cells = []  # (pipeline name, encoded key, model, size, repeat, subset)
    for name, pipeline in pipelines.items():
        key = _transformer_key(pipeline.steps[0][1])
        model = Pipeline(pipeline.steps[1:]) if len(pipeline.steps) > 2 else pipeline.steps[-1][1]
        for size in sizes:
            for repeat in range(n_repeats):
                cells.append((name, key, model, size, repeat, _subset(y[pool], size, seed + repeat)))
    y_pool, y_test = y[pool], y[test]
    filters = list(warnings.filters)  # a worker process starts with its own: the caller's apply there too
    jobs = (
        joblib.delayed(_run_cell)(
            model, encoded[key][0][subset], y_pool[subset], encoded[key][1], y_test,
            cell=f"pipeline {name!r}, train size {size}, repeat {repeat}", error_score=error_score, filters=filters,
        )  # fmt: skip
        for name, key, model, size, repeat, subset in cells
    )
    outputs = joblib.Parallel(n_jobs=n_jobs, return_as="generator")(jobs)
    rows = []
    for (name, key, _, size, repeat, _), scores in progress(
        zip(cells, outputs, strict=True), verbose, total=len(cells), desc="cells", leave=False
    ):
        if "error" in scores:
            warn(
                f"run_benchmark: pipeline {name!r} at train size {size}, repeat {repeat} failed ({scores['error']}); "
                f"its accuracy reads error_score={error_score}", FitFailedWarning,
            )  # fmt: skip
        info = encoded[key][2]
        encode_flops = info["encode_flops_per_sample"]
        training = scores["training_flops"]
        rows.append({
            "pipeline": name, "features": info["features"], "classifier": scores["classifier"],
            "train_size": size, "repeat": repeat, "accuracy": scores["accuracy"], "f1_macro": scores["f1_macro"],
            "feature_dim": info["feature_dim"], "reduction": info["reduction"],
            "bits_per_sample": info["bits_per_sample"], "encode_flops_per_sample": encode_flops,
            "model_flops_per_sample": scores["model_flops_per_sample"], "training_flops": training,
            "total_gflops": (encode_flops * size + training) / 1e9, "encode_seconds": info["encode_seconds"],
            "fit_seconds": scores["fit_seconds"], "predict_seconds": scores["predict_seconds"],
        })  # fmt: skip
    table = pd.DataFrame(rows, columns=RESULT_COLUMNS)
    table.attrs.update(n_pool=len(pool), n_test=len(test), train_sizes=sizes, n_repeats=n_repeats,
                       classes=[str(c) for c in np.unique(y)], group_disjoint=groups is not None)  # fmt: skip
    return table


# ------------------------------------------------------------------------------- splits --
#: What a 1-D X of files may hold: paths, or the files' bytes.
_FILE_TYPES = (str, os.PathLike, bytes, bytearray, memoryview)


def _as_array(X) -> np.ndarray:
    """Signals as an array (lists and tensors too), without copying arrays; or a 1-D array of files (paths or
    bytes, which JPEGCoefficients reads)."""
    from ..features._signals import to_numpy

    if isinstance(X, (list, tuple)) and X and all(isinstance(x, _FILE_TYPES) for x in X):
        # one object per file: numpy's fixed-width bytes drop trailing NULs, and np.array unpacks bytearrays and
        # memoryviews of one length into rows of ints (memoryviews cannot be pickled for the cache either)
        files = np.empty(len(X), dtype=object)
        for i, entry in enumerate(X):
            files[i] = bytes(entry) if isinstance(entry, (bytearray, memoryview)) else entry
        X = files
    X = np.asarray(to_numpy(X))
    files = X.ndim == 1 and (
        X.dtype.kind in "US" or (X.dtype == object and all(isinstance(x, _FILE_TYPES) for x in X))
    )
    if (X.ndim < 2 and not files) or len(X) == 0:
        raise ValueError(
            f"X must hold samples along its first axis (or be a 1-D array of file paths or bytes), got shape {X.shape}"
        )
    return X


def _test_split(y, groups, test_size, random_state) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the pool and of the fixed test set (stratified, or group-disjoint)."""
    index = np.arange(len(y))
    if groups is None:
        _check_stratifiable(y)
        return train_test_split(index, test_size=test_size, stratify=y, random_state=random_state)
    groups = np.asarray(groups)
    if len(groups) != len(y):
        raise ValueError(f"groups has {len(groups)} entries but y has {len(y)}")
    if isinstance(test_size, Integral) and not isinstance(test_size, bool):
        # GroupShuffleSplit reads an int as a count of groups: 20 would be 200 samples in groups of 10
        if not 0 < test_size < len(y):
            raise ValueError(f"test_size={test_size} samples must lie between 0 and the {len(y)} samples, exclusive")
        n_groups = len(np.unique(groups))
        # the groups GroupShuffleSplit's ceil(test_size / N * n_groups) would take, in integers: a float
        # fraction could round past a whole number and take one group too many (70 of 250 -> 8 groups of 10)
        test_size = min(max(-(-test_size * n_groups // len(y)), 1), n_groups - 1) if n_groups > 1 else test_size
    elif isinstance(test_size, Real) and not isinstance(test_size, bool) and 0 < test_size < 1:
        # ceil(fraction x n_groups) of the fraction as written: in floats 0.28 x 25 = 7.000000000000001 -> 8
        n_groups = len(np.unique(groups))
        n_test = math.ceil(Fraction(str(test_size)) * n_groups)  # str: numpy's float32(0.2) prints '0.2' too
        if n_test >= n_groups:
            raise ValueError(
                f"test_size={test_size} of {n_groups} groups takes all of them: lower it or use more groups"
            )
        test_size = n_test
    pool, test = next(GroupShuffleSplit(1, test_size=test_size, random_state=random_state).split(index, y, groups))
    classes = np.unique(y)
    for name, part in (("pool", pool), ("test set", test)):
        missing = np.setdiff1d(classes, y[part])
        if len(missing):
            raise ValueError(
                f"the group-disjoint split leaves class(es) {missing.tolist()[:5]} out of the {name}: their samples "
                "sit in too few groups; use more groups per class, another test_size or random_state"
            )
    return pool, test


def _check_stratifiable(y) -> None:
    """Refuse a class of one sample before ``train_test_split(stratify=y)`` does, naming it: sklearn's message
    speaks of 'groups', and the sample cannot be both trained on and tested."""
    labels, counts = np.unique(y, return_counts=True)
    if (counts == 1).any():
        raise ValueError(
            f"class(es) {labels[counts == 1].tolist()[:5]} have a single sample: a stratified test split cannot put "
            "it in both the training and the test set; add samples of it or leave it out"
        )


def _resolve_sizes(train_sizes, n_pool: int, n_classes: int) -> list[int]:
    """Fractions of the pool and counts -> sorted distinct counts, each able to hold every class."""
    sizes = []
    for size in [train_sizes] if isinstance(train_sizes, Real) else list(train_sizes):
        if isinstance(size, bool) or not isinstance(size, Real):
            raise ValueError(f"train_sizes must be counts (int) or fractions (float) of the pool, got {size!r}")
        if isinstance(size, Integral):
            count = int(size)
        elif 0 < size <= 1:
            count = int(math.floor(size * n_pool + 0.5))
        else:
            raise ValueError(f"a fractional train size must lie in (0, 1] (give counts as int), got {size}")
        if not n_classes <= count <= n_pool:
            raise ValueError(
                f"train size {size!r} gives {count} samples; it must hold every class ({n_classes}) and fit "
                f"in the pool of {n_pool} (the data minus the test set)"
            )
        sizes.append(count)
    if not sizes:
        raise ValueError("train_sizes is empty: give at least one count or fraction of the pool")
    if len(set(sizes)) < len(sizes):  # as scikit-learn's learning_curve: say so rather than quietly run fewer
        warn(
            f"train_sizes {list(train_sizes)} give the counts {sizes} of a pool of {n_pool}: duplicates removed, "
            f"{len(set(sizes))} sizes instead of {len(sizes)}", RuntimeWarning,
        )  # fmt: skip
    return sorted(set(sizes))


def _subset(y_pool: np.ndarray, size: int, seed: int) -> np.ndarray:
    """Stratified indices of ``size`` pool samples holding every class (the whole pool, shuffled, at full size)."""
    index = np.arange(len(y_pool))
    labels, counts = np.unique(y_pool, return_counts=True)
    # a class of one pool sample cannot be stratified (train_test_split refuses it) but is in every subset anyway
    single = np.isin(y_pool, labels[counts == 1])
    rest, take = index[~single], size - int(single.sum())
    if not len(rest) or take > len(rest) - int((counts > 1).sum()):  # too few left out to stratify: drop at random
        subset = check_random_state(seed).permutation(index)[:size]
    else:
        subset, _ = train_test_split(rest, train_size=take, stratify=y_pool[rest], random_state=seed)
        subset = np.concatenate([subset, index[single]]) if single.any() else subset
    return _with_every_class(subset, y_pool, seed)


def _with_every_class(subset: np.ndarray, y_pool: np.ndarray, seed: int) -> np.ndarray:
    """``subset`` with one sample of each class it lacks swapped in for one of its largest class (sizes hold
    every class, so that class has two or more): a model never trains blind to a class it is tested on."""
    missing = np.setdiff1d(np.unique(y_pool), y_pool[subset])
    if not len(missing):
        return subset  # the usual case, left exactly as drawn
    rng = np.random.default_rng(seed)
    subset = subset.copy()
    for label in missing:
        labels, counts = np.unique(y_pool[subset], return_counts=True)
        out = rng.choice(np.flatnonzero(y_pool[subset] == labels[np.argmax(counts)]))
        subset[out] = rng.choice(np.flatnonzero(y_pool == label))
    return subset


# ----------------------------------------------------------------------------- encoding --
def _check_pipelines(pipelines) -> None:
    if not isinstance(pipelines, dict) or not pipelines:
        raise TypeError("pipelines must be a non-empty dict of name -> sklearn Pipeline")
    for name, pipeline in pipelines.items():
        if not isinstance(pipeline, Pipeline) or len(pipeline.steps) < 2:
            raise TypeError(
                f"pipelines[{name!r}] must be a Pipeline of a feature transformer (or 'passthrough') and a model, "
                f"got {type(pipeline).__name__}"
            )


def _transformer_key(features) -> str:
    """Identity of a feature step: class and parameters (equal transformers encode once)."""
    if features in (None, "passthrough"):
        return "passthrough"
    kind = f"{type(features).__module__}.{type(features).__qualname__}"
    try:
        return joblib.hash((kind, features.get_params(deep=True)))
    except Exception:  # unpicklable parameters (lambdas): this object is its own identity
        return f"{kind}@{id(features)}"


def _versions() -> tuple:
    """Versions whose change invalidates cached features: the dependencies', and this package's source (its
    version string stays the same while the code changes, in an editable install above all)."""
    import sklearn
    import torch

    from .. import __version__

    return __version__, _source_digest(), sklearn.__version__, torch.__version__


@functools.lru_cache(maxsize=1)
def _source_digest() -> str:
    """Digest of this package's Python files (about 0.01 s, once per process)."""
    root = Path(__file__).resolve().parents[1]
    digest = hashlib.blake2b(digest_size=16)
    for path in sorted(root.rglob("*.py")):
        digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def _input_files(X: np.ndarray) -> tuple:
    """Size and modification time of the files ``X`` names (JPEG paths): files rewritten under the same names
    give other features from the same ``X``."""
    if X.ndim != 1:
        return ()
    return tuple((str(entry), *_stamp(entry)) for entry in X if isinstance(entry, (str, os.PathLike)))


def _stamp(path) -> tuple:
    """``(size, modification time in ns)`` of a file, ``(None, None)`` where it cannot be read (whoever reads it
    reports that)."""
    try:
        stat = os.stat(path)
    except OSError:
        return None, None
    return stat.st_size, stat.st_mtime_ns


def _files_read(features) -> tuple:
    """Size and modification time of the files ``features`` reads: those its transformers resolve themselves
    (``_source_files``: a checkpoint folder given by a bare name, the config beside a state file, a cached hub
    snapshot), and every file a parameter names, or the files of a folder it names (at most 256 entries, not
    recursed): a checkpoint rewritten at the same path gives other features under the same parameters."""
    parts = [features, *features.get_params(deep=True).values()]  # (a class as a value has the method unbound)
    found = [(type(part).__name__, str(f), *_stamp(f)) for part in parts
             if hasattr(part, "_source_files") and not isinstance(part, type)
             for f in part._source_files() if f.is_file()]  # fmt: skip
    for name, value in sorted(features.get_params(deep=True).items()):
        for entry in value if isinstance(value, (tuple, list)) else (value,):
            if isinstance(entry, str) and not (os.sep in entry or "/" in entry or Path(entry).suffix):
                continue  # "image", "auto", "linear": a setting, not a file (a folder of that name may exist here)
            if not isinstance(entry, (str, os.PathLike)) or not str(entry) or len(str(entry)) > 4096:
                continue
            try:
                path = Path(entry).expanduser()
                if path.is_dir():
                    files = list(itertools.islice(path.iterdir(), 257))
                    files = sorted(files) if len(files) <= 256 else []  # a data folder, not a checkpoint's
                else:
                    files = [path]
                found += [(name, str(f), *_stamp(f)) for f in files if f.is_file()]
            except (OSError, RuntimeError):  # not a path this process can read (RuntimeError: "~nobody/x")
                continue
    return tuple(found)


def _encode(features, X_pool: np.ndarray, X_test: np.ndarray, key=None):
    """Fit the feature step on the pool, encode pool and test; return features and their costs.

    ``key`` only shapes the cache entry (transformer identity and package versions).
    """
    if features in (None, "passthrough"):
        stored = np.dtype(X_pool.dtype)  # integer samples are quantized already, as through RawSignal
        bits = 1 if stored == np.bool_ else 8 * stored.itemsize if stored.kind in "iu" else np.nan
        info = {"features": "raw", "feature_dim": int(np.prod(X_pool.shape[1:])), "reduction": 1.0,
                "bits_per_sample": bits, "encode_flops_per_sample": 0.0, "encode_seconds": 0.0}  # fmt: skip
        return X_pool, X_test, info
    fitted = clone(features).fit(X_pool)
    start = time.perf_counter()
    z_pool, z_test = fitted.transform(X_pool), fitted.transform(X_test)
    seconds = (time.perf_counter() - start) / (len(X_pool) + len(X_test))
    # Integer samples passed through raw are quantized already: their rate is the stored bits.
    raw_integers = isinstance(fitted, RawSignal) and np.dtype(fitted.input_dtype_).kind in "iub"
    quantized = bool(getattr(fitted, "quantize", False)) or raw_integers
    bits = getattr(fitted, "bits_per_code_", None)
    reduction = float(getattr(fitted, "reduction_", np.nan))
    info = {
        "features": type(fitted).__name__,
        "feature_dim": int(np.prod(z_pool.shape[1:])),
        "reduction": reduction,
        "bits_per_sample": bits / reduction if quantized and bits is not None else np.nan,
        "encode_flops_per_sample": float(transform_flops_per_sample(fitted, X_test[:_FLOP_SAMPLES])),
        "encode_seconds": seconds,
    }
    return z_pool, z_test, info


# --------------------------------------------------------------------------------- cells --
def timed_fit_predict(model, X_train, y_train, X_test):
    """Fit a clone of ``model`` and predict ``X_test``: ``(fitted, predicted, fit s, predict s)``."""
    model = clone(model)
    start = time.perf_counter()
    model.fit(X_train, y_train)
    fit_seconds = time.perf_counter() - start
    start = time.perf_counter()
    predicted = model.predict(X_test)
    return model, predicted, fit_seconds, time.perf_counter() - start


def _run_cell(model, Z_train, y_train, Z_test, y_test, *, cell="", error_score="raise", filters=None) -> dict:
    """Train one clone of the model on one subset and score it on the test features, under the caller's
    warning ``filters``; a failure is noted with ``cell`` and raised, or returned as ``error_score``."""
    with warnings.catch_warnings():
        if filters is not None:
            warnings.filters[:] = filters
        try:
            return _scores(model, Z_train, y_train, Z_test, y_test)
        except Exception as exc:
            if isinstance(error_score, str):
                # (exc.add_note, Python >= 3.11: the same list, shown under the traceback and by the CLI)
                exc.__notes__ = [*getattr(exc, "__notes__", []), f"in run_benchmark's cell: {cell}"]
                raise
            estimator = model.steps[-1][1] if isinstance(model, Pipeline) else model
            unknown = ("f1_macro", "model_flops_per_sample", "training_flops", "fit_seconds", "predict_seconds")
            return {**dict.fromkeys(unknown, np.nan), "classifier": type(estimator).__name__,
                    "accuracy": float(error_score), "error": f"{type(exc).__name__}: {exc}"}  # fmt: skip


def _scores(model, Z_train, y_train, Z_test, y_test) -> dict:
    """``_run_cell``'s work: fit, predict, score, count."""
    model, predicted, fit_seconds, predict_seconds = timed_fit_predict(model, Z_train, y_train, Z_test)
    estimator = model.steps[-1][1] if isinstance(model, Pipeline) else model
    spread = np.unique(np.linspace(0, len(Z_train) - 1, min(len(Z_train), _TRAINING_FLOP_SAMPLES)).astype(int))
    forward, training = _model_flops(model, estimator, Z_test[:_MODEL_FLOP_SAMPLES], Z_train[spread], y_train)
    return {
        "classifier": type(estimator).__name__,
        "accuracy": float(accuracy_score(y_test, predicted)),
        "f1_macro": float(f1_score(y_test, predicted, average="macro")),
        "model_flops_per_sample": forward,
        "training_flops": training,
        "fit_seconds": fit_seconds,
        "predict_seconds": predict_seconds,
    }


#: Steps that work value by value or look values up: no FLOPs, by the convention the counts follow (matrix products
#: only).
_ZERO_FLOP_STEPS = ("StandardScaler", "MinMaxScaler", "MaxAbsScaler", "RobustScaler", "Normalizer", "Binarizer",
                      "OneHotEncoder", "OrdinalEncoder")  # fmt: skip
#: Steps whose ``transform`` is one linear map by ``components_`` (after centering or whitening, value by value):
#: NMF, LatentDirichletAllocation, SparsePCA and dictionary learning also have ``components_``, but transform by
#: solving an optimisation per sample, which this count would understate many times over.
_PROJECTION_STEPS = ("PCA", "IncrementalPCA", "TruncatedSVD", "FastICA", "FactorAnalysis",
                     "GaussianRandomProjection", "SparseRandomProjection")  # fmt: skip


def _model_flops(model, estimator, test_rows, train_rows, y_train) -> tuple[float, float]:
    """Forward FLOPs per sample (on ``test_rows``) and training FLOPs (``len(y_train)`` samples priced by
    ``train_rows``) of a fitted model, NaN when unknown; its steps before the estimator included (see
    :func:`_step_flops`). Sparse rows cost what their non-zeros do, so each count reads its own rows."""
    n_train = len(y_train)
    steps_forward, _, inputs = _steps_flops(model, test_rows)
    steps_forward_train, steps_fit, train_inputs = _steps_flops(model, train_rows)
    steps_training = steps_fit + steps_forward_train * n_train  # fitting them, then transforming the training set
    if hasattr(estimator, "flops_per_sample_"):
        return steps_forward + float(estimator.flops_per_sample_), steps_training + float(estimator.training_flops_)
    if not is_linear_model(estimator):
        return np.nan, np.nan
    forward = classifier_flops_per_sample(estimator, inputs)
    iterations = getattr(estimator, "n_iter_", None)
    if iterations is None:  # closed-form solvers (ridge) report no iterations
        return steps_forward + forward, np.nan
    forward_train = classifier_flops_per_sample(estimator, train_inputs)
    return steps_forward + forward, steps_training + float(3 * forward_train * n_train * _epochs(estimator, y_train))


def _steps_flops(model, rows) -> tuple[float, float, object]:
    """Forward FLOPs per sample and fit FLOPs of a pipeline's steps before its estimator, and ``rows`` as the
    estimator sees them."""
    forward, fit = 0.0, 0.0
    for _, step in model.steps[:-1] if isinstance(model, Pipeline) else []:
        step_forward, step_fit = _step_flops(step, rows)
        forward, fit = forward + step_forward, fit + step_fit
        rows = rows if step in (None, "passthrough") else step.transform(rows)
    return forward, fit, rows


def _epochs(estimator, y_train) -> float:
    """Passes over the training set that a linear model's ``n_iter_`` records.

    One fit (``(1,)``, or one entry per class of a one-vs-rest fit, counted at the slowest class); a
    cross-validated one (``LogisticRegressionCV``) ran every fold and setting on its fold's share of the
    data (its ``cv`` split again), then, with ``refit``, a fit on all of it that ``n_iter_`` does not record,
    counted as the mean over folds of its slowest setting.
    """
    iterations = np.asarray(estimator.n_iter_)
    if iterations.ndim < 3:
        return float(np.max(iterations))
    if np.ndim(getattr(estimator, "C_", 0)) > 0:  # legacy attributes (C_ per class): (classes, folds, Cs[, l1s])
        iterations = iterations.max(axis=0)
    per_fit = iterations.reshape(iterations.shape[0], -1)  # (folds, settings); scikit-learn >= 1.10: (folds, l1s, Cs)
    shares = _fold_shares(estimator, y_train, len(per_fit))
    refit = per_fit.mean(axis=0).max() if getattr(estimator, "refit", True) else 0.0
    return float(shares @ per_fit.sum(axis=1) + refit)


def _fold_shares(estimator, y_train, n_folds: int) -> np.ndarray:
    """Each fold's share of the training set, from the estimator's own ``cv`` split of ``y_train``; k-fold's
    ``(k - 1) / k`` where that split cannot be repeated here (a splitter that needs groups)."""
    from sklearn.model_selection import check_cv

    y_train = np.asarray(y_train)
    try:
        splits = list(check_cv(estimator.cv, y_train, classifier=True).split(np.zeros((len(y_train), 1)), y_train))
    except (TypeError, ValueError):
        splits = []
    if len(splits) != n_folds:
        return np.full(n_folds, (n_folds - 1) / n_folds)
    return np.array([len(train) / len(y_train) for train, _ in splits])


def _step_flops(step, inputs) -> tuple[float, float]:
    """Forward FLOPs per sample and fit FLOPs of a step between the features and the estimator.

    Scalers work value by value and the quantized-input strategies look codes up (0, as activations,
    lookups and hashing count 0 everywhere); a linear projection (:data:`_PROJECTION_STEPS`: PCA,
    TruncatedSVD, random projections, ...) costs 2 FLOPs per (active input, component), its fit (a
    decomposition) is not counted (NaN); any other step is unknown (NaN): a PCA in front of a linear model
    cost nothing in the tables, and an NMF's per-sample solver is not a projection.
    """
    if step in (None, "passthrough") or type(step).__name__ in _ZERO_FLOP_STEPS or isinstance(step, CodeTransformer):
        return 0.0, 0.0
    components = getattr(step, "components_", None)
    if type(step).__name__ not in _PROJECTION_STEPS or components is None or np.ndim(components) != 2:
        return np.nan, np.nan
    return float(2 * active_inputs(inputs) * np.shape(components)[0]), np.nan
