"""Transforming a dataset larger than memory: peak memory follows ``batch_size``, not the number of samples.

The issue's target (a 20 GB memmap under 2 GB of peak RSS, ``benchmarks/memory.py``) scaled down for
CI: a ~600 MB memmap of photo crops, transformed in a fresh interpreter whose peak RSS (``VmHWM``, reset
before the transform; Linux only) must grow by less than the features it returns plus 96 MB. Without
releasing the pages of the memmap as they are consumed, RSS grows by the whole file (measured: +590 MB).
"""

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from walloc_features import WaLLoCTransformer
from walloc_features.features import ResolutionReducer

N_IMAGES, SIZE = 3000, 256  # 3000 x 3 x 256 x 256 uint8 = 590 MB

TRANSFORMERS = {
    "walloc": "WaLLoCTransformer(J=3, latent_dim=12, quantize=True, batch_size=8)",
    "resolution": "ResolutionReducer(16, batch_size=8)",
    "dct": "DCTTransformer(16, batch_size=8)",
    "rvq": "ResidualVQ(16, codebook_size=16, random_state=0, batch_size=8)",
}

SCRIPT = """
import json, re, sys
import numpy as np
from walloc_features import WaLLoCTransformer
from walloc_features.features import DCTTransformer, ResidualVQ, ResolutionReducer

def status(key):  # bytes, from the kernel's accounting of this process
    return int(re.search(key + r":\\s+(\\d+) kB", open("/proc/self/status").read()).group(1)) * 1024

X = np.memmap(sys.argv[1], dtype=np.uint8, mode="r", shape={shape}){view}
model = {model}.fit(np.array(X[:32]))
model.transform(np.array(X[:32]))  # warm-up: allocator pools, lazily built kernels
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")  # restart the peak (VmHWM) from the current RSS, so fit's peak does not hide the transform's
before = status("VmRSS")
Z = model.transform(X)
growth = status("VmHWM") - before
check = np.abs(model.transform(np.array(X[-5:])).astype(np.float64) - Z[-5:]).max()
print(json.dumps({{"growth": growth, "features": Z.nbytes, "shape": Z.shape, "check": float(check)}}))
"""


def _crop_file(path, photos, random_crops, n, size, dtype):
    """A memmap file of ``n`` random ``size`` x ``size`` crops of the bundled photos (floats on the [0, 1]
    scale), written 256 at a time."""
    X = np.memmap(path, dtype=dtype, mode="w+", shape=(n, 3, size, size))
    rng = np.random.default_rng(0)
    for start in range(0, n, 256):
        crops = random_crops(list(photos.values()), min(256, n - start), size, rng)
        X[start : start + len(crops)] = crops / np.float32(255) if np.dtype(dtype).kind == "f" else crops
    X.flush()
    del X
    return path


@pytest.fixture(scope="module")
def big_memmap(tmp_path_factory, photos, random_crops):
    """~600 MB file of 256x256 uint8 crops of the bundled photos at varying offsets."""
    return _crop_file(tmp_path_factory.mktemp("memmap") / "images.u8", photos, random_crops, N_IMAGES, SIZE, np.uint8)


FIT_SCRIPT = """
import json, re, sys
import numpy as np
from walloc_features import WaLLoCTransformer
from walloc_features.features import DCTTransformer, RawSignal, ResidualVQ, ResolutionReducer

def status(key):
    return int(re.search(key + r":\\s+(\\d+) kB", open("/proc/self/status").read()).group(1)) * 1024

X = np.memmap(sys.argv[1], dtype=np.float32, mode="r", shape=({n}, 3, {size}, {size}))
model = {model}
model.fit(np.array(X[:64]))  # warm-up: allocator pools, lazily built kernels
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")
before = status("VmRSS")
model.fit(X)
print(json.dumps({{"growth": status("VmHWM") - before, "data": X.nbytes}}))
"""
FIT_IMAGES, FIT_SIZE = 8000, 64  # 8000 x 3 x 64 x 64 float32 = 393 MB
FIT_BOUND = 160 * 2**20  # measured: WaLLoC 98 MB (its entropy model's fit), ResidualVQ 72 MB, the others 3 MB

