"""PyTorch building blocks of the codecs: wavelet packets, companding, decoders, WaLLoC."""

from .companding import NoiseBottleneck, compand, decompand
from .decoders import ConvDecoder, LinearDecoder
from .walloc import WaLLoCCodec
from .wavelets import WaveletPacketTransform, pad_to_multiple

__all__ = [
    "WaLLoCCodec", "WaveletPacketTransform", "pad_to_multiple", "compand", "decompand",
    "NoiseBottleneck", "LinearDecoder", "ConvDecoder",
]  # fmt: skip
