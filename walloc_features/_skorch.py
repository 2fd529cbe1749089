"""What walloc-features changes in skorch's training loop: Ctrl-C stops ``fit``.

skorch's ``partial_fit`` catches ``KeyboardInterrupt`` and returns as if training had finished,
so a scikit-learn ``fit`` went on to return a half-trained model, and a Ctrl-C in a benchmark
only ended one cell's training while the benchmark recorded its score as a real result.
"""

from __future__ import annotations

__all__ = ["RaiseInterrupt"]


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
