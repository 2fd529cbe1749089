"""Torch estimators: timm models and MLP heads on latents and pixels, with cost accounting."""

import warnings

import joblib
import numpy as np
import pytest
import timm
import torch
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV, GroupShuffleSplit
from sklearn.pipeline import make_pipeline

from walloc_features import WaLLoCTransformer
from walloc_features.datasets import load_speech_commands
from walloc_features.estimators import MLPHeadClassifier, TimmClassifier, adapt_strides
from walloc_features.evaluation import count_flops, transform_flops_per_sample

FAST = dict(max_epochs=1, batch_size=128, random_state=0)


@pytest.fixture(scope="module")
def latents(mnist):
    """WaLLoC 16x latents of the embedded digits, (10000, 1, 7, 7), fitted on the first 8,000."""
    X, y = mnist
    codec = WaLLoCTransformer(reduction=16, output="tensor").fit(X[:8000])
    return codec, codec.transform(X), y


# ---------------------------------------------------------------------- the headline results --
def test_tiny_timm_model_on_walloc_latents_reaches_090(latents):
    """Measured: 0.9545 test accuracy, 20.6 s of training on 2 CPU cores."""
    _, Z, y = latents
    model = TimmClassifier("test_resnet", max_epochs=5, batch_size=128, lr=3e-3, random_state=0)
    assert model.fit(Z[:8000], y[:8000]).score(Z[8000:], y[8000:]) >= 0.90
    assert model.stem_changes_  # the 7x7 input was not downsampled to nothing


def test_latent_model_costs_fewer_flops_than_the_pixel_model(mnist, latents):
    X, y = mnist
    _, Z, _ = latents
    pixels = TimmClassifier("test_resnet", **FAST).fit(X[:500, None], y[:500])
    on_latents = TimmClassifier("test_resnet", **FAST).fit(Z[:500], y[:500])
    assert pixels.predict(X[:5, None]).shape == (5,)
    assert on_latents.flops_per_sample_ < pixels.flops_per_sample_ / 2  # measured 9.7 vs 25.4 MFLOPs
    assert on_latents.n_parameters_ == pixels.n_parameters_  # same network, smaller input


def test_timm_on_1d_walloc_latents_of_speech_beats_chance(tmp_path):
    """Synthetic speech, 10 words, speaker-disjoint split. Measured 0.493 (chance 0.10)."""
    X, y, speakers = load_speech_commands(n_speakers=120, data_home=tmp_path)
    train, test = next(GroupShuffleSplit(1, test_size=0.25, random_state=0).split(X, y, speakers))
    codec = WaLLoCTransformer(reduction=16, output="tensor").fit(X[train])
    Z = codec.transform(X)
    assert Z.shape[1:] == (16, 63)  # 1-D latents: 16 channels at 1/256 of 16 kHz
    model = TimmClassifier("test_resnet", max_epochs=30, batch_size=32, early_stopping=False, random_state=0)
    assert model.fit(Z[train], y[train]).score(Z[test], y[test]) >= 0.30
    first = model.net_.module_.network.conv1[0]
    assert first.kernel_size[0] == 1 and first.stride[0] == 1  # nothing touches the singleton axis


# ----------------------------------------------------------------------- scikit-learn API --
def test_probabilities_classes_and_reproducibility(latents):
    _, Z, y = latents
    labels = np.array(list("abcdefghij"))[y]
    a = TimmClassifier("test_efficientnet", **FAST).fit(Z[:600], labels[:600])
    b = TimmClassifier("test_efficientnet", **FAST).fit(Z[:600], labels[:600])
    proba = a.predict_proba(Z[:50])
    assert proba.shape == (50, 10) and np.allclose(proba.sum(axis=1), 1)
    assert set(a.predict(Z[:50])) <= set("abcdefghij") and list(a.classes_) == list("abcdefghij")
    np.testing.assert_array_equal(proba, b.predict_proba(Z[:50]))  # same random_state, same model
    # 540 training samples cost forward + backward (3x), the 60 validation ones a forward pass
    assert 3 * 540 * a.flops_per_sample_ < a.training_flops_ < 3 * 600 * a.flops_per_sample_
    assert a.fit_time_ > 0


def test_pipeline_grid_search_with_jobs_and_joblib(tmp_path, mnist):
    X, y = mnist[0][:400], mnist[1][:400]
    pipe = make_pipeline(WaLLoCTransformer(reduction=16, output="tensor"), TimmClassifier("test_resnet", **FAST))
    search = GridSearchCV(pipe, {"timmclassifier__lr": [1e-3, 3e-3]}, cv=2, n_jobs=2).fit(X, y)
    best = search.best_estimator_
    joblib.dump(best, tmp_path / "model.joblib")
    reloaded = joblib.load(tmp_path / "model.joblib")
    np.testing.assert_array_equal(reloaded.predict_proba(X[:20]), best.predict_proba(X[:20]))
    assert clone(best).get_params()["timmclassifier__model"] == "test_resnet"


def test_flat_input_with_input_shape(latents):
    _, Z, y = latents
    flat = Z.reshape(len(Z), -1)
    model = TimmClassifier("test_resnet", input_shape=(1, 7, 7), **FAST).fit(flat[:300], y[:300])
    np.testing.assert_array_equal(model.predict(flat[:10]), model.predict(Z[:10]))
    with pytest.raises(ValueError, match=r"^X has 48 features, but TimmClassifier is expecting 49 features as input"):
        model.predict(flat[:10, :48])  # scikit-learn's wording for rows of another width


def test_mlp_head_on_flat_latents(latents):
    _, Z, y = latents
    head = MLPHeadClassifier(random_state=0, max_epochs=15).fit(Z[:8000], y[:8000])
    assert head.score(Z[8000:], y[8000:]) >= 0.90  # measured 0.9245
    linear = MLPHeadClassifier(hidden_layer_sizes=(), **FAST).fit(Z[:500], y[:500])
    assert linear.flops_per_sample_ == 2 * 49 * 10  # one multiply-add per weight
    assert head.flops_per_sample_ == 2 * (49 * 256 + 256 * 10)


