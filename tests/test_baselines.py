"""Baselines beside WaLLoC: shapes, reductions, inverses, and the scikit-learn contract."""

import io
import re
import warnings

import joblib
import numpy as np
import pytest
import torch
from PIL import Image
from sklearn.base import clone
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline

from walloc_features import (
    DCTTransformer,
    EnCodecTransformer,
    JPEGCoefficients,
    RawSignal,
    ResidualVQ,
    ResolutionReducer,
    WaLLoCTransformer,
    matched_baselines,
)
from walloc_features.evaluation import budget_table, psnr
from walloc_features.features._jpeg import zigzag_order


@pytest.fixture(scope="module")
def rgb(photos, random_crops):
    return random_crops(list(photos.values()), 48, 32, np.random.default_rng(0))


@pytest.fixture(scope="module")
def stereo():
    """Two-tone stereo clips, (24, 2, 4096) float32."""
    rng = np.random.default_rng(1)
    t = np.arange(4096) / 8000
    clips = [np.stack([0.3 * np.sin(2 * np.pi * f * t), 0.2 * np.sin(2 * np.pi * 1.5 * f * t)])
             for f in rng.uniform(50, 800, 24)]  # fmt: skip
    return (np.stack(clips) + 0.01 * rng.standard_normal((24, 2, 4096))).astype(np.float32)


def tiny_encodec(path, **config):
    """A tiny random EnCodec saved in ``path`` the way a downloaded checkpoint is laid out (no hub involved): 75
    frames/s and 1024 codes, as the 24 kHz model, unless ``config`` says otherwise."""
    from transformers import EncodecConfig, EncodecModel

    torch.manual_seed(0)
    defaults = dict(sampling_rate=2400, upsampling_ratios=[8, 4], num_filters=4, hidden_size=16, codebook_dim=16,
                    num_lstm_layers=1, num_residual_layers=1)  # fmt: skip
    model = EncodecModel(EncodecConfig(**{**defaults, **config}))
    for layer in model.quantizer.layers:  # random codebooks, so codes differ between inputs (zeros: all 0)
        layer.codebook.embed.normal_()
    model.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def encodec_dir(tmp_path_factory):
    return tiny_encodec(tmp_path_factory.mktemp("encodec"))


# ----------------------------------------------------------------- shapes and reductions --
IMAGE_CASES = [
    (ResolutionReducer(16), (3, 8, 8)),
    (DCTTransformer(16), (12, 4, 4)),  # keep 4 of 64 per block and channel
    (ResidualVQ(16, codebook_size=16, random_state=0), (3, 8, 8)),  # 48 samples per patch / 16
    (WaLLoCTransformer(16), (12, 4, 4)),
]


@pytest.mark.parametrize("transformer, latent_shape", IMAGE_CASES, ids=lambda t: type(t).__name__)
def test_image_shapes_reduction_and_inverse(rgb, transformer, latent_shape):
    model = clone(transformer).set_params(output="tensor").fit(rgb)
    Z = model.transform(rgb)
    assert model.latent_shape_ == latent_shape and Z.shape == (48, *latent_shape)
    assert model.reduction_ == 16
    assert model.inverse_transform(Z).shape == rgb.shape
    flat = clone(transformer).fit(rgb)
    assert flat.transform(rgb).shape == (48, int(np.prod(latent_shape)))
    assert len(flat.get_feature_names_out()) == int(np.prod(latent_shape))


AUDIO_CASES = [
    (ResolutionReducer(16), (2, 256), 0.5),
    (DCTTransformer(16), (32, 16), 0.5),  # 256-sample frames, keep 16 per frame and channel
    (ResidualVQ(16, codebook_size=16, random_state=0), (4, 128), 7.0),  # 64 samples per frame / 16
    (WaLLoCTransformer(16), (32, 16), 4.0),
]


@pytest.mark.parametrize("transformer, latent_shape, gain", AUDIO_CASES, ids=lambda t: type(t).__name__)
def test_audio_shapes_reduction_and_inverse(stereo, transformer, latent_shape, gain):
    """The reconstruction beats an all-zero output (20.9 dB on these clips; the wrong clips score 17.9) by at
    least ``gain`` dB; measured +0.8 for resolution and DCT at 16x (they keep the tones under 250 Hz, most
    tones lie above), +5.7 for WaLLoC, +9.2 for ResidualVQ. (A floor of 10 dB passed an inverse that
    returned zeros.)"""
    model = clone(transformer).set_params(output="tensor").fit(stereo)
    assert model.modality_ == "audio"
    assert model.transform(stereo).shape == (24, *latent_shape) and model.reduction_ == 16
    recon = model.inverse_transform(model.transform(stereo))
    assert recon.shape == stereo.shape
    assert psnr(stereo, recon, 2.0) > psnr(stereo, np.zeros_like(stereo), 2.0) + gain


@pytest.mark.parametrize("quantize", [False, True])
@pytest.mark.parametrize(
    "transformer",
    [ResolutionReducer(16), DCTTransformer(16), WaLLoCTransformer(16), RawSignal(),
     ResidualVQ(16, codebook_size=16, random_state=0), ResidualVQ(1, codebook_size=8, patch_size=1, random_state=0)],
    ids=["resolution", "dct", "walloc", "raw", "rvq", "rvq-1-sample-patches"],
)
@pytest.mark.parametrize("output", ["flat", "tensor"])
@pytest.mark.parametrize("channels", [1, 2])
def test_transform_and_inverse_leave_the_callers_arrays_as_they_were(stereo, transformer, quantize, output, channels):
    """Latents scaled out of range make the inverse clip: it must clip its own copy (ResidualVQ of 1-sample
    audio patches clipped the caller's latents to [-1, 1])."""
    params = {"output": output} | ({"quantize": quantize} if "quantize" in transformer.get_params() else {})
    audio = np.ascontiguousarray(stereo[:, :channels])
    model = clone(transformer).set_params(**params).fit(audio)
    X = audio.copy()
    Z = model.transform(X)
    np.testing.assert_array_equal(X, audio)
    Z = Z * 8 if not quantize else Z  # the clips peak near 0.5: 8x takes them out of range
    kept = Z.copy()
    model.inverse_transform(Z)
    np.testing.assert_array_equal(Z, kept)


@pytest.mark.parametrize(
    "transformer", [t for t, _ in IMAGE_CASES if "device" in t.get_params()] + [RawSignal()],  # (k-means: CPU only)
    ids=lambda t: type(t).__name__,
)
def test_every_signal_transformer_refuses_a_device_it_does_not_run_on(rgb, transformer):
    """RawSignal, which computes nothing on a device, accepted device="mps" where its siblings refused it."""
    with pytest.raises(ValueError, match="device='mps': this package runs on 'cpu' and 'cuda'"):
        clone(transformer).set_params(device="mps").fit(rgb)


