"""Where data enters: validation and layout of image and audio batches for every transformer.

Accepted inputs (numpy arrays, array-likes or torch tensors):

* images ``(N, C, H, W)`` or ``(N, H, W)``;
* audio ``(N, C, T)`` or ``(N, T)``;
* flat rows ``(N, D)`` with ``input_shape`` giving the per-sample shape (one entry may be -1).

Sample values are read by dtype: uint8 / 1/255 and uint16 / 1/65535 (pixels), int8 / 1/128,
int16 / 1/32768 and int32 / 1/2**31 (PCM), bool as 0/1; floats and other integer types are taken
as they are, on the [0, 1] image / [-1, 1] audio scale. uint8 / uint16 audio is refused: unsigned PCM
(8-bit WAV) is centred on 128, not 0.

Arrays stored elsewhere (an h5py or zarr dataset, a dask array, a bfloat16 tensor) are read a slice of
rows at a time through :class:`LazyRows`, never whole.

``modality="auto"`` decides: 4-D -> image; 2-D without ``input_shape`` -> mono audio; 3-D (or a
2-entry ``input_shape``) -> audio when the last axis is at least 32x longer than the one before
it (``(N, 2, 16000)`` is stereo audio, ``(N, 28, 28)`` grayscale images), else image. Channel-last
batches (``(N, H, W, 3)``, ``(N, T, 2)``) are refused with a hint rather than misread. Pass
``modality`` explicitly when the rule does not fit your data.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from numbers import Integral

import numpy as np
import torch
from scipy.sparse import issparse
from sklearn import get_config
from sklearn.utils import assert_all_finite, check_array
from sklearn.utils.validation import _check_feature_names, _check_n_features, validate_data
from torch.utils.data import DataLoader, Dataset

from .._memory import is_file_backed

MODALITIES = ("auto", "image", "audio")

#: Stored sample value -> signal value, by dtype (others: 1).
_SCALES = {
    np.dtype(np.uint8): 1 / 255,
    np.dtype(np.uint16): 1 / 65535,
    np.dtype(np.int8): 1 / 2**7,
    np.dtype(np.int16): 1 / 2**15,
    np.dtype(np.int32): 1 / 2**31,
}


@dataclass(frozen=True)
class SignalLayout:
    """How a batch's rows map to ``(N, C, *spatial)`` signals, so outputs can be mapped back."""

    modality: str  # "image" or "audio"
    channels: int
    spatial: tuple  # (H, W) or (T,)
    has_channel_axis: bool  # False for (N, H, W) images and (N, T) audio
    flat_shape: tuple | None = None  # per-sample shape rows were reshaped to (input_shape)

    @property
    def ndim(self) -> int:
        return len(self.spatial)

    @property
    def sample_shape(self) -> tuple:
        return (self.channels, *self.spatial)

    def restore(self, signals: np.ndarray) -> np.ndarray:
        """``(N, C, *spatial)`` -> the caller's layout (flat rows only at the fitted size)."""
        if self.flat_shape is not None and tuple(signals.shape[2:]) == self.spatial:
            return signals.reshape(len(signals), -1)
        if not self.has_channel_axis:
            return signals[:, 0]
        return signals

    def to_dict(self) -> dict:
        return {"modality": self.modality, "channels": self.channels, "spatial": list(self.spatial),
                "has_channel_axis": self.has_channel_axis,
                "flat_shape": None if self.flat_shape is None else list(self.flat_shape)}  # fmt: skip

    @classmethod
    def from_dict(cls, d: dict) -> "SignalLayout":
        flat = d.get("flat_shape")
        return cls(d["modality"], int(d["channels"]), tuple(d["spatial"]), bool(d["has_channel_axis"]),
                   None if flat is None else tuple(flat))  # fmt: skip


def input_scale(dtype) -> float:
    """Factor that maps stored samples to [0, 1] images / [-1, 1] audio (see module doc)."""
    return _SCALES.get(native_dtype(dtype), 1.0)


def native_dtype(dtype) -> np.dtype:
    """``dtype`` in this machine's byte order (big-endian ``>i2`` PCM is int16 all the same)."""
    return np.dtype(dtype).newbyteorder("=")