# --------------------------------------------------------------------------------- errors --
def test_ctrl_c_stops_training_instead_of_returning_a_half_trained_model(latents, monkeypatch):
    """skorch swallows KeyboardInterrupt: fit returned, and a benchmark scored the half-trained model."""
    from skorch import NeuralNetClassifier

    _, Z, y = latents
    epochs, on_epoch_end = [], NeuralNetClassifier.on_epoch_end

    def interrupt_after_the_second_epoch(net, *args, **kwargs):
        epochs.append(len(net.history))
        if len(epochs) == 2:
            raise KeyboardInterrupt
        return on_epoch_end(net, *args, **kwargs)

    monkeypatch.setattr(NeuralNetClassifier, "on_epoch_end", interrupt_after_the_second_epoch)
    model = MLPHeadClassifier(hidden_layer_sizes=(), max_epochs=6, random_state=0)
    with pytest.raises(KeyboardInterrupt, match="training interrupted in epoch 2 of 6"):
        model.fit(Z[:300], y[:300])
    assert not hasattr(model, "net_") and epochs == [1, 2]


def test_a_diverged_training_is_refused_not_returned(latents):
    """skorch trains on through a NaN loss: predictions were all the first class, without a word; scikit-learn's
    MLPClassifier refuses non-finite weights."""
    _, Z, y = latents
    model = MLPHeadClassifier(lr=1e8, max_epochs=6, early_stopping=False, random_state=0)
    message = r"training diverged in epoch [1-6] of 6: .*lower the learning rate \(now 1e\+08\)"
    with pytest.raises(ValueError, match=message):
        model.fit(Z[:300], y[:300])
    assert not hasattr(model, "net_")
    sane = MLPHeadClassifier(max_epochs=6, early_stopping=False, random_state=0).fit(Z[:300], y[:300])
    assert sane.score(Z[300:600], y[300:600]) > 0.5  # a usual learning rate trains as before (chance: 0.1)


def test_a_training_that_diverges_after_its_best_epoch_keeps_that_epoch_and_says_so(latents, monkeypatch):
    """With early stopping, the best validation epoch's weights are what fit returns (as MLPClassifier keeps its
    best), training stops at the divergence rather than running on NaN, and a warning names both epochs."""
    _, Z, y = latents
    step, steps = torch.optim.AdamW.step, []

    def blow_up_in_epoch_3(optimizer, *args, **kwargs):  # 270 training rows (30 validate) / 64: 5 steps an epoch
        result = step(optimizer, *args, **kwargs)
        steps.append(1)
        if len(steps) == 12:
            for group in optimizer.param_groups:
                group["params"][0].data.fill_(float("nan"))
        return result

    monkeypatch.setattr(torch.optim.AdamW, "step", blow_up_in_epoch_3)
    model = MLPHeadClassifier(max_epochs=20, batch_size=64, random_state=0)
    with pytest.warns(UserWarning, match=r"training diverged in epoch 3 of 20: .* the weights of epoch 2, the best "
                                         r"validation loss, are kept") as caught:  # fmt: skip
        model.fit(Z[:300], y[:300])
    assert caught[0].filename == __file__  # the line that called fit, not the package's internals
    assert len(steps) == 15 and model.n_epochs_ == 3  # stopped at the divergence
    assert np.isfinite(model.predict_proba(Z[300:600])).all() and model.score(Z[300:600], y[300:600]) > 0.5


def test_early_stopping_ends_fit_normally(latents):
    """skorch's EarlyStopping stops by raising KeyboardInterrupt: that one must not pass for a Ctrl-C."""
    _, Z, _ = latents
    noise = np.random.default_rng(0).integers(0, 2, 600)  # nothing to learn: validation loss stops improving
    model = MLPHeadClassifier(max_epochs=60, patience=2, random_state=0).fit(Z[:600], noise)
    assert 3 <= model.n_epochs_ < 60 and model.predict(Z[:5]).shape == (5,)


def test_training_inside_a_callers_inference_mode(latents):
    _, Z, y = latents
    with torch.inference_mode():  # failed with "element 0 of tensors does not require grad"
        model = MLPHeadClassifier(max_epochs=20, random_state=0).fit(Z[:300], y[:300])
    assert model.score(Z[300:600], y[300:600]) > 0.5


def test_bad_input_errors(latents):
    _, Z, y = latents
    model = TimmClassifier("test_resnet", **FAST).fit(Z[:200], y[:200])
    with pytest.raises(ValueError, match="fitted on"):
        model.predict(np.zeros((2, 3, 7, 7), np.float32))
    with pytest.raises(ValueError, match="input_shape"):
        TimmClassifier("test_resnet").fit(Z[:20].reshape(20, -1), y[:20])
    with pytest.raises(ValueError, match="has 20 samples but y has 19"):
        TimmClassifier("test_resnet").fit(Z[:20], y[:19])
    with pytest.raises(ValueError, match="at least 2"):
        TimmClassifier("test_resnet").fit(Z[:20], np.zeros(20))
    with pytest.raises(ValueError, match="no model 'no_such_net'"):
        TimmClassifier("no_such_net").fit(Z[:20], y[:20])
    with pytest.raises(ValueError, match="not a torch device"):
        TimmClassifier("test_resnet", device="gpu").fit(Z[:20], y[:20])
    with pytest.raises(ValueError, match="NaN"):
        TimmClassifier("test_resnet").fit(np.full((20, 1, 7, 7), np.nan), y[:20])


def test_constant_training_features_do_not_blow_up_predictions(mnist):
    """Border pixels that are always 0 in training must not dominate test digits that touch them."""
    X, y = mnist
    pixels = X.reshape(len(X), -1)[:, None, :].astype(np.float32)  # (N, 1, 784) as 1-D rows
    flat = pixels[:, 0]
    constant = flat[:2000].std(axis=0) == 0
    model = MLPHeadClassifier(max_epochs=10, random_state=0).fit(flat[:2000], y[:2000])
    touching = (flat[2000:][:, constant] > 0).any(axis=1)
    assert constant.sum() > 100 and touching.sum() > 50
    assert model.score(flat[2000:][touching], y[2000:][touching]) > 0.6  # was 0.05 with a 1e-6 floor


