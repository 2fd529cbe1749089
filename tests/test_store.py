"""CompressedStore: compressed samples on disk, read back as the exact integer latents."""

import copy
import json
import os
import struct
import tempfile
import zlib

import numpy as np
import pytest
import torch
from sklearn.exceptions import NotFittedError
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from walloc_features import WaLLoCTransformer
from walloc_features.codecs.blob import BlobError
from walloc_features.datasets import CompressedStore, load_speech_commands
from walloc_features.datasets import store as store_module
from walloc_features.quantized import Dequantize

N = 600  # digits in the shared store: appended as 400 + 200 in shards of 128


@pytest.fixture(scope="module")
def codec(mnist):
    X, _ = mnist
    return WaLLoCTransformer(reduction=16).fit(X[:2000])


def quantized(codec, X, output="flat"):
    """What the store must give back: ``transform`` with ``quantize=True`` (on a copy of the codec)."""
    return copy.deepcopy(codec).set_params(quantize=True, output=output).transform(X)


@pytest.fixture(scope="module")
def expected(codec, mnist):
    X, y = mnist
    tensor = quantized(codec, X[:N], "tensor")
    return {"flat": tensor.reshape(N, -1), "tensor": tensor, "y": y[:N]}


@pytest.fixture(scope="module")
def store(codec, mnist, tmp_path_factory):
    """600 labelled digits, read-only for the tests that share it."""
    X, y = mnist
    store = CompressedStore.create(tmp_path_factory.mktemp("store") / "digits", codec, shard_size=128)
    assert store.append(X[:400], y[:400]) == range(0, 400)
    assert store.append(X[400:N], y[400:N]) == range(400, N)
    return store


@pytest.fixture(scope="module")
def big_store(codec, mnist, tmp_path_factory):
    """2000 labelled digits in shards of 500 (large enough that reading it all would show)."""
    X, y = mnist
    store = CompressedStore.create(tmp_path_factory.mktemp("big"), codec, shard_size=500)
    store.append(X[:2000], y[:2000])
    return store


def shard_files(path):
    return sorted(p.name for p in path.iterdir() if p.name.startswith("shard-"))


# ---------------------------------------------------------------------------- round trip --
@pytest.mark.parametrize("output", ["flat", "tensor"])
def test_read_equals_quantized_transform(store, expected, output):
    Z, y = store.read(output=output)
    assert Z.dtype == np.int8
    np.testing.assert_array_equal(Z, expected[output])
    np.testing.assert_array_equal(y, expected["y"])


def test_default_output_follows_the_transformer(store, expected):
    assert store.transformer.output == "flat"
    Z, _ = store.read([0, 1])
    np.testing.assert_array_equal(Z, expected["flat"][:2])
    tensor = CompressedStore(store.path)  # its own loaded codec: the shared store stays flat
    tensor.transformer.set_params(output="tensor")
    np.testing.assert_array_equal(tensor.read([0, 1])[0], expected["tensor"][:2])
    np.testing.assert_array_equal(next(iter(tensor.batches(2)))[0], expected["tensor"][:2])


def test_appends_accumulate_in_order_across_shards(store, expected):
    assert len(store) == N
    assert store.n_shards == 6  # 400 -> 128 + 128 + 128 + 16, then 200 -> 128 + 72
    index = json.loads((store.path / "index.json").read_text())
    assert index["format"] == "walloc-features/CompressedStore" and index["format_version"] == 1
    assert [s["n_samples"] for s in index["shards"]] == [128, 128, 128, 16, 128, 72]
    assert [s["name"] for s in index["shards"]] == [f"shard-{i:05d}.wls" for i in range(6)]
    assert index["n_samples"] == N and index["n_bytes"] == sum(s["n_bytes"] for s in index["shards"])
    assert shard_files(store.path) == [s["name"] for s in index["shards"]]
    np.testing.assert_array_equal(store.labels(), expected["y"])


def test_getitem_negative_index_and_index_error(store, expected):
    for i in (0, 127, 128, 383, 384, N - 1):
        codes, label = store[i]
        np.testing.assert_array_equal(codes, expected["flat"][i])
        assert label == expected["y"][i]
    codes, label = store[-1]
    np.testing.assert_array_equal(codes, expected["flat"][N - 1])
    assert label == expected["y"][N - 1]
    np.testing.assert_array_equal(store[-N][0], expected["flat"][0])
    for bad in (N, -N - 1):
        with pytest.raises(IndexError, match="out of range"):
            store[bad]
    with pytest.raises(IndexError, match=f"index 18446744073709551615 is out of range for a store of {N}"):
        store.read(np.array([2**64 - 1], np.uint64))  # not wrapped to -1, the last sample
    Z, y = store[120:140]
    np.testing.assert_array_equal(Z, expected["flat"][120:140])
    np.testing.assert_array_equal(y, expected["y"][120:140])


def test_read_given_indices_in_their_order(store, expected):
    indices = [599, 5, -1, 5, 130, 0]
    Z, y = store.read(indices, output="tensor")
    np.testing.assert_array_equal(Z, expected["tensor"][indices])
    np.testing.assert_array_equal(y, expected["y"][indices])
    Z, y = store.read([])
    assert Z.shape == (0, 49) and y.shape == (0,)
    with pytest.raises(IndexError):
        store.read([0, N])
    with pytest.raises(ValueError, match="output"):
        store.read([0], output="image")


def test_speech_round_trip_and_sizes(tmp_path):
    X, y, _ = load_speech_commands(n_speakers=2)
    codec = WaLLoCTransformer(reduction=20, output="tensor").fit(X)
    store = CompressedStore.create(tmp_path / "speech", codec, shard_size=8)
    store.append(X, y)
    Z, labels = store.read()
    assert Z.shape == (len(X), *codec.latent_shape_)
    np.testing.assert_array_equal(Z, quantized(codec, X, "tensor"))
    np.testing.assert_array_equal(labels, y)
    assert store.raw_nbytes == len(X) * 16000 * 2  # 16-bit PCM
    assert store.compression_ratio > 1


