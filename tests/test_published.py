"""Published WaLLoC checkpoints: load them, reproduce the reference package, export back, refuse bad files.

The reference is the authors' ``walloc`` package, version 1.2.1 (a test-only dependency; its tests
skip with the reason when it cannot be imported). No checkpoint is downloaded: each test builds the
published architectures with their published configs and random weights, and saves them as the
authors do (a ``.pth`` state dict plus a ``.json`` config).
"""

import contextlib
import json
import pickle
import types
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline

from walloc_features import WaLLoCTransformer
from walloc_features.codecs import WaLLoCCodec
from walloc_features.codecs.published import CheckpointError, load_published_codec, save_published
from walloc_features.datasets import synthesize

pytestmark = [
    pytest.mark.filterwarnings("ignore:pkg_resources is deprecated:UserWarning"),  # the reference's import
    pytest.mark.filterwarnings("ignore:`torch.nn.utils.weight_norm` is deprecated:FutureWarning"),  # its decoder
]

#: The published configs (Hugging Face danjacobellis/walloc), with some of the training keys the
#: real files carry, which loaders must ignore.
TRAINING_KEYS = {"batch_size": 32, "epochs": 30, "max_lr": 3e-05, "\u03c6": 0.0}
PUBLISHED = {
    "RGB_16x": dict(channels=3, J=3, Ne=None, Nd=768, latent_dim=12, latent_bits=8, lightweight_encode=True),
    "RGB_4x": dict(channels=3, J=3, Ne=None, Nd=768, latent_dim=48, latent_bits=8, lightweight_encode=True),
    "stereo_5x": dict(channels=2, J=8, Ne=None, Nd=768, latent_dim=108, latent_bits=8, lightweight_encode=True,
                      post_filter=True),
    "stereo_20x": dict(channels=2, J=8, Ne=None, Nd=768, latent_dim=27, latent_bits=8, lightweight_encode=True,
                       post_filter=True),
}  # fmt: skip


def _walloc():
    """The reference package, or a skip that says why it is missing."""
    try:
        import walloc.walloc as reference
    except ImportError as exc:  # not installed, or pytorch_wavelets' pkg_resources on setuptools>=81
        pytest.skip(f"the reference package walloc==1.2.1 is not importable ({type(exc).__name__}: {exc})")
    return reference


@pytest.fixture(scope="module")
def photo_crops(photos, random_crops):
    return random_crops(list(photos.values()), 3, 64, np.random.default_rng(0))


@pytest.fixture(scope="module")
def stereo_speech():
    """Two stereo clips of synthetic speech, one word per channel, peak 1 (0.5 inside the codec)."""
    words = [("left", "right"), ("yes", "no")]
    clips = []
    for pair in words:
        channels = [np.resize(np.trim_zeros(synthesize(w)), 8192) for w in pair]
        clips.append(np.stack([c / np.abs(c).max() for c in channels]))
    return np.stack(clips).astype(np.float32)


def _reference_codec(reference, name, sample):
    """A published architecture with random weights whose latents fill the code range on ``sample``."""
    config = PUBLISHED[name]
    cls = reference.Codec1D if "post_filter" in config else reference.Codec2D
    torch.manual_seed(sorted(PUBLISHED).index(name))
    codec = cls(**config).eval()
    with torch.no_grad():
        codec.encoder[0].weight.mul_(60 / codec.encoder[0](codec.wavelet_analysis(sample, codec.J)).std())
        for module in codec.decoder[1].modules():  # keep reconstructions in the signal range
            if hasattr(module, "weight_g"):
                module.weight_g.mul_(0.5)
        last = codec.decoder[1].conv_out if cls is reference.Codec2D else codec.decoder[1].conv2
        getattr(last, "weight", getattr(last, "weight_g", None)).mul_(0.05)
    return codec


def _save_reference(codec, name, folder):
    pth = folder / f"{name}.pth"
    torch.save(codec.state_dict(), pth)
    (folder / f"{name}.json").write_text(json.dumps({**TRAINING_KEYS, **PUBLISHED[name]}))
    return pth


def _reference_scale(name, x):
    """Our [0, 1] images / [-1, 1] audio -> the published codecs' input."""
    return x - 0.5 if name.startswith("RGB") else 0.5 * x


