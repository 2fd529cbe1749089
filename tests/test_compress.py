"""compress / decompress: exact round trips, real savings, and blobs that decode exactly or are refused."""

import copy
import json
import pickle
import struct
import zlib

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn.exceptions import NotFittedError

from walloc_features import WaLLoCTransformer
from walloc_features.codecs.blob import (
    FORMAT_VERSION,
    MAGIC,
    MAX_CODES,
    BlobError,
    _varint,
    pack_blob,
    pack_codes,
    stored_size,
    unpack_blob,
    unpack_codes,
)
from walloc_features.codecs.entropy import ContextEntropyModel
from walloc_features.evaluation.storage import compare_storage, tile_latents


@pytest.fixture(scope="module")
def digits_codec(mnist):
    X, _ = mnist
    return WaLLoCTransformer(reduction=4).fit(X[:2000])


@pytest.fixture(scope="module")
def digit_blobs(digits_codec, mnist):
    X, _ = mnist
    return digits_codec.compress(X[2000:2050])


@pytest.fixture(scope="module")
def photo_crops(photos, random_crops):
    return random_crops(list(photos.values()), 160, 64, np.random.default_rng(0))


@pytest.fixture(scope="module")
def speech():
    from walloc_features.datasets import load_speech_commands

    X, _, speakers = load_speech_commands(n_speakers=12)
    return X[speakers < 8], X[speakers >= 8]


# ------------------------------------------------------------------------------ round trips --
@pytest.mark.parametrize("output", ["flat", "tensor"])
def test_decompress_equals_quantized_transform_on_digits(digits_codec, mnist, output):
    X, _ = mnist
    codec = digits_codec.set_params(output=output)
    try:
        codes = codec.decompress(codec.compress(X[2000:2100]))
        expected = codec.set_params(quantize=True).transform(X[2000:2100])
    finally:
        codec.set_params(output="flat", quantize=False)
    assert codes.dtype == np.int8 and np.array_equal(codes, expected)


def test_round_trip_on_held_out_photos_of_another_size(photos, photo_crops):
    codec = WaLLoCTransformer(reduction=16, output="tensor", quantize=True).fit(photo_crops)
    photo = photos["coffee"].transpose(2, 0, 1)[None]  # 400 x 600, not the 64 x 64 of fit
    blobs = codec.compress(photo)
    assert np.array_equal(codec.decompress(blobs), codec.transform(photo))
    assert 8 * len(blobs[0]) / (400 * 600) < 0.6 * 3 * 8 / 16  # 0.81 bpp: 54% of the fixed-length 1.5


def test_round_trip_on_held_out_speech_and_saves_bits(speech):
    fit, held_out = speech
    codec = WaLLoCTransformer(reduction=20, quantize=True).fit(fit)
    blobs = codec.compress(held_out)
    assert np.array_equal(codec.decompress(blobs), codec.transform(held_out))
    bits_per_sample = 8 * sum(map(len, blobs)) / held_out.size
    assert bits_per_sample < 0.5 * 8 / codec.reduction_  # under half the fixed-length rate, headers included


@pytest.mark.parametrize("latent_bits", [4, 12, 16])
def test_other_code_widths_round_trip(mnist, latent_bits):
    X, _ = mnist
    codec = WaLLoCTransformer(reduction=4, latent_bits=latent_bits, quantize=True).fit(X[:500])
    codes = codec.transform(X[500:520])
    assert np.array_equal(codec.decompress(codec.compress(X[500:520])), codes)


def test_compression_is_deterministic_and_survives_save_load_and_pickle(digits_codec, digit_blobs, mnist, tmp_path):
    X, _ = mnist
    assert digits_codec.compress(X[2000:2050]) == digit_blobs
    refit = WaLLoCTransformer(reduction=4).fit(X[:2000])
    assert refit.compress(X[2000:2050]) == digit_blobs  # same data, same bytes
    loaded = WaLLoCTransformer.load(digits_codec.save(tmp_path / "codec"))
    unpickled = pickle.loads(pickle.dumps(digits_codec))
    expected = digits_codec.decompress(digit_blobs)
    for other in (loaded, unpickled):
        assert np.array_equal(other.decompress(digit_blobs), expected)
        assert other.compress(X[2000:2050]) == digit_blobs