# ------------------------------------------------------------------------------ batches --
def test_batches_cover_every_sample_once(store, expected):
    batches = list(store.batches(100))
    assert [len(Z) for Z, _ in batches] == [100] * 6
    np.testing.assert_array_equal(np.concatenate([Z for Z, _ in batches]), expected["flat"])
    np.testing.assert_array_equal(np.concatenate([y for _, y in batches]), expected["y"])

    shuffled = list(store.batches(128, shuffle=True, random_state=0, output="tensor"))
    assert [len(Z) for Z, _ in shuffled] == [128, 128, 128, 128, 88]
    order = np.random.RandomState(0).permutation(N)  # (the documented random_state semantics: every sample once)
    np.testing.assert_array_equal(np.concatenate([Z for Z, _ in shuffled]), expected["tensor"][order])
    np.testing.assert_array_equal(np.concatenate([y for _, y in shuffled]), expected["y"][order])

    again = next(iter(store.batches(128, shuffle=True, random_state=0, output="tensor")))
    np.testing.assert_array_equal(again[0], shuffled[0][0])
    np.testing.assert_array_equal(again[1], shuffled[0][1])
    other = next(iter(store.batches(128, shuffle=True, random_state=1)))[1]
    assert not np.array_equal(other, shuffled[0][1])
    with pytest.raises(ValueError, match="batch_size"):
        store.batches(0)