FITTED = {
    **TRANSFORMERS,
    "walloc": "WaLLoCTransformer(J=2, latent_dim=12, batch_size=8)",  # + its entropy model, from a subset of X
    "raw": "RawSignal(batch_size=8)",
    "walloc-conv": "WaLLoCTransformer(J=2, latent_dim=12, decoder='conv', max_epochs=1, hidden_channels=8, n_blocks=1)",
}


@pytest.fixture(scope="module")
def float_memmap(tmp_path_factory, photos, random_crops):
    """~400 MB float32 file of 64x64 crops of the bundled photos, on the [0, 1] scale."""
    path = tmp_path_factory.mktemp("memmap") / "images.f4"
    return _crop_file(path, photos, random_crops, FIT_IMAGES, FIT_SIZE, np.float32)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads the kernel's RSS accounting in /proc")
@pytest.mark.parametrize("name", list(FITTED))
def test_fit_on_a_float_memmap_keeps_peak_memory_bounded(float_memmap, name):
    """fit checks a float memmap for NaN batch by batch and releases its pages (a whole-array scan made all of it
    resident: +186 MB of 188), WaLLoC reads its entropy model's subset the same way and releases each row its
    decoder's training has copied, and ResidualVQ fills one sample array (small per-batch picks kept the heap from
    shrinking: +161 MB)."""
    script = textwrap.dedent(FIT_SCRIPT.format(n=FIT_IMAGES, size=FIT_SIZE, model=FITTED[name]))
    result = subprocess.run([sys.executable, "-c", script, str(float_memmap)], capture_output=True, text=True,
                            timeout=600, check=False)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["growth"] < FIT_BOUND, report
    assert FIT_BOUND < report["data"] / 2  # so the bound says something


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads the kernel's RSS accounting in /proc")
@pytest.mark.parametrize(
    "name, layout",
    [(name, "channels-first") for name in TRANSFORMERS] + [(name, "channels-last") for name in ("walloc", "dct")],
)
def test_transform_of_a_memmap_keeps_peak_memory_near_one_batch(big_memmap, name, layout):
    """Channel-last files are transformed through a transposed view: not C-contiguous, whose pages were kept
    (+590 MB) until each row's extent, not its contiguity, decided what to release."""
    if layout == "channels-first":
        shape, view = (N_IMAGES, 3, SIZE, SIZE), ""
    else:  # the same bytes read as (N, H, W, 3) images: other pixels, the same file
        shape, view = (N_IMAGES, SIZE, SIZE, 3), ".transpose(0, 3, 1, 2)"
    script = textwrap.dedent(SCRIPT.format(shape=shape, view=view, model=TRANSFORMERS[name]))
    result = subprocess.run([sys.executable, "-c", script, str(big_memmap)], capture_output=True, text=True,
                            timeout=600, check=False)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    data = N_IMAGES * 3 * SIZE * SIZE
    assert report["shape"][0] == N_IMAGES
    assert report["check"] <= 1e-5  # the streamed features are the in-memory ones
    assert report["growth"] < report["features"] + 96 * 2**20, (report, data)
    assert report["features"] + 96 * 2**20 < data / 2  # so the bound says something


def test_transform_batches_streams_an_iterator_like_one_transform(photos):
    X = np.stack([p[:64, :64].transpose(2, 0, 1) for p in photos.values()] * 3)
    model = WaLLoCTransformer(J=2, latent_dim=6).fit(X)
    stream = (X[i : i + 5] for i in range(0, len(X), 5))
    streamed = list(model.transform_batches(stream))
    assert [len(z) for z in streamed] == [5, 5, 2]
    np.testing.assert_allclose(np.concatenate(streamed), model.transform(X), atol=1e-5)


def test_transform_batches_points_a_labelled_data_loader_to_its_samples():
    from torch.utils.data import DataLoader, TensorDataset

    X = np.random.default_rng(0).random((10, 3, 8, 8)).astype(np.float32)
    model = ResolutionReducer(4).fit(X)
    loader = DataLoader(TensorDataset(torch.from_numpy(X), torch.arange(10)), batch_size=4)
    with pytest.raises(TypeError, match=r"batch 0 is a list of 2 arrays .* pass \(x for x, _ in loader\)"):
        list(model.transform_batches(loader))
    streamed = np.concatenate(list(model.transform_batches(x for x, _ in loader)))
    np.testing.assert_array_equal(streamed, model.transform(X))
    same_shapes = [X[0], X[1]]  # a list of samples is a batch
    np.testing.assert_array_equal(next(model.transform_batches([same_shapes])), model.transform(X[:2]))


