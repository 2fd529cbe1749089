"""What the torch estimators share: input layout, skorch training, prediction, cost accounting.

Subclasses build their network in ``_build_module(sample_shape, n_classes)``; this base wraps it
with a per-channel standardisation, trains it with skorch (AdamW, linear warmup then cosine
decay, optional label smoothing, early stopping on a stratified validation split, bfloat16
autocast on CUDA), and records ``flops_per_sample_``, ``n_parameters_``, ``fit_time_`` and
``n_epochs_``.
"""

from __future__ import annotations

import math
import time
import warnings
from numbers import Integral, Real

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.preprocessing import LabelEncoder
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_array, check_is_fitted, column_or_1d, validate_data
from skorch import NeuralNetClassifier
from skorch.callbacks import EarlyStopping, LRScheduler, ProgressBar
from skorch.dataset import ValidSplit
from torch import nn

from .._device import TORCH_GLOBALS, seeded, torch_device
from .._skorch import RaiseInterrupt, RaiseOnDivergence
from .._warnings import warn
from ..evaluation.flops import count_flops
from ..features._base import forget_fit
from ..features._signals import resolve_shape, to_numpy

__all__ = ["TorchClassifier", "WarmupCosine", "TRAINING_CONSTRAINTS"]

#: Parameter constraints of the shared training loop (merged into each estimator's own).
TRAINING_CONSTRAINTS = {
    "max_epochs": [Interval(Integral, 1, None, closed="left")],
    "batch_size": [Interval(Integral, 1, None, closed="left")],
    "lr": [Interval(Real, 0, None, closed="neither")],
    "weight_decay": [Interval(Real, 0, None, closed="left")],
    "warmup_epochs": [Interval(Integral, 0, None, closed="left")],
    "label_smoothing": [Interval(Real, 0, 1, closed="left")],
    "validation_fraction": [Interval(Real, 0, 1, closed="left")],
    "early_stopping": ["boolean"],
    "patience": [Interval(Integral, 1, None, closed="left")],
    "mixed_precision": ["boolean"],
    "device": [str],
    "random_state": ["random_state"],
    "verbose": ["verbose"],
}


class WarmupCosine:
    """LambdaLR factor: linear warmup over ``warmup`` epochs, then cosine decay to 0 at ``total``.

    A class rather than a closure, so fitted estimators pickle.
    """

    def __init__(self, warmup: int, total: int):
        self.warmup, self.total = warmup, max(total, 1)

    def __call__(self, epoch: int) -> float:
        if epoch < self.warmup:
            return (epoch + 1) / (self.warmup + 1)
        progress = (epoch - self.warmup) / max(1, self.total - self.warmup)
        return 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))


class Standardized(nn.Module):
    """``(x - mean) / std`` per channel (or feature) in front of a network."""

    def __init__(self, network: nn.Module, mean: np.ndarray, std: np.ndarray):
        super().__init__()
        self.network = network
        self.register_buffer("mean", torch.as_tensor(mean, dtype=torch.float32))
        self.register_buffer("std", torch.as_tensor(std, dtype=torch.float32))

    def forward(self, x):
        shape = (1, -1) + (1,) * (x.ndim - 2)
        return self.network((x - self.mean.view(shape)) / self.std.view(shape))


def _autocast_dtype(mixed_precision: bool, device: torch.device):
    """bfloat16 autocast on CUDA with ``mixed_precision`` (no loss scaling needed), else None (float32)."""
    return torch.bfloat16 if (mixed_precision and device.type == "cuda") else None