def test_batches_read_and_decode_only_the_batch(big_store, monkeypatch):
    """One batch from a 2000-sample store: one decompress of <= batch_size blobs, and only their bytes read."""
    calls, bytes_read = [], [0]
    decompress = big_store.transformer.decompress

    def spy_decompress(blobs):
        blobs = list(blobs)
        calls.append(sum(len(b) for b in blobs))
        calls.append(len(blobs))
        return decompress(blobs)

    class CountingFile:
        def __init__(self, f):
            self.f = f

        def read(self, size=-1):
            data = self.f.read(size)
            bytes_read[0] += len(data)
            return data

        def __getattr__(self, name):
            return getattr(self.f, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

    monkeypatch.setattr(big_store.transformer, "decompress", spy_decompress)
    monkeypatch.setattr(store_module, "open", lambda *a, **k: CountingFile(open(*a, **k)), raising=False)
    big_store._footers.clear()  # count the footer reads too

    batches = big_store.batches(64, shuffle=True, random_state=0)
    Z, y = next(batches)
    assert len(Z) == 64 and len(y) == 64
    blob_bytes, n_blobs = calls
    assert n_blobs == 64
    footers = sum(16 * s["n_samples"] + 250 for s in big_store._index["shards"])  # int64 offsets + labels
    assert bytes_read[0] <= blob_bytes + footers + big_store.n_shards * 24  # + header, trailer of each shard

    calls.clear()
    bytes_read[0] = 0
    Z, y = next(batches)  # the footers are cached now: the batch's blobs are read, and each shard's trailer
    blob_bytes, n_blobs = calls  # (16 bytes, which tell a shard replaced since its footer was cached)
    assert n_blobs == 64 and blob_bytes <= bytes_read[0] <= blob_bytes + 16 * big_store.n_shards

    calls.clear()
    bytes_read[0] = 0
    big_store._footers.clear()
    next(iter(big_store.batches(64)))  # in order: one shard touched
    assert calls[1] == 64 and bytes_read[0] < big_store.nbytes / 10


def test_append_compresses_at_most_shard_size_samples_at_a_time(codec, mnist, tmp_path, monkeypatch):
    X, y = mnist
    store = CompressedStore.create(tmp_path, codec, shard_size=64)
    sizes, compress = [], store.transformer.compress

    def spy(chunk):
        sizes.append(len(chunk))
        return compress(chunk)

    monkeypatch.setattr(store.transformer, "compress", spy)
    store.append(torch.from_numpy(X[:200]), y[:200])  # a tensor is sliced, never copied whole
    assert sizes == [64, 64, 64, 8]
    np.testing.assert_array_equal(store.read([199])[0], quantized(codec, X[199:200]))


def test_append_reads_an_hdf5_or_zarr_array_shard_by_shard(codec, mnist, tmp_path):
    """Datasets stored elsewhere, with len() or without (zarr 3 arrays), become shards of shard_size samples."""
    h5py, zarr = pytest.importorskip("h5py"), pytest.importorskip("zarr")
    X, y = mnist
    with h5py.File(tmp_path / "digits.h5", "w") as f:
        f["x"] = X[:150]
    array = zarr.open_array(str(tmp_path / "digits.zarr"), mode="w", shape=(150, 28, 28), dtype=np.uint8)
    array[:] = X[150:300]
    store = CompressedStore.create(tmp_path / "store", codec, shard_size=64)
    with h5py.File(tmp_path / "digits.h5", "r") as f:
        assert store.append(f["x"], y[:150]) == range(0, 150)
    assert store.append(array, y[150:300]) == range(150, 300)
    index = json.loads((tmp_path / "store" / "index.json").read_text())
    assert [shard["n_samples"] for shard in index["shards"]] == [64, 64, 22, 64, 64, 22]
    Z, labels = store.read()
    np.testing.assert_array_equal(Z, quantized(codec, X[:300]))
    np.testing.assert_array_equal(labels, y[:300])


def test_appending_a_float_memmap_scans_it_batch_by_batch_and_still_refuses_nan(codec, mnist, tmp_path,
                                                                                  monkeypatch):  # fmt: skip
    """The size check read a shard's rows with scikit-learn's whole-array NaN scan (4,096 512x512 float32
    samples: 12.9 GB resident); compress checks each batch of a memmap as it reads it."""
    from walloc_features.features import _signals

    X, y = mnist
    data = np.memmap(tmp_path / "x.f4", dtype=np.float32, mode="w+", shape=(40, 28, 28))
    data[:] = X[:40] / 255.0
    scanned, check_array = [], _signals.check_array

    def spy(Z, **kwargs):
        if kwargs.get("ensure_all_finite"):
            scanned.append(len(Z))
        return check_array(Z, **kwargs)

    monkeypatch.setattr(_signals, "check_array", spy)
    store = CompressedStore.create(tmp_path / "store", codec, shard_size=32)
    store.append(data, y[:40])
    assert len(store) == 40 and scanned == []  # no whole-shard scan; the batches are checked as they are read
    data[35, 3, 3] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        store.append(data, y[:40])
    assert len(CompressedStore(tmp_path / "store")) == 40


# -------------------------------------------------------------------------- persistence --
def test_reopening_gives_identical_data(store, expected):
    reopened = CompressedStore(store.path)
    assert len(reopened) == N and reopened.n_shards == store.n_shards
    Z, y = reopened.read(output="tensor")
    np.testing.assert_array_equal(Z, expected["tensor"])
    np.testing.assert_array_equal(y, expected["y"])
    assert reopened.transformer.get_params() == store.transformer.get_params()


def test_size_accounting(store):
    files = [store.path / s["name"] for s in store._index["shards"]] + [store.path / "index.json"]
    assert store.nbytes == sum(os.path.getsize(f) for f in files)
    codec_files = [f for f in (store.path / "codec").rglob("*") if f.is_file()]
    assert store.codec_nbytes == sum(f.stat().st_size for f in codec_files) > 0
    assert store.raw_nbytes == N * 28 * 28  # 8-bit pixels
    assert store.compression_ratio == store.raw_nbytes / store.nbytes
    assert store.compression_ratio > 1, f"MNIST at 16x does not compress: {store.summary()}"
    summary = store.summary()
    assert summary["n_samples"] == N and summary["n_shards"] == 6
    assert summary["nbytes"] == store.nbytes and summary["raw_nbytes"] == store.raw_nbytes
    assert summary["bits_per_sample"] == pytest.approx(8 * store.nbytes / (N * 784))
    assert summary["bits_per_sample"] < 8
    text = repr(store)
    assert str(store.path) in text and f"n_samples={N}" in text and "ratio=" in text


# -------------------------------------------------------------------------------- models --
def test_pipeline_trains_from_stored_codes(big_store, codec, mnist):
    X, y = mnist
    Z, labels = big_store.read()
    model = make_pipeline(Dequantize(), StandardScaler(), LogisticRegression(max_iter=500))
    model.fit(Z, labels)
    held_out = quantized(codec, X[-500:])  # codes of digits the store never saw
    assert model.score(held_out, y[-500:]) >= 0.8


def test_torch_dataloader_yields_float_latents(store, expected):
    dataset = store.to_torch()
    assert isinstance(dataset, torch.utils.data.Dataset) and len(dataset) == N
    codes, label = dataset[-1]
    assert codes.shape == (1, 7, 7) and codes.dtype == torch.float32 and label == expected["y"][-1]
    loader = torch.utils.data.DataLoader(dataset, batch_size=50)
    seen = 0
    for i, (codes, labels) in enumerate(loader):
        assert codes.dtype == torch.float32 and codes.shape == (50, 1, 7, 7)
        np.testing.assert_array_equal(codes.numpy(), expected["tensor"][50 * i : 50 * (i + 1)])
        np.testing.assert_array_equal(labels.numpy(), expected["y"][50 * i : 50 * (i + 1)])
        seen += len(codes)
        if i == 2:
            break
    assert seen == 150
    flat = store.to_torch(output="flat", dtype=torch.float64)
    assert flat[3][0].shape == (49,) and flat[3][0].dtype == torch.float64


def test_a_dataloader_collates_labels_of_several_values_a_sample_as_one_tensor(codec, mnist, tmp_path):
    """As a TensorDataset's: (batch, 2) of the stored dtype, not a list of two (batch,) columns."""
    X, _ = mnist
    store = CompressedStore.create(tmp_path, codec)
    boxes = np.arange(40, dtype=np.float32).reshape(20, 2)
    store.append(X[:20], boxes)
    codes, labels = next(iter(torch.utils.data.DataLoader(store.to_torch(), batch_size=8)))
    assert isinstance(labels, torch.Tensor) and labels.shape == (8, 2) and labels.dtype == torch.float32
    np.testing.assert_array_equal(labels.numpy(), boxes[:8])
    assert codes.shape == (8, 1, 7, 7)
    wide = CompressedStore.create(tmp_path / "wide", codec)
    wide.append(X[:8], np.arange(16, dtype=np.uint16).reshape(8, 2))
    _, labels = next(iter(torch.utils.data.DataLoader(wide.to_torch(), batch_size=8)))
    assert labels.dtype == torch.int64 and labels.shape == (8, 2)  # as scalar labels collate


def test_a_code_dtype_that_would_wrap_or_round_codes_is_refused(store, mnist):
    X, _ = mnist
    for dtype in (torch.uint8, torch.bool):
        with pytest.raises(ValueError, match=f"dtype {dtype} cannot hold every 8-bit code \\(-128 to 127\\)"):
            store.to_torch(dtype=dtype)
    assert store.to_torch(dtype=torch.bfloat16)[0][0].dtype == torch.bfloat16  # exact for 8-bit codes
    wide = WaLLoCTransformer(reduction=16, latent_bits=12).fit(X[:300])
    with tempfile.TemporaryDirectory() as folder:
        store12 = CompressedStore.create(folder, wide)
        store12.append(X[:50])
        for dtype in (torch.bfloat16, torch.int8):  # bfloat16 rounded 740 of 980 such codes, int8 wrapped them
            with pytest.raises(ValueError, match="cannot hold every 12-bit code"):
                store12.to_torch(dtype=dtype)
        codes = torch.stack([c for (c,) in store12.to_torch(dtype=torch.float16, output="flat")])
        np.testing.assert_array_equal(codes.numpy(), store12.read()[0])
    holds = store_module._holds_codes  # finfo gives float8_e5m2fnuz a bit too many; qint8 does not cast at all
    assert holds(torch.float8_e5m2fnuz, 4) and not holds(torch.float8_e5m2fnuz, 5) and not holds(torch.qint8, 8)
    assert [max(b for b in range(1, 18) if holds(t, b)) for t in (torch.bfloat16, torch.float16, torch.int16)] == [
        9, 12, 16]


def test_samples_appended_between_epochs_reach_persistent_workers_and_other_readers(codec, mnist, tmp_path):
    """A worker's copy of the store knew the old length: the next epoch stopped at 'index 130 is out of range'."""
    X, y = mnist
    store = CompressedStore.create(tmp_path, codec, shard_size=64)
    store.append(X[:100], y[:100])
    loader = torch.utils.data.DataLoader(store.to_torch(), batch_size=32, shuffle=True, num_workers=1,
                                         persistent_workers=True, generator=torch.Generator().manual_seed(0))
    assert sum(len(labels) for _, labels in loader) == 100
    store.append(X[100:150], y[100:150])
    seen = np.concatenate([labels.numpy() for _, labels in loader])
    assert np.array_equal(np.sort(seen), np.sort(y[:150]))
    other = CompressedStore(tmp_path)
    other.append(X[150:160], y[150:160])
    assert len(store) == 150  # what this object knows until it reads the index again
    np.testing.assert_array_equal(store.read([150])[1], y[150:151])  # its first unknown index reads it again
    store = CompressedStore(tmp_path)
    other.append(X[160:165], y[160:165])
    np.testing.assert_array_equal(store.read([163])[1], y[163:164])  # as does an index further past it
    other.append(X[165:170], y[165:170])
    assert len(store) == 165 and len(CompressedStore(tmp_path).refresh()) == 170
    stale = CompressedStore(tmp_path)
    other.append(X[170:180], y[170:180])
    _, labels = stale.read([-1, 175])  # -1 is the last sample this object knew, not of the refreshed store
    np.testing.assert_array_equal(labels, [y[169], y[175]])


# ----------------------------------------------------------------------------- crashes --
def test_failed_compress_mid_append_keeps_the_old_samples(codec, mnist, tmp_path, monkeypatch):
    X, y = mnist
    store = CompressedStore.create(tmp_path, codec, shard_size=16)
    store.append(X[:30], y[:30])
    before = shard_files(tmp_path)
    compress, calls = store.transformer.compress, []

    def failing(chunk):
        calls.append(len(chunk))
        if len(calls) == 2:
            raise RuntimeError("simulated crash")
        return compress(chunk)

    monkeypatch.setattr(store.transformer, "compress", failing)
    with pytest.raises(RuntimeError, match="simulated crash"):
        store.append(X[30:70], y[30:70])
    assert len(store) == 30 and calls == [16, 16]
    assert shard_files(tmp_path) == before and not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp")]
    reopened = CompressedStore(tmp_path)
    Z, labels = reopened.read()
    np.testing.assert_array_equal(Z, quantized(codec, X[:30]))
    np.testing.assert_array_equal(labels, y[:30])

    reopened.append(X[30:70], y[30:70])
    Z, labels = CompressedStore(tmp_path).read()
    np.testing.assert_array_equal(Z, quantized(codec, X[:70]))
    np.testing.assert_array_equal(labels, y[:70])


def test_crash_before_the_index_is_replaced_leaves_an_ignored_orphan(codec, mnist, tmp_path, monkeypatch):
    """os.replace of index.json fails and no cleanup runs (as after a kill): the new shard is an orphan."""
    X, y = mnist
    store = CompressedStore.create(tmp_path, codec, shard_size=64)
    store.append(X[:50], y[:50])
    index_before = (tmp_path / "index.json").read_bytes()
    replace = os.replace

    def crash_on_index(src, dst):
        if os.path.basename(dst) == "index.json":
            raise OSError("simulated crash")
        return replace(src, dst)

    monkeypatch.setattr(os, "replace", crash_on_index)
    monkeypatch.setattr(store_module, "unlink_quietly", lambda path: None)  # a killed process cleans nothing
    with pytest.raises(OSError, match="simulated crash"):
        store.append(X[50:200], y[50:200])  # three shards of 64, 64 and 22 samples
    monkeypatch.undo()
    assert (tmp_path / "index.json").read_bytes() == index_before
    assert shard_files(tmp_path) == [f"shard-0000{i}.wls" for i in range(4)]  # the orphans are on disk
    (tmp_path / ".tmp-shard-00004.wls.x1y2").write_bytes(b"half a shard")  # killed while writing one

    reopened = CompressedStore(tmp_path)
    assert len(reopened) == 50 and reopened.n_shards == 1
    Z, labels = reopened.read()
    np.testing.assert_array_equal(Z, quantized(codec, X[:50]))
    np.testing.assert_array_equal(labels, y[:50])

    reopened.append(X[100:110], y[100:110])  # one shard: writes shard-00001 and removes the other orphans
    assert shard_files(tmp_path) == ["shard-00000.wls", "shard-00001.wls"]
    assert not list(tmp_path.glob(".tmp-*"))
    Z, labels = CompressedStore(tmp_path).read()
    np.testing.assert_array_equal(Z, quantized(codec, np.concatenate([X[:50], X[100:110]])))
    np.testing.assert_array_equal(labels, np.concatenate([y[:50], y[100:110]]))
    assert reopened.nbytes == sum(os.path.getsize(tmp_path / n) for n in shard_files(tmp_path)) + os.path.getsize(
        tmp_path / "index.json"
    )


def test_failed_shard_rename_leaves_no_temporary_file(codec, mnist, tmp_path, monkeypatch):
    X, y = mnist
    store = CompressedStore.create(tmp_path, codec)
    replace = os.replace

    def failing(src, dst):
        if os.path.basename(dst).startswith("shard-"):
            raise OSError("disk full")
        return replace(src, dst)

    monkeypatch.setattr(os, "replace", failing)
    with pytest.raises(OSError, match="disk full"):
        store.append(X[:10], y[:10])
    monkeypatch.undo()
    assert sorted(p.name for p in tmp_path.iterdir()) == [".lock", "codec", "index.json"]  # (.lock: the appends')
    assert len(CompressedStore(tmp_path)) == 0 and store.labelled is None
    store.append(X[:10])  # the failed labelled append fixed nothing: unlabelled is still allowed
    assert store.labelled is False and store.read()[1] is None


# --------------------------------------------------------------------------- corruption --
def test_corrupted_blob_raises_blob_error_naming_the_sample(codec, mnist, tmp_path):
    X, y = mnist
    store = CompressedStore.create(tmp_path, codec, shard_size=8)
    store.append(X[:20], y[:20])
    blobs = codec.compress(X[:20])
    # sample 13 is item 5 of shard-00001.wls: header (8 bytes), then blobs 8..12, then its own
    offset = 8 + sum(len(b) for b in blobs[8:13]) + len(blobs[13]) // 2
    shard = tmp_path / "shard-00001.wls"
    data = bytearray(shard.read_bytes())
    data[offset] ^= 0xFF
    shard.write_bytes(bytes(data))

    reopened = CompressedStore(tmp_path)
    with pytest.raises(BlobError, match=r"sample 13 \(item 5 of shard-00001.wls\)"):
        reopened.read()
    with pytest.raises(BlobError, match="sample 13"):
        reopened[-7]
    with pytest.raises(BlobError, match="sample 13"):
        list(reopened.batches(4))
    np.testing.assert_array_equal(reopened[12][0], quantized(codec, X[12:13])[0])  # neighbours still read
    np.testing.assert_array_equal(reopened.read([0, 19])[0], quantized(codec, X[[0, 19]]))


def test_corrupted_footer_is_detected(codec, mnist, tmp_path):
    X, y = mnist
    store = CompressedStore.create(tmp_path, codec, shard_size=8)
    store.append(X[:16], y[:16])
    shard = tmp_path / "shard-00000.wls"
    data = bytearray(shard.read_bytes())
    data[-30] ^= 0x01  # inside the footer's labels
    shard.write_bytes(bytes(data))
    reopened = CompressedStore(tmp_path)
    with pytest.raises(BlobError, match="shard-00000.wls.*footer checksum"):
        reopened.read([0])
    np.testing.assert_array_equal(reopened.read([8])[1], y[8:9])  # the other shard is fine
    shard.write_bytes(bytes(data[:-100]))  # truncated
    with pytest.raises(BlobError, match="shard-00000.wls"):
        CompressedStore(tmp_path).read([0])
    data = bytearray(data)
    data[7] ^= 0x10  # the header's version byte: read as a newer format, or as damage
    shard.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="shard-00000.wls has format version 17, .*or, if this .* the file is damaged"):
        CompressedStore(tmp_path).read([0])


