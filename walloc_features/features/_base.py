"""What every signal transformer shares: reading input against fit, batching, output layout.

Subclasses implement ``fit`` (calling :meth:`SignalTransformer._read_fit` first and
:meth:`SignalTransformer._set_fitted` last) and their encoder; this base keeps the conventions
identical across WaLLoC and the baselines: the same input rules, the same ``output="flat"`` /
``"tensor"`` behaviour, the same feature names and the same errors.
"""

from __future__ import annotations

import math
from numbers import Integral

import numpy as np
import torch
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import _check_feature_names_in, check_array, check_is_fitted

from .._device import torch_device
from .._memory import is_file_backed, iter_rows
from .._progress import progress
from .._warnings import warn
from ._signals import (
    MODALITIES, LazyRows, SignalLayout, check_finite, check_same_scale, input_scale, is_stored_elsewhere, native_dtype,
    extremes, read_signals, to_native, to_numpy, torch_viewable,
)  # fmt: skip

__all__ = ["SignalTransformer", "SIGNAL_CONSTRAINTS", "forget_fit", "fill_rows"]

#: Peak-to-peak signal range used by PSNR: images in [0, 1], audio in [-1, 1].
DATA_RANGE = {"image": 1.0, "audio": 2.0}
#: Valid sample range reconstructions are clipped to.
VALUE_RANGE = {"image": (0.0, 1.0), "audio": (-1.0, 1.0)}
#: Samples beyond these bounds are far off the scale a transformer reads (8-bit pixels or PCM samples as floats).
OFF_SCALE = {"image": (-0.5, 1.5), "audio": (-2.0, 2.0)}


def warn_if_off_scale(low: float, high: float, dtype, modality: str, consequence: str) -> None:
    """Warn at fit when samples read as stored (floats, int64 and other integers without a full scale) lie far off
    the signal scale: pixels 0..255 as int64 or floats. ``consequence``: what it does to the caller's output, with
    ``{scale}`` for the scale."""
    lowest, highest = OFF_SCALE[modality]
    if low >= lowest and high <= highest:
        return
    scale, hint = VALUE_RANGE[modality], {
        "image": "divide 8-bit pixels by 255 (or pass them as uint8, 16-bit ones as uint16)",
        "audio": "divide PCM samples by their full scale (or pass them as int16 / int32)",
    }[modality]  # fmt: skip
    warn(
        f"X ({np.dtype(dtype)}) spans [{low:.4g}, {high:.4g}], far off the {list(scale)} {modality} scale that "
        f"{np.dtype(dtype)} samples are read on: {consequence.format(scale=list(scale))}; {hint}",
        UserWarning,
    )  # fmt: skip
#: Relative deviation of the achieved from the requested reduction that earns a warning.
REDUCTION_TOLERANCE = 0.1
#: Parameter constraints shared by the signal transformers (merged into their own).
SIGNAL_CONSTRAINTS = {
    "output": [StrOptions({"flat", "tensor"})],
    "modality": [StrOptions(set(MODALITIES))],
    "input_shape": [tuple, list, None],
    "batch_size": [Interval(Integral, 1, None, closed="left")],
    "device": [str],
    "verbose": ["verbose"],
}


def fill_rows(n: int, parts, dtype=None, code_range=None) -> np.ndarray:
    """``(start, array)`` batch results -> one ``(n, ...)`` array (of ``dtype``, else the first batch's),
    allocated at the first batch and filled in place: memory holds the output and one batch, not all.

    ``code_range=(low, high)``: integer codes are saturated to it before the cast (a cast to a narrower
    integer would wrap around silently), with one warning that says how many values were clipped.
    """
    out, clipped = None, 0
    for start, part in parts:
        if out is None:
            out = np.empty((n, *part.shape[1:]), dtype=part.dtype if dtype is None else dtype)
        if code_range is not None:
            low, high = code_range
            outside = int(np.count_nonzero((part < low) | (part > high)))
            if outside:
                clipped += outside
                part = np.clip(part, low, high)
        out[start : start + len(part)] = part
    if clipped:
        warn(
            f"{clipped} of {out.size} codes fell outside code_range_ {tuple(code_range)} and were saturated to it; "
            "the likely cause is input off the [0, 1] image / [-1, 1] audio scale, such as float pixels on 0-255 "
            "(divide them by 255, or pass the uint8 array itself)",
            UserWarning,
        )
    return out