def test_codec_saved_without_entropy_model_asks_for_one(digits_codec, mnist, tmp_path):
    X, _ = mnist
    path = digits_codec.save(tmp_path / "old")
    config = json.loads((path / "config.json").read_text())
    config.update(format_version=1, entropy_model=None)  # what an older version wrote (without its own digest)
    del config["config_sha256"]
    (path / "config.json").write_text(json.dumps(config))
    old = WaLLoCTransformer.load(path)
    assert np.array_equal(old.transform(X[:5]), digits_codec.transform(X[:5]))
    with pytest.raises(NotFittedError, match="fit_entropy_model"):
        old.compress(X[:5])
    old.fit_entropy_model(X[:1000])
    assert np.array_equal(old.decompress(old.compress(X[:5])), old.set_params(quantize=True).transform(X[:5]))


def test_entropy_model_of_a_checkpoint_loaded_without_samples_reads_a_bounded_subset(tmp_path, monkeypatch):
    """from_checkpoint without X knows no latent grid (a 1x1 placeholder): the subset must follow X's own
    grid, else every sample was encoded and held at once (400 256x256 images: +268 MB and 1.7 s)."""
    from walloc_features.codecs import WaLLoCCodec
    from walloc_features.codecs.published import save_published
    from walloc_features.features import _compress

    save_published(WaLLoCCodec(3, latent_dim=12, levels=3), tmp_path / "codec.pth")
    seen = []
    fit = ContextEntropyModel.fit
    monkeypatch.setattr(ContextEntropyModel, "fit", lambda model, codes: seen.append(codes.shape) or fit(model, codes))
    monkeypatch.setattr(_compress, "ENTROPY_FIT_POSITIONS", 10 * 8 * 8)  # ten 64x64 images' 8x8 latent grids
    X = np.random.default_rng(0).integers(0, 256, (40, 3, 64, 64), dtype=np.uint8)
    model = WaLLoCTransformer.from_checkpoint(tmp_path / "codec.pth")
    model.fit_entropy_model(X)
    assert seen == [(10, 12, 8, 8)]
    blobs = model.compress(X[:3])
    np.testing.assert_array_equal(model.decompress(blobs), model.set_params(quantize=True).transform(X[:3]))


def test_evaluate_style_rate_beats_upstream_tiling_on_speech(speech):
    fit, held_out = speech
    codec = WaLLoCTransformer(reduction=20, output="tensor").fit(fit)
    table = compare_storage(codec, held_out[:40], formats=("WebP", "PNG"), modes=("gray",))
    assert table.loc["ours", "relative_to_best_upstream"] < 0.9  # 0.83 with 60 speakers (examples/)


def test_storage_comparison_on_a_photo(photos, photo_crops):
    codec = WaLLoCTransformer(reduction=16).fit(photo_crops)
    photo = photos["astronaut"].transpose(2, 0, 1)[None, :, :64, :64]
    table = compare_storage(codec, photo)
    assert list(table.index) == ["ours"] + [f"{f} ({m})" for m in ("rgb", "gray") for f in ("WebP", "PNG", "TIFF")]
    assert table["bpp"].iloc[0] == pytest.approx(8 * table["bytes"].iloc[0] / 64**2)
    assert table["compression_ratio"].iloc[0] == pytest.approx(8 / table["bits_per_sample"].iloc[0])
    assert table.loc["ours", "relative_to_best_upstream"] < 1.05
    assert codec.output == "flat" and codec.quantize is False  # the caller's transformer is untouched
    tensor_codec = WaLLoCTransformer(reduction=16, output="tensor").fit(photo_crops)
    whole = compare_storage(tensor_codec, photos["astronaut"].transpose(2, 0, 1)[None], formats=("PNG",))
    assert whole["bpp"].iloc[0] == pytest.approx(8 * whole["bytes"].iloc[0] / 512**2)  # the photo's pixels, not fit's