# ------------------------------------------------------------------------------- labels --
def test_labels_never_mixed_with_unlabelled(codec, mnist, tmp_path):
    X, y = mnist
    labelled = CompressedStore.create(tmp_path / "a", codec)
    labelled.append(X[:5], y[:5])
    with pytest.raises(ValueError, match="mix labelled and unlabelled"):
        labelled.append(X[5:10])
    unlabelled = CompressedStore.create(tmp_path / "b", codec)
    unlabelled.append(X[:5])
    with pytest.raises(ValueError, match="mix labelled and unlabelled"):
        unlabelled.append(X[5:10], y[5:10])
    assert unlabelled[0][1] is None and unlabelled.read()[1] is None and unlabelled.labels() is None
    with pytest.raises(ValueError, match="same length"):
        labelled.append(X[:5], y[:4])
    assert len(labelled) == 5 and len(unlabelled) == 5
    dataset = unlabelled.to_torch()
    assert len(dataset[0]) == 1


def test_labels_of_another_shape_per_sample_are_refused(codec, mnist, tmp_path):
    """Two labels a sample, then three: every later read of both shards would fail to put them together."""
    X, _ = mnist
    store = CompressedStore.create(tmp_path, codec)
    store.append(X[:10], np.zeros((10, 2)))
    with pytest.raises(ValueError, match=r"labels have shape \(2,\) per sample; got \(3,\)"):
        store.append(X[10:20], np.zeros((10, 3)))
    store.append(X[10:20], np.ones((10, 2)))
    Z, y = CompressedStore(tmp_path).read()
    assert len(Z) == 20 and y.shape == (20, 2)
    index = json.loads((tmp_path / "index.json").read_text())
    del index["label_shape"]  # as a store written before it was recorded: the shards' labels still say
    (tmp_path / "index.json").write_text(json.dumps(index))
    with pytest.raises(ValueError, match=r"labels have shape \(2,\) per sample; got \(\)"):
        CompressedStore(tmp_path).append(X[20:30], np.zeros(10))


