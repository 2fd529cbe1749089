"""Synthesis decoders: latents -> wavelet packet coefficients.

Both decoders share a linear 1x1 projection, which
:meth:`~walloc_features.codecs.walloc.WaLLoCCodec.init_linear_code` initialises to the optimal
linear (PCA) reconstruction of the fitting data. The convolutional decoder adds a small residual
network whose last layer starts at zero, so before training it *is* the linear decoder; a training
that leaves it worse on the training data is undone, with a warning beyond 1% (see
:func:`~walloc_features.codecs.training.train_decoder`), but one fitted to very few samples can still
do worse on other data, so the decoder is worth checking with ``score``. Its 3x3 (or 3-tap)
convolutions see neighbouring latents, which is what lets it predict the detail that the linear
projection dropped.
"""

from __future__ import annotations

import torch
from torch import nn

from .kl_decoder import KLDecoder
from .oobleck import OobleckDecoder

__all__ = ["LinearDecoder", "ConvDecoder", "make_decoder", "DECODERS", "PUBLISHED_DECODERS"]


def _conv(ndim: int):
    """The Conv class for the signal dimension."""
    return nn.Conv1d if ndim == 1 else nn.Conv2d


class LinearDecoder(nn.Module):
    """A 1x1 convolution from ``latent_dim`` to ``out_channels`` packets: WaLLoC's linear decoder.

    Parameters
    ----------
    latent_dim, out_channels : int
        Latent channels in, wavelet packets out.
    ndim : {1, 2}, default=2
        Signal dimension.

    Examples
    --------
    >>> import torch
    >>> decoder = LinearDecoder(latent_dim=12, out_channels=192)
    >>> decoder(torch.zeros(1, 12, 64, 64)).shape
    torch.Size([1, 192, 64, 64])
    """

    def __init__(self, latent_dim: int, out_channels: int, ndim: int = 2):
        super().__init__()
        self.linear = _conv(ndim)(latent_dim, out_channels, kernel_size=1)

    def forward(self, y):
        return self.linear(y)


class _ResidualBlock(nn.Module):
    """conv-GELU-conv with an identity skip."""

    def __init__(self, channels: int, ndim: int):
        super().__init__()
        conv = _conv(ndim)
        self.body = nn.Sequential(
            conv(channels, channels, 3, padding=1), nn.GELU(), conv(channels, channels, 3, padding=1)
        )

    def forward(self, x):
        return x + self.body(x)


class ConvDecoder(LinearDecoder):
    """Linear decoder plus a residual convolutional correction (zero at initialisation).

    Parameters
    ----------
    latent_dim, out_channels : int
        Latent channels in, wavelet packets out.
    ndim : {1, 2}, default=2
        Signal dimension.
    hidden_channels : int, default=64
        Width of the residual network.
    n_blocks : int, default=2
        Number of residual blocks.

    Examples
    --------
    >>> import torch
    >>> decoder = ConvDecoder(latent_dim=16, out_channels=256, ndim=1, hidden_channels=8)
    >>> y = torch.randn(2, 16, 63)
    >>> torch.equal(decoder(y), LinearDecoder.forward(decoder, y))  # the correction starts at zero
    True
    """

    def __init__(self, latent_dim: int, out_channels: int, ndim: int = 2, hidden_channels: int = 64, n_blocks: int = 2):
        super().__init__(latent_dim, out_channels, ndim)
        # Per-channel factor bringing latents to unit scale; set by the closed-form fit.
        self.register_buffer("input_scale", torch.ones(latent_dim))
        conv = _conv(ndim)
        head = conv(hidden_channels, out_channels, kernel_size=1)
        nn.init.zeros_(head.weight)
        nn.init.zeros_(head.bias)
        self.correction = nn.Sequential(
            conv(latent_dim, hidden_channels, 3, padding=1),
            nn.GELU(),
            *[_ResidualBlock(hidden_channels, ndim) for _ in range(n_blocks)],
            head,
        )

    def forward(self, y):
        scale = self.input_scale.view(1, -1, *([1] * (y.ndim - 2)))
        return self.linear(y) + self.correction(y * scale)


#: Decoders ``WaLLoCTransformer`` fits on a CPU.
DECODERS = {"linear": LinearDecoder, "conv": ConvDecoder}
#: Decoders of the published checkpoints (loaded, not fitted here): signal dimension of each.
PUBLISHED_DECODERS = {"kl": 2, "oobleck": 1}


def make_decoder(
    name: str, latent_dim: int, out_channels: int, ndim: int, hidden_channels: int = 64, n_blocks: int = 2
) -> nn.Module:
    """Build a decoder by name.

    ``"linear"`` and ``"conv"`` are this package's; ``"kl"`` (2-D) and ``"oobleck"`` (1-D) are the
    published WaLLoC decoders, with ``hidden_channels`` their width ``Nd`` and ``n_blocks`` their
    depth (layers per block / decoder blocks).
    """
    if name == "linear":
        return LinearDecoder(latent_dim, out_channels, ndim)
    if name == "conv":
        return ConvDecoder(latent_dim, out_channels, ndim, hidden_channels=hidden_channels, n_blocks=n_blocks)
    if name in PUBLISHED_DECODERS:
        if ndim != PUBLISHED_DECODERS[name]:
            raise ValueError(f"decoder {name!r} is {PUBLISHED_DECODERS[name]}-D, the codec {ndim}-D")
        if name == "kl":
            return KLDecoder(latent_dim, out_channels, width=hidden_channels, layers_per_block=n_blocks)
        if hidden_channels < latent_dim:  # its width is a whole multiple of latent_dim (published: Nd // latent_dim)
            raise ValueError(
                f"the 'oobleck' decoder needs hidden_channels >= latent_dim, got {hidden_channels} < {latent_dim}"
            )
        return OobleckDecoder(latent_dim, out_channels, multiple=hidden_channels // latent_dim, n_blocks=n_blocks)
    raise ValueError(f"decoder must be one of {sorted(DECODERS) + sorted(PUBLISHED_DECODERS)}, got {name!r}")
