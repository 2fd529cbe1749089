"""Gradient training of a WaLLoC decoder with the noise bottleneck, through skorch.

Only the nonlinear correction of the ``"conv"`` decoder learns: the encoder and the linear path
stay the closed-form KLT code, which is already the optimum of a linear decoder (and which
Adam, whose steps are not scaled to those small weights, would only disturb).

The loss is the mean squared error of the *wavelet packets*, not of the pixels: the CDF 9/7
(``bior4.4``) packet transform is nearly orthogonal, so both errors track each other, and
skipping the inverse transform in the backward pass makes a step about 7x cheaper on a CPU.
skorch supplies the loop, shuffling, device handling, the cosine schedule and the progress bar;
batches are converted to float inside the module, so a uint8 array or a ``numpy.memmap`` is
never copied whole.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from .._memory import Releaser
from .._skorch import RaiseInterrupt, RaiseOnDivergence
from .companding import compand, decompand

__all__ = ["train_decoder"]


class _Rows(torch.utils.data.Dataset):
    """Rows of ``X`` as writable copies in native byte order (torch takes neither read-only memmaps nor big-endian
    arrays), target unused; the pages of a row of a shared memmap are released once copied, so an epoch in
    shuffled order does not make the file resident."""

    def __init__(self, X):
        self.X = X
        self.dtype = X.dtype.newbyteorder("=")
        self.releaser = Releaser(X)

    def __len__(self):
        return len(self.X)

    def __getitem__(self, i):
        row = np.array(self.X[i], dtype=self.dtype)
        i = i + len(self.X) if i < 0 else i  # the row X[i] read, for the pages released
        self.releaser.rows(i, i + 1)
        return row, 0


class _PacketObjective(nn.Module):
    """Maps a raw batch to (decoded packets, target packets) through the noisy bottleneck."""

    def __init__(self, codec: nn.Module, scale: float):
        super().__init__()
        self.codec = codec
        self.scale = scale

    def forward(self, x):
        codec = self.codec
        with torch.no_grad():
            packets = codec.packets(x.to(torch.float32) * self.scale)
            z = compand(codec.encoder(packets), codec.latent_bits)
        decoded = codec.decoder(decompand(codec.bottleneck(z), codec.latent_bits))
        return decoded, packets


def _make_net_class():
    """Subclass skorch's NeuralNet lazily, so importing this module does not import skorch."""
    from skorch import NeuralNet

    class PacketNet(RaiseInterrupt, RaiseOnDivergence, NeuralNet):
        def get_loss(self, y_pred, y_true=None, X=None, training=False):
            decoded, packets = y_pred
            return self.criterion_(decoded, packets)

    return PacketNet


def train_decoder(
    codec: nn.Module,
    X: np.ndarray,
    *,
    scale: float = 1.0,
    max_epochs: int,
    batch_size: int,
    lr: float,
    device: str = "cpu",
    verbose: bool = False,
) -> list[float]:
    """Train the nonlinear part of ``codec.decoder`` in place on ``X`` ``(N, C, *spatial)``.

    ``X * scale`` is the codec's input. Returns the training loss of every epoch. Seed torch's
    global generator beforehand for a reproducible run (shuffling and noise use it). Ctrl-C stops
    the training with ``KeyboardInterrupt`` (skorch alone would return a half-trained decoder as if
    training had finished).
    """
    from skorch.callbacks import LRScheduler, ProgressBar

    frozen = [codec.encoder, codec.decoder.linear]
    for module in frozen:
        module.requires_grad_(False)
    callbacks = [("cosine", LRScheduler(policy="CosineAnnealingLR", T_max=max(max_epochs, 1)))]
    if verbose:
        callbacks.append(("progress", ProgressBar()))
    net = _make_net_class()(
        module=_PacketObjective(codec, scale),
        criterion=nn.MSELoss,
        optimizer=torch.optim.AdamW,
        optimizer__weight_decay=0.0,
        lr=lr,
        max_epochs=max_epochs,
        batch_size=batch_size,
        train_split=None,
        iterator_train__shuffle=True,
        device=device,
        callbacks=callbacks,
        verbose=int(bool(verbose)),
    )
    try:
        net.fit(_Rows(X), y=None)
    finally:
        for module in frozen:
            module.requires_grad_(True)
        codec.eval()
    return [float(v) for v in net.history[:, "train_loss"]]