def test_every_read_returns_the_labels_dtype_of_the_whole_store(codec, mnist, tmp_path):
    """Integers then floats: a read of the first shard alone is float64 like a read of both, so
    batches of one store never change dtype (a torch collate or an estimator would see ints, then floats)."""
    X, _ = mnist
    store = CompressedStore.create(tmp_path, codec, shard_size=4)
    store.append(X[:4], np.arange(4))
    assert store[0:2][1].dtype == np.int64
    store.append(X[4:8], np.full(4, 0.5))
    for reader in (store, CompressedStore(tmp_path)):
        assert reader[0:2][1].dtype == np.float64 and reader[0:2][1].tolist() == [0.0, 1.0]
        assert reader.read([7])[1].dtype == np.float64 and reader.labels().dtype == np.float64
        assert reader.read([])[1].dtype == np.float64
    words = CompressedStore.create(tmp_path / "words", codec, shard_size=4)
    words.append(X[:4], ["a", "b", "c", "d"])
    words.append(X[4:8], ["eleven"] * 4)  # wider strings later: an early read must not truncate a later write
    assert CompressedStore(tmp_path / "words")[0:1][1].dtype == np.dtype("<U6")
    index = json.loads((tmp_path / "index.json").read_text())
    del index["label_dtype"]  # as a store written before it was recorded: every shard's labels say
    (tmp_path / "index.json").write_text(json.dumps(index))
    assert CompressedStore(tmp_path)[0:2][1].dtype == np.float64
    index["label_dtype"] = "<M8[s]"
    (tmp_path / "index.json").write_text(json.dumps(index))
    with pytest.raises(ValueError, match="malformed label_dtype"):
        CompressedStore(tmp_path).labels()


