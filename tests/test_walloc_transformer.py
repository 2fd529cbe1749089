"""WaLLoCTransformer: shapes, layouts, errors, persistence and the scikit-learn contract."""

import json
import os
import warnings

import joblib
import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import Pipeline

from walloc_features import RawSignal, ResolutionReducer, WaLLoCTransformer
from walloc_features.evaluation import psnr


@pytest.fixture(scope="module")
def digits(mnist):
    X, y = mnist
    return X[:600], y[:600]


@pytest.fixture(scope="module")
def rgb():
    return np.random.default_rng(0).integers(0, 256, size=(20, 3, 32, 32), dtype=np.uint8)


# ------------------------------------------------------------------------------- shapes --
def test_rgb_16x_has_published_layout(rgb):
    model = WaLLoCTransformer(reduction=16, output="tensor").fit(rgb)
    assert (model.J_, model.latent_dim_) == (3, 12)  # 192 packets -> 12 channels, as published
    assert model.latent_shape_ == (12, 4, 4)
    assert model.reduction_ == 16.0
    Z = model.transform(rgb)
    assert Z.shape == (20, 12, 4, 4) and Z.dtype == np.float32


def test_flat_output_and_feature_names(digits):
    X, _ = digits
    model = WaLLoCTransformer(reduction=16).fit(X)
    Z = model.transform(X)
    assert model.latent_shape_ == (1, 7, 7) and model.J_ == 2  # 28 = 7 * 2**2: no padding
    assert Z.shape == (600, 49)
    names = model.get_feature_names_out()
    assert len(names) == 49 and names[0] == "z0_0_0" and names[-1] == "z0_6_6"


def test_feature_names_check_the_input_features_they_are_given(digits):
    X, _ = digits
    df = pd.DataFrame(X.reshape(600, -1)[:50], columns=[f"p{i}" for i in range(784)])
    model = WaLLoCTransformer(input_shape=(1, 28, 28)).fit(df)
    names = model.get_feature_names_out()
    np.testing.assert_array_equal(model.get_feature_names_out(df.columns), names)
    with pytest.raises(ValueError, match="input_features is not equal to feature_names_in_"):
        model.get_feature_names_out([f"q{i}" for i in range(784)])
    with pytest.raises(ValueError, match="input_features should have length equal to number of features \\(784\\)"):
        WaLLoCTransformer().fit(X).get_feature_names_out(["a", "b"])


def test_quantize_gives_integer_codes_in_range(digits):
    X, _ = digits
    continuous = WaLLoCTransformer(latent_bits=6).fit(X).transform(X)
    codes = WaLLoCTransformer(latent_bits=6, quantize=True).fit(X).transform(X)
    assert codes.dtype == np.int8
    assert codes.min() >= -31 and codes.max() <= 31
    np.testing.assert_array_equal(codes, np.round(continuous))


def test_float_uint8_and_torch_inputs_agree(digits):
    X, _ = digits
    model = WaLLoCTransformer().fit(X)
    from_uint8 = model.transform(X)
    np.testing.assert_allclose(model.transform(X / 255.0), from_uint8, atol=1e-3)
    np.testing.assert_allclose(model.transform(torch.from_numpy(X)), from_uint8)


def test_channel_axis_and_flat_input_with_input_shape(digits):
    X, _ = digits
    reference = WaLLoCTransformer().fit(X).transform(X)
    with_axis = WaLLoCTransformer().fit(X[:, None]).transform(X[:, None])
    flat = WaLLoCTransformer(input_shape=(28, 28)).fit(X.reshape(600, -1))
    np.testing.assert_allclose(with_axis, reference)
    np.testing.assert_allclose(flat.transform(X.reshape(600, -1)), reference)
    assert flat.inverse_transform(flat.transform(X.reshape(600, -1))).shape == (600, 784)


@pytest.mark.parametrize("input_shape", [(1, 28, 28), (28, 28)])
def test_input_shape_reads_flat_rows_after_a_fit_on_shaped_samples(digits, input_shape):
    """input_shape says how flat rows are shaped, whichever form fit saw: rows of the samples encode like them."""
    X = digits[0][:50].reshape(50, *input_shape)
    model = WaLLoCTransformer(input_shape=input_shape).fit(X)
    np.testing.assert_array_equal(model.transform(X.reshape(50, -1)), model.transform(X))


def test_inverse_transform_crops_padding_and_keeps_layout():
    X = np.random.default_rng(1).random((8, 3, 30, 20)).astype(np.float32)
    model = WaLLoCTransformer(latent_dim=192, J=3).fit(X)  # keeps every packet: lossless but for rounding
    assert model.latent_shape_ == (192, 4, 3)  # 30x20 padded to 32x24
    recon = model.inverse_transform(model.transform(X))
    assert recon.shape == X.shape
    np.testing.assert_allclose(recon, X, atol=2e-3)
    assert model.score(X) > 40


def test_tensor_mode_encodes_other_sizes(rgb):
    model = WaLLoCTransformer(output="tensor").fit(rgb)
    big = np.random.default_rng(2).integers(0, 256, size=(2, 3, 64, 48), dtype=np.uint8)
    Z = model.transform(big)
    assert Z.shape == (2, 12, 8, 6)
    assert model.inverse_transform(Z).shape == (2, 3, 64, 48)
    odd = big[:, :, :61, :43]  # padded to 64x48: the grid cannot tell its size
    assert model.inverse_transform(model.transform(odd)).shape == (2, 3, 64, 48)
    assert model.inverse_transform(model.transform(odd), output_size=(61, 43)).shape == (2, 3, 61, 43)


def test_reconstructions_are_clipped_to_the_valid_range(mnist):
    X, _ = mnist
    model = WaLLoCTransformer().fit(X[:500])
    recon = model.inverse_transform(model.transform(X[:500]))
    assert recon.min() >= 0.0 and recon.max() <= 1.0
    assert recon.min() == 0.0 and recon.max() == 1.0  # the raw decoder over- and undershoots


def test_tensor_mode_keeps_the_missing_channel_axis_for_every_grid(digits):
    X, _ = digits
    model = WaLLoCTransformer(output="tensor").fit(X)
    assert model.inverse_transform(model.transform(X[:2])).shape == (2, 28, 28)
    bigger = np.zeros((2, 56, 56), dtype=np.uint8)
    assert model.inverse_transform(model.transform(bigger)).shape == (2, 56, 56)


def test_stereo_audio_shapes_and_round_trip():
    t = np.arange(4096) / 16000
    rng = np.random.default_rng(3)
    X = np.stack([
        np.stack([0.3 * np.sin(2 * np.pi * f * t), 0.3 * np.sin(2 * np.pi * f * 1.01 * t)])
        + 0.01 * rng.standard_normal((2, t.size))
        for f in rng.uniform(100, 2000, 16)
    ]).astype(np.float32)  # fmt: skip
    model = WaLLoCTransformer(reduction=16, output="tensor").fit(X)
    assert model.modality_ == "audio" and model.J_ == 8
    assert model.latent_shape_ == (32, 16)  # 2 * 2**8 = 512 packets -> 32 channels at 1/256 length
    recon = model.inverse_transform(model.transform(X))
    assert recon.shape == X.shape
    assert model.score(X) > 25  # dB, with a data range of 2 for [-1, 1] audio


