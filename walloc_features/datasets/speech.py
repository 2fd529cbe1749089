"""Synthetic speech commands, made offline with eSpeak NG (through the ``espeakng-loader`` wheel).

eSpeak NG is a formant synthesiser: the clips are intelligible but clearly synthetic speech,
not recordings. Speakers differ by voice (English accents), voice variant (eSpeak's 104
variant files), pitch and rate. The synthesiser's output is not bit-reproducible from run to
run, so :func:`load_speech_commands` generates a dataset once and caches it on disk.

The binding below calls eSpeak NG's public C API (``speak_lib.h``: ``espeak_Initialize``,
``espeak_SetSynthCallback``, ``espeak_SetVoiceByName``, ``espeak_SetParameter``,
``espeak_Synth``, ``espeak_Synchronize``) with ctypes.
"""

from __future__ import annotations

import ctypes
import hashlib
import json
import os
import threading
import zipfile
import zlib
from fractions import Fraction
from numbers import Real
from pathlib import Path

import numpy as np
from scipy.signal import resample_poly

from .._files import write_atomic
from .._warnings import warn

__all__ = ["synthesize", "load_speech_commands", "COMMANDS", "ENGLISH_VOICES"]

#: The ten command words of the Speech Commands benchmark (Warden, 2018).
COMMANDS = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go")
#: eSpeak NG's English voices (British, American, Scottish, RP, Lancaster, West Midlands,
#: Caribbean, New York City).
ENGLISH_VOICES = ("en", "en-us", "en-gb-scotland", "en-gb-x-rp", "en-gb-x-gbclan", "en-gb-x-gbcwmd",
                  "en-029", "en-us-nyc")  # fmt: skip

#: What ``np.load`` of a damaged ``.npz`` raises: an empty file, a cut-off or bit-flipped zip, other
#: bytes (read as a refused pickle), a missing array, a corrupt deflate stream; TypeError: a lone
#: ``.npy`` (no context manager) or a member that is not an array.
_UNREADABLE = (EOFError, zipfile.BadZipFile, ValueError, KeyError, zlib.error, TypeError)

_AUDIO_OUTPUT_SYNCHRONOUS = 2
_RATE, _PITCH = 1, 3  # espeak_PARAMETER
_POS_CHARACTER = 1
_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)


class _ESpeak:
    """The eSpeak NG library, initialised once per process (it keeps global state)."""

    _instance = None

    def __init__(self):
        try:
            import espeakng_loader
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise ImportError("speech synthesis needs espeakng-loader: pip install 'walloc-features[speech]'") from exc
        self.lib = ctypes.CDLL(str(espeakng_loader.get_library_path()))
        self.data_path = Path(espeakng_loader.get_data_path())
        self.lib.espeak_Initialize.restype = ctypes.c_int
        self.lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        self.lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        self.lib.espeak_Synth.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int,
                                          ctypes.c_uint, ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p]  # fmt: skip
        rate = self.lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, str(self.data_path.parent).encode(), 0)
        if rate <= 0:
            raise RuntimeError(f"eSpeak NG failed to initialise with data at {self.data_path}")
        self.sample_rate = rate
        self._chunks = []
        self._lock = threading.Lock()  # the library keeps global state; one utterance at a time
        self._callback = _CALLBACK(self._collect)  # kept referenced: C holds the pointer
        self.lib.espeak_SetSynthCallback(self._callback)

    @classmethod
    def get(cls) -> "_ESpeak":
        if cls._instance is None:
            cls._instance = cls()
        return cls._instance

    def _collect(self, samples, n, events):
        if n > 0:
            self._chunks.append(np.ctypeslib.as_array(samples, shape=(n,)).copy())
        return 0

    def variants(self) -> list:
        return sorted(p.name for p in (self.data_path / "voices" / "!v").iterdir())

    def say(self, text: str, voice: str, rate: int, pitch: int) -> np.ndarray:
        with self._lock:
            if self.lib.espeak_SetVoiceByName(voice.encode()) != 0:
                raise ValueError(f"eSpeak NG has no voice {voice!r}")
            self.lib.espeak_SetParameter(_RATE, int(rate), 0)
            self.lib.espeak_SetParameter(_PITCH, int(pitch), 0)
            self._chunks = []
            data = text.encode()
            self.lib.espeak_Synth(data, len(data) + 1, 0, _POS_CHARACTER, 0, 0, None, None)
            self.lib.espeak_Synchronize()
            chunks, self._chunks = self._chunks, []
        audio = np.concatenate(chunks) if chunks else np.zeros(0, np.int16)
        return audio.astype(np.float32) / 32768