@pytest.mark.parametrize("make", [
    lambda: MLPHeadClassifier((32,), max_epochs=3, random_state=0),
    lambda: TimmClassifier("test_resnet", max_epochs=1, random_state=0),
], ids=["mlp", "timm"])
def test_predictions_do_not_depend_on_the_units_of_the_features(make, latents):
    """Inputs are standardised, so latents in small units (times 1e-9) train as they do in large ones;
    a floor of eps * max(1, |mean|) once took such channels for constant and left them unscaled (chance)."""
    _, Z, y = latents
    Z, y = Z[:300], y[:300]
    reference = make().fit(Z, y).predict_proba(Z[:50])
    scaled = make().fit(Z * np.float32(1e-9), y).predict_proba(Z[:50] * np.float32(1e-9))
    np.testing.assert_allclose(scaled, reference, atol=2e-3)


def test_small_training_sets_train_without_early_stopping(latents):
    _, Z, y = latents
    with pytest.warns(UserWarning, match="early stopping turned off"):
        model = TimmClassifier("test_resnet", max_epochs=2, random_state=0).fit(Z[:30], y[:30])
    assert model.n_epochs_ == 2 and model.net_.train_split is None


@pytest.mark.parametrize("early_stopping", [True, False])
def test_a_last_batch_of_one_sample_is_dropped_not_fed_to_batch_norm(early_stopping):
    """4x4 latents end in a 1x1 map, where batch norm in training mode needs more than one sample:
    73 samples leave 65 = 64 + 1 to train on once 8 go to validation (or 129 = 128 + 1 without)."""
    rng = np.random.default_rng(0)
    n = 73 if early_stopping else 129
    X, y = rng.normal(size=(n, 12, 4, 4)).astype(np.float32), np.arange(n) % 2
    model = TimmClassifier("test_resnet", max_epochs=1, batch_size=64, random_state=0, early_stopping=early_stopping)
    model.fit(X, y)
    assert model.net_.iterator_train__drop_last
    trained = n - (8 if early_stopping else 0) - 1
    assert model.training_flops_ == (3 * trained + n - 1 - trained) * model.flops_per_sample_
    even = TimmClassifier("test_resnet", max_epochs=1, batch_size=64, random_state=0).fit(X[:72], y[:72])
    assert not even.net_.iterator_train__drop_last  # 64 = 72 - 8: nothing to drop


def test_unfitted_and_mismatched_layouts_are_refused(latents):
    from sklearn.exceptions import NotFittedError

    _, Z, y = latents
    with pytest.raises(NotFittedError):
        TimmClassifier("test_resnet").predict(Z[:2])
    model = TimmClassifier("test_resnet", **FAST).fit(Z[:200], y[:200])
    with pytest.raises(ValueError, match="not laid out like the \\(N, C, H, W\\) images"):
        model.predict(Z[:2, :, 0, :])  # (N, C, T) signals into an image model
    with pytest.raises(ValueError, match="positive integers"):
        MLPHeadClassifier(hidden_layer_sizes=(0,)).fit(Z[:50], y[:50])


def test_an_image_model_refuses_samples_of_another_size_than_at_fit(latents):
    """A CNN with global pooling runs on any size, but latents of another reduction or crop are another input
    scale from the one its filters learned: predictions on them would be silently meaningless."""
    _, Z, y = latents
    model = TimmClassifier("test_resnet", **FAST).fit(Z[:200], y[:200])
    size = Z.shape[2:]
    with pytest.raises(ValueError, match=rf"samples of shape \(1, 4, 4\), but TimmClassifier was fitted on samples "
                                         rf"of shape \(1, {size[0]}, {size[1]}\)"):  # fmt: skip
        model.predict(Z[:2, :, :4, :4])
    assert model.predict(Z[:2]).shape == (2,)
    signals = np.random.default_rng(0).normal(size=(40, 2, 64)).astype(np.float32)
    one_d = TimmClassifier("test_resnet", **FAST).fit(signals, np.arange(40) % 2)
    with pytest.raises(ValueError, match=r"samples of shape \(2, 32\), but TimmClassifier was fitted on samples "
                                         r"of shape \(2, 64\)"):  # fmt: skip
        one_d.predict(signals[:, :, :32])


def test_channel_last_images_warn_at_fit_naming_the_transpose():
    rng = np.random.default_rng(0)
    images, y = rng.random((40, 32, 32, 3), dtype=np.float32), np.arange(40) % 2
    with pytest.warns(UserWarning, match=r"look channel-last .* X.transpose\(0, 3, 1, 2\)"):
        TimmClassifier("test_resnet", **FAST).fit(images, y)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the same values channel-first, and WaLLoC-like latents, fit quietly
        TimmClassifier("test_resnet", **FAST).fit(images.transpose(0, 3, 1, 2), y)
        TimmClassifier("test_resnet", **FAST).fit(rng.random((40, 12, 8, 4), dtype=np.float32), y)
        # WaLLoC 4x latents of RGB images 128 or 256 tall and 32 wide: 48 channels of 16 x 4 or 32 x 4
        TimmClassifier("test_resnet", **FAST).fit(rng.random((40, 48, 16, 4), dtype=np.float32), y)
        TimmClassifier("test_resnet", **FAST).fit(rng.random((40, 48, 32, 4), dtype=np.float32), y)


def test_a_flat_model_refuses_samples_laid_out_otherwise_than_at_fit(latents):
    """(N, 12, 4, 4) latents and the same values channels last flatten to the same width: only the layout
    tells them apart, so the model fitted on one refuses the other instead of misreading it."""
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(60, 12, 4, 4)).astype(np.float32), np.arange(60) % 2
    head = MLPHeadClassifier(**FAST).fit(X, y)
    with pytest.raises(ValueError, match=r"samples of shape \(4, 4, 12\), but MLPHeadClassifier was fitted on "
                                         r"samples of shape \(12, 4, 4\)"):  # fmt: skip
        head.predict(X.transpose(0, 2, 3, 1))
    np.testing.assert_array_equal(head.predict(X.reshape(60, -1)), head.predict(X))  # flattened rows: the same
    assert MLPHeadClassifier(**FAST).fit(X.reshape(60, -1), y).predict(X).shape == (60,)