def check_float32_range(batch: np.ndarray, start: int) -> None:
    """Refuse a batch cast to float32 from finite (checked) float64 samples that became infinite there: the
    features would be inf, silently."""
    if not np.isfinite(batch).all():
        raise ValueError(
            f"samples {start}-{start + len(batch) - 1} hold values beyond float32's range (|x| > 3.4e38), which "
            "the transform computes in; scale the data"
        )


def _one_batch(batch, index: int, is_batch):
    """``batch`` as given, unless it is a sequence of arrays of different shapes (a DataLoader's ``[x, y]``),
    which would otherwise fail deep in numpy with "inhomogeneous shape", or one batch in a list (a DataLoader
    over a one-tensor TensorDataset yields ``[x]``, which numpy would stack into one sample of one more axis).
    ``is_batch(array)``: whether an array is laid out as a batch fit read (a list of one sample stays a list)."""
    if isinstance(batch, dict):
        raise TypeError(f"batch {index} is a dict (keys {list(batch)[:4]}); pass the samples' array of each batch")
    arrays = (np.ndarray, torch.Tensor)  # (not memoryviews: JPEG files of different sizes are one batch)
    if isinstance(batch, (list, tuple)) and len(batch) == 1 and isinstance(batch[0], arrays):
        if is_batch(batch[0]):
            return batch[0]
    if isinstance(batch, (list, tuple)) and len(batch) > 1 and all(isinstance(part, arrays) for part in batch):
        shapes = [tuple(part.shape) for part in batch]
        if len(set(shapes)) > 1:
            raise TypeError(
                f"batch {index} is a {type(batch).__name__} of {len(batch)} arrays of shapes {shapes[:3]}, not one "
                "batch: for a DataLoader over (x, y) pairs pass (x for x, _ in loader)"
            )
    return batch


def forget_fit(estimator) -> None:
    """Delete fitted attributes, so a fit that fails half-way leaves an unfitted estimator."""
    for name in [k for k in vars(estimator) if k.endswith("_") and not k.startswith("_")]:
        delattr(estimator, name)


class LayoutFollowsQuantize:
    """``latent_shape_`` derived from ``quantize`` as it is now, as ``transform`` reads it, for transformers whose
    codes and unquantized latents differ in channels (ResidualVQ: codebooks or vector dimensions; EnCodec:
    codebooks or embedding channels). Flat output, feature names and ``inverse_transform`` then agree after a
    ``set_params(quantize=...)`` on a fitted transformer. Subclasses define ``_latent_shape(quantize)`` from
    fitted attributes (AttributeError before fit, so ``hasattr(self, "latent_shape_")`` is False)."""

    @property
    def latent_shape_(self) -> tuple:
        try:
            return tuple(int(s) for s in self._latent_shape(bool(self.quantize)))
        except AttributeError:
            raise AttributeError("latent_shape_") from None  # unfitted, as scikit-learn expects

    @latent_shape_.setter
    def latent_shape_(self, value):
        if tuple(value) != self.latent_shape_:  # the fit records what the property derives: never two values
            raise AttributeError(f"latent_shape_ {tuple(value)} disagrees with the fitted {self.latent_shape_}")

    @latent_shape_.deleter
    def latent_shape_(self):  # forget_fit; pickles of older versions kept the value in __dict__
        self.__dict__.pop("latent_shape_", None)


