"""Rate-distortion evaluation: values checked against hand computations, CompressAI layout, JSON files."""

import json

import numpy as np
import pytest
import torch
from skimage.metrics import structural_similarity
from sklearn.preprocessing import Normalizer

from walloc_features import DCTTransformer, ResidualVQ, ResolutionReducer, WaLLoCTransformer
from walloc_features.evaluation.rate_distortion import (
    RESULT_KEYS,
    default_codecs,
    evaluate_codec,
    load_rate_distortion,
    rate_distortion,
    save_rate_distortion,
)


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """Small batches on a shared 2-core machine: one intra-op thread is several times faster."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def digits(mnist):
    """200 test digits and 600 training digits, uint8 (N, 28, 28)."""
    X, _ = mnist
    return X[:200], X[200:800]


@pytest.fixture(scope="module")
def tones():
    """48 tones (N, T) in [-1, 1]: random frequencies and phases, amplitude 0.5."""
    rng = np.random.default_rng(0)
    t = np.arange(2048) / 16000
    frequency, phase = rng.uniform(100, 2000, (48, 1)), rng.uniform(0, 2 * np.pi, (48, 1))
    return (0.5 * np.sin(2 * np.pi * frequency * t + phase)).astype(np.float32)


@pytest.fixture(scope="module")
def image_curves(digits):
    X, X_fit = digits
    return rate_distortion(default_codecs("image", (16, 4)), X, X_fit=X_fit)


def _per_sample_psnr(reference, reconstruction, data_range):
    mse = ((reference - reconstruction) ** 2).reshape(len(reference), -1).mean(axis=1)
    return 10 * np.log10(data_range**2 / mse)


# ------------------------------------------------------------------------------ evaluate_codec --
def test_resolution_psnr_and_ssim_match_a_hand_computation(digits):
    X, X_fit = digits
    X = X[:20]
    point = evaluate_codec(ResolutionReducer(reduction=4), X, X_fit=X_fit)

    reducer = ResolutionReducer(reduction=4, quantize=True).fit(X_fit)
    codes = reducer.transform(X)
    assert codes.dtype == np.uint8  # the rate is that of 8-bit pixels
    reconstruction = reducer.inverse_transform(codes).astype(np.float64)
    reference = X / 255.0
    assert point["psnr"] == pytest.approx(_per_sample_psnr(reference, reconstruction, 1.0).mean(), rel=1e-9)
    assert point["mse"] == pytest.approx(np.mean((reference - reconstruction) ** 2), rel=1e-9)
    pairs = zip(reference, reconstruction, strict=True)
    ssim = np.mean([structural_similarity(r, x, data_range=1.0) for r, x in pairs])
    assert point["ssim"] == pytest.approx(ssim, rel=1e-9)

    # the codes are decoded, not the continuous output: rounding to uint8 changes the PSNR
    continuous = ResolutionReducer(reduction=4).fit(X_fit)
    unrounded = _per_sample_psnr(reference, continuous.inverse_transform(continuous.transform(X)), 1.0).mean()
    assert abs(point["psnr"] - unrounded) > 1e-4

    assert point["name"] == "ResolutionReducer" and point["fitted_on"] == "X_fit"
    assert point["modality"] == "image" and point["n_samples"] == 20 and point["entropy_coded"] is False
    assert (point["reduction"], point["bits_per_code"], point["bits_per_sample"], point["bpp"]) == (4.0, 8, 2.0, 2.0)
    assert point["encoding_time"] > 0 and point["decoding_time"] > 0
    assert point["encode_throughput"] == pytest.approx(1 / point["encoding_time"])
    assert point["decode_throughput"] == pytest.approx(1 / point["decoding_time"])
    # torch tensors and flat rows (with input_shape) are the same signals
    from_tensor = evaluate_codec(ResolutionReducer(4), torch.from_numpy(X), X_fit=X_fit)
    assert from_tensor["psnr"] == pytest.approx(point["psnr"])
    flat = evaluate_codec(ResolutionReducer(4, input_shape=(1, 28, 28), modality="image"), X.reshape(20, -1),
                          X_fit=X_fit.reshape(len(X_fit), -1))  # fmt: skip
    assert flat["psnr"] == pytest.approx(point["psnr"])


def test_walloc_psnr_is_its_quantized_round_trip_score(digits):
    X, X_fit = digits
    codec = WaLLoCTransformer(reduction=4).fit(X_fit)
    point = evaluate_codec(codec, X, name="WaLLoC 4x", batch_size=50)
    assert point["psnr"] == pytest.approx(codec.score(X), rel=1e-5)
    assert point["name"] == "WaLLoC 4x" and point["fitted_on"] == "prefitted"
    assert codec.quantize is False and codec.batch_size == 32  # the caller's transformer is untouched
    assert point["fixed_length_bits_per_sample"] == 8 / 4 and point["encode_flops_per_sample"] > 0
    blob_bits = 8 * sum(len(blob) for blob in codec.compress(X))
    assert point["entropy_coded"] and point["bits_per_sample"] == blob_bits / X.size  # the real bytes
    assert point["compression_ratio"] == pytest.approx(8 / point["bits_per_sample"])
    assert point["compress_time"] > 0 and point["decompress_time"] > 0


def test_rgb_images_give_bits_per_pixel_and_channel_ssim(photos, random_crops):
    crops = random_crops(list(photos.values()), 24, 32, np.random.default_rng(0))
    point = evaluate_codec(WaLLoCTransformer(reduction=16), crops[:8], X_fit=crops[8:])
    assert point["bpp"] == pytest.approx(3 * point["bits_per_sample"])
    assert point["fixed_length_bits_per_sample"] == 8 / 16 and point["entropy_coded"]
    assert 0 < point["ssim"] < 1 and 10 < point["psnr"] < 40


def test_near_lossless_codec_has_very_high_psnr_and_ssim(digits):
    X, X_fit = digits
    point = evaluate_codec(DCTTransformer(keep=64), X, X_fit=X_fit)  # every coefficient, rounded to integers
    assert point["reduction"] == pytest.approx(784 / 1024)  # 28x28 padded to 32x32 blocks
    assert point["psnr"] > 50 and point["ssim"] > 0.999
    coarse = evaluate_codec(DCTTransformer(keep=4), X, X_fit=X_fit)
    assert coarse["psnr"] < point["psnr"] - 20 and coarse["ssim"] < 0.9


def test_the_rate_is_that_of_the_codes_x_gave_at_another_size_than_the_fit(digits):
    """Tensor mode encodes another size: 30x30 digits pad to 32x32 blocks, so their codes cost 900 / 256 samples a
    code, not the 32x32 fit's 4 (DCT was charged 2.75 bits a pixel for codes of 3.13)."""
    X, X_fit = digits
    fit, small = np.pad(X_fit, ((0, 0), (2, 2), (2, 2)))[:, None], np.pad(X[:20], ((0, 0), (1, 1), (1, 1)))[:, None]
    for codec, bits in ((DCTTransformer(reduction=4, output="tensor"), 11), (WaLLoCTransformer(4, output="tensor"), 8)):
        point = evaluate_codec(codec, small, X_fit=fit)
        assert point["reduction"] == 900 / 256
        assert point["fixed_length_bits_per_sample"] == pytest.approx(bits * 256 / 900)
    assert evaluate_codec(DCTTransformer(reduction=4, output="tensor"), fit[:20], X_fit=fit)["reduction"] == 4