def test_tiling_matches_upstream_layout():
    codes = np.arange(-6, 6, dtype=np.int8).reshape(12, 1, 1).repeat(2, 1).repeat(3, 2)
    image = np.asarray(tile_latents(codes))
    assert image.shape == (4, 6, 3)  # 4 RGB tiles of 2 x 3 on a 2 x 2 grid
    assert list(image[0, 0]) == [122, 123, 124] and list(image[2, 3]) == [131, 132, 133]
    assert np.asarray(tile_latents(codes, mode="gray")).shape == (6, 12)  # 12 tiles: 3 rows of 4
    with pytest.raises(ValueError, match="uint8"):
        tile_latents(codes.astype(np.int16), bits=12)


# ---------------------------------------------------------------------------------- refusals --
def test_blob_header_names_format_shape_and_model(digits_codec, digit_blobs):
    blob = digit_blobs[0]
    assert blob[:3] == MAGIC and blob[3] == 1  # range-coded: version 1, as releases before the stored flag wrote
    assert blob[4] == 8 | (3 - 1) << 5  # 8-bit codes of rank 3: (4, 14, 14)... as varints next
    assert blob[5:8] == bytes(digits_codec.latent_shape_)
    assert blob[8:10] == digits_codec.entropy_model_.fingerprint[:2]
    seed = zlib.crc32(digits_codec.entropy_model_.fingerprint)  # the CRC covers the full fingerprint
    assert struct.unpack("<I", blob[-4:])[0] == zlib.crc32(blob[:-4], seed)


def test_bad_blobs_are_refused_with_the_reason(digits_codec, digit_blobs, mnist):
    X, _ = mnist
    blob = digit_blobs[0]
    cases = {
        "truncated": blob[:6],
        "checksum": blob[:-6] + bytes([blob[-6] ^ 1]) + blob[-5:],
        "not a walloc-features blob": b"\x89PNG\r\n\x1a\n" + blob[8:],
        "newer": blob[:3] + bytes([FORMAT_VERSION + 1]) + blob[4:],
    }
    for reason, bad in cases.items():
        with pytest.raises(BlobError, match=reason):
            digits_codec.decompress([bad])
    other = WaLLoCTransformer(reduction=4).fit(X[3000:4000])
    with pytest.raises(BlobError, match="another entropy model"):
        other.decompress([blob])
    with pytest.raises(BlobError, match="blob 1:"):  # which sample failed
        digits_codec.decompress([blob, blob[:-1]])
    with pytest.raises(TypeError, match="list of blobs"):
        digits_codec.decompress(blob)
    with pytest.raises(TypeError, match="must be bytes"):
        digits_codec.decompress([np.zeros(4)])
    assert issubclass(BlobError, ValueError)


def test_unfitted_transformer_cannot_compress(mnist):
    with pytest.raises(NotFittedError):
        WaLLoCTransformer().compress(mnist[0][:2])


def _corrupt(blob: bytes, data) -> bytes:
    """One accidental corruption of ``blob``: bit flips, truncation, extension, splice or garbage."""
    kind = data.draw(st.sampled_from(["flip", "truncate", "extend", "splice", "garbage"]))
    if kind == "flip":
        raw = bytearray(blob)
        for _ in range(data.draw(st.integers(1, 8))):
            i = data.draw(st.integers(0, len(raw) - 1))
            raw[i] ^= 1 << data.draw(st.integers(0, 7))
        return bytes(raw)
    if kind == "truncate":
        return blob[: data.draw(st.integers(0, len(blob) - 1))]
    if kind == "extend":
        return blob + data.draw(st.binary(min_size=1, max_size=16))
    if kind == "splice":
        cut = data.draw(st.integers(1, len(blob) - 1))
        return blob[:cut] + data.draw(st.binary(min_size=1, max_size=len(blob)))
    return data.draw(st.binary(max_size=2 * len(blob)))