# ------------------------------------------------------------- reproduce the reference package --
@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_published_codecs_reproduce_the_reference_package(name, photo_crops, stereo_speech, tmp_path):
    reference = _walloc()
    X = photo_crops.astype(np.float32) / 255 if name.startswith("RGB") else stereo_speech
    x = torch.from_numpy(_reference_scale(name, X))
    ref = _reference_codec(reference, name, x)
    pth = _save_reference(ref, name, tmp_path)
    model = WaLLoCTransformer.from_checkpoint(pth, quantize=True)
    with torch.no_grad():
        ref_latents = ref.encoder[0](ref.wavelet_analysis(x, ref.J))
        ref_codes = ref.encoder(ref.wavelet_analysis(x, ref.J))  # companded and rounded
        ref_rec = ref.wavelet_synthesis(ref.decoder(ref_codes), ref.J)
        if name.startswith("stereo"):
            ref_rec = ref.post(ref_rec)
        ref_clamped = ref(x)[0]
    codes = model.transform(X)
    assert codes.shape == tuple(ref_codes.shape)  # stereo: T/256 + 2 frames (the padding=1 quirk)
    assert len(np.unique(codes)) > 100  # the random weights use the code range
    np.testing.assert_array_equal(codes, ref_codes.numpy())
    continuous = model.set_params(quantize=False).transform(X)
    expected = 2 * 127.499 * (torch.special.ndtr(ref_latents / (127 / 1.85)) - 0.5)
    np.testing.assert_allclose(continuous, expected.numpy(), atol=1e-3)  # latents up to +-127.5
    with torch.no_grad():
        ours = model.codec_.decode(torch.from_numpy(codes.astype(np.float32)), size=X.shape[2:])
    np.testing.assert_allclose(_reference_scale(name, ours.numpy()), ref_rec.numpy(), atol=1e-4)
    # The transformer path: [0, 1] / [-1, 1] scale, clipped like the reference's Hardtanh.
    recon = model.inverse_transform(codes)
    np.testing.assert_allclose(_reference_scale(name, recon), ref_clamped.numpy(), atol=1e-4)


def test_published_codecs_compress_and_keep_their_latents(photo_crops, tmp_path):
    reference = _walloc()
    X = photo_crops.astype(np.float32) / 255
    ref = _reference_codec(reference, "RGB_16x", torch.from_numpy(X - 0.5))
    _save_reference(ref, "RGB_16x", tmp_path)
    model = WaLLoCTransformer.from_checkpoint(tmp_path, X=X, quantize=True)  # a folder holding both files
    assert model.output == "flat" and model.latent_shape_ == (12, 8, 8)
    blobs = model.compress(X)
    np.testing.assert_array_equal(model.decompress(blobs), model.transform(X))
    restored = WaLLoCTransformer.load(model.save(tmp_path / "ours"))
    np.testing.assert_array_equal(restored.decompress(blobs), model.transform(X))


@pytest.mark.parametrize("name", ["RGB_16x", "stereo_20x"])
def test_export_of_a_loaded_checkpoint_is_the_same_checkpoint(name, photo_crops, stereo_speech, tmp_path):
    reference = _walloc()
    X = photo_crops.astype(np.float32) / 255 if name.startswith("RGB") else stereo_speech
    ref = _reference_codec(reference, name, torch.from_numpy(_reference_scale(name, X)))
    model = WaLLoCTransformer.from_checkpoint(_save_reference(ref, name, tmp_path))
    pth = model.save(tmp_path / "export" / f"{name}.pth", format="published")
    config = json.loads(pth.with_suffix(".json").read_text())
    cls = reference.Codec1D if name.startswith("stereo") else reference.Codec2D
    again = cls(**config)
    again.load_state_dict(torch.load(pth, weights_only=True), strict=True)
    for key, value in ref.state_dict().items():
        assert torch.equal(again.state_dict()[key], value), key


