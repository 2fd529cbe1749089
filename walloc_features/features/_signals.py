"""Where data enters: validation and layout of image and audio batches for every transformer.

Accepted inputs (numpy arrays, array-likes or torch tensors):

* images ``(N, C, H, W)`` or ``(N, H, W)``: uint8 in [0, 255] (scaled by 1/255), uint16
  (scaled by 1/65535) or float in [0, 1];
* audio ``(N, C, T)`` or ``(N, T)``: float in [-1, 1];
* flat rows ``(N, D)`` with ``input_shape`` giving the per-sample shape (one entry may be -1).

``modality="auto"`` decides: 4-D -> image; 2-D without ``input_shape`` -> mono audio; 3-D (or a
2-entry ``input_shape``) -> audio when the last axis is at least 32x longer than the one before
it (``(N, 2, 16000)`` is stereo audio, ``(N, 28, 28)`` grayscale images), else image. Pass
``modality`` explicitly when that rule does not fit your data.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.utils import check_array
from sklearn.utils.validation import validate_data

MODALITIES = ("auto", "image", "audio")


@dataclass(frozen=True)
class SignalLayout:
    """How a batch's rows map to ``(N, C, *spatial)`` signals, so outputs can be mapped back."""

    modality: str  # "image" or "audio"
    channels: int
    spatial: tuple  # (H, W) or (T,)
    has_channel_axis: bool  # False for (N, H, W) images and (N, T) audio
    flat: bool  # rows were reshaped with input_shape

    @property
    def ndim(self) -> int:
        return len(self.spatial)

    @property
    def sample_shape(self) -> tuple:
        return (self.channels, *self.spatial)

    def restore(self, signals: np.ndarray) -> np.ndarray:
        """``(N, C, *spatial)`` -> the caller's layout."""
        if self.flat:
            return signals.reshape(len(signals), -1)
        if not self.has_channel_axis:
            return signals[:, 0]
        return signals


def input_scale(dtype) -> float:
    """Factor that maps stored samples to [0, 1] images / [-1, 1] audio."""
    dtype = np.dtype(dtype)
    if dtype == np.uint8:
        return 1 / 255
    if dtype == np.uint16:
        return 1 / 65535
    return 1.0


def to_numpy(X):
    """torch tensors -> numpy (other inputs pass through for check_array)."""
    import torch

    if isinstance(X, torch.Tensor):
        return X.detach().cpu().numpy()
    return X


def _resolve_shape(input_shape, n_features: int) -> tuple:
    """Per-sample shape from ``input_shape``, filling one -1 like numpy.reshape."""
    shape = tuple(int(s) for s in input_shape)
    if not 1 <= len(shape) <= 3 or shape.count(-1) > 1 or any(s == 0 or s < -1 for s in shape):
        raise ValueError(f"input_shape must have 1 to 3 positive entries (one may be -1), got {input_shape!r}")
    known = int(np.prod([s for s in shape if s != -1]))
    if -1 in shape:
        if n_features % known:
            raise ValueError(f"X has {n_features} features, which input_shape={input_shape!r} cannot reshape")
        shape = tuple(n_features // known if s == -1 else s for s in shape)
    if int(np.prod(shape)) != n_features:
        raise ValueError(
            f"X has {n_features} features, but input_shape={input_shape!r} needs {int(np.prod(shape))}"
        )
    return shape


def _looks_like_audio(shape: tuple) -> bool:
    """The documented 3-D rule: a time axis at least 32x longer than the axis before it."""
    return shape[-1] >= 32 * shape[-2]


def read_signals(estimator, X, *, modality: str, input_shape=None, reset: bool) -> tuple[np.ndarray, SignalLayout]:
    """Validate ``X`` and return it as ``(N, C, *spatial)`` plus its :class:`SignalLayout`.

    2-D input goes through scikit-learn's ``validate_data`` (so ``n_features_in_`` and
    ``feature_names_in_`` follow the usual rules); other inputs through ``check_array``.
    The array keeps its dtype (uint8 stays uint8): conversion to float happens per batch.
    """
    if modality not in MODALITIES:
        raise ValueError(f"modality must be one of {MODALITIES}, got {modality!r}")
    X = to_numpy(X)
    if not hasattr(X, "ndim"):  # lists and other array-likes
        X = np.asarray(X)
    if X.ndim == 2 or hasattr(X, "columns"):
        X = validate_data(estimator, X, reset=reset, dtype="numeric", ensure_all_finite=True)
    else:
        X = check_array(
            X, dtype="numeric", ensure_all_finite=True, ensure_2d=False, allow_nd=True,
            input_name="X", estimator=estimator,
        )  # fmt: skip
        if X.ndim not in (3, 4):
            raise ValueError(
                f"Expected 2-D (N, D) / (N, T), 3-D (N, H, W) / (N, C, T) or 4-D (N, C, H, W) input, "
                f"got an array of shape {X.shape}. Reshape your data, e.g. X[None] for a single sample."
            )
        if X.shape[0] == 0:
            raise ValueError(f"Found array with 0 sample(s) (shape={X.shape}) while a minimum of 1 is required.")
        if reset:
            estimator.n_features_in_ = int(np.prod(X.shape[1:]))
    if X.dtype.kind == "c":
        raise ValueError("Complex data not supported")
    if X.dtype == np.bool_:
        X = X.astype(np.uint8)

    flat = X.ndim == 2 and input_shape is not None
    if flat:
        X = X.reshape(len(X), *_resolve_shape(input_shape, X.shape[1]))
    if X.ndim == 4:
        layout_modality, has_channel_axis = "image", True
        if modality == "audio":
            raise ValueError(f"4-D input {X.shape} cannot be audio; audio is (N, C, T) or (N, T)")
    elif X.ndim == 2:
        layout_modality, has_channel_axis = "audio", False
        if modality == "image":
            raise ValueError(
                f"2-D input {X.shape} is read as (N, T) audio; for flattened images pass input_shape=(C, H, W)"
            )
    else:  # 3-D: (N, H, W) image or (N, C, T) audio
        if modality == "auto":
            layout_modality = "audio" if _looks_like_audio(X.shape) and X.dtype != np.uint8 else "image"
        else:
            layout_modality = modality
        has_channel_axis = layout_modality == "audio"
    if not has_channel_axis:
        X = X[:, None]
    layout = SignalLayout(
        modality=layout_modality, channels=int(X.shape[1]), spatial=tuple(int(s) for s in X.shape[2:]),
        has_channel_axis=has_channel_axis, flat=flat,
    )  # fmt: skip
    return X, layout
