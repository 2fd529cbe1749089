"""Scoring codecs and models: metrics and budgets now; benchmarks and reports to come."""

from .budgets import budget_table
from .metrics import psnr

__all__ = ["psnr", "budget_table"]
