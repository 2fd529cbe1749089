"""PyTorch building blocks of the codecs: wavelet packets, companding, decoders, WaLLoC, published checkpoints."""

from .companding import NoiseBottleneck, compand, decompand
from .decoders import ConvDecoder, LinearDecoder
from .kl_decoder import KLDecoder
from .oobleck import OobleckDecoder
from .published import CheckpointError, load_published_codec, save_published
from .walloc import WaLLoCCodec
from .wavelets import WaveletPacketTransform, pad_to_multiple

__all__ = [
    "WaLLoCCodec", "WaveletPacketTransform", "pad_to_multiple", "compand", "decompand",
    "NoiseBottleneck", "LinearDecoder", "ConvDecoder", "KLDecoder", "OobleckDecoder",
    "load_published_codec", "save_published", "CheckpointError",
]  # fmt: skip