def test_integer_pcm_audio_is_read_at_full_scale():
    rng = np.random.default_rng(6)
    floats = rng.uniform(-0.5, 0.5, (8, 2, 2048)).astype(np.float32)
    pcm = np.round(floats * 32768).astype(np.int16)
    model = WaLLoCTransformer().fit(pcm)
    np.testing.assert_allclose(model.transform(floats), model.transform(pcm), atol=0.05)
    assert model.inverse_transform(model.transform(pcm)).dtype == np.float32


@pytest.mark.parametrize("transformer", [WaLLoCTransformer(), RawSignal(), ResolutionReducer(4)], ids=repr)
@pytest.mark.parametrize("dtype, centre", [(np.uint8, 128), (">u2", 32768)])
def test_unsigned_pcm_is_refused_as_audio_rather_than_read_shifted_as_pixels(transformer, dtype, centre):
    """scipy reads an 8-bit WAV as uint8 centred on 128: read as pixels (x / 255) it would be audio shifted by
    +0.5 at half its amplitude. The error gives the conversion; the converted clip then fits."""
    rng = np.random.default_rng(0)
    clips = rng.uniform(-0.5, 0.5, (4, 4096))
    pcm = np.round(clips * (centre - 1) + centre).astype(dtype)
    with pytest.raises(ValueError, match=rf"samples laid out as audio, .* centred on {centre} .* \(X - {centre}\) / "
                                         rf"{centre}"):  # fmt: skip
        clone(transformer).fit(pcm)
    with pytest.raises(ValueError, match="laid out as audio"):
        clone(transformer).fit(pcm.astype(np.float32) / (2 * centre - 1)).transform(pcm)
    converted = (pcm.astype(np.float32) - centre) / centre
    np.testing.assert_allclose(converted, clips, atol=1.5 / centre)
    assert clone(transformer).fit(converted).transform(converted).shape[0] == 4
    images = rng.integers(0, 256, (4, 1, 64, 64)).astype(dtype)  # as pixels they are still read
    assert clone(transformer).set_params(input_shape=(1, 64, 64)).fit(images.reshape(4, -1)).n_features_in_ == 4096


def test_big_endian_pcm_gives_the_features_of_native_pcm(tmp_path):
    """``>i2`` PCM (as read from AIFF or network-order files) is int16 audio like ``<i2``: same scale, same codes."""
    pcm = np.round(np.random.default_rng(6).uniform(-0.5, 0.5, (8, 2, 2048)) * 32768).astype("<i2")
    big = pcm.astype(">i2")
    model = WaLLoCTransformer(quantize=True).fit(pcm)
    np.testing.assert_array_equal(model.transform(big), model.transform(pcm))
    stored = np.memmap(tmp_path / "pcm.be", dtype=">i2", mode="w+", shape=big.shape)
    stored[:] = big
    np.testing.assert_array_equal(model.transform(stored), model.transform(pcm))  # batch by batch from the file
    from_big = WaLLoCTransformer(quantize=True).fit(big)
    assert from_big.input_dtype_ == np.dtype(np.int16).str
    np.testing.assert_array_equal(from_big.transform(pcm), model.transform(pcm))
    # the conv decoder trains on the file's rows, each converted as it is read: the same run as on native PCM
    conv = dict(decoder="conv", max_epochs=2, hidden_channels=4, n_blocks=1, batch_size=4, random_state=0)
    assert WaLLoCTransformer(**conv).fit(stored).loss_curve_ == WaLLoCTransformer(**conv).fit(pcm).loss_curve_


def test_bool_images_are_zero_one():
    X = np.random.default_rng(7).random((16, 16, 16)) > 0.5
    model = WaLLoCTransformer(reduction=4).fit(X)
    np.testing.assert_allclose(model.transform(X), model.transform(X.astype(np.float32)), atol=1e-4)


def test_mono_audio_2d_input():
    X = np.random.default_rng(4).uniform(-0.5, 0.5, (10, 1000)).astype(np.float32)
    model = WaLLoCTransformer(reduction=4).fit(X)
    assert model.modality_ == "audio" and model.input_shape_ == (1, 1000)
    assert model.inverse_transform(model.transform(X)).shape == (10, 1000)


@pytest.mark.parametrize("input_shape", [None, (1, -1)])
def test_tensor_output_takes_mono_rows_of_any_length(input_shape):
    """(N, T) rows are mono signals: in tensor mode of any length, as (N, 1, T) is; flat rows need fit's width."""
    rng = np.random.default_rng(4)
    A, B = rng.uniform(-0.5, 0.5, (3, 3000)).astype(np.float32), rng.uniform(-0.5, 0.5, (3, 4000)).astype(np.float32)
    model = WaLLoCTransformer(output="tensor", input_shape=input_shape, modality="audio").fit(A)
    np.testing.assert_array_equal(model.transform(B), model.transform(B[:, None]))
    flat = WaLLoCTransformer(input_shape=input_shape, modality="audio").fit(A)
    with pytest.raises(ValueError, match="X has 4000 features, but WaLLoCTransformer is expecting 3000"):
        flat.transform(B)


def test_hyperspectral_many_channels():
    X = np.random.default_rng(5).random((4, 30, 16, 16)).astype(np.float32)
    model = WaLLoCTransformer(reduction=16, output="tensor").fit(X)
    assert model.transform(X).shape[1:] == model.latent_shape_
    assert model.reduction_ == pytest.approx(16, rel=0.01)


# ------------------------------------------------------------------------------- errors --
@pytest.mark.parametrize(
    "X, message",
    [
        (np.zeros(10), "got an array of shape \\(10,\\)"),
        (np.zeros((2, 1, 1, 4, 4)), "Expected 2-D"),
        (np.zeros((0, 28, 28)), "0 sample"),
        (np.full((3, 28, 28), np.nan), "NaN"),
        (np.full((3, 28, 28), np.inf), "infinity"),
        (np.where(np.arange(3 * 64).reshape(1, 3, 8, 8) == 100, np.nan, 0.5).astype(np.float32), "NaN"),
        (np.zeros((2, 3, 8, 8), dtype=complex), "Complex"),
        (np.array([[[["a"]]]], dtype=object), "could not convert|dtype"),
    ],
)
def test_bad_input_is_refused_with_a_clear_message(X, message):
    with pytest.raises(ValueError, match=message):
        WaLLoCTransformer().fit(X)


@pytest.mark.parametrize("layout", ["float32", "float64", "read-only", "strided", "reversed"])
@pytest.mark.parametrize("bad, message", [(np.nan, "Input X contains NaN"), (-np.inf, "Input X contains infinity")])
def test_one_non_finite_audio_sample_is_refused_whatever_the_memory_layout(layout, bad, message):
    rng = np.random.default_rng(1)
    clips = rng.uniform(-1, 1, (4, 2, 4096)).astype(np.float32)
    model = WaLLoCTransformer(J=4, latent_dim=4, output="tensor").fit(clips)
    X = rng.uniform(-1, 1, (3, 2, 8192)).astype(np.float32)
    X[2, 1, 5000] = bad
    if layout == "float64":
        X = X.astype(np.float64)
    elif layout == "read-only":
        X.flags.writeable = False
    elif layout == "strided":
        X = X[:, :, ::2]
    elif layout == "reversed":
        X = X[:, :, ::-1]
    with pytest.raises(ValueError, match=message):
        model.transform(X)


def test_scikit_learns_assume_finite_switch_is_honoured():
    import sklearn

    from walloc_features.features._signals import check_finite

    X = np.full((2, 2, 64), np.nan, np.float32)
    with sklearn.config_context(assume_finite=True):
        check_finite(X, WaLLoCTransformer())  # the caller vouched for the data
    with pytest.raises(ValueError, match="NaN"):
        check_finite(X, WaLLoCTransformer())