def to_native(X: np.ndarray) -> np.ndarray:
    """``X`` in native byte order (torch refuses others); a copy only when it is not native already."""
    return X if X.dtype.isnative else X.astype(native_dtype(X.dtype))


def check_same_scale(fit_dtype, dtype) -> None:
    """Refuse an integer dtype whose scale differs from fit's (uint8 pixels then int64 pixels).

    Floats and bools (0 / 1 values) are always accepted: uint8 in fit and floats in [0, 1] later is the same
    signal.
    """
    fit_dtype, dtype = np.dtype(fit_dtype), np.dtype(dtype)
    if fit_dtype.kind in "iu" and dtype.kind in "iu" and input_scale(fit_dtype) != input_scale(dtype):
        raise ValueError(
            f"X has dtype {dtype}, but the transformer was fitted on {fit_dtype}; these integer types are "
            f"read on different scales (x {input_scale(dtype):.3g} vs x {input_scale(fit_dtype):.3g}). "
            f"Convert X to {fit_dtype}, or to floats on the [0, 1] image / [-1, 1] audio scale."
        )


def to_numpy(X, name: str = "X"):
    """torch tensors -> numpy (other inputs pass through for check_array, unless they would be misread).

    A CPU tensor becomes a view, float16 included (each batch is converted to float32 as it is read: a float32
    copy of the whole tensor was 2x its memory); bfloat16, which numpy lacks, is converted to float32 whole
    (the transformers' fit and transform read it through :class:`LazyRows` instead, a batch at a time).
    What scikit-learn's checks would read wrongly is refused or made plain here: a masked array's masked values
    (its mask was dropped and the values under it read), pandas' nullable columns (``UInt8``, ``Int16``: read
    as float64, so pixels lost their 1/255 scale; with ``pd.NA``, integer labels were rounded through float64),
    and structured arrays. ``name`` is the argument the messages name.
    """
    if isinstance(X, (list, tuple)) and X and all(isinstance(x, torch.Tensor) for x in X):
        if len({tuple(x.shape) for x in X}) == 1:  # (numpy refuses those that require grad or hold bfloat16)
            return to_numpy(torch.stack([x.detach() for x in X]), name)
        return X  # (of several shapes: refused by the caller's checks)
    if isinstance(X, torch.Tensor):
        if X.is_meta:
            raise ValueError(f"{name} is a tensor on the 'meta' device, which holds no values")
        X = X.detach().cpu()
        if X.dtype == torch.bfloat16:
            X = X.float()
        return X.numpy()
    if isinstance(X, np.ma.MaskedArray):
        if np.ma.is_masked(X):
            raise ValueError(
                f"{name} is a masked array with {np.ma.count_masked(X)} masked value(s), which would be read as the "
                f"values under the mask: fill them ({name}.filled(value)) or leave those samples out"
            )
        return np.ma.getdata(X)
    if isinstance(X, np.ndarray) and X.dtype.names:
        raise TypeError(
            f"{name} has a structured dtype (fields {', '.join(X.dtype.names[:4])}): pass a plain numeric array "
            "(numpy.lib.recfunctions.structured_to_unstructured)"
        )
    if type(X).__module__.partition(".")[0] == "pandas" and hasattr(X, "isna"):  # a DataFrame or Series (not dask's)
        return _without_nullable_dtypes(X, name)
    return X


def _without_nullable_dtypes(X, name: str):
    """pandas columns of nullable dtypes (Int16, UInt8, Float32, boolean) as their numpy dtypes, so the integer
    scale survives; their missing values (pd.NA) are refused by name."""
    import pandas as pd

    dtypes = dict(X.dtypes) if isinstance(X, pd.DataFrame) else {X.name: X.dtype}
    nullable = {c: d.numpy_dtype for c, d in dtypes.items()
                if isinstance(d, pd.api.extensions.ExtensionDtype) and hasattr(d, "numpy_dtype")}  # fmt: skip
    if not nullable:
        return X
    columns = X[list(nullable)] if isinstance(X, pd.DataFrame) else X
    if columns.isna().to_numpy().any():
        raise ValueError(f"{name} holds missing values (pd.NA): fill them or leave those samples out")
    return X.astype(nullable) if isinstance(X, pd.DataFrame) else X.astype(next(iter(nullable.values())))