@pytest.mark.parametrize(
    "model", [MLPHeadClassifier(**FAST), TimmClassifier("test_resnet", input_shape=(2, 3, 1), **FAST)], ids=repr
)
def test_dataframe_column_names_are_recorded_and_checked_like_scikit_learn(model):
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame(np.random.default_rng(0).normal(size=(40, 6)), columns=list("abcdef"))
    y = np.arange(40) % 2
    model = clone(model).fit(frame, y)
    np.testing.assert_array_equal(model.feature_names_in_, list("abcdef"))
    with pytest.warns(UserWarning, match="does not have valid feature names"):
        np.testing.assert_array_equal(model.predict(frame.to_numpy()), model.predict(frame))
    with pytest.raises(ValueError, match="feature names should match"):
        model.predict(frame.rename(columns={"a": "z"}))
    assert not hasattr(model.fit(frame.to_numpy(), y), "feature_names_in_")  # a refit on an array forgets them


# ------------------------------------------------------------------ weights and the stem --
def test_checkpoint_path_loads_local_weights_with_adapted_first_conv(tmp_path, latents):
    """An RGB ImageNet-style checkpoint on 1-channel latents: timm sums the first conv's input
    channels and drops the 1000-class head."""
    _, Z, y = latents
    torch.manual_seed(0)
    source = timm.create_model("test_resnet")  # 3 channels, 1000 classes
    torch.save(source.state_dict(), tmp_path / "weights.pth")
    model = TimmClassifier("test_resnet", checkpoint_path=tmp_path / "weights.pth", lr=1e-12, weight_decay=0.0,
                           **FAST).fit(Z[:200], y[:200])  # fmt: skip
    loaded = model.net_.module_.network.conv1[0].weight.detach()
    expected = source.conv1[0].weight.detach().sum(dim=1, keepdim=True)
    torch.testing.assert_close(loaded, expected, atol=1e-5, rtol=1e-4)
    assert model.predict_proba(Z[:3]).shape == (3, 10)
    with pytest.raises(FileNotFoundError):
        TimmClassifier("test_resnet", checkpoint_path=tmp_path / "missing.pth").fit(Z[:20], y[:20])
    # a fitted estimator's own module reloads (prefix and standardisation buffers handled) ...
    torch.save(model.net_.module_.state_dict(), tmp_path / "own.pth")
    again = TimmClassifier("test_resnet", checkpoint_path=tmp_path / "own.pth", lr=1e-12, weight_decay=0.0,
                           **FAST).fit(Z[:200], y[:200])  # fmt: skip
    torch.testing.assert_close(again.net_.module_.network.conv1[0].weight, model.net_.module_.network.conv1[0].weight)
    # ... and a file for another architecture is refused instead of silently skipped
    torch.save(timm.create_model("test_efficientnet").state_dict(), tmp_path / "other.pth")
    with pytest.raises(ValueError, match="does not"):
        TimmClassifier("test_resnet", checkpoint_path=tmp_path / "other.pth", **FAST).fit(Z[:200], y[:200])
    # ... and a damaged download is refused (torch.load skips the zip's CRCs: it loaded wrong weights)
    damaged = bytearray((tmp_path / "weights.pth").read_bytes())
    damaged[len(damaged) // 2] ^= 0xFF
    (tmp_path / "damaged.pth").write_bytes(bytes(damaged))
    with pytest.raises(ValueError, match="fails its CRC-32 check"):
        TimmClassifier("test_resnet", checkpoint_path=tmp_path / "damaged.pth", **FAST).fit(Z[:20], y[:20])


def test_checkpoint_path_resamples_vit_embeddings_to_the_latent_grid_as_timm_does(tmp_path):
    """A ViT checkpoint at its native 160x160 input, 16x16 patches and 3 channels, on 1x7x7 latents
    (1x1 patches, a 7x7 token grid): loaded as pretrained=True loads, through timm's checkpoint_filter_fn."""
    from timm.layers import resample_abs_pos_embed, resample_patch_embed

    torch.manual_seed(0)
    source = timm.create_model("test_vit", num_classes=5)
    torch.save(source.state_dict(), tmp_path / "vit.pth")
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(20, 1, 7, 7)).astype(np.float32), np.arange(20) % 2
    model = TimmClassifier("test_vit", checkpoint_path=tmp_path / "vit.pth", lr=1e-12, weight_decay=0.0,
                           early_stopping=False, **FAST).fit(X, y)  # fmt: skip
    network = model.net_.module_.network
    assert model.stem_changes_ == ["patch_embed: img_size=(7, 7), patch_size=(1, 1)"]
    old_grid = source.patch_embed.grid_size  # (10, 10)
    expected_pos = resample_abs_pos_embed(source.pos_embed.detach(), new_size=(7, 7), old_size=old_grid)
    torch.testing.assert_close(network.pos_embed.detach(), expected_pos)
    expected_patch = resample_patch_embed(source.patch_embed.proj.weight.detach(), (1, 1)).sum(dim=1, keepdim=True)
    torch.testing.assert_close(network.patch_embed.proj.weight.detach(), expected_patch)
    torch.testing.assert_close(network.blocks[0].attn.qkv.weight, source.blocks[0].attn.qkv.weight)
    assert model.predict_proba(X[:3]).shape == (3, 2)


@pytest.mark.parametrize("model, shape", [("test_resnet", (3, 64)), ("test_vit", (3, 12, 20)), ("test_vit", (3, 64))],
                         ids=["1-D CNN", "ViT, non-square token grid", "1-D ViT"])  # fmt: skip
