"""Arrays stored elsewhere (h5py, zarr and dask arrays; bfloat16 tensors) are read a batch at a time.

``np.asarray`` of an h5py dataset reads all of it; ``fit`` and ``transform`` read ``batch_size`` rows at a
time instead (a training loop: one row at a time), check each slice as they would check an array, and give
what the same samples in memory give.
"""

import numpy as np
import pytest
import torch
from sklearn.base import BaseEstimator, TransformerMixin, clone
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline

from walloc_features import WaLLoCTransformer
from walloc_features.features import DCTTransformer, RawSignal, ResidualVQ, ResolutionReducer

h5py = pytest.importorskip("h5py")

BATCH = 8


class RecordedReads:
    """An array-like that records how many rows each read takes and refuses to be read whole, which is how an
    h5py or zarr dataset larger than memory must be used."""

    def __init__(self, array):
        self.array, self.shape, self.dtype, self.reads = array, array.shape, array.dtype, []

    def __len__(self):
        return len(self.array)

    def __getitem__(self, index):
        rows = self.array[index]
        self.reads.append(len(rows))
        return rows.copy()

    def __array__(self, dtype=None, copy=None):
        raise AssertionError("the whole array was read")


@pytest.fixture(scope="module")
def crops(photos, random_crops):
    """60 real 64x64 RGB crops (uint8): not a whole number of batches."""
    return random_crops(list(photos.values()), 60, 64, np.random.default_rng(1))


@pytest.fixture()
def h5(tmp_path):
    """``h5(name, array)``: the array written to an HDF5 file, opened for reading."""
    files = []

    def write(name, array):
        path = tmp_path / f"{name}.h5"
        with h5py.File(path, "w") as f:
            f.create_dataset("x", data=array, chunks=(1, *array.shape[1:]) if array.size else None)
        files.append(h5py.File(path, "r"))
        return files[-1]["x"]

    yield write
    for f in files:
        f.close()


MODELS = {
    "walloc": WaLLoCTransformer(J=2, latent_dim=6, quantize=True, batch_size=BATCH),
    "dct": DCTTransformer(16, quantize=True, batch_size=BATCH),
    "resolution": ResolutionReducer(16, quantize=True, batch_size=BATCH),
    "rvq": ResidualVQ(16, codebook_size=16, random_state=0, batch_size=BATCH),
    "raw": RawSignal(batch_size=BATCH),
    "rvq_on_walloc": ResidualVQ(12, codebook_size=16, base=WaLLoCTransformer(J=1, latent_dim=12, batch_size=BATCH),
                                random_state=0, batch_size=BATCH),
    "walloc_conv": WaLLoCTransformer(J=2, latent_dim=6, decoder="conv", max_epochs=1, random_state=0,
                                     batch_size=BATCH),
}  # fmt: skip


@pytest.mark.parametrize("name", MODELS)
def test_transform_reads_each_row_once_a_batch_at_a_time(name, crops):
    model = clone(MODELS[name]).fit(crops)
    source = RecordedReads(crops)
    Z = model.transform(source)
    np.testing.assert_array_equal(Z, model.transform(crops))
    assert max(source.reads) <= BATCH and sum(source.reads) == len(crops)


@pytest.mark.parametrize("name", MODELS)
def test_fit_reads_batches_only_and_learns_what_the_array_teaches(name, crops):
    source = RecordedReads(crops)
    model = clone(MODELS[name]).fit(source)
    np.testing.assert_array_equal(model.transform(crops), clone(MODELS[name]).fit(crops).transform(crops))
    assert max(source.reads, default=0) <= BATCH  # (integer pixels need no finiteness pass: maybe no read)
    if name == "walloc_conv":
        assert source.reads.count(1) >= len(crops)  # the decoder's training epoch reads its rows one by one
    assert not hasattr(model, "feature_names_in_")


def test_h5py_dataset_encodes_as_the_array_with_a_batch_of_memory(crops, h5, traced_peak):
    X = np.repeat(crops, 4, axis=0).astype(np.float32) / 255  # 240 x 48 KB = 11.8 MB
    model = WaLLoCTransformer(J=2, latent_dim=6, batch_size=BATCH).fit(X[:60])
    dataset = h5("float", X)
    Z, peak = traced_peak(model.transform, dataset)
    np.testing.assert_array_equal(Z, model.transform(X))
    # numpy allocations: the returned latents (1.5 MB) and a few batches (8 x 48 KB each), not the 11.8 MB
    assert peak < Z.nbytes + 2_000_000, (peak, X.nbytes)