def test_flat_frames_reconstructed_to_float32s_resolution_count_as_exact(digits):
    """A grey (128 / 255) frame decodes to float32 128 / 255, ~150 dB from the float64 reference: five of them
    raised the mean PSNR of 95 digits by 6.5 dB, uncounted."""
    X, X_fit = digits
    grey = np.concatenate([X[:95], np.full((5, 28, 28), 128, np.uint8)])
    digits_only = evaluate_codec(ResolutionReducer(4), X[:95], X_fit=X_fit)
    with pytest.warns(UserWarning, match="5 of 100 sample.* reconstructed exactly, to float32's resolution"):
        point = evaluate_codec(ResolutionReducer(4), grey, X_fit=X_fit)
    assert point["n_exact"] == 5 and point["psnr"] == pytest.approx(digits_only["psnr"])
    with pytest.warns(UserWarning, match="100 of 100"):  # every pixel kept: lossless, infinite PSNR
        assert evaluate_codec(ResolutionReducer(1), grey, X_fit=X_fit)["psnr"] == np.inf


def test_a_clip_a_few_pcm_steps_off_is_not_exact_however_high_its_psnr():
    """Silence with a 6-sample tick of 3 steps: a 16 kHz clip's mean error is tiny (~125 dB), yet a few samples are
    wrong by whole 16-bit steps, so the codec is lossy, not exact."""
    clips = np.zeros((8, 16000), np.int16)
    clips[:, 8000:8006] = 3 * np.array([1, -1, 1, -1, 1, -1], np.int16)
    point = evaluate_codec(ResolutionReducer(4), clips, X_fit=clips)
    assert point["n_exact"] == 0 and 110 < point["psnr"] < np.inf