def is_stored_elsewhere(X) -> bool:
    """Whether ``X`` is an array-like that reads rows on demand (h5py, zarr, dask, xarray): a numpy dtype, a
    shape of 2 or more axes and row slices (a zero-row slice is tried), where ``np.asarray`` would read all of
    it. Tables, sparse matrices, lists, 1-D sequences and array-likes whose ``[]`` takes integers or keys only
    are not (numpy reads them, and scikit-learn's checks and messages apply)."""
    if isinstance(X, (np.ndarray, torch.Tensor)) or hasattr(X, "columns") or hasattr(X, "iloc") or issparse(X):
        return False
    if not all(hasattr(X, name) for name in ("shape", "dtype", "__getitem__")):  # (zarr 3 arrays have no len)
        return False
    try:
        kind = np.dtype(X.dtype).kind  # strings too, refused without a read; objects: numpy converts them
    except TypeError:  # a dtype numpy does not know (a bfloat16 tensor's is handled apart)
        return False
    # (a dask array of unknown chunk sizes has NaN in its shape: numpy computes it)
    if len(X.shape) < 2 or not all(isinstance(n, Integral) for n in X.shape) or kind == "O":
        return False
    try:
        X[0:0]  # (cheap: no row read)
    except (TypeError, IndexError, KeyError, ValueError):
        return False
    return True


class LazyRows:
    """The rows of an array-like stored elsewhere, read one slice at a time: what ``fit`` and ``transform`` need
    of an array (``shape``, ``dtype``, ``len``, rows) without ever holding all of it.

    A slice ``X[start:stop]`` (or a row, or row indices) reads those rows from ``source`` and returns them as a
    native-order ndarray of ``shape[1:]`` samples, checked for NaN and infinity with scikit-learn's message.
    Used for h5py, zarr and dask arrays, whose ``np.asarray`` reads everything, and for bfloat16 tensors, which
    numpy lacks: their rows come back as float32 (a float32 copy of the whole tensor was 2x its memory).
    """

    def __init__(self, source, estimator, shape: tuple | None = None):
        self.source, self.estimator = source, estimator
        self._bfloat16 = isinstance(source, torch.Tensor)
        self.shape = tuple(int(n) for n in (source.shape if shape is None else shape))
        self.dtype = np.dtype(np.float32) if self._bfloat16 else native_dtype(source.dtype)

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> int:
        return math.prod(self.shape)

    def __len__(self) -> int:
        return self.shape[0]

    def reshape(self, *shape) -> "LazyRows":
        """The same rows read as samples of another shape; the number of rows stays."""
        shape = tuple(int(n) for n in (shape[0] if len(shape) == 1 else shape))
        if shape[0] != len(self) or math.prod(shape) != self.size:
            raise ValueError(f"cannot reshape rows of shape {self.shape} into {shape}: the number of rows stays")
        return LazyRows(self.source, self.estimator, shape)

    def __getitem__(self, rows) -> np.ndarray:
        if isinstance(rows, tuple):  # numpy would read (0, 1) as row 0, column 1: not rows 0 and 1
            raise IndexError(f"LazyRows reads whole rows; index {rows!r} names other axes")
        if isinstance(rows, Integral):  # one sample (a training loop's row)
            row = int(rows) + len(self) if rows < 0 else int(rows)
            if not 0 <= row < len(self):
                raise IndexError(f"row {rows} is out of range for {len(self)} rows")
            return self[row : row + 1][0]
        if isinstance(rows, slice):
            start, stop, step = rows.indices(len(self))
            if step != 1:
                raise IndexError("LazyRows reads contiguous row slices (step 1) or increasing row indices")
            part = self._rows(slice(start, max(start, stop)))
        else:
            rows = np.asarray(rows)
            if rows.ndim != 1 or rows.dtype.kind not in "iu" or (rows.size and rows.min() < 0):
                raise IndexError(f"LazyRows reads rows, row slices or 1-D non-negative row indices, got {rows!r}")
            # one contiguous read per index: sources differ in what fancy indexing they take (h5py: increasing
            # lists only; zarr: none through [])
            part = np.concatenate([self._rows(slice(i, i + 1)) for i in rows.tolist()]) if rows.size else (
                self._rows(slice(0, 0)))  # fmt: skip
        part = part.reshape(len(part), *self.shape[1:])
        if part.dtype.kind == "f" and part.size:
            check_finite(np.ascontiguousarray(part), self.estimator)
        return part

    def _rows(self, rows: slice) -> np.ndarray:
        """Rows of ``source`` as a native-order ndarray."""
        if self._bfloat16:
            return self.source[rows].detach().float().cpu().numpy()
        return to_native(np.asarray(self.source[rows]))

    def __array__(self, dtype=None, copy=None):
        """All rows at once (what ``np.asarray`` asks for): correct, but it holds the whole array."""
        whole = self[:]
        return whole if dtype is None else whole.astype(dtype, copy=False)


