"""What walloc-features changes in skorch's training loop: Ctrl-C stops ``fit``, and so does a diverged training.

skorch's ``partial_fit`` catches ``KeyboardInterrupt`` and returns as if training had finished,
so a scikit-learn ``fit`` went on to return a half-trained model, and a Ctrl-C in a benchmark
only ended one cell's training while the benchmark recorded its score as a real result.
skorch also trains on through a loss that became NaN: the model's weights turn NaN, and its predictions
(every class the first one, every reconstruction NaN) come without a word.
"""

from __future__ import annotations

import math

import torch

__all__ = ["RaiseInterrupt", "RaiseOnDivergence"]


class RaiseInterrupt:
    """Mixin for a skorch ``NeuralNet``: ``fit`` raises ``KeyboardInterrupt`` once skorch has
    stopped training on one (after its ``on_train_end`` callbacks, so the net stays consistent),
    unless it was skorch's ``EarlyStopping`` stopping the training."""

    def fit_loop(self, X, y=None, epochs=None, **fit_params):
        try:
            return super().fit_loop(X, y, epochs=epochs, **fit_params)
        except KeyboardInterrupt:
            self.interrupted_ = not self._stopped_early()
            raise

    def _stopped_early(self) -> bool:
        """skorch's EarlyStopping ends training by raising KeyboardInterrupt too: that one is no Ctrl-C."""
        from skorch.callbacks import EarlyStopping

        return any(isinstance(callback, EarlyStopping) and getattr(callback, "misses_", -1) >= callback.patience
                   for _, callback in getattr(self, "callbacks_", []))  # fmt: skip

    def fit(self, X, y=None, **fit_params):
        self.interrupted_ = False
        super().fit(X, y, **fit_params)
        if self.interrupted_:
            raise KeyboardInterrupt(f"training interrupted in epoch {len(self.history)} of {self.max_epochs}")
        return self


class RaiseOnDivergence:
    """Mixin for a skorch ``NeuralNet``: ``fit`` raises ``ValueError`` at the end of the first epoch whose training
    loss or weights are not finite (as scikit-learn's ``MLPClassifier`` refuses non-finite weights), naming the
    epoch and the learning rate, instead of training on and returning a NaN model."""

    def on_epoch_end(self, net, dataset_train=None, dataset_valid=None, **kwargs):
        super().on_epoch_end(net, dataset_train=dataset_train, dataset_valid=dataset_valid, **kwargs)
        # (the epoch's train_loss is recorded by a callback, after this method: its batches' losses are here)
        losses = [batch["train_loss"] for batch in self.history[-1]["batches"] if "train_loss" in batch]
        loss = next((value for value in losses if not math.isfinite(value)), None)
        broken = [name for name, p in self.module_.named_parameters() if not torch.isfinite(p).all()]
        if loss is None and not broken:
            return
        what = f"a batch's training loss is {loss}" if loss is not None else f"the weight {broken[0]!r} is not finite"
        raise ValueError(
            f"training diverged in epoch {len(self.history)} of {self.max_epochs}: {what}; lower the learning rate "
            f"(now {self.lr:g}) or scale the inputs"
        )