def test_finite_values_whose_sum_overflows_pass_the_finiteness_check():
    from walloc_features.features._signals import check_finite

    X = np.full((2, 2, 4096), 3e38, np.float32)  # every value finite, their sum not
    with np.errstate(over="ignore"):
        assert not np.isfinite(X.sum())
    check_finite(X, WaLLoCTransformer())  # no error: the element-wise check clears it
    X[1, 1, 7] = np.inf
    with pytest.raises(ValueError, match="infinity"):
        check_finite(X, WaLLoCTransformer())


def test_finite_values_that_overflow_the_encoder_are_refused_not_encoded_as_nan():
    rng = np.random.default_rng(0)
    with pytest.warns(UserWarning, match="far off"):  # off the scale, so transform reads any float as fit did
        model = WaLLoCTransformer(J=2, latent_dim=4, output="tensor").fit(rng.random((6, 1, 16, 16)) * 1e3 - 500)
    loud = np.full((2, 1, 16, 16), 1e30, np.float32)
    loud[:, :, ::2] = -1e30
    unit = WaLLoCTransformer(J=2, latent_dim=4).fit(rng.random((6, 1, 16, 16)).astype(np.float32))
    with pytest.raises(ValueError, match="far off the .* scale WaLLoCTransformer was fitted on"):
        unit.transform(loud)  # a codec of the unit scale refuses them before they reach its arithmetic
    assert np.isfinite(model.transform(loud)).all()  # large, but the sums fit: latents saturate
    loud[1] *= 3e8  # +-3e38: the filters' sums pass float32's maximum (inf - inf: NaN latents, codes 0)
    with pytest.raises(ValueError, match="overflowed on samples 0-1: .*up to 3e\\+38"):
        model.transform(loud)
    with pytest.raises(ValueError, match="overflowed"):
        model.set_params(quantize=True).compress(loud)
    with pytest.raises(ValueError, match=r"statistics of X overflowed: .*spans \[-3e\+38, 3e\+38\]"), \
            pytest.warns(UserWarning, match="far off"):  # fmt: skip
        WaLLoCTransformer(J=2, latent_dim=4).fit(loud)  # was numpy's LinAlgError from eigh


@pytest.mark.parametrize("name", ["ResolutionReducer", "DCTTransformer", "RawSignal", "ResidualVQ"])
@pytest.mark.filterwarnings("ignore:X \\(float64\\) spans")
def test_float64_values_beyond_float32_are_refused_not_turned_to_inf(name):
    """ResidualVQ's fit cast them to inf and failed in k-means, blaming an infinity X does not hold."""
    import walloc_features

    make = lambda: getattr(walloc_features, name)(**({"codebook_size": 8} if name == "ResidualVQ" else {}))  # noqa: E731
    X = np.random.default_rng(0).random((4, 1, 16, 16)) * 1000  # off the scale: no scale check refuses first
    model = make().fit(X)
    X[3, 0, 5, 5] = 1e39  # finite in float64, inf in float32
    with pytest.raises(ValueError, match="samples 0-3 hold values beyond float32's range"):
        model.transform(X)
    if name == "ResidualVQ":  # the only one of these that learns from the values (the others record their range)
        with pytest.raises(ValueError, match="samples 0-3 hold values beyond float32's range"):
            make().fit(X)


def test_iterators_are_refused_with_a_pointer_to_arrays_and_transform_batches(digits):
    X, _ = digits
    with pytest.raises(TypeError, match="X is an iterator \\(generator\\); pass the samples as an array, a list"):
        WaLLoCTransformer().fit(x for x in X)
    model = WaLLoCTransformer().fit(X)
    with pytest.raises(TypeError, match="use transform_batches"):
        model.transform(iter(X))
    np.testing.assert_array_equal(model.transform(list(X)), model.transform(X))


def test_torch_datasets_and_loaders_are_refused_with_the_way_to_pass_them(digits):
    from torch.utils.data import DataLoader, TensorDataset

    X, y = digits
    dataset = TensorDataset(torch.from_numpy(X[:40]), torch.from_numpy(y[:40]))
    with pytest.raises(TypeError, match=r"X is a torch Dataset \(TensorDataset\), not an array.*tensors\[0\]\)$"):
        WaLLoCTransformer().fit(dataset)
    model = WaLLoCTransformer().fit(X[:40])
    loader = DataLoader(dataset, batch_size=8)
    with pytest.raises(TypeError, match=r"X is a DataLoader.*use transform_batches\(x for x, _ in loader\)"):
        model.transform(loader)
    codes = np.concatenate(list(model.transform_batches(x for x, _ in loader)))  # the way the message gives
    np.testing.assert_array_equal(codes, model.transform(dataset.tensors[0]))


def test_2d_input_with_modality_image_is_refused_with_both_ways_out():
    clips = np.zeros((4, 16000), np.float32)
    with pytest.raises(ValueError, match=r"is \(N, T\) audio, but modality='image': pass modality='audio' for audio "
                                         r"clips, or input_shape=\(C, H, W\) for flattened images"):
        WaLLoCTransformer(modality="image").fit(clips)


def test_input_of_the_other_modality_after_fit_names_the_fit_not_a_parameter_never_set():
    rng = np.random.default_rng(0)
    images, clips = rng.random((4, 3, 16, 16), np.float32), rng.uniform(-0.5, 0.5, (4, 1, 4096)).astype(np.float32)
    model = WaLLoCTransformer(J=2, reduction=4)  # modality="auto"
    on_images, on_audio = clone(model).fit(images), clone(model).fit(clips)
    with pytest.raises(ValueError, match=r"is \(N, T\) audio, but WaLLoCTransformer was fitted on images: pass the "
                                         r"images as \(N, C, H, W\) or \(N, H, W\), or fit with input_shape"):
        on_images.transform(images.reshape(4, -1))
    with pytest.raises(ValueError, match=r"cannot be audio \(WaLLoCTransformer was fitted on audio\)"):
        on_audio.transform(images)


@pytest.mark.parametrize("shape", [(20, 28, 28), (20, 3, 32, 32), (20, 2, 4096)])
def test_one_sample_without_its_batch_axis_is_refused_with_x_none(shape):
    audio = shape[-1] == 4096  # (int16 PCM: uint8 audio is refused)
    dtype, low, high = (np.int16, -(2**15), 2**15) if audio else (np.uint8, 0, 256)
    X = np.random.default_rng(0).integers(low, high, shape, dtype=dtype)
    model = WaLLoCTransformer(J=2, latent_dim=4, modality="image" if len(shape) == 4 else "auto").fit(X)
    with pytest.raises(ValueError, match=r"X of shape .* is one sample of the fitted shape: pass X\[None\]") as error:
        model.transform(X[0])  # (was: "X has 28 features", "X has 1 channel(s)", "X ... is mono audio")
    # (C, ...) may also be C mono clips or grayscale images, which X[None] would merge into one sample
    channels = shape[1] if len(shape) == 4 or audio else None
    assert (f"np.repeat(X[:, None], {channels}, axis=1)" in str(error.value)) == (channels is not None)
    np.testing.assert_array_equal(model.transform(X[0][None]), model.transform(X)[:1])
    if len(shape) == 3 and shape[1] < 28:  # (20, 2, 4096) audio: one channel of it, (1, T), is a batch of one
        mono = WaLLoCTransformer(J=2, latent_dim=4).fit(X[:, :1])
        np.testing.assert_array_equal(mono.transform(X[0, :1]), mono.transform(X[:1, :1]))
    if len(shape) == 4:  # and one channel of an image, (1, H, W): one grayscale image
        gray = WaLLoCTransformer(J=2, latent_dim=4).fit(X[:, :1])
        np.testing.assert_array_equal(gray.transform(X[0, :1]), gray.transform(X[:1, :1]))


