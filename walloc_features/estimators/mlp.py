"""``MLPHeadClassifier``: a small torch MLP (or linear) head on flat features, with FLOP counts."""

from __future__ import annotations

from numbers import Integral, Real

from sklearn.utils._param_validation import Interval
from torch import nn

from ._torch import TRAINING_CONSTRAINTS, TorchClassifier

__all__ = ["MLPHeadClassifier"]


class MLPHeadClassifier(TorchClassifier):
    """Multilayer perceptron on flattened features, trained like :class:`TimmClassifier`.

    For when scikit-learn's ``MLPClassifier`` is not enough: GPU training, the same training
    schedule as the timm models, and ``flops_per_sample_`` for compute budgets. Any input shape
    is flattened; features are standardised with training-set statistics. Later input may come
    flattened ``(N, D)`` or shaped as at fit; another multi-axis shape of the same size (channels
    last for channels first) is refused rather than read in the wrong order.

    Parameters
    ----------
    hidden_layer_sizes : tuple of int, default=(256,)
        Widths of the hidden layers; ``()`` gives a linear (softmax regression) head.
    dropout : float, default=0.0
        Dropout after every hidden layer.
    batch_size : int, default=128
    weight_decay : float, default=1e-4
        As in :class:`TimmClassifier`, with defaults for a small head (TimmClassifier's 64 and
        0.05 suit a CNN's many weights).
    max_epochs, lr, warmup_epochs, label_smoothing, validation_fraction, early_stopping, patience,
    mixed_precision, device, random_state, verbose
        As in :class:`TimmClassifier`, with the same defaults.

    Attributes
    ----------
    classes_, net_, flops_per_sample_, training_flops_, n_parameters_, n_epochs_, fit_time_
        As in :class:`TimmClassifier`.
    n_features_in_, feature_names_in_
        As in :class:`TimmClassifier`.
    sample_shape_, one_d_
        ``(n_features_in_,)`` and False: samples are read flattened.

    Examples
    --------
    >>> from walloc_features.datasets import load_mnist
    >>> from walloc_features.estimators import MLPHeadClassifier
    >>> X, y = load_mnist()
    >>> head = MLPHeadClassifier(hidden_layer_sizes=(), max_epochs=3, random_state=0)
    >>> head.fit(X[:2000], y[:2000]).flops_per_sample_  # 784 x 10 multiply-adds
    15680
    """

    _sample_ndim = 1

    _parameter_constraints: dict = {
        **TRAINING_CONSTRAINTS,
        "hidden_layer_sizes": [tuple, list],
        "dropout": [Interval(Real, 0, 1, closed="left")],
    }

    input_shape = None  # any input is flattened

    def __init__(
        self, hidden_layer_sizes=(256,), *, dropout=0.0, max_epochs=30, batch_size=128, lr=2e-3, weight_decay=1e-4,
        warmup_epochs=1, label_smoothing=0.0, validation_fraction=0.1, early_stopping=True, patience=5,
        mixed_precision=True, device="cpu", random_state=None, verbose=False,
    ):  # fmt: skip
        self.hidden_layer_sizes = hidden_layer_sizes
        self.dropout = dropout
        self.max_epochs = max_epochs
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.warmup_epochs = warmup_epochs
        self.label_smoothing = label_smoothing
        self.validation_fraction = validation_fraction
        self.early_stopping = early_stopping
        self.patience = patience
        self.mixed_precision = mixed_precision
        self.device = device
        self.random_state = random_state
        self.verbose = verbose

    def _build_module(self, sample_shape: tuple, n_classes: int):
        return nn.Sequential(*mlp_layers(sample_shape[0], self.hidden_layer_sizes, n_classes, dropout=self.dropout))


def mlp_layers(in_features: int, hidden_layer_sizes, n_classes: int, *, dropout: float = 0.0) -> list:
    """Linear -> GELU -> Dropout per hidden width, then the classifier (shared by the MLP heads)."""
    sizes = list(hidden_layer_sizes)
    if not all(isinstance(h, Integral) and not isinstance(h, bool) and h >= 1 for h in sizes):
        raise ValueError(f"hidden_layer_sizes must be positive integers, got {hidden_layer_sizes!r}")
    layers, width = [], in_features
    for hidden in sizes:
        layers += [nn.Linear(width, int(hidden)), nn.GELU(), nn.Dropout(dropout)]
        width = int(hidden)
    return [*layers, nn.Linear(width, n_classes)]