@pytest.mark.parametrize("shape", [(10, 3, 8, 8), (10, 8, 8), (10, 2, 512), (10, 64)], ids=["rgb", "gray", "stereo",
                                                                                         "flat rows"])  # fmt: skip
def test_transform_batches_reads_a_loader_over_one_tensor_as_its_batches(shape):
    """A DataLoader over TensorDataset(X) yields [x]: numpy stacked it into one sample of one more axis ("Expected
    2-D ... got (1, 3, 3, 8, 8)", or 3 channels for grayscale). A list of one sample is still a batch of one."""
    from torch.utils.data import DataLoader, TensorDataset

    X = np.random.default_rng(0).random(shape).astype(np.float32)
    kwargs = {"input_shape": (1, 8, 8)} if len(shape) == 2 else {}
    model = ResolutionReducer(4, **kwargs).fit(X)
    loader = DataLoader(TensorDataset(torch.from_numpy(X)), batch_size=4)
    np.testing.assert_array_equal(np.concatenate(list(model.transform_batches(loader))), model.transform(X))
    np.testing.assert_array_equal(next(model.transform_batches([[X[0]]])), model.transform(X[:1]))
    if len(shape) == 2:  # one flat row reshaped as its image, (8, 8): still one sample, not 8 rows of 8
        np.testing.assert_array_equal(next(model.transform_batches([[X[0].reshape(8, 8)]])), model.transform(X[:1]))
        stereo = np.random.default_rng(1).random((6, 2 * 256)).astype(np.float32)  # and (2, T) of stereo rows
        rows = ResolutionReducer(4, input_shape=(2, -1), modality="audio").fit(stereo)
        one = next(rows.transform_batches([[stereo[0].reshape(2, 256)]]))
        np.testing.assert_array_equal(one, rows.transform(stereo[:1]))


@pytest.mark.parametrize("fit_shape, loader_shape", [((10, 8, 8), (10, 1, 8, 8)), ((10, 64), (10, 1, 64))],
                         ids=["gray", "mono"])  # fmt: skip
def test_a_loader_with_the_single_channel_axis_reads_after_a_fit_without_it(fit_shape, loader_shape):
    """transform takes (N, 1, H, W) after an (N, H, W) fit; a DataLoader over it was read as one sample of one
    more axis ("got an array of shape (1, 4, 1, 8, 8)")."""
    from torch.utils.data import DataLoader, TensorDataset

    X = np.random.default_rng(0).random(fit_shape).astype(np.float32)
    model = ResolutionReducer(2, modality="audio" if fit_shape[-1] == 64 else "image").fit(X)
    loader = DataLoader(TensorDataset(torch.from_numpy(X.reshape(loader_shape))), batch_size=4)
    np.testing.assert_array_equal(np.concatenate(list(model.transform_batches(loader))), model.transform(X))


def test_a_list_of_one_sample_of_other_channels_is_refused_not_split_into_single_channel_samples():
    """After an (N, 1, T) fit, [clip] with a (2, T) stereo clip is one sample of the wrong channel count, not a
    batch of two mono clips (a per-file stream of stereo files gave two rows per file)."""
    mono = ResolutionReducer(2, modality="audio").fit(np.zeros((4, 1, 64), np.float32))
    with pytest.raises(ValueError, match=r"2 channel\(s\), but ResolutionReducer was fitted on 1"):
        list(mono.transform_batches([[np.zeros((2, 64), np.float32)]]))
    gray = ResolutionReducer(2).fit(np.zeros((4, 1, 8, 8), np.float32))
    with pytest.raises(ValueError, match=r"3 channel\(s\), but ResolutionReducer was fitted on 1"):
        list(gray.transform_batches([[np.zeros((3, 8, 8), np.float32)]]))


def test_transform_batches_needs_a_fitted_transformer():
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        ResolutionReducer(4).transform_batches([np.zeros((1, 3, 8, 8))])