@pytest.mark.parametrize("transformer", [t for t, _ in IMAGE_CASES], ids=lambda t: type(t).__name__)
def test_a_list_of_samples_of_different_shapes_names_the_odd_sample(rgb, transformer):
    """numpy's own message ("inhomogeneous shape after 2 dimensions") named neither the sample nor the remedy."""
    model = clone(transformer).fit(rgb)
    ragged = [rgb[0], rgb[1], rgb[2][:, :, : rgb.shape[3] // 2]]
    message = re.escape(f"sample 0 is {tuple(rgb.shape[1:])}, sample 2 is {(3, rgb.shape[2], rgb.shape[3] // 2)}")
    for call in (model.transform, clone(transformer).fit):
        with pytest.raises(ValueError, match=message):
            call(ragged)
    nested = [rgb[0].tolist(), [[row[:-1] if r == 5 else row for r, row in enumerate(c)] for c in rgb[1].tolist()]]
    with pytest.raises(ValueError, match="sample 1 has rows of different lengths"):  # numpy's words got through
        model.transform(nested)


@pytest.mark.parametrize("transformer", [t for t, _ in IMAGE_CASES], ids=lambda t: type(t).__name__)
def test_a_list_of_signal_label_pairs_is_named_as_such(rgb, transformer):
    """A dataset's items, list(dataset), were called "rows of different lengths" and the remedy was not said."""
    model = clone(transformer).fit(rgb)
    pairs = [(torch.from_numpy(np.ascontiguousarray(x)), label) for label, x in enumerate(rgb[:3])]
    message = re.escape(f"(signal, label) pairs (sample 0 is a tuple of a {tuple(rgb.shape[1:])} signal")
    for call in (model.transform, clone(transformer).fit):
        with pytest.raises(ValueError, match=message):
            call(pairs)
    X, _ = zip(*pairs, strict=True)  # the remedy the message gives
    np.testing.assert_array_equal(model.transform(X), model.transform(rgb[:3]))


@pytest.mark.parametrize("transformer", [t for t, _ in IMAGE_CASES], ids=lambda t: type(t).__name__)
def test_pipeline_clone_and_joblib(tmp_path, mnist, transformer):
    X, y = mnist[0][:400], mnist[1][:400]
    pipe = Pipeline([("features", clone(transformer)), ("clf", LogisticRegression(max_iter=300))]).fit(X, y)
    assert pipe.score(X, y) > 0.5  # it learns (chance: 0.1); RVQ's indices are categorical, hence no more
    joblib.dump(pipe, tmp_path / "pipe.joblib")
    np.testing.assert_array_equal(joblib.load(tmp_path / "pipe.joblib").predict_proba(X), pipe.predict_proba(X))
    assert clone(pipe).get_params()["features"].get_params() == transformer.get_params()


SCALE_CASES = [(t, q) for t in [t for t, _ in IMAGE_CASES] + [RawSignal()] for q in (False, True)
               if not q or "quantize" in t.get_params()]  # fmt: skip


@pytest.mark.parametrize("transformer, quantize", SCALE_CASES,
                         ids=lambda p: ("codes" if p else "latents") if isinstance(p, bool) else type(p).__name__)
def test_float_pixels_on_0_255_after_a_uint8_fit_are_refused(mnist, transformer, quantize):
    """uint8 pixels are read as x / 255, floats as they are: the same digits as float32 on 0-255 encoded as a
    255x brighter image (quantized codes saturated) without a word. The error names the fix, which then gives
    the uint8 features."""
    X = mnist[0][:64]
    model = clone(transformer).set_params(**({"quantize": True} if quantize else {})).fit(X)
    message = (rf"X \(float32\) spans \[0, 255\] in samples 0-\d+, far off the \[0.0, 1.0\] image scale: "
               rf"{type(transformer).__name__} was fitted on uint8 samples, which it divides by 255, .* "
               r"Divide X by 255")
    with pytest.raises(ValueError, match=message):
        model.transform(X.astype(np.float32))
    expected = model.transform(X).astype(np.float64)  # float32 rounding of x / 255; codes may round one step apart
    np.testing.assert_allclose(model.transform(X / np.float32(255)), expected, rtol=1e-4, atol=1 if quantize else 1e-3)
    model.transform(np.clip(X / np.float32(255) + 0.2, 0, 1.2))  # a brightened image a little past 1 is read as is


def test_float_scale_is_checked_in_every_batch_of_a_memmap_and_not_for_latents(tmp_path, stereo):
    """int16 PCM in fit, then a float32 memmap whose last batch holds PCM-scale values: refused at that batch.
    Latents handed to inverse_transform are not samples, whatever their range."""
    pcm = np.round(stereo * 32767).astype(np.int16)
    model = WaLLoCTransformer(batch_size=8, output="tensor").fit(pcm)
    stored = np.memmap(tmp_path / "clips.f32", dtype=np.float32, mode="w+", shape=stereo.shape)
    stored[:] = pcm / np.float32(32768)  # the same samples as floats
    np.testing.assert_allclose(model.transform(stored), model.transform(pcm), rtol=1e-4, atol=1e-3)
    stored[20] *= 32767
    stored.flush()
    with pytest.raises(ValueError, match=r"in samples 16-23, far off the \[-1.0, 1.0\] audio scale: .* int16 samples, "
                                         r"which it divides by 32768"):  # fmt: skip
        model.transform(stored)
    latents = model.transform(pcm)
    assert np.abs(latents).max() > 2  # beyond the audio scale, and rightly decoded
    assert model.inverse_transform(latents).shape == stereo.shape
    dct = DCTTransformer(16, output="tensor").fit(pcm)
    assert dct.inverse_transform(dct.transform(pcm) * 100).shape == stereo.shape


# --------------------------------------------------------------------------------- DCT --
@pytest.mark.parametrize("color", ["ycbcr", "rgb"])
def test_dct_with_every_coefficient_is_lossless(rgb, color):
    model = DCTTransformer(keep=64, color=color).fit(rgb)
    np.testing.assert_allclose(model.inverse_transform(model.transform(rgb)), rgb / 255.0, atol=1e-5)


def test_dct_audio_with_every_coefficient_is_lossless(stereo):
    odd = stereo[:, :, :1000]  # padded to whole frames, cropped back
    model = DCTTransformer(keep=256).fit(odd)
    np.testing.assert_allclose(model.inverse_transform(model.transform(odd)), odd, atol=1e-5)


def test_dct_quality_tables_are_libjpegs_for_every_quality(tmp_path, photos):
    """The tables DCTTransformer divides by are the ones libjpeg writes (read back with jpeglib)."""
    import jpeglib

    image = photos["coffee"][:16, :16]
    for quality in range(1, 101):
        path = tmp_path / f"q{quality}.jpg"
        Image.fromarray(image).save(path, quality=quality, subsampling=0)
        written = jpeglib.read_dct(str(path)).qt  # natural order, luminance then chrominance
        steps = DCTTransformer(keep=64, quality=quality).fit(image.transpose(2, 0, 1)[None]).steps_
        inverse_zigzag = np.argsort(zigzag_order())
        np.testing.assert_array_equal(steps[0][inverse_zigzag].reshape(8, 8), written[0], err_msg=f"q={quality}")
        np.testing.assert_array_equal(steps[1][inverse_zigzag].reshape(8, 8), written[1], err_msg=f"q={quality}")


@pytest.mark.parametrize("quality", [30, 75, 100])
def test_dct_codes_equal_libjpegs_coefficients(tmp_path, photos, quality):
    """Same pixels in: our quantized DCT and the coefficients libjpeg stores agree to its integer DCT."""
    gray = photos["astronaut"][:64, :64, 1]
    path = tmp_path / "gray.jpg"
    Image.fromarray(gray).save(path, quality=quality)
    dct = DCTTransformer(keep=64, quality=quality, quantize=True, output="tensor")
    ours = dct.fit(gray[None]).transform(gray[None])
    stored = JPEGCoefficients(keep=64, output="tensor").fit([path]).transform([path])
    difference = np.abs(ours.astype(int) - stored)
    assert difference.max() <= 1  # libjpeg's ISLOW integer DCT rounds differently near .5
    assert (difference == 0).mean() > 0.9  # measured: 93.5% identical at quality 100


@pytest.mark.parametrize("keep", [4, 15, 16, 40])
def test_dct_kept_coefficients_are_scipys_and_cost_only_their_own_products(keep):
    """Few kept coefficients are computed alone, as one product with their basis functions (the full block
    transform was counted, and paid: 32,768 FLOPs a 28x28 digit at 16x for 8,192 of kept work; 8,257,536 a
    one-second clip for 516,096): the same coefficients as scipy's DCT of each block, at zig-zag positions."""
    from scipy.fft import dct, dctn

    from walloc_features.evaluation import transform_flops_per_sample

    X = np.random.default_rng(9).random((3, 1, 28, 28)).astype(np.float32)
    model = DCTTransformer(keep=keep, color="rgb", output="tensor").fit(X)
    padded = np.pad(X[:, 0].astype(np.float64) * 255 - 128, ((0, 0), (0, 4), (0, 4)), mode="symmetric")
    blocks = padded.reshape(3, 4, 8, 4, 8).transpose(0, 1, 3, 2, 4)
    expected = dctn(blocks, axes=(-2, -1), norm="ortho").reshape(3, 4, 4, 64)[..., zigzag_order(8)[:keep]]
    np.testing.assert_allclose(model.transform(X), np.moveaxis(expected, -1, 1), atol=2e-3)
    kept_work = 2 * keep * 64 * 16  # the kept basis functions on 16 blocks
    assert transform_flops_per_sample(model, X) == (kept_work if keep < 16 else 2 * 2 * 8**3 * 16)

    clip = np.random.default_rng(9).uniform(-0.5, 0.5, (2, 1, 16000)).astype(np.float32)
    audio = DCTTransformer(16, modality="audio", output="tensor").fit(clip)
    frames = np.pad(clip[:, 0].astype(np.float64) * 32768, ((0, 0), (0, 128)), mode="symmetric").reshape(2, 63, 256)
    np.testing.assert_allclose(audio.transform(clip), np.moveaxis(dct(frames, norm="ortho")[..., :16], -1, 1),
                               rtol=1e-5, atol=0.05)  # fmt: skip
    assert transform_flops_per_sample(audio, clip) == 2 * 16 * 256 * 63


def test_dct_warns_when_its_blocks_miss_the_reduction_not_when_edges_pad():
    """DCT never warned: reduction=100 gave 64x (one coefficient of 64), 1x1 images became 4 coefficients each
    (reduction_ 0.25, the output 4x the input); padding 28x28 digits to whole blocks (12.25x at 16x) is the
    documented rule and stays quiet, as JPEGCoefficients is."""
    with pytest.warns(UserWarning, match=r"reduction=100 is not reachable .* 1 of 64 coefficients .* is 64"):
        DCTTransformer(100).fit(np.zeros((2, 3, 32, 32), np.uint8))
    with pytest.warns(UserWarning, match=r"reduction=16 is not reachable for samples of shape \(3, 1, 1\)"):
        DCTTransformer(16).fit(np.zeros((2, 3, 1, 1), np.uint8))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert DCTTransformer(16).fit(np.zeros((2, 1, 28, 28), np.uint8)).reduction_ == 12.25
        DCTTransformer(keep=1).fit(np.zeros((2, 3, 32, 32), np.uint8))  # keep given: nothing was requested
    # padding that more than halves the reduction is worth a word: stereo clips read as 2-row images gave 4x
    with pytest.warns(UserWarning, match=r"achieved reduction_ is 4, most of it lost to padding the samples to whole"):
        DCTTransformer(16, modality="image").fit(np.zeros((2, 2, 16000), np.float32))
    with pytest.warns(UserWarning, match=r"1 of 64 coefficients a block; the achieved reduction_ is 49$"):
        DCTTransformer(128).fit(np.zeros((2, 1, 28, 28), np.uint8))  # the blocks' cap, not padding, is the cause


def test_dct_audio_codes_do_not_overflow(stereo):
    loud = np.clip(stereo * 3, -1, 1)  # DC of a 256-sample frame reaches 32768 * 16
    model = DCTTransformer(keep=256, quantize=True, output="tensor").fit(loud)
    codes = model.transform(loud)
    assert model.bits_per_code_ > 16 and codes.dtype == np.int32
    assert np.abs(model.inverse_transform(codes) - loud).max() < 1e-4  # rounding to 1/32768 steps only


def test_dct_codes_saturate_instead_of_wrapping_around():
    """Pixels on 0-255 given as floats overflow int16: codes stay at the bound of code_range_, with a warning."""
    X = np.random.default_rng(4).random((2, 1, 16, 16)).astype(np.float32) * 255
    with pytest.warns(UserWarning, match=r"far off the \[0.0, 1.0\] image scale .* divide 8-bit pixels by 255"):
        model = DCTTransformer(keep=1, quantize=True, output="tensor").fit(X)
    with pytest.warns(UserWarning, match="8 of 8 codes fell outside code_range_ .* floats? pixels on 0-255"):
        Z = model.transform(X)
    assert (Z == model.code_range_[1]).all()  # saturated high, not wrapped to arbitrary (negative) values
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model.transform(X / 255)  # the [0, 1] scale: no warning


@pytest.mark.parametrize("quality", [None, 1, 10, 50, 75, 90, 100])
def test_dct_bits_per_code_are_those_of_its_code_range(rgb, quality):
    """Level-shifted pixels reach 128, not 255: the bits (and budget tables' bits per sample) were one too many."""
    model = DCTTransformer(quality=quality, quantize=True).fit(rgb)
    low, high = model.code_range_
    assert model.bits_per_code_ == int(np.ceil(np.log2(high - low + 1)))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # codes beyond code_range_ would be clipped with a "saturated" warning
        codes = model.transform(rgb)
    # the smallest type holding code_range_ (int16 held 8-bit codes of quality <= 50 at twice their size)
    assert codes.dtype == (np.int8 if model.bits_per_code_ <= 8 else np.int16)
    assert np.iinfo(codes.dtype).min <= low and high <= np.iinfo(codes.dtype).max


def test_dct_code_range_is_reached_and_never_exceeded_by_extreme_blocks():
    """Blocks at 0 or 255 along each basis vector's signs reach every coefficient's extremes: the codes span
    [-1024, 1020], JPEG's 11 bits (a symmetric +-1024 counted 12 and overstated the DCT baseline's rate)."""
    grid = (2 * np.arange(8) + 1) * np.pi / 16
    basis = np.cos(np.outer(np.arange(8), grid))  # (frequency, position)
    signs = np.einsum("ux,vy->uvxy", basis, basis).reshape(64, 8, 8) > 1e-9
    grey = np.concatenate([signs, ~signs]).astype(np.uint8)[:, None] * 255  # (128, 1, 8, 8)
    colour = np.stack([grey[:, 0], 255 - grey[:, 0], grey[:, 0]], axis=1)  # chroma at its extremes too
    for X in (grey, colour):
        model = DCTTransformer(keep=64, quantize=True, output="tensor").fit(X)
        assert model.code_range_ == (-1024, 1020) and model.bits_per_code_ == 11
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # a code beyond code_range_ would be saturated with a warning
            codes = model.transform(X)
        if X is grey:
            assert codes.min() == -1024 and codes.max() == 1020  # the DC of a black block; the (4, 4) checkerboard


def test_dct_colour_transform_stays_as_fitted_until_the_next_fit(rgb):
    model = DCTTransformer(keep=64, output="tensor").fit(rgb)
    before = model.transform(rgb)
    model.set_params(color="rgb")  # read at the next fit, like keep and quality
    np.testing.assert_array_equal(model.transform(rgb), before)
    np.testing.assert_allclose(model.inverse_transform(before), rgb.astype(np.float32) / 255, atol=1e-5)
    assert model.fit(rgb).color_ == "rgb" and not np.array_equal(model.transform(rgb), before)


def test_dct_errors():
    with pytest.raises(ValueError, match="does not apply to audio"):
        DCTTransformer(quality=50).fit(np.zeros((2, 1, 512), np.float32))
    with pytest.raises(ValueError, match="exceeds the 64 coefficients"):
        DCTTransformer(keep=65).fit(np.zeros((2, 16, 16)))


# -------------------------------------------------------------------------------- JPEG --
def jpeg_bytes(image, **save_kwargs):
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG", **save_kwargs)
    return buffer.getvalue()


def pillow_decode(data):
    decoded = np.asarray(Image.open(io.BytesIO(data)), dtype=np.float64) / 255
    return decoded[None] if decoded.ndim == 2 else decoded.transpose(2, 0, 1)


def test_jpeg_grayscale_inverse_equals_pillows_decode(photos):
    data = jpeg_bytes(photos["astronaut"][:256, :256, 1], quality=75)
    model = JPEGCoefficients(keep=64, quantize=False, output="tensor").fit([data])
    recon = model.inverse_transform(model.transform([data]))[0]
    # measured: 0.56 / 255, i.e. libjpeg's rounding to uint8
    assert np.abs(recon - pillow_decode(data)).max() <= 1 / 255


@pytest.mark.parametrize("subsampling, floor_db", [(0, 50.0), (1, 48.0), (2, 48.0)], ids=["4:4:4", "4:2:2", "4:2:0"])
def test_jpeg_colour_inverse_is_close_to_pillows_decode(photos, subsampling, floor_db):
    """Measured 53.1 dB (4:4:4) and 52.5 dB (4:2:0): libjpeg rounds and clamps YCbCr to uint8
    before converting to RGB, and upsamples chroma with its own filter."""
    data = jpeg_bytes(photos["astronaut"][:256, :256], quality=90, subsampling=subsampling)
    model = JPEGCoefficients(keep=64, quantize=False, output="tensor").fit([data])
    recon = model.inverse_transform(model.transform([data]))[0]
    assert psnr(pillow_decode(data), recon) > floor_db
    codes = JPEGCoefficients(keep=64, output="tensor").fit([data])  # integers dequantized by the fitted tables
    np.testing.assert_allclose(codes.inverse_transform(codes.transform([data])), recon[None], atol=1e-6)


def test_jpeg_layout_matches_dct_transformer(tmp_path, photos):
    image = photos["coffee"][:64, :64]
    path = tmp_path / "coffee.jpg"
    path.write_bytes(jpeg_bytes(image, quality=95, subsampling=0))
    jpeg = JPEGCoefficients(keep=6, quantize=False, output="tensor").fit([path])
    dct = DCTTransformer(keep=6, output="tensor").fit(pillow_decode(path.read_bytes())[None])
    assert jpeg.latent_shape_ == dct.latent_shape_ == (18, 8, 8)
    # Same transform of (nearly) the same pixels: coefficients agree to JPEG's quantization error.
    difference = jpeg.transform([path]) - dct.transform(pillow_decode(path.read_bytes())[None])
    assert np.abs(difference).mean() < 1.0
    np.testing.assert_array_equal(jpeg.transform([path]), jpeg.transform([path.read_bytes()]))


def test_jpeg_chroma_drop_and_repeat(photos):
    data = jpeg_bytes(photos["chelsea"][:64, :64], subsampling=2)
    repeat = JPEGCoefficients(keep=1, output="tensor").fit([data]).transform([data])
    drop = JPEGCoefficients(keep=1, chroma="drop", output="tensor").fit([data]).transform([data])
    assert repeat.shape == (1, 3, 8, 8) and drop.shape == (1, 1, 8, 8)
    np.testing.assert_array_equal(repeat[0, 1, 0::2, 0::2], repeat[0, 1, 1::2, 1::2])  # 2x2 repeated blocks
    np.testing.assert_array_equal(drop[0, 0], repeat[0, 0])
    data = jpeg_bytes(photos["chelsea"][:64, :64], subsampling=1)  # 4:2:2: chroma halved across, not down
    model = JPEGCoefficients(keep=1, output="tensor").fit([data])
    repeat = model.transform([data])
    assert model.chroma_factor_ == (1, 2)
    np.testing.assert_array_equal(repeat[0, 1:, :, 0::2], repeat[0, 1:, :, 1::2])  # pairs of blocks across
    assert not np.array_equal(repeat[0, 1:, 0::2], repeat[0, 1:, 1::2])  # every block row its own


def test_jpeg_chroma_drop_budgets_count_the_files_three_planes(photos):
    """Dropping Cb and Cr of a colour file leaves a third of the coefficients: a budget three times smaller
    for the same keep, the same budget for the same reduction (Y then keeps three times as many)."""
    data = jpeg_bytes(photos["chelsea"][:64, :64])
    repeat = JPEGCoefficients(keep=4).fit([data])
    drop = JPEGCoefficients(keep=4, chroma="drop").fit([data])
    assert repeat.reduction_ == 16 and drop.reduction_ == 48
    table = budget_table({"repeat": repeat, "drop": drop})
    assert table.loc["drop", "bits_per_sample"] == table.loc["repeat", "bits_per_sample"] / 3
    matched = JPEGCoefficients(reduction=16, chroma="drop").fit([data])
    assert matched.keep_ == 12 and matched.reduction_ == 16 and matched.transform([data]).shape == (1, 12 * 64)
    grey = jpeg_bytes(photos["chelsea"][:64, :64, 0])
    assert JPEGCoefficients(reduction=16, chroma="drop").fit([grey]).reduction_ == 16  # one plane: nothing dropped
    with pytest.warns(UserWarning, match="reduction=2 is not reachable .* the achieved reduction_ is 3"):
        assert JPEGCoefficients(reduction=2, chroma="drop").fit([data]).reduction_ == 3  # all 64 of Y, the most


def test_jpeg_sizes_off_the_block_grid_keep_the_dct_rule_without_warnings(photos):
    """28x28 pads to 4x4 blocks: keep = round(64 / 16) = 4 as DCTTransformer keeps, reduction_ what it reaches."""
    data = jpeg_bytes(photos["chelsea"][:28, :28, 0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model = JPEGCoefficients(reduction=16).fit([data])
    assert model.keep_ == 4 and model.reduction_ == pytest.approx(28 * 28 / (4 * 16))


def test_jpeg_files_of_different_sizes_stream_through_transform_batches(photos):
    """A batch is a list of files; memoryviews of different lengths are not a DataLoader's [x, y]."""
    files = [memoryview(jpeg_bytes(photos["chelsea"][:32, :32], quality=q)) for q in (50, 90)]
    model = JPEGCoefficients(keep=2, quantize=False).fit(files)
    assert len(files[0]) != len(files[1])
    np.testing.assert_array_equal(next(model.transform_batches([files])), model.transform(files))


def test_jpeg_small_420_images_use_the_files_sampling_factors(photos):
    """8 px high: Y and chroma have one block row each, yet chroma is still subsampled 2x2."""
    image = photos["chelsea"][:8, :64]
    data = jpeg_bytes(image, quality=95, subsampling=2)
    model = JPEGCoefficients(keep=64, quantize=False, output="tensor").fit([data])
    assert model.chroma_factor_ == (2, 2)
    assert psnr(pillow_decode(data), model.inverse_transform(model.transform([data]))[0]) > 40


def test_jpeg_files_must_match_the_fitted_one(photos):
    image = photos["chelsea"][:64, :64]
    model = JPEGCoefficients().fit([jpeg_bytes(image, quality=75)])
    with pytest.raises(ValueError, match="other quantization tables"):
        model.transform([jpeg_bytes(image, quality=30)])
    JPEGCoefficients(quantize=False).fit([jpeg_bytes(image, quality=75)]).transform([jpeg_bytes(image, quality=30)])
    with pytest.raises(ValueError, match="chroma subsampling"):
        model.transform([jpeg_bytes(image, quality=75, subsampling=0)])
    with pytest.raises(ValueError, match="grayscale"):
        model.transform([jpeg_bytes(image[..., 0], quality=75)])
    gray = JPEGCoefficients().fit([jpeg_bytes(image[..., 0], quality=75)])
    with pytest.raises(ValueError, match="colour"):
        gray.transform([jpeg_bytes(image, quality=75)])
    with pytest.raises(ValueError, match="size 60x60"):
        model.transform([jpeg_bytes(photos["chelsea"][:60, :60], quality=75)])


def test_jpeg_files_with_an_exif_orientation_are_read_as_stored_with_a_warning(photos, tmp_path):
    """A phone photo held sideways is stored sideways with an orientation tag; its coefficients are the stored
    ones (as torchvision's decode_jpeg reads pixels by default), and transform says so, where
    load_image_folder would have turned its pixels upright without either side noticing the difference."""
    image = photos["chelsea"][:64, :64]
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    tagged, plain = jpeg_bytes(image, quality=75, exif=exif.tobytes()), jpeg_bytes(image, quality=75)
    (tmp_path / "tagged.jpg").write_bytes(tagged)
    model = JPEGCoefficients(output="tensor").fit([plain])
    with pytest.warns(UserWarning, match=r"1 of 3 JPEG files carry an EXIF orientation \(file 1: 6, rotated 90 "
                                         r"degrees clockwise to display\).* read as stored") as caught:  # fmt: skip
        codes = model.transform([plain, tagged, plain])
    assert caught[0].filename == __file__
    np.testing.assert_array_equal(codes[1], codes[0])  # the stored image data, untouched
    with pytest.warns(UserWarning, match="1 of 1 JPEG files"):  # a path reads its tag as bytes do
        model.transform([tmp_path / "tagged.jpg"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model.transform([plain, plain])
        exif[0x0112] = 1  # "upright as stored": nothing to say
        model.transform([jpeg_bytes(image, quality=75, exif=exif.tobytes())])


def test_jpeg_refuses_rgb_colourspace(photos):
    buffer = io.BytesIO()
    Image.fromarray(photos["chelsea"][:32, :32]).save(buffer, format="JPEG", keep_rgb=True)
    with pytest.raises(ValueError, match="only grayscale and YCbCr"):
        JPEGCoefficients().fit([buffer.getvalue()])


def test_jpeg_bad_input(photos, tmp_path):
    good = jpeg_bytes(photos["chelsea"][:64, :64])
    model = JPEGCoefficients().fit([good])
    with pytest.raises(ValueError, match=r"item 1 of X: 17 bytes is not a JPEG: it starts with b'not ', not 0xFF"):
        model.transform([good, b"not a jpeg at all"])  # the item, not the temporary file the bytes passed through
    png = io.BytesIO()
    Image.fromarray(photos["chelsea"][:64, :64]).save(png, format="PNG")
    with pytest.raises(ValueError, match=r"item 0 of X: .* is not a JPEG: .*\(a PNG file: decode it to pixels"):
        model.transform([png.getvalue()])  # (libjpeg's reason went to stderr: "reading info ... failed")
    # a 12-bit frame (SOF1 with precision 12): libjpeg refused it, again saying only that the read failed
    sof = good.index(b"\xff\xc0")
    twelve = good[:sof] + b"\xff\xc1" + good[sof + 2 : sof + 4] + b"\x0c" + good[sof + 5 :]
    with pytest.raises(ValueError, match="item 0 of X: .* is a JPEG of 12-bit samples; only 8-bit JPEGs"):
        model.transform([twelve])
    with pytest.raises(ValueError, match="size 32x32 \\(fitted: 64x64\\)"):
        model.transform([jpeg_bytes(photos["chelsea"][:32, :32])])
    with pytest.raises(TypeError, match="list of JPEG paths or bytes"):
        model.transform(good)
    with pytest.raises(FileNotFoundError):
        model.transform([tmp_path / "missing.jpg"])
    with pytest.raises(TypeError, match="use DCTTransformer"):
        model.transform([photos["chelsea"][:64, :64]])


def test_dct_pads_uneven_sides_by_mirroring_as_documented():
    """The docstrings say where DCTTransformer and a JPEG file differ: libjpeg repeats the edge, we mirror it."""
    from scipy.fft import dctn

    image = np.random.default_rng(0).integers(0, 256, (1, 1, 12, 12), dtype=np.uint8)
    Z = DCTTransformer(keep=64, quality=None, output="tensor").fit(image).transform(image)[0]  # (64, 2, 2)
    for mode, matches in (("symmetric", True), ("edge", False)):
        padded = np.pad(image[0, 0].astype(np.float64) - 128, ((0, 4), (0, 4)), mode=mode)
        corner = dctn(padded[8:, 8:], norm="ortho").ravel()[zigzag_order()]  # the last block row and column
        assert np.allclose(Z[:, 1, 1], corner, atol=1e-3) == matches


def test_jpeg_grayscale_file_after_a_colour_fit_is_refused_whatever_chroma_says_now(photos):
    """set_params(chroma="drop") after a fit that read Cb and Cr let a grayscale file through to an IndexError."""
    colour = jpeg_bytes(photos["chelsea"][:16, :16], subsampling=0)
    gray = jpeg_bytes(photos["chelsea"][:16, :16, 0])
    model = JPEGCoefficients(keep=4, quantize=False).fit([colour]).set_params(chroma="drop")
    with pytest.raises(ValueError, match="JPEG file 0 differs from the fitted one: grayscale"):
        model.transform([gray])
    only_y = JPEGCoefficients(keep=4, chroma="drop").fit([colour])  # Y alone: a grayscale file is fine
    assert only_y.transform([gray]).shape == (1, 4 * 2 * 2)


def test_jpeg_truncated_files_are_refused_not_read_with_zero_blocks(photos, tmp_path):
    """libjpeg only printed "Premature end of JPEG file" and filled 24 of 32 block rows with zeros."""
    whole = jpeg_bytes(photos["chelsea"][:256, :256], quality=90)
    model = JPEGCoefficients().fit([whole])
    for cut in (whole[: len(whole) // 2], whole[:-2]):  # half the scan; every block but no end-of-image marker
        with pytest.raises(ValueError, match="item 0 of X: .* is truncated: its image data ends before"):
            model.transform([cut])
    progressive = jpeg_bytes(photos["chelsea"][:256, :256], quality=90, progressive=True)  # several scans
    assert JPEGCoefficients().fit([progressive]).transform([progressive]).shape == (1, 3 * 4 * 32 * 32)
    app0_end = 4 + int.from_bytes(whole[4:6], "big")  # stray bytes after a segment: libjpeg skips them, so do we
    stray = whole[:app0_end] + b"\x00\x00" + whole[app0_end:]
    np.testing.assert_array_equal(model.transform([stray]), model.transform([whole]))


@pytest.mark.parametrize("sampling", [((2, 2), (1, 1), (2, 2)), ((1, 1), (2, 2), (2, 2))],
                         ids=["Cr finer than Cb", "chroma finer than luma"])  # fmt: skip
def test_jpeg_chroma_samplings_one_grid_cannot_hold_are_refused(tmp_path, sampling):
    """Cr was repeated at Cb's factor (silently wrong), and chroma finer than luma failed inside numpy."""
    import jpeglib

    x = np.add.outer(np.arange(64), np.arange(64)).astype(np.uint8)
    image = jpeglib.from_spatial(np.stack([x, x[::-1], x.T], -1))
    image.samp_factor = sampling
    path = str(tmp_path / "odd.jpg")
    image.write_spatial(path, qt=90)
    with pytest.raises(ValueError, match=r"samples Y at .* only files whose Cb and Cr share one sampling"):
        JPEGCoefficients().fit([path])
def test_jpeg_codes_decode_in_any_dtype_and_fractional_codes_are_refused(photos):
    """As ResolutionReducer's: a regressor's fractional codes are rounded by the caller, not scaled as they are."""
    files = [jpeg_bytes(photos["chelsea"][:64, :64], quality=30)]
    model = JPEGCoefficients().fit(files)
    codes = model.transform(files)
    np.testing.assert_array_equal(model.inverse_transform(codes.astype(np.float64)), model.inverse_transform(codes))
    with pytest.raises(ValueError, match="quantize=True: expected integer codes, got fractions"):
        model.inverse_transform(codes + 0.25)
    pixels = model.inverse_transform(codes)
    model.set_params(quantize=False)  # dequantized coefficients: any real values
    assert model.inverse_transform(codes + 0.25).shape == (1, 3, 64, 64)
    np.testing.assert_array_equal(model.inverse_transform(codes), pixels)  # integer arrays are still codes


# -------------------------------------------------------------------------- ResidualVQ --
def test_rvq_error_falls_as_codebooks_grow(mnist):
    X = mnist[0][:1500]
    errors = []
    for n_codebooks in (1, 2, 4):
        model = ResidualVQ(n_codebooks=n_codebooks, codebook_size=64, random_state=0).fit(X)
        assert model.inertia_ == sorted(model.inertia_, reverse=True)  # each stage lowers the residual
        errors.append(np.mean((model.inverse_transform(model.transform(X)) - X / 255) ** 2))
    assert errors[0] > errors[1] > errors[2]
    assert errors[2] < 0.5 * errors[0]


def test_rvq_over_walloc_latents(mnist):
    X = mnist[0][:800]
    model = ResidualVQ(reduction=16, codebook_size=32, base=WaLLoCTransformer(reduction=4), random_state=0)
    codes = model.set_params(output="tensor").fit(X).transform(X)
    assert model.n_codebooks_ == 1 and model.reduction_ == 16  # 4 latents per 4x4 block -> 1 code
    assert codes.shape == (800, 1, 7, 7) and codes.dtype == np.uint8 and codes.max() < 32
    vectors = model.set_params(quantize=False).fit(X).transform(X)
    assert vectors.shape == (800, 4, 7, 7)  # the quantized WaLLoC latents
    with pytest.raises(ValueError, match="codes must lie in"):
        ResidualVQ(n_codebooks=1, codebook_size=32).fit(X).inverse_transform(np.full((1, 49), 40))


def test_rvq_fitted_codebooks_win_over_a_later_set_params():
    """Codes follow the fitted codebooks: a later set_params(codebook_size=...) neither wraps nor refuses them."""
    X = np.random.default_rng(5).random((40, 1, 16, 16)).astype(np.float32)
    model = ResidualVQ(n_codebooks=1, codebook_size=300, output="tensor", random_state=0).fit(X)
    codes, recon = model.transform(X), model.inverse_transform(model.transform(X))
    assert codes.dtype == np.uint16 and codes.max() >= 256
    model.set_params(codebook_size=256)
    np.testing.assert_array_equal(model.transform(X), codes)
    np.testing.assert_array_equal(model.inverse_transform(codes), recon)


def test_rvq_quantize_switched_after_fit_keeps_output_names_and_inverse_in_step():
    """``quantize`` is read at transform time: codes and vectors of one fitted quantizer, flat, each with its
    own feature names and each inverted to the same reconstruction."""
    X = np.random.default_rng(6).random((30, 1, 16, 16)).astype(np.float32)
    model = ResidualVQ(n_codebooks=2, codebook_size=8, random_state=0).fit(X)  # 4x4 patches: 16-D vectors
    codes = model.transform(X)
    recon = model.inverse_transform(codes)
    model.set_params(quantize=False)
    vectors = model.transform(X)
    assert codes.shape == (30, 2 * 16) and vectors.shape == (30, 16 * 16)
    assert len(model.get_feature_names_out()) == vectors.shape[1] and model.latent_shape_ == (16, 4, 4)
    np.testing.assert_allclose(model.inverse_transform(vectors), recon, atol=1e-6)
    model.set_params(quantize=True)
    assert len(model.get_feature_names_out()) == codes.shape[1] and model.latent_shape_ == (2, 4, 4)
    np.testing.assert_array_equal(model.transform(X), codes)
    model.__dict__["latent_shape_"] = (2, 4, 4)  # as pickles of older versions stored it
    np.testing.assert_array_equal(model.fit(X).transform(X), codes)  # a refit forgets it


def test_rvq_codebook_larger_than_data():
    with pytest.raises(ValueError, match="exceeds the 4 training vectors"):
        ResidualVQ(codebook_size=8).fit(np.zeros((1, 1, 8, 8)))


def test_rvq_codebook_larger_than_the_training_sample_names_max_train_vectors():
    X = np.random.default_rng(0).random((20, 1, 16, 16)).astype(np.float32)  # 320 vectors
    with pytest.raises(ValueError, match="codebook_size=16 exceeds max_train_vectors=10"):
        ResidualVQ(codebook_size=16, max_train_vectors=10).fit(X)


# ------------------------------------------------------------------------------ EnCodec --
@pytest.mark.parametrize("bandwidth, n_codebooks", [(1.5, 2), (6.0, 8), (24.0, 32)])
def test_encodec_codes_from_a_local_checkpoint(encodec_dir, bandwidth, n_codebooks):
    X = np.random.default_rng(2).uniform(-0.5, 0.5, (4, 4800)).astype(np.float32)  # 2 s at 2.4 kHz
    model = EnCodecTransformer(model=encodec_dir, bandwidth=bandwidth, output="tensor").fit(X)
    codes = model.transform(X)
    assert codes.shape == (4, n_codebooks, 150) and codes.dtype == np.int16
    assert model.reduction_ == 4800 / (n_codebooks * 150) and model.bits_per_code_ == 10
    with torch.no_grad():  # the codes are EnCodec's own
        expected = model.model_.encode(torch.from_numpy(X[:, None]), bandwidth=bandwidth).audio_codes[0]
    np.testing.assert_array_equal(codes, expected.numpy())


@pytest.mark.filterwarnings("ignore:TF32 acceleration on top of oneDNN")
def test_encodec_encode_flops_count_its_lstm(encodec_dir):
    """The encoder's LSTM runs as oneDNN's fused layer on the CPU, which torch's counter priced at 0: the count
    equals the unfused cells' (one counted product per step; they add 2 x 75 x 2048 FLOPs here)."""
    from walloc_features.evaluation import transform_flops_per_sample

    X = np.random.default_rng(2).uniform(-0.5, 0.5, (2, 2400)).astype(np.float32)  # 1 s: 75 frames
    model = EnCodecTransformer(model=encodec_dir, output="tensor").fit(X)
    with torch.backends.mkldnn.flags(enabled=False):
        unfused = transform_flops_per_sample(model, X)
    assert isinstance(model.model_.encoder.layers[-3].lstm, torch.nn.LSTM)  # (hidden 16, one layer)
    assert transform_flops_per_sample(model, X) == unfused


def test_encodec_resamples_embeds_and_decodes(encodec_dir, tmp_path):
    X = np.random.default_rng(3).uniform(-0.5, 0.5, (3, 2, 16000)).astype(np.float32)  # stereo at 16 kHz
    model = EnCodecTransformer(model=encodec_dir, sample_rate=16000, output="tensor").fit(X)
    assert model.latent_shape_ == (8, 75)  # mixed to mono, resampled to 2.4 kHz, 75 frames per second
    assert model.inverse_transform(model.transform(X)).shape == X.shape
    embeddings = EnCodecTransformer(model=encodec_dir, quantize=False, sample_rate=16000).fit(X).transform(X)
    assert embeddings.shape == (3, 16 * 75) and embeddings.dtype == np.float32
    joblib.dump(model, tmp_path / "encodec.joblib")
    np.testing.assert_array_equal(joblib.load(tmp_path / "encodec.joblib").transform(X), model.transform(X))


def test_encodec_loads_quietly_unless_verbose_and_leaves_transformers_bars_as_they_were(encodec_dir, capsys):
    """transformers' "Loading weights" bar printed on every fit, verbose=False or not."""
    from transformers.utils import logging

    X = np.random.default_rng(3).uniform(-0.5, 0.5, (2, 2400)).astype(np.float32)
    if not logging.is_progress_bar_enabled():  # (HF_HUB_DISABLE_PROGRESS_BARS=1: no bar to show or hide)
        pytest.skip("transformers' progress bars are switched off in this environment")
    capsys.readouterr()
    EnCodecTransformer(model=encodec_dir).fit(X)
    assert "Loading weights" not in capsys.readouterr().err and logging.is_progress_bar_enabled()
    EnCodecTransformer(model=encodec_dir, verbose=True).fit(X)
    assert "Loading weights" in capsys.readouterr().err and logging.is_progress_bar_enabled()
    from huggingface_hub import utils as hub

    hub.disable_progress_bars("huggingface_hub.http_get")  # a setting of the hub's own, per group of bars
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # (transformers' switch warned under HF_HUB_DISABLE_PROGRESS_BARS=0)
            EnCodecTransformer(model=encodec_dir).fit(X)
        assert hub.are_progress_bars_disabled("huggingface_hub.http_get")  # transformers' switch re-enabled it
        assert not hub.are_progress_bars_disabled() and logging.is_progress_bar_enabled()
    finally:
        hub.enable_progress_bars("huggingface_hub.http_get")


def test_encodec_parameters_changed_after_fit_keep_output_names_and_layout_in_step(encodec_dir):
    """``quantize`` is read at transform time (codes or embeddings, each with its own names); the codes keep
    the fitted bandwidth, which decided n_codebooks_, until the next fit."""
    X = np.random.default_rng(2).uniform(-0.5, 0.5, (3, 2400)).astype(np.float32)
    model = EnCodecTransformer(model=encodec_dir, quantize=False, bandwidth=1.5).fit(X)
    embeddings = model.transform(X)
    assert embeddings.shape == (3, 16 * 75) == (3, len(model.get_feature_names_out()))
    assert model.reduction_ == 2400 / (2 * 75)  # of the codes, as a fit with quantize=True says
    codes = model.set_params(quantize=True).transform(X)
    assert codes.shape == (3, 2 * 75) == (3, len(model.get_feature_names_out())) and model.latent_shape_ == (2, 75)
    assert model.inverse_transform(codes).shape == X.shape
    np.testing.assert_array_equal(model.set_params(bandwidth=6.0).transform(X), codes)
    assert model.fit(X).transform(X).shape == (3, 8 * 75)  # refitted at 6 kbps: 8 codebooks


def test_encodec_missing_weights_say_where_to_put_them(tmp_path):
    X = np.zeros((1, 2400), np.float32)
    (tmp_path / "empty-dir").mkdir()
    with pytest.raises(OSError, match="pass model='/path/to/that/directory'"):
        EnCodecTransformer(model=tmp_path / "empty-dir").fit(X)
    for mistyped in (tmp_path / "no-such-dir", str(tmp_path / "no-such-dir"), "./encodec_24khz"):  # no hub retries
        with pytest.raises(FileNotFoundError, match="no EnCodec model directory at .*is not a hub id"):
            EnCodecTransformer(model=mistyped).fit(X)
    with pytest.raises(OSError, match="Hugging Face cache"):
        EnCodecTransformer(model="facebook/encodec_24khz", local_files_only=True).fit(X)


def test_encodec_refuses_what_is_not_its_audio(encodec_dir):
    model = EnCodecTransformer(model=encodec_dir).fit(np.zeros((1, 2400), np.float32))
    with pytest.raises(ValueError, match="channel-last audio"):
        EnCodecTransformer(model=encodec_dir).fit(np.zeros((3, 4800, 2), np.float32))
    with pytest.raises(ValueError, match="28 channel"):
        EnCodecTransformer(model=encodec_dir).fit(np.zeros((5, 28, 28), np.float32))
    with pytest.raises(ValueError, match="integers in \\[0, 1024\\)"):
        model.inverse_transform(np.full((1, model.latent_shape_[0] * model.latent_shape_[1]), 5000))


def test_encodec_chunked_models_encode_any_length(tmp_path):
    from transformers import EncodecConfig, EncodecModel

    config = EncodecConfig(sampling_rate=2400, upsampling_ratios=[8, 4], num_filters=4, hidden_size=16,
                           codebook_dim=16, num_lstm_layers=1, chunk_length_s=1.0, overlap=0.5)  # fmt: skip
    EncodecModel(config).save_pretrained(tmp_path)
    # A chunk starts at every 0.5 s stride and lasts 1 s (75 frames): a clip within one stride is one chunk of its
    # own length, and one whose last two chunks would both be short is padded until the next-to-last is whole.
    for length, frames in [(1000, 32), (4000, 4 * 75)]:
        X = np.random.default_rng(4).uniform(-0.5, 0.5, (2, length)).astype(np.float32)
        model = EnCodecTransformer(model=tmp_path, output="tensor").fit(X)
        assert model.transform(X).shape == (2, 8, frames)
    with pytest.raises(ValueError, match="overlapping chunks"):
        model.inverse_transform(model.transform(X))


def test_encodec_chunked_models_layouts_follow_quantize_both_ways(tmp_path):
    """A chunked, normalising model (the 48 kHz kind) codes chunk by chunk (114 frames here) but embeds the whole
    clip (112): the layout recorded at fit must be the mode's own after set_params, or flat output, feature names
    and pandas columns disagree."""
    pd = pytest.importorskip("pandas")
    from transformers import EncodecConfig, EncodecModel

    torch.manual_seed(0)
    config = EncodecConfig(sampling_rate=2400, upsampling_ratios=[8, 4], num_filters=4, hidden_size=16,
                           codebook_dim=16, num_lstm_layers=1, chunk_length_s=0.5, overlap=0.01, normalize=True,
                           audio_channels=2)  # fmt: skip
    EncodecModel(config).save_pretrained(tmp_path)
    X = np.random.default_rng(0).uniform(-0.5, 0.5, (3, 2, 3001)).astype(np.float32)
    for fitted_with in (True, False):
        model = EnCodecTransformer(model=tmp_path, quantize=fitted_with).fit(X)
        for quantize in (True, False):
            model.set_params(quantize=quantize)
            Z = model.transform(X)
            assert Z.shape[1] == np.prod(model.latent_shape_) == len(model.get_feature_names_out())
            assert model.latent_shape_ == ((8, 114) if quantize else (16, 94))
            frame = model.set_output(transform="pandas").transform(X)
            assert isinstance(frame, pd.DataFrame) and frame.shape == Z.shape
            model.set_output(transform="default")
    with pytest.raises(ValueError, match=r"normalises its input or encodes it in chunks: .* \(quantize=False\)"):
        model.inverse_transform(model.transform(X))  # (quantize=False here, as the loop left it)


@pytest.mark.parametrize("overlap", [0.01, 0.5])
def test_encodec_chunked_normalising_codes_are_encodecs_own(tmp_path, overlap):
    """Clips were zero-padded to whole strides, so a normalising model's chunk scale counted the zeros: a clip
    shorter than one stride got other codes than EncodecModel.encode's (56% of them at T=100) and 149 frames on
    the real 48 kHz model instead of 15. Every length encode codes is now coded as encode codes it; the others
    (encode cannot stack a next-to-last chunk of fewer frames than the first) get whole chunks' frames."""
    tiny_encodec(tmp_path, chunk_length_s=0.5, overlap=overlap, normalize=True, audio_channels=2)  # 1200 samples
    stride = int(1200 * (1 - overlap))  # 1188 or 600; 38 frames a chunk (hop 32)
    lengths = sorted({n for k in (1, 2, 3) for n in (k * stride - 1, k * stride, k * stride + 1, k * stride + 5,
                                                     k * stride + 12, k * stride + 13, k * stride + 100)} | {100, 700})
    coded = 0
    for length in lengths:
        X = np.random.default_rng(length).uniform(-0.5, 0.5, (2, 2, length)).astype(np.float32)
        model = EnCodecTransformer(model=tmp_path, output="tensor", batch_size=1).fit(X)
        ours = model.transform(X)
        try:
            with torch.no_grad():
                codes = model.model_.encode(torch.from_numpy(X), bandwidth=model.bandwidth_).audio_codes
        except RuntimeError:  # torch.stack of chunks of unequal frames
            chunks = -(-length // stride)
            assert ours.shape[2] == chunks * 38, length
            continue
        coded += 1
        np.testing.assert_array_equal(ours, codes.permute(1, 2, 0, 3).flatten(2).numpy(), err_msg=str(length))
    assert coded >= len(lengths) // 2  # (so the comparison covers most lengths: 12 of 22 at 50% overlap)


def test_encodec_chunks_overlapping_by_more_than_half_refuse_clips_of_three_chunks(tmp_path):
    """With chunk_length > 2 x stride (an odd chunk at overlap 0.5: 97 samples every 48) and 32 samples a frame,
    the next-to-last of three chunks or more is always a frame short: padding never helps, and a fit failed in
    torch.stack."""
    tiny_encodec(tmp_path, chunk_length_s=0.0405, overlap=0.5)  # 97 samples every 48, 32 a frame
    X = np.random.default_rng(0).uniform(-0.5, 0.5, (2, 200)).astype(np.float32)
    with pytest.raises(ValueError, match="97 samples every 48.*cannot be stacked for a clip of 200 samples"):
        EnCodecTransformer(model=tmp_path).fit(X)
    assert EnCodecTransformer(model=tmp_path).fit(X[:, :96]).transform(X[:, :96]).shape == (2, 8 * 2 * 3)


def test_encodec_set_params_after_fit_keeps_the_fitted_sample_rate_and_codes_of_large_codebooks_fit(tmp_path):
    """set_params(sample_rate=...) after fit changed the flat output's width (76 where latent_shape_ said 150),
    which the transformer's own inverse and pandas output then refused; and codebooks over 2**15 wrapped to
    negative int16 codes."""
    tiny_encodec(tmp_path, codebook_size=2**16, target_bandwidths=[1.5])
    X = np.random.default_rng(0).uniform(-0.5, 0.5, (3, 4800)).astype(np.float32)
    model = EnCodecTransformer(model=tmp_path, bandwidth=1.5).fit(X)
    Z = model.transform(X)
    model.set_params(sample_rate=4800)
    np.testing.assert_array_equal(model.transform(X), Z)
    assert model.sample_rate_ == 2400 and Z.shape[1] == np.prod(model.latent_shape_)
    with torch.no_grad():
        codes = model.model_.encode(torch.from_numpy(X[:, None]), bandwidth=model.bandwidth_).audio_codes[0]
    assert codes.max() >= 2**15  # (so int16 would wrap them)
    np.testing.assert_array_equal(Z, codes.flatten(1).numpy())


def test_encodec_embeddings_decode_so_a_residual_vq_on_them_inverts(encodec_dir):
    """ResidualVQ quantizes EnCodec's embeddings (its base runs with quantize=False); its inverse goes back through
    EnCodec's decoder, which inverse_transform refused for embeddings."""
    X = np.random.default_rng(5).uniform(-0.5, 0.5, (40, 1001)).astype(np.float32)
    embedder = EnCodecTransformer(model=encodec_dir, quantize=False, output="tensor").fit(X)
    decoded = embedder.inverse_transform(embedder.transform(X))
    assert decoded.shape == X.shape and np.isfinite(decoded).all() and np.abs(decoded).max() > 0
    rvq = ResidualVQ(codebook_size=8, base=EnCodecTransformer(model=encodec_dir), random_state=0).fit(X)
    assert rvq.inverse_transform(rvq.transform(X)).shape == X.shape


def test_encodec_rejects_unknown_bandwidth(encodec_dir):
    with pytest.raises(ValueError, match="bandwidth=5.0 is not one of"):
        EnCodecTransformer(model=encodec_dir, bandwidth=5.0).fit(np.zeros((1, 2400), np.float32))


# ------------------------------------------------------------------- ResolutionReducer --
def test_resolution_quantized_output_is_stored_format(rgb, stereo):
    for X, dtype, step, low in [(rgb, np.uint8, 1 / 255, 0), (stereo, np.int16, 1 / 32768, -1)]:
        codes_model = ResolutionReducer(4, quantize=True).fit(X)
        float_model = ResolutionReducer(4).fit(X)
        codes = codes_model.transform(X)
        assert codes.dtype == dtype
        np.testing.assert_allclose(codes * step, np.clip(float_model.transform(X), low, 1), atol=step)
        np.testing.assert_allclose(  # codes keep their meaning when they travel as floats
            codes_model.inverse_transform(codes.astype(np.float32)), codes_model.inverse_transform(codes)
        )
        np.testing.assert_array_equal(  # and integer codes theirs after quantize=False (they decoded to white)
            float_model.inverse_transform(codes), codes_model.inverse_transform(codes)
        )


def test_resolution_pcm_codes_are_the_int16_samples_they_stand_for():
    """int16 input is read as x / 2**15: at its own size the codes give the samples back, extremes included."""
    pcm = np.array([[[0, 1, 100, 16384, 20000, 32767, -32768, -20000]]], np.int16)
    model = ResolutionReducer(size=8, quantize=True, output="tensor", modality="audio").fit(pcm)
    np.testing.assert_array_equal(model.transform(pcm), pcm)
    assert model.code_range_ == (-32768, 32767)


@pytest.mark.parametrize("length", [44100, 12345, 30011])
def test_resolution_audio_round_trip_keeps_a_low_tone_in_time(length):
    """The inverse resamples by the exact reciprocal of the forward ratio: 44100 -> 2756 went down by 1/16
    (a limited fraction) and up by 44100/2756, stretching the tone 4 samples late by the end (35.6 dB)."""
    t = np.arange(length) / 44100
    x = (0.5 * np.sin(2 * np.pi * 300 * t)).astype(np.float32)[None, None]
    model = ResolutionReducer(16).fit(x)
    assert psnr(x, model.inverse_transform(model.transform(x)).reshape(x.shape), 2.0) > 45


def test_resolution_audio_keeps_a_constant_constant_to_its_ends():
    """Past its ends the signal continues its trend, as images repeat their edge pixels: zeros there halved the
    first code of a clip at 0.3 and brought its last sample back at 0.016."""
    x = np.full((1, 16000), 0.3, np.float32)
    model = ResolutionReducer(16).fit(x)
    codes = model.transform(x)
    np.testing.assert_allclose(codes, 0.3, atol=1e-6)
    np.testing.assert_allclose(model.inverse_transform(codes), 0.3, atol=1e-3)


@pytest.mark.parametrize("size", [10, 4, 1])
def test_resolution_audio_at_large_reductions_covers_the_whole_clip(size):
    """16000 samples to 10 is 1/1600: a denominator limited to 1000 made it 1/1000, 10 outputs of the first 62%
    of a ramp; 1/4000 became 0 (scipy's error) and the inverse divided by it."""
    x = np.linspace(-0.9, 0.9, 16000, dtype=np.float32)[None].repeat(2, 0)
    model = ResolutionReducer(size=size).fit(x)
    assert model.reduction_ == 16000 / size
    codes = model.transform(x)
    np.testing.assert_allclose(codes[0], np.interp(np.arange(size) * 16000 / size, np.arange(16000), x[0]), atol=2e-3)
    back = model.inverse_transform(codes)
    assert back.shape == x.shape and np.isfinite(back).all()  # one sample has no trend to continue: not NaN


@pytest.mark.parametrize("make", [
    lambda: ResolutionReducer(4, quantize=True), lambda: DCTTransformer(4, quantize=True),
    lambda: ResolutionReducer(16), lambda: ResidualVQ(16, codebook_size=16, random_state=0),
], ids=["resolution codes", "dct codes", "resolution", "rvq"])
def test_a_fit_on_unit_scale_floats_refuses_floats_far_off_it(rgb, make):
    """Fitted on pixels in [0, 1], then given them on 0-255: ResolutionReducer's codes all clipped to 255, and
    ResidualVQ's were the centres nearest to far-away patches, without a word. A fit on 0-255 floats records
    that scale and reads it; integer fits are unchanged."""
    unit = rgb.astype(np.float32) / 255
    model = make().fit(unit)
    assert model.input_range_ == (unit.min(), unit.max())
    with pytest.raises(ValueError, match=r"spans \[0, 255\] in samples 0-\d+, far off the \[0.0, 1.0\] image scale "
                                         r"\w+ was fitted on \(float32 samples in \[0, 1\]\)"):  # fmt: skip
        model.transform(unit * 255)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # (DCT's codes saturate on that scale, with a warning of their own)
        assert make().fit(unit * 255).transform(unit * 255).shape == model.transform(unit).shape
    assert not hasattr(make().fit(rgb), "input_range_")  # uint8: on the scale by construction
    one_row = make().set_params(batch_size=1).fit(unit)  # rows of a reversed array: contiguous, negative strides
    contiguous = np.ascontiguousarray(unit)  # (the crops are channels-last in memory)
    np.testing.assert_array_equal(one_row.transform(contiguous[::-1]), one_row.transform(contiguous)[::-1])


@pytest.mark.parametrize("make", [
    lambda: ResolutionReducer(4, quantize=True), lambda: DCTTransformer(4, quantize=True),
    lambda: ResidualVQ(16, codebook_size=16, random_state=0), lambda: WaLLoCTransformer(16),
], ids=["resolution codes", "dct codes", "rvq", "walloc"])
def test_int64_pixels_are_read_as_they_are_like_floats(rgb, make):
    """int64 has no full scale: its samples are read as they are (pandas reads a CSV of pixels as int64). Pixels on
    0-255 at fit saturated ResolutionReducer's codes without a word, and after a unit-scale fit they passed (or were
    refused with "Divide X by 1")."""
    pixels = rgb.astype(np.int64)
    with pytest.warns(UserWarning, match=r"X \(int64\) spans \[0, 255\], far off the \[0.0, 1.0\] image scale"):
        assert make().fit(pixels).input_range_ == (0, 255)
    model = make().fit(rgb.astype(np.float32) / 255)
    with pytest.raises(ValueError, match=r"X \(int64\) spans \[0, 255\] .* was fitted on \(float32 samples in "
                                         r"\[0, 1\]\): .* Divide X by its full scale"):  # fmt: skip
        model.transform(pixels)
    assert model.transform((pixels > 127).astype(np.int64)).shape[0] == len(rgb)  # 0 / 1 ints: on the scale


def test_one_row_of_a_reversed_array_is_read_like_its_copy(rgb):
    """numpy calls X[::-1][:1] C-contiguous although its stride is negative; torch refused to view it in the
    finiteness check of fit and transform."""
    X = np.ascontiguousarray(rgb.astype(np.float32) / 255)
    row = X[::-1][:1]
    assert row.flags.c_contiguous and row.strides[0] < 0
    for model in (ResolutionReducer(4), DCTTransformer(4), WaLLoCTransformer(16).fit(X)):
        fitted = model if hasattr(model, "codec_") else model.fit(row)
        np.testing.assert_array_equal(fitted.transform(row), fitted.transform(row.copy()))


def test_resolution_errors(rgb):
    with pytest.raises(ValueError, match="only downsamples"):
        ResolutionReducer(size=(64, 64)).fit(rgb)
    for size in [(0, 8), (True, 8), 8]:  # a bool is no size; one number for images is not two
        with pytest.raises(ValueError, match="size must be 2 positive integer"):
            ResolutionReducer(size=size).fit(rgb)
    with pytest.raises(ValueError, match="expected integer pixels"):
        ResolutionReducer(4, quantize=True).fit(rgb).inverse_transform(np.full((1, 3 * 16 * 16), 0.5))


# --------------------------------------------------------------------- matched budgets --
def test_matched_baselines_share_the_reduction(rgb):
    table = budget_table(matched_baselines(16, "image", random_state=0), rgb)
    assert list(table.index) == ["walloc", "resolution", "dct", "rvq"]
    np.testing.assert_allclose(table["reduction"], 16)
    assert table.loc["walloc", "bits_per_sample"] == 0.5  # 8-bit latents, 16x fewer values
    assert table.loc["rvq", "bits_per_sample"] == 0.5  # 256-entry codebooks: 8 bits per code


def test_budget_table_and_psnr_refuse_arguments_they_would_misread(rgb):
    with pytest.raises(TypeError, match="transformers must be a dict of name -> transformer, got list"):
        budget_table([ResolutionReducer(4)], rgb)
    with pytest.raises(ValueError, match="transformers is empty"):
        budget_table({}, rgb)
    from sklearn.linear_model import LogisticRegression

    for thing in (LogisticRegression(), "walloc"):  # were sklearn's "fit() missing y" / "Cannot clone object"
        with pytest.raises(TypeError, match="'w' is a .*, not a transformer \\(fit and transform\\)"):
            budget_table({"w": thing}, rgb)
    for data_range in (0, -1.0, np.inf):  # -1 once gave the PSNR of +1, 0 gave -inf dB
        with pytest.raises(ValueError, match="data_range must be a positive number"):
            psnr(np.zeros(4), np.full(4, 0.1), data_range=data_range)


@pytest.mark.parametrize("reduction", [4, 32, 64])
def test_matched_baselines_reach_other_reductions(mnist, reduction):
    X = np.pad(mnist[0][:300], ((0, 0), (2, 2), (2, 2)))  # 32x32: every reduction is exact
    table = budget_table(matched_baselines(reduction, "image", random_state=0), X)
    np.testing.assert_allclose(table.drop(index="resolution")["reduction"], reduction)
    # 32x32 / 32 has no square answer: 5x6 pixels (34.1x) is the closest rounding
    np.testing.assert_allclose(table.loc["resolution", "reduction"], reduction, rtol=0.1)


def test_unreachable_reductions_warn(mnist):
    with pytest.warns(UserWarning, match="reduction=8 is not reachable"):
        ResolutionReducer(8).fit(np.zeros((2, 5, 5)))  # 5x5 -> 2x2: 6.25


def test_matched_baselines_with_encodec(stereo, encodec_dir):
    baselines = matched_baselines(16, "audio", encodec_model=encodec_dir, sample_rate=2400, channels=2)
    # 2 channels x 2400 Hz / (16 x 75 frames/s) = 4 codebooks of 10 bits = 3 kbps
    assert baselines["encodec"].bandwidth == 3.0
    table = budget_table(baselines, stereo[:, :, :2048])  # no padding for J=8 or 256-sample frames
    np.testing.assert_allclose(table["reduction"], 16)
    with pytest.raises(ValueError, match="needs modality='audio'"):
        matched_baselines(16, "image", encodec_model=encodec_dir)


def test_rvq_base_reads_the_signals_as_rvq_does():
    """A base inherits ResidualVQ's modality: short stereo clips stay audio and keep their negative samples."""
    A = np.random.default_rng(3).uniform(-1, 1, (30, 2, 48)).astype(np.float32)  # too short for "auto" audio
    model = ResidualVQ(
        modality="audio", base=DCTTransformer(keep=4, block_size=8), codebook_size=4, n_codebooks=1, random_state=0
    ).fit(A)
    assert model.base_.modality_ == "audio"
    assert model.inverse_transform(model.transform(A)).min() < 0
    by_base = ResidualVQ(base=DCTTransformer(keep=4, block_size=8, modality="audio"), codebook_size=4, n_codebooks=1)
    assert by_base.fit(A).modality_ == "audio"  # the base's explicit modality decides when ResidualVQ's is "auto"
    with pytest.raises(ValueError, match="base has modality='image'"):
        ResidualVQ(modality="audio", base=DCTTransformer(modality="image")).fit(A)


@pytest.mark.parametrize(
    "transformer",
    [
        RawSignal(), ResolutionReducer(4), DCTTransformer(16, quantize=True),
        ResidualVQ(16, codebook_size=8, random_state=0),
    ],  # fmt: skip
    ids=lambda t: type(t).__name__,
)
def test_big_endian_pcm_gives_the_features_of_native_pcm(stereo, transformer):
    pcm = np.round(stereo[:12, :, :1024] * 32767).astype("<i2")
    model = clone(transformer).fit(pcm)
    np.testing.assert_array_equal(model.transform(pcm.astype(">i2")), model.transform(pcm))
    np.testing.assert_array_equal(clone(transformer).fit(pcm.astype(">i2")).transform(pcm), model.transform(pcm))


CROPPING_CASES = {  # transformer, and the size its reconstruction of 30x30 images holds
    "walloc": (WaLLoCTransformer(J=2, latent_dim=12), (32, 32)),
    "dct": (DCTTransformer(16), (32, 32)),
    "rvq": (ResidualVQ(n_codebooks=3, codebook_size=4, random_state=0), (32, 32)),
    "rvq-over-dct": (ResidualVQ(n_codebooks=1, codebook_size=4, base=DCTTransformer(16), random_state=0), (32, 32)),
    "raw": (RawSignal(), (30, 30)),
}
BAD_OUTPUT_SIZES = [-3, (-1, 20), 0, (20, 0), (20.7, 20), 20, (20, 20, 20), "20", True]


@pytest.mark.parametrize("name", list(CROPPING_CASES))
def test_output_size_crops_within_the_reconstruction(name):
    """output_size takes positive integers up to the reconstructed size; others are refused, never misread."""
    transformer, full = CROPPING_CASES[name]
    X = np.random.default_rng(8).random((6, 3, 30, 30)).astype(np.float32)
    model = clone(transformer).set_params(output="tensor").fit(X)
    Z = model.transform(X)
    assert model.inverse_transform(Z, output_size=(20, 21)).shape == (6, 3, 20, 21)
    assert model.inverse_transform(Z, output_size=full).shape == (6, 3, *full)
    for bad in BAD_OUTPUT_SIZES:
        with pytest.raises(ValueError, match="output_size must be"):
            model.inverse_transform(Z, output_size=bad)
    with pytest.raises(ValueError, match=f"exceeds {re.escape(str(full))}, the size these latents reconstruct"):
        model.inverse_transform(Z, output_size=(full[0] + 1, full[1]))


def test_output_size_of_resampling_encodec_and_jpeg_reconstructions(encodec_dir):
    """ResolutionReducer resamples to any positive size; EnCodec and JPEG crop their decoded signals like the codecs."""
    X = np.random.default_rng(8).random((6, 3, 30, 30)).astype(np.float32)
    reducer = ResolutionReducer(4, output="tensor").fit(X)
    assert reducer.inverse_transform(reducer.transform(X), output_size=(40, 41)).shape == (6, 3, 40, 41)
    A = np.random.default_rng(9).uniform(-0.5, 0.5, (2, 2400)).astype(np.float32)
    codec = EnCodecTransformer(model=encodec_dir, bandwidth=1.5, output="tensor").fit(A)
    codes = codec.transform(A)  # 75 frames of 32 samples
    assert codec.inverse_transform(codes, output_size=2000).shape == (2, 2000)
    with pytest.raises(ValueError, match="exceeds \\(2400,\\)"):
        codec.inverse_transform(codes, output_size=2401)
    buffer = io.BytesIO()
    Image.fromarray((X[0].transpose(1, 2, 0) * 255).astype(np.uint8)).save(buffer, format="JPEG")
    jpeg = JPEGCoefficients(keep=6, output="tensor").fit([buffer.getvalue()])
    coefficients = jpeg.transform([buffer.getvalue()])  # 4x4 blocks of 8x8
    assert jpeg.inverse_transform(coefficients, output_size=(32, 32)).shape == (1, 3, 32, 32)
    with pytest.raises(ValueError, match="exceeds \\(32, 32\\)"):
        jpeg.inverse_transform(coefficients, output_size=(33, 32))
    for model, Z in [(reducer, reducer.transform(X)), (codec, codes), (jpeg, coefficients)]:
        for bad in [-3, 0, 20.7, (20, 20, 20)]:
            with pytest.raises(ValueError, match="output_size must be"):
                model.inverse_transform(Z, output_size=bad)


def test_raw_signal_counts_bits_of_the_stored_samples():
    X = np.random.default_rng(0).random((4, 1, 8, 8))
    bits = {dtype: RawSignal().fit(X.astype(dtype)).bits_per_code_ for dtype in (bool, np.uint8, np.int16, np.float32)}
    assert bits == {bool: 1, np.uint8: 8, np.int16: 16, np.float32: 32}
    assert RawSignal().fit(torch.from_numpy(X > 0.5)).bits_per_code_ == 1
    for dtype, bits in ((torch.float16, 16), (torch.bfloat16, 16), (torch.float64, 64)):  # read as float32
        assert RawSignal().fit(torch.from_numpy(X).to(dtype)).bits_per_code_ == bits


def test_rvq_over_encodec_reads_short_clips_as_audio(encodec_dir):
    """EnCodec is an audio codec: under ResidualVQ, stereo clips too short for the "auto" rule stay audio."""
    A = np.random.default_rng(3).uniform(-0.5, 0.5, (40, 2, 48)).astype(np.float32)
    model = ResidualVQ(base=EnCodecTransformer(model=encodec_dir, bandwidth=1.5), n_codebooks=1, codebook_size=4,
                       random_state=0).fit(A)  # fmt: skip
    assert model.modality_ == "audio"  # the range reconstructions are clipped to: [-1, 1], not [0, 1]


def test_encodec_names_the_files_it_reads_for_caches_keyed_on_them(encodec_dir, monkeypatch):
    """run_benchmark's cache stamps them: "~/enc" was not expanded, so a rewritten model kept old features."""
    monkeypatch.setenv("HOME", str(encodec_dir.parent))
    for model in (encodec_dir, f"~/{encodec_dir.name}"):
        names = {f.name for f in EnCodecTransformer(model=model)._source_files()}
        assert {"config.json", "model.safetensors"} <= names
    assert EnCodecTransformer(model="nobody/not-cached")._source_files() == []  # nothing read yet: nothing stamped


def test_rvq_takes_the_codebook_count_nearest_the_requested_reduction():
    """48 samples a vector (RGB 4x4 patches): reduction=10 asks for 4.8 codes a vector; 5 give 9.6x (4 would give
    12x), and 14 asks for 3.4, so 3 give 16x with a warning that 14x is not reachable."""
    X = np.random.default_rng(0).random((40, 3, 16, 16)).astype(np.float32)
    near = ResidualVQ(10, codebook_size=8, random_state=0).fit(X)
    assert near.patch_ == 4 and near.n_codebooks_ == 5 and near.reduction_ == pytest.approx(9.6)
    with pytest.warns(UserWarning, match="reduction=14 is not reachable .* the achieved reduction_ is 16"):
        assert ResidualVQ(14, codebook_size=8, random_state=0).fit(X).n_codebooks_ == 3