def test_rows_of_input_shape_are_a_batch_even_when_shaped_like_one_sample():
    from walloc_features.features import RawSignal

    clips = np.random.default_rng(0).uniform(-1, 1, (4, 2, 16000)).astype(np.float32)
    model = RawSignal(input_shape=(2, -1), output="tensor", modality="audio").fit(clips)
    assert model.transform(clips[0]).shape == (2, 2, 8000)  # two rows of 16000 values: two clips of 2 x 8000


def test_integer_dtype_read_on_another_scale_is_refused(digits):
    X, _ = digits
    model = WaLLoCTransformer().fit(X)  # uint8: x / 255
    with pytest.raises(ValueError, match="fitted on uint8"):
        model.transform(X.astype(np.int64))
    model.transform(X / 255.0)  # floats on the [0, 1] scale are the same signal


def test_channel_last_input_is_refused_with_a_hint():
    with pytest.raises(ValueError, match="transpose\\(0, 3, 1, 2\\)"):
        WaLLoCTransformer().fit(np.zeros((4, 32, 32, 3), dtype=np.uint8))
    with pytest.raises(ValueError, match="transpose\\(0, 2, 1\\)"):
        WaLLoCTransformer().fit(np.zeros((4, 4096, 2), dtype=np.float32))
    # after fit too (the fitted modality skipped the check: "X has 32 channel(s)" said nothing of the layout)
    X = np.random.default_rng(0).integers(0, 256, (4, 3, 32, 32), dtype=np.uint8)
    model = WaLLoCTransformer(J=2, latent_dim=6).fit(X)
    for method in (model.transform, model.score, model.compress):
        with pytest.raises(ValueError, match=r"fitted on 3; X of shape \(4, 32, 32, 3\) looks channel-last: use "
                                             r"X.transpose\(0, 3, 1, 2\)"):  # fmt: skip
            method(X.transpose(0, 2, 3, 1))


def test_input_shape_must_agree_with_nd_input():
    with pytest.raises(ValueError, match="input_shape=\\(3, 28, 28\\)"):
        WaLLoCTransformer(input_shape=(3, 28, 28)).fit(np.zeros((4, 28, 28)))


def test_bad_device_and_empty_latent_grid(digits):
    X, _ = digits
    with pytest.raises(ValueError, match="not a torch device"):
        WaLLoCTransformer(device="gpu").fit(X)
    from walloc_features._device import torch_device

    assert torch_device("cpu:0") == torch.zeros(1).device  # "cpu:0" != "cpu": every call moved the codec again
    model = WaLLoCTransformer(output="tensor").fit(X)
    with pytest.raises(ValueError, match="non-empty grid"):
        model.inverse_transform(np.zeros((2, 1, 0, 7), dtype=np.float32))


def test_bfloat16_tensors_are_accepted(digits):
    X, _ = digits
    model = WaLLoCTransformer().fit(torch.from_numpy(X / 255.0).to(torch.bfloat16))
    assert model.transform(X).shape == (600, 49)


def test_float16_tensors_are_read_in_place_and_encode_as_their_float32_values(digits):
    """A float16 tensor is viewed, not copied whole to float32 (2x its memory): each batch is converted as it is
    read, into the features of the same values in float32."""
    from walloc_features.features._signals import to_numpy

    X, _ = digits
    half = torch.from_numpy(X / 255.0).to(torch.float16)
    assert np.shares_memory(to_numpy(half), half.numpy())
    model = WaLLoCTransformer().fit(half)
    np.testing.assert_array_equal(model.transform(half), model.transform(half.float()))
    np.testing.assert_array_equal(model.transform(half), WaLLoCTransformer().fit(half.float()).transform(half))


def test_failed_fit_leaves_an_unfitted_estimator(rgb):
    model = WaLLoCTransformer().fit(rgb)
    with pytest.raises(ValueError, match="signal too small"):
        model.set_params(J=6).fit(rgb)
    with pytest.raises(NotFittedError):
        model.transform(rgb)


def test_fitted_latent_bits_win_over_a_later_set_params(digits):
    X, _ = digits
    model = WaLLoCTransformer(latent_bits=12, quantize=True).fit(X)
    codes = model.transform(X)
    model.set_params(latent_bits=8)
    np.testing.assert_array_equal(model.transform(X), codes)
    assert codes.dtype == np.int16 and np.abs(codes).max() > 127


def test_unreachable_reduction_warns(digits):
    X, _ = digits
    with pytest.warns(UserWarning, match="reduction=64 is not reachable") as caught:
        model = WaLLoCTransformer(reduction=64).fit(X)
    assert caught[0].filename == __file__  # the user's fit call, not torch's or our frames
    assert model.J_ == 3 and model.reduction_ == 49  # 28x28 padded to 32x32: 784 / (1 * 4 * 4)