def test_labels_the_store_dtype_would_change_are_refused(codec, mnist, tmp_path):
    """uint64 IDs then int64 labels read as float64: both IDs became one value, silently."""
    X, _ = mnist
    store = CompressedStore.create(tmp_path / "ids", codec, shard_size=4)
    store.append(X[:2], np.array([2**63 + 1, 2**63 + 3], dtype=np.uint64))
    with pytest.raises(ValueError, match=r"the labels stored \(uint64\) cannot be read back exactly as float64"):
        store.append(X[2:4], np.array([1, 2]))
    big = CompressedStore.create(tmp_path / "big", codec, shard_size=4)
    big.append(X[:2], np.array([0.5, np.nan]))
    with pytest.raises(ValueError, match=r"the labels given \(int64\) cannot be read back exactly as float64"):
        big.append(X[2:4], np.array([2**60 + 1, 3]))
    big.append(X[2:4], np.array([7, 3]))  # exact as floats: accepted, as ints then floats always were
    np.testing.assert_array_equal(CompressedStore(tmp_path / "big").labels(), [0.5, np.nan, 7.0, 3.0])
    assert CompressedStore(tmp_path / "ids").labels().tolist() == [2**63 + 1, 2**63 + 3]  # nothing was written


def test_append_refuses_a_transformer_changed_since_the_store_was_opened(codec, mnist, tmp_path):
    """A refit or fit_entropy_model of store.transformer wrote blobs no reader of the store could decode."""
    X, _ = mnist
    store = CompressedStore.create(tmp_path, codec, shard_size=4)
    store.append(X[:4])
    store.transformer.fit_entropy_model(X[100:200])
    with pytest.raises(ValueError, match="store.transformer has changed since the store was opened"):
        store.append(X[4:8])
    reopened = CompressedStore(tmp_path)  # the saved codec: appends and reads as before
    reopened.append(X[4:8])
    assert len(reopened.read()[0]) == 8


def test_append_refuses_a_store_re_created_since_it_was_opened(codec, mnist, tmp_path):
    """Another object's create(overwrite=True) may save another codec: an append through the old object
    would commit blobs the new store cannot decode, or labels under footers it had cached."""
    X, y = mnist
    old = CompressedStore.create(tmp_path, codec, shard_size=4)
    old.append(X[:4], y[:4])
    other = WaLLoCTransformer(reduction=16).fit(X[2000:2500])
    new = CompressedStore.create(tmp_path, other, shard_size=4, overwrite=True)
    new.append(X[:4], (y[:4] + 1) % 10)
    with pytest.raises(ValueError, match="was re-created .* since this object opened it"):
        old.append(X[4:8], y[4:8])
    codes, labels = CompressedStore(tmp_path).read()
    assert len(codes) == 4 and labels.tolist() == ((y[:4] + 1) % 10).tolist()  # the new store, unharmed
    new.append(X[4:8], y[4:8])  # an object of the store itself appends as before
    assert len(CompressedStore(tmp_path)) == 8


def test_a_reader_of_a_store_re_created_since_refuses_instead_of_pairing_new_codes_with_old_labels(codec, mnist,
                                                                                                    tmp_path):
    """Its cached footers served the deleted store's labels beside the new store's codes, silently."""
    X, y = mnist
    reader = CompressedStore.create(tmp_path, codec)
    reader.append(X[:8], y[:8])
    reader.read()  # footers cached
    CompressedStore.create(tmp_path, codec, overwrite=True).append(X[:8], (y[:8] + 1) % 10)
    with pytest.raises(ValueError, match="shard shard-00000.wls was replaced since this object read it"):
        reader.read()
    with pytest.raises(ValueError, match="was replaced since this object read it"):
        reader.labels()  # (read from the cached footers alone)
    np.testing.assert_array_equal(CompressedStore(tmp_path).read()[1], (y[:8] + 1) % 10)


def test_a_touched_or_copied_back_shard_is_still_read(codec, mnist, tmp_path):
    """The first check compared file times: a touch (rsync -t, a backup restored) made a live reader refuse."""
    X, y = mnist
    store = CompressedStore.create(tmp_path, codec)
    store.append(X[:8], y[:8])
    expected = store.read()
    os.utime(tmp_path / "shard-00000.wls", (0, 0))
    codes, labels = store.read()
    np.testing.assert_array_equal(codes, expected[0])
    np.testing.assert_array_equal(labels, expected[1])


def test_string_labels_are_stored_without_pickle(codec, mnist, tmp_path):
    X, y = mnist
    words = np.array(["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"], dtype=object)
    store = CompressedStore.create(tmp_path, codec, shard_size=4)
    store.append(X[:6], words[y[:6]])
    store.append(X[6:10], [str(v) for v in words[y[6:10]]])
    labels = CompressedStore(tmp_path).read()[1]
    assert labels.dtype.kind == "U"
    assert labels.tolist() == words[y[:10]].tolist()
    with pytest.raises(ValueError, match="string"):
        store.append(X[:2], y[:2])
    with pytest.raises(ValueError, match="byte-string labels must be ASCII"):
        store.append(X[:2], [b"a", b"\xff"])
    numbers = CompressedStore.create(tmp_path / "numbers", codec)
    numbers.append(X[:3], np.array([1, 2, 3], dtype=object))  # a pandas object column of integers
    numbers.append(X[3:5], y[3:5])  # then plain integers: the same kind
    assert CompressedStore(tmp_path / "numbers").labels().tolist() == [1, 2, 3, *y[3:5].tolist()]
    for mixed in ([1, None], ["a", 1], [True, "b"]):  # numpy would make strings of ["a", 1]: refused instead
        with pytest.raises(ValueError, match="labels of mixed or unknown kinds"):
            numbers.append(X[:2], np.array(mixed, dtype=object))
    assert numbers.append(X[:0], np.array([], dtype=object)) == range(5, 5)  # nothing to add: no kind to check
    assert store.append(X[:0], np.empty(0, dtype=object)) == range(10, 10)
    floats = CompressedStore.create(tmp_path / "floats", codec)
    floats.append(X[:3], np.array([0.5, 1.5, 2.5]))
    assert CompressedStore(tmp_path / "floats")[2][1] == 2.5