def test_transform_batches_refuses_one_array_and_points_to_transform():
    X = np.zeros((4, 3, 8, 8), np.float32)
    model = ResolutionReducer(4).fit(X)
    with pytest.raises(TypeError, match=r"iterable of batches, got one ndarray: use transform\(X\)"):
        model.transform_batches(X)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_a_non_finite_memmap_is_refused_batch_by_batch(tmp_path, bad):
    X = np.memmap(tmp_path / "x.f4", dtype=np.float32, mode="w+", shape=(40, 3, 16, 16))
    X[:] = np.random.default_rng(0).random(X.shape)
    model = WaLLoCTransformer(J=2, latent_dim=6, batch_size=8).fit(np.array(X[:8]))
    X[33, 1, 2, 3] = bad
    with pytest.raises(ValueError, match="(?s)NaN.*WaLLoCTransformer" if np.isnan(bad) else "infinity"):
        model.transform(X)


def test_copy_on_write_memmap_edits_survive_a_transform(tmp_path):
    """Pages are only released for shared mappings: a mode='c' memmap keeps its in-memory edits."""
    path = tmp_path / "x.u8"
    np.zeros((64, 3, 32, 32), np.uint8).tofile(path)
    X = np.memmap(path, dtype=np.uint8, mode="c", shape=(64, 3, 32, 32))
    X[:] = np.random.default_rng(0).integers(0, 256, X.shape, dtype=np.uint8)
    edited = np.array(X)
    model = WaLLoCTransformer(J=2, latent_dim=6, batch_size=4).fit(edited)
    np.testing.assert_array_equal(model.transform(X), model.transform(edited))
    np.testing.assert_array_equal(X, edited)


def test_rows_read_from_a_shared_memmap_are_exact_and_edits_survive_the_released_pages(tmp_path):
    """Releasing consumed pages drops only this process's mapping: every row read (all of them, or an increasing
    subset), through a transposed view, equals the data, and edits not yet flushed to the file remain."""
    from walloc_features._memory import iter_rows

    X = np.memmap(tmp_path / "x.u8", dtype=np.uint8, mode="w+", shape=(64, 32, 32, 3))
    X[:] = np.random.default_rng(0).integers(0, 256, X.shape, dtype=np.uint8)
    edited = np.array(X)
    view = X.transpose(0, 3, 1, 2)  # channel-last file, channel-first rows: not C-contiguous
    rows = np.array([0, 5, 6, 40, 63])
    streamed = np.concatenate([np.array(part) for _, part in iter_rows(view, 3)])
    taken = np.concatenate([part for _, part in iter_rows(view, 2, rows=rows)])
    np.testing.assert_array_equal(streamed, edited.transpose(0, 3, 1, 2))
    np.testing.assert_array_equal(taken, edited.transpose(0, 3, 1, 2)[rows])
    np.testing.assert_array_equal(X, edited)


def test_pages_released_lie_within_the_rows_read(tmp_path, monkeypatch):
    """Every range handed to madvise lies inside the memmap (dropping pages outside it zeroes private memory next
    to the mapping): nothing for an empty axis or a row index outside the array, nothing row by row where rows
    interleave (a Fortran-ordered file: each row spans nearly all of it), and within the rows otherwise."""
    from walloc_features import _memory

    released = []
    monkeypatch.setattr(_memory, "_release", lambda start, stop: released.append((start, stop)))
    X = np.memmap(tmp_path / "x.u8", dtype=np.uint8, mode="w+", shape=(8, 3, 8192))
    begin, end = X.ctypes.data, X.ctypes.data + X.nbytes
    for _ in _memory.iter_rows(np.asarray(X)[:, :0], 2):
        pass
    _memory.Releaser(X).rows(-1, 0)
    _memory.Releaser(X).rows(8, 9)
    _memory.Releaser(np.asarray(X).T).rows(1, 2)  # (8192, 3, 8) rows interleaved
    assert released == []
    _memory.Releaser(X).rows(2, 4)
    for _ in _memory.iter_rows(np.asarray(X).transpose(0, 2, 1), 3):
        pass
    assert released and all(begin <= start < stop <= end for start, stop in released), released
    assert released[0] == (begin + 2 * 3 * 8192, begin + 4 * 3 * 8192)


