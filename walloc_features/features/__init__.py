"""Feature transformers: signals in, compact (compressed-domain) representations out."""

from .walloc import WaLLoCTransformer

__all__ = ["WaLLoCTransformer"]