def test_a_codec_fitted_here_runs_in_the_reference_package(photo_crops, tmp_path):
    reference = _walloc()
    X = photo_crops
    model = WaLLoCTransformer(reduction=16, output="tensor", quantize=True).fit(X)
    pth = model.save(tmp_path / "mine.pth", format="published")
    theirs = reference.LinearCodec2D(**json.loads(pth.with_suffix(".json").read_text()))
    theirs.load_state_dict(torch.load(pth, weights_only=True), strict=True)
    theirs.eval()
    x = torch.from_numpy(X.astype(np.float32) / 255 - 0.5)
    with torch.no_grad():
        codes = theirs.encoder(theirs.wavelet_analysis(x, theirs.J))
        rec = theirs(x)[0] + 0.5
    ours = model.transform(X)
    assert np.abs(codes.numpy() - ours).max() <= 1 and np.mean(codes.numpy() != ours) < 1e-3
    np.testing.assert_allclose(rec.numpy(), model.inverse_transform(ours), atol=2e-2)


# ----------------------------------------------------------------- without the reference package --
def test_export_and_reload_round_trip_on_digits(mnist, tmp_path):
    X, y = mnist
    model = WaLLoCTransformer(reduction=4, quantize=True).fit(X[:1000])
    pth = model.save(tmp_path / "digits.pth", format="published")
    config = json.loads(pth.with_suffix(".json").read_text())
    assert config == {"channels": 1, "J": 2, "latent_dim": 4, "latent_bits": 8}  # LinearCodec2D's arguments
    loaded = WaLLoCTransformer.from_checkpoint(pth, X=X[:1000], quantize=True)
    codes = model.transform(X[1000:1200])
    assert np.mean(loaded.transform(X[1000:1200]) != codes) < 1e-3  # float ties may round apart
    np.testing.assert_allclose(loaded.inverse_transform(codes), model.inverse_transform(codes), atol=1e-4)


def test_an_export_killed_between_its_two_renames_is_refused_not_loaded_with_the_old_config(mnist, tmp_path,
                                                                                            monkeypatch):
    """The new .pth beside the old .json loaded without a word (same shapes, other latent_bits): 21% of the codes
    came out wrong. The old config is now deleted before the renames."""
    import os

    X, _ = mnist
    pth = WaLLoCTransformer(reduction=4, latent_bits=8).fit(X[:300]).save(tmp_path / "c.pth", format="published")
    replace = os.replace

    def killed_at_the_config(src, dst):
        if str(dst).endswith(".json"):
            raise KeyboardInterrupt  # (as a kill: the .pth is renamed, the .json is not)
        return replace(src, dst)

    monkeypatch.setattr(os, "replace", killed_at_the_config)
    with pytest.raises(KeyboardInterrupt):
        WaLLoCTransformer(reduction=4, latent_bits=4).fit(X[:300]).save(pth, format="published")
    monkeypatch.undo()
    with pytest.raises(FileNotFoundError, match="c.json"):
        WaLLoCTransformer.from_checkpoint(pth)


def test_checkpoint_parameter_fits_in_a_pipeline_and_survives_clone(mnist, tmp_path):
    X, y = mnist
    pth = WaLLoCTransformer(reduction=4).fit(X[:1000]).save(tmp_path / "digits.pth", format="published")
    pipeline = make_pipeline(WaLLoCTransformer(checkpoint=str(pth)), LogisticRegression(max_iter=300))
    assert clone(pipeline).fit(X[:2000], y[:2000]).score(X[-1000:], y[-1000:]) > 0.8
    assert pipeline.fit(X[:200], y[:200])[0].latent_shape_ == (4, 7, 7)  # the checkpoint's codec, not a refit


def test_checkpoint_with_the_wrong_channel_count_is_refused(mnist, photo_crops, tmp_path):
    X, _ = mnist
    pth = WaLLoCTransformer().fit(X[:200]).save(tmp_path / "gray.pth", format="published")
    with pytest.raises(ValueError, match="3 channel.*takes 1"):
        WaLLoCTransformer(checkpoint=pth).fit(photo_crops)


def test_from_checkpoint_without_samples_checks_its_parameters_and_modality(tmp_path):
    folder = tmp_path / "rgb"
    save_published(WaLLoCCodec(3, latent_dim=12, levels=3), folder)
    with pytest.raises(ValueError, match="modality='audio', but the checkpoint holds an image codec"):
        WaLLoCTransformer.from_checkpoint(folder, modality="audio")
    with pytest.raises(ValueError, match="'output' parameter"):  # the parameter check comes first
        WaLLoCTransformer.from_checkpoint(folder, output="bogus")
    with pytest.raises(ValueError, match="output='flat' needs the input size"):
        WaLLoCTransformer.from_checkpoint(folder, output="flat")