def test_zarr_array_fits_and_encodes_as_the_array_a_batch_at_a_time(crops, tmp_path, monkeypatch):
    zarr = pytest.importorskip("zarr")
    array = zarr.open_array(str(tmp_path / "crops.zarr"), mode="w", shape=crops.shape, chunks=(1, *crops.shape[1:]),
                            dtype=crops.dtype)  # fmt: skip
    array[:] = crops
    reads = []
    original = type(array).__getitem__
    monkeypatch.setattr(type(array), "__getitem__", lambda self, index: reads.append(index) or original(self, index))
    model = WaLLoCTransformer(J=2, latent_dim=6, quantize=True, batch_size=BATCH).fit(array)
    expected = WaLLoCTransformer(J=2, latent_dim=6, quantize=True, batch_size=BATCH).fit(crops).transform(crops)
    np.testing.assert_array_equal(model.transform(array), expected)
    rows = [index.stop - index.start for index in reads if isinstance(index, slice)]
    assert reads and len(rows) == len(reads) and max(rows) <= BATCH  # only row slices, never the whole array


def test_a_base_of_the_users_own_is_fitted_on_an_array(crops, h5):
    """ResidualVQ's base may be any transformer: it gets the samples as an array, not the package's row reader."""

    class Scaled(TransformerMixin, BaseEstimator):
        def __init__(self, output="flat"):
            self.output = output

        def fit(self, X, y=None):
            self.mean_ = float(X.mean())
            return self

        def transform(self, X):
            return np.asarray(X, np.float32)[:, :, ::4, ::4] / 255

        def inverse_transform(self, Z):
            return Z * 255

    fitted = ResidualVQ(4, codebook_size=8, base=Scaled(), random_state=0).fit(h5("base", crops))
    assert fitted.base_.mean_ == pytest.approx(crops.mean())


def test_h5py_uint8_images_in_a_pipeline(crops, h5):
    y = np.arange(len(crops)) % 3
    pipe = make_pipeline(WaLLoCTransformer(J=2, latent_dim=6, batch_size=BATCH), LogisticRegression(max_iter=200))
    pipe.fit(crops, y)
    np.testing.assert_array_equal(pipe.predict(h5("uint8", crops)), pipe.predict(crops))
    assert pipe.score(h5("uint8_again", crops), y) == pipe.score(crops, y)


def test_h5py_flat_rows_take_input_shape_and_fit_width(mnist, h5):
    X, _ = mnist
    rows = X[:50].reshape(50, -1)  # (50, 784) uint8
    model = WaLLoCTransformer(J=2, latent_dim=4, input_shape=(1, 28, 28), batch_size=BATCH).fit(rows)
    np.testing.assert_array_equal(model.transform(h5("rows", rows)), model.transform(rows))
    from_dataset = clone(model).fit(h5("fit_rows", rows))
    assert from_dataset.n_features_in_ == 784
    np.testing.assert_array_equal(from_dataset.transform(rows), model.transform(rows))
    with pytest.raises(ValueError, match="X has 783 features, but WaLLoCTransformer is expecting 784"):
        model.transform(h5("narrow", rows[:, :-1]))


def test_h5py_mono_audio_rows(h5):
    t = np.arange(4096) / 16000
    clips = np.stack([np.sin(2 * np.pi * f * t) * 0.5 for f in np.linspace(100, 2000, 20)]).astype(np.float32)
    model = RawSignal(batch_size=BATCH).fit(clips)
    Z = model.transform(h5("audio", clips))
    np.testing.assert_array_equal(Z, clips)
    codec = WaLLoCTransformer(J=2, latent_dim=4, output="tensor", batch_size=BATCH).fit(clips)
    np.testing.assert_array_equal(codec.transform(h5("audio_again", clips)), codec.transform(clips))


def test_non_finite_rows_of_a_dataset_are_refused(crops, h5):
    X = crops.astype(np.float32) / 255
    model = DCTTransformer(16, batch_size=BATCH).fit(X)
    X[37, 1, 5, 5] = np.nan
    with pytest.raises(ValueError, match="Input X contains NaN"):
        model.transform(h5("nan", X))
    X[37, 1, 5, 5] = np.inf
    with pytest.raises(ValueError, match="Input X contains infinity"):
        model.transform(RecordedReads(X))


def test_entropy_fit_checks_every_row_though_it_encodes_a_subset(h5):
    t = np.arange(4096) / 16000
    clips = np.stack([np.sin(2 * np.pi * f * t) * 0.5 for f in np.linspace(100, 2000, 300)]).astype(np.float32)
    codec = WaLLoCTransformer(J=2, latent_dim=4, batch_size=64).fit(clips[:20])
    clips[3, 5] = np.nan  # row 3 is not among the evenly spaced rows the entropy model encodes
    with pytest.raises(ValueError, match="Input X contains NaN"):
        codec.fit_entropy_model(h5("nan_row", clips))
    with pytest.raises(ValueError, match="Input X contains NaN"):
        codec.fit_entropy_model(torch.from_numpy(clips).to(torch.bfloat16))