def test_automatic_depth_goes_deeper_than_the_published_one_when_its_packets_are_too_few():
    """J=3 has 64 packets of a grayscale image and J=8 256 of mono audio: larger reductions or latent_dims
    are reached one level deeper (where the signal allows), not refused or silently missed."""
    rng = np.random.default_rng(0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # reachable: no "not reachable" warning
        gray = WaLLoCTransformer(reduction=256).fit(rng.random((4, 1, 64, 64), dtype=np.float32))
        mono = WaLLoCTransformer(reduction=512).fit(rng.random((4, 16384), dtype=np.float32) - 0.5)
        wide = WaLLoCTransformer(latent_dim=256).fit(rng.random((4, 3, 64, 64), dtype=np.float32))
    assert (gray.J_, gray.latent_shape_, gray.reduction_) == (4, (1, 4, 4), 256)
    assert (mono.J_, mono.latent_shape_, mono.reduction_) == (9, (1, 32), 512)
    assert (wide.J_, wide.latent_shape_) == (4, (256, 4, 4))
    assert WaLLoCTransformer(reduction=16).fit(rng.random((4, 3, 64, 64), dtype=np.float32)).J_ == 3  # published
    with pytest.warns(UserWarning, match="reduction=4096 is not reachable"):  # 8x8 holds J=3 at most
        assert WaLLoCTransformer(reduction=4096).fit(rng.random((4, 1, 8, 8), dtype=np.float32)).J_ == 3
    with pytest.warns(UserWarning, match="reduction=100000 is not reachable"):  # 3 * 4**5 = 3072 packets at most:
        assert WaLLoCTransformer(reduction=1e5).fit(rng.random((2, 3, 256, 256), dtype=np.float32)).J_ == 5
        # J=6 would hold a covariance of 12288**2 in float64 (1.2 GB), J=8 one of 300 GB


def test_latent_dim_overrides_reduction_in_the_choice_of_depth(digits):
    """As documented, reduction is ignored once latent_dim is set: the depth follows latent_dim alone."""
    X, _ = digits
    shallow = WaLLoCTransformer(latent_dim=10).fit(X[:50])
    assert shallow.J_ == 2 and shallow.latent_shape_ == (10, 7, 7)
    assert WaLLoCTransformer(latent_dim=10, reduction=20).fit(X[:50]).latent_shape_ == (10, 7, 7)
    deep = WaLLoCTransformer(latent_dim=20).fit(X[:50])  # 16 packets at J=2 are too few: J=3 (a padded 32x32)
    assert deep.J_ == 3 and deep.latent_shape_ == (20, 4, 4)


@pytest.mark.parametrize("as_dtype", [np.int64, np.float32])
def test_pixels_off_the_unit_scale_warn_in_fit(digits, as_dtype):
    """0..255 pixels as int64 (torch's and numpy's default integers) or floats are read as if on [0, 1]:
    the features train, but reconstructions were clipped to [0, 1] silently (a PSNR of -38 dB)."""
    X, _ = digits
    with pytest.warns(UserWarning, match=r"spans \[0, 255\], far off the \[0.0, 1.0\] image scale.*divide") as caught:
        WaLLoCTransformer().fit(X[:50].astype(as_dtype))
    assert caught[0].filename == __file__
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        WaLLoCTransformer().fit(X[:50])  # uint8: read as x / 255
        WaLLoCTransformer().fit(X[:50] / 255.0)
        WaLLoCTransformer().fit(np.random.default_rng(0).uniform(-1, 1, (4, 2, 4096)).astype(np.float32))  # audio


def test_a_codec_fitted_on_unit_scale_floats_refuses_floats_far_off_it(digits, tmp_path):
    """Fitted on pixels in [0, 1], then given them on 0-255: every latent saturated at +-127.5 without a word
    (as a uint8 fit already refuses). A codec fitted on 0-255 floats (with fit's warning) reads them as fitted;
    the fit's range is saved with the codec."""
    X, _ = digits
    unit = X[:60].astype(np.float32) / 255
    model = WaLLoCTransformer(output="tensor").fit(unit)
    assert model.input_range_ == (0.0, 1.0)
    message = (r"X \(float32\) spans \[0, 255\] in samples 0-\d+, far off the \[0.0, 1.0\] image scale "
               r"WaLLoCTransformer was fitted on \(float32 samples in \[0, 1\]\): its features would not be "
               r"on the fitted scale")  # fmt: skip
    for reader in (model.transform, model.compress, model.score):
        with pytest.raises(ValueError, match=message):
            reader(unit * 255)
    model.save(tmp_path / "codec")
    with pytest.raises(ValueError, match=message):
        WaLLoCTransformer.load(tmp_path / "codec").transform(unit * 255)
    with pytest.warns(UserWarning, match="far off the"):
        on_255 = WaLLoCTransformer(output="tensor").fit(unit * 255)
    # its own scale: read, not refused, and the code is the unit codec's (KLT and companding gains follow the scale)
    np.testing.assert_allclose(on_255.transform(unit * 255), model.transform(unit), atol=0.05)
    assert model.transform(unit * 1.4).shape == (60, 1, 7, 7)  # overshoot near the scale is read, not refused


def test_constant_data_warns_instead_of_an_infinite_gain():
    with pytest.warns(UserWarning, match="no variance") as caught:
        model = WaLLoCTransformer().fit(np.full((4, 16, 16), 0.5))
    assert caught[0].filename == __file__  # points at the user's fit call, not at our internals
    Z = model.transform(np.random.default_rng(8).random((2, 16, 16)))
    assert np.abs(Z).max() < 127  # not saturated


def test_zero_mean_signals_below_the_gain_floor_warn_too():
    """Quiet zero-mean clips (a std under the encoder's 1e-12 gain floor) came back as weak (1e-14: codes up to 14)
    or all-zero codes (1e-16) with no warning: the 'no variance' test was relative to the mean, which is 0."""
    clips = np.sin(np.arange(4096) * np.linspace(0.01, 0.3, 8)[:, None])
    largest = {}
    for amplitude in (1e-8, 1e-14, 1e-16):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            model = WaLLoCTransformer(modality="audio", quantize=True).fit(amplitude * clips)
        warned = [w for w in caught if "nearly silent" in str(w.message)]
        assert bool(warned) == (amplitude < 1e-12), (amplitude, [str(w.message) for w in caught])
        largest[amplitude] = np.abs(model.transform(amplitude * clips)).max()
    assert largest[1e-8] == 127 and 0 < largest[1e-14] < 127  # still coded as well as the gain floor allows


def test_transform_before_fit():
    with pytest.raises(NotFittedError):
        WaLLoCTransformer().transform(np.zeros((2, 28, 28)))


def test_channel_count_must_match_fit(rgb):
    model = WaLLoCTransformer().fit(rgb)
    with pytest.raises(ValueError, match="1 channel\\(s\\), but WaLLoCTransformer was fitted on 3"):
        model.transform(rgb[:, :1])


@pytest.mark.parametrize("output", ["flat", "tensor"])
def test_mono_clips_for_a_stereo_codec_name_the_channels(output):
    """(N, T) is what load_audio_folder returns by default; scikit-learn's error named fit's 2 x T 'features'."""
    stereo = np.random.default_rng(0).uniform(-0.5, 0.5, (4, 2, 4096)).astype(np.float32)
    model = WaLLoCTransformer(output=output).fit(stereo)
    with pytest.raises(ValueError, match=r"mono audio \(N, T\), but WaLLoCTransformer was fitted on 2 channels.*"
                                         r"mono=False.*np.repeat\(X\[:, None\], 2, axis=1\)"):  # fmt: skip
        model.transform(stereo[:, 0])
    assert model.transform(np.repeat(stereo[:, :1], 2, axis=1)).shape[0] == 4


def test_flat_output_needs_the_fitted_size(rgb):
    model = WaLLoCTransformer().fit(rgb)
    with pytest.raises(ValueError, match="fitted on \\(32, 32\\)"):
        model.transform(rgb[:, :, :16, :16])


def test_signal_too_small_for_j():
    with pytest.raises(ValueError, match="signal too small for J=4"):
        WaLLoCTransformer(J=4).fit(np.zeros((2, 3, 8, 8)))


def test_a_depth_whose_covariance_cannot_fit_in_memory_is_refused_before_the_fit(monkeypatch):
    """An explicit J=15 of stereo clips asked for 160 GiB of covariance and eigenvectors: the machine ran out."""
    from walloc_features.features import walloc

    X = np.random.default_rng(0).uniform(-0.5, 0.5, (2, 2, 2**13)).astype(np.float32)
    monkeypatch.setattr(walloc, "physical_memory", lambda: 2**30)  # as on a 1 GiB machine, whatever this one has
    with pytest.raises(ValueError, match=r"J=12 gives 8192 wavelet packets \(2 channel\(s\)\); .* about 2 GiB, "
                                         r"more than this machine's 1 GiB: lower J"):
        WaLLoCTransformer(J=12, latent_dim=4, modality="audio").fit(X)
    assert WaLLoCTransformer(J=11, latent_dim=4, modality="audio").fit(X).J_ == 11  # 4096 packets: 0.6 GiB
    monkeypatch.setattr(walloc, "physical_memory", lambda: None)  # an OS that does not say: no check
    assert walloc._check_covariance_fits(2**20, 20, 1) is None


def test_latent_dim_larger_than_packets():
    with pytest.raises(ValueError, match="exceeds the 16 wavelet packets"):
        WaLLoCTransformer(latent_dim=17, J=2).fit(np.zeros((2, 8, 8)))


def test_invalid_parameter_names_the_parameter():
    with pytest.raises(ValueError, match="'output' parameter"):
        WaLLoCTransformer(output="sparse").fit(np.zeros((2, 8, 8)))


def test_inverse_transform_checks_latent_shape(digits):
    X, _ = digits
    model = WaLLoCTransformer().fit(X)
    with pytest.raises(ValueError, match="X has 48 features"):
        model.inverse_transform(np.zeros((2, 48)))


# -------------------------------------------------------------------------- persistence --
def test_save_and_load_round_trip_without_pickle(tmp_path, digits):
    X, _ = digits
    model = WaLLoCTransformer(decoder="conv", hidden_channels=8, max_epochs=1, random_state=0).fit(X[:64])
    path = model.save(tmp_path / "codec")
    assert sorted(p.name for p in path.iterdir()) == ["config.json", "model.safetensors"]
    assert json.loads((path / "config.json").read_text())["params"]["decoder"] == "conv"
    loaded = WaLLoCTransformer.load(path)
    np.testing.assert_array_equal(loaded.transform(X), model.transform(X))
    Z = model.transform(X[:10])
    np.testing.assert_array_equal(loaded.inverse_transform(Z), model.inverse_transform(Z))
    assert loaded.reduction_ == model.reduction_ and loaded.loss_curve_ == model.loss_curve_


def test_save_accepts_numpy_params_and_keeps_output_config(tmp_path, digits):
    X, _ = digits
    frame = pd.DataFrame(X.reshape(600, -1) / 255.0, columns=[f"px{i}" for i in range(784)])
    model = WaLLoCTransformer(latent_dim=np.int64(2), random_state=np.int64(5), input_shape=(28, 28))
    model.set_output(transform="pandas").fit(frame)
    loaded = WaLLoCTransformer.load(model.save(tmp_path / "codec"))
    assert loaded.get_params()["random_state"] == 5 and loaded.latent_dim_ == 2
    assert list(loaded.feature_names_in_[:2]) == ["px0", "px1"]
    pd.testing.assert_frame_equal(loaded.transform(frame), model.transform(frame))


def test_save_overwrites_an_earlier_save_completely(tmp_path, digits):
    X, _ = digits
    path = WaLLoCTransformer(reduction=4).fit(X).save(tmp_path / "codec")
    WaLLoCTransformer(reduction=16).fit(X).save(path)
    assert WaLLoCTransformer.load(path).latent_dim_ == 1
    assert sorted(p.name for p in path.iterdir()) == ["config.json", "model.safetensors"]


def test_a_save_interrupted_between_its_two_renames_is_refused_not_mixed(tmp_path, digits, monkeypatch):
    import walloc_features._files as files

    X, _ = digits
    path = WaLLoCTransformer(reduction=4).fit(X[:200]).save(tmp_path / "codec")
    rename, calls = os.replace, []

    def interrupted(source, target):  # the weights land, then the process dies before the config does
        calls.append(target)
        if len(calls) == 2:
            raise KeyboardInterrupt
        rename(source, target)

    monkeypatch.setattr(files.os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        WaLLoCTransformer(reduction=16).fit(X[:200]).save(path)
    monkeypatch.undo()
    with pytest.raises(ValueError, match="is not the weights .*config.json was saved with"):
        WaLLoCTransformer.load(path)


def test_a_damaged_or_edited_config_is_refused_a_relaid_one_is_not(tmp_path, digits):
    """One flipped bit turned input_gain 1.0 into 3.0: every code changed, and nothing said so."""
    X, _ = digits
    model = WaLLoCTransformer(reduction=16).fit(X[:200])
    path = model.save(tmp_path / "codec")
    text = (path / "config.json").read_text()
    (path / "config.json").write_text(json.dumps(json.loads(text)))  # laid out otherwise, same content: fine
    np.testing.assert_array_equal(WaLLoCTransformer.load(path).transform(X[:3]), model.transform(X[:3]))
    assert '"input_gain": 1.0' in text
    (path / "config.json").write_text(text.replace('"input_gain": 1.0', '"input_gain": 3.0'))
    with pytest.raises(ValueError, match="config.json does not match the digest it was saved with"):
        WaLLoCTransformer.load(path)


@pytest.mark.parametrize(
    "edit, message",
    [(lambda c: c["codec"].update(levels=16), r"do not fit the codec its config describes: .* in the config.s codec"),
     (lambda c: c["codec"].update(in_channels=3), r"the weights do not fit the codec its config describes"),
     (lambda c: c.pop("fitted"), r"is not a config save writes \(KeyError: 'fitted'\)"),
     (lambda c: c.update(format_version="2"), r"has a malformed format_version '2'")],
    ids=["levels 16", "3 channels", "no fitted", "string version"],
)
def test_a_config_that_does_not_fit_its_weights_is_refused_before_building_it(tmp_path, digits, edit, message):
    """Edited with its digest recomputed (the digest guards against damage, not intent): levels=16 asked torch
    for 16 GB before the weights were compared; the others gave torch's size mismatch, a KeyError, a TypeError."""
    from walloc_features.features.walloc import _config_digest

    X, _ = digits
    path = WaLLoCTransformer(J=2, latent_dim=4).fit(X[:50]).save(tmp_path / "codec")
    config = json.loads((path / "config.json").read_text())
    config.pop("config_sha256")
    edit(config)
    (path / "config.json").write_text(json.dumps({**config, "config_sha256": _config_digest(config)}))
    with pytest.raises(ValueError, match=message):
        WaLLoCTransformer.load(path)


@pytest.mark.skipif(torch.cuda.is_available(), reason="tells what happens where CUDA is missing")
def test_a_model_saved_on_cuda_loads_onto_the_cpu_with_a_warning_where_cuda_is_missing(tmp_path, digits):
    """It loaded with device="cuda" and failed at its first transform ("CUDA is not available")."""
    from walloc_features.features.walloc import _config_digest

    X, _ = digits
    model = WaLLoCTransformer(J=2, latent_dim=4).fit(X[:50])
    path = model.save(tmp_path / "codec")
    config = json.loads((path / "config.json").read_text())
    config.pop("config_sha256")
    config["params"]["device"] = "cuda"  # as a GPU machine saves it
    (path / "config.json").write_text(json.dumps({**config, "config_sha256": _config_digest(config)}))
    with pytest.warns(UserWarning, match="saved with device='cuda', but CUDA is not available: loaded onto the CPU"):
        loaded = WaLLoCTransformer.load(path)
    assert loaded.device == "cpu"
    np.testing.assert_array_equal(loaded.transform(X[:5]), model.transform(X[:5]))
    with pytest.raises(ValueError, match="CUDA is not available"):  # asked for, not defaulted to: refused
        WaLLoCTransformer.load(path, device="cuda")


def test_load_refuses_foreign_directories(tmp_path):
    with pytest.raises(FileNotFoundError, match="config.json"):
        WaLLoCTransformer.load(tmp_path)
    (tmp_path / "config.json").write_text('{"format": "something-else"}')
    (tmp_path / "model.safetensors").write_bytes(b"")
    with pytest.raises(ValueError, match="not a WaLLoCTransformer config"):
        WaLLoCTransformer.load(tmp_path)
    for damaged, message in [("[]", "a JSON array, not the config object"), ("null", "a JSON null"),
                             ('{"format": "wal', "not valid JSON"), (b"\xff\xfe{", "not valid JSON")]:
        # (were AttributeError, a bare JSONDecodeError / UnicodeDecodeError)
        path = tmp_path / "config.json"
        path.write_bytes(damaged) if isinstance(damaged, bytes) else path.write_text(damaged)
        with pytest.raises(ValueError, match=f"config.json (is|holds) {message}"):
            WaLLoCTransformer.load(tmp_path)


def test_load_onto_an_unusable_device_fails_at_load(tmp_path, digits):
    X, _ = digits
    WaLLoCTransformer(J=2, latent_dim=4).fit(X[:50]).save(tmp_path / "codec")
    with pytest.raises(ValueError, match="device='mps': this package runs on 'cpu' and 'cuda'"):
        WaLLoCTransformer.load(tmp_path / "codec", device="mps")
    if not torch.cuda.is_available():  # (on a GPU machine the load is tested in test_gpu.py)
        with pytest.raises(ValueError, match="device='cuda' was requested, but CUDA is not available"):
            WaLLoCTransformer.load(tmp_path / "codec", device="cuda")


def test_joblib_round_trip_of_a_fitted_pipeline(tmp_path, digits):
    X, y = digits
    pipe = Pipeline([("codec", WaLLoCTransformer()), ("clf", LogisticRegression(max_iter=200))]).fit(X, y)
    joblib.dump(pipe, tmp_path / "pipe.joblib")
    restored = joblib.load(tmp_path / "pipe.joblib")
    np.testing.assert_array_equal(restored.predict_proba(X), pipe.predict_proba(X))


def test_conv_decoder_fit_is_reproducible_with_random_state(digits):
    X, _ = digits
    kwargs = dict(decoder="conv", hidden_channels=8, max_epochs=2, random_state=3)
    a = WaLLoCTransformer(**kwargs).fit(X[:128])
    b = WaLLoCTransformer(**kwargs).fit(X[:128])
    assert a.loss_curve_ == b.loss_curve_ and a.n_iter_ == 2
    Z = a.transform(X[:16])
    np.testing.assert_array_equal(a.inverse_transform(Z), b.inverse_transform(Z))


def test_reversed_views_fit_and_transform_like_copies(digits):
    """np.flip(X) / X[::-1]: a one-row batch of them is 'C-contiguous' with a negative stride, which torch refuses."""
    X, _ = digits
    model = WaLLoCTransformer(batch_size=1).fit(np.flip(X[:33]))
    expected = model.transform(X[:33][::-1].copy())
    np.testing.assert_array_equal(model.transform(X[:33][::-1]), expected)
    batched = model.set_params(batch_size=32).transform(X[:33][::-1])  # a last batch of one reversed row
    np.testing.assert_allclose(batched, expected, atol=1e-4)  # another batch size: other float sums


def test_a_cpu_fit_leaves_every_gpu_alone(digits, monkeypatch):
    """Forking the RNG of every CUDA device made a CPU fit create a context (and memory) on each GPU."""
    from walloc_features._device import seeded

    X, _ = digits
    touched = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "get_rng_state", lambda device="cuda": touched.append(device))
    monkeypatch.setattr(torch.cuda, "set_rng_state", lambda state, device="cuda": touched.append(device))
    monkeypatch.setattr(torch.cuda, "manual_seed_all", lambda seed: touched.append("all"))
    WaLLoCTransformer(random_state=0, device="cpu").fit(X[:64])
    with seeded(0, torch.device("cpu")):  # the classifiers seed with it too (skorch cannot train with CUDA faked)
        first = torch.rand(3)
    assert touched == []
    with seeded(0, torch.device("cpu")):
        assert torch.equal(torch.rand(3), first)


def test_a_diverged_decoder_training_is_refused_not_returned(digits):
    """A learning rate too large for the decoder gave a fit that returned, and NaN reconstructions."""
    X, _ = digits
    model = WaLLoCTransformer(decoder="conv", hidden_channels=4, max_epochs=3, learning_rate=1e4, random_state=0)
    with pytest.raises(ValueError, match=r"training diverged in epoch [1-3] of 3: .*\(now 10000\)"):
        model.fit(X[:64])
    assert not hasattr(model, "codec_")
    model.set_params(learning_rate=1e-3).fit(X[:64])
    assert np.isfinite(model.inverse_transform(model.transform(X[:8]))).all()


def test_a_decoder_training_that_ends_worse_than_it_started_is_undone_with_a_warning(digits):
    """Too high a learning rate grew the loss a hundredfold but kept it finite: fit returned a conv decoder
    10 dB worse than the linear decoder it started from, without a word."""
    X, _ = digits
    linear = WaLLoCTransformer(reduction=16).fit(X[:300])
    conv = WaLLoCTransformer(reduction=16, decoder="conv", max_epochs=3, learning_rate=0.03, random_state=0)
    with pytest.warns(UserWarning, match=r"above the .* of the linear decoder .*kept; lower learning_rate \(now 0.03"):
        conv.fit(X[:300])
    assert len(conv.loss_curve_) == 3  # the training ran, and is recorded
    Z = conv.transform(X[300:])
    np.testing.assert_allclose(conv.inverse_transform(Z), linear.inverse_transform(Z), atol=1e-6)
    with warnings.catch_warnings():  # the usual learning rate improves on the linear decoder: kept, no warning
        warnings.simplefilter("error")
        trained = conv.set_params(learning_rate=1e-3).fit(X[:300])
    assert trained.score(X[300:]) > linear.score(X[300:]) + 0.5



def test_a_decoder_training_that_ends_slightly_worse_is_undone_quietly(digits, monkeypatch):
    """A growth within WARN_GROWTH (0.506 against 0.506 in a short training on a few samples) is noise, not news:
    the starting weights come back without a warning."""
    from walloc_features.codecs import training

    X, _ = digits
    monkeypatch.setattr(training, "WARN_GROWTH", 1e9)  # every growth counts as slight
    linear = WaLLoCTransformer(reduction=16).fit(X[:300])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        conv = WaLLoCTransformer(reduction=16, decoder="conv", max_epochs=3, learning_rate=0.03, random_state=0)
        conv.fit(X[:300])
    Z = conv.transform(X[300:])
    np.testing.assert_allclose(conv.inverse_transform(Z), linear.inverse_transform(Z), atol=1e-6)


def test_ctrl_c_during_decoder_training_stops_the_fit(digits, monkeypatch):
    """skorch swallows KeyboardInterrupt: fit went on to return a half-trained codec as if it had finished."""
    from walloc_features.codecs import training

    X, _ = digits
    calls, forward = [], training._PacketObjective.forward

    def interrupt_in_the_second_epoch(objective, x):
        calls.append(len(x) if objective.training else 0)  # (not the eval-mode check of the starting decoder)
        if sum(calls) > 64:  # the first epoch saw all 64 digits
            raise KeyboardInterrupt
        return forward(objective, x)

    monkeypatch.setattr(training._PacketObjective, "forward", interrupt_in_the_second_epoch)
    model = WaLLoCTransformer(decoder="conv", hidden_channels=4, max_epochs=5, batch_size=32)
    with pytest.raises(KeyboardInterrupt, match="training interrupted in epoch 2 of 5"):
        model.fit(X[:64])
    assert not hasattr(model, "codec_")


def test_conv_decoder_trains_inside_a_callers_inference_mode(digits):
    """Evaluation code often runs under torch.inference_mode(); fit failed there with a grad_fn error."""
    X, _ = digits
    with torch.inference_mode():
        model = WaLLoCTransformer(decoder="conv", hidden_channels=4, max_epochs=1, random_state=0).fit(X[:64])
        zeros = psnr(X[64:96] / 255.0, np.zeros((32, 28, 28)), 1.0)  # 9.6 dB: an output of nothing
        assert model.score(X[64:96]) > zeros + 3  # measured 15.2 dB after one epoch on 64 digits


# ----------------------------------------------------------------------- scikit-learn API --
def test_clone_keeps_params_and_drops_fit(digits):
    X, _ = digits
    model = WaLLoCTransformer(reduction=4, latent_bits=6).fit(X)
    copy = clone(model)
    assert copy.get_params() == model.get_params()
    assert not hasattr(copy, "codec_")


def test_grid_search_over_reduction(digits):
    X, y = digits
    pipe = Pipeline([("codec", WaLLoCTransformer()), ("clf", LogisticRegression(max_iter=200))])
    search = GridSearchCV(pipe, {"codec__reduction": [4, 16]}, cv=2).fit(X, y)
    scores = dict(zip(search.cv_results_["param_codec__reduction"], search.cv_results_["mean_test_score"], strict=True))
    assert scores[4] > 0.75 and scores[16] > 0.7
    assert search.best_estimator_.named_steps["codec"].reduction_ == search.best_params_["codec__reduction"]


def test_set_output_pandas_in_flat_mode(digits):
    X, _ = digits
    frame = WaLLoCTransformer().set_output(transform="pandas").fit(X).transform(X[:5])
    assert isinstance(frame, pd.DataFrame) and frame.shape == (5, 49)
    assert list(frame.columns[:2]) == ["z0_0_0", "z0_0_1"]
    with pytest.raises(ValueError, match='needs output="flat"'):
        WaLLoCTransformer(output="tensor").set_output(transform="pandas").fit(X).transform(X[:5])


def test_verbose_shows_progress(capsys, digits):
    X, _ = digits
    WaLLoCTransformer(decoder="conv", hidden_channels=4, max_epochs=1, verbose=True).fit(X[:64])
    captured = capsys.readouterr()
    assert "train_loss" in captured.out  # skorch's epoch table


def test_verbose_bars_only_passes_of_several_batches(capsys, digits):
    """fit's one-batch probes drew six '0/1' bars that vanished at once: noise beside the real ones."""
    X, _ = digits
    model = WaLLoCTransformer(verbose=True).fit(X[:64])
    assert "/1 [" not in capsys.readouterr().err
    model.set_params(batch_size=16).transform(X[:64])
    assert "WaLLoC encode:" in capsys.readouterr().err  # a bar of 4 batches


def test_depth_for_tiny_samples_falls_back_to_the_shallowest_that_has_enough_packets():
    """5x5 pads to 6x6 at one level and to 8x8 at two, both past the 12.5% allowance: the shallower depth, which
    pads least, is taken (the deepest would quadruple the padded area's share)."""
    X = np.random.default_rng(0).random((40, 1, 5, 5)).astype(np.float32)
    with pytest.warns(UserWarning, match=r"reduction=2 is not reachable .* at J=1; the achieved reduction_ is 1.39"):
        model = WaLLoCTransformer(reduction=2, max_epochs=1, random_state=0).fit(X)
    assert model.J_ == 1 and model.latent_shape_ == (2, 3, 3)


def test_score_is_the_mean_psnr_of_the_clipped_quantized_round_trip():
    """score() is what its docstring says, on saturated data where the clip matters: the mean per-image PSNR of
    inverse_transform(quantized codes), which clips to [0, 1]; and 8-bit codes span (-127, 127)."""
    X = (np.random.default_rng(1).random((64, 1, 16, 16)) > 0.5).astype(np.float32)
    model = WaLLoCTransformer(reduction=4, quantize=True, random_state=0).fit(X)
    assert model.code_range_ == (-127, 127)
    round_trip = model.inverse_transform(model.transform(X))
    assert round_trip.min() == 0 and round_trip.max() == 1  # the clip binds
    assert model.score(X) == pytest.approx(np.mean(psnr(X, round_trip, 1.0, axis=(1, 2, 3))), abs=1e-5)


# ------------------------------------------------------------ edges found by mutation testing --
@pytest.mark.parametrize("shape, modality", [((2, 2, 64), "audio"), ((2, 2, 63), "image")])
def test_a_time_axis_exactly_32x_the_one_before_it_is_audio(shape, modality):
    """The documented 3-D rule: ``(N, C, T)`` audio when T >= 32 C, else ``(N, H, W)`` grayscale images."""
    X = np.random.default_rng(0).random(shape).astype(np.float32)
    assert RawSignal().fit(X).modality_ == modality


@pytest.mark.parametrize("channels", [1, 4])
def test_grayscale_and_rgba_channel_last_images_are_refused_too(channels):
    with pytest.raises(ValueError, match=r"looks channel-last .*X\.transpose\(0, 3, 1, 2\)"):
        WaLLoCTransformer().fit(np.zeros((4, 32, 32, channels), dtype=np.uint8))


def test_tensor_output_at_another_length_inverts_to_signals_not_rows():
    """Rows of the fitted length invert to rows; clips of another length (tensor mode) to (N, C, T) signals."""
    X = np.random.default_rng(0).uniform(-0.5, 0.5, (8, 256)).astype(np.float32)
    model = WaLLoCTransformer(J=2, latent_dim=2, input_shape=(1, -1), output="tensor").fit(X)
    assert model.inverse_transform(model.transform(X[:2])).shape == (2, 256)
    longer = np.tile(X[:2], 2)
    assert model.inverse_transform(model.transform(longer)).shape == (2, 1, 512)


@pytest.mark.parametrize("modality", ["image", "audio"])
def test_floats_far_below_the_fitted_scale_are_refused_as_those_above(modality):
    """Negated PCM after an int16 fit (or negated pixels after uint8): refused, not encoded saturated."""
    rng = np.random.default_rng(0)
    if modality == "audio":
        fitted = (rng.uniform(-0.3, 0.3, (6, 1, 2048)) * 32767).astype(np.int16)
        model = WaLLoCTransformer(J=2, latent_dim=2).fit(fitted)
        far = -np.abs(fitted).astype(np.float32)  # the int16 values as floats, all below zero
    else:
        fitted = rng.integers(0, 256, (6, 1, 16, 16), dtype=np.uint8)
        model = WaLLoCTransformer(J=2, latent_dim=2).fit(fitted)
        far = -fitted.astype(np.float32)
    with pytest.raises(ValueError, match="far off the .* scale: WaLLoCTransformer was fitted on"):
        model.transform(far)


@pytest.mark.parametrize("name", ["WaLLoCTransformer", "ResolutionReducer", "DCTTransformer", "ResidualVQ"])
def test_latents_with_a_channel_missing_are_refused_in_tensor_mode(name):
    """Flat rows of the wrong width were refused; a (N, C - 1, h, w) tensor reached the decoder."""
    import walloc_features

    X = np.random.default_rng(0).random((40, 1, 16, 16)).astype(np.float32)
    kwargs = {"ResidualVQ": dict(codebook_size=8, quantize=False), "WaLLoCTransformer": dict(J=2)}.get(name, {})
    model = getattr(walloc_features, name)(reduction=4, output="tensor", **kwargs).fit(X)
    Z = model.transform(X[:2])
    with pytest.raises(ValueError, match=r"expected latents \(N, \d+\) or \(N, "):
        model.inverse_transform(Z[:, :-1])
