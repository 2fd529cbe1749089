"""Benchmark presets: which pipelines, sizes and repeats ``walloc-features benchmark`` runs.

``quick`` runs both built-in datasets in about two minutes on two CPU cores; ``full`` uses all
the data, more sizes, three repeats and longer training.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from ..estimators import TimmClassifier
from ..features import DCTTransformer, RawSignal, ResidualVQ, ResolutionReducer, WaLLoCTransformer
from ..quantized import OneHotCodes

__all__ = ["Preset", "PRESETS", "benchmark_pipelines"]


@dataclass(frozen=True)
class Preset:
    """Budget grid and training length of a benchmark run."""

    name: str
    train_sizes: tuple  # counts or fractions of the pool
    n_repeats: int
    test_size: float
    max_epochs: int  # timm model on images
    audio_epochs: int  # timm model on the (few) speech clips
    mnist_samples: int  # how many embedded digits to use
    speech_speakers: int  # synthetic speakers per word
    reductions: tuple = field(default=(16,))
    raw_cnn_audio: bool = True  # a CNN on 16,000-sample waveforms costs ~300 MFLOPs per clip


PRESETS = {
    "quick": Preset("quick", train_sizes=(0.1, 0.3, 1.0), n_repeats=2, test_size=0.25, max_epochs=4,
                    audio_epochs=30, mnist_samples=3000, speech_speakers=40, raw_cnn_audio=False),
    "full": Preset("full", train_sizes=(0.03, 0.1, 0.3, 1.0), n_repeats=3, test_size=0.2, max_epochs=10,
                   audio_epochs=40, mnist_samples=10000, speech_speakers=120, reductions=(4, 16)),
}  # fmt: skip


def get_preset(preset) -> Preset:
    """The :class:`Preset` named ``preset`` (a Preset passes through); an unknown name is refused, listing the known."""
    if isinstance(preset, Preset):
        return preset
    if preset not in PRESETS:
        raise ValueError(f"preset must be one of {sorted(PRESETS)} or a Preset, got {preset!r}")
    return PRESETS[preset]


def benchmark_pipelines(modality: str, preset: Preset | str = "quick", *, random_state: int = 0) -> dict:
    """The pipelines a preset compares on ``modality`` ("image" or "audio").

    Every codec at each of the preset's reductions with a linear model (standardised
    logistic regression), the raw signal with the same, and a timm CNN (``test_resnet``,
    adapted to small inputs) on WaLLoC latents, on resolution-reduced signals and on the raw
    signal at the largest reduction (not raw audio in the quick preset: too slow on a CPU). Audio adds ResidualVQ codes,
    one-hot encoded for the linear model (codebook indices are categories; see
    :mod:`walloc_features.quantized`).

    Examples
    --------
    >>> list(benchmark_pipelines("image", "quick"))  # doctest: +NORMALIZE_WHITESPACE
    ['raw + logistic', 'WaLLoC 16x + logistic', 'resolution 16x + logistic', 'DCT 16x + logistic',
     'WaLLoC 16x + CNN', 'resolution 16x + CNN', 'raw + CNN']
    """
    preset = get_preset(preset)
    if modality not in ("image", "audio"):
        raise ValueError(f"modality must be 'image' or 'audio', got {modality!r}")

    def linear(features):
        return Pipeline([("features", features), ("scale", StandardScaler()),
                         ("clf", LogisticRegression(max_iter=500))])  # fmt: skip

    def cnn(features):
        epochs = preset.max_epochs if modality == "image" else preset.audio_epochs
        model = TimmClassifier("test_resnet", max_epochs=epochs, batch_size=64, lr=3e-3, random_state=random_state)
        return Pipeline([("features", features), ("clf", model)])

    common = {"modality": modality}
    pipelines = {"raw + logistic": linear(RawSignal(**common))}
    for r in preset.reductions:
        pipelines[f"WaLLoC {r}x + logistic"] = linear(WaLLoCTransformer(r, **common))
        pipelines[f"resolution {r}x + logistic"] = linear(ResolutionReducer(r, **common))
        pipelines[f"DCT {r}x + logistic"] = linear(DCTTransformer(r, **common))
        if modality == "audio":
            pipelines[f"ResidualVQ {r}x + one-hot logistic"] = Pipeline([
                ("features", ResidualVQ(r, random_state=random_state, **common)),
                ("one_hot", OneHotCodes(alphabet=256, handle_unknown="ignore", columns="seen")),
                ("clf", LogisticRegression(max_iter=200)),
            ])  # fmt: skip
    tensor = {"output": "tensor", **common}
    r = max(preset.reductions)
    pipelines[f"WaLLoC {r}x + CNN"] = cnn(WaLLoCTransformer(r, **tensor))
    pipelines[f"resolution {r}x + CNN"] = cnn(ResolutionReducer(r, **tensor))
    if modality == "image" or preset.raw_cnn_audio:
        pipelines["raw + CNN"] = cnn(RawSignal(**tensor))
    return pipelines