def synthesize(text: str, *, voice: str = "en-us", variant: str | None = None, rate: int = 175,
               pitch: int = 50, sample_rate: int = 16000) -> np.ndarray:  # fmt: skip
    """Speak ``text`` with eSpeak NG; mono float32 in [-1, 1] at ``sample_rate``.

    eSpeak NG speaks at 22050 Hz; other rates are resampled (``scipy.signal.resample_poly``), and the
    filter's overshoot on full-scale speech (2.5% in the default dataset at 16 kHz) is clipped, so ``x * 32767`` always
    fits 16-bit PCM.

    Parameters
    ----------
    text : str
    voice : str, default="en-us"
        An eSpeak NG voice (see :data:`ENGLISH_VOICES`).
    variant : str, default=None
        A voice variant file name (eSpeak's ``voices/!v``: e.g. ``"Alex"``, ``"f3"``).
    rate : int, default=175
        Words per minute (80-450).
    pitch : int, default=50
        Base pitch, 0-99.
    sample_rate : int, default=16000

    Examples
    --------
    >>> from walloc_features.datasets import synthesize
    >>> audio = synthesize("yes")
    >>> audio.dtype, 0.1 < len(audio) / 16000 < 1.5
    (dtype('float32'), True)
    """
    ranges = (("rate", rate, 80, 450), ("pitch", pitch, 0, 99), ("sample_rate", sample_rate, 1, None))
    for name, value, low, high in ranges:
        _require_int(name, value)
        if value < low or (high is not None and value > high):  # eSpeak clamps or misbehaves outside its range
            raise ValueError(f"{name} must be {f'in {low}-{high}' if high else 'positive'}, got {value}")
    engine = _ESpeak.get()
    if variant is not None and variant not in engine.variants():
        raise ValueError(f"eSpeak NG has no voice variant {variant!r} (see its voices/!v folder)")
    name = voice if variant is None else f"{voice}+{variant}"
    audio = engine.say(text, name, rate, pitch)
    if sample_rate != engine.sample_rate:
        ratio = Fraction(sample_rate, engine.sample_rate)
        audio = resample_poly(audio, ratio.numerator, ratio.denominator).astype(np.float32)
        np.clip(audio, -1.0, 1.0, out=audio)  # the filter rings past full scale; PCM would wrap around
    return audio