class AutocastNet(RaiseInterrupt, RaiseOnDivergence, NeuralNetClassifier):
    """skorch's NeuralNetClassifier whose forward pass can run under CUDA autocast (Ctrl-C and a diverged training
    stop ``fit``)."""

    def __init__(self, *args, autocast_dtype=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.autocast_dtype = autocast_dtype

    def infer(self, x, **fit_params):
        if self.autocast_dtype is None:
            return super().infer(x, **fit_params)
        with torch.autocast(device_type="cuda", dtype=self.autocast_dtype):
            return super().infer(x, **fit_params).float()


class TorchClassifier(ClassifierMixin, BaseEstimator):
    """Base class of the torch classifiers (not for direct use).

    Subclasses define ``_build_module`` and the parameters used here: ``input_shape``,
    ``max_epochs``, ``batch_size``, ``lr``, ``weight_decay``, ``warmup_epochs``,
    ``label_smoothing``, ``validation_fraction``, ``early_stopping``, ``patience``,
    ``mixed_precision``, ``device``, ``random_state``, ``verbose``.
    """

    #: How many trailing axes a sample has once laid out for the network (3: (C, H, W); 1: (D,)).
    _sample_ndim = 3
    #: Whether inputs are standardised per channel in front of the network (not for integer codes).
    _standardize = True

    # ------------------------------------------------------------------------------- input --
    def _layout(self, X, *, reset: bool) -> np.ndarray:
        """Validate X and lay it out as float32 ``(N, C, H, W)`` (or ``(N, D)`` for flat models).

        A DataFrame's column names are recorded in ``feature_names_in_`` at fit (``reset``) and
        checked against it later, as scikit-learn does.
        """
        validate_data(self, X, reset=reset, skip_check_array=True, ensure_2d=False)
        return self._layout_samples(X, reset=reset)

    def _check_flattened_shape(self, shape: tuple, *, reset: bool) -> None:
        """Flat models take samples of any shape, flattened; samples of another multi-axis shape than at fit (the
        same values in another order, e.g. channels last) would be misread silently, so they are refused."""
        if reset:
            self._sample_axes_ = shape
            return
        fitted = getattr(self, "_sample_axes_", shape)  # (models pickled before it was recorded)
        if len(shape) > 1 and len(fitted) > 1 and shape != fitted:
            raise ValueError(
                f"X has samples of shape {shape}, but {type(self).__name__} was fitted on samples of shape {fitted}: "
                "their flattened values would be read in another order; pass them as at fit, or flattened (N, D)"
            )

    def _layout_samples(self, X, *, reset: bool) -> np.ndarray:
        """:meth:`_layout` past the feature names: array checks, sample shape and layout."""
        X = check_array(to_numpy(X), dtype="numeric", ensure_2d=False, allow_nd=True, input_name="X", estimator=self)
        if X.ndim < 2:
            raise ValueError(f"X must have a sample axis and features, got shape {X.shape}. Reshape your data.")
        if min(X.shape[1:]) == 0:
            raise ValueError(f"X has an empty axis: shape {X.shape}")
        if not reset:
            self._check_flat_width(X)
        if self.input_shape is not None:  # rows or samples of any shape holding its values: (N, 28, 28) for (1, 28, 28)
            shape = resolve_shape(self.input_shape, int(np.prod(X.shape[1:])), entries=(2, 3))  # (C, H, W) or (C, T)
            if X.shape[1:] != shape:
                X = X.reshape(len(X), *shape)
        one_d = X.ndim == 3
        if self._sample_ndim == 1:
            self._check_flattened_shape(X.shape[1:], reset=reset)
            X = X.reshape(len(X), -1)
        elif one_d:  # (N, C, T) signals -> (N, C, 1, T)
            X = X[:, :, None, :]
        elif X.ndim != 4:
            raise ValueError(
                f"{type(self).__name__} takes (N, C, H, W) images, (N, C, T) signals, or (N, D) rows with "
                f"input_shape=(C, H, W); got shape {X.shape}"
            )
        sample_shape = X.shape[1:]
        name = type(self).__name__
        if reset:
            self.sample_shape_ = sample_shape
            self.one_d_ = one_d and self._sample_ndim == 3
            self.n_features_in_ = int(np.prod(sample_shape))
        elif self._sample_ndim == 1 and sample_shape != self.sample_shape_:
            raise ValueError(
                f"X has {sample_shape[0]} features, but {name} is expecting {self.sample_shape_[0]} features as input."
            )
        elif sample_shape[0] != self.sample_shape_[0]:
            raise ValueError(f"X has {sample_shape[0]} channel(s), but {name} was fitted on {self.sample_shape_[0]}")
        elif self._sample_ndim == 3 and one_d != self.one_d_:
            fitted = "(N, C, T) signals" if self.one_d_ else "(N, C, H, W) images"
            raise ValueError(f"X of shape {X.shape} is not laid out like the {fitted} {name} was fitted on")
        elif sample_shape != self.sample_shape_:  # a network with global pooling would run, on another scale
            shown = (lambda s: (s[0], s[2]) if self.one_d_ else s)
            raise ValueError(
                f"X has samples of shape {shown(sample_shape)}, but {name} was fitted on samples of shape "
                f"{shown(self.sample_shape_)}: its filters and statistics were learned at that size (another "
                "codec reduction or crop?); resize or re-encode the data as at fit"
            )
        if reset and self._sample_ndim == 3 and not one_d:
            _warn_if_channel_last(sample_shape, name)
        with np.errstate(over="ignore"):  # (refused just below)
            samples = np.ascontiguousarray(X, dtype=np.float32)
        if X.dtype.kind == "f" and X.dtype.itemsize > 4 and not np.isfinite(samples).all():  # finite in float64
            raise ValueError(
                "X holds values beyond float32's range (|x| > 3.4e38), which the network computes in; scale the data"
            )
        return samples

    def _check_flat_width(self, X: np.ndarray) -> None:
        """Flat ``(N, D)`` input of another width than fit's: scikit-learn's n_features error."""
        if X.ndim == 2 and X.shape[1] != self.n_features_in_:
            raise ValueError(
                f"X has {X.shape[1]} features, but {type(self).__name__} is expecting {self.n_features_in_} features "
                "as input."
            )

    # --------------------------------------------------------------------------------- fit --
    def fit(self, X, y):
        """Train on ``X`` with labels ``y``.

        Parameters
        ----------
        X : array-like or torch.Tensor
            ``(N, C, H, W)`` images/latents, ``(N, C, T)`` signals/latents, or ``(N, D)`` with
            ``input_shape``.
        y : array-like of shape (N,)
            Class labels (any hashable values).

        Returns
        -------
        self
        """
        self._validate_params()
        forget_fit(self)
        X = self._layout(X, reset=True)
        y = to_numpy(y)
        if getattr(y, "dtype", None) == np.float16:  # a float16 tensor's view: classes_ as float32, as before
            y = y.astype(np.float32)
        y = column_or_1d(y, warn=True)
        if len(y) != len(X):
            raise ValueError(f"X has {len(X)} samples but y has {len(y)}")
        check_classification_targets(y)
        encoder = LabelEncoder().fit(y)
        if len(encoder.classes_) < 2:
            raise ValueError(f"y has {len(encoder.classes_)} class; a classifier needs at least 2")
        y_encoded = encoder.transform(y).astype(np.int64)
        device = self._torch_device()
        seed = int(check_random_state(self.random_state).randint(np.iinfo(np.int32).max))
        with seeded(seed, device), torch.inference_mode(False):  # trainable inside a caller's inference_mode
            module = self._build_module(X.shape[1:], len(encoder.classes_))
            if self._standardize:
                module = Standardized(module, *_channel_statistics(X))
            net = self._make_net(module, y_encoded, seed, device)
            start = time.perf_counter()
            try:
                net.fit(_tensor(X), torch.from_numpy(y_encoded))
            except ValueError as exc:  # torch's words name neither the cause nor the parameter
                if "Expected more than 1 value per channel when training" not in str(exc):
                    raise
                raise ValueError(
                    f"batch_size={self.batch_size}: a batch normalisation layer of the network saw a single value "
                    "per channel (one sample, and a 1x1 feature map); use batch_size >= 2"
                ) from exc
            self.fit_time_ = time.perf_counter() - start
        net.module_.eval()
        self.classes_ = encoder.classes_
        self.net_ = net
        self.n_epochs_ = len(net.history)
        self.n_parameters_ = int(sum(p.numel() for p in net.module_.parameters()))
        sample = torch.zeros(1, *X.shape[1:], device=device)
        try:
            self.flops_per_sample_ = count_flops(net.module_, sample)
        except Exception as exc:  # an auxiliary figure: a model the counter trips on keeps its training
            warn(
                f"could not count the FLOPs of the trained model ({type(exc).__name__}: {exc}); flops_per_sample_ "
                "and training_flops_ are NaN", RuntimeWarning,
            )  # fmt: skip
            self.flops_per_sample_ = float("nan")
        n_valid = int(math.ceil(self.validation_fraction * len(X))) if net.train_split is not None else 0
        n_train = len(X) - n_valid - int(net.iterator_train__drop_last)  # a dropped batch of one is not trained on
        # forward + backward (about 2x forward) on training samples, forward only on validation ones
        self.training_flops_ = (3 * n_train + n_valid) * self.flops_per_sample_ * self.n_epochs_
        return self

    def __sklearn_is_fitted__(self):
        return hasattr(self, "net_")

    def _use_validation(self, y_encoded: np.ndarray) -> bool:
        """Early stopping needs a stratified split with every class on both sides."""
        if not (self.early_stopping and self.validation_fraction > 0):
            return False
        n_classes = int(y_encoded.max()) + 1
        n_valid = int(math.ceil(self.validation_fraction * len(y_encoded)))
        smallest = int(np.bincount(y_encoded).min())
        if n_valid < n_classes or len(y_encoded) - n_valid < n_classes or smallest < 2:
            warn(
                f"early stopping turned off: {len(y_encoded)} samples (smallest class: {smallest}) leave no "
                f"stratified validation split of {self.validation_fraction:g} with all {n_classes} classes; "
                f"training runs all {self.max_epochs} epochs",
                UserWarning,
            )
            return False
        return True

    def _make_net(self, module: nn.Module, y_encoded: np.ndarray, seed: int, device: torch.device):
        use_valid = self._use_validation(y_encoded)
        schedule = WarmupCosine(self.warmup_epochs, self.max_epochs)
        callbacks = [("schedule", LRScheduler(policy=torch.optim.lr_scheduler.LambdaLR, lr_lambda=schedule))]
        if use_valid:
            stopping = EarlyStopping(monitor="valid_loss", patience=self.patience, load_best=True)
            callbacks.append(("early_stopping", stopping))
        if self.verbose:
            callbacks.append(("progress", ProgressBar()))
        autocast = _autocast_dtype(self.mixed_precision, device)
        n_train = len(y_encoded) - (int(math.ceil(self.validation_fraction * len(y_encoded))) if use_valid else 0)
        return AutocastNet(
            module=module,
            criterion=nn.CrossEntropyLoss,
            criterion__label_smoothing=self.label_smoothing,
            optimizer=torch.optim.AdamW,
            optimizer__weight_decay=self.weight_decay,
            lr=self.lr,
            max_epochs=self.max_epochs,
            batch_size=self.batch_size,
            train_split=ValidSplit(self.validation_fraction, stratified=True, random_state=seed) if use_valid else None,
            iterator_train__shuffle=True,
            # A last batch of one sample would crash batch norm in training mode ("Expected more than 1 value
            # per channel"): drop it (one sample of an epoch, another one each epoch as the order shuffles).
            iterator_train__drop_last=n_train % self.batch_size == 1 and n_train > 1,
            callbacks=callbacks,
            device=str(device),
            autocast_dtype=autocast,
            verbose=int(bool(self.verbose)),
        )

    # ------------------------------------------------------------------------- prediction --
    def predict_proba(self, X) -> np.ndarray:
        """Class probabilities ``(N, n_classes)`` (softmax of the logits), rows summing to 1."""
        check_is_fitted(self)
        X = self._layout(X, reset=False)
        device = self._torch_device()
        if str(device) != str(self.net_.device):  # skorch's set_params would not move the weights
            self.net_.module_.to(device)
            self.net_.device = str(device)
            self.net_.autocast_dtype = _autocast_dtype(self.mixed_precision, device)  # CUDA autocast on the CPU warned
        with TORCH_GLOBALS:  # skorch's loader draws from torch's generator: not while another thread's seeded fit runs
            return self.net_.predict_proba(_tensor(X)).astype(np.float64)

    def predict(self, X) -> np.ndarray:
        """Most probable class per sample, in the original label values."""
        check_is_fitted(self)
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]

    # ---------------------------------------------------------------------------- helpers --
    def _torch_device(self) -> torch.device:
        return torch_device(self.device)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.three_d_array = True
        tags.non_deterministic = False
        return tags


