"""Scoring codecs and models: metrics now; budgets, benchmarks and reports to come."""

from .metrics import psnr

__all__ = ["psnr"]