def test_a_fitted_modules_saved_weights_reload_whatever_its_adapted_shape(tmp_path, model, shape):
    """Modules adapted to 1-D signals (1 x k kernels) or to a non-square token grid reload as they are."""
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(16, *shape)).astype(np.float32), np.arange(16) % 2
    fitted = TimmClassifier(model, early_stopping=False, **FAST).fit(X, y)
    torch.save(fitted.net_.module_.state_dict(), tmp_path / "own.pth")
    again = TimmClassifier(model, checkpoint_path=tmp_path / "own.pth", lr=1e-12, weight_decay=0.0,
                           early_stopping=False, **FAST).fit(X, y)  # fmt: skip
    loaded = dict(again.net_.module_.network.named_parameters())  # trained at lr ~ 0: as loaded
    for name, value in fitted.net_.module_.network.named_parameters():
        torch.testing.assert_close(loaded[name], value, msg=name)


def test_a_flop_count_that_fails_warns_and_keeps_the_trained_model(monkeypatch, latents):
    _, Z, y = latents

    def trips(*args, **kwargs):
        raise RuntimeError("the counter tripped")

    monkeypatch.setattr("walloc_features.estimators._torch.count_flops", trips)
    with pytest.warns(RuntimeWarning, match="could not count the FLOPs .*RuntimeError: the counter tripped"):
        model = MLPHeadClassifier((), max_epochs=20, batch_size=32, random_state=0).fit(Z[:200], y[:200])
    assert np.isnan(model.flops_per_sample_) and np.isnan(model.training_flops_)
    assert model.score(Z[:200], y[:200]) > 0.5  # trained: ten classes, chance is 0.1


def test_a_checkpoint_with_a_stray_key_for_1d_input_is_refused_naming_the_key(tmp_path):
    """Only a shape mismatch sends a checkpoint on to the 1-D adapted model: other errors are reported as they are
    (they were retried after the adaptation and reported as every kernel's shape)."""
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(16, 3, 64)).astype(np.float32), np.arange(16) % 2
    state = timm.create_model("test_resnet").state_dict()  # 2-D weights: they load before the 1-D adaptation
    torch.save({**state, "extra.weight": torch.zeros(1)}, tmp_path / "extra.pth")
    stray = r"extra.pth does not match the model: missing \[\], unexpected \['extra.weight'\]"
    with pytest.raises(ValueError, match=stray):
        TimmClassifier("test_resnet", checkpoint_path=tmp_path / "extra.pth", **FAST).fit(X, y)


def test_a_checkpoint_timms_filter_cannot_adapt_is_refused_with_a_value_error(tmp_path):
    """timm resamples position embeddings from a square grid: a module saved at 12x10 tokens cannot go to 16x16."""
    rng = np.random.default_rng(0)
    y = np.arange(16) % 2
    fitted = TimmClassifier("test_vit", **FAST).fit(rng.normal(size=(16, 3, 12, 20)).astype(np.float32), y)
    torch.save(fitted.net_.module_.state_dict(), tmp_path / "own.pth")
    with pytest.raises(ValueError, match="own.pth cannot be adapted to VisionTransformer by timm's checkpoint filter"):
        TimmClassifier("test_vit", checkpoint_path=tmp_path / "own.pth", **FAST).fit(
            rng.normal(size=(16, 3, 16, 16)).astype(np.float32), y
        )


@pytest.mark.parametrize("name", ["resnet18", "test_convnext", "test_efficientnet", "test_nfnet"])
@pytest.mark.parametrize("size", [(7, 7), (8, 64)], ids=["square", "wide"])
def test_adapt_strides_keeps_small_inputs_alive(name, size):
    model = timm.create_model(name, in_chans=4, num_classes=10).eval()
    adapt_strides(model, size, channels=4, min_size=2)
    assert min(model.forward_features(torch.zeros(2, 4, *size)).shape[2:]) >= 2
    one_d = timm.create_model(name, in_chans=4, num_classes=10).eval()
    adapt_strides(one_d, (1, 64), channels=4, min_size=2, one_d=True)
    assert one_d(torch.zeros(2, 4, 1, 64)).shape == (2, 10)


def test_vit_gets_patches_sized_for_the_input(latents):
    _, Z, y = latents
    model = TimmClassifier("test_vit", **FAST).fit(Z[:200], y[:200])
    assert model.net_.module_.network.patch_embed.patch_size == (1, 1)  # 7x7 latents: one token each


def _two_classes(shape, n=16):
    return np.random.default_rng(0).standard_normal((n, *shape)).astype(np.float32), np.arange(n) % 2


@pytest.mark.parametrize(
    "model, shape, changes",
    [  # the documented audio latents, (16, 63): the position embeddings had 15 tokens, the padded input 16
        ("test_vit", (16, 63), "img_size=(1, 64), patch_size=(1, 4) (input padded from (1, 63))"),
        ("test_vit", (1, 17, 17), "img_size=(18, 18), patch_size=(2, 2) (input padded from (17, 17))"),
        # a ViT that does not pad: patches that divide the size (4-sample patches left 3 samples unread)
        ("cait_xxs24_224", (16, 63), "img_size=(1, 63), patch_size=(1, 3)"),
    ],
)
def test_vits_read_every_position_of_sizes_their_patches_do_not_divide(model, shape, changes):
    X, y = _two_classes(shape)
    fitted = TimmClassifier(model, max_epochs=1, batch_size=8, early_stopping=False, random_state=0).fit(X, y)
    assert fitted.stem_changes_ == [f"patch_embed: {changes}"]
    assert fitted.predict_proba(X).shape == (16, 2)


def test_a_patch_embedding_that_strides_past_its_kernel_is_refused_not_trained_on_a_fraction_of_the_input():
    """PiT's patch embedding has a stride of its own (8): sized for 1x1 patches, it read 1 pixel in 64 (the
    other 63 could change without moving a prediction), and stem_changes_ described 8x8 tokens."""
    X, y = _two_classes((12, 8, 8))
    message = r"'pit_ti_224': its patch embedding patch_embed.conv strides \(8, 8\) over a \(1, 1\) kernel and would "
    with pytest.raises(ValueError, match=message + "skip 63 of every 64 input positions"):
        TimmClassifier("pit_ti_224", max_epochs=1, early_stopping=False).fit(X, y)


