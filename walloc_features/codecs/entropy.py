"""A learned context model for integer latents, and their range coding.

Each latent value is predicted from its already-coded neighbours in the same channel (images:
left, top, top-left, top-right; audio: the two previous frames) by a per-channel linear
predictor fitted by least squares, and its residual is coded with a histogram chosen by the
local activity (a per-channel quantile bucket of the neighbours' gradients), in the spirit of
LOCO-I / JPEG-LS (Weinberger, Seroussi & Sapiro, IEEE TIP 2000) with learned rather than fixed
predictors. The coder is ``constriction``'s range coder (Bamler, 2022).

Symbols are coded in wavefronts: every position with the same key (``2 * row + col`` for
images, the frame index for audio) at once, across all channels. All four image neighbours of a
position have a smaller key, so decoding needs ``2 h + w`` vectorised steps instead of
``C h w`` scalar ones.

Everything that decides a probability table is integer arithmetic (fixed-point predictor
coefficients, integer activity thresholds, integer counts); constriction turns the tables into
its fixed-point model with IEEE float operations, deterministic everywhere. A blob therefore
decodes identically on every machine, as long as constriction's quantizer does not change
(hence the pinned range of versions in pyproject.toml).
"""

from __future__ import annotations

import hashlib
import json
import math

import numpy as np

__all__ = ["ContextEntropyModel", "PayloadError"]

#: Fixed-point fraction bits of the predictor coefficients.
COEF_SHIFT = 12
#: Largest symbol width modelled value by value; wider codes send their low bits uniformly.
MAX_MODEL_BITS = 10
#: Activity buckets (contexts) per channel.
N_CONTEXTS = 8
#: Pseudo-count added to every residual bin (no residual is ever impossible).
SMOOTHING = 0.1
#: Probability-table entries per constriction call of the encoder (32 MiB of float64 tables).
ENCODE_TABLE_ENTRIES = 1 << 22
#: Neighbour offsets in the padded grid (see ``_pad``), per latent dimensionality.
_OFFSETS = {
    2: ((1, 0), (0, 1), (0, 0), (0, 2)),  # left, top, top-left, top-right
    1: ((1,), (0,)),  # previous frame, the one before
}
#: Padding ``(before, after)`` per spatial axis, so every neighbour index stays in range.
_PADDING = {2: ((1, 0), (1, 1)), 1: ((2, 0),)}


def _constriction():
    """The coder, imported on first use (a compiled extension; see pyproject's dependencies)."""
    import constriction

    return constriction.stream