def torch_viewable(X: np.ndarray) -> bool:
    """Whether ``torch.from_numpy`` can view ``X`` as is: C-contiguous, writeable (torch warns on read-only
    memory) and without negative strides (numpy calls one row of ``X[::-1]`` C-contiguous; torch refuses it)."""
    return X.flags.c_contiguous and X.flags.writeable and min(X.strides, default=0) >= 0


def extremes(X: np.ndarray, low: float = math.inf, high: float = -math.inf) -> tuple[float, float]:
    """Lowest and highest value of ``X``, widening ``(low, high)`` (running extremes over batches); float32 in
    one pass on all threads (a stereo 2**19-sample clip: 0.12 ms, numpy's min and max 0.28)."""
    if not X.size:
        return low, high
    if X.dtype == np.float32 and torch_viewable(X):
        pair = torch.aminmax(torch.from_numpy(X))
        found = float(pair.min), float(pair.max)
    else:
        found = float(X.min()), float(X.max())
    return min(low, found[0]), max(high, found[1])


def check_finite(X: np.ndarray, estimator) -> None:
    """scikit-learn's NaN and infinity check (its config and message), with a faster first pass.

    Both first sum the array, a finite sum proving every value finite; torch sums float32 and float64 on
    all its threads (a stereo 2**19-sample clip, AMD EPYC, 2 threads: 0.04 ms against numpy's 0.16, 3% of
    its 20x encoding). A non-finite sum (NaN, infinity, or finite values whose sum overflows) goes to
    scikit-learn's element-wise check, which names the problem or passes the array.
    """
    if get_config()["assume_finite"]:  # scikit-learn's switch for callers that vouch for their data
        return
    fast = X.dtype in (np.float32, np.float64) and torch_viewable(X) and X.size
    if fast and math.isfinite(torch.from_numpy(X).sum()):
        return
    assert_all_finite(X, input_name="X", estimator_name=type(estimator).__name__)