@pytest.mark.parametrize(
    "model, message",
    [
        ("crossvit_tiny_240", "stem='auto' sizes one patch embedding, and 'crossvit_tiny_240' has one per branch"),
        ("pvt_v2_b0", "stem='auto' cannot size the patches of 'pvt_v2_b0' .*unexpected keyword argument 'img_size'"),
    ],
)
def test_patch_embeddings_the_automatic_stem_cannot_size_are_refused_by_name(model, message):
    """PVT-v2 raised timm's own TypeError; CrossViT took the sizes as one per branch, unlike stem_changes_ said."""
    X, y = _two_classes((12, 8, 16))
    with pytest.raises(ValueError, match=message):
        TimmClassifier(model, max_epochs=1, early_stopping=False).fit(X, y)


def test_a_vit_that_cannot_pad_a_side_no_patch_near_its_own_divides_is_refused_not_given_a_token_per_sample():
    """A 16001-sample clip has no divisor near the 1024-sample patch: 1-sample patches would make 16001 tokens."""
    X, y = _two_classes((1, 16001), n=4)
    with pytest.raises(ValueError, match=r"it cannot pad, and no patch near \(1, 1024\) divides \(1, 16001\)"):
        TimmClassifier("cait_xxs24_224", max_epochs=1, early_stopping=False).fit(X, y)


def test_downsampling_layers_the_automatic_stem_does_not_know_are_named():
    """Anti-aliased ResNets downsample in BlurPool2d, which stem='auto' left strided while it unstrided the
    shortcut: the branches came out of different sizes, and the error advised a larger min_feature_size."""
    X, y = _two_classes((1, 7, 7))
    with pytest.raises(ValueError, match=r"'resnetblur18' .*; its BlurPool2d layers downsample in a way stem='auto' "
                                         r"does not adapt; try another model, or stem='none'$"):  # fmt: skip
        TimmClassifier("resnetblur18", max_epochs=1, early_stopping=False).fit(X, y)
    X, y = _two_classes((12, 8, 8))  # ECA attention (a stride-1 Conv1d), which is no downsampling, trains
    assert TimmClassifier("ecaresnet26t", max_epochs=1, early_stopping=False).fit(X, y).stem_changes_


def test_pretrained_weights_that_cannot_be_fetched_name_the_model_and_the_offline_way(tmp_path, monkeypatch):
    """The hub's own error named neither the model nor checkpoint_path."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)  # as on this project's machines, without the retries
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))  # (an empty cache, whatever this machine holds)
    X, y = _two_classes((3, 8, 8))
    with pytest.raises(OSError, match=r"pretrained=True could not get the weights of 'resnet18' .*checkpoint_path="):
        TimmClassifier("resnet18", pretrained=True, max_epochs=1).fit(X, y)


# ------------------------------------------------------------------------ FLOP accounting --
def test_flop_counter_matches_hand_counts():
    from sklearn.linear_model import LogisticRegression

    from walloc_features.evaluation import classifier_flops_per_sample

    assert count_flops(torch.nn.Linear(10, 4), torch.zeros(1, 10)) == 2 * 10 * 4
    X, y = np.random.default_rng(0).random((30, 5)), np.arange(30) % 3
    linear = LogisticRegression().fit(X, y)
    assert classifier_flops_per_sample(linear, X[:2]) == classifier_flops_per_sample(linear.sparsify(), X[:2]) == 30
    conv = torch.nn.Conv2d(3, 8, kernel_size=3, padding=1)
    assert count_flops(conv, torch.zeros(1, 3, 16, 16)) == 2 * 8 * 16 * 16 * 3 * 9


def test_transform_flops_of_walloc(latents, mnist):
    codec, _, _ = latents
    # The J=2 levels are fused: along each axis, 2**J composite filters at stride 2**J, one
    # multiply-add per tap and pixel. bior4.4's 10-tap filters have 9 non-zero taps, so the
    # composite has 1 + 8 * (2**J - 1) = 25 taps. Then the 1x1 projection of 16 packets to 1
    # latent at 7x7 positions.
    taps = 1 + 8 * (2**codec.J_ - 1)
    wavelet_packets = 2 * (2 * taps * 28 * 28)
    projection = 2 * 16 * 1 * 49
    assert transform_flops_per_sample(codec, mnist[0][:8]) == wavelet_packets + projection


# ------------------------------------------------------------------------ speech data cache --
def test_speech_cache_is_keyed_by_every_setting(tmp_path):
    a = load_speech_commands(words=("left-right", "go"), n_speakers=1, data_home=tmp_path)
    b = load_speech_commands(words=("left", "right-go"), n_speakers=1, data_home=tmp_path)
    assert len(list(tmp_path.glob("*.npz"))) == 2 and a[0].shape == b[0].shape == (2, 16000)
    np.testing.assert_array_equal(load_speech_commands(words=("left-right", "go"), n_speakers=1,
                                                       data_home=tmp_path)[0], a[0])  # fmt: skip
    with pytest.raises(ValueError, match="n_speakers >= 1"):
        load_speech_commands(n_speakers=0, data_home=tmp_path)


def test_speech_settings_outside_what_espeak_takes_are_refused_by_name():
    from walloc_features.datasets import load_speech_commands, synthesize

    with pytest.raises(ValueError, match="no voice variant"):
        synthesize("yes", variant="no_such_variant")
    with pytest.raises(ValueError, match="sample_rate must be positive, got 0"):
        synthesize("yes", sample_rate=0)  # was scipy's "up and down must be >= 1"
    with pytest.raises(TypeError, match="sample_rate must be an integer, got 16000.0"):
        synthesize("yes", sample_rate=16000.0)
    with pytest.raises(ValueError, match="rate must be in 80-450, got 10000"):
        synthesize("yes", rate=10000)  # was 90 samples of audio
    with pytest.raises(ValueError, match="pitch must be in 0-99, got 120"):
        synthesize("yes", pitch=120)
    with pytest.raises(TypeError, match="duration must be a number of seconds, got '1'"):
        load_speech_commands(n_speakers=2, duration="1")


# ------------------------------------------------------------------------ inputs and settings --
def test_values_beyond_float32_are_refused_and_huge_float32_features_still_standardised(latents):
    """The networks compute in float32: float64 values beyond its range were cast to inf (NaN probabilities, a
    NaN std); float32 values near 1e19, whose squares overflow float32, kept an infinite std that zeroed them."""
    _, Z, y = latents
    X = Z[:200].reshape(200, -1).astype(np.float64)
    model = MLPHeadClassifier(hidden_layer_sizes=(8,), **FAST).fit(X, y[:200])
    bad = X[:3].copy()
    bad[0, 2] = 1e39
    for call in (model.predict_proba, lambda data: MLPHeadClassifier(**FAST).fit(data, y[:3])):
        with pytest.raises(ValueError, match="beyond float32's range"):
            call(bad)
    huge = X.astype(np.float32)
    huge[:, 0] *= np.float32(1e19)
    scaled = MLPHeadClassifier(hidden_layer_sizes=(8,), **FAST).fit(huge, y[:200])
    std = scaled.net_.module_.std.numpy()
    assert np.isfinite(std).all() and std[0] > 1e18


def test_input_shape_lays_out_samples_of_any_shape_that_hold_its_values(mnist):
    """(N, 28, 28) digits with input_shape=(1, 28, 28) are images, as (N, 1, 28, 28) is (they were read as
    28-channel signals, the parameter silently ignored); a shape that cannot hold the samples is refused."""
    X, y = mnist
    model = TimmClassifier("test_resnet", input_shape=(1, 28, 28), **FAST).fit(X[:200], y[:200])
    assert model.sample_shape_ == (1, 28, 28) and not model.one_d_
    reference = TimmClassifier("test_resnet", **FAST).fit(X[:200, None], y[:200])
    np.testing.assert_allclose(model.predict_proba(X[:20]), reference.predict_proba(X[:20, None]), atol=1e-6)
    np.testing.assert_allclose(model.predict_proba(X[:20].reshape(20, -1)), model.predict_proba(X[:20]), atol=1e-6)
    with pytest.warns(UserWarning, match="early stopping turned off: 50 samples"):  # too few for a validation split
        inferred = TimmClassifier("test_resnet", input_shape=(1, -1, 28), **FAST).fit(X[:50], y[:50])
    assert inferred.sample_shape_ == (1, 28, 28)
    for shape in [(1, 2, 3), (2, -1, 5)]:
        with pytest.raises(ValueError, match=r"784 values a sample, which input_shape=.* cannot hold"):
            TimmClassifier("test_resnet", input_shape=shape, **FAST).fit(X[:50], y[:50])


def test_batch_size_one_under_batch_norm_is_refused_by_name():
    """A 1x1 feature map and one sample: torch's "Expected more than 1 value per channel" named neither."""
    X = np.random.default_rng(0).normal(size=(20, 2, 4, 4)).astype(np.float32)
    with pytest.raises(ValueError, match="batch_size=1: a batch normalisation layer"):
        TimmClassifier("test_resnet", batch_size=1, max_epochs=1, early_stopping=False).fit(X, np.arange(20) % 2)


