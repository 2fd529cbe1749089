"""The embedded digits and the headline pipeline: WaLLoC latents feeding scikit-learn classifiers.

Measured when written (train 8,000 / test 2,000 in load_mnist's order): WaLLoC 16x + logistic
regression 0.8815 (raw pixels: 0.8935); WaLLoC 16x + StandardScaler + SVC 0.9325 (raw pixels:
0.9265, 4x slower to fit).
"""

import os
import zipfile

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

from walloc_features import WaLLoCTransformer


def test_load_mnist_is_complete_balanced_and_shuffled(mnist):
    X, y = mnist
    assert X.shape == (10000, 28, 28) and X.dtype == np.uint8 and y.dtype == np.int64
    assert X.max() == 255 and X.min() == 0
    counts = np.bincount(y)
    assert len(counts) == 10 and counts.min() > 800
    assert np.bincount(y[8000:], minlength=10).min() > 120  # the tail is not one class
    from walloc_features.datasets import load_mnist

    np.testing.assert_array_equal(load_mnist()[1], y)  # the order is fixed


@pytest.fixture(scope="module")
def split(mnist):
    X, y = mnist
    return X[:8000], y[:8000], X[8000:], y[8000:]


def test_walloc_16x_logistic_regression_keeps_most_of_the_pixels_accuracy(split):
    X_train, y_train, X_test, y_test = split
    model = Pipeline([("walloc", WaLLoCTransformer(reduction=16)), ("clf", LogisticRegression())])
    accuracy = model.fit(X_train, y_train).score(X_test, y_test)
    pixels = LogisticRegression().fit(X_train.reshape(8000, -1) / 255, y_train)
    pixel_accuracy = pixels.score(X_test.reshape(2000, -1) / 255, y_test)
    assert model.named_steps["walloc"].reduction_ == 16
    assert accuracy >= 0.87
    assert accuracy >= pixel_accuracy - 0.03  # 16x fewer features, at most 3 points lost


def test_walloc_16x_with_a_kernel_classifier_reaches_090(split):
    X_train, y_train, X_test, y_test = split
    model = Pipeline([("walloc", WaLLoCTransformer(reduction=16)), ("scale", StandardScaler()), ("svc", SVC())])
    assert model.fit(X_train, y_train).score(X_test, y_test) >= 0.92


def _zip_cut_short(path):
    path.write_bytes(path.read_bytes()[:500])


def _bit_flipped(path):
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF  # inside the compressed audio: a CRC error
    path.write_bytes(bytes(data))


def _missing_array(path):
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("audio.npy", b"")


def _lone_npy(path):
    with open(path, "wb") as f:
        np.save(f, np.zeros(3))


def _member_of_other_bytes(path):
    with zipfile.ZipFile(path, "w") as archive:
        for name in ("audio", "labels", "speakers"):
            archive.writestr(name, b"not an array")


@pytest.mark.parametrize(
    "damage", [lambda p: p.write_bytes(b""), lambda p: p.write_text("<html>proxy error</html>"), _zip_cut_short,
               _bit_flipped, _missing_array, lambda p: np.savez(p, audio=np.zeros(3), labels=[0], speakers=[0]),
               _lone_npy, _member_of_other_bytes],
    ids=["empty", "other-bytes", "cut-short", "bit-flipped", "missing-array", "wrong-shape", "lone-npy", "not-npy"],
)  # fmt: skip
def test_damaged_speech_cache_is_regenerated_with_a_warning(tmp_path, damage):
    """The speech set (in this file with the other datasets) is synthesized locally, so a broken cache is remade."""
    from walloc_features.datasets import load_speech_commands

    kwargs = dict(words=("yes", "no"), n_speakers=2, data_home=tmp_path)
    audio, labels, speakers = load_speech_commands(**kwargs)
    (cache,) = tmp_path.glob("speech_commands_*.npz")
    damage(cache)
    with pytest.warns(UserWarning, match=f"speech dataset .*{cache.name} .*; generating it again"):
        again = load_speech_commands(**kwargs)
    assert again[0].shape == audio.shape and again[0].dtype == np.float32
    np.testing.assert_array_equal(again[1], labels)
    np.testing.assert_array_equal(again[2], speakers)
    with np.load(cache) as data:  # rewritten, readable again
        np.testing.assert_array_equal(data["audio"], again[0])


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        (dict(words="yes"), TypeError, r"words must be a sequence of words, got the string 'yes': use words=\['yes'\]"),
        (dict(n_speakers=2.5), TypeError, "n_speakers must be an integer, got 2.5"),
        (dict(sample_rate=16000.0), TypeError, "sample_rate must be an integer"),
        (dict(sample_rate=0), ValueError, "sample_rate must be positive"),
        (dict(n_speakers=0), ValueError, "n_speakers >= 1"),
        (dict(random_state=None), TypeError, "random_state must be an integer, got None"),
        (dict(duration=float("nan")), ValueError, "finite duration > 0; .* duration=nan"),
        (dict(duration=1e-5), ValueError, "less than one sample at 16000 Hz"),
    ],
)
def test_speech_parameters_are_checked_before_any_synthesis(tmp_path, kwargs, error, message):
    """A string is not read as its letters (three one-letter 'words'), nor a float count deep in the loop."""
    from walloc_features.datasets import load_speech_commands

    with pytest.raises(error, match=message):
        load_speech_commands(**kwargs, data_home=tmp_path)
    assert not list(tmp_path.iterdir())  # nothing synthesized or cached


