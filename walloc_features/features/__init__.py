"""Feature transformers: signals in, compact (compressed-domain) representations out."""

from .dct import DCTTransformer
from .encodec import EnCodecTransformer
from .jpeg import JPEGCoefficients
from .matched import matched_baselines
from .raw import RawSignal
from .resolution import ResolutionReducer
from .rvq import ResidualVQ
from .walloc import WaLLoCTransformer

__all__ = [
    "WaLLoCTransformer", "ResolutionReducer", "DCTTransformer", "ResidualVQ", "EnCodecTransformer", "JPEGCoefficients",
    "RawSignal", "matched_baselines",
]  # fmt: skip