class ContextEntropyModel:
    """Adaptive-context range coder for integer latents ``(C, h, w)`` or ``(C, t)``.

    Parameters
    ----------
    n_channels : int
        Latent channels ``C``.
    ndim : {1, 2}
        Spatial dimensions of the latent grid (1 for audio, 2 for images).
    code_range : tuple of int
        Inclusive ``(low, high)`` range of the integer codes.
    n_contexts : int, default=8
        Activity buckets per channel.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> codes = np.cumsum(rng.integers(-2, 3, size=(64, 4, 8, 8)), axis=-1).clip(-127, 127)
    >>> model = ContextEntropyModel(4, 2, (-127, 127)).fit(codes)
    >>> payload = model.encode(codes[0])
    >>> np.array_equal(model.decode(payload, codes[0].shape), codes[0])
    True
    >>> len(payload) < codes[0].size  # fewer than 8 bits per code
    True
    """

    def __init__(self, n_channels: int, ndim: int, code_range: tuple, n_contexts: int = N_CONTEXTS):
        low, high = (int(v) for v in code_range)
        if ndim not in _OFFSETS:
            raise ValueError(f"ndim must be 1 or 2, got {ndim!r}")
        if not low <= 0 <= high or high - low >= 2**16:
            raise ValueError(f"code_range must contain 0 and span at most 2**16 values, got {code_range!r}")
        self.n_channels = int(n_channels)
        self.ndim = int(ndim)
        self.code_range = (low, high)
        self.n_contexts = int(n_contexts)
        # Codes wider than MAX_MODEL_BITS: the model sees ``code >> shift``, the rest goes raw.
        self.shift = max(0, int(np.ceil(np.log2(high - low + 1))) - MAX_MODEL_BITS)
        self.low, self.high = low >> self.shift, high >> self.shift

    # ------------------------------------------------------------------------------ fit --
    def fit(self, codes) -> "ContextEntropyModel":
        """Learn predictors, activity buckets and residual histograms from codes ``(N, C, *grid)``."""
        codes = self._check_codes(np.asarray(codes), batch=True)
        coarse = codes.astype(np.int64) >> self.shift
        n_feat = len(_OFFSETS[self.ndim])
        # Neighbours outside the grid read as the channel's median code (a flat background).
        self.fill_ = np.median(np.moveaxis(coarse, 1, 0).reshape(self.n_channels, -1), axis=1).astype(np.int64)
        self.coef_ = np.zeros((self.n_channels, n_feat), dtype=np.int64)
        self.bias_ = np.zeros(self.n_channels, dtype=np.int64)
        self.edges_ = np.zeros((self.n_channels, self.n_contexts - 1), dtype=np.int64)
        width = 2 * (self.high - self.low) + 1
        counts = np.zeros((self.n_channels, self.n_contexts, width), dtype=np.int64)
        for c in range(self.n_channels):  # one channel at a time bounds the feature memory
            plane = coarse[:, c : c + 1]
            padded = _pad(plane, self.ndim, self.fill_[c : c + 1])
            feats = self._features(padded, plane.shape[2:])[:, :, 0].reshape(n_feat, -1)
            target = plane.reshape(-1)
            design = np.column_stack([feats.T, np.ones(target.size)]).astype(np.float64)
            solution, *_ = np.linalg.lstsq(design, target.astype(np.float64), rcond=None)
            limit = 16 << COEF_SHIFT  # |coefficient| <= 16 keeps integer sums far from overflow
            fixed = np.clip(np.round(solution * (1 << COEF_SHIFT)), -limit, limit).astype(np.int64)
            self.coef_[c] = fixed[:-1]
            self.bias_[c] = np.clip(np.round(solution[-1] * (1 << COEF_SHIFT)), -(1 << 40), 1 << 40)
            pred = self._predict(feats[:, None, :], c)[0]
            activity = _activity(feats, self.ndim)
            levels = np.arange(1, self.n_contexts) / self.n_contexts
            self.edges_[c] = np.quantile(activity, levels, method="higher").astype(np.int64)
            context = self._bucket(activity[None], self.edges_[c : c + 1])[0]
            residual = target - pred + (self.high - self.low)
            counts[c] = np.bincount(context * width + residual, minlength=self.n_contexts * width).reshape(
                self.n_contexts, width
            )
        self.counts_ = counts
        self._windows = None
        return self

    # --------------------------------------------------------------------------- coding --
    def encode(self, codes) -> bytes:
        """Range-code one sample's codes ``(C, *grid)``; returns the payload bytes."""
        stream = _constriction()
        codes = self._check_codes(np.asarray(codes), batch=False)
        coarse = codes.astype(np.int64) >> self.shift
        grid = coarse.shape[1:]
        feats = self._features(_pad(coarse, self.ndim, self.fill_), grid)
        feats = feats.reshape(len(_OFFSETS[self.ndim]), self.n_channels, -1)
        order = _schedule(grid)
        feats = feats[:, :, order]
        symbols = coarse.reshape(self.n_channels, -1)[:, order]
        pred = self._predict(feats)
        context = self._context(feats)
        # The stream holds, per wavefront step, its positions channel-major; ``_steps`` splits it.
        flat = [a.T.reshape(-1) for a in (symbols, pred, context)]  # position-major...
        order_in_stream = _stream_order(grid, self.n_channels)
        symbols, pred, context = (a[order_in_stream] for a in flat)
        encoder = stream.queue.RangeEncoder()
        family = stream.model.Categorical(perfect=False)
        chunk = max(1, ENCODE_TABLE_ENTRIES // (self.high - self.low + 1))
        for start in range(0, len(symbols), chunk):
            part = slice(start, start + chunk)
            table = self._tables(pred[part], context[part])
            encoder.encode((symbols[part] - self.low).astype(np.int32), family, table)
        if self.shift:
            low_bits = (codes.astype(np.int64) - (coarse << self.shift)).reshape(-1).astype(np.int32)
            encoder.encode(low_bits, stream.model.Uniform(1 << self.shift))
        return encoder.get_compressed().astype("<u4").tobytes()

    def decode(self, payload: bytes, shape: tuple) -> np.ndarray:
        """Inverse of :meth:`encode`: payload bytes and the sample shape ``(C, *grid)`` -> int64 codes.

        Raises ``ValueError`` (a :class:`PayloadError`) when the payload is not one of ``shape`` codes: not whole
        32-bit words, data left over, or codes outside the range. A damaged payload can still decode to wrong codes
        without an error; the blobs of :mod:`~walloc_features.codecs.blob` carry the checksum that refuses those.
        """
        return self.decode_batch([payload], shape)[0]

    def decode_batch(self, payloads, shape: tuple) -> np.ndarray:
        """Decode payloads of one sample shape ``(C, *grid)`` together -> int64 codes ``(B, C, *grid)``.

        The payloads are decoded in lockstep, every wavefront step's predictions and tables computed for
        all of them at once, so the per-step numpy work is shared: one 28x28 digit's 7x7 latents take 21
        steps whatever the batch. Raises :class:`PayloadError` (a ``ValueError``) naming the index of a
        payload found not to hold ``shape`` codes (the first found, not necessarily the first in the list),
        as :meth:`decode` does, with the same limit: only a blob's checksum catches every damaged payload.
        """
        shape = tuple(int(s) for s in shape)
        if len(shape) != self.ndim + 1 or shape[0] != self.n_channels or min(shape) < 1:
            raise ValueError(f"shape {shape} does not fit a model of {self.n_channels} channels and {self.ndim}-D grid")
        payloads = list(payloads)
        widest = int(np.bincount(_keys(shape[1:])).max())  # positions in the largest wavefront step
        chunk = max(1, ENCODE_TABLE_ENTRIES // (self.n_channels * widest * (self.high - self.low + 1)))
        out = np.empty((len(payloads), *shape), dtype=np.int64)
        for start in range(0, len(payloads), chunk):
            out[start : start + chunk] = self._decode_lockstep(payloads[start : start + chunk], shape, start)
        return out

    def _decode_lockstep(self, payloads: list, shape: tuple, first: int) -> np.ndarray:
        """``decode_batch`` of payloads few enough that one step's tables fit :data:`ENCODE_TABLE_ENTRIES`."""
        stream = _constriction()
        decoders = []
        for b, payload in enumerate(payloads):
            if len(payload) % 4:
                raise PayloadError(first + b, f"payload of {len(payload)} bytes is not a whole number of 32-bit words")
            decoders.append(stream.queue.RangeDecoder(np.frombuffer(payload, dtype="<u4").astype(np.uint32)))
        n, c, grid = len(decoders), self.n_channels, shape[1:]
        family = stream.model.Categorical(perfect=False)
        fill = self.fill_.reshape(-1, *[1] * self.ndim)
        padded = _pad(np.broadcast_to(fill, (n, *shape)), self.ndim, self.fill_)
        batch, channels = np.arange(n)[:, None, None], np.arange(c)[None, :, None]
        for index in _steps(grid):
            m = index[0].shape[1]
            # neighbours (F, N, C, m) -> (F, C, N m) for the per-channel predictor, back to (N, C m) rows
            feats = np.stack([padded[(batch, channels, *_shifted(index, off))] for off in _OFFSETS[self.ndim]])
            feats = feats.transpose(0, 2, 1, 3).reshape(len(feats), c, n * m)
            pred = self._predict(feats).reshape(c, n, m).transpose(1, 0, 2)
            context = self._context(feats).reshape(c, n, m).transpose(1, 0, 2)
            tables = self._tables(pred.reshape(-1), context.reshape(-1))  # rows (n, c, m): each payload's own block
            symbols = np.empty((n, c * m), dtype=np.int64)
            for b, decoder in enumerate(decoders):
                symbols[b] = _checked(first + b, decoder.decode, family, tables[b * c * m : (b + 1) * c * m])
            padded[(batch, channels, *_shifted(index, _centre(self.ndim)))] = symbols.reshape(n, c, m) + self.low
        codes = _unpad(padded, self.ndim) << self.shift
        low, high, corrupted = *self.code_range, "corrupted or not ours"
        for b, decoder in enumerate(decoders):
            if self.shift:
                low_bits = _checked(first + b, decoder.decode, stream.model.Uniform(1 << self.shift), math.prod(shape))
                codes[b] += np.asarray(low_bits, dtype=np.int64).reshape(shape)
            if not decoder.maybe_exhausted():
                raise PayloadError(first + b, f"payload has data beyond the codes it should hold: {corrupted}")
            if codes[b].min() < low or codes[b].max() > high:
                raise PayloadError(first + b, f"payload decodes to codes outside the model's range: {corrupted}")
        return codes

    # ------------------------------------------------------------------------- persistence --
    def get_config(self) -> dict:
        """JSON-able constructor arguments."""
        return {
            "n_channels": self.n_channels, "ndim": self.ndim,
            "code_range": list(self.code_range), "n_contexts": self.n_contexts,
        }  # fmt: skip

    def get_arrays(self) -> dict:
        """The fitted integer arrays (what :meth:`from_state` needs besides the config)."""
        names = ("fill", "coef", "bias", "edges", "counts")
        return {name: getattr(self, f"{name}_") for name in names}

    @classmethod
    def from_state(cls, config: dict, arrays: dict) -> "ContextEntropyModel":
        """Rebuild a fitted model from :meth:`get_config` and :meth:`get_arrays`."""
        self = cls(config["n_channels"], config["ndim"], tuple(config["code_range"]), config["n_contexts"])
        expected = {
            "fill": (self.n_channels,), "coef": (self.n_channels, len(_OFFSETS[self.ndim])), "bias": (self.n_channels,),
            "edges": (self.n_channels, self.n_contexts - 1),
            "counts": (self.n_channels, self.n_contexts, 2 * (self.high - self.low) + 1),
        }  # fmt: skip
        for name, shape in expected.items():
            array = np.asarray(arrays[name])
            if array.shape != shape or array.dtype.kind not in "iu":
                raise ValueError(f"entropy model array {name!r} has shape {array.shape}, expected integers {shape}")
            setattr(self, f"{name}_", array.astype(np.int64))
        self._windows = None
        return self

    def __getstate__(self):
        state = dict(self.__dict__)
        state.pop("_windows", None)  # a cache (a strided view: pickling it would copy it in full)
        return state

    @property
    def fingerprint(self) -> bytes:
        """8 bytes identifying the fitted model; blobs record it so no other model decodes them."""
        digest = hashlib.blake2b(json.dumps(self.get_config(), sort_keys=True).encode(), digest_size=8)
        for array in self.get_arrays().values():
            digest.update(np.ascontiguousarray(array, dtype="<i8").tobytes())
        return digest.digest()

    # -------------------------------------------------------------------------- internals --
    def _check_codes(self, codes: np.ndarray, *, batch: bool) -> np.ndarray:
        """Integer codes of the right rank, channels and range, or a ValueError saying which is wrong."""
        rank = self.ndim + 1 + batch
        what = "(N, C, *grid)" if batch else "(C, *grid)"
        if codes.dtype.kind not in "iu":
            raise TypeError(f"codes must be integers, got dtype {codes.dtype}")
        if codes.ndim != rank or codes.shape[int(batch)] != self.n_channels or codes.size == 0:
            raise ValueError(
                f"codes must be {what} with C={self.n_channels} and a {self.ndim}-D grid, got {codes.shape}"
            )
        low, high = self.code_range
        if codes.min() < low or codes.max() > high:
            raise ValueError(f"codes must lie in [{low}, {high}], got [{codes.min()}, {codes.max()}]")
        return codes

    def _features(self, padded: np.ndarray, grid: tuple) -> np.ndarray:
        """Neighbours of every grid position: ``(F, ..., *grid)`` from a padded ``(..., *padded grid)``."""
        lead = padded.shape[: padded.ndim - self.ndim]
        out = []
        for off in _OFFSETS[self.ndim]:
            window = tuple(slice(o, o + g) for o, g in zip(off, grid, strict=True))
            out.append(padded[(Ellipsis, *window)])
        return np.stack(out).reshape(len(out), *lead, *grid)

    def _predict(self, feats: np.ndarray, channel: int | None = None) -> np.ndarray:
        """Integer prediction ``(C, m)`` from neighbours ``(F, C, m)`` (or one ``channel``'s)."""
        coef = self.coef_ if channel is None else self.coef_[channel : channel + 1]
        bias = self.bias_ if channel is None else self.bias_[channel : channel + 1]
        total = np.einsum("fcm,cf->cm", feats, coef) + bias[:, None] + (1 << (COEF_SHIFT - 1))
        return np.clip(total >> COEF_SHIFT, self.low, self.high)

    def _context(self, feats: np.ndarray) -> np.ndarray:
        """Row of the residual histogram, ``channel * n_contexts + bucket``, for each position."""
        bucket = self._bucket(_activity(feats, self.ndim), self.edges_)
        return np.arange(self.n_channels)[:, None] * self.n_contexts + bucket

    @staticmethod
    def _bucket(activity: np.ndarray, edges: np.ndarray) -> np.ndarray:
        return (activity[:, :, None] >= edges[:, None, :]).sum(-1)

    def _tables(self, pred: np.ndarray, context: np.ndarray) -> np.ndarray:
        """Per-symbol probability tables over the alphabet: the context's residual histogram, shifted."""
        if getattr(self, "_windows", None) is None:  # row r, start i -> smoothed bins i .. i + K - 1
            rows = self.counts_.reshape(-1, self.counts_.shape[-1]) + SMOOTHING
            self._windows = np.lib.stride_tricks.sliding_window_view(rows, self.high - self.low + 1, axis=1)
        return self._windows[context, self.high - pred]


class PayloadError(ValueError):
    """A payload of :meth:`ContextEntropyModel.decode_batch` that does not decode; ``index`` says which."""

    def __init__(self, index: int, message: str):
        super().__init__(message)
        self.index = index


def _checked(index: int, decode, *args):
    """constriction's decode, with its complaints about invalid data (AssertionError, ...) as PayloadError."""
    try:
        return decode(*args)
    except (AssertionError, RuntimeError, ValueError, OverflowError) as error:
        raise PayloadError(index, f"payload does not decode: corrupted or not ours ({error})") from None


def _activity(feats: np.ndarray, ndim: int) -> np.ndarray:
    """Local activity from the neighbours: image gradients, or audio magnitude plus slope."""
    if ndim == 2:
        left, top, top_left, top_right = feats
        return np.abs(left - top_left) + np.abs(top - top_left) + np.abs(top_right - top)
    previous, before = feats
    return np.abs(previous) + np.abs(previous - before)


def _pad(codes: np.ndarray, ndim: int, fill: np.ndarray) -> np.ndarray:
    """Pad the grid axes of ``(..., C, *grid)`` with each channel's ``fill`` code (every neighbour index valid)."""
    width = [(0, 0)] * (codes.ndim - ndim) + list(_PADDING[ndim])
    padded = np.empty([s + a + b for s, (a, b) in zip(codes.shape, width, strict=True)], dtype=np.int64)
    padded[...] = fill.reshape(-1, *[1] * ndim)
    padded[tuple(slice(a, a + s) for s, (a, _) in zip(codes.shape, width, strict=True))] = codes
    return padded


def _unpad(padded: np.ndarray, ndim: int) -> np.ndarray:
    window = tuple(slice(before, padded.shape[-ndim + i] - after) for i, (before, after) in enumerate(_PADDING[ndim]))
    return padded[(Ellipsis, *window)]


def _centre(ndim: int) -> tuple:
    """Offset of a position itself in the padded grid."""
    return tuple(before for before, _ in _PADDING[ndim])


def _shifted(index: tuple, offset: tuple) -> tuple:
    return tuple(i + o for i, o in zip(index, offset, strict=True))


def _keys(grid: tuple) -> np.ndarray:
    """Wavefront key of every position (row-major): ``2 * row + col`` for images, the frame index for audio."""
    if len(grid) == 1:
        return np.arange(grid[0])
    rows, cols = np.indices(grid)
    return (2 * rows + cols).reshape(-1)


def _schedule(grid: tuple) -> np.ndarray:
    """Row-major position indices sorted by wavefront key (stable: ties keep row-major order)."""
    return np.argsort(_keys(grid), kind="stable")


def _steps(grid: tuple):
    """Yield the grid index tuple of each wavefront step's positions, in coding order."""
    order = _schedule(grid)
    keys = _keys(grid)[order]
    bounds = np.flatnonzero(np.diff(keys)) + 1
    for positions in np.split(order, bounds):
        yield tuple(i[None, :] for i in np.unravel_index(positions, grid))


def _stream_order(grid: tuple, n_channels: int) -> np.ndarray:
    """Permutation from position-major scheduled symbols to the stream's step-by-step channel-major order."""
    keys = _keys(grid)[_schedule(grid)]
    bounds = np.concatenate([[0], np.flatnonzero(np.diff(keys)) + 1, [len(keys)]])
    out = []
    for start, stop in zip(bounds[:-1], bounds[1:], strict=True):
        positions = np.arange(start, stop)
        out.append((positions[None, :] * n_channels + np.arange(n_channels)[:, None]).reshape(-1))
    return np.concatenate(out)