def test_a_failed_export_leaves_the_previous_files_and_no_temporaries(monkeypatch, tmp_path):
    pth, config = save_published(WaLLoCCodec(3, latent_dim=12, levels=3), tmp_path)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}

    def disk_full(obj, f):  # the disk fills half-way through the weights
        with open(f, "wb") if isinstance(f, (str, Path)) else contextlib.nullcontext(f) as out:
            out.write(b"partial")
        raise OSError("No space left on device")

    monkeypatch.setattr(torch, "save", disk_full)
    with pytest.raises(OSError, match="No space"):
        save_published(WaLLoCCodec(3, latent_dim=6, levels=3), tmp_path)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


def test_a_checkpoint_transformer_saves_and_loads_in_our_format(photo_crops, tmp_path):
    pth = save_published(WaLLoCCodec(3, 12), tmp_path / "c.pth")[0]
    model = WaLLoCTransformer(checkpoint=Path(pth), quantize=True).fit(photo_crops)
    restored = WaLLoCTransformer.load(model.save(tmp_path / "ours"))
    assert restored.checkpoint == str(pth)
    np.testing.assert_array_equal(restored.transform(photo_crops), model.transform(photo_crops))
    with pytest.raises(ValueError, match="output='flat' needs the input size"):
        WaLLoCTransformer.from_checkpoint(pth, output="flat")
    with pytest.warns(UserWarning, match="smaller than 40 samples per axis"):
        WaLLoCTransformer.from_checkpoint(pth).transform(photo_crops[:, :, :32, :32])


def test_encoder_padding_needs_a_decoder_that_removes_it():
    with pytest.raises(ValueError, match="encoder_padding needs the 'oobleck' decoder"):
        WaLLoCCodec(2, 27, levels=8, ndim=1, encoder_padding=1)


def test_an_oobleck_decoder_narrower_than_the_latents_is_refused_by_name():
    with pytest.raises(ValueError, match="needs hidden_channels >= latent_dim, got 16 < 27"):
        WaLLoCCodec(2, 27, levels=8, ndim=1, decoder="oobleck", hidden_channels=16)


