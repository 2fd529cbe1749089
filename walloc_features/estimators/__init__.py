"""Estimators that train on latents (and on pixels, for the comparison), with cost accounting."""

from .embedding import CodeEmbeddingClassifier
from .mlp import MLPHeadClassifier
from .stem import adapt_strides
from .timm_classifier import TimmClassifier

__all__ = ["TimmClassifier", "MLPHeadClassifier", "CodeEmbeddingClassifier", "adapt_strides"]