class SignalTransformer(TransformerMixin, BaseEstimator):
    """Base class of the image/audio feature transformers (not for direct use).

    Subclasses define the parameters ``output``, ``modality``, ``input_shape``, ``batch_size``,
    ``device`` and ``verbose`` and the fitted attribute ``latent_shape_``. Fitted torch modules
    named in ``_torch_modules`` are pickled as a JSON-able spec plus numpy weights (see
    ``_module_spec`` / ``_build_module``), not as torch objects.
    """

    #: What samples far off the signal scale at fit do to this transformer's output (``warn_if_off_scale``).
    _off_scale_consequence = "inverse_transform clips reconstructions to {scale}"
    _torch_modules: tuple = ()

    def _module_spec(self, name: str, module) -> dict:
        """What rebuilds fitted module ``name`` (its architecture, not its weights)."""
        raise NotImplementedError

    def _build_module(self, name: str, spec: dict):
        """A fresh module from :meth:`_module_spec`'s output."""
        raise NotImplementedError

    def __getstate__(self):
        state = dict(super().__getstate__())  # BaseEstimator may hand back the live __dict__
        for name in self._torch_modules:
            module = state.pop(name, None)
            if module is not None:
                weights = {k: v.detach().cpu().numpy() for k, v in module.state_dict().items()}
                state[f"_pickled_{name}"] = (self._module_spec(name, module), weights)
        return state

    def __setstate__(self, state):
        pickled = {name: state.pop(f"_pickled_{name}") for name in self._torch_modules if f"_pickled_{name}" in state}
        super().__setstate__(state)
        for name, (spec, weights) in pickled.items():
            module = self._build_module(name, spec)
            module.load_state_dict({k: torch.from_numpy(v) for k, v in weights.items()}, strict=True)
            setattr(self, name, module.eval())

    # ------------------------------------------------------------------------- fit helpers --
    def _read_fit(self, X, modality=None, *, checked_by_batches=False):
        """Forget any earlier fit (a failed fit leaves an unfitted estimator), then read X
        (as ``modality``, by default the ``modality`` parameter).

        A memmap is checked for NaN and infinity batch by batch (:meth:`_check_stored`), or not here at all
        with ``checked_by_batches=True``, for fits that read every batch through ``_stored_batches`` before
        they learn anything.
        """
        forget_fit(self)
        modality = self.modality if modality is None else modality
        X, layout = read_signals(self, X, modality=modality, input_shape=self.input_shape, reset=True, batched=True)
        if not checked_by_batches:
            self._check_stored(X)
        return X, layout

    def _sample_range(self, X, modality: str) -> tuple[float, float] | None:
        """Lowest and highest sample of ``X`` read as stored (floats, and integers without a full scale such as
        int64), read batch by batch (each checked as ``_stored_batches`` checks it, so a fit that calls this
        first can pass ``checked_by_batches=True``), with a warning when far off the signal scale; None for
        uint8 / int16 and the other integers divided by their full scale, on it by construction."""
        if input_scale(X.dtype) != 1:
            return None
        low, high = math.inf, -math.inf
        for _, part in self._stored_batches(X, "sample range"):
            low, high = extremes(part, low, high)
        if low <= high:
            warn_if_off_scale(low, high, X.dtype, modality, self._off_scale_consequence)
        return low, high

    def _check_stored(self, X) -> None:
        """The finiteness check ``read_signals(batched=True)`` leaves to the caller, for a float memmap (or
        :class:`LazyRows`, which checks the rows it reads), one batch at a time with its pages released: a scan
        of the whole array would make all of it resident."""
        if (is_file_backed(X) or isinstance(X, LazyRows)) and X.dtype.kind == "f":
            for _ in self._stored_batches(X, "checking X"):
                pass

    def _set_fitted(self, layout: SignalLayout, dtype, latent_shape: tuple) -> None:
        """Record what transform checks against; call at the very end of a successful fit."""
        self.layout_ = layout
        self.modality_ = layout.modality
        self.input_shape_ = layout.sample_shape
        self.input_dtype_ = native_dtype(np.float32 if dtype == np.bool_ else dtype).str  # bools: 0 / 1 values
        self.latent_shape_ = tuple(int(s) for s in latent_shape)
        self.reduction_ = float(np.prod(self.input_shape_) / np.prod(self.latent_shape_))

    def _warn_if_reduction_missed(self, requested: float, why: str = "", per_block: float | None = None) -> None:
        """Say so when ``reduction_`` is more than REDUCTION_TOLERANCE away from the request.

        Block codecs pass the reduction of one whole block, ``per_block``: padding the edges to whole blocks is
        their documented rule (``reduction_`` says what it reaches; 12.25 for 28x28 digits at 16x), and only a
        miss of the block's own ratio, or padding that more than doubles the output (stereo clips read as 2-row
        images: 4x for 16x), is worth a warning.
        """
        achieved = self.reduction_ if per_block is None else per_block
        padded = per_block is not None and self.reduction_ < max(1.0, per_block / 2)  # (< 1: output > input)
        if abs(achieved / requested - 1) > REDUCTION_TOLERANCE or padded:
            padding = ", most of it lost to padding the samples to whole blocks" if padded else ""
            warn(
                f"reduction={requested:g} is not reachable for samples of shape {self.input_shape_}"
                f"{why}; the achieved reduction_ is {self.reduction_:.3g}{padding}",
                UserWarning,
            )

    def __sklearn_is_fitted__(self):
        return hasattr(self, "latent_shape_")

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.three_d_array = True
        # Continuous output is float32 whatever comes in; quantized output is integer codes.
        tags.transformer_tags.preserves_dtype = [] if getattr(self, "quantize", False) else ["float32"]
        return tags

    # ----------------------------------------------------------------------- input checks --
    def _read(self, X, *, batched=False):
        """Validate transform-time input against what fit saw.

        ``batched=True``: the caller reads ``X`` through ``_stored_batches`` (or ``_iter_batches``), which
        checks a memmap's finiteness batch by batch, so it is not scanned (and made resident) here.
        """
        if not self.__sklearn_is_fitted__():  # scikit-learn's check (its tags lookup) only to raise its error
            check_is_fitted(self)
        layout = self.layout_
        input_shape = layout.flat_shape  # how fit reshaped flat rows
        if input_shape is None and self.input_shape is not None:  # fit saw the samples in shape: rows take it
            input_shape = layout.sample_shape if layout.has_channel_axis else layout.spatial
        # Tensor output takes signals of other lengths, flat rows included: those of input_shape=(1, -1) (-1
        # resolved per call) and (N, T) mono audio. Flat output needs fit's width (n_features_in_ is checked).
        any_length = self.output == "tensor" and (
            (self.input_shape is not None and -1 in tuple(self.input_shape))
            or (self.input_shape is None and layout.modality == "audio" and not layout.has_channel_axis)
        )
        if any_length and self.input_shape is not None:
            input_shape = self.input_shape
        one = layout.sample_shape if layout.has_channel_axis else layout.spatial  # a sample as fit's caller gave it
        shape = getattr(X, "shape", None)
        # (1, T) after (N, 1, T) is one mono clip either way, and (1, H, W) after (N, 1, H, W) one image: both work
        single_channel = layout.has_channel_axis and layout.channels == 1
        rows = input_shape is not None and getattr(X, "ndim", 0) == 2  # 2-D X is read as rows of input_shape
        if layout.flat_shape is None and len(one) >= 2 and shape is not None and tuple(shape) == one and not (
                single_channel or rows):  # fmt: skip
            message = f"X of shape {tuple(shape)} is one sample of the fitted shape: pass X[None], a batch of one"
            if layout.has_channel_axis:  # (C, ...) is also C single-channel samples, which X[None] would merge
                what = "mono clips" if layout.modality == "audio" else "single-channel images"
                message += (
                    f"; if it is {shape[0]} {what}, repeat each on the {layout.channels} fitted channels: "
                    f"np.repeat(X[:, None], {layout.channels}, axis=1)"
                )
            raise ValueError(message)  # else read as a batch of smaller samples, refused with a message about those
        if (input_shape is None and layout.modality == "audio" and layout.channels > 1 and getattr(X, "ndim", 0) == 2
                and not hasattr(X, "columns")):  # fmt: skip
            raise ValueError(  # else scikit-learn's "X has T features" would name fit's width, not the channels
                f"X of shape {tuple(X.shape)} is mono audio (N, T), but {type(self).__name__} was fitted on "
                f"{layout.channels} channels: pass (N, {layout.channels}, T) clips (load_audio_folder(..., "
                f"mono=False)), or repeat a mono clip on every channel: "
                f"np.repeat(X[:, None], {layout.channels}, axis=1)"
            )
        X, new = read_signals(
            self, X, modality=layout.modality, input_shape=input_shape, reset=False, batched=batched,
            any_width=any_length,
        )  # fmt: skip
        name = type(self).__name__
        if new.channels != layout.channels:
            hint = ""
            if new.has_channel_axis and X.shape[-1] == layout.channels:  # (N, H, W, C) images, (N, T, C) audio
                axes = "0, 3, 1, 2" if X.ndim == 4 else "0, 2, 1"
                hint = f"; X of shape {tuple(X.shape)} looks channel-last: use X.transpose({axes})"
            raise ValueError(f"X has {new.channels} channel(s), but {name} was fitted on {layout.channels}{hint}")
        if new.ndim != layout.ndim:
            raise ValueError(f"X is {new.modality}, but {name} was fitted on {layout.modality}")
        if self.output == "flat" and new.spatial != layout.spatial:
            raise ValueError(
                f"X has samples of size {new.spatial}, but {name} was fitted on {layout.spatial}; flat "
                "output needs the fitted size (use output='tensor' to encode other sizes)"
            )
        check_same_scale(self.input_dtype_, X.dtype)
        return X, new

    def transform_batches(self, batches):
        """Transform a stream of batches one at a time: memory bounded by one batch, whatever the total.

        ``transform`` already reads a ``numpy.memmap``, an h5py, zarr or dask array, or a bfloat16
        tensor, batch by batch (``batch_size`` samples; a memmap's pages are released once read), so only
        its output is held in memory; use this for data that is not one array at all (a generator over
        files, a ``DataLoader``, chunks of a store), or to hold not even the output.

        Parameters
        ----------
        batches : iterable of array-like
            Each one is what :meth:`transform` takes (same layout, any number of samples). A
            ``DataLoader`` over ``(x, y)`` pairs yields ``[x, y]`` lists: pass ``(x for x, _ in loader)``.

        Returns
        -------
        features : generator of ndarray
            ``transform(batch)`` for each batch, computed when it is asked for.

        Examples
        --------
        >>> import numpy as np
        >>> from walloc_features import WaLLoCTransformer
        >>> X = np.random.default_rng(0).integers(0, 256, (8, 3, 32, 32), dtype=np.uint8)
        >>> codec = WaLLoCTransformer(J=2, latent_dim=6).fit(X)
        >>> stream = (X[i : i + 2] for i in range(0, 8, 2))
        >>> [Z.shape for Z in codec.transform_batches(stream)]
        [(2, 384), (2, 384), (2, 384), (2, 384)]
        """
        check_is_fitted(self)
        # iterating one array would hand transform single samples
        if isinstance(batches, (np.ndarray, torch.Tensor)) or is_stored_elsewhere(batches):
            raise TypeError(
                f"transform_batches takes an iterable of batches, got one {type(batches).__name__}: use transform(X), "
                "which already reads arrays, memmaps and h5py / zarr datasets batch_size samples at a time (for one "
                "array of stacked batches, pass (X[i] for i in range(len(X))))"
            )
        return (self.transform(_one_batch(batch, index, self._is_batch)) for index, batch in enumerate(batches))

    def _is_batch(self, array) -> bool:
        """Whether ``array`` is laid out as a batch of what fit read: rows of the fitted width, or of
        ``input_shape`` (a sample of flat rows reshaped to it, ``(8, 8)`` or ``(2, T)``, is one sample);
        ``(N, C, *spatial)``, or ``(N, *spatial)`` without a channel axis, which also takes ``(N, 1,
        *spatial)`` as ``transform`` does (a DataLoader over ``(N, 1, H, W)`` after an ``(N, H, W)`` fit: no
        sample has that many axes). Not the reverse: after an ``(N, 1, T)`` fit, ``(2, T)`` may be one stereo
        clip, refused as such, as much as two mono ones."""
        layout = self.layout_
        if layout.flat_shape is not None:
            shape = tuple(array.shape)
            return (len(shape) == 2 and shape[1] == self.n_features_in_) or shape[1:] == tuple(layout.flat_shape)
        if not layout.has_channel_axis and array.ndim == 2 + layout.ndim and array.shape[1] == 1:
            return True
        return array.ndim == 1 + layout.has_channel_axis + layout.ndim

    def _read_latents(self, X) -> np.ndarray:
        """Flat rows or channel-first latents -> ``(N, *latent grid)`` for inverse_transform."""
        check_is_fitted(self)
        Z = check_array(to_numpy(X), dtype="numeric", ensure_2d=False, allow_nd=True, input_name="X", estimator=self)
        n_flat = int(np.prod(self.latent_shape_))
        if Z.ndim == 2:
            if Z.shape[1] != n_flat:
                raise ValueError(f"X has {Z.shape[1]} features, but {type(self).__name__} produces {n_flat}")
            Z = Z.reshape(len(Z), *self.latent_shape_)
        if Z.ndim != len(self.latent_shape_) + 1 or Z.shape[1] != self.latent_shape_[0] or min(Z.shape[2:]) < 1:
            raise ValueError(
                f"expected latents (N, {n_flat}) or (N, {', '.join(map(str, self.latent_shape_))}) "
                f"(any non-empty grid in tensor mode), got shape {Z.shape}"
            )
        return Z

    def _output_size(self, grid: tuple, output_size, limit=None) -> tuple | None:
        """Size to crop reconstructions to: the caller's, else fit's when the grid is fit's.

        The caller's ``output_size`` must be ``ndim`` positive integers, each at most ``limit`` (the size
        the latents of ``grid`` reconstruct, when the transformer can tell before decoding): reconstructions
        are cropped to it, never padded or resampled.
        """
        if output_size is None:
            return self.layout_.spatial if tuple(grid) == tuple(self.latent_shape_[1:]) else None
        ndim = self.layout_.ndim
        entries = (output_size,) if np.isscalar(output_size) else output_size
        try:
            entries = tuple(entries)
        except TypeError:
            entries = ()
        if len(entries) != ndim or not all(isinstance(s, Integral) and not isinstance(s, bool) for s in entries):
            raise ValueError(f"output_size must be {ndim} positive integer(s) ({self.modality_}), got {output_size!r}")
        size = tuple(int(s) for s in entries)
        if min(size) < 1:
            raise ValueError(f"output_size must be positive, got {output_size!r}")
        if limit is not None:
            self._check_output_size(size, limit)
        return size

    def _check_output_size(self, size: tuple, limit) -> None:
        """Refuse an ``output_size`` beyond what the reconstruction holds (cropping cannot grow it)."""
        limit = tuple(int(n) for n in limit)
        if any(s > n for s, n in zip(size, limit, strict=True)):
            raise ValueError(
                f"output_size={size} exceeds {limit}, the size these latents reconstruct; output_size crops the "
                "reconstruction, it cannot enlarge it"
            )

    def _restore(self, signals: np.ndarray) -> np.ndarray:
        """Clip reconstructions to the valid range and return them in the fit input's layout."""
        low, high = VALUE_RANGE[self.modality_]
        return self.layout_.restore(np.clip(signals, low, high, out=signals))

    # ------------------------------------------------------------------------------ output --
    def _format_output(self, Z: np.ndarray) -> np.ndarray:
        if self.output == "tensor":
            config = getattr(self, "_sklearn_output_config", {}).get("transform")
            if config not in (None, "default"):
                raise ValueError(
                    f'set_output(transform="{config}") needs output="flat"; tensor latents are not tabular'
                )
            return Z
        return Z.reshape(len(Z), int(np.prod(Z.shape[1:])))  # also for zero samples

    def get_feature_names_out(self, input_features=None):
        """Names ``z{channel}_{row}_{col}`` (images) or ``z{channel}_{t}`` (audio) of flat output.

        ``input_features`` is only checked (against ``feature_names_in_`` / ``n_features_in_``, as scikit-learn
        checks it): the names describe latents, not input columns.
        """
        check_is_fitted(self)
        _check_feature_names_in(self, input_features, generate_names=False)
        index = np.indices(self.latent_shape_).reshape(len(self.latent_shape_), -1).T
        return np.asarray(["z" + "_".join(map(str, idx)) for idx in index], dtype=object)

    # ---------------------------------------------------------------------------- batching --
    def _torch_device(self) -> torch.device:
        return torch_device(self.device)

    def _stored_batches(self, X, desc, *, samples=True):
        """Yield ``(start, X[start : start + batch_size])`` as stored; a memmap's batches are checked for
        finiteness (``_read(batched=True)`` left that to them), in native byte order, and released once the
        caller moves on.

        ``samples=False`` for latents (inverse transforms): the float samples of a transformer fitted on integers
        are checked against the signal scale (:meth:`_check_float_scale`), latents are not on it.
        """
        check = is_file_backed(X)
        on_scale = samples and input_scale(X.dtype) == 1 and self._fitted_on_scale()  # samples read as stored
        total = -(-len(X) // self.batch_size)  # (one batch, as fit's probes read, shows no bar: 0/1 then gone)
        batches = progress(iter_rows(X, self.batch_size), self.verbose and total > 1, desc=desc, total=total,
                           leave=False)  # fmt: skip
        for start, part in batches:
            if check:  # scikit-learn's message, one batch at a time
                check_finite(part, self)
            if on_scale:
                self._check_float_scale(part, start)
            yield start, to_native(part)

    def _fitted_on_scale(self) -> bool:
        """Whether fit read samples on the signal scale: integers divided by their full scale (uint8, int16), or
        samples read as stored (floats, int64) within it, as ``input_range_`` (recorded by the transformers that
        scan their fit input) says."""
        if input_scale(np.dtype(getattr(self, "input_dtype_", "f4"))) != 1:
            return True
        fit_range = getattr(self, "input_range_", None)
        if fit_range is None:
            return False
        lowest, highest = OFF_SCALE[self.modality_]
        return lowest <= fit_range[0] and fit_range[1] <= highest

    def _check_float_scale(self, batch: np.ndarray, start: int) -> None:
        """Refuse float samples far off the signal scale when fit read samples on it: uint8 pixels (or floats in
        [0, 1]) in fit and pixels as floats on 0-255 later were encoded as a 255x brighter image (latents and
        codes saturated) without a word. Floats are read as they are, integers divided by their full scale."""
        if not batch.size:
            return
        low, high = extremes(batch)
        lowest, highest = OFF_SCALE[self.modality_]
        if lowest <= low and high <= highest:
            return
        fitted = np.dtype(self.input_dtype_)
        if input_scale(fitted) == 1:  # floats, int64: read as stored
            hint = {"image": "255 (8-bit pixels)", "audio": "32768 (16-bit PCM)"}[self.modality_]
            fit_low, fit_high = self.input_range_
            raise ValueError(
                f"X ({batch.dtype}) spans [{low:.4g}, {high:.4g}] in samples {start}-{start + len(batch) - 1}, far "
                f"off the {list(VALUE_RANGE[self.modality_])} {self.modality_} scale {type(self).__name__} was "
                f"fitted on ({fitted} samples in [{fit_low:.4g}, {fit_high:.4g}]): its features would not be on "
                "the fitted scale (latents and codes saturate). "
                f"Divide X by its full scale, e.g. {hint}, or fit on samples of X's scale"
            )
        full_scale = f"{1 / input_scale(fitted):.6g}"
        raise ValueError(
            f"X ({batch.dtype}) spans [{low:.4g}, {high:.4g}] in samples {start}-{start + len(batch) - 1}, far off "
            f"the {list(VALUE_RANGE[self.modality_])} {self.modality_} scale: {type(self).__name__} was fitted on "
            f"{fitted} samples, which it divides by {full_scale}, and reads floats as they are. Divide X by "
            f"{full_scale} (or pass it as {fitted})"
        )

    def _iter_batches(self, X, device, desc, *, scale=None, raw=False, samples=True):
        """Yield ``(start, float32 tensor)``; only one batch is converted (and scaled) at a time.

        ``raw=True`` is for consumers that only read their input and fold the scale into their first
        copy: integer samples stay integers (unscaled; apply ``input_scale(X.dtype)``), and writeable
        C-contiguous batches (integers or float32) are views of ``X``, not copies. ``samples=False`` for
        latents (see :meth:`_stored_batches`).
        """
        scale = input_scale(X.dtype) if scale is None else scale
        keep = raw and X.dtype.kind in "iu"
        wide = X.dtype.kind == "f" and X.dtype.itemsize > 4  # float64: cast here, and checked for overflow
        for start, part in self._stored_batches(X, desc, samples=samples):
            if wide:
                with np.errstate(over="ignore"):  # beyond float32's range: refused here, without numpy's warning
                    part = np.asarray(part, dtype=np.float32)  # a fresh array: the branches below need not copy it
                check_float32_range(part, start)  # (numpy's isfinite: ~30x torch's on one CPU thread)
            if raw:  # the batch as stored when torch can view it: integers, or float32
                view = np.asarray(part) if keep else np.asarray(part, dtype=np.float32)
                if not torch_viewable(view):
                    view = np.array(view, order="C")
                batch = torch.from_numpy(view)
                if not keep and scale != 1.0:
                    batch = batch * scale
            else:
                batch = torch.from_numpy(part if wide else np.array(part, dtype=np.float32))
                if scale != 1.0:
                    batch.mul_(scale)
            yield start, batch.to(device)
