"""Scoring codecs and models: metrics, budgets (bits, FLOPs); benchmarks and reports to come."""

from .budgets import budget_table
from .flops import count_flops, transform_flops_per_sample
from .metrics import psnr
from .quantized import compare_quantized_strategies, default_strategies

__all__ = [
    "psnr", "budget_table", "count_flops", "transform_flops_per_sample", "compare_quantized_strategies",
    "default_strategies",
]  # fmt: skip
