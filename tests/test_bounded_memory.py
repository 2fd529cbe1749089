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

X = np.memmap(sys.argv[1], dtype=np.uint8, mode="r", shape=({n}, 3, {size}, {size}))
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


@pytest.fixture(scope="module")
def big_memmap(tmp_path_factory, photos):
    """~600 MB file of 256x256 crops of the bundled photos at varying offsets."""
    path = tmp_path_factory.mktemp("memmap") / "images.u8"
    X = np.memmap(path, dtype=np.uint8, mode="w+", shape=(N_IMAGES, 3, SIZE, SIZE))
    sources = [p.transpose(2, 0, 1) for p in photos.values()]
    rng = np.random.default_rng(0)
    for i in range(N_IMAGES):
        src = sources[i % len(sources)]
        y, x = rng.integers(0, src.shape[1] - SIZE), rng.integers(0, src.shape[2] - SIZE)
        X[i] = src[:, y : y + SIZE, x : x + SIZE]
    X.flush()
    del X
    return path


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads the kernel's RSS accounting in /proc")
@pytest.mark.parametrize("name", list(TRANSFORMERS))
def test_transform_of_a_memmap_keeps_peak_memory_near_one_batch(big_memmap, name):
    script = textwrap.dedent(SCRIPT.format(n=N_IMAGES, size=SIZE, model=TRANSFORMERS[name]))
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


def test_fit_and_entropy_model_refuse_a_non_finite_memmap(tmp_path):
    """Only the batch-by-batch readers skip the up-front scan; fitting still refuses NaN before learning."""
    from walloc_features.features import DCTTransformer

    X = np.memmap(tmp_path / "x.f4", dtype=np.float32, mode="w+", shape=(40, 3, 16, 16))
    X[:] = np.random.default_rng(0).random(X.shape)
    model = WaLLoCTransformer(J=2, latent_dim=6, batch_size=8).fit(np.array(X[:8]))
    X[20, 1, 2, 3] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        model.fit_entropy_model(X)
    for estimator in (WaLLoCTransformer(J=2, latent_dim=6), DCTTransformer(4), ResolutionReducer(4)):
        with pytest.raises(ValueError, match="NaN"):
            estimator.fit(X)


def test_residual_vq_fit_memory_follows_max_train_vectors_not_the_dataset():
    """ResidualVQ samples ``max_train_vectors`` positions without listing all of them: 10x the samples (2
    million positions, 16 MB of int64 indices) must not raise fit's peak of traced allocations."""
    import tracemalloc

    from walloc_features.features import ResidualVQ

    def fit_peak(n_samples):
        X = np.random.default_rng(0).integers(0, 256, (n_samples, 1, 32, 32), dtype=np.uint8)  # 1024 positions each
        model = ResidualVQ(n_codebooks=1, codebook_size=2, patch_size=1, max_train_vectors=500, batch_size=16,
                           random_state=0)  # fmt: skip
        tracemalloc.start()
        try:
            model.fit(X)
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    fit_peak(200)  # warm-up: first-call allocations (imports, caches) are not the sampler's
    small, large = fit_peak(200), fit_peak(2000)
    assert large < small + 2**20, (small, large)


def test_resolution_inverse_transform_holds_its_output_once():
    """Batches are written into the output as they are upsampled (a list of them, then np.concatenate, held
    the reconstruction twice)."""
    import tracemalloc

    clips = np.random.default_rng(0).uniform(-0.5, 0.5, (256, 16000)).astype(np.float32)
    model = ResolutionReducer(reduction=16, batch_size=16).fit(clips[:16])
    Z = model.transform(clips)
    model.inverse_transform(Z[:16])  # warm-up: first-call allocations are not the output's
    tracemalloc.start()
    try:
        out = model.inverse_transform(Z)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert out.shape == clips.shape and peak < 1.4 * out.nbytes, (peak, out.nbytes)