def test_seeded_fits_in_threads_repeat_the_sequential_ones(latents):
    """torch's generators are process-wide: fits with their own random_state in two threads at once (joblib's
    threading backend) drew from each other's streams and differed from the same fits run one after another."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    _, Z, y = latents
    X = Z[:400].reshape(400, -1)

    def fit(seed):
        model = MLPHeadClassifier(hidden_layer_sizes=(64,), dropout=0.3, max_epochs=3, batch_size=32, random_state=seed)
        return model.fit(X, y[:400]).predict_proba(X[:50])

    sequential = [fit(0), fit(1)]
    with ThreadPoolExecutor(2) as pool:
        threaded = list(pool.map(fit, [0, 1]))
    for a, b in zip(sequential, threaded, strict=True):
        np.testing.assert_array_equal(a, b)

    # predicting in another thread meanwhile (GridSearchCV scoring one fold while the next trains): skorch's data
    # loader draws from torch's generator, which the fit's seeded stream shares
    other = MLPHeadClassifier(hidden_layer_sizes=(8,), **FAST).fit(X[:100], y[:100])
    done = threading.Event()

    def predict_until_done():
        while not done.is_set():
            other.predict_proba(X[:8])

    with ThreadPoolExecutor(1) as pool:
        busy = pool.submit(predict_until_done)
        try:
            np.testing.assert_array_equal(fit(0), sequential[0])
        finally:
            done.set()
        busy.result()


@pytest.mark.parametrize("device", ["meta", "mps", "xpu"])
def test_unsupported_devices_are_refused_before_a_fitted_model_moves(latents, device):
    """predict moved the network before anything checked the device: on "meta" its weights were lost."""
    _, Z, y = latents
    model = MLPHeadClassifier(hidden_layer_sizes=(8,), **FAST).fit(Z[:100], y[:100])
    expected = model.predict_proba(Z[:10])
    with pytest.raises(ValueError, match=f"device='{device}': this package runs on 'cpu' and 'cuda'"):
        model.set_params(device=device).predict(Z[:10])
    with pytest.raises(ValueError, match="runs on 'cpu' and 'cuda'"):
        WaLLoCTransformer(device=device).fit(Z[:10])
    np.testing.assert_array_equal(model.set_params(device="cpu").predict_proba(Z[:10]), expected)


def test_vit_sizing_model_kwargs_are_refused_under_the_automatic_stem(latents):
    """stem='auto' sizes a ViT's patches from the input: a patch_size in model_kwargs was overridden silently."""
    _, Z, y = latents
    with pytest.raises(ValueError, match=r"model_kwargs sets \['patch_size'\], which stem='auto' chooses"):
        TimmClassifier("test_vit", model_kwargs={"patch_size": 4}, **FAST).fit(Z[:50], y[:50])


