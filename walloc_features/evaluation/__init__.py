"""Scoring codecs and models: metrics, budgets (bits, FLOPs), benchmarks, rate-distortion and reports.

The submodules load on first use (PEP 562): ``WaLLoCTransformer.score`` needs only :func:`psnr`, and
importing the benchmark would pull pandas, skorch and the estimators into every ``import walloc_features``.
"""

from importlib import import_module

_HOMES = {
    "psnr": "metrics", "budget_table": "budgets", "count_flops": "flops",
    "transform_flops_per_sample": "flops", "classifier_flops_per_sample": "flops",
    "compare_quantized_strategies": "quantized", "default_strategies": "quantized",
    "run_benchmark": "benchmark", "evaluate_codec": "rate_distortion", "rate_distortion": "rate_distortion",
    "save_rate_distortion": "rate_distortion", "load_rate_distortion": "rate_distortion",
    "default_codecs": "rate_distortion", "write_report": "reports",
}  # fmt: skip
__all__ = list(_HOMES)


def __getattr__(name):
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(f".{_HOMES[name]}", __name__), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))
