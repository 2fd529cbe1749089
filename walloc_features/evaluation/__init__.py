"""Scoring codecs and models: metrics, budgets (bits, FLOPs), benchmarks, rate-distortion and reports."""

from .benchmark import run_benchmark
from .budgets import budget_table
from .flops import classifier_flops_per_sample, count_flops, transform_flops_per_sample
from .metrics import psnr
from .quantized import compare_quantized_strategies, default_strategies
from .rate_distortion import (
    default_codecs,
    evaluate_codec,
    load_rate_distortion,
    rate_distortion,
    save_rate_distortion,
)
from .reports import write_report

__all__ = [
    "psnr", "budget_table", "count_flops", "transform_flops_per_sample", "compare_quantized_strategies",
    "default_strategies", "run_benchmark", "evaluate_codec", "rate_distortion", "save_rate_distortion",
    "load_rate_distortion", "default_codecs", "write_report", "classifier_flops_per_sample",
]  # fmt: skip