class _Payload:
    """Unpickling this would create ``path``: the proof that a loader executed code."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (str(self.path), "w"))


def test_checkpoints_that_need_unpickling_are_refused_not_run(tmp_path):
    marker = tmp_path / "executed"
    pth = tmp_path / "evil.pth"
    torch.save({"encoder.0.weight": torch.zeros(1), "args": _Payload(marker)}, pth)
    save_published(WaLLoCCodec(3, 12), tmp_path / "ok.pth")
    (tmp_path / "evil.json").write_text((tmp_path / "ok.json").read_text())
    expected = "(?s)cannot be read safely.*GLOBAL _?io.open.*arbitrary code.*weights_only=False.*converted.pth"
    with pytest.raises(CheckpointError, match=expected):
        WaLLoCTransformer.from_checkpoint(pth)
    assert not marker.exists()


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda c, s: c.pop("latent_dim"), "lacks the WaLLoC config key"),
        (lambda c, s: c.update(Nd=64, lightweight_encode=False), "nonlinear encoder"),
        (lambda c, s: s["wt.h0_col"].mul_(2), "not bior4.4"),
        (lambda c, s: s.pop("iwt.g1_row"), "lacks the wavelet filter buffer"),
        (lambda c, s: s.update(extra=torch.zeros(1)), "keys no LinearCodec2D has"),
        (lambda c, s: s.pop("decoder.1.bias"), "do not fit the LinearCodec2D"),
        (lambda c, s: c.update(latent_dim=13), "does not fit"),
        (lambda c, s: c.update(J=30), "encoder.0.weight has shape"),  # refused before allocating anything
        (lambda c, s: c.update(Nd=64, lightweight_encode=True, post_filter="false"), "post_filter must be"),
        (lambda c, s: c.update(post_filter=True, Nd=64, lightweight_encode=True), "1-D Codec1D"),
        # a NaN encoder was blamed on the data at transform ("scale the data"); a NaN decoder gave NaN pictures
        (lambda c, s: s["encoder.0.weight"].view(-1)[5:6].fill_(float("nan")), "'encoder.0.weight' holds 1 NaN"),
        (lambda c, s: s["decoder.1.bias"][:2].fill_(float("inf")), "'decoder.1.bias' holds 2 NaN or infinite"),
        # integers, booleans and complex numbers were cast to float32 without a word
        (lambda c, s: s.update({"decoder.1.weight": s["decoder.1.weight"].long()}), "has dtype torch.int64"),
        (lambda c, s: s.update({"encoder.0.bias": s["encoder.0.bias"].to(torch.complex64)}), "dtype torch.complex64"),
        (lambda c, s: s.update({0: torch.zeros(1)}), "keys include 0, not a name"),  # was an AttributeError
    ],
)
def test_malformed_checkpoints_name_the_problem(edit, message, tmp_path):
    pth, json_path = save_published(WaLLoCCodec(3, 12), tmp_path / "c.pth")
    config, state = json.loads(json_path.read_text()), torch.load(pth, weights_only=True)
    edit(config, state)
    torch.save(state, pth)
    json_path.write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match=message):
        load_published_codec(pth)


def _flip_middle_byte(data: bytes) -> bytes:
    damaged = bytearray(data)
    damaged[len(damaged) // 2] ^= 0xFF
    return bytes(damaged)


@pytest.mark.parametrize(
    "damage, message",
    [
        (_flip_middle_byte, r"damaged: its member archive/data/\d+ fails its CRC-32"),  # torch.load took it
        (lambda data: data[: len(data) // 2], r"\(\d+ bytes\) is a damaged or truncated torch checkpoint"),
        (lambda data: b"", r"is empty \(0 bytes\)"),
        (lambda data: b"version https://git-lfs.github.com/spec/v1\noid sha256:ab\nsize 9\n", "Git LFS pointer"),
        (lambda data: b"<!DOCTYPE html><html>404</html>", "not a torch checkpoint: it starts with b'<!DOCTYPE"),
    ],
    ids=["bit-flip", "truncated", "empty", "lfs-pointer", "html-page"],
)
def test_damaged_or_foreign_weight_files_are_named_not_loaded(damage, message, tmp_path):
    """A flipped bit loaded as wrong weights; text files were called unsafe pickles (advising weights_only=False)."""
    pth, _ = save_published(WaLLoCCodec(3, 12), tmp_path / "c.pth")
    pth.write_bytes(damage(pth.read_bytes()))
    with pytest.raises(CheckpointError, match=message) as caught:
        load_published_codec(pth)
    assert "weights_only=False" not in str(caught.value)


def test_a_decoder_width_that_does_not_fit_is_refused_before_it_is_built(tmp_path):
    """Nd = 1,600,000 for a 32-channel decoder would allocate 10 TB; a mistyped 7680 for 768, 20 GB."""
    codec = WaLLoCCodec(1, latent_dim=1, levels=1, decoder="kl", hidden_channels=32, input_shift=-0.5)
    pth, json_path = save_published(codec, tmp_path / "kl.pth")
    config = json.loads(json_path.read_text())
    json_path.write_text(json.dumps({**config, "Nd": 32 * 50_000}))
    with pytest.raises(CheckpointError, match=r"decoder.conv_in.weight: \(32, 1, 3, 3\) in the weights"):
        load_published_codec(pth)
    state = torch.load(pth, weights_only=True)  # no decoder weights to compare: refused by their absence
    torch.save({k: v for k, v in state.items() if not k.startswith("decoder.")}, pth)
    with pytest.raises(CheckpointError, match=r"missing \['decoder\."):
        load_published_codec(pth)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_a_half_precision_checkpoint_loads(dtype, tmp_path):
    """Its wavelet filters are bior4.4's rounded to the dtype: not refused as another wavelet."""
    pth, _ = save_published(WaLLoCCodec(3, latent_dim=12, levels=3), tmp_path / "c.pth")
    state = {key: value.to(dtype) for key, value in torch.load(pth, weights_only=True).items()}
    torch.save(state, pth)
    loaded = load_published_codec(pth)
    torch.testing.assert_close(loaded.encoder.weight.detach(), state["encoder.0.weight"].float())
    state["wt.h0_col"] = state["wt.h0_col"] * 1.1  # another filter is still refused at this precision
    torch.save(state, pth)
    with pytest.raises(CheckpointError, match="not bior4.4"):
        load_published_codec(pth)


