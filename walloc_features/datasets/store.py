"""``CompressedStore``: a dataset of compressed samples on disk, read back as integer latents.

A store trains models on WaLLoC codes without ever decoding pixels or waveforms: samples are
kept as the entropy-coded blobs of :meth:`WaLLoCTransformer.compress
<walloc_features.WaLLoCTransformer.compress>` and read back with ``decompress``, i.e. exactly
``transform(X)`` with ``quantize=True``.

Directory layout::

    path/
        index.json          the list of committed shards (the only source of truth)
        codec/              the fitted transformer (``transformer.save``: config.json + safetensors)
        shard-00000.wls     samples, ``shard_size`` at most per file, never rewritten
        shard-00001.wls
        ...

``index.json`` holds ``{"format": "walloc-features/CompressedStore", "format_version": 1, "store_id",
"shard_size", "labelled", "label_kind", "label_shape", "label_dtype", "n_samples", "n_bytes", "shards":
[{"name", "n_samples", "n_bytes"}, ...]}``; the totals must equal the shards' sums (a store whose index
disagrees is refused), ``label_shape`` (a label's shape per sample) is the same for every append, and
``label_dtype`` (``numpy.result_type`` of every append's labels, e.g. ``"<i8"`` then ``"<f8"`` once
floats were appended) is the dtype every read returns, whichever shards it touches. Stores written
before the last two take them from their shards. ``store_id`` (random, from :meth:`CompressedStore.create`)
tells a store from one re-created at the same path: an object opened on the first refuses to append to the
second, whose codec may differ (stores written before it have none).

Shard file format (version 1; integers little-endian)::

    magic           7 bytes   b"WLSHARD"
    version         1 byte    SHARD_VERSION
    blobs           ...       the samples' blobs back to back (each self-checked by its CRC-32)
    footer:
      n             uint64    samples in the shard
      offsets       uint64 x (n + 1)   file offset of each blob, then of the footer
      labels_size   uint64    0 when unlabelled
      labels        labels_size bytes  one ``np.save`` array (``allow_pickle=False``)
    footer_offset   uint64    where the footer starts
    footer_crc      uint32    ``zlib.crc32`` of the footer
    end magic       4 bytes   b"WLSE"

A reader opens a shard, checks both magics, reads the 16-byte trailer and the footer (cached per
shard: offsets and labels are small), then seeks to the blobs it needs: never the whole shard.

Writes are atomic: every shard is written to a temporary file in the store directory, flushed,
fsync'd and renamed (``os.replace``); ``index.json`` is replaced the same way once all shards
of an :meth:`CompressedStore.append` are in place. A crash at any point leaves the store as it
was before that append: shards not listed in ``index.json`` are ignored, and the next append
removes them (and any temporary files a killed writer left) before it writes. Appends of several
processes take turns: each holds an exclusive lock on the store's ``.lock`` file (``flock``), so an
append sees every sample committed before it.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import operator
import os
import re
import shutil
import struct
import uuid
import zlib
from numbers import Integral, Number
from pathlib import Path

import numpy as np
import torch
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted

from .._files import TMP_PREFIX, exclusive_lock, fsync_dir, unlink_quietly, write_atomic
from ..codecs.blob import BlobError
from ..codecs.companding import code_dtype
from ..features._signals import to_numpy

__all__ = ["CompressedStore", "CompressedTorchDataset"]

FORMAT = "walloc-features/CompressedStore"
FORMAT_VERSION = 1
INDEX_FILE = "index.json"
CODEC_DIR = "codec"
#: Held by every append and create: appends of several processes take their turn.
LOCK_FILE = ".lock"
SHARD_MAGIC = b"WLSHARD"
SHARD_VERSION = 1
SHARD_END = b"WLSE"
_HEADER = struct.Struct("<7sB")
_TRAILER = struct.Struct("<QI4s")
_U64 = struct.Struct("<Q")
_SHARD_NAME = re.compile(r"shard-(\d{5,})\.wls")
#: Samples decoded per ``decompress`` call by :meth:`CompressedStore.read` (bounds its scratch memory).
READ_CHUNK = 4096
#: Bytes a raw value takes: 8-bit pixels, 16-bit PCM audio.
RAW_BYTES = {"image": 1, "audio": 2}
_OUTPUTS = ("flat", "tensor")
_LABEL_KINDS = {"b": "numeric", "i": "numeric", "u": "numeric", "f": "numeric", "U": "string"}
_BLOB_ERROR = re.compile(r"blob (\d+): (.*)", re.DOTALL)


class CompressedStore:
    """A dataset of compressed samples on disk, read back as integer latents (no pixels decoded).

    Samples are appended in shards of at most ``shard_size`` blobs from
    ``transformer.compress``; reading decodes only the requested blobs with
    ``transformer.decompress``. Open an existing store with ``CompressedStore(path)``; make a new
    one with :meth:`create`. The file format is described in the module docstring.

    Parameters
    ----------
    path : str or path-like
        Directory written by :meth:`create`.
    device : str, default=None
        Torch device to load the codec onto (default: the one it was saved with).

    Attributes
    ----------
    path : Path
        The store directory.
    transformer : WaLLoCTransformer
        The codec, loaded from ``path/codec/``; its ``output`` parameter is the default layout.
    shard_size : int
        Most samples per shard file.

    Raises
    ------
    FileNotFoundError
        ``path`` or its ``index.json`` does not exist.
    NotADirectoryError
        ``path`` is a file.
    ValueError
        ``index.json`` is not a CompressedStore index, or one of a newer format.

    See Also
    --------
    walloc_features.WaLLoCTransformer.compress : the blobs a store holds.

    Examples
    --------
    >>> import tempfile
    >>> from walloc_features import WaLLoCTransformer
    >>> from walloc_features.datasets import CompressedStore, load_mnist
    >>> X, y = load_mnist()
    >>> codec = WaLLoCTransformer(reduction=16).fit(X[:300])
    >>> tmp = tempfile.TemporaryDirectory()
    >>> store = CompressedStore.create(tmp.name + "/digits", codec, shard_size=128)
    >>> store.append(X[:200], y[:200])
    range(0, 200)
    >>> store.append(X[200:300], y[200:300])
    range(200, 300)
    >>> len(store), store.n_shards
    (300, 3)
    >>> Z, labels = store.read()
    >>> Z.shape, Z.dtype, labels[:4].tolist()
    ((300, 49), dtype('int8'), [9, 1, 5, 3])
    >>> bool((Z == codec.set_params(quantize=True).transform(X[:300])).all())
    True
    >>> codes, label = store[-1]
    >>> codes.shape, bool(label == y[299])
    ((49,), True)
    >>> store.raw_nbytes  # 300 digits of 28 x 28 bytes
    235200
    >>> store.compression_ratio > 1
    True
    >>> sum(len(Zb) for Zb, yb in store.batches(128, shuffle=True, random_state=0))
    300
    >>> len(CompressedStore(store.path))  # reopened from disk
    300
    >>> tmp.cleanup()
    """

    def __init__(self, path, *, device=None):
        self.path = Path(path)
        if not self.path.exists():
            raise FileNotFoundError(f"no CompressedStore at {self.path}: the directory does not exist")
        if not self.path.is_dir():
            raise NotADirectoryError(f"{self.path} is a file, not a CompressedStore directory")
        self._index = _read_index(self.path)
        self.transformer = _load_codec(self.path / CODEC_DIR, device=device)
        self._codec_identity = _codec_identity(self.transformer)  # append refuses a transformer changed since
        self._footers: dict[int, _Footer] = {}

    # ------------------------------------------------------------------------------ create --
    @classmethod
    def create(cls, path, transformer, *, shard_size: int = 4096, overwrite: bool = False) -> "CompressedStore":
        """Make a new, empty store in directory ``path`` for samples compressed by ``transformer``.

        Parameters
        ----------
        path : str or path-like
            Directory to create. An existing empty directory is used; a non-empty one is refused
            unless ``overwrite=True`` and it holds a CompressedStore, whose files are deleted (or
            only the ``codec/`` a ``create`` killed before writing its index left).
        transformer : WaLLoCTransformer
            A fitted transformer with ``compress`` / ``decompress``; it is saved (a copy, not
            pickled) into ``path/codec/``, so later changes to it do not affect the store.
        shard_size : int, default=4096
            Most samples per shard file, and per ``compress`` call in :meth:`append`.
        overwrite : bool, default=False
            Replace an existing store at ``path``.

        Returns
        -------
        store : CompressedStore

        Raises
        ------
        TypeError
            ``transformer`` cannot compress (no ``compress`` / ``decompress`` / ``save``).
        sklearn.exceptions.NotFittedError
            ``transformer`` is not fitted.
        FileExistsError
            ``path`` is a non-empty directory (without ``overwrite``, or not a store) or a file.
        """
        for method in ("compress", "decompress", "save"):
            if not callable(getattr(transformer, method, None)):
                raise TypeError(
                    f"{type(transformer).__name__} has no {method}() method: a CompressedStore needs a "
                    "transformer that compresses to blobs and saves itself, such as WaLLoCTransformer"
                )
        check_is_fitted(transformer)
        shard_size = _positive_int(shard_size, "shard_size")
        path = Path(path)
        if path.exists() and not path.is_dir():
            raise FileExistsError(f"{path} is a file; a CompressedStore needs a directory")
        content = {f.name for f in path.iterdir()} - {LOCK_FILE} if path.is_dir() else set()
        interrupted = content == {CODEC_DIR} and _is_saved_codec(path / CODEC_DIR)  # what a killed create left
        if content:
            if not overwrite:
                what = ("the codec/ an interrupted create left (it has no index.json)" if interrupted else
                        "the CompressedStore in it")  # fmt: skip
                raise FileExistsError(
                    f"{path} is not empty: choose a new directory, or pass overwrite=True to replace {what}"
                )
            if not (interrupted or _is_store(path)):
                raise FileExistsError(
                    f"{path} is not empty and holds no CompressedStore; refusing to delete its files "
                    "even with overwrite=True: choose a new or empty directory"
                )
        made = not path.exists()
        path.mkdir(parents=True, exist_ok=True)
        with exclusive_lock(path / LOCK_FILE):  # an append in another process finishes first, or sees the new id
            if content:
                _remove_store_files(path)
            index = {
                "format": FORMAT, "format_version": FORMAT_VERSION, "store_id": uuid.uuid4().hex,
                "shard_size": shard_size, "labelled": None, "label_kind": None, "label_shape": None,
                "label_dtype": None, "n_samples": 0, "n_bytes": 0, "shards": [],
            }  # fmt: skip
            try:
                transformer.save(path / CODEC_DIR)
                write_atomic({path / INDEX_FILE: _index_bytes(index)})  # last: a store exists once its index does
            except BaseException:  # leave the directory as empty as it was, or not there at all
                shutil.rmtree(path if made else path / CODEC_DIR, ignore_errors=True)
                raise
        return cls(path)

    # ------------------------------------------------------------------------------ append --
    def append(self, X, y=None) -> range:
        """Compress ``X`` and add it to the store as new shard files.

        ``X`` is read ``shard_size`` samples at a time (a memmap, an h5py dataset or a torch
        tensor is never loaded whole) and each chunk becomes one new shard; existing shards are
        never rewritten. ``index.json`` is replaced once every new shard is on disk, so the
        append is all-or-nothing: after a failure or a crash the store holds exactly the samples
        it held before.

        Parameters
        ----------
        X : array-like or torch.Tensor
            Signals, as for ``transformer.transform``; anything with ``len`` (or a ``shape``) and row
            slicing: an h5py or zarr dataset is read one shard at a time.
            They must have the fitted size (the store holds latents of one shape).
        y : array-like of shape (n_samples,) or (n_samples, ...), default=None
            Labels: integers, floats, booleans or strings (stored as fixed-width unicode). Every
            append of a store gives labels, or none does. Reads return one dtype for the whole
            store, ``numpy.result_type`` of every append's labels (integers, then floats: floats);
            labels it would change (64-bit IDs beyond 2**53 read as floats) are refused.

        Returns
        -------
        indices : range
            Positions of the new samples in the store.

        Raises
        ------
        ValueError
            Labels given to a store of unlabelled samples or the reverse, ``len(y) != len(X)``,
            labels of another kind (numbers vs strings) than before or that the store's label dtype
            would change, samples of another size, ``store.transformer`` changed since the store
            was opened (its blobs could not be read with the saved codec), or the store re-created at
            its path since (by another object's ``create(..., overwrite=True)``).
        """
        if _codec_identity(self.transformer) != self._codec_identity:
            raise ValueError(
                f"store.transformer has changed since the store was opened (refitted, or fit_entropy_model): blobs "
                f"it writes could not be read with the codec saved in {self.path / CODEC_DIR}. Append through "
                "CompressedStore(path), which loads the saved codec, or create a new store for the changed one"
            )
        n = _num_samples(X)
        labels = _check_labels(y, n)
        with exclusive_lock(self.path / LOCK_FILE):  # another process's append would pick the same shard names
            return self._append(X, labels, n)

    def _append(self, X, labels, n: int) -> range:
        """``append`` under the store's lock: what another process committed before is read here."""
        index = self._index = self._committed_index()
        if n == 0:  # nothing to add, so no labels to match (an empty object column has no kind)
            return range(index["n_samples"], index["n_samples"])
        _remove_uncommitted(self.path, index)
        labelled = labels is not None
        if index["labelled"] is not None and labelled != index["labelled"]:
            have, got = ("labelled", "without labels") if index["labelled"] else ("unlabelled", "with labels")
            raise ValueError(f"this store holds {have} samples; append {got} would mix labelled and unlabelled samples")
        kind = _LABEL_KINDS[labels.dtype.kind] if labelled else None
        if labelled and index["label_kind"] not in (None, kind):
            raise ValueError(f"this store's labels are {index['label_kind']}; got {kind} labels ({labels.dtype})")
        label_shape = list(labels.shape[1:]) if labelled else None  # per sample: [] for one label each
        if labelled and index.get("label_shape") is None and index["shards"]:  # a store written before it was
            first = index["shards"][0]  # recorded: its first shard's labels say
            index["label_shape"] = list(_read_footer(self.path / first["name"], first, True).labels.shape[1:])
        if labelled and index.get("label_shape") not in (None, label_shape):
            raise ValueError(
                f"this store's labels have shape {tuple(index['label_shape'])} per sample; got {tuple(label_shape)}: "
                "the shards' labels could not be read together"
            )
        label_dtype = None
        if labelled:  # every read returns one dtype: the widest of all appends (ints then floats read as floats)
            stored = self._stored_label_dtype() if index["shards"] else None
            label_dtype = np.result_type(labels.dtype, *([stored] if stored is not None else []))
            _check_exact_labels(labels, label_dtype, "the labels given")
            if stored is not None and stored != label_dtype:
                _check_exact_labels(self.labels(), label_dtype, "the labels stored")
            label_dtype = label_dtype.str
        start = index["n_samples"]
        shard_size = index["shard_size"]
        written, committed = [], False
        try:
            for lo in range(0, n, shard_size):
                hi = min(lo + shard_size, n)
                chunk = _rows(X, lo, hi)
                size = self.transformer._read(chunk, batched=True)[1].spatial  # compress checks NaN per batch
                if size != self.transformer.layout_.spatial:
                    raise ValueError(
                        f"samples {start + lo}..{start + hi - 1} have size {size}, not the fitted "
                        f"{self.transformer.layout_.spatial}: a CompressedStore holds samples of the fitted size"
                    )
                blobs = self.transformer.compress(chunk)
                if len(blobs) != hi - lo:
                    raise RuntimeError(f"compress returned {len(blobs)} blobs for {hi - lo} samples")
                name = f"shard-{len(index['shards']) + len(written):05d}.wls"
                nbytes = _write_shard(self.path / name, blobs, labels[lo:hi] if labelled else None)
                written.append({"name": name, "n_samples": hi - lo, "n_bytes": nbytes})
            shards = index["shards"] + written
            new_index = {
                **index, "labelled": labelled, "label_kind": kind, "label_shape": label_shape,
                "label_dtype": label_dtype, "shards": shards,
                "n_samples": sum(s["n_samples"] for s in shards), "n_bytes": sum(s["n_bytes"] for s in shards),
            }  # fmt: skip
            write_atomic({self.path / INDEX_FILE: _index_bytes(new_index)}, sync_dir=False)
            committed = True  # the index names the new shards from the rename on: never delete them now
            fsync_dir(self.path)
        finally:
            if not committed:  # tidy up; a crash leaves these orphans, which the next append overwrites
                for shard in written:
                    unlink_quietly(self.path / shard["name"])
        self._index = new_index
        return range(start, start + n)

    def _committed_index(self) -> dict:
        """The index committed now, not when this object read it; refused if the store was re-created since
        (shards are never rewritten, so the cached footers of those this object knows stay valid)."""
        index = _read_index(self.path)
        if index.get("store_id") != self._index.get("store_id"):  # not the store this object holds the codec of
            raise ValueError(
                f"the CompressedStore at {self.path} was re-created (create(..., overwrite=True)) since this object "
                "opened it: its codec and shards may differ. Open it again with CompressedStore(path)"
            )
        return index

    def refresh(self) -> "CompressedStore":
        """Read ``index.json`` again: samples appended since by other objects or processes become readable.

        ``len`` and full reads see what this object knew when it opened the store or last appended; an index
        past those samples refreshes by itself (so a ``DataLoader``'s persistent workers serve samples appended
        between epochs). Returns the store.
        """
        self._index = self._committed_index()
        return self

    # ----------------------------------------------------------------------------- reading --
    def __len__(self) -> int:
        return int(self._index["n_samples"])

    def __getitem__(self, key):
        """``store[i]`` -> ``(codes, label)`` of one sample; ``store[a:b]`` -> ``(Z, y)`` like :meth:`read`.

        ``label`` is ``None`` for an unlabelled store; negative ``i`` counts from the end.
        """
        if isinstance(key, slice):
            return self.read(range(*key.indices(len(self))))
        try:
            i = operator.index(key)
        except TypeError:
            raise TypeError(f"store indices must be integers or slices, not {type(key).__name__}") from None
        Z, y = self.read([i])
        return Z[0], (None if y is None else y[0])

    def read(self, indices=None, *, output=None):
        """Decode samples to their integer codes.

        Parameters
        ----------
        indices : array-like of int, default=None
            Positions to read, in this order (negative ones count from the end; repeats are
            allowed). ``None`` reads every sample this object knows; an index past them reads
            ``index.json`` again first (see :meth:`refresh`).
        output : {"flat", "tensor"}, default=None
            ``(N, D)`` rows or ``(N, *latent_shape_)``; ``None`` follows ``transformer.output``.

        Returns
        -------
        Z : ndarray
            Exactly ``transformer.transform(X)`` with ``quantize=True`` for the stored ``X``.
        y : ndarray or None
            Their labels, or ``None`` for an unlabelled store.

        Raises
        ------
        IndexError
            An index is out of range, even after reading ``index.json`` again.
        ValueError
            An index past the known samples, of a store re-created since this object opened it.
        BlobError
            A sample's bytes are corrupted (the message names the sample and its shard).
        """
        output = self._check_output(output)
        idx = np.arange(len(self)) if indices is None else self._check_indices(indices)
        shape = self._sample_shape(output)
        Z = None
        for lo in range(0, len(idx), READ_CHUNK):
            chunk = self._decode(idx[lo : lo + READ_CHUNK], output)
            if Z is None:
                Z = np.empty((len(idx), *shape), dtype=chunk.dtype)
            Z[lo : lo + len(chunk)] = chunk
        if Z is None:
            Z = self._decode(idx, output)
        return Z, self._gather_labels(idx)

    def batches(self, batch_size: int = 256, *, shuffle: bool = False, random_state=None, output=None):
        """Iterate over the store in batches, decoding only one batch at a time.

        Parameters
        ----------
        batch_size : int, default=256
            Samples per batch (the last one may be smaller).
        shuffle : bool, default=False
            Visit the samples in the order ``check_random_state(random_state).permutation(n)``.
        random_state : int, RandomState instance or None, default=None
            Seeds the shuffle (an int gives the same batches every time).
        output : {"flat", "tensor"}, default=None
            As for :meth:`read`.

        Yields
        ------
        Z : ndarray
            The batch's codes.
        y : ndarray or None
            Their labels.
        """
        batch_size = _positive_int(batch_size, "batch_size")
        output = self._check_output(output)
        n = len(self)
        order = check_random_state(random_state).permutation(n) if shuffle else np.arange(n)
        return self._iter_batches(order, batch_size, output)

    def _iter_batches(self, order, batch_size, output):
        for lo in range(0, len(order), batch_size):
            idx = order[lo : lo + batch_size]
            yield self._decode(idx, output), self._gather_labels(idx)

    def labels(self):
        """All labels (read from the shard footers only, no sample decoded), or ``None`` if unlabelled."""
        return self._gather_labels(np.arange(len(self)), checked=False)

    def to_torch(self, output: str = "tensor", dtype=torch.float32) -> "CompressedTorchDataset":
        """A ``torch.utils.data.Dataset`` over the store (see :class:`CompressedTorchDataset`)."""
        return CompressedTorchDataset(self, output=output, dtype=dtype)

    # ------------------------------------------------------------------------------- sizes --
    @property
    def n_shards(self) -> int:
        """Shard files in the store."""
        return len(self._index["shards"])

    @property
    def shard_size(self) -> int:
        """Most samples per shard."""
        return int(self._index["shard_size"])

    @property
    def labelled(self):
        """``True``/``False`` once samples were appended with/without labels; ``None`` before."""
        return self._index["labelled"]

    @property
    def nbytes(self) -> int:
        """Bytes on disk of the shards and ``index.json`` (the codec directory is not counted)."""
        return int(self._index["n_bytes"]) + (self.path / INDEX_FILE).stat().st_size

    @property
    def codec_nbytes(self) -> int:
        """Bytes on disk of the codec directory (the saved transformer)."""
        return sum(f.stat().st_size for f in (self.path / CODEC_DIR).rglob("*") if f.is_file())

    @property
    def raw_nbytes(self) -> int:
        """Bytes the raw samples would take: 1 byte a pixel value (8-bit), 2 an audio sample (16-bit PCM)."""
        return len(self) * self._raw_values() * RAW_BYTES[self.transformer.modality_]

    @property
    def compression_ratio(self) -> float:
        """``raw_nbytes / nbytes`` (0 for an empty store)."""
        return self.raw_nbytes / self.nbytes

    def summary(self) -> dict:
        """Sizes in one dict.

        Returns
        -------
        summary : dict
            ``path``, ``n_samples``, ``n_shards``, ``nbytes``, ``codec_nbytes``, ``raw_nbytes``,
            ``compression_ratio``, and ``bits_per_sample``: ``8 * nbytes`` per raw value (pixel
            value or audio sample), ``nan`` for an empty store.
        """
        n, values = len(self), self._raw_values()
        return {
            "path": str(self.path),
            "n_samples": n,
            "n_shards": self.n_shards,
            "nbytes": self.nbytes,
            "codec_nbytes": self.codec_nbytes,
            "raw_nbytes": self.raw_nbytes,
            "compression_ratio": self.compression_ratio,
            "bits_per_sample": 8 * self.nbytes / (n * values) if n else float("nan"),
        }

    def __repr__(self) -> str:
        return (
            f"CompressedStore({str(self.path)!r}, n_samples={len(self)}, n_shards={self.n_shards}, "
            f"nbytes={_human(self.nbytes)}, raw={_human(self.raw_nbytes)}, ratio={self.compression_ratio:.1f}x)"
        )

    # --------------------------------------------------------------------------- internals --
    def _raw_values(self) -> int:
        return int(np.prod(self.transformer.input_shape_))

    def _check_output(self, output):
        output = self.transformer.output if output is None else output
        if output not in _OUTPUTS:
            raise ValueError(f"output must be 'flat' or 'tensor', got {output!r}")
        return output

    def _sample_shape(self, output) -> tuple:
        shape = tuple(self.transformer.latent_shape_)
        return (int(np.prod(shape)),) if output == "flat" else shape

    def _check_indices(self, indices) -> np.ndarray:
        idx = np.asarray(indices)
        if idx.ndim != 1 or (idx.size and idx.dtype.kind not in "iu"):
            raise TypeError(f"indices must be a 1-D sequence of integers, got {idx.dtype} of shape {idx.shape}")
        n = len(self)
        if idx.dtype.kind == "i":  # negative indices count from the end this object knows, before any refresh
            below = idx < -n
            if below.any():
                raise IndexError(f"index {int(idx[below][0])} is out of range for a store of {n} samples")
            idx = np.where(idx < 0, idx + n, idx)
        if idx.size and idx.max() >= n:  # appended since this object read the index (another object or process)?
            n = len(self.refresh())
            above = idx >= n  # (compared before any cast: uint64's 2**64 - 1 would wrap to -1)
            if above.any():
                raise IndexError(f"index {int(idx[above][0])} is out of range for a store of {n} samples")
        return idx.astype(np.int64)

    def _starts(self) -> np.ndarray:
        return np.concatenate([[0], np.cumsum([s["n_samples"] for s in self._index["shards"]])]).astype(np.int64)

    def _locate(self, idx: np.ndarray):
        starts = self._starts()
        shard = np.searchsorted(starts, idx, side="right") - 1
        return shard, idx - starts[shard]

    def _footer(self, s: int) -> "_Footer":
        footer = self._footers.get(s)
        if footer is None or len(getattr(footer, "identity", ())) != 3:  # or cached by an older version (a pickle)
            info = self._index["shards"][s]
            footer = self._footers[s] = _read_footer(self.path / info["name"], info, self._index["labelled"])
        return footer

    def _read_blobs(self, idx: np.ndarray) -> list:
        """The blobs at global positions ``idx`` (one seek + read per run of consecutive samples)."""
        blobs = [None] * len(idx)
        shard, local = self._locate(idx)
        for s in np.unique(shard):
            footer, name = self._footer(s), self._index["shards"][s]["name"]
            where = np.flatnonzero(shard == s)
            where = where[np.argsort(local[where], kind="stable")]
            pos = local[where]
            breaks = np.flatnonzero(np.diff(pos) > 1) + 1
            with open(self.path / name, "rb") as f:
                self._check_same_shard(s, f)
                for run in np.split(np.arange(len(pos)), breaks):
                    first, last = int(pos[run[0]]), int(pos[run[-1]])
                    lo, hi = int(footer.offsets[first]), int(footer.offsets[last + 1])
                    f.seek(lo)
                    data = f.read(hi - lo)
                    if len(data) != hi - lo:
                        raise BlobError(f"shard {name} is truncated: samples {first}..{last} are cut off")
                    for k in run:
                        p = int(pos[k])
                        blobs[where[k]] = data[int(footer.offsets[p]) - lo : int(footer.offsets[p + 1]) - lo]
        return blobs

    def _check_same_shard(self, s: int, f) -> None:
        """Refuse shard ``s`` (open as ``f``) if it is not the one whose footer is cached: new blobs or labels
        beside the cached ones of a store re-created at this path since."""
        if _shard_identity(f) != self._footer(s).identity:
            raise ValueError(
                f"shard {self._index['shards'][s]['name']} was replaced since this object read it: the CompressedStore "
                f"at {self.path} was re-created (create(..., overwrite=True)). Open it again with CompressedStore(path)"
            )

    def _decode(self, idx: np.ndarray, output: str) -> np.ndarray:
        if len(idx) == 0:  # no blobs to take the shape from: the layout asked for
            return np.empty((0, *self._sample_shape(output)), dtype=code_dtype(self.transformer.bits_per_code_))
        blobs = self._read_blobs(idx)
        try:
            Z = np.asarray(self.transformer.decompress(blobs))
        except BlobError as error:
            match = _BLOB_ERROR.match(str(error))
            if match is None:
                raise BlobError(f"samples {idx[:1].tolist()}..{idx[-1:].tolist()}: {error}") from None
            g = int(idx[int(match.group(1))])
            s, local = (int(v[0]) for v in self._locate(np.array([g])))
            name = self._index["shards"][s]["name"]
            raise BlobError(f"sample {g} (item {local} of {name}): {match.group(2)}") from None
        return Z.reshape(len(idx), *self._sample_shape(output))

    def _stored_label_dtype(self) -> np.dtype:
        """The dtype of the committed labels, from the index (or every shard of a store older than it)."""
        recorded = self._index.get("label_dtype")
        if recorded is not None:
            try:
                dtype = np.dtype(recorded)
            except TypeError:
                dtype = None
            if dtype is None or dtype.kind not in _LABEL_KINDS:
                raise ValueError(f"{self.path / INDEX_FILE} has a malformed label_dtype {recorded!r}")
            return dtype
        return np.result_type(*(self._footer(s).labels.dtype for s in range(self.n_shards)))

    def _gather_labels(self, idx: np.ndarray, *, checked: bool = True):
        """Labels at ``idx`` from the cached footers; ``checked=False`` first checks the shards are still those
        (read and batches check them as they read the blobs)."""
        if not self._index["labelled"]:
            return None
        dtype = self._stored_label_dtype()
        shard, local = self._locate(idx)
        parts = {int(s): self._footer(s).labels for s in np.unique(shard)}
        for s in parts if not checked else ():
            with open(self.path / self._index["shards"][s]["name"], "rb") as f:
                self._check_same_shard(s, f)
        if not parts:
            return np.empty((0, *(self._index.get("label_shape") or [])), dtype=dtype)
        first = next(iter(parts.values()))
        if any(not np.can_cast(labels.dtype, dtype) for labels in parts.values()):  # "|b1" read every int as True
            kinds = sorted({str(labels.dtype) for labels in parts.values()})
            raise ValueError(f"{self.path / INDEX_FILE} has label_dtype {dtype}, which cannot hold the shards' {kinds}")
        y = np.empty((len(idx), *first.shape[1:]), dtype=dtype)
        for s, labels in parts.items():
            sel = shard == s
            y[sel] = labels[local[sel]]
        return y


class CompressedTorchDataset(torch.utils.data.Dataset):
    """A :class:`CompressedStore` as a map-style ``torch.utils.data.Dataset``.

    Items are ``(codes, label)``: ``codes`` a tensor of ``dtype`` (``latent_shape_`` for
    ``output="tensor"``, ``(D,)`` for ``"flat"``) and ``label`` a Python int, float, bool or str
    (``DataLoader``'s default collate makes an int64, float64 or bool tensor, or a tuple of strings)
    or, for labels of shape ``(k, ...)`` per sample, a tensor of the stored dtype (int64 for unsigned
    types wider than 8 bits; collated to ``(batch, k, ...)``, as ``TensorDataset``'s; string labels of
    that shape are lists, which the default collate transposes). An unlabelled store gives 1-tuples ``(codes,)``. A
    ``DataLoader`` fetches each batch with one ``decompress`` call (``__getitems__``); samples appended
    through this store object are served at once, those of others after ``store.refresh()``.

    Parameters
    ----------
    store : CompressedStore
    output : {"flat", "tensor"}, default="tensor"
    dtype : torch.dtype, default=torch.float32
        Dtype of the code tensors. One that cannot hold every code exactly is refused: bfloat16 holds
        codes of up to 9 bits, float16 and int16 of up to 12 and 16, int8 of 8; unsigned types and bool none.

    Examples
    --------
    >>> import tempfile
    >>> import torch
    >>> from walloc_features import WaLLoCTransformer
    >>> from walloc_features.datasets import CompressedStore, load_mnist
    >>> X, y = load_mnist()
    >>> tmp = tempfile.TemporaryDirectory()
    >>> store = CompressedStore.create(tmp.name, WaLLoCTransformer(reduction=16).fit(X[:300]))
    >>> store.append(X[:64], y[:64])
    range(0, 64)
    >>> loader = torch.utils.data.DataLoader(store.to_torch(), batch_size=32)
    >>> codes, labels = next(iter(loader))
    >>> codes.shape, codes.dtype, labels.dtype
    (torch.Size([32, 1, 7, 7]), torch.float32, torch.int64)
    >>> tmp.cleanup()
    """

    def __init__(self, store: CompressedStore, output: str = "tensor", dtype=torch.float32):
        if not isinstance(dtype, torch.dtype):
            raise TypeError(f"dtype must be a torch.dtype, got {dtype!r}")
        bits = int(store.transformer.bits_per_code_)
        if not _holds_codes(dtype, bits):  # a cast would wrap or round codes silently
            raise ValueError(f"dtype {dtype} cannot hold every {bits}-bit code (-{2 ** (bits - 1)} to "
                             f"{2 ** (bits - 1) - 1}) exactly: use torch.float32, or a wider type")  # fmt: skip
        self.store = store
        self.output = store._check_output(output)
        self.dtype = dtype

    def __len__(self) -> int:
        return len(self.store)

    def __getitem__(self, i):
        return self.__getitems__([i])[0]

    def __getitems__(self, indices):
        idx = self.store._check_indices(list(indices))
        codes = torch.from_numpy(self.store._decode(idx, self.output)).to(self.dtype)
        labels = self.store._gather_labels(idx)
        if labels is None:
            return [(c,) for c in codes]
        if labels.ndim > 1 and labels.dtype.kind != "U":  # rows of a tensor: collated to (batch, *label_shape)
            if labels.dtype.kind == "u" and labels.dtype.itemsize > 1 and labels.max(initial=0) < 2**63:
                labels = labels.astype(np.int64)  # as scalar labels collate: torch's wide unsigned types do little
            return list(zip(codes, torch.from_numpy(labels), strict=True))
        return [(c, label) for c, label in zip(codes, labels.tolist(), strict=True)]


def _holds_codes(dtype: torch.dtype, bits: int) -> bool:
    """Whether torch ``dtype`` holds every signed ``bits``-bit code exactly, by a round trip of the extremes,
    -1, 0 and 1: an integer type or a binary float exact at ``2**(bits-1) - 1`` is exact below it (``finfo``
    misstates some float8 types; quantized and sub-byte types do not cast at all)."""
    top = 2 ** (bits - 1)
    probe = torch.tensor([-top, -1, 0, 1, top - 1], dtype=torch.float64)
    try:
        back = probe.to(dtype)
        back = (back.real if back.is_complex() else back).to(torch.float64)
    except (RuntimeError, TypeError, NotImplementedError):
        return False
    return torch.equal(back, probe)


# --------------------------------------------------------------------------------- files --
class _Footer:
    __slots__ = ("offsets", "labels", "identity")

    def __init__(self, offsets: np.ndarray, labels, identity: tuple = ()):
        self.offsets = offsets
        self.labels = labels
        self.identity = identity  # the shard's size, footer offset and footer CRC: reads check it is the same


def _shard_identity(f) -> tuple:
    """Which shard an open file holds, by content: its size and trailer (footer offset, footer CRC). A store
    re-created at its path writes new shards under the old names; a touch, ``rsync -t`` or ``cp -p`` changes no
    content and no identity (file times and inode numbers would: a reader refused a touched shard)."""
    size = os.fstat(f.fileno()).st_size
    if size < _TRAILER.size:
        return (size,)
    f.seek(size - _TRAILER.size)
    footer_offset, crc, _ = _TRAILER.unpack(f.read(_TRAILER.size))
    return size, footer_offset, crc


def _write_shard(path: Path, blobs: list, labels) -> int:
    """Write one shard atomically (temporary file, fsync, rename); return its size in bytes."""
    offsets = np.empty(len(blobs) + 1, dtype="<u8")
    position = _HEADER.size
    for i, blob in enumerate(blobs):
        offsets[i] = position
        position += len(blob)
    offsets[-1] = position
    label_bytes = b""
    if labels is not None:
        buffer = io.BytesIO()
        np.save(buffer, labels, allow_pickle=False)
        label_bytes = buffer.getvalue()
    footer = b"".join([_U64.pack(len(blobs)), offsets.tobytes(), _U64.pack(len(label_bytes)), label_bytes])
    trailer = _TRAILER.pack(position, zlib.crc32(footer), SHARD_END)

    def write(f):
        f.write(_HEADER.pack(SHARD_MAGIC, SHARD_VERSION))
        for blob in blobs:
            f.write(blob)
        f.write(footer)
        f.write(trailer)

    write_atomic({path: write})
    return position + len(footer) + _TRAILER.size


def _read_footer(path: Path, info: dict, labelled) -> _Footer:
    """Offsets and labels of a shard, checked against its header, trailer, CRC and index entry (``labelled``:
    the index's word on whether shards hold labels)."""
    name = info["name"]

    def broken(why):
        return BlobError(f"shard {name} is corrupted or truncated: {why}")

    try:
        f = open(path, "rb")
    except FileNotFoundError:
        raise FileNotFoundError(f"shard {name} listed in {INDEX_FILE} is missing from {path.parent}") from None
    with f:
        identity = _shard_identity(f)
        size = identity[0]
        f.seek(0)
        if size != info["n_bytes"]:
            raise broken(f"it has {size} bytes, {INDEX_FILE} says {info['n_bytes']}")
        if size < _HEADER.size + 2 * _U64.size + _TRAILER.size:
            raise broken(f"{size} bytes is too small for a shard")
        magic, version = _HEADER.unpack(f.read(_HEADER.size))
        if magic != SHARD_MAGIC:
            raise broken(f"it starts with {magic!r}, not {SHARD_MAGIC!r}")
        if version > SHARD_VERSION:
            raise ValueError(
                f"shard {name} has format version {version}, newer than this walloc-features reads ({SHARD_VERSION}): "
                "upgrade walloc-features to read it, or, if this version wrote the store, the file is damaged"
            )
        f.seek(size - _TRAILER.size)
        footer_offset, crc, end = _TRAILER.unpack(f.read(_TRAILER.size))
        if end != SHARD_END:
            raise broken(f"it ends with {end!r}, not {SHARD_END!r}")
        if not _HEADER.size <= footer_offset <= size - _TRAILER.size - 2 * _U64.size:
            raise broken(f"footer offset {footer_offset} is outside the file")
        f.seek(footer_offset)
        footer = f.read(size - _TRAILER.size - footer_offset)
    if zlib.crc32(footer) != crc:
        raise broken("footer checksum mismatch")
    (n,) = _U64.unpack_from(footer)
    if n != info["n_samples"]:
        raise broken(f"it holds {n} samples, {INDEX_FILE} says {info['n_samples']}")
    end_offsets = _U64.size * (n + 2)
    if len(footer) < end_offsets + _U64.size:
        raise broken("footer too short")
    offsets = np.frombuffer(footer, dtype="<u8", count=n + 1, offset=_U64.size).astype(np.int64)
    if offsets[0] != _HEADER.size or offsets[-1] != footer_offset or (np.diff(offsets) < 0).any():
        raise broken("blob offsets are inconsistent")
    (label_size,) = _U64.unpack_from(footer, end_offsets)
    label_bytes = footer[end_offsets + _U64.size :]
    if len(label_bytes) != label_size:
        raise broken("labels are truncated")
    if bool(label_size) != bool(labelled):  # else the labels were dropped, or read as absent, silently
        raise broken(f"it holds {'labels' if label_size else 'no labels'}, {INDEX_FILE} says labelled={labelled!r}")
    labels = None
    if label_size:
        labels = _load_labels(label_bytes, n, broken)
    return _Footer(offsets, labels, identity)


def _load_labels(data: bytes, n: int, broken) -> np.ndarray:
    """A shard's ``.npy`` labels, their header checked against the bytes present before anything is allocated
    (np.load allocates whatever shape a header declares: 30 GB for 80 bytes of a forged one)."""
    buffer = io.BytesIO(data)
    try:
        version = np.lib.format.read_magic(buffer)
        read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, _, dtype = read_header(buffer)
    except ValueError as error:
        raise broken(f"label header: {error}") from None
    size = math.prod(shape) * dtype.itemsize
    if dtype.hasobject or not shape or shape[0] != n or size != len(data) - buffer.tell():
        raise broken(f"labels of shape {shape} and dtype {dtype} in {len(data) - buffer.tell()} bytes for {n} samples")
    return np.load(io.BytesIO(data), allow_pickle=False)


def _index_bytes(index: dict) -> bytes:
    return (json.dumps(index, indent=2) + "\n").encode()


def _read_index(path: Path) -> dict:
    file = path / INDEX_FILE
    if not file.is_file():
        raise FileNotFoundError(f"{path} is not a CompressedStore: it has no {INDEX_FILE}")
    try:
        index = json.loads(file.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"{file} is not a CompressedStore index: {error}") from None
    if not isinstance(index, dict) or index.get("format") != FORMAT:
        found = index.get("format") if isinstance(index, dict) else type(index).__name__
        raise ValueError(f"{file} is not a CompressedStore index (format={found!r}, expected {FORMAT!r})")
    version = index.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise ValueError(
            f"{file} has format version {version!r}; this walloc-features reads version {FORMAT_VERSION}: upgrade it"
        )
    if not _is_count(index.get("shard_size")) or index["shard_size"] == 0:
        raise ValueError(f"{file} has a malformed shard_size {index.get('shard_size')!r} (a positive integer)")
    shards = index.get("shards")
    if index.get("labelled") not in ((True, False) if shards else (None, True, False)):
        raise ValueError(f"{file} has a malformed labelled {index.get('labelled')!r} (true or false once written)")
    if not isinstance(shards, list) or any(
        not isinstance(s, dict) or not _SHARD_NAME.fullmatch(str(s.get("name"))) for s in shards
    ):
        raise ValueError(f"{file} has a malformed shard list")
    for total in ("n_samples", "n_bytes"):  # the totals len() and reads trust must be the shards' own
        counts = [s.get(total) for s in shards]
        if not all(_is_count(c) for c in [index.get(total), *counts]) or index[total] != sum(counts):
            raise ValueError(f"{file} is inconsistent: {total}={index.get(total)!r}, its shards say {counts[:8]}")
    return index


def _is_count(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _is_store(path: Path) -> bool:
    try:
        _read_index(path)
    except (OSError, ValueError):
        return False
    return True


def _store_files(path: Path) -> list[Path]:
    """The shard files and temporaries in ``path``: the files a store writes besides its index and codec."""
    ours = (f for f in path.iterdir() if _SHARD_NAME.fullmatch(f.name) or f.name.startswith(TMP_PREFIX))
    return [f for f in ours if f.is_file()]


def _remove_uncommitted(path: Path, index: dict) -> None:
    """Delete what a killed append left: shards the index does not name, and temporary files. (Called under
    the store's lock, so no other append is writing them.) They were overwritten only as far as the
    next append reached: three orphan shards and an append of one left two on disk for good."""
    named = {shard["name"] for shard in index["shards"]}
    for f in _store_files(path):
        if f.name not in named:
            unlink_quietly(f)


def _is_saved_codec(path: Path) -> bool:
    """Whether folder ``path`` holds what ``transformer.save`` writes and nothing else (the codec/ of a create
    killed before its index), so overwrite=True may delete it."""
    try:
        names = [f.name for f in path.iterdir()] if path.is_dir() else None
    except OSError:
        return False
    saved = {"config.json", "model.safetensors"}
    return names is not None and all(name in saved or name.startswith(TMP_PREFIX) for name in names)


def _remove_store_files(path: Path) -> None:
    """Delete a store's own files (index first, so a crash midway leaves no half store)."""
    (path / INDEX_FILE).unlink(missing_ok=True)  # (missing: the codec/ of an interrupted create alone)
    for f in _store_files(path):
        f.unlink()
    if (path / CODEC_DIR).is_dir():
        shutil.rmtree(path / CODEC_DIR)


def _load_codec(path: Path, *, device=None):
    """The transformer in ``path`` (its config.json names the class; nothing is unpickled)."""
    from ..features.walloc import _FORMAT as WALLOC_FORMAT
    from ..features.walloc import WaLLoCTransformer

    classes = {WALLOC_FORMAT: WaLLoCTransformer}
    config = path / "config.json"
    if not config.is_file():
        raise FileNotFoundError(f"{path.parent} is not a complete CompressedStore: {config} is missing")
    try:
        fmt = json.loads(config.read_text()).get("format")
    except (UnicodeDecodeError, json.JSONDecodeError, AttributeError) as error:
        raise ValueError(f"{config} is not a saved transformer: {error}") from None
    if fmt not in classes:
        raise ValueError(f"{config} holds a {fmt!r}, which a CompressedStore cannot load")
    return classes[fmt].load(path, device=device)


# ---------------------------------------------------------------------------- validation --
def _codec_identity(transformer) -> tuple:
    """What decides a store's blobs: the entropy model's fingerprint, the code bits, the latent shape and a
    digest of the codec's weights."""
    model = getattr(transformer, "entropy_model_", None)
    digest = hashlib.blake2b(digest_size=16)
    codec = getattr(transformer, "codec_", None)
    for name, tensor in (codec.state_dict().items() if codec is not None else ()):
        digest.update(name.encode() + tensor.detach().cpu().contiguous().numpy().tobytes())
    return (None if model is None else model.fingerprint, getattr(transformer, "bits_per_code_", None),
            tuple(getattr(transformer, "latent_shape_", ())), digest.hexdigest())  # fmt: skip


def _check_exact_labels(labels: np.ndarray, dtype: np.dtype, what: str) -> None:
    """Refuse labels that the store's one label dtype would change: 64-bit integer IDs read as float64 (beyond
    2**53), or uint64 with int64 (read as float64), became other, even equal, values."""
    if labels is None or labels.dtype == dtype or dtype.kind in "UO":
        return
    back = labels.astype(dtype).astype(labels.dtype)
    same = np.array_equal(back, labels, equal_nan=True) if labels.dtype.kind in "fc" else np.array_equal(back, labels)
    if not same:
        raise ValueError(
            f"{what} ({labels.dtype}) cannot be read back exactly as {dtype}, the one label dtype the store would "
            "need for every append: convert all labels to one type that holds them (e.g. strings for IDs)"
        )


def _num_samples(X) -> int:
    shape = getattr(X, "shape", None)  # arrays without len(): zarr 3's
    if shape is not None and len(shape) == 1 and shape[0]:  # else its values were counted as samples against y
        raise ValueError(
            f"X of shape {tuple(shape)} is not a batch of samples (an array with one axis per sample dimension): "
            "for one flat sample pass X[None]"
        )
    if shape is not None and len(shape) and isinstance(shape[0], Integral):
        return int(shape[0])
    try:
        return len(X)
    except TypeError:
        what = type(X).__name__
        raise TypeError(f"X must support len() and row slicing (an array, tensor or list), got {what}") from None


def _rows(X, lo: int, hi: int):
    return X.iloc[lo:hi] if hasattr(X, "iloc") else X[lo:hi]


def _check_labels(y, n: int):
    if y is None:
        return None
    labels = np.asarray(to_numpy(y, name="y"))
    if labels.ndim == 0:
        raise ValueError("y must be a sequence of labels, one per sample, not a scalar")
    if len(labels) != n:
        raise ValueError(f"y has {len(labels)} labels for {n} samples: they must have the same length")
    if labels.dtype.kind == "O" and labels.size:  # a pandas object column: numbers stay numbers (not strings)
        kinds = {_label_kind(v) for v in labels.ravel().tolist()}
        if len(kinds) > 1 or "other" in kinds:
            raise ValueError(f"labels of mixed or unknown kinds ({', '.join(sorted(kinds))}); give one kind of label")
        labels = np.asarray(labels.tolist())
        if labels.dtype.kind == "O":
            raise ValueError("labels that numpy holds in no one dtype (integers beyond 64 bits?); give other labels")
    if labels.dtype.kind in "OSU":
        try:
            labels = labels.astype(str)  # fixed-width unicode: no pickle needed to store it
        except UnicodeDecodeError as error:
            raise ValueError(f"byte-string labels must be ASCII ({error}); decode them to str first") from None
    if labels.dtype.kind not in _LABEL_KINDS:
        raise ValueError(f"labels must be integers, floats, booleans or strings, got dtype {labels.dtype}")
    return labels


def _label_kind(value) -> str:
    """What one label of an object array is: strings, bytes and numbers (booleans included) each make a kind."""
    if isinstance(value, str):
        return "strings"
    if isinstance(value, bytes):
        return "bytes"
    return "numbers" if isinstance(value, Number) else "other"


def _positive_int(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, Integral) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def _human(nbytes: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if nbytes < 1000 or unit == "GB":
            return f"{nbytes:.0f} {unit}" if unit == "B" else f"{nbytes:.1f} {unit}"
        nbytes /= 1000
    return f"{nbytes:.1f} TB"  # pragma: no cover
