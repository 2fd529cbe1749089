"""Importing the package stays light: the transformers do not drag in the training and benchmark stack."""

import subprocess
import sys

import pytest


def test_importing_the_transformers_loads_neither_skorch_nor_the_estimators():
    code = (
        "import sys, walloc_features; "
        "print(sorted(m for m in ('skorch', 'timm', 'matplotlib', 'walloc_features.estimators', "
        "'walloc_features.evaluation.benchmark') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_evaluation_names_load_their_module_on_first_use():
    import walloc_features.evaluation as evaluation
    from walloc_features.evaluation.benchmark import run_benchmark

    assert evaluation.run_benchmark is run_benchmark
    assert set(evaluation.__all__) <= set(dir(evaluation))
    for name in evaluation.__all__:  # functions, never the submodule of the same name (rate_distortion)
        assert callable(getattr(evaluation, name)), name
    with pytest.raises(AttributeError, match="no attribute 'nonexistent'"):
        evaluation.nonexistent  # noqa: B018
