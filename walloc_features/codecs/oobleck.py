"""The published 1-D WaLLoC synthesis decoder: an Oobleck decoder without upsampling.

The published stereo codecs (Jacobellis & Yoo, DCC 2025) decode with the Oobleck decoder of
Stable Audio (as in diffusers' ``OobleckDecoder``) with two blocks of upsampling ratio 1 and width
``latent_dim * (Nd // latent_dim)``. Its layers are weight-normalised convolutions
(``weight = g * v / ||v||``, the norm over all but the first axis, as ``torch.nn.utils.weight_norm``)
and Snake activations ``x + sin(exp(alpha) x)**2 / (exp(beta) + 1e-9)`` (Ziyin et al., 2020, in
the log-scale parametrisation). Each block's transposed convolution (kernel 2, stride 1, padding 1)
shortens the sequence by one frame, so the decoder returns ``T - 2`` frames for ``T`` latents: it
undoes the two bias-only frames that the published encoder's ``padding=1`` adds.

This is an independent implementation whose parameter names equal diffusers', so a published
``decoder.1.*`` state dict loads into it with ``strict=True``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["OobleckDecoder", "Snake1d"]


def _norm_except_first(v: torch.Tensor) -> torch.Tensor:
    """L2 norm over every axis but the first, kept broadcastable (weight_norm with dim=0)."""
    return torch.linalg.vector_norm(v, dim=tuple(range(1, v.ndim)), keepdim=True)


class _WeightNormMixin:
    """Replace ``weight`` by the ``weight_g`` / ``weight_v`` pair of ``torch.nn.utils.weight_norm``."""

    def _split_weight(self):
        weight = self.weight.detach()
        del self.weight
        self.weight_v = nn.Parameter(weight.clone())
        self.weight_g = nn.Parameter(_norm_except_first(weight))

    def normalized_weight(self) -> torch.Tensor:
        return self.weight_v * (self.weight_g / _norm_except_first(self.weight_v))


class WNConv1d(_WeightNormMixin, nn.Conv1d):
    """Weight-normalised ``Conv1d``."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._split_weight()

    def forward(self, x):
        return self._conv_forward(x, self.normalized_weight(), self.bias)


class WNConvTranspose1d(_WeightNormMixin, nn.ConvTranspose1d):
    """Weight-normalised ``ConvTranspose1d``."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._split_weight()

    def forward(self, x):
        return F.conv_transpose1d(
            x, self.normalized_weight(), self.bias, self.stride, self.padding, self.output_padding, self.groups,
            self.dilation,
        )  # fmt: skip


class Snake1d(nn.Module):
    """Snake activation with per-channel log-scale frequency ``alpha`` and magnitude ``beta``."""

    def __init__(self, channels: int):
        super().__init__()
        self.alpha = nn.Parameter(torch.zeros(1, channels, 1))
        self.beta = nn.Parameter(torch.zeros(1, channels, 1))

    def forward(self, x):
        return x + (torch.exp(self.beta) + 1e-9).reciprocal() * torch.sin(torch.exp(self.alpha) * x).pow(2)


class _ResidualUnit(nn.Module):
    """Snake -> dilated 7-tap conv -> Snake -> 1x1 conv, plus the identity; keeps the length."""

    def __init__(self, channels: int, dilation: int):
        super().__init__()
        self.snake1 = Snake1d(channels)
        self.conv1 = WNConv1d(channels, channels, kernel_size=7, dilation=dilation, padding=3 * dilation)
        self.snake2 = Snake1d(channels)
        self.conv2 = WNConv1d(channels, channels, kernel_size=1)

    def forward(self, x):
        return x + self.conv2(self.snake2(self.conv1(self.snake1(x))))


class _DecoderBlock(nn.Module):
    """Snake -> transposed conv (stride 1: one frame shorter) -> residual units with dilations 1, 3, 9."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.snake1 = Snake1d(in_channels)
        self.conv_t1 = WNConvTranspose1d(in_channels, out_channels, kernel_size=2, stride=1, padding=1)
        self.res_unit1 = _ResidualUnit(out_channels, 1)
        self.res_unit2 = _ResidualUnit(out_channels, 3)
        self.res_unit3 = _ResidualUnit(out_channels, 9)

    def forward(self, x):
        x = self.conv_t1(self.snake1(x))
        return self.res_unit3(self.res_unit2(self.res_unit1(x)))


class OobleckDecoder(nn.Module):
    """Latents ``(N, latent_dim, T)`` -> wavelet packets ``(N, out_channels, T - n_blocks)``, published layout.

    Parameters
    ----------
    latent_dim : int
        Latent channels in (also the width of the last block).
    out_channels : int
        Wavelet packets out (``channels * 2**J``).
    multiple : int, default=7
        Width of the first blocks in multiples of ``latent_dim`` (published: ``Nd // latent_dim``).
    n_blocks : int, default=2
        Decoder blocks; each removes one frame.

    Examples
    --------
    >>> import torch
    >>> decoder = OobleckDecoder(latent_dim=4, out_channels=16, multiple=2)
    >>> decoder(torch.zeros(1, 4, 10)).shape
    torch.Size([1, 16, 8])
    """

    def __init__(self, latent_dim: int, out_channels: int, multiple: int = 7, n_blocks: int = 2):
        super().__init__()
        if multiple < 1 or n_blocks < 1:
            raise ValueError(f"multiple and n_blocks must be >= 1, got {multiple} and {n_blocks}")
        widths = [latent_dim * multiple] * n_blocks + [latent_dim]
        self.n_blocks = n_blocks
        self.conv1 = WNConv1d(latent_dim, widths[0], kernel_size=7, padding=3)
        self.block = nn.ModuleList([_DecoderBlock(widths[i], widths[i + 1]) for i in range(n_blocks)])
        self.snake1 = Snake1d(latent_dim)
        self.conv2 = WNConv1d(latent_dim, out_channels, kernel_size=7, padding=3, bias=False)

    def forward(self, y):
        if y.shape[-1] <= self.n_blocks:
            raise ValueError(f"the Oobleck decoder needs more than {self.n_blocks} latent frames, got {y.shape[-1]}")
        x = self.conv1(y)
        for block in self.block:
            x = block(x)
        return self.conv2(self.snake1(x))