def test_the_rate_counts_sparse_codes_by_their_shape_not_their_non_zeros(digits):
    import scipy.sparse as sp

    class SparseDCT(DCTTransformer):  # a codec whose flat codes come as a sparse matrix
        def transform(self, X):
            return sp.csr_matrix(super().transform(X))

        def inverse_transform(self, X, output_size=None):
            return super().inverse_transform(X.toarray(), output_size=output_size)

    X, X_fit = digits
    dense, sparse = (evaluate_codec(codec(reduction=4), X, X_fit=X_fit) for codec in (DCTTransformer, SparseDCT))
    assert sparse["reduction"] == dense["reduction"] == 784 / 256
    assert sparse["fixed_length_bits_per_sample"] == dense["fixed_length_bits_per_sample"]


def test_unfitted_transformer_without_X_fit_is_fitted_on_X(digits):
    X, _ = digits
    point = evaluate_codec(WaLLoCTransformer(reduction=16), X[:50])
    assert point["fitted_on"] == "X" and point["reduction"] == 16.0


# ----------------------------------------------------------------------------- rate_distortion --
def test_curves_have_compressai_shape_sorted_by_rate(image_curves):
    assert [c["name"] for c in image_curves] == ["WaLLoC", "resolution", "DCT"]
    for curve in image_curves:
        assert set(curve) == {"name", "description", "modality", "n_samples", "entropy_coded", "results"}
        assert curve["modality"] == "image" and curve["n_samples"] == 200
        assert curve["entropy_coded"] is (curve["name"] == "WaLLoC")  # the one codec with compress()
        rate = "bits of the entropy-coded blobs" if curve["entropy_coded"] else "bits per input sample of fixed-length"
        assert f"rate: {rate}" in curve["description"]
        results = curve["results"]
        assert tuple(results) == RESULT_KEYS
        assert {"psnr", "ssim", "bpp", "bits_per_sample", "reduction", "encoding_time", "decoding_time"} <= set(results)
        assert {len(v) for v in results.values()} == {2}
        rates = results["bits_per_sample"]
        assert rates == sorted(rates) and rates[0] < rates[1]
        assert results["bpp"] == rates  # one channel
        assert results["reduction"][0] > results["reduction"][1]
        assert results["psnr"][1] > results["psnr"][0] and results["ssim"][1] > results["ssim"][0]
        json.dumps(curve, allow_nan=False)  # plain JSON types only


def test_walloc_4x_beats_16x_and_costs_more_bits(image_curves):
    walloc = image_curves[0]["results"]
    assert walloc["reduction"] == [16.0, 4.0] and walloc["fixed_length_bits_per_sample"] == [0.5, 2.0]
    assert walloc["psnr"][1] > walloc["psnr"][0] + 3
    # at equal fixed-length rate WaLLoC reconstructs better than bicubic resizing
    resolution = image_curves[1]["results"]
    assert resolution["bits_per_sample"] == walloc["fixed_length_bits_per_sample"]
    assert all(w > r for w, r in zip(walloc["psnr"], resolution["psnr"], strict=True))


def test_single_transformer_per_codec_and_bad_codecs(digits):
    X, X_fit = digits
    (curve,) = rate_distortion({"DCT": DCTTransformer(16)}, X[:20], X_fit=X_fit)
    assert curve["results"]["reduction"] == [12.25]
    with pytest.raises(TypeError, match="non-empty dict"):
        rate_distortion([DCTTransformer()], X)
    with pytest.raises(ValueError, match="no transformers"):
        rate_distortion({"DCT": []}, X)


