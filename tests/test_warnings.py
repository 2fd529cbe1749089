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


def _dataset_with_a_loose_file(root):
    """An image folder whose root holds a stray image (a warning) and too few samples for ``rd`` (exit status 1)."""
    from PIL import Image

    (root / "cats").mkdir(parents=True)
    for path in (root / "loose.png", root / "cats" / "1.png"):
        Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(path)
    return root


def test_the_command_line_names_the_users_call_or_its_own_line(tmp_path):
    """``main([...])`` called from Python names the caller's line; run as ``python -m walloc_features`` (no line of
    the user's), the command line's own line, where it read the folder, not ``<frozen runpy>``."""
    import subprocess
    import sys

    from walloc_features.cli import main

    data = _dataset_with_a_loose_file(tmp_path / "data")
    caught = _recorded(lambda: main(["rd", "--dataset", str(data), "--out", str(tmp_path / "a"), "--quiet"]),
                       "directly in")  # fmt: skip
    assert len(caught) == 1 and caught[0].filename == __file__
    command = [sys.executable, "-W", "always", "-m", "walloc_features", "rd", "--dataset", str(data), "--out",
               str(tmp_path / "b"), "--quiet"]  # fmt: skip
    run = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert run.returncode == 1 and "needs at least 20" in run.stderr
    line = next(line for line in run.stderr.splitlines() if "directly in" in line)
    assert line.split(":")[0].endswith(os.path.join("walloc_features", "cli.py")), line


def test_a_warning_while_a_module_is_imported_points_at_the_import(tmp_path, monkeypatch):
    """The import machinery's frames, which ``warnings.warn`` leaves out of ``stacklevel`` itself, are not counted
    (counting them overshot the stack: ``sys:1``)."""
    import importlib
    import sys

    from walloc_features import _warnings

    (tmp_path / "warns_on_import.py").write_text("from walloc_features._warnings import warn\nwarn('on import')\n")
    monkeypatch.setattr(_warnings, "SKIPPED_DIRS", (*_warnings.SKIPPED_DIRS, str(tmp_path) + os.sep))  # a package's
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "warns_on_import", raising=False)
    caught = _recorded(lambda: importlib.import_module("warns_on_import"), "on import")
    assert len(caught) == 1 and caught[0].filename == __file__


def test_what_counts_as_internal():
    """The package, the command line, the libraries that call it, console-script stubs and the standard library are
    skipped; scripts, consoles, doctests and sibling folders that merely share a library's name prefix are not."""
    import sysconfig
    import threading

    from walloc_features import _warnings

    package, sklearn_dir = _warnings.SKIPPED_DIRS[:2]
    for name in (os.path.join(package, "features", "walloc.py"), os.path.join(package, "cli.py"),
                 os.path.join(sklearn_dir, "pipeline.py"), threading.__file__, "<frozen runpy>",
                 os.path.join(sysconfig.get_paths()["scripts"], "walloc-features")):  # fmt: skip
        assert is_internal(name), name
    for name in ("<stdin>", "<string>", "<doctest walloc_features.x[0]>", "<ipython-input-3-abc>", __file__,
                 sklearn_dir.rstrip(os.sep) + "_extra" + os.sep + "x.py",
                 os.path.join(_warnings._STDLIB, "site-packages", "mylib", "x.py")):  # a system install's packages
        assert not is_internal(name), name
