"""walloc-features: compressed-domain learning with WaLLoC latents and scikit-learn.

The flow, one subpackage a stage::

    datasets/     data in (embedded MNIST digits, loaders)
    codecs/       torch modules: wavelet packet transform, companding, decoders, the WaLLoC codec
    features/     scikit-learn transformers: WaLLoCTransformer and the baselines beside it
    quantized/    integer codes -> model inputs (one-hot, bit planes, packed, hashed, dequantized)
    estimators/   models that train on latents
    evaluation/   scores, budgets and reports
"""

from .features import (
    DCTTransformer,
    EnCodecTransformer,
    JPEGCoefficients,
    RawSignal,
    ResidualVQ,
    ResolutionReducer,
    WaLLoCTransformer,
    matched_baselines,
)

__version__ = "0.1.0"
__all__ = [
    "WaLLoCTransformer", "ResolutionReducer", "DCTTransformer", "JPEGCoefficients", "EnCodecTransformer",
    "ResidualVQ", "RawSignal", "matched_baselines", "__version__",
]  # fmt: skip