@pytest.fixture(scope="module")
def fuzz_blobs(digits_codec, digit_blobs, noise_and_digits):
    """Range-coded digits and stored checkerboards: both kinds of payload."""
    stored = [blob for blob in digits_codec.compress(noise_and_digits) if blob[4] & 0x80]
    assert len(stored) == 3
    return digit_blobs[:20] + stored * 5


@settings(max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_fuzz_corrupted_blobs_are_always_refused(digits_codec, fuzz_blobs, data):
    blob = fuzz_blobs[data.draw(st.integers(0, len(fuzz_blobs) - 1))]
    bad = _corrupt(blob, data)
    if bad == blob:
        return
    with pytest.raises(BlobError):
        digits_codec.decompress([bad])


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_fuzz_forged_payloads_never_crash_or_leave_the_code_range(digits_codec, fuzz_blobs, data):
    """Corrupted payloads behind a valid checksum (a forger's blob): an error or in-range codes, never a crash."""
    blob = fuzz_blobs[data.draw(st.integers(0, len(fuzz_blobs) - 1))]
    fingerprint = digits_codec.entropy_model_.fingerprint
    header, payload = blob[:10], bytearray(blob[10:-4])
    for _ in range(data.draw(st.integers(1, 4))):
        payload[data.draw(st.integers(0, len(payload) - 1))] = data.draw(st.integers(0, 255))
    body = header + bytes(payload)
    forged = body + struct.pack("<I", zlib.crc32(body, zlib.crc32(fingerprint)))
    try:
        codes = digits_codec.decompress([forged])
    except BlobError:
        return
    low, high = digits_codec.code_range_
    assert codes.shape == (1, int(np.prod(digits_codec.latent_shape_))) and low <= codes.min() <= codes.max() <= high


# ------------------------------------------------------------------------------- the model --
def test_context_model_learns_spatial_structure():
    rng = np.random.default_rng(0)
    smooth = np.cumsum(rng.integers(-1, 2, size=(32, 2, 16, 16)), axis=-1).clip(-127, 127)
    model = ContextEntropyModel(2, 2, (-127, 127)).fit(smooth)
    payload = model.encode(smooth[0])
    assert np.array_equal(model.decode(payload, smooth[0].shape), smooth[0])
    assert 8 * len(payload) / smooth[0].size < 2.0  # a random walk costs ~log2(3) bits a step
    noise = rng.integers(-127, 128, size=(2, 16, 16))
    assert np.array_equal(model.decode(model.encode(noise), noise.shape), noise)  # unseen codes still code


def test_context_model_refuses_bad_codes():
    model = ContextEntropyModel(2, 1, (-7, 7)).fit(np.zeros((4, 2, 10), dtype=np.int8))
    with pytest.raises(TypeError, match="integers"):
        model.encode(np.zeros((2, 10)))
    with pytest.raises(ValueError, match=r"lie in \[-7, 7\]"):
        model.encode(np.full((2, 10), 8))
    with pytest.raises(ValueError, match="C=2"):
        model.encode(np.zeros((3, 10), dtype=np.int8))


@pytest.mark.parametrize("ndim, bits", [(2, 8), (1, 8), (2, 12)])  # 12 bits: the low bits sent uniformly
def test_a_batch_of_payloads_decodes_in_lockstep_to_each_ones_codes(ndim, bits, monkeypatch):
    rng = np.random.default_rng(3)
    high = 2 ** (bits - 1) - 1
    grid = (6, 5) if ndim == 2 else (23,)
    codes = np.cumsum(rng.integers(-3, 4, size=(40, 3, *grid)), axis=-1).clip(-high, high)
    model = ContextEntropyModel(3, ndim, (-high, high)).fit(codes[:20])
    payloads = [model.encode(c) for c in codes]
    np.testing.assert_array_equal(model.decode_batch(payloads, codes.shape[1:]), codes)
    assert all(np.array_equal(model.decode(p, c.shape), c) for p, c in zip(payloads[:3], codes, strict=False))
    monkeypatch.setattr("walloc_features.codecs.entropy.ENCODE_TABLE_ENTRIES", 1)  # one payload a lockstep pass
    np.testing.assert_array_equal(model.decode_batch(payloads[:5], codes.shape[1:]), codes[:5])


@pytest.mark.parametrize("table_entries", [1 << 22, 1])  # one lockstep pass, or one per payload
def test_a_payload_that_does_not_decode_is_named_by_its_index(table_entries, monkeypatch):
    from walloc_features.codecs.entropy import PayloadError

    monkeypatch.setattr("walloc_features.codecs.entropy.ENCODE_TABLE_ENTRIES", table_entries)
    rng = np.random.default_rng(4)
    codes = rng.integers(-7, 8, size=(6, 2, 4, 4))
    model = ContextEntropyModel(2, 2, (-7, 7)).fit(codes)
    payloads = [model.encode(c) for c in codes]
    for bad, reason in [(payloads[3] + payloads[3], "data beyond the codes"), (payloads[3][:-2], "32-bit words")]:
        with pytest.raises(PayloadError, match=reason) as caught:
            model.decode_batch([*payloads[:3], bad, *payloads[4:]], codes.shape[1:])
        assert caught.value.index == 3
    with pytest.raises(ValueError, match="data beyond the codes"):  # one payload: a plain ValueError
        model.decode(payloads[0] + payloads[0], codes.shape[1:])


def test_a_forged_header_declaring_a_huge_grid_is_refused_before_decoding(digits_codec):
    """A 16-byte blob declaring a 16384 x 16384 grid made tensor-mode decompress allocate 4 GB of scratch."""
    fingerprint = digits_codec.entropy_model_.fingerprint
    channels = digits_codec.latent_shape_[0]
    side = int((MAX_CODES / channels) ** 0.5) + 1  # just over the limit
    body = struct.pack("<3sBB", b"WLC", 1, digits_codec.bits_per_code_ | 2 << 5)
    body += bytes(_varint(channels) + _varint(side) + _varint(side)) + fingerprint[:2]  # and no payload at all
    forged = body + struct.pack("<I", zlib.crc32(body, zlib.crc32(fingerprint)))
    tensor_codec = copy.deepcopy(digits_codec).set_params(output="tensor")  # flat output checks the shape first
    with pytest.raises(BlobError, match=f"codes \\({channels}, {side}, {side}\\), more than .*MAX_CODES = {MAX_CODES}"):
        tensor_codec.decompress([forged])
    with pytest.raises(ValueError, match=f"is more than one blob holds \\({MAX_CODES}\\); compress smaller samples"):
        pack_blob((channels, side, side), digits_codec.bits_per_code_, fingerprint, b"")  # so compress never makes one


def test_a_refitted_context_model_codes_as_a_fresh_fit():
    """fit drops the coding tables an earlier encode built: a model refitted on other codes writes the payloads a
    fresh fit writes, and a copy made from its state decodes them (stale tables broke both)."""
    rng = np.random.default_rng(5)
    first = np.cumsum(rng.integers(-1, 2, size=(16, 2, 8, 8)), axis=-1).clip(-127, 127)
    second = rng.integers(-40, 41, size=(16, 2, 8, 8))
    model = ContextEntropyModel(2, 2, (-127, 127)).fit(first)
    model.encode(first[0])  # builds and keeps the tables of the first fit
    payload = model.fit(second).encode(second[0])
    assert payload == ContextEntropyModel(2, 2, (-127, 127)).fit(second).encode(second[0])
    copy_ = ContextEntropyModel.from_state(model.get_config(), model.get_arrays())
    np.testing.assert_array_equal(copy_.decode(payload, second[0].shape), second[0])


def test_a_wide_payload_decoding_outside_the_code_range_is_refused():
    """12-bit codes (the low bits sent uniformly) from a forger whose range reaches -2048: the payload decodes,
    but to a code outside (-2047, 2047), which is refused, not returned."""
    from walloc_features.codecs.entropy import PayloadError

    codes = np.random.default_rng(6).integers(-2047, 2048, size=(8, 1, 4, 4))
    model = ContextEntropyModel(1, 2, (-2047, 2047)).fit(codes)
    forger = ContextEntropyModel.from_state({**model.get_config(), "code_range": (-2048, 2047)}, model.get_arrays())
    forged = codes[0].copy()
    forged[0, 0, 0] = -2048
    payload = forger.encode(forged)
    np.testing.assert_array_equal(forger.decode(payload, forged.shape), forged)  # a well-formed payload
    with pytest.raises(PayloadError, match="outside the model's range"):
        model.decode(payload, forged.shape)


def _reversioned(blob: bytes, version: int, fingerprint: bytes) -> bytes:
    """``blob`` with another version byte and its checksum made valid again (what an old or forged writer gives)."""
    body = blob[:3] + bytes([version]) + blob[4:-4]
    return body + struct.pack("<I", zlib.crc32(body, zlib.crc32(fingerprint)))


def test_range_coded_blobs_keep_version_1_and_its_layout(digits_codec, digit_blobs, noise_and_digits):
    """A range-coded blob is written as version 1, byte for byte what releases before the stored flag wrote and
    read (they refuse a stored one by its version: 2). A version-1 layout byte gives the rank bits 5-7: rank 5 sets
    bit 7 there, which is not the stored flag."""
    assert {blob[3] for blob in digit_blobs} == {1}
    assert [blob[3] for blob in digits_codec.compress(noise_and_digits)] == [1, FORMAT_VERSION, FORMAT_VERSION,
                                                                            FORMAT_VERSION, 1]  # fmt: skip
    fingerprint = digits_codec.entropy_model_.fingerprint
    body = struct.pack("<3sBB", MAGIC, 1, 8 | (5 - 1) << 5) + bytes([1] * 5) + fingerprint[:2]  # shape 1 x 1 x ...
    old = body + struct.pack("<I", zlib.crc32(body, zlib.crc32(fingerprint)))
    assert unpack_blob(old, fingerprint=fingerprint, bits=8, rank=5) == ((1, 1, 1, 1, 1), b"", False)
    with pytest.raises(ValueError, match="cannot frame 8-bit codes of rank 5"):  # it would set the stored flag
        pack_blob((1, 1, 1, 1, 1), 8, fingerprint, b"")


def test_blobs_of_an_unknown_older_version_are_refused_by_version(digits_codec, digit_blobs):
    """A version byte below the first format (checksum intact) is refused as such, as a newer one is."""
    older = _reversioned(digit_blobs[0], 0, digits_codec.entropy_model_.fingerprint)
    with pytest.raises(BlobError, match="format version 0; this walloc-features reads versions \\(1, 2\\)"):
        digits_codec.decompress([older])


# ------------------------------------------------------------------------------ stored codes --
@pytest.fixture(scope="module")
def noise_and_digits(mnist):
    """Checkerboards of 2-pixel squares (three phases), unlike the digits the codec's entropy model
    was fitted on, between two held-out digits."""
    X, _ = mnist
    board = np.kron(np.indices((14, 14)).sum(0) % 2, np.ones((2, 2)))
    boards = np.stack([255 * board, 255 * (1 - board), 255 * np.roll(board, 1, axis=1)]).astype(X.dtype)
    return np.concatenate([X[2100:2101], boards, X[2101:2102]])


def test_samples_unlike_the_fit_data_are_stored_not_expanded(digits_codec, noise_and_digits):
    """The coder fitted on digits spends more than the fixed-length bits on a checkerboard (a residual it never saw
    costs about 20 bits): such samples are stored at the fixed length instead, and still round-trip exactly."""
    blobs = digits_codec.compress(noise_and_digits)
    codes = digits_codec.set_params(quantize=True).transform(noise_and_digits)
    digits_codec.set_params(quantize=False)
    fixed = codes.shape[1] * digits_codec.bits_per_code_ // 8  # bytes of the fixed-length codes
    header = 14  # 11 bytes + 3 of shape (3 varints of one byte each)
    model = digits_codec.entropy_model_
    for blob, sample in zip(blobs[1:4], codes[1:4].reshape(3, *digits_codec.latent_shape_), strict=True):
        assert len(model.encode(sample)) > fixed  # what the coder alone would have written
        assert blob[4] & 0x80 and len(blob) == header + fixed
    for blob in (blobs[0], blobs[4]):  # digits stay range-coded, and smaller than stored
        assert not blob[4] & 0x80 and len(blob) < header + fixed
    np.testing.assert_array_equal(digits_codec.decompress(blobs), codes)  # coded and stored, in their order
    np.testing.assert_array_equal(digits_codec.decompress(blobs[::-1]), codes[::-1])


def test_stored_blobs_are_refused_when_their_codes_do_not_fit(digits_codec, noise_and_digits):
    """A stored payload of the wrong size, or holding a code outside the code range (checksum intact), is refused:
    stored samples too are decoded exactly or not at all."""
    fingerprint, shape = digits_codec.entropy_model_.fingerprint, tuple(digits_codec.latent_shape_)
    n = int(np.prod(shape))
    short = pack_blob(shape, 8, fingerprint, bytes(n - 1), stored=True)
    with pytest.raises(BlobError, match=f"blob 1: stored payload of {n - 1} bytes; {n} codes of 8 bits take {n}"):
        digits_codec.decompress([digits_codec.compress(noise_and_digits[:1])[0], short])
    wide = pack_blob(shape, 8, fingerprint, bytes([254]) * (n - 1) + bytes([255]), stored=True)  # 255 - 127 = 128
    with pytest.raises(BlobError, match="blob 0: stored code 128 is outside the code range \\(-127, 127\\)"):
        digits_codec.decompress([wide])
    np.testing.assert_array_equal(
        digits_codec.decompress([pack_blob(shape, 8, fingerprint, bytes([254]) * n, stored=True)]), 127
    )
    boards = digits_codec.compress(noise_and_digits[1:3])  # two stored blobs, then a broken range-coded one
    coded = digits_codec.compress(noise_and_digits[:1])[0]
    body = coded[:-5]  # the payload one byte short (not whole 32-bit words), its checksum redone
    broken = body + struct.pack("<I", zlib.crc32(body, zlib.crc32(fingerprint)))
    with pytest.raises(BlobError, match="blob 2: .*32-bit words"):
        digits_codec.decompress([*boards, broken])


@pytest.mark.parametrize("bits", [1, 3, 8, 11, 12, 16])
def test_stored_codes_round_trip_at_every_width(bits):
    """pack_codes / unpack_codes: ``bits``-bit fields, least significant bit first, across the chunk boundary of
    the bit-packing and with a count that does not fill the last byte."""
    count = (1 << 16) + 13
    offsets = np.random.default_rng(bits).integers(0, 1 << bits, size=count)
    offsets[:2] = [0, (1 << bits) - 1]
    payload = pack_codes(offsets, bits)
    assert len(payload) == stored_size(count, bits) == -(-count * bits // 8)
    np.testing.assert_array_equal(unpack_codes(payload, count, bits), offsets)
    assert pack_codes([1, 2], 3) == bytes([0b010001])  # 1 = 001, then 2 = 010 above it
    with pytest.raises(ValueError, match=f"offsets must lie in \\[0, 2\\*\\*{bits}\\)"):
        pack_codes([1 << bits], bits)


def test_stored_blobs_round_trip_at_12_bits(mnist):
    """Codes wider than a byte are stored in bit fields too (12 bits: 1.5 bytes a code)."""
    X, _ = mnist
    codec = WaLLoCTransformer(reduction=4, latent_bits=12).fit(X[:300])
    noise = np.random.default_rng(8).integers(0, 256, size=(2, *X.shape[1:]), dtype=X.dtype)
    blobs = codec.compress(noise)
    assert all(blob[4] & 0x80 for blob in blobs)
    np.testing.assert_array_equal(codec.decompress(blobs), codec.set_params(quantize=True).transform(noise))
