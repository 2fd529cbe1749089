"""A warning points at the user's own line, whether they call the estimator or scikit-learn calls it for them.

A fixed ``stacklevel`` is right for one call path only: the same fit reached through a Pipeline, cross-validation
or ``set_output``'s wrapped ``transform`` used to point into scikit-learn's or our own frames, where a user cannot
see which of their lines caused it (nor filter it by module).
"""

import os
import warnings

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.pipeline import make_pipeline

from walloc_features import DCTTransformer, ResolutionReducer, WaLLoCTransformer
from walloc_features._warnings import is_internal, warn


@pytest.fixture(scope="module")
def digits(mnist):
    X, y = mnist
    return X[:120], y[:120]


def _recorded(call, match: str) -> list:
    """The warnings ``call`` gives whose message contains ``match`` (every one: none folded into the registry)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        call()
    return [w for w in caught if match in str(w.message)]


def _fit_paths(make, X, y):
    """Each way a user fits ``make()``: by hand, in a Pipeline (fit, fit_transform), cross-validated, grid-searched."""
    return {
        "fit": lambda: make().fit(X),
        "Pipeline.fit": lambda: make_pipeline(make(), LogisticRegression(max_iter=50)).fit(X, y),
        "Pipeline.fit_transform": lambda: make_pipeline(make()).fit_transform(X),
        "cross_val_score": lambda: cross_val_score(make_pipeline(make(), LogisticRegression(max_iter=50)), X, y, cv=2),
        "GridSearchCV": lambda: GridSearchCV(make_pipeline(make(), LogisticRegression(max_iter=50)),
                                             {"logisticregression__C": [1.0]}, cv=2).fit(X, y),
    }  # fmt: skip


@pytest.mark.parametrize("path", ["fit", "Pipeline.fit", "Pipeline.fit_transform", "cross_val_score", "GridSearchCV"])
@pytest.mark.parametrize("make", [lambda: WaLLoCTransformer(reduction=64), lambda: ResolutionReducer(reduction=1000)],
                         ids=["WaLLoCTransformer", "ResolutionReducer"])  # fmt: skip
def test_a_fit_warning_points_at_the_users_line(digits, make, path):
    X, y = digits
    caught = _recorded(_fit_paths(make, X, y)[path], "is not reachable")
    assert caught, "the unreachable reduction gave no warning"
    assert {w.filename for w in caught} == {__file__}, [(w.filename, w.lineno) for w in caught]


def test_a_transform_warning_points_at_the_users_line_through_set_output(digits):
    """``set_output`` wraps ``transform`` in scikit-learn's frames; a Pipeline's predict adds its own. Float pixels
    on 0-255 overflow the block DCT's codes, which saturate with a warning at every transform."""
    X, y = digits
    X = X.astype(np.float32)  # 0-255 as floats: off the unit scale
    with pytest.warns(UserWarning, match="far off the"):
        codec = DCTTransformer(keep=1, quantize=True).fit(X).set_output(transform="pandas")
    caught = _recorded(lambda: codec.transform(X), "were saturated")
    with warnings.catch_warnings(record=True) as fitting:  # off the scale, and the codes fit_transform saturates
        warnings.simplefilter("always")
        pipe = make_pipeline(DCTTransformer(keep=1, quantize=True), LogisticRegression(max_iter=50)).fit(X, y)
    ours = [w for w in fitting if "far off" in str(w.message) or "were saturated" in str(w.message)]
    assert len(ours) == 2 and {w.filename for w in ours} == {__file__}
    caught += _recorded(lambda: pipe.predict(X), "were saturated")
    assert len(caught) == 2 and {w.filename for w in caught} == {__file__}, [(w.filename, w.lineno) for w in caught]


def test_warn_skips_every_frame_of_the_package_and_the_libraries_that_call_it():
    def through_sklearn():  # a scikit-learn frame between the package's and this file's
        from sklearn.utils.parallel import Parallel, delayed

        Parallel(n_jobs=1)(delayed(warn)("from deep inside", RuntimeWarning) for _ in range(1))

    caught = _recorded(through_sklearn, "from deep inside")
    assert len(caught) == 1 and caught[0].filename == __file__ and caught[0].category is RuntimeWarning


def test_a_warning_inside_a_progress_bar_points_at_the_users_line(digits):
    """run_benchmark(verbose=True) (the CLI's default) pulls its cells through tqdm: its frames are skipped too."""
    from walloc_features.estimators import MLPHeadClassifier
    from walloc_features.evaluation import run_benchmark

    X, y = digits
    pipelines = {"mlp": make_pipeline(ResolutionReducer(reduction=4), MLPHeadClassifier(max_epochs=1))}
    caught = _recorded(lambda: run_benchmark(X, y, pipelines, train_sizes=[12], n_repeats=1, test_size=60,
                                             verbose=True), "early stopping turned off")  # fmt: skip
    assert caught and {w.filename for w in caught} == {__file__}, [(w.filename, w.lineno) for w in caught]


def test_without_a_user_frame_the_package_line_is_given(digits):
    """In a worker thread no frame is the user's: the warning names the package line that gave it, not threading's."""
    import threading

    X, _ = digits
    thread = threading.Thread(target=ResolutionReducer(reduction=1000).fit, args=(X,))  # no frame of this file
    caught = _recorded(lambda: (thread.start(), thread.join()), "is not reachable")
    assert len(caught) == 1 and caught[0].filename.endswith(os.path.join("walloc_features", "features", "_base.py"))


def test_what_counts_as_internal():
    """The package, the libraries that call it and the standard library are skipped; the CLI, scripts, consoles,
    doctests and sibling folders that merely share a library's name prefix are not."""
    import threading

    from walloc_features import _warnings

    package, sklearn_dir = _warnings.SKIPPED_DIRS[:2]
    assert is_internal(os.path.join(package, "features", "walloc.py"))
    assert is_internal(os.path.join(sklearn_dir, "pipeline.py")) and is_internal(threading.__file__)
    assert is_internal("<frozen runpy>")
    for name in ("<stdin>", "<string>", "<doctest walloc_features.x[0]>", "<ipython-input-3-abc>",
                 os.path.join(package, "cli.py"), os.path.join(package, "__main__.py"), __file__,
                 sklearn_dir.rstrip(os.sep) + "_extra" + os.sep + "x.py",
                 os.path.join(_warnings._STDLIB, "site-packages", "mylib", "x.py")):  # a system install's packages
        assert not is_internal(name), name

