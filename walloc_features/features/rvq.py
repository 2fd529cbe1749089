"""``ResidualVQ``: discrete codes learned here, offline, by residual k-means."""

from __future__ import annotations

import inspect
import math
from numbers import Integral, Real

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.base import clone
from sklearn.cluster import KMeans
from sklearn.metrics import pairwise_distances_argmin
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import HasMethods, Interval
from sklearn.utils.validation import check_is_fitted

from ..codecs.wavelets import pad_to_multiple
from ._base import (
    SIGNAL_CONSTRAINTS, LayoutFollowsQuantize, SignalTransformer, check_float32_range, fill_rows, warn_if_off_scale,
)
from ._signals import LazyRows, extremes, input_scale

__all__ = ["ResidualVQ"]

#: Default patch edge for raw signals: 4x4 pixels, 32-sample audio frames.
DEFAULT_PATCH = {"image": 4, "audio": 32}


class ResidualVQ(LayoutFollowsQuantize, SignalTransformer):
    """Residual vector quantization: ``n_codebooks`` k-means stages, each coding what is left.

    The vectors are the channel vectors of a base representation at each position: the
    latents of ``base`` (e.g. ``WaLLoCTransformer(reduction=4)``), or, without a base, raw
    ``patch_size`` x ``patch_size`` patches (images) or ``patch_size``-sample frames (audio).
    Stage ``k`` clusters the residual left by stages ``0..k-1`` (scikit-learn ``KMeans``); a vector
    is coded as one centre index per stage, so ``n_codebooks`` integers per position.

    Parameters
    ----------
    reduction : float, default=16
        Input samples per code; sets ``n_codebooks`` when it is None.
    n_codebooks : int, default=None
        Quantization stages (codes per position).
    codebook_size : int, default=256
        Centres per stage; ``log2(codebook_size)`` bits per code.
    base : transformer, default=None
        A transformer with ``output="tensor"`` support (cloned and fitted on ``X``); None uses
        raw patches.
    patch_size : int, default=None
        Patch edge without a base: 4 (images) or 32 (audio), doubled until a patch holds at
        least ``reduction`` samples (so 8x8 patches at 64x).
    max_train_vectors : int, default=50000
        Vectors sampled to fit each stage.
    quantize : bool, default=True
        True: integer codes ``(N, n_codebooks, *grid)``; False: the quantized vectors
        ``(N, D, *grid)`` (sum of the chosen centres) as float32. Read at transform time:
        ``latent_shape_`` and the feature names follow it.
    output : {"flat", "tensor"}, default="flat"
    modality : {"auto", "image", "audio"}, default="auto"
    input_shape : tuple of int, default=None
    batch_size : int, default=256
    random_state : int, RandomState instance or None, default=None
    verbose : bool, default=False

    Attributes
    ----------
    codebooks_ : ndarray of shape (n_codebooks, codebook_size, D)
    base_ : transformer or None
    n_codebooks_ : int
    latent_shape_ : tuple
        ``(n_codebooks_, *grid)`` for codes, ``(D, *grid)`` for vectors.
    reduction_ : float
        Input samples per code.
    bits_per_code_ : int
        ``ceil(log2(codebook_size))``.
    code_range_ : tuple of int
        ``(0, codebook_size - 1)``: the codebook indices ``quantize=True`` emits.
    input_range_ : tuple of float
        Lowest and highest sample fit read as patches, of input read as stored (floats, bool, int64;
        absent after a fit on uint8 / int16 and the other integers divided by their full scale, or
        with a ``base``, which checks its own input): after a fit on the [0, 1] image / [-1, 1]
        audio scale, such samples far off it (pixels on 0-255) are refused.
    inertia_ : list of float
        Mean squared residual per vector element after each stage on the training vectors (falls stage
        by stage): the squared error per value (in ``base``'s latent space, with one), not scikit-learn's
        ``KMeans.inertia_`` (a sum over vectors).
    n_features_in_, modality_, input_shape_, input_dtype_, layout_
        How ``fit`` read the input, as in :class:`WaLLoCTransformer`.
    patch_ : int
        Patch side (images) or length (audio) of the vectors without a ``base``: ``patch_size``, or the
        automatic choice (unused with a ``base``, whose latents give one vector a position).
    vector_dim_ : int
        Values per vector: ``C * patch_**d`` samples, or the ``base``'s latent channels.
    grid_ : tuple of int
        Vector positions per sample of the fitted size.

    Examples
    --------
    >>> import numpy as np
    >>> from walloc_features.features import ResidualVQ
    >>> X = np.random.default_rng(0).random((20, 1, 16, 16)).astype(np.float32)
    >>> rvq = ResidualVQ(n_codebooks=2, codebook_size=16, output="tensor", random_state=0).fit(X)
    >>> codes = rvq.transform(X)
    >>> codes.shape, codes.dtype, rvq.reduction_
    ((20, 2, 4, 4), dtype('uint8'), 8.0)
    >>> rvq.inverse_transform(codes).shape
    (20, 1, 16, 16)
    """

    _parameter_constraints: dict = {
        **{k: v for k, v in SIGNAL_CONSTRAINTS.items() if k != "device"},  # k-means runs on the CPU
        "reduction": [Interval(Real, 1, None, closed="left")],
        "n_codebooks": [Interval(Integral, 1, None, closed="left"), None],
        "codebook_size": [Interval(Integral, 2, 65536, closed="both")],
        "base": [HasMethods(["fit", "transform", "inverse_transform"]), None],
        "patch_size": [Interval(Integral, 1, None, closed="left"), None],
        "max_train_vectors": [Interval(Integral, 1, None, closed="left")],
        "quantize": ["boolean"],
        "random_state": ["random_state"],
    }

    def __init__(
        self, reduction=16, *, n_codebooks=None, codebook_size=256, base=None, patch_size=None,
        max_train_vectors=50_000, quantize=True, output="flat", modality="auto", input_shape=None,
        batch_size=256, random_state=None, verbose=False,
    ):  # fmt: skip
        self.reduction = reduction
        self.n_codebooks = n_codebooks
        self.codebook_size = codebook_size
        self.base = base
        self.patch_size = patch_size
        self.max_train_vectors = max_train_vectors
        self.quantize = quantize
        self.output = output
        self.modality = modality
        self.input_shape = input_shape
        self.batch_size = batch_size
        self.random_state = random_state
        self.verbose = verbose

    # -------------------------------------------------------------------------------- fit --
    def fit(self, X, y=None):
        """Fit the base (if any) and the codebooks stage by stage (``y`` is ignored)."""
        self._validate_params()
        # without a base, _training_sample checks every batch before anything is learned; a base fits on X first
        X, layout = self._read_fit(X, self._modality_with_base(), checked_by_batches=self.base is None)
        if self.max_train_vectors < self.codebook_size:
            raise ValueError(
                f"codebook_size={self.codebook_size} exceeds max_train_vectors={self.max_train_vectors}: k-means "
                "needs at least codebook_size training vectors; raise max_train_vectors or lower codebook_size"
            )
        rng = check_random_state(self.random_state)
        base = None
        if self.base is not None:
            base = clone(self.base).set_params(output="tensor")
            params = base.get_params()
            if "quantize" in params:
                base.set_params(quantize=False)
            if "modality" in params:  # the base reads the signals as they were read here (stereo audio stays audio)
                base.set_params(modality=layout.modality)
            signals = self._as_caller_layout(X, layout)
            if isinstance(signals, LazyRows) and not isinstance(base, SignalTransformer):
                signals = np.asarray(signals)  # a base of the user's gets an array as before: LazyRows is ours
            base.fit(signals)
        self.base_ = base
        self.patch_ = self.patch_size or self._auto_patch(layout)
        sample, grid, dim, n_vectors, fit_range = self._training_sample(X, layout, rng)
        samples_per_vector = np.prod(layout.sample_shape) / np.prod(grid)
        n_codebooks = self.n_codebooks or max(1, int(samples_per_vector / self.reduction + 0.5))
        if self.codebook_size > n_vectors:
            raise ValueError(
                f"codebook_size={self.codebook_size} exceeds the {n_vectors} training vectors; "
                "use a smaller codebook or more data"
            )
        codebooks, inertia = [], []
        residual = sample.copy()
        for _ in range(n_codebooks):
            km = KMeans(self.codebook_size, n_init=1, max_iter=50, random_state=rng.randint(2**31 - 1))
            labels = km.fit_predict(residual)
            residual -= km.cluster_centers_[labels]
            codebooks.append(km.cluster_centers_)
            inertia.append(float(np.mean(residual**2)))
        self.codebooks_ = np.stack(codebooks).astype(np.float32)
        self.inertia_ = inertia
        self.n_codebooks_ = n_codebooks
        self.vector_dim_ = dim
        self.grid_ = tuple(grid)
        self.bits_per_code_ = int(math.ceil(math.log2(self.codebook_size)))
        self._set_fitted(layout, X.dtype, (n_codebooks if self.quantize else dim, *grid))
        self.reduction_ = float(samples_per_vector / n_codebooks)
        if fit_range is not None:  # float samples (without a base, which checks its own input)
            self.input_range_ = fit_range
        if self.n_codebooks is None:
            self._warn_if_reduction_missed(self.reduction, f" with {samples_per_vector:g} samples per vector")
        return self

    def _modality_with_base(self) -> str:
        """How fit reads ``X``: the ``modality`` parameter, else the base's own when it names one (a parameter,
        or a fixed class attribute as EnCodecTransformer's "audio")."""
        base = getattr(self.base, "modality", "auto") if self.base is not None else "auto"
        if self.modality == "auto" or base == "auto":
            return base if self.modality == "auto" else self.modality
        if base != self.modality:
            raise ValueError(
                f"modality={self.modality!r}, but base has modality={base!r}; the base must read the signals "
                "as ResidualVQ does: set one of them to 'auto' or both to the same modality"
            )
        return self.modality

    def _auto_patch(self, layout) -> int:
        """The default patch edge, doubled until one patch holds ``reduction`` samples."""
        patch = DEFAULT_PATCH[layout.modality]
        while layout.channels * patch**layout.ndim < self.reduction and patch < min(layout.spatial):
            patch *= 2
        return patch

    def _training_sample(self, X, layout, rng):
        """At most ``max_train_vectors`` random vectors, gathered batch by batch (float64), with the grid,
        the vector size, the number of vectors and the float samples' extremes (None for integers, or a base).

        Only the sampled vectors (and their positions) are kept, so memory is bounded by the sample and
        one batch, however many positions ``X`` has. The sample is one array filled in place: a list of small
        per-batch picks, allocated between the batches' temporaries, kept the heap from shrinking (a 188 MB
        float32 memmap: resident memory +161 MB for an 18 MB sample).
        """
        chosen, per_sample, grid, dim, sample = None, None, None, None, None
        low, high = math.inf, -math.inf
        for start, batch in self._stored_batches(X, "ResidualVQ"):
            if input_scale(batch.dtype) == 1 and self.base_ is None:  # raw patches read as stored: their scale
                low, high = extremes(batch, low, high)
            vectors = self._vectors(batch, layout, start)
            if chosen is None:
                grid, dim = vectors.shape[2:], vectors.shape[1]
                per_sample = int(np.prod(grid))
                chosen = _sample_positions(len(X) * per_sample, self.max_train_vectors, rng)
                sample = np.empty((len(chosen), dim))
            flat = np.moveaxis(vectors, 1, -1).reshape(-1, dim)
            lo, hi = np.searchsorted(chosen, [start * per_sample, (start + len(batch)) * per_sample])
            sample[lo:hi] = flat[chosen[lo:hi] - start * per_sample]
        if low <= high:
            warn_if_off_scale(low, high, X.dtype, layout.modality, self._off_scale_consequence)
        return sample, grid, dim, len(X) * per_sample, ((low, high) if low <= high else None)

    # -------------------------------------------------------------------------- transform --
    def _latent_shape(self, quantize: bool) -> tuple:
        """``(n_codebooks_, *grid_)`` for codes, ``(D, *grid_)`` for vectors (see LayoutFollowsQuantize)."""
        return (self.n_codebooks_ if quantize else self.vector_dim_, *self.grid_)

    @property
    def code_range_(self) -> tuple[int, int]:
        """Inclusive range of the codes ``quantize=True`` emits: ``(0, codebook_size - 1)``."""
        check_is_fitted(self)
        return (0, int(self.codebooks_.shape[1]) - 1)

    def transform(self, X):
        """Codes ``(N, n_codebooks, *grid)`` (uint8/uint16), or quantized vectors when not ``quantize``."""
        X, layout = self._read(X, batched=True)

        def batches():
            for start, batch in self._stored_batches(X, "ResidualVQ"):
                vectors = self._vectors(batch, layout, start)
                n, dim, grid = len(vectors), vectors.shape[1], vectors.shape[2:]
                codes = self._encode(np.moveaxis(vectors, 1, -1).reshape(-1, dim))
                if self.quantize:
                    yield start, np.moveaxis(codes.reshape(n, *grid, self.n_codebooks_), -1, 1)
                else:
                    yield start, np.moveaxis(self._decode(codes).reshape(n, *grid, dim), -1, 1)

        n_centres = self.codebooks_.shape[1]  # fitted: a later set_params(codebook_size=...) changes no codebook
        dtype = (np.uint8 if n_centres <= 256 else np.uint16) if self.quantize else np.float32
        return self._format_output(fill_rows(len(X), batches(), dtype))

    def inverse_transform(self, X, output_size=None):
        """Codes (or quantized vectors) -> signals through the codebooks and the base."""
        Z = self._read_latents(X)
        if self.quantize:
            if Z.dtype.kind not in "iu" and not np.array_equal(Z, np.round(Z)):
                raise ValueError("ResidualVQ codes must be integers")
            n_centres = self.codebooks_.shape[1]
            if Z.min() < 0 or Z.max() >= n_centres:
                raise ValueError(f"codes must lie in [0, {n_centres}), got [{Z.min()}, {Z.max()}]")
            grid = Z.shape[2:]
            codes = np.moveaxis(Z, 1, -1).reshape(-1, self.n_codebooks_).astype(np.int64)
            vectors = np.moveaxis(self._decode(codes).reshape(len(Z), *grid, self.vector_dim_), -1, 1)
        else:  # a copy: unpatching 1-sample audio patches gives a view, which _restore clips in place
            vectors = np.array(Z, dtype=np.float32, order="C")
        vectors = torch.from_numpy(np.ascontiguousarray(vectors, dtype=np.float32))
        grid = vectors.shape[2:]
        patched = [n * self.patch_ for n in grid]  # without a base; a base checks its own reconstruction
        size = self._output_size(grid, output_size, limit=None if self.base_ is not None else patched)
        if self.base_ is not None:
            takes_size = "output_size" in inspect.signature(self.base_.inverse_transform).parameters
            signals = self.base_.inverse_transform(vectors.numpy(), **({"output_size": size} if takes_size else {}))
            signals = signals if signals.ndim == len(self.input_shape_) + 1 else signals[:, None]
        else:
            signals = self._unpatch(vectors).numpy()
        if size is not None:
            self._check_output_size(size, signals.shape[2:])
            signals = signals[(..., *[slice(0, n) for n in size])]
        return self._restore(np.ascontiguousarray(signals, dtype=np.float32))

    def _uncounted_flops_per_sample(self) -> float:
        """Nearest-centre search FLOPs (NumPy, not seen by torch's counter): ``2 x D x K`` per code and stage, plus
        what the base's own analytic count adds (a ResolutionReducer's interpolation counted 0 inside)."""
        check_is_fitted(self)
        n_codebooks, codebook_size, dim = self.codebooks_.shape
        base = getattr(self.base_, "_uncounted_flops_per_sample", None)  # the base reads the same samples
        search = 2.0 * dim * codebook_size * n_codebooks * float(np.prod(self.grid_))
        return search + (float(base()) if base is not None else 0.0)

    # ---------------------------------------------------------------------------- helpers --
    def _encode(self, flat: np.ndarray) -> np.ndarray:
        """Nearest centre per stage, residual by residual: (n, D) -> (n, n_codebooks)."""
        residual = flat.astype(np.float32, copy=True)
        codes = np.empty((len(flat), self.n_codebooks_), dtype=np.int64)
        for k, centres in enumerate(self.codebooks_):
            codes[:, k] = pairwise_distances_argmin(residual, centres)
            residual -= centres[codes[:, k]]
        return codes

    def _decode(self, codes: np.ndarray) -> np.ndarray:
        return sum(self.codebooks_[k][codes[:, k]] for k in range(self.n_codebooks_))

    def _as_caller_layout(self, X, layout):
        """(N, C, *S) back to what the base expects from the caller (drop a synthetic channel axis)."""
        if layout.has_channel_axis:
            return X
        return X[:, 0] if isinstance(X, np.ndarray) else X.reshape(len(X), *X.shape[2:])  # (LazyRows: no [:, 0])

    def _vectors(self, batch, layout, start: int) -> np.ndarray:
        """``(n, D, *grid)`` float32 vectors of the batch of samples ``start, ...``: base latents or raw patches."""
        if self.base_ is not None:
            return np.asarray(self.base_.transform(self._as_caller_layout(batch, layout)), dtype=np.float32)
        with np.errstate(over="ignore"):  # float64 beyond float32's range: refused by name, not as k-means' inf
            x = np.array(batch, dtype=np.float32)
        if batch.dtype.kind == "f" and batch.dtype.itemsize > 4:
            check_float32_range(x, start)
        x = torch.from_numpy(x * np.float32(input_scale(batch.dtype)))
        x = pad_to_multiple(x, self.patch_, layout.ndim)
        if layout.ndim == 2:
            return F.pixel_unshuffle(x, self.patch_).numpy()
        n, c, t = x.shape
        return x.view(n, c, t // self.patch_, self.patch_).permute(0, 1, 3, 2).reshape(n, c * self.patch_, -1).numpy()

    def _unpatch(self, vectors: torch.Tensor) -> torch.Tensor:
        if self.layout_.ndim == 2:
            return F.pixel_shuffle(vectors, self.patch_)
        n, d, t = vectors.shape
        c = d // self.patch_
        return vectors.view(n, c, self.patch_, t).permute(0, 1, 3, 2).reshape(n, c, t * self.patch_)


def _sample_positions(total: int, k: int, rng) -> np.ndarray:
    """``min(k, total)`` distinct positions of ``range(total)``, sorted, drawn in O(k) memory.

    ``RandomState.choice(replace=False)`` permutes all ``total`` positions (8 bytes each: 3 GB for the
    positions of a 20 GB memmap); numpy's ``Generator.choice`` draws a small sample by Floyd's algorithm
    and permutes only populations under 20 times the sample (measured: 1M of 10M positions traced 88 MB,
    1M of 30M 25 MB), so memory stays within 20 k positions. Seeded from ``rng``, so ``random_state``
    reproduces the sample.
    """
    if k >= total:
        return np.arange(total)
    generator = np.random.default_rng(rng.randint(2**31 - 1))
    return np.sort(generator.choice(total, k, replace=False, shuffle=False))
