"""Scoring codecs and models: metrics, budgets (bits, FLOPs), benchmarks, rate-distortion and reports.

The benchmark, budgets, quantized-input comparison and reports load on first use (PEP 562):
``WaLLoCTransformer.score`` needs only :func:`psnr`, and importing the benchmark would pull skorch,
pandas and the estimators into every ``import walloc_features``.
"""

from importlib import import_module

from .metrics import psnr

# Loaded now: a lazy load would leave the submodule, not the function, behind the name rate_distortion.
from .rate_distortion import default_codecs, evaluate_codec, load_rate_distortion, rate_distortion, save_rate_distortion

_HOMES = {
    "budget_table": "budgets", "count_flops": "flops", "transform_flops_per_sample": "flops",
    "classifier_flops_per_sample": "flops", "compare_quantized_strategies": "quantized",
    "default_strategies": "quantized", "run_benchmark": "benchmark", "write_report": "reports",
}  # fmt: skip
__all__ = [
    "psnr", "default_codecs", "evaluate_codec", "load_rate_distortion", "rate_distortion", "save_rate_distortion",
    *_HOMES,
]


def __getattr__(name):
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(f".{_HOMES[name]}", __name__), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))