# ------------------------------------------------------------------------------- errors --
def test_opening_something_that_is_not_a_store(tmp_path, store):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        CompressedStore(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no index.json"):
        CompressedStore(tmp_path / "empty")
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "index.json").write_text(json.dumps({"format": "something-else", "shards": []}))
    with pytest.raises(ValueError, match="not a CompressedStore index"):
        CompressedStore(foreign)
    (foreign / "index.json").write_text("{not json")
    with pytest.raises(ValueError, match="not a CompressedStore index"):
        CompressedStore(foreign)
    newer = json.loads((store.path / "index.json").read_text())
    newer["format_version"] = 2
    (foreign / "index.json").write_text(json.dumps(newer))
    with pytest.raises(ValueError, match="format version 2.*upgrade"):
        CompressedStore(foreign)


@pytest.mark.parametrize("field, value", [("n_samples", -1), ("n_samples", +1), ("n_bytes", +7), ("n_samples", "x")])
def test_an_index_whose_totals_disagree_with_its_shards_is_refused(store, tmp_path, field, value):
    """One flipped bit in "n_samples" silently hid a shard's samples (len and read trust the total)."""
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(store.path, copy)
    index = json.loads((copy / "index.json").read_text())
    index[field] = value if isinstance(value, str) else index[field] + value
    (copy / "index.json").write_text(json.dumps(index))
    with pytest.raises(ValueError, match=f"index.json is inconsistent: {field}="):
        CompressedStore(copy)


@pytest.mark.parametrize(
    "field, value, error, message",
    [("shard_size", -50, ValueError, "malformed shard_size -50"), ("shard_size", 0, ValueError, "malformed shard_size"),
     ("shard_size", "x", ValueError, "malformed shard_size"), ("labelled", None, ValueError, "malformed labelled"),
     ("labelled", False, BlobError, "holds labels, index.json says labelled=False"),
     ("label_dtype", "|b1", ValueError, "label_dtype bool, which cannot hold the shards' \\['int64'\\]")],
)
def test_index_fields_that_would_lose_samples_or_labels_are_refused(store, tmp_path, field, value, error, message):
    """A negative shard_size made append report samples it never stored; labelled=false dropped the labels;
    label_dtype "|b1" read every label as True."""
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(store.path, copy)
    index = json.loads((copy / "index.json").read_text())
    index[field] = value
    (copy / "index.json").write_text(json.dumps(index))
    with pytest.raises(error, match=message):
        CompressedStore(copy).read([0])


def test_a_label_header_declaring_more_than_its_bytes_is_refused_before_allocating(codec, mnist, tmp_path):
    """np.load allocated the 32 GB a forged header declared for 80 bytes of labels."""
    X, y = mnist
    CompressedStore.create(tmp_path, codec).append(X[:10], y[:10])
    shard = tmp_path / "shard-00000.wls"
    data = shard.read_bytes()
    footer_offset, _, end = struct.unpack("<QI4s", data[-16:])
    footer = data[footer_offset:-16]
    at = 8 * (struct.unpack_from("<Q", footer)[0] + 2) + 8  # past the offsets and the labels' size
    header_len = struct.unpack_from("<H", footer, at + 8)[0]
    header = footer[at + 10 : at + 10 + header_len].replace(b"(10,)", b"(4000000000,)")
    header = header.rstrip(b" \n").ljust(header_len - 1) + b"\n"  # the same length: the padding shrinks
    labels = footer[at : at + 10] + header + footer[at + 10 + header_len :]
    new_footer = footer[: at - 8] + struct.pack("<Q", len(labels)) + labels
    new = data[:footer_offset] + new_footer + struct.pack("<QI4s", footer_offset, zlib.crc32(new_footer), end)
    shard.write_bytes(new)
    index = json.loads((tmp_path / "index.json").read_text())
    index["shards"][0]["n_bytes"] = index["n_bytes"] = len(new)
    (tmp_path / "index.json").write_text(json.dumps(index))
    with pytest.raises(BlobError, match=r"labels of shape \(4000000000,\) and dtype int64 in 80 bytes for 10 samples"):
        CompressedStore(tmp_path).read([0])


def test_create_refuses_non_empty_directories_and_bad_transformers(codec, mnist, tmp_path):
    X, y = mnist
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="not empty"):
        CompressedStore.create(tmp_path, codec)
    with pytest.raises(FileExistsError, match="refusing to delete"):
        CompressedStore.create(tmp_path, codec, overwrite=True)
    assert [f.name for f in tmp_path.iterdir()] == ["notes.txt"] and (tmp_path / "notes.txt").read_text() == "mine"

    path = tmp_path / "store"
    CompressedStore.create(path, codec).append(X[:5], y[:5])
    with pytest.raises(FileExistsError, match="overwrite=True"):
        CompressedStore.create(path, codec)
    fresh = CompressedStore.create(path, codec, overwrite=True)
    assert len(fresh) == 0 and shard_files(path) == [] and len(CompressedStore(path)) == 0

    with pytest.raises(NotFittedError):
        CompressedStore.create(tmp_path / "unfitted", WaLLoCTransformer())
    with pytest.raises(TypeError, match="compress"):
        CompressedStore.create(tmp_path / "scaler", StandardScaler().fit(np.zeros((2, 2))))
    with pytest.raises(ValueError, match="shard_size"):
        CompressedStore.create(tmp_path / "zero", codec, shard_size=0)


def test_the_codec_a_create_killed_before_its_index_left_can_be_overwritten(codec, tmp_path):
    """A kill between saving codec/ and writing index.json left a folder neither create nor create(overwrite=True)
    would take ("holds no CompressedStore; refusing to delete its files"): the user had to delete it by hand."""
    codec.save(tmp_path / "codec")  # all that a killed create leaves
    with pytest.raises(FileExistsError, match="overwrite=True to replace the codec/ an interrupted create left"):
        CompressedStore.create(tmp_path, codec)
    store = CompressedStore.create(tmp_path, codec, overwrite=True)
    assert len(store) == 0 and len(CompressedStore(tmp_path)) == 0

    other = tmp_path / "other"
    (other / "codec").mkdir(parents=True)
    (other / "codec" / "thesis.tex").write_text("mine")  # a codec/ folder that is not what save writes
    with pytest.raises(FileExistsError, match="refusing to delete"):
        CompressedStore.create(other, codec, overwrite=True)
    assert (other / "codec" / "thesis.tex").read_text() == "mine"