def test_audio_reports_ssim_none_and_bits_per_sample(tones):
    curves = rate_distortion(default_codecs("audio", (4, 16)), tones[:16], X_fit=tones[16:])
    assert [c["name"] for c in curves] == ["WaLLoC", "resolution", "DCT"]
    for curve in curves:
        results = curve["results"]
        assert curve["modality"] == "audio"
        assert results["ssim"] == [None, None] and results["bpp"] == [None, None]
        assert results["bits_per_sample"] == sorted(results["bits_per_sample"])
        assert all(np.isfinite(results["psnr"])) and results["psnr"][1] > results["psnr"][0]
    walloc = curves[0]["results"]
    assert walloc["fixed_length_bits_per_sample"] == [0.5, 2.0] and walloc["psnr"][1] > 20
    assert walloc["bits_per_sample"][1] < 2.0  # entropy coding saves bits at 4x
    # audio PSNR uses the [-1, 1] range (peak-to-peak 2) on the decoded int16 PCM codes
    reducer = ResolutionReducer(reduction=4, quantize=True).fit(tones[16:])
    reconstruction = reducer.inverse_transform(reducer.transform(tones[:16])).astype(np.float64)
    expected = _per_sample_psnr(tones[:16].astype(np.float64), reconstruction, 2.0).mean()
    assert curves[1]["results"]["reduction"][1] == 4.0
    assert curves[1]["results"]["psnr"][1] == pytest.approx(expected, rel=1e-9)


def test_a_silent_clip_reconstructed_exactly_does_not_make_the_curve_infinite(tones, tmp_path):
    """A zero clip decodes to zeros: its PSNR is inf, the mean was inf, JSON wrote null, the plot lost the codec."""
    X = tones[:16].copy()
    X[3] = 0
    with pytest.warns(UserWarning, match="resolution: 1 of 16 sample.* reconstructed exactly.*averages the other 15"):
        (curve,) = rate_distortion({"resolution": ResolutionReducer(reduction=4)}, X, X_fit=tones[16:])
    reducer = ResolutionReducer(reduction=4, quantize=True).fit(tones[16:])  # scored on its decoded codes
    with np.errstate(divide="ignore"):
        per_sample = _per_sample_psnr(X.astype(np.float64), reducer.inverse_transform(reducer.transform(X)), 2.0)
    assert np.isinf(per_sample[3])
    assert curve["results"]["psnr"][0] == pytest.approx(np.delete(per_sample, 3).mean(), rel=1e-6)
    assert curve["results"]["n_exact"] == [1]
    save_rate_distortion([curve], tmp_path)
    assert load_rate_distortion(tmp_path)[0]["results"]["psnr"] == curve["results"]["psnr"]  # a number, not null
    with pytest.warns(UserWarning, match="16 of 16 sample.* reconstructed exactly.* so 'psnr' is infinite too"):
        (silent,) = rate_distortion({"resolution": ResolutionReducer(reduction=4)}, np.zeros_like(X), X_fit=tones[16:])
    assert silent["results"]["psnr"] == [np.inf] and silent["results"]["n_exact"] == [16]


# ------------------------------------------------------------------------------------- files --
def test_json_round_trip(image_curves, tmp_path):
    paths = save_rate_distortion(image_curves, tmp_path / "rd")
    assert [p.name for p in paths] == ["walloc.json", "resolution.json", "dct.json"]
    assert json.loads(paths[0].read_text())["results"]["psnr"] == image_curves[0]["results"]["psnr"]
    assert paths[0].read_text().startswith('{\n  "name": "WaLLoC"')  # indent 2
    loaded = load_rate_distortion(tmp_path / "rd")  # sorted by file name
    assert sorted(loaded, key=lambda c: c["name"]) == sorted(image_curves, key=lambda c: c["name"])
    assert load_rate_distortion(paths) == image_curves
    assert load_rate_distortion(paths[0]) == [image_curves[0]]


def test_replace_leaves_only_this_sweeps_records(image_curves, tmp_path):
    """A quick sweep saved over a full one kept its ResidualVQ file: load_rate_distortion mixed the two sweeps."""
    save_rate_distortion([*image_curves, {"name": "ResidualVQ", "results": {"psnr": [1.0]}}], tmp_path)
    theirs = {"name": "bmshj2018-factorized", "description": "CompressAI", "results": {"psnr": [30.0], "bpp": [0.3]}}
    (tmp_path / "bmshj2018-factorized.json").write_text(json.dumps(theirs))  # a reference curve: not ours
    (tmp_path / "notes.json").write_text('{"author": "me"}')
    save_rate_distortion(image_curves[:2], tmp_path)
    assert len(list(tmp_path.glob("*.json"))) == len(image_curves) + 3  # without replace, earlier files stay
    paths = save_rate_distortion(image_curves[:2], tmp_path, replace=True)
    kept = ["bmshj2018-factorized.json", "notes.json"]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([*(p.name for p in paths), *kept])
    assert load_rate_distortion(paths) == image_curves[:2]  # the mark is not part of the records


