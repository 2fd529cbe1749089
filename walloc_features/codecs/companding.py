"""WaLLoC's companding and quantization bottleneck.

Companding ("ToUniform" in the published code) maps a roughly Gaussian latent ``y`` to
``z = 2 m (Phi(y / s) - 0.5)``, with ``Phi`` the standard normal CDF,
``s = (2**(b-1) - 1) / 1.85`` and ``m = 2**(b-1) - 1 + 0.5 - 1e-3`` for ``b = latent_bits``
(Jacobellis & Yoo, "Learned Compression for Compressed Learning", DCC 2025). ``|z| < m``, so
rounding gives integers in ``[-(2**(b-1) - 1), 2**(b-1) - 1]``. Decompanding ("ToNormal")
clamps ``z / (2 m) + 0.5`` to ``(1e-4, 1 - 1e-4)`` before ``Phi^-1``.

While training, the bottleneck adds ``U(-0.5, 0.5)`` noise (a differentiable proxy of rounding);
at inference it rounds.
"""

from __future__ import annotations

import math

import torch
from torch import nn

__all__ = ["compand", "decompand", "companding_constants", "code_dtype", "NoiseBottleneck"]


def companding_constants(latent_bits: int) -> tuple[float, float]:
    """Return ``(s, m)``: the Gaussian scale and the half-range of the companded latent."""
    if not 2 <= int(latent_bits) <= 16:
        raise ValueError(f"latent_bits must be an integer in [2, 16], got {latent_bits!r}")
    half = 2 ** (int(latent_bits) - 1)
    return (half - 1) / 1.85, half - 1 + 0.5 - 1e-3


def code_dtype(latent_bits: int):
    """Smallest signed numpy integer type holding the rounded codes."""
    import numpy as np

    return np.int8 if latent_bits <= 8 else np.int16


def compand(y: torch.Tensor, latent_bits: int) -> torch.Tensor:
    """Gaussian -> uniform companding, ``(-inf, inf) -> (-m, m)``.

    Parameters
    ----------
    y : torch.Tensor
        Latents, about Gaussian with the scale ``s`` of :func:`companding_constants`.
    latent_bits : int
        2 to 16: rounding the result gives codes of that many bits.

    Returns
    -------
    torch.Tensor
        Of ``y``'s shape, in ``(-m, m)``.
    """
    s, m = companding_constants(latent_bits)
    # The published operations in their order: ToUniform's Normal(0, 1).cdf is 0.5 (1 + erf(x / sqrt 2)),
    # then - 0.5, then x 2m. Any other float32 route rounds some codes the other way (torch.special.ndtr:
    # 6 of 4M codes, 1.5e-6), and m erf(y / (s sqrt 2)) more. In place after erf: its gradient reads its input.
    return torch.erf(y / s / math.sqrt(2)).add_(1).mul_(0.5).sub_(0.5).mul_(2 * m)


def decompand(z: torch.Tensor, latent_bits: int) -> torch.Tensor:
    """Inverse of :func:`compand` (clamped, so rounded codes at the range ends stay finite).

    Parameters
    ----------
    z : torch.Tensor
        Companded latents or their rounded codes.
    latent_bits : int
        As given to :func:`compand`.

    Returns
    -------
    torch.Tensor
    """
    s, m = companding_constants(latent_bits)
    u = (z / (2 * m) + 0.5).clamp(1e-4, 1 - 1e-4)
    return s * torch.special.ndtri(u)


class NoiseBottleneck(nn.Module):
    """Additive uniform noise in training mode, rounding in evaluation mode.

    The usual differentiable stand-in for quantization (Ballé, Laparra & Simoncelli, "End-to-end
    optimized image compression", ICLR 2017): during training ``z + U(-0.5, 0.5)`` has the rounding
    error's distribution and a gradient of one; in evaluation mode the latents are rounded to codes.

    Examples
    --------
    >>> import torch
    >>> bottleneck = NoiseBottleneck()
    >>> z = torch.tensor([0.2, 1.7, -2.4])
    >>> bottleneck.eval()(z)
    tensor([ 0.,  2., -2.])
    >>> bool((bottleneck.train()(z) - z).abs().max() <= 0.5)
    True
    """

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        if self.training:
            return z + torch.empty_like(z).uniform_(-0.5, 0.5)
        return torch.round(z)