def test_float16_tensor_labels_give_float32_classes():
    X, y = torch.rand(20, 8), torch.tensor([1.0, 3.0] * 10, dtype=torch.float16)
    model = MLPHeadClassifier(**FAST).fit(X, y)
    assert model.classes_.dtype == np.float32 and model.predict(X).dtype == np.float32


def test_model_kwargs_that_the_classifier_derives_are_refused_by_name(latents):
    _, Z, y = latents
    with pytest.raises(ValueError, match=r"model_kwargs sets \['in_chans', 'num_classes'\]"):
        TimmClassifier("test_resnet", model_kwargs={"num_classes": 3, "in_chans": 3}, **FAST).fit(Z[:50], y[:50])


def test_read_only_samples_train_without_a_copy_or_a_warning(latents):
    """joblib hands workers read-only memmaps: torch warned on each of them ("The given NumPy array is not
    writable"), though training only reads the samples."""
    import warnings

    _, Z, y = latents
    X = np.array(Z[:200])
    X.flags.writeable = False
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model = MLPHeadClassifier(hidden_layer_sizes=(8,), **FAST).fit(X, y[:200])
        model.predict(X)


@pytest.mark.parametrize("model", ["test_vit", "test_convnext"])
def test_a_model_too_deep_for_the_input_under_stem_none_points_to_the_automatic_stem(model):
    """The message suggested stem='none', already set, and min_feature_size, which does nothing under it."""
    X, y = np.random.default_rng(0).standard_normal((32, 1, 4, 4)).astype(np.float32), np.arange(32) % 2
    with pytest.raises(ValueError, match=r"cannot take inputs of shape \(1, 4, 4\) here .*; try stem='auto' \(which"):
        TimmClassifier(model, stem="none", early_stopping=False, **FAST).fit(X, y)


def test_a_process_forked_while_another_thread_trains_can_still_predict():
    """A DataLoader's fork-based workers started during another thread's fit inherited the package's torch lock
    held by a thread they do not have: predict_proba in them waited forever."""
    import multiprocessing
    import queue
    import threading

    from walloc_features._device import TORCH_GLOBALS

    rng = np.random.default_rng(0)
    X = rng.standard_normal((200, 8)).astype(np.float32)
    y = (X[:, 0] > 0).astype(int)
    model = MLPHeadClassifier(hidden_layer_sizes=(8,), max_epochs=1, random_state=0).fit(X, y)
    expected = model.predict_proba(X[:16])
    held, release = threading.Event(), threading.Event()

    def training():  # what a fit holds for the whole of its training
        with TORCH_GLOBALS:
            held.set()
            release.wait()

    trainer = threading.Thread(target=training)
    trainer.start()
    held.wait()
    context = multiprocessing.get_context("fork")
    results = context.Queue()

    def worker():  # as a DataLoader worker runs: one torch thread (OpenMP's pool does not survive a fork)
        torch.set_num_threads(1)
        results.put(model.predict_proba(X[:16]))

    child = context.Process(target=worker)
    try:
        child.start()
        got = results.get(timeout=60)
    except queue.Empty:
        pytest.fail("predict_proba in a process forked during a fit never returned")
    finally:
        child.terminate()
        release.set()
        trainer.join()
    np.testing.assert_allclose(got, expected)


def test_a_thread_that_forks_inside_the_lock_still_holds_it_in_the_child():
    """Re-made free in every child, the lock raised "cannot release un-acquired lock" where the forking thread
    itself held it (a fork-based DataLoader inside a seeded fit) and the child went on out of the block."""
    import os

    from walloc_features._device import TORCH_GLOBALS

    pid = None
    try:
        with TORCH_GLOBALS:
            pid = os.fork()
        if pid == 0:
            with TORCH_GLOBALS:  # and it is free afterwards
                pass
            os._exit(0)
    except BaseException:
        if pid == 0:
            os._exit(1)
        raise
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0


def test_the_early_stopping_split_keeps_every_class_in_proportion():
    """Classes of 60/20/10/5/5 samples and validation_fraction=0.2: the validation part holds 12/4/2/1/1, so early
    stopping watches every class (a plain random split can leave the rare ones out)."""
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(5), [60, 20, 10, 5, 5])
    X = rng.normal(size=(100, 8)).astype(np.float32) + y[:, None]
    model = MLPHeadClassifier((8,), max_epochs=1, validation_fraction=0.2, random_state=0).fit(X, y)
    _, valid = model.net_.get_split_datasets(X, y)
    np.testing.assert_array_equal(np.bincount(y[valid.indices], minlength=5), [12, 4, 2, 1, 1])


def test_a_class_of_one_sample_turns_early_stopping_off_instead_of_failing_the_split():
    y = np.r_[np.zeros(20, int), np.ones(19, int), 2]
    X = np.random.default_rng(0).normal(size=(40, 8)).astype(np.float32)
    with pytest.warns(UserWarning, match=r"early stopping turned off: 40 samples \(smallest class: 1\)"):
        model = MLPHeadClassifier((8,), max_epochs=2, random_state=0).fit(X, y)
    assert model.n_epochs_ == 2 and list(model.classes_) == [0, 1, 2]


def test_seeded_fits_leave_the_callers_random_streams_alone():
    """A fit with its own random_state draws from torch's global generator seeded for it, then puts the caller's
    state back: the caller's next torch (and numpy) draws are those it would have made without the fit."""
    rng = np.random.default_rng(0)
    X, y = rng.random((40, 1, 8, 8)).astype(np.float32), np.arange(40) % 2
    torch.manual_seed(123)
    np.random.seed(123)
    expected = torch.rand(3), np.random.rand(3)
    torch.manual_seed(123)
    np.random.seed(123)
    WaLLoCTransformer(reduction=4, decoder="conv", max_epochs=1, random_state=0).fit(X)
    MLPHeadClassifier((4,), max_epochs=1, early_stopping=False, random_state=0).fit(X.reshape(40, -1), y)
    assert torch.equal(torch.rand(3), expected[0]) and np.array_equal(np.random.rand(3), expected[1])