def resolve_shape(input_shape, n_values: int, entries: tuple = (1, 3)) -> tuple:
    """Per-sample shape from ``input_shape`` (``entries``: its fewest and most entries) for samples of
    ``n_values`` values, filling one -1 like numpy.reshape; a ValueError says why it cannot."""
    shape = tuple(int(s) for s in input_shape)
    fewest, most = entries
    if not fewest <= len(shape) <= most or shape.count(-1) > 1 or any(s == 0 or s < -1 for s in shape):
        raise ValueError(
            f"input_shape must have {fewest} to {most} positive entries (one may be -1), got {input_shape!r}"
        )
    known = int(np.prod([s for s in shape if s != -1]))
    if -1 in shape and n_values % known == 0:
        shape = tuple(n_values // known if s == -1 else s for s in shape)
    if int(np.prod(shape)) != n_values:
        raise ValueError(f"X has {n_values} values a sample, which input_shape={input_shape!r} cannot hold")
    return shape


def _looks_like_audio(shape: tuple) -> bool:
    """The documented 3-D rule: a time axis at least 32x longer than the axis before it."""
    return shape[-1] >= 32 * shape[-2]


def _check_channel_first(shape: tuple, modality: str) -> None:
    """Refuse batches that look channel-last, which the channel-first reading would scramble."""
    if modality == "image":
        return  # the caller vouched for the layout
    if len(shape) == 4 and shape[-1] in (1, 3, 4) and shape[1] > 4:
        raise ValueError(
            f"X of shape {shape} looks channel-last (N, H, W, C); transformers take (N, C, H, W): "
            "use X.transpose(0, 3, 1, 2) (or pass modality='image' if the layout is really (N, C, H, W))"
        )
    if len(shape) == 3 and shape[-1] <= 8 and shape[1] >= 32 * shape[-1]:
        raise ValueError(
            f"X of shape {shape} looks like channel-last audio (N, T, C); transformers take (N, C, T): "
            "use X.transpose(0, 2, 1) (or pass modality='image' for (N, H, W) images)"
        )


def _check_not_unsigned_pcm(dtype) -> None:
    """uint8 / uint16 are read as pixels (x / 255): unsigned PCM (8-bit WAV, centred on 128) would become audio shifted
    by +0.5 at half its amplitude, which every codec would encode without a word."""
    dtype = native_dtype(dtype)
    if dtype not in (np.dtype(np.uint8), np.dtype(np.uint16)):
        return
    full, half = 2 ** (8 * dtype.itemsize) - 1, 2 ** (8 * dtype.itemsize - 1)
    raise ValueError(
        f"X holds {dtype} samples laid out as audio, but {dtype} is read as pixels (x / {full}): unsigned PCM such "
        f"as 8-bit WAV is centred on {half} and would be read shifted and at half its amplitude; pass floats, "
        f"(X - {half}) / {half}, or signed PCM. Flattened images: pass input_shape=(C, H, W) (or modality='image' "
        "for (N, H, W) images)"
    )


def _require_one(estimator, shape: tuple, n: int, what: str) -> None:
    """scikit-learn's error for an array without samples or features."""
    if n == 0:
        raise ValueError(
            f"Found array with 0 {what}(s) (shape={shape}) while a minimum of 1 is required by "
            f"{type(estimator).__name__}."
        )


def _check_stored_elsewhere(estimator, X: LazyRows, *, reset: bool, any_width: bool) -> None:
    """For :class:`LazyRows`, the checks ``check_array`` and ``validate_data`` make that need no row: numbers,
    at least one sample, fit's width for flat rows (recorded with ``reset``; complex numbers are refused by the
    caller)."""
    if X.dtype.kind not in "biufc":
        raise ValueError(f"X has dtype {X.dtype}; transformers take numbers (integer, float or bool samples)")
    if X.ndim == 2:
        _require_one(estimator, X.shape, len(X), "sample")
        _require_one(estimator, X.shape, X.shape[1], "feature")
        _check_feature_names(estimator, X, reset=reset)
        if reset or not any_width:
            _check_n_features(estimator, X, reset=reset)


def _stack_samples(X) -> np.ndarray:
    """A list of samples as one array; samples of different shapes are named (numpy's own message, "inhomogeneous
    shape after 1 dimensions", says neither which sample nor what to do)."""
    try:
        return np.asarray(X)
    except (ValueError, RuntimeError) as error:  # (RuntimeError: torch's, for tensors that require grad)
        if not isinstance(X, (list, tuple)) or not ("inhomogeneous" in str(error) or isinstance(error, RuntimeError)):
            raise
        shapes = [_shape_of(x) for x in X]
        pair = next((i for i, x in enumerate(X) if _is_pair(x)), None)
        ragged = next((i for i, shape in enumerate(shapes) if shape is None), None)
        odd = next((i for i, shape in enumerate(shapes) if shape != shapes[0]), None)
        if pair is not None:  # a dataset's (signal, label) items
            raise ValueError(
                f"X is a list of (signal, label) pairs (sample {pair} is a {type(X[pair]).__name__} of a "
                f"{_shape_of(X[pair][0])} signal and a label); pass the signals as X and the labels as y: "
                "X, y = zip(*pairs, strict=True)"
            ) from None
        if ragged is not None:  # a nested list whose rows differ in length
            problem = f"samples, of which sample {ragged} has rows of different lengths"
        elif odd is not None:
            problem = f"samples of different shapes: sample 0 is {shapes[0]}, sample {odd} is {shapes[odd]}"
        else:  # numpy saw something else: its own words
            raise
        raise ValueError(
            f"X is a list of {problem}; one call takes samples of one shape (resize or crop them, or transform "
            "each shape apart with output='tensor')"
        ) from None


def _is_pair(sample) -> bool:
    """Whether a sample is a dataset's ``(signal, label)`` item, which numpy can only call ragged."""
    if not isinstance(sample, (list, tuple)) or len(sample) != 2:
        return False
    signal, label = sample
    shape = _shape_of(signal)
    return isinstance(shape, tuple) and len(shape) >= 1 and _shape_of(label) in ((), "a string")


def _shape_of(sample):
    """A sample's shape for _stack_samples' message: "a string", or None where its own rows are ragged."""
    if isinstance(sample, str):
        return "a string"
    if isinstance(sample, torch.Tensor):
        return tuple(sample.shape)
    try:
        return np.shape(sample)
    except ValueError:
        return None


def read_signals(
    estimator, X, *, modality: str, input_shape=None, reset: bool, batched: bool = False, any_width: bool = False
) -> tuple[np.ndarray, SignalLayout]:
    """Validate ``X`` and return it as ``(N, C, *spatial)`` plus its :class:`SignalLayout`.

    2-D input goes through scikit-learn's ``validate_data`` (so ``n_features_in_`` and
    ``feature_names_in_`` follow the usual rules); other inputs through ``check_array``. ``input_shape``
    reshapes 2-D rows; with ``reset`` (fit), other input must have that shape.
    The array keeps its dtype (uint8 stays uint8): conversion to float happens per batch.
    ``batched=True`` is for callers that read ``X`` batch by batch and check each batch of a memmap
    for NaN and infinity (``SignalTransformer._stored_batches``): they get the memmap without the
    up-front scan that would make it resident. ``any_width=True`` (transform, not fit) accepts 2-D input of
    another width than fit's: column names are still checked, ``n_features_in_`` is not.
    ``batched=True`` also returns arrays stored elsewhere (h5py, zarr, dask, a bfloat16 tensor) as
    :class:`LazyRows`, whose rows are read, checked and converted when asked for.
    """
    if modality not in MODALITIES:
        raise ValueError(f"modality must be one of {MODALITIES}, got {modality!r}")
    if isinstance(X, Iterator):  # numpy would read a generator as one object; it can be read only once anyway
        stream = "" if reset else "; for a stream of batches use transform_batches(batches)"
        raise TypeError(
            f"X is an iterator ({type(X).__name__}); pass the samples as an array, a list or a torch tensor{stream}"
        )
    if isinstance(X, (DataLoader, Dataset)):  # numpy would fail on them with "inhomogeneous shape" or float()
        what = "a DataLoader" if isinstance(X, DataLoader) else f"a torch Dataset ({type(X).__name__})"
        batches = "" if reset else "; to encode its batches use transform_batches(x for x, _ in loader)"
        raise TypeError(
            f"X is {what}, not an array of samples: pass the samples as one array or tensor (for a TensorDataset, "
            f"dataset.tensors[0]){batches}"
        )
    bfloat16 = isinstance(X, torch.Tensor) and X.dtype == torch.bfloat16
    lazy = batched and (bfloat16 or is_stored_elsewhere(X))  # the caller reads rows as it goes
    if lazy:
        X = LazyRows(X, estimator)
    else:
        X = to_numpy(X)
    if not hasattr(X, "ndim"):  # lists and other array-likes
        X = _stack_samples(X)
    finite = not (batched and is_file_backed(X))  # a scan here would make a memmap resident
    if lazy:  # what check_array / validate_data check, but on the shape and dtype alone: no row is read here
        _check_stored_elsewhere(estimator, X, reset=reset, any_width=any_width)
    elif (X.ndim == 2 or hasattr(X, "columns")) and any_width and not reset:  # validate_data without n_features
        _check_feature_names(estimator, X, reset=False)
        X = check_array(X, dtype="numeric", ensure_all_finite=finite, input_name="X", estimator=estimator)
    elif X.ndim == 2 or hasattr(X, "columns"):
        X = validate_data(estimator, X, reset=reset, dtype="numeric", ensure_all_finite=finite)
    if X.ndim != 2 and not hasattr(X, "columns"):
        if type(X) is np.ndarray and X.ndim in (3, 4) and X.dtype.kind in "iuf":
            # What check_array would return unchanged, without its dataframe probes (~50 us, felt at batch 1).
            if finite and X.dtype.kind == "f" and X.size:
                check_finite(X, estimator)
        elif not lazy:
            X = check_array(
                X, dtype="numeric", ensure_all_finite=finite, ensure_2d=False, allow_nd=True,
                input_name="X", estimator=estimator,
            )  # fmt: skip
        if X.ndim not in (3, 4):
            raise ValueError(
                f"Expected 2-D (N, D) / (N, T), 3-D (N, H, W) / (N, C, T) or 4-D (N, C, H, W) input, "
                f"got an array of shape {X.shape}. Reshape your data, e.g. X[None] for a single sample."
            )
        _require_one(estimator, X.shape, X.shape[0], "sample")
        if min(X.shape[1:]) == 0:
            raise ValueError(f"X has an empty axis: shape {X.shape}")
        sample_size = int(np.prod(X.shape[1:]))
        if reset and input_shape is not None and tuple(X.shape[1:]) != resolve_shape(input_shape, sample_size):
            # at transform, SignalTransformer._read compares the layout with fit's (other sizes in tensor mode)
            raise ValueError(f"X has samples of shape {X.shape[1:]}, but input_shape={tuple(input_shape)!r}")
        if reset:
            estimator.n_features_in_ = sample_size
            if hasattr(estimator, "feature_names_in_"):
                del estimator.feature_names_in_
    if X.dtype.kind == "c":
        raise ValueError("Complex data not supported")
    # bool samples stay bool (0 / 1, scale 1): each batch becomes float32 as it is read, where a float32 copy of
    # the whole array held 4x its memory, all of a memmap's file included
    if not is_file_backed(X):  # a memmap's batches are converted one at a time (SignalTransformer._stored_batches)
        X = to_native(X)

    flat_shape = None
    if X.ndim == 2 and input_shape is not None:
        flat_shape = resolve_shape(input_shape, X.shape[1])
        X = X.reshape(len(X), *flat_shape)
    _check_channel_first(X.shape, modality)
    # at fit, modality is the caller's parameter; at transform (not reset), the modality fit read
    fitted = {"image": "images", "audio": "audio"}.get(modality, modality)
    chosen = f"modality={modality!r}" if reset else f"{type(estimator).__name__} was fitted on {fitted}"
    if X.ndim == 4:
        layout_modality, has_channel_axis = "image", True
        if modality == "audio":
            raise ValueError(f"4-D input {X.shape} cannot be audio ({chosen}); audio is (N, C, T) or (N, T)")
    elif X.ndim == 2:
        layout_modality, has_channel_axis = "audio", False
        if modality == "image":
            fix = ("pass modality='audio' for audio clips, or input_shape=(C, H, W) for flattened images" if reset
                   else "pass the images as (N, C, H, W) or (N, H, W), or fit with input_shape=(C, H, W) to take "
                   "flat rows")  # fmt: skip
            raise ValueError(f"2-D input {X.shape} without input_shape is (N, T) audio, but {chosen}: {fix}")
    else:  # 3-D: (N, H, W) image or (N, C, T) audio
        if modality == "auto":
            layout_modality = "audio" if _looks_like_audio(X.shape) else "image"
        else:
            layout_modality = modality
        has_channel_axis = layout_modality == "audio"
    if layout_modality == "audio":
        _check_not_unsigned_pcm(X.dtype)
    if not has_channel_axis:
        X = X.reshape(len(X), 1, *X.shape[1:]) if lazy else X[:, None]
    layout = SignalLayout(
        modality=layout_modality, channels=int(X.shape[1]), spatial=tuple(int(s) for s in X.shape[2:]),
        has_channel_axis=has_channel_axis, flat_shape=flat_shape,
    )  # fmt: skip
    return X, layout