def test_json_is_strict_and_slugs_are_unique(tmp_path):
    records = [
        {"name": "WaLLoC (conv)", "results": {"psnr": [np.float32(30.0), float("inf"), float("nan")]}},
        {"name": "walloc conv", "results": {"ssim": [None]}},
    ]
    paths = save_rate_distortion(records, tmp_path)
    assert [p.name for p in paths] == ["walloc-conv.json", "walloc-conv-2.json"]
    text = paths[0].read_text()
    assert "Infinity" not in text and "NaN" not in text
    assert load_rate_distortion(paths)[0]["results"]["psnr"] == [30.0, None, None]
    (tmp_path / "other.json").write_text("[1, 2]")
    with pytest.raises(ValueError, match="not a rate-distortion record"):
        load_rate_distortion(tmp_path)
    for damaged in (b'{"name": "cut sh', b"\xff\xfe{"):  # were a JSONDecodeError / UnicodeDecodeError, no path
        (tmp_path / "other.json").write_bytes(damaged)
        with pytest.raises(ValueError, match="other.json is not a rate-distortion record"):
            load_rate_distortion(tmp_path)
    with pytest.raises(FileNotFoundError):
        load_rate_distortion(tmp_path / "missing")
    with pytest.raises(ValueError, match="'name'"):
        save_rate_distortion([{"results": {}}], tmp_path)


# ------------------------------------------------------------------------------------ errors --
def test_errors(digits, tones):
    X, X_fit = digits
    with pytest.raises(ValueError, match="empty"):
        evaluate_codec(WaLLoCTransformer(), X[:0], X_fit=X_fit)
    with pytest.raises(ValueError, match="empty"):
        evaluate_codec(WaLLoCTransformer(), X[:5], X_fit=X_fit[:0])
    with pytest.raises(TypeError, match="inverse_transform"):
        evaluate_codec(Normalizer(), X[:5].reshape(5, -1))
    with pytest.raises(TypeError, match="instance"):
        evaluate_codec(WaLLoCTransformer, X[:5])
    with pytest.raises(ValueError, match="X_fit is image"):
        evaluate_codec(WaLLoCTransformer(), tones[:4], X_fit=X_fit)
    with pytest.raises(ValueError, match="batch_size"):
        evaluate_codec(WaLLoCTransformer(), X[:5], batch_size=0)
    fitted_on_images = ResolutionReducer(4).fit(X_fit)
    with pytest.raises(ValueError, match="fitted on image"):
        evaluate_codec(fitted_on_images, tones[:4])


def test_a_prefitted_quantizer_fitted_for_vectors_is_evaluated_on_its_codes(digits):
    """ResidualVQ's layout follows ``quantize`` at transform time: one fitted for vectors rates its codes."""
    X, X_fit = digits
    vectors = ResidualVQ(n_codebooks=1, codebook_size=16, quantize=False, random_state=0).fit(X_fit[:100])
    codes = ResidualVQ(n_codebooks=1, codebook_size=16, random_state=0).fit(X_fit[:100])
    point, reference = evaluate_codec(vectors, X[:10]), evaluate_codec(codes, X[:10])
    assert point["bits_per_sample"] == pytest.approx(4 / 16) and point["psnr"] == reference["psnr"]
    assert not vectors.quantize  # the caller's transformer is left as it was
    refitted = evaluate_codec(vectors, X[:10], X_fit=X_fit[:100])  # with X_fit a clone is fitted
    assert refitted["psnr"] == reference["psnr"]


def test_default_codecs():
    codecs = default_codecs("audio", 8, include_rvq=True)
    assert list(codecs) == ["WaLLoC", "resolution", "DCT", "ResidualVQ"]
    assert all(len(v) == 1 and v[0].reduction == 8 and v[0].modality == "audio" for v in codecs.values())
    with pytest.raises(ValueError, match="modality"):
        default_codecs("video")
    with pytest.raises(ValueError, match="reductions"):
        default_codecs("image", (0.5,))


def test_rgb_curves_also_carry_compressai_psnr_rgb_key():
    from walloc_features import ResolutionReducer
    from walloc_features.evaluation import rate_distortion

    rgb = np.random.default_rng(0).integers(0, 256, (6, 3, 32, 32), dtype=np.uint8)
    (curve,) = rate_distortion({"resize": ResolutionReducer(4)}, rgb, X_fit=rgb)
    assert curve["results"]["psnr-rgb"] == curve["results"]["psnr"]
