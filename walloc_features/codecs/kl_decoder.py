"""The published 2-D WaLLoC synthesis decoder: an ``AutoencoderKL``-style decoder without upsampling.

The published RGB codecs (Jacobellis & Yoo, DCC 2025) decode with the decoder of diffusers'
``AutoencoderKL`` configured with one ``UpDecoderBlock2D`` of width ``Nd`` (no upsampling, since
the latent grid already has the wavelet packets' resolution), ``layers_per_block=2``,
``GroupNorm(32, eps=1e-6)``, SiLU and single-head self-attention in the mid block. This module is an
independent implementation of that layout: its parameter names equal diffusers', so a published
``decoder.1.*`` state dict loads into it with ``strict=True`` and no diffusers install.

Data flow: ``conv_in`` -> mid block (resnet, attention, resnet) -> up block (``layers + 1``
resnets) -> GroupNorm -> SiLU -> ``conv_out``; every resnet is ``x + conv(silu(norm(conv(silu(norm(x))))))``.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import nn

__all__ = ["KLDecoder"]

_EPS = 1e-6  # GroupNorm epsilon of the published decoder


class _ResnetBlock(nn.Module):
    """norm-SiLU-conv twice, plus the identity (input and output widths are equal here)."""

    def __init__(self, channels: int, groups: int):
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, channels, eps=_EPS)
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.norm2 = nn.GroupNorm(groups, channels, eps=_EPS)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x):
        h = self.conv1(F.silu(self.norm1(x)))
        return x + self.conv2(F.silu(self.norm2(h)))


class _Attention(nn.Module):
    """Single-head self-attention over all grid positions, with a GroupNorm in front and a skip."""

    def __init__(self, channels: int, groups: int):
        super().__init__()
        self.group_norm = nn.GroupNorm(groups, channels, eps=_EPS)
        self.to_q = nn.Linear(channels, channels)
        self.to_k = nn.Linear(channels, channels)
        self.to_v = nn.Linear(channels, channels)
        self.to_out = nn.ModuleList([nn.Linear(channels, channels)])  # diffusers' name: to_out.0

    def forward(self, x):
        n, c, h, w = x.shape
        tokens = self.group_norm(x).reshape(n, c, h * w).transpose(1, 2)  # (N, HW, C)
        q, k, v = (proj(tokens).unsqueeze(1) for proj in (self.to_q, self.to_k, self.to_v))
        out = F.scaled_dot_product_attention(q, k, v).squeeze(1)  # scale 1/sqrt(C): one head
        out = self.to_out[0](out).transpose(1, 2).reshape(n, c, h, w)
        return x + out


class _MidBlock(nn.Module):
    """resnet -> attention -> resnet."""

    def __init__(self, channels: int, groups: int):
        super().__init__()
        self.attentions = nn.ModuleList([_Attention(channels, groups)])
        self.resnets = nn.ModuleList([_ResnetBlock(channels, groups) for _ in range(2)])

    def forward(self, x):
        return self.resnets[1](self.attentions[0](self.resnets[0](x)))


class _UpBlock(nn.Module):
    """A stack of resnets (the final up block has no upsampler)."""

    def __init__(self, channels: int, groups: int, n_resnets: int):
        super().__init__()
        self.resnets = nn.ModuleList([_ResnetBlock(channels, groups) for _ in range(n_resnets)])

    def forward(self, x):
        for resnet in self.resnets:
            x = resnet(x)
        return x


class KLDecoder(nn.Module):
    """Latents ``(N, latent_dim, h, w)`` -> wavelet packets ``(N, out_channels, h, w)``, published layout.

    Parameters
    ----------
    latent_dim : int
        Latent channels in.
    out_channels : int
        Wavelet packets out (``channels * 4**J``).
    width : int, default=768
        ``Nd``: channels of every hidden layer; a multiple of ``groups``.
    layers_per_block : int, default=2
        The up block holds ``layers_per_block + 1`` resnets.
    groups : int, default=32
        GroupNorm groups.

    Examples
    --------
    >>> import torch
    >>> decoder = KLDecoder(latent_dim=12, out_channels=192, width=64)
    >>> decoder(torch.zeros(1, 12, 4, 4)).shape
    torch.Size([1, 192, 4, 4])
    >>> sorted(decoder.state_dict())[:2]
    ['conv_in.bias', 'conv_in.weight']
    """

    def __init__(
        self, latent_dim: int, out_channels: int, width: int = 768, layers_per_block: int = 2, groups: int = 32
    ):
        super().__init__()
        if width % groups:
            raise ValueError(f"width={width} must be a multiple of the {groups} GroupNorm groups")
        self.conv_in = nn.Conv2d(latent_dim, width, 3, padding=1)
        self.mid_block = _MidBlock(width, groups)
        self.up_blocks = nn.ModuleList([_UpBlock(width, groups, layers_per_block + 1)])
        self.conv_norm_out = nn.GroupNorm(groups, width, eps=_EPS)
        self.conv_out = nn.Conv2d(width, out_channels, 3, padding=1)

    def forward(self, y):
        x = self.mid_block(self.conv_in(y))
        for block in self.up_blocks:
            x = block(x)
        return self.conv_out(F.silu(self.conv_norm_out(x)))
