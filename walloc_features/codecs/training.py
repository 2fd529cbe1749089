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

A training that leaves the decoder worse than the linear decoder it started from (too high a
learning rate: the loss can grow a hundredfold and stay finite) is undone: the quantized packet
error of up to :data:`PROBE_ROWS` training rows, spread over the data, is measured before and after,
and if it grew the starting weights come back, with a warning if it grew by more than
:data:`WARN_GROWTH` (less is the noise of a short training on a few samples).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from .._memory import Releaser
from .._skorch import RaiseInterrupt, RaiseOnDivergence
from .._warnings import warn
from .companding import compand, decompand

__all__ = ["train_decoder"]

#: Training rows (evenly spread) on which a trained decoder is compared with the one it started from.
PROBE_ROWS = 1024
#: Relative growth of that error above which undoing the training is worth a warning.
WARN_GROWTH = 0.01


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


def _packet_error(objective: _PacketObjective, X, rows: np.ndarray, batch_size: int, device: str) -> float:
    """Mean squared packet error of the codec as used (rounded latents, eval mode) on ``X[rows]``: how a trained
    decoder is judged against the one it started from (deterministic, so both see the same codes)."""
    probe = torch.utils.data.Subset(_Rows(X), rows.tolist())
    # (a generator of its own: a DataLoader draws its seed from torch's global one, which the training goes on with)
    loader = torch.utils.data.DataLoader(probe, batch_size=batch_size, generator=torch.Generator())
    objective.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for x, _ in loader:
            decoded, packets = objective(x.to(device))
            total += float(torch.sum((decoded - packets) ** 2, dtype=torch.float64))
            count += packets.numel()
    return total / max(count, 1)


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
    training had finished). A decoder that ends with a larger packet error than it started with on
    up to :data:`PROBE_ROWS` training rows gets its starting weights back (with a ``UserWarning`` beyond
    :data:`WARN_GROWTH`).
    """
    from skorch.callbacks import LRScheduler, ProgressBar

    frozen = [codec.encoder, codec.decoder.linear]
    for module in frozen:
        module.requires_grad_(False)
    callbacks = [("cosine", LRScheduler(policy="CosineAnnealingLR", T_max=max(max_epochs, 1)))]
    if verbose:
        callbacks.append(("progress", ProgressBar()))
    objective = _PacketObjective(codec, scale).to(device)
    probe = np.unique(np.linspace(0, len(X) - 1, min(len(X), PROBE_ROWS)).round().astype(np.int64))
    start = {name: p.detach().clone() for name, p in objective.named_parameters() if p.requires_grad}
    before = _packet_error(objective, X, probe, batch_size, device)
    net = _make_net_class()(
        module=objective,
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
    after = _packet_error(objective, X, probe, batch_size, device)
    if not after <= before:
        with torch.no_grad():
            for name, p in objective.named_parameters():
                if name in start:
                    p.copy_(start[name])
    if not after <= before * (1 + WARN_GROWTH):
        warn(
            f"training the conv decoder left its packet error at {after:.3g}, above the {before:.3g} of the linear "
            f"decoder it started from (on {len(probe)} training samples): the starting weights are kept; lower "
            f"learning_rate (now {lr:g}) or train on more data",
            UserWarning,
        )  # fmt: skip
    return [float(v) for v in net.history[:, "train_loss"]]
