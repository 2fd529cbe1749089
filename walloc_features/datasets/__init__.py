"""Datasets that work offline: data enters the toolkit here."""

from .mnist import load_mnist

__all__ = ["load_mnist"]