def test_a_user_who_cannot_write_the_lock_file_another_user_made_still_appends(codec, mnist, tmp_path, monkeypatch):
    """The .lock was opened for writing: another user allowed to write to the store's folder, but not to the
    0644 .lock its creator left, got PermissionError from every append. flock needs no write access."""
    X, y = mnist
    store = CompressedStore.create(tmp_path, codec)
    store.append(X[:10], y[:10])  # the .lock exists now, made by "the other user"
    opened = os.open

    def as_another_user(path, flags, *args):
        if os.path.basename(path) == ".lock" and flags & (os.O_WRONLY | os.O_RDWR):
            raise PermissionError(13, "Permission denied", path)
        return opened(path, flags, *args)

    monkeypatch.setattr(os, "open", as_another_user)
    assert store.append(X[10:20], y[10:20]) == range(10, 20)
    monkeypatch.undo()
    np.testing.assert_array_equal(CompressedStore(tmp_path).read()[1], y[:20])


def test_a_failed_create_of_a_new_directory_leaves_no_directory(codec, tmp_path, monkeypatch):
    """It left the directory it had made, holding the appends' .lock, though it meant to leave things as they were."""
    def disk_full(self, path, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(type(codec), "save", disk_full)
    with pytest.raises(OSError, match="No space left"):
        CompressedStore.create(tmp_path / "new", codec)
    assert not (tmp_path / "new").exists()
    (tmp_path / "empty").mkdir()
    with pytest.raises(OSError, match="No space left"):
        CompressedStore.create(tmp_path / "empty", codec)
    assert (tmp_path / "empty").is_dir()  # a directory the user made stays


APPEND_IN_A_CHILD = """
import sys, time
from pathlib import Path
from walloc_features.datasets import CompressedStore, load_mnist
from walloc_features.datasets import store as store_module

path, lo, hi = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
write = store_module._write_shard
store_module._write_shard = lambda *args: time.sleep(1.0) or write(*args)  # both appends under way at once
X, y = load_mnist()
store = CompressedStore(path)
Path(path, f"ready-{lo}").touch()
while len(list(Path(path).glob("ready-*"))) < 2:
    time.sleep(0.01)
appended = store.append(X[lo:hi], y[lo:hi])
print(appended.start, appended.stop)
"""


def test_appends_of_two_processes_at_once_both_land_in_turn(codec, mnist, tmp_path):
    """Both named the new shard shard-00001.wls from the index they had read and both reported success; one
    append's samples were gone. They now take turns on the store's lock."""
    import subprocess
    import sys

    X, y = mnist
    CompressedStore.create(tmp_path, codec, shard_size=64).append(X[:100], y[:100])
    children = [
        subprocess.Popen([sys.executable, "-c", APPEND_IN_A_CHILD, str(tmp_path), str(lo), str(lo + 100)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for lo in (100, 200)
    ]  # fmt: skip
    reported = {}
    for lo, child in zip((100, 200), children, strict=True):
        out, err = child.communicate(timeout=300)
        assert child.returncode == 0, err
        reported[lo] = tuple(map(int, out.split()))
    assert sorted(reported.values()) == [(100, 200), (200, 300)]  # each got its own range
    store = CompressedStore(tmp_path)
    assert len(store) == 300
    for lo, (start, stop) in reported.items():  # and holds what it appended there, labels with their codes
        Z, labels = store.read(range(start, stop))
        np.testing.assert_array_equal(Z, quantized(codec, X[lo : lo + 100]))
        np.testing.assert_array_equal(labels, y[lo : lo + 100])


def test_samples_of_another_size_are_refused(codec, tmp_path):
    tensor_codec = copy.deepcopy(codec).set_params(output="tensor")  # tensor mode encodes any size
    store = CompressedStore.create(tmp_path, tensor_codec)
    big = np.zeros((2, 1, 56, 56), dtype=np.uint8)
    with pytest.raises(ValueError, match="fitted"):
        store.append(big)
    assert len(store) == 0 and shard_files(tmp_path) == []


def test_smaller_samples_with_the_same_latent_grid_are_refused(mnist, tmp_path):
    """Tensor mode encodes 26x26 digits to the same 7x7 grid as 28x28 ones; the store must not take them."""
    X, y = mnist
    codec = WaLLoCTransformer(reduction=16, output="tensor").fit(X[:500])
    store = CompressedStore.create(tmp_path / "sizes", codec)
    store.append(X[:10], y[:10])
    with pytest.raises(ValueError, match="fitted size"):
        store.append(X[10:20, 1:-1, 1:-1], y[10:20])
    assert len(store) == 10 and store.raw_nbytes == 10 * 28 * 28


def test_one_flat_sample_is_refused_at_append_not_counted_as_a_batch(codec, mnist, tmp_path):
    """One flat digit's 784 pixels were counted as 784 samples against y's one label. (NaN labels are stored as
    given: a store may hold samples whose label is missing.)"""
    X, y = mnist
    store = CompressedStore.create(tmp_path, codec)
    with pytest.raises(ValueError, match=r"X of shape \(784,\) is not a batch of samples .*pass X\[None"):
        store.append(X[0].ravel(), y[:1])
    assert len(store) == 0
    assert store.append(np.asarray([]), np.asarray([], dtype=y.dtype)) == range(0, 0)  # nothing new: a no-op


def test_footers_cached_by_an_older_version_are_read_again_not_taken_for_replaced_shards(codec, mnist, tmp_path):
    """A store pickled before shards had a content identity refused every read after the upgrade."""
    from walloc_features.datasets.store import _Footer

    X, y = mnist
    store = CompressedStore.create(tmp_path, codec)
    store.append(X[:4], y[:4])
    expected = store.read()
    cached = store._footer(0)
    store._footers[0] = _Footer(cached.offsets, cached.labels, (1, 2, 3, 4))  # an older version's identity
    np.testing.assert_array_equal(store.read()[1], expected[1])