def test_synthesized_speech_stays_in_full_scale_after_resampling(monkeypatch):
    """Resampling full-scale speech rings past 1 (up to 1.025 in the default set): int16 PCM would wrap around."""
    from walloc_features.datasets import speech

    engine = speech._ESpeak.get()
    square = np.sign(np.sin(np.arange(engine.sample_rate) * 2 * np.pi * 220 / engine.sample_rate)).astype(np.float32)
    monkeypatch.setattr(engine, "say", lambda *args: square)
    audio = speech.synthesize("yes", sample_rate=16000)
    assert audio.dtype == np.float32 and np.abs(audio).max() <= 1.0
    assert np.abs(audio).max() > 0.99  # clipped, not rescaled


@pytest.mark.parametrize("word, message", [("", "must not be empty or blank"), (" ", "must not be empty or blank"),
                                           (".", "says nothing for the word '.'")])  # fmt: skip
def test_speech_words_that_make_no_sound_are_refused(tmp_path, word, message):
    """A class of all-zero clips would be learnt as 'silence', not as the word the user asked for."""
    from walloc_features.datasets import load_speech_commands

    with pytest.raises(ValueError, match=message):
        load_speech_commands(words=["yes", word], n_speakers=1, sample_rate=8000, data_home=tmp_path)
    assert not list(tmp_path.iterdir())


def test_speech_counts_may_be_numpy_integers(tmp_path):
    from walloc_features.datasets import load_speech_commands

    audio, labels, _ = load_speech_commands(words=["yes"], n_speakers=np.int64(1), sample_rate=np.int64(8000),
                                            random_state=np.int64(0), data_home=tmp_path)  # fmt: skip
    assert audio.shape == (1, 8000) and labels.tolist() == [0]


def test_speech_cache_is_readable_like_any_file(tmp_path):
    """A shared data home: the cache gets the umask's permissions, not mkstemp's owner-only 0o600."""
    from walloc_features.datasets import load_speech_commands

    umask = os.umask(0o022)
    try:
        load_speech_commands(words=["yes"], n_speakers=1, sample_rate=8000, data_home=tmp_path)
    finally:
        os.umask(umask)
    (cache,) = tmp_path.iterdir()
    assert cache.name.startswith("speech_commands_") and cache.stat().st_mode & 0o777 == 0o644


def test_speech_clips_of_one_length_at_two_rates_are_cached_apart(tmp_path):
    """1 s at 8 kHz and 2 s at 4 kHz are both 8000 samples: the second must not be read from the first's cache."""
    from walloc_features.datasets import load_speech_commands

    kwargs = dict(words=["yes"], n_speakers=1, data_home=tmp_path)
    fast, _, _ = load_speech_commands(sample_rate=8000, duration=1.0, **kwargs)
    slow, _, _ = load_speech_commands(sample_rate=4000, duration=2.0, **kwargs)
    assert fast.shape == slow.shape == (1, 8000) and len(list(tmp_path.glob("speech_commands_*.npz"))) == 2
    assert not np.array_equal(fast, slow)