def test_output_size_of_a_padded_audio_codec_stops_at_what_it_reconstructs(tmp_path):
    """The published audio encoders pad one latent each side, which the decoder drops: 10 latents of a
    J=3 codec give 64 samples, not 80."""
    torch.manual_seed(0)
    codec = WaLLoCCodec(2, latent_dim=4, levels=3, ndim=1, decoder="oobleck", hidden_channels=8, n_blocks=2,
                        encoder_padding=1, post_filter=129, input_gain=0.5)  # fmt: skip
    pth, _ = save_published(codec, tmp_path / "audio.pth")
    model = WaLLoCTransformer.from_checkpoint(pth)
    x = np.random.default_rng(0).uniform(-1, 1, (2, 2, 64)).astype(np.float32)
    Z = model.transform(x)
    assert Z.shape == (2, 4, 10) and model.inverse_transform(Z, output_size=60).shape == (2, 2, 60)
    assert model.reduction_ == 2 * 8 / 4  # samples per latent, not counting the border frames (1.33)
    assert WaLLoCTransformer.load(model.save(tmp_path / "saved")).reduction_ == 4.0  # kept by save and load
    with pytest.raises(ValueError, match=r"output_size=\(70,\) exceeds \(64,\)"):
        model.inverse_transform(Z, output_size=70)


def test_training_checkpoints_with_a_namespace_config_load(tmp_path):
    codec = WaLLoCCodec(3, 12)
    pth, _ = save_published(codec, tmp_path / "c.pth")
    state = torch.load(pth, weights_only=True)
    torch.save({"model_state_dict": state, "config": types.SimpleNamespace(J=3, lr=1e-3)}, pth)
    loaded = load_published_codec(pth)
    x = torch.rand(1, 3, 64, 64)
    torch.testing.assert_close(loaded.decode(loaded.encode(x)), codec.decode(codec.encode(x)), atol=1e-4, rtol=0)


def test_checkpoint_files_are_found_or_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.pth not found"):
        load_published_codec(tmp_path / "missing.pth")
    torch.save({}, tmp_path / "a.pth")
    with pytest.raises(FileNotFoundError, match="a.json not found"):
        load_published_codec(tmp_path / "a.pth")
    torch.save({}, tmp_path / "b.pth")
    with pytest.raises(FileNotFoundError, match="exactly one checkpoint.*a.pth, b.pth"):
        load_published_codec(tmp_path)
    (tmp_path / "b.json").write_text("[1, 2]")
    with pytest.raises(CheckpointError, match="JSON object"):
        load_published_codec(tmp_path / "b.pth")
    (tmp_path / "b.json").write_bytes(b"\xff\xfe{")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        load_published_codec(tmp_path / "b.pth")
    (tmp_path / "b.json").write_text(json.dumps(PUBLISHED["RGB_16x"]))
    (tmp_path / "b.pth").write_bytes(pickle.dumps([1, 2])[:5])  # truncated
    with pytest.raises(CheckpointError, match="b.pth"):
        load_published_codec(tmp_path / "b.pth")
    (tmp_path / "c.safetensors").write_bytes(b"damaged")
    with pytest.raises(CheckpointError, match="not a readable safetensors file"):
        load_published_codec(tmp_path / "c.safetensors", tmp_path / "b.json")


def test_codecs_without_a_published_layout_are_not_exported(mnist, tmp_path):
    X, _ = mnist
    model = WaLLoCTransformer(decoder="conv", max_epochs=1, hidden_channels=8).fit(X[:100])
    with pytest.raises(ValueError, match="no published layout"):
        model.save(tmp_path / "conv.pth", format="published")
    with pytest.raises(ValueError, match="format must be"):
        model.save(tmp_path / "x", format="onnx")
