"""The WaLLoC codec as a PyTorch module.

Pipeline (Jacobellis & Yoo, DCC 2025): wavelet packet transform -> linear 1x1 analysis
projection (the whole encoder) -> companding -> noise bottleneck (training) / rounding
(inference) -> decompanding -> synthesis decoder -> inverse wavelet packet transform.
Sizes the transform cannot take are padded (half-sample symmetric) and cropped back.

The same module also runs the published checkpoints (see :mod:`~walloc_features.codecs.published`):
their decoders (``"kl"``, ``"oobleck"``), the 1-D encoder's ``padding=1``, the 129-tap post-filter,
and their input scale (``x - 0.5`` for images, ``0.5 x`` for audio) are options of this class.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from .companding import NoiseBottleneck, compand, companding_constants, decompand
from .decoders import ConvDecoder, make_decoder
from .wavelets import WaveletPacketTransform, pad_to_multiple

__all__ = ["WaLLoCCodec", "CPU_CHUNK_VALUES", "codec_from_state"]

#: On the CPU, ``encode`` without gradients splits batches into chunks of about this many input values,
#: so the transform's intermediates stay in cache: 16 RGB 512x512 images encode about 2.8x faster
#: one by one than as one tensor on a 2-core machine (``benchmarks/encode.py``).
CPU_CHUNK_VALUES = 1 << 20


class WaLLoCCodec(nn.Module):
    """Wavelet Learned Lossy Compression codec, 1-D (audio) or 2-D (images).

    Parameters
    ----------
    in_channels : int
        Signal channels (1 grayscale / mono, 3 RGB, 2 stereo, any count for hyperspectral).
    latent_dim : int
        Latent channels; the dimensionality reduction is ``in_channels * B**levels / latent_dim``
        with ``B = 4`` for images and ``2`` for audio.
    levels : int, default=3
        Wavelet packet levels ``J``.
    ndim : {1, 2}, default=2
        1 for audio ``(N, C, T)``, 2 for images ``(N, C, H, W)``.
    wavelet : str, default="bior4.4"
    latent_bits : int, default=8
        Bits per rounded latent; codes lie in ``[-(2**(b-1) - 1), 2**(b-1) - 1]``.
    decoder : {"linear", "conv", "kl", "oobleck"}, default="linear"
        ``"kl"`` (2-D) and ``"oobleck"`` (1-D) are the published decoders.
    hidden_channels, n_blocks : int, default=64 and 2
        Width and depth of the ``"conv"``, ``"kl"`` and ``"oobleck"`` decoders.
    encoder_padding : int, default=0
        Zero padding of the 1x1 encoder on every side: each side gets ``encoder_padding`` latent
        positions that hold only the bias (the published 1-D codecs use 1; their decoder removes them).
    post_filter : int, default=0
        Taps of a learned channel-mixing FIR filter applied to the reconstructed signal (published
        1-D codecs: 129); 0 for none.
    input_shift, input_gain : float, default=0.0 and 1.0
        The codec sees ``(x + input_shift) * input_gain`` for ``x`` on the [0, 1] image / [-1, 1]
        audio scale, and ``decode`` maps back. Published codecs: ``-0.5, 1`` (images), ``0, 0.5`` (audio).

    Examples
    --------
    >>> import torch
    >>> codec = WaLLoCCodec(in_channels=3, latent_dim=12, levels=3).eval()
    >>> x = torch.rand(1, 3, 64, 64)
    >>> codec.encode(x).shape
    torch.Size([1, 12, 8, 8])
    >>> codec(x).shape
    torch.Size([1, 3, 64, 64])
    """

    def __init__(
        self,
        in_channels: int,
        latent_dim: int,
        levels: int = 3,
        ndim: int = 2,
        wavelet: str = "bior4.4",
        latent_bits: int = 8,
        decoder: str = "linear",
        hidden_channels: int = 64,
        n_blocks: int = 2,
        encoder_padding: int = 0,
        post_filter: int = 0,
        input_shift: float = 0.0,
        input_gain: float = 1.0,
    ):
        super().__init__()
        companding_constants(latent_bits)  # validates latent_bits
        if encoder_padding < 0 or post_filter < 0 or (post_filter and post_filter % 2 == 0):
            raise ValueError(
                f"encoder_padding must be >= 0 and post_filter 0 or an odd tap count, "
                f"got {encoder_padding}, {post_filter}"
            )
        if encoder_padding and not (decoder == "oobleck" and n_blocks == 2 * encoder_padding):
            raise ValueError(  # otherwise the padded frames would shift the reconstruction
                "encoder_padding needs the 'oobleck' decoder with n_blocks == 2 * encoder_padding, which removes "
                f"the padded frames; got decoder={decoder!r}, n_blocks={n_blocks}"
            )
        if post_filter and ndim != 1:
            raise ValueError("post_filter is a 1-D (audio) option")
        if not input_gain > 0:
            raise ValueError(f"input_gain must be positive, got {input_gain}")
        self.config = dict(
            in_channels=int(in_channels), latent_dim=int(latent_dim), levels=int(levels), ndim=int(ndim),
            wavelet=str(wavelet), latent_bits=int(latent_bits), decoder=str(decoder),
            hidden_channels=int(hidden_channels), n_blocks=int(n_blocks), encoder_padding=int(encoder_padding),
            post_filter=int(post_filter), input_shift=float(input_shift), input_gain=float(input_gain),
        )  # fmt: skip
        self.latent_bits = int(latent_bits)
        self.input_shift, self.input_gain = float(input_shift), float(input_gain)
        self.wpt = WaveletPacketTransform(wavelet, levels, ndim)
        n_packets = self.wpt.output_channels(in_channels)
        if not 1 <= latent_dim <= n_packets:
            raise ValueError(f"latent_dim must be in [1, {n_packets}], got {latent_dim}")
        conv = nn.Conv1d if ndim == 1 else nn.Conv2d
        self.encoder = conv(n_packets, latent_dim, kernel_size=1, padding=int(encoder_padding))
        self.bottleneck = NoiseBottleneck()
        self.decoder = make_decoder(decoder, latent_dim, n_packets, ndim, hidden_channels, n_blocks)
        if post_filter:
            self.post_filter = nn.Conv1d(in_channels, in_channels, post_filter, padding=post_filter // 2)
        else:
            self.post_filter = None

    @property
    def ndim(self) -> int:
        return self.wpt.ndim

    @property
    def multiple(self) -> int:
        """Every spatial size is padded to a multiple of this (``2**levels``)."""
        return 2**self.wpt.levels

    def latent_size(self, size) -> tuple:
        """Latent grid of a signal of spatial ``size``: padded, divided by ``2**levels``, plus encoder padding."""
        pad, multiple = self.config["encoder_padding"], self.multiple
        return tuple(-(-int(n) // multiple) + 2 * pad for n in size)

    def packets(self, x: torch.Tensor) -> torch.Tensor:
        """Padded input -> wavelet packet coefficients."""
        if self.input_shift or self.input_gain != 1.0:
            x = (x + self.input_shift) * self.input_gain
        return self.wpt(pad_to_multiple(x, self.multiple, self.ndim))

    def analysis(self, x: torch.Tensor, *, scale: float = 1.0) -> torch.Tensor:
        """Input (read as ``x * scale``) -> latents before companding."""
        # The transform is linear, so the input scale folds into the projection: P W(g (a x + s)) + b
        # = (g a P) W(x) + (b + g s P W(1)), with W(1) the packets of a constant (periodized: constant too).
        # Integer inputs then reach the transform as they are and become floats in its first copy.
        weight, bias = self.encoder.weight, self.encoder.bias
        if self.input_shift:
            bias = bias + (self.input_gain * self.input_shift) * (weight.flatten(1) @ self._unit_packets().to(weight))
        x = pad_to_multiple(x, self.multiple, self.ndim)
        z = self.wpt.project(x, weight, bias, scale=self.input_gain * scale)  # the weight, untouched, keys its cache
        pad = self.config["encoder_padding"]
        if pad:  # the 1x1 conv's zero padding: border positions hold its own bias alone (no folded shift)
            border = self.encoder.bias[:, None].expand(len(z), -1, pad).to(z.dtype)
            z = torch.cat([border, z, border], 2)
        return z

    def constant_packets(self, value: float) -> torch.Tensor:
        """Packets of a constant signal: one value per packet channel (float64, CPU), through which
        the linear encoder folds shifts of its input."""
        return float(value) * self._unit_packets()

    def _unit_packets(self) -> torch.Tensor:
        """Packets of the constant 1, computed once (the transform is linear: ``v`` gives ``v`` times them)."""
        if getattr(self, "_unit_packets_cache", None) is None:
            c = self.config
            wpt = WaveletPacketTransform(c["wavelet"], c["levels"], c["ndim"])  # on the CPU, wherever the codec is
            x = torch.ones(1, c["in_channels"], *(self.multiple,) * self.ndim, dtype=torch.float64)
            with torch.inference_mode(False):  # usable by autograd even if first asked for in inference mode
                self._unit_packets_cache = wpt(x).reshape(wpt.output_channels(c["in_channels"]), -1)[:, 0]
        return self._unit_packets_cache

    def encode(self, x: torch.Tensor, *, scale: float = 1.0) -> torch.Tensor:
        """Input -> continuous companded latents in ``(-m, m)`` (what classifiers train on).

        ``x`` is read as ``x * scale``: pass integer samples (uint8 pixels) with their scale
        (``1 / 255``) and the transform converts them itself, sparing a float copy of the batch.
        """
        step = max(1, CPU_CHUNK_VALUES * len(x) // max(1, x.numel())) if len(x) else 1
        if x.device.type == "cpu" and len(x) > step and not torch.is_grad_enabled():
            return torch.cat([self.encode(x[i : i + step], scale=scale) for i in range(0, len(x), step)])
        return compand(self.analysis(x, scale=scale), self.latent_bits)

    def decode(self, z: torch.Tensor, size=None) -> torch.Tensor:
        """Companded latents (rounded or not) -> signal, cropped to ``size`` when given."""
        x = self.wpt.inverse(self.decoder(decompand(z, self.latent_bits)))
        if self.post_filter is not None:
            x = self.post_filter(x)
        if self.input_shift or self.input_gain != 1.0:
            x = x / self.input_gain - self.input_shift
        if size is not None:
            for axis, n in enumerate(size, start=2):
                x = x.narrow(axis, 0, n)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Round trip through the bottleneck (noise when training, rounding otherwise)."""
        return self.decode(self.bottleneck(self.encode(x)), size=x.shape[2:])

    @torch.no_grad()
    def init_linear_code(self, mean: np.ndarray, eigvals: np.ndarray, eigvecs: np.ndarray) -> None:
        """Set encoder and linear decoder to the KLT code of the packet statistics.

        One global gain ``a = s / sqrt(lambda_1)`` scales every component, so the leading one has
        the companding scale ``s`` (its companded values fill the code range) and all components
        share one quantization step: equal distortion per component, the high-rate MSE optimum.
        """
        k = self.encoder.out_channels
        basis = torch.as_tensor(eigvecs[:, :k], dtype=torch.float64)  # (D, k)
        mu = torch.as_tensor(mean, dtype=torch.float64)
        s, _ = companding_constants(self.latent_bits)
        gain = s / max(float(np.sqrt(eigvals[0])), 1e-12)
        kernel_tail = (1,) * self.ndim
        self.encoder.weight.copy_((gain * basis.T).reshape(k, -1, *kernel_tail))
        self.encoder.bias.copy_(-gain * basis.T @ mu)
        self.decoder.linear.weight.copy_((basis / gain).reshape(-1, k, *kernel_tail))
        self.decoder.linear.bias.copy_(mu)
        if isinstance(self.decoder, ConvDecoder):
            latent_std = gain * np.sqrt(eigvals[:k])
            self.decoder.input_scale.copy_(torch.as_tensor(1.0 / np.maximum(latent_std, 1e-3 * s)))


