"""What walloc-features changes in skorch's training loop: Ctrl-C stops ``fit``, and so does a diverged training.

skorch's ``partial_fit`` catches ``KeyboardInterrupt`` and returns as if training had finished,
so a scikit-learn ``fit`` went on to return a half-trained model, and a Ctrl-C in a benchmark
only ended one cell's training while the benchmark recorded its score as a real result.
skorch also trains on through a loss that became NaN: the model's weights turn NaN, and its predictions
(every class the first one, every reconstruction NaN) came without a word.
"""

from __future__ import annotations

import math

import torch

from ._warnings import warn

__all__ = ["RaiseInterrupt", "RaiseOnDivergence", "StopTraining"]


class StopTraining(KeyboardInterrupt):
    """How a mixin ends skorch's epoch loop (skorch stops on ``KeyboardInterrupt`` and still runs ``on_train_end``,
    where ``EarlyStopping(load_best=True)`` restores its best weights): a stop that is no Ctrl-C."""


class RaiseInterrupt:
    """Mixin for a skorch ``NeuralNet``: ``fit`` raises ``KeyboardInterrupt`` once skorch has
    stopped training on one (after its ``on_train_end`` callbacks, so the net stays consistent),
    unless it was skorch's ``EarlyStopping`` or a :class:`StopTraining` stopping the training."""

    def fit_loop(self, X, y=None, epochs=None, **fit_params):
        try:
            return super().fit_loop(X, y, epochs=epochs, **fit_params)
        except KeyboardInterrupt as stop:
            self.interrupted_ = not (isinstance(stop, StopTraining) or self._stopped_early())
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
    """Mixin for a skorch ``NeuralNet``: training stops at the end of the first epoch whose training loss or weights
    are not finite. ``EarlyStopping(load_best=True)`` then restores the best epoch's weights, and ``fit`` returns
    them with a warning that says so (as scikit-learn's ``MLPClassifier`` keeps its best weights); without such
    weights ``fit`` raises ``ValueError``, naming the epoch and the learning rate, instead of returning a NaN model.
    """

    def on_epoch_end(self, net, dataset_train=None, dataset_valid=None, **kwargs):
        super().on_epoch_end(net, dataset_train=dataset_train, dataset_valid=dataset_valid, **kwargs)
        # (the epoch's train_loss is recorded by a callback, after this method: its batches' losses are here)
        losses = [batch["train_loss"] for batch in self.history[-1]["batches"] if "train_loss" in batch]
        loss = next((value for value in losses if not math.isfinite(value)), None)
        broken = [name for name, p in self.module_.named_parameters() if not torch.isfinite(p).all()]
        if loss is None and not broken:
            return
        what = f"a batch's training loss is {loss}" if loss is not None else f"the weight {broken[0]!r} is not finite"
        self.diverged_ = f"training diverged in epoch {len(self.history)} of {self.max_epochs}: {what}"
        raise StopTraining  # before the callbacks' on_epoch_end: EarlyStopping never takes this epoch for its best

    def fit(self, X, y=None, **fit_params):
        self.diverged_ = None
        super().fit(X, y, **fit_params)
        if self.diverged_ is None:
            return self
        remedy = f"lower the learning rate (now {self.lr:g}) or scale the inputs"
        best = self._restored_epoch()
        if best is None:
            raise ValueError(f"{self.diverged_}; {remedy}")
        warn(f"{self.diverged_}; the weights of epoch {best}, the best validation loss, are kept: {remedy}",
             UserWarning)  # fmt: skip
        return self

    def _restored_epoch(self):
        """The epoch whose weights skorch's EarlyStopping put back after the divergence, or None."""
        from skorch.callbacks import EarlyStopping

        for _, callback in getattr(self, "callbacks_", []):
            if isinstance(callback, EarlyStopping) and callback.load_best and callback.best_model_weights_ is not None:
                return callback.best_epoch_
        return None