def test_off_scale_float_rows_are_refused_after_an_integer_fit(crops):
    model = DCTTransformer(16, batch_size=BATCH).fit(crops)
    with pytest.raises(ValueError, match=r"samples 0-7, far off the \[0.0, 1.0\] image scale"):
        model.transform(RecordedReads(crops.astype(np.float32)))  # pixels on 0-255 as floats


def test_dataset_of_strings_or_no_samples_is_refused(crops, h5):
    model = ResolutionReducer(16, batch_size=BATCH).fit(crops)
    with pytest.raises(ValueError, match="dtype \\|S1; transformers take numbers"):
        model.transform(h5("strings", np.full((4, 3, 64, 64), b"a")))
    with pytest.raises(ValueError, match="Found array with 0 sample"):
        model.transform(RecordedReads(crops[:0]))
    audio = RawSignal(output="tensor").fit(np.zeros((4, 2048), np.float32))  # any length in tensor mode
    with pytest.raises(ValueError, match=r"Found array with 0 feature\(s\) \(shape=\(3, 0\)\)"):
        audio.transform(h5("no_samples_a_row", np.zeros((3, 0), np.float32)))


def test_array_likes_that_take_no_slices_are_read_as_numpy_reads_them(crops):
    """An array-like whose [] takes integers only: numpy reads it through __array__, as before LazyRows."""

    class IntegersOnly(RecordedReads):
        def __getitem__(self, index):
            if not isinstance(index, (int, np.integer)):
                raise TypeError("integer indices only")
            return super().__getitem__(index)

        def __array__(self, dtype=None, copy=None):
            return self.array

    model = DCTTransformer(16, batch_size=BATCH).fit(IntegersOnly(crops))
    np.testing.assert_array_equal(model.transform(IntegersOnly(crops)), model.transform(crops))


def test_rows_of_unknown_count_are_read_as_numpy_reads_them(crops):
    """A dask array of unknown chunk sizes (after a boolean mask) has NaN for its length: numpy computes it."""

    class UnknownLength(RecordedReads):
        def __init__(self, array):
            super().__init__(array)
            self.shape = (float("nan"), *array.shape[1:])

        def __array__(self, dtype=None, copy=None):
            return self.array

    model = DCTTransformer(16, batch_size=BATCH).fit(crops)
    np.testing.assert_array_equal(model.transform(UnknownLength(crops)), model.transform(crops))


def test_compress_and_entropy_fit_read_a_dataset_in_batches(crops, h5):
    codec = WaLLoCTransformer(J=2, latent_dim=6, batch_size=BATCH).fit(crops)
    source = RecordedReads(crops)
    codec.fit_entropy_model(source)  # evenly spaced rows: read one at a time
    assert max(source.reads) <= BATCH
    from_array = clone(codec).fit(crops).fit_entropy_model(crops)
    assert codec.compress(h5("compress", crops)) == from_array.compress(crops)


def test_transform_batches_refuses_one_dataset(crops, h5):
    model = RawSignal().fit(crops)
    with pytest.raises(TypeError, match=r"use transform\(X\), which already reads arrays, memmaps and h5py .* "
                                        r"stacked batches, pass \(X\[i\] for i in range\(len\(X\)\)\)"):
        next(model.transform_batches(h5("one", crops)))


def test_bfloat16_tensor_encodes_as_its_float32_values(crops):
    X = torch.from_numpy(crops.astype(np.float32) / 255).to(torch.bfloat16)
    model = WaLLoCTransformer(J=2, latent_dim=6, batch_size=BATCH).fit(crops)
    np.testing.assert_array_equal(model.transform(X), model.transform(X.float()))
    X[41, 0, 3, 3] = float("nan")
    with pytest.raises(ValueError, match="Input X contains NaN"):
        model.transform(X)


def test_rows_stored_elsewhere_take_negative_indices_as_numpy_does():
    """A training loop's ``X[-1]`` is the last row, as in numpy; past either end is an IndexError."""
    from walloc_features.features._signals import LazyRows

    source = torch.arange(12, dtype=torch.bfloat16).reshape(3, 4)
    rows = LazyRows(source, WaLLoCTransformer())
    np.testing.assert_array_equal(rows[-1], rows[2])
    np.testing.assert_array_equal(rows[-3], source[0].float().numpy())
    for past in (3, -4):
        with pytest.raises(IndexError, match=f"row {past} is out of range for 3 rows"):
            rows[past]