def _check_weight_values(state: dict, error, what: str) -> None:
    """Weights must be real floating-point numbers, all finite: load_state_dict would cast integers or complex
    numbers without a word, and a NaN encoder is only caught by transform, which blames the data."""
    for key, value in state.items():
        if not value.is_floating_point():
            raise error(f"{what}'s weight {key!r} has dtype {value.dtype}; codec weights are floating-point numbers")
        bad = int(value.numel() - torch.isfinite(value).sum())
        if bad:
            raise error(
                f"{what}'s weight {key!r} holds {bad} NaN or infinite value(s) of {value.numel()}: the file was saved "
                "from a diverged or damaged codec"
            )


def codec_from_state(options: dict, state: dict, *, error=ValueError, what: str = "the codec") -> WaLLoCCodec:
    """``WaLLoCCodec(**options)`` holding ``state``; ``error`` (naming ``what``) when they do not fit.

    The options are built first on the meta device, shapes only: a config far larger than its weights (a
    file's ``levels`` edited to 16 asked for 16 GB) is refused before anything is allocated or initialised.
    """
    try:
        with torch.device("meta"):
            skeleton = WaLLoCCodec(**options)
    except (TypeError, ValueError) as exc:
        raise error(f"{what}'s options {options} do not describe a valid codec: {exc}") from None
    shapes = {key: tuple(value.shape) for key, value in skeleton.state_dict().items()}
    differ = [f"{key}: {tuple(value.shape)} in the weights, {shapes[key]} in the config's codec"
              for key, value in state.items() if key in shapes and tuple(value.shape) != shapes[key]]  # fmt: skip
    missing, extra = sorted(set(shapes) - set(state)), sorted(set(state) - set(shapes))
    differ += [f"missing {missing[:3]}"] * bool(missing) + [f"unexpected {extra[:3]}"] * bool(extra)
    if differ:
        raise error(f"the weights do not fit {what} its config describes: {'; '.join(differ[:3])}")
    _check_weight_values(state, error, what)
    codec = WaLLoCCodec(**options)
    try:
        codec.load_state_dict(state, strict=True)
    except RuntimeError as exc:  # (dtypes torch cannot copy across)
        raise error(f"the weights do not fit {what} its config describes: {exc}") from None
    return codec