def test_fit_and_entropy_model_refuse_a_non_finite_memmap(tmp_path):
    """Only the batch-by-batch readers skip the up-front scan; fitting still refuses NaN before learning."""
    from walloc_features.features import DCTTransformer, RawSignal, ResidualVQ

    X = np.memmap(tmp_path / "x.f4", dtype=np.float32, mode="w+", shape=(40, 3, 16, 16))
    X[:] = np.random.default_rng(0).random(X.shape)
    model = WaLLoCTransformer(J=2, latent_dim=6, batch_size=8).fit(np.array(X[:8]))
    X[20, 1, 2, 3] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        model.fit_entropy_model(X)
    for estimator in (WaLLoCTransformer(J=2, latent_dim=6), DCTTransformer(4), ResolutionReducer(4),
                      ResidualVQ(4, codebook_size=4), ResidualVQ(codebook_size=4, base=DCTTransformer(4)),
                      RawSignal()):  # fmt: skip
        with pytest.raises(ValueError, match=f"NaN.\\s{type(estimator).__name__} does not accept"):
            estimator.fit(X)  # named by the estimator fitted, not by a base it fits first


@pytest.mark.parametrize(
    "model",
    ["WaLLoCTransformer(J=2, latent_dim=4, batch_size=64)", "ResolutionReducer(4, batch_size=64)",
     "DCTTransformer(4, batch_size=64)", "ResidualVQ(4, codebook_size=4, random_state=0, batch_size=64)",
     "RawSignal(batch_size=64)"],
)  # fmt: skip
def test_bool_images_are_read_batch_by_batch_as_zero_one(model, traced_peak):
    """Bool samples are 0 / 1 floats, converted a batch at a time: a float32 copy of the whole array held 4x its
    memory (a bool memmap's file included); a transformer fitted on them takes uint8 0 / 255 images as before."""
    from walloc_features.features import DCTTransformer, RawSignal, ResidualVQ  # noqa: F401 (named in model)

    X = np.random.default_rng(5).random((1024, 1, 64, 64)) > 0.5  # 4 MB; a float32 batch: 1 MB
    model = eval(model).fit(X)
    expected = model.transform(X.astype(np.float32))
    model.transform(X[:8])  # warm-up
    Z, peak = traced_peak(model.transform, X)
    np.testing.assert_allclose(Z, expected, atol=1e-6)
    batch = model.batch_size * X[0].size * 4
    assert peak < Z.nbytes + X.nbytes + 2 * batch, (peak, Z.nbytes, X.nbytes, batch)
    np.testing.assert_allclose(model.transform(X.astype(np.uint8) * np.uint8(255)), expected, rtol=1e-4, atol=1e-3)


def test_residual_vq_fit_memory_follows_max_train_vectors_not_the_dataset(traced_peak):
    """ResidualVQ samples ``max_train_vectors`` positions without listing all of them: 10x the samples (2
    million positions, 16 MB of int64 indices) must not raise fit's peak of traced allocations."""
    from walloc_features.features import ResidualVQ

    def fit_peak(n_samples):
        X = np.random.default_rng(0).integers(0, 256, (n_samples, 1, 32, 32), dtype=np.uint8)  # 1024 positions each
        model = ResidualVQ(n_codebooks=1, codebook_size=2, patch_size=1, max_train_vectors=500, batch_size=16,
                           random_state=0)  # fmt: skip
        return traced_peak(model.fit, X)[1]

    fit_peak(200)  # warm-up: first-call allocations (imports, caches) are not the sampler's
    small, large = fit_peak(200), fit_peak(2000)
    assert large < small + 2**20, (small, large)


def test_resolution_inverse_transform_holds_its_output_once(traced_peak):
    """Batches are written into the output as they are upsampled (a list of them, then np.concatenate, held
    the reconstruction twice)."""
    clips = np.random.default_rng(0).uniform(-0.5, 0.5, (256, 16000)).astype(np.float32)
    model = ResolutionReducer(reduction=16, batch_size=16).fit(clips[:16])
    Z = model.transform(clips)
    model.inverse_transform(Z[:16])  # warm-up: first-call allocations are not the output's
    out, peak = traced_peak(model.inverse_transform, Z)
    assert out.shape == clips.shape and peak < 1.4 * out.nbytes, (peak, out.nbytes)