def _warn_if_channel_last(shape: tuple, name: str) -> None:
    """Images passed channel-last train a network on scrambled axes without an error: say so at fit.

    Only square images are recognised (28x28x1, 32x32x3, 224x224x3): latents 1 to 4 wide are common too (RGB 4x
    latents of 32-pixel-wide images are 48 x H/8 x 4), and they must fit quietly.
    """
    channels, height, width = shape
    if width in (1, 3, 4) and channels == height >= 28:
        warn(
            f"X has samples of shape {shape}, read as (C, H, W) = {channels} channels of {height}x{width}: they look "
            f"channel-last (H, W, C); {name} takes (N, C, H, W), e.g. X.transpose(0, 3, 1, 2) (if they are (C, H, W) "
            "indeed, ignore this warning)",
            UserWarning,
        )


def _tensor(X: np.ndarray) -> torch.Tensor:
    """``torch.from_numpy`` without its warning on read-only arrays (joblib hands workers read-only memmaps):
    training and prediction only read ``X``, and a writeable copy would double the memory. (Python's warning
    filters are process-wide, so writeable arrays skip the filter change.)"""
    if X.flags.writeable:
        return torch.from_numpy(X)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable", category=UserWarning)
        return torch.from_numpy(X)


def _channel_statistics(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel (or per-feature) mean and std of a training batch, for :class:`Standardized`.

    In float32, and again in float64 (a group of channels at a time: at most 64 MB of temporaries) where float32
    overflowed: the squares of values near 1e19 made a channel's std infinite, which silently zeroed it.
    """
    axes = (0,) + tuple(range(2, X.ndim))
    with np.errstate(over="ignore", invalid="ignore"):
        mean, std = X.mean(axis=axes), X.std(axis=axes)
    if not (np.isfinite(mean).all() and np.isfinite(std).all()):
        mean, std = mean.astype(np.float64), std.astype(np.float64)
        step = max(1, 2**23 // X[:, :1].size)
        for c in range(0, X.shape[1], step):
            part = X[:, c : c + step].astype(np.float64)
            mean[c : c + step], std[c : c + step] = part.mean(axis=axes), part.std(axis=axes)
    # Constant channels/features keep a unit scale (as scikit-learn's StandardScaler does): dividing by a tiny
    # std would blow up any test value that differs. "Constant" is relative to the channel's own mean, so data in
    # small units (a spread of 1e-7 around 0) is still scaled: the std of a constant float32 column is 0 or at
    # most about 2 eps |mean| (measured up to 2e6 rows).
    std = np.where(std <= 10 * np.finfo(np.float32).eps * np.abs(mean), 1.0, std)
    return mean, std
