"""Quantized-input strategies: integer codes in, model inputs out.

Stored data is quantized (JPEG coefficients, WaLLoC codes with ``quantize=True``, EnCodec and
ResidualVQ codebook indices). Each way of presenting codes to a model is a transformer here, so
they can be swapped inside one Pipeline and compared
(:func:`walloc_features.evaluation.compare_quantized_strategies`); the learned alternative,
an embedding per code, is :class:`walloc_features.estimators.CodeEmbeddingClassifier`.
"""

from .bitplanes import BitPlanes
from .dequantize import Dequantize
from .hashed import HashedCodes
from .onehot import OneHotCodes
from .packed import PackedCodes

__all__ = ["Dequantize", "OneHotCodes", "BitPlanes", "PackedCodes", "HashedCodes"]