def _require_int(name: str, value) -> None:
    """Refuse what is not an integer (bools and floats included) by the parameter's name."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an integer, got {value!r}")


def _fit_clip(audio: np.ndarray, length: int) -> np.ndarray:
    """Trim silence (below 1% of the peak), keep at most ``length`` samples, centre them in the clip."""
    loud = np.flatnonzero(np.abs(audio) > 0.01 * max(np.abs(audio).max(), 1e-9))
    if len(loud):
        audio = audio[loud[0] : loud[-1] + 1]
    audio = audio[:length]
    start = (length - len(audio)) // 2
    clip = np.zeros(length, np.float32)
    clip[start : start + len(audio)] = audio
    return clip


def get_data_home(data_home=None) -> Path:
    """Cache folder: ``data_home``, else ``$WALLOC_FEATURES_DATA``, else ``~/.cache/walloc-features``."""
    path = Path(data_home or os.environ.get("WALLOC_FEATURES_DATA", Path.home() / ".cache" / "walloc-features"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def load_speech_commands(*, words=COMMANDS, n_speakers: int = 40, sample_rate: int = 16000, duration: float = 1.0,
                         random_state: int = 0, data_home=None, refresh: bool = False):  # fmt: skip
    """A Speech-Commands-style set of synthetic one-word clips, generated once and cached.

    Each of ``n_speakers`` speakers (a random eSpeak NG English voice, voice variant, pitch in
    [25, 75] and rate in [130, 220] words per minute, drawn with ``random_state``) says every
    word once. Clips are silence-trimmed, centred and zero-padded to ``duration`` seconds; a word
    longer than ``duration`` keeps its first ``duration`` seconds (at the default 1 s, the longest
    word takes about 0.55 s). Samples lie in [-1, 1].
    **This is synthetic speech**: useful to compare features offline, not a stand-in for
    recorded speech accuracy.

    Parameters
    ----------
    words : sequence of str, default=COMMANDS
        The classes ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go").
    n_speakers : int, default=40
    sample_rate : int, default=16000
    duration : float, default=1.0
        Seconds per clip.
    random_state : int, default=0
        Draws the speakers. An integer (not ``None`` or a Generator): it names the cached copy.
    data_home : str or path, default=None
        Cache folder (see :func:`get_data_home`).
    refresh : bool, default=False
        Regenerate even when a cached copy exists. A cached copy that cannot be read (a damaged
        file) is regenerated anyway, with a warning that names it.

    Returns
    -------
    audio : ndarray of shape (n_speakers * len(words), sample_rate * duration), float32
    labels : ndarray of shape (n_speakers * len(words),), int64
        Index into ``words``.
    speakers : ndarray of shape (n_speakers * len(words),), int64
        Speaker of each clip (for speaker-disjoint splits with ``GroupShuffleSplit``).

    Examples
    --------
    >>> from walloc_features.datasets import load_speech_commands
    >>> X, y, speakers = load_speech_commands(n_speakers=2)
    >>> X.shape, y[:3].tolist()
    ((20, 16000), [0, 1, 2])
    """
    if isinstance(words, str):  # a tuple of its letters would be a silent surprise
        raise TypeError(f"words must be a sequence of words, got the string {words!r}: use words=[{words!r}]")
    for name, value in (("n_speakers", n_speakers), ("sample_rate", sample_rate), ("random_state", random_state)):
        _require_int(name, value)  # (a random_state of None would reuse one cached draw)
    # numpy integers: JSON-able in the cache key
    n_speakers, sample_rate, random_state = int(n_speakers), int(sample_rate), int(random_state)
    if sample_rate < 1:
        raise ValueError(f"sample_rate must be positive, got {sample_rate}")
    words = tuple(str(w) for w in words)
    if any(not w.strip() for w in words):  # silence: a class of all-zero clips
        raise ValueError(f"words must not be empty or blank, got {words!r}")
    if isinstance(duration, bool) or not isinstance(duration, Real):
        raise TypeError(f"duration must be a number of seconds, got {duration!r}")
    if not words or n_speakers < 1 or not np.isfinite(duration) or duration <= 0:
        raise ValueError(f"need words, n_speakers >= 1 and a finite duration > 0; got {len(words)} words, "
                         f"n_speakers={n_speakers}, duration={duration}")  # fmt: skip
    length = int(round(sample_rate * duration))
    if length < 1:
        raise ValueError(f"duration={duration} s is less than one sample at {sample_rate} Hz")
    # format 2: clips in [-1, 1] (synthesize clips its resampling's overshoot before the silence is trimmed)
    settings = {"format": 2, "words": words, "n_speakers": n_speakers, "sample_rate": sample_rate,
                "length": length, "random_state": random_state}  # fmt: skip
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]
    cache = get_data_home(data_home) / f"speech_commands_{digest}.npz"
    n_clips = n_speakers * len(words)
    if cache.exists() and not refresh:
        try:
            data = np.load(cache, allow_pickle=False)
            if not isinstance(data, np.lib.npyio.NpzFile):  # a lone .npy array (Python 3.10: no TypeError at `with`)
                raise TypeError(f"not an .npz archive but a lone {type(data).__name__}")
            with data:
                audio, labels, speakers = data["audio"], data["labels"], data["speakers"]
            if not all(isinstance(a, np.ndarray) for a in (audio, labels, speakers)):  # a member of other bytes
                raise TypeError("a member is not a .npy array")
        except _UNREADABLE as exc:  # a truncated or overwritten file: the data is ours to remake (a few seconds)
            problem = f"is unreadable ({type(exc).__name__}: {exc})"
        else:
            if audio.shape == (n_clips, length) and labels.shape == speakers.shape == (n_clips,):
                return audio, labels, speakers
            problem = f"holds arrays of the wrong shape (audio {audio.shape}, labels {labels.shape})"
        warn(f"the cached speech dataset {cache} {problem}; generating it again", UserWarning)
    rng = np.random.default_rng(random_state)
    variants = _ESpeak.get().variants()
    audio, labels, speakers = [], [], []
    for speaker in range(n_speakers):
        voice = ENGLISH_VOICES[rng.integers(len(ENGLISH_VOICES))]
        variant = variants[rng.integers(len(variants))]
        pitch, rate = int(rng.integers(25, 76)), int(rng.integers(130, 221))
        for label, word in enumerate(words):
            clip = synthesize(word, voice=voice, variant=variant, rate=rate, pitch=pitch, sample_rate=sample_rate)
            if not clip.any():  # e.g. punctuation only: a class of all-zero clips would train on nothing
                raise ValueError(f"eSpeak NG says nothing for the word {word!r}; give words it can speak")
            audio.append(_fit_clip(clip, length))
            labels.append(label)
            speakers.append(speaker)
    audio, labels, speakers = np.stack(audio), np.asarray(labels, np.int64), np.asarray(speakers, np.int64)
    # atomic and readable by all as any file (a shared data home): crashes never leave a broken cache
    write_atomic({cache: lambda f: np.savez_compressed(f, audio=audio, labels=labels, speakers=speakers)})
    return audio, labels, speakers
