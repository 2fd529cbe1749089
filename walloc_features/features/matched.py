"""Configure WaLLoC and every baseline at the same dimensionality reduction."""

from __future__ import annotations

import math
from pathlib import Path

from .dct import DCTTransformer
from .encodec import EnCodecTransformer
from .resolution import ResolutionReducer
from .rvq import ResidualVQ
from .walloc import WaLLoCTransformer

__all__ = ["matched_baselines"]


def _encodec_bandwidth(model, reduction: float, sample_rate, channels: int) -> float:
    """The model's bandwidth whose reduction is closest (in ratio) to ``reduction``."""
    from transformers import EncodecConfig

    path = Path(str(model)).expanduser()
    config = EncodecConfig.from_pretrained(str(path) if path.is_dir() else model)
    rate_in = sample_rate or config.sampling_rate
    kbps_per_codebook = math.log2(config.codebook_size) * config.frame_rate / 1000

    def achieved(bandwidth):
        n_codebooks = max(1, int(bandwidth // kbps_per_codebook))
        return rate_in * channels / (n_codebooks * config.frame_rate)

    return min(config.target_bandwidths, key=lambda b: abs(math.log(achieved(b) / reduction)))


def matched_baselines(
    reduction: float = 16,
    modality: str = "image",
    *,
    output: str = "flat",
    encodec_model=None,
    sample_rate=None,
    channels: int = 1,
    random_state=None,
) -> dict:
    """Named, unfitted transformers that all reduce the input ``reduction`` times.

    "Matched" means as many output values per input sample, not as many bits: each keeps its own code width
    (``budget_table`` lists both), and a size the transform's grid does not divide gets the nearest
    reduction it can reach (DCT pads to whole 8x8 blocks: 12.25x on 28x28 digits at 16); read
    the achieved ``reduction_`` after fit.

    Parameters
    ----------
    reduction : float, default=16
        Input samples per output value for every transformer.
    modality : {"image", "audio"}, default="image"
    output : {"flat", "tensor"}, default="flat"
        Passed to every transformer.
    encodec_model : str or path, default=None
        Audio only: add ``"encodec"`` with the model's bandwidth closest to ``reduction``
        (EnCodec's reductions come in steps of 2x; read the achieved ``reduction_`` after fit).
    sample_rate : int, default=None
        Input rate for EnCodec (None: the model's).
    channels : int, default=1
        Input channels, used to match EnCodec's bandwidth.
    random_state : int, default=None
        Seeds ResidualVQ's k-means.

    Returns
    -------
    dict of str -> transformer
        ``"walloc"``, ``"resolution"``, ``"dct"``, ``"rvq"`` (residual VQ of raw patches), and
        ``"encodec"`` when asked for. After fitting, each has ``reduction_`` and
        ``bits_per_code_``; :func:`walloc_features.evaluation.budget_table` tabulates them.

    Examples
    --------
    >>> from walloc_features.features import matched_baselines
    >>> sorted(matched_baselines(16, "image"))
    ['dct', 'resolution', 'rvq', 'walloc']
    """
    if modality not in ("image", "audio"):
        raise ValueError(f"modality must be 'image' or 'audio', got {modality!r}")
    common = dict(output=output, modality=modality)
    transformers = {
        "walloc": WaLLoCTransformer(reduction, **common),
        "resolution": ResolutionReducer(reduction, **common),
        "dct": DCTTransformer(reduction, **common),
        "rvq": ResidualVQ(reduction, random_state=random_state, **common),
    }
    if encodec_model is not None:
        if modality != "audio":
            raise ValueError("EnCodec is an audio codec; encodec_model needs modality='audio'")
        bandwidth = _encodec_bandwidth(encodec_model, reduction, sample_rate, channels)
        transformers["encodec"] = EnCodecTransformer(
            encodec_model, bandwidth=bandwidth, sample_rate=sample_rate, output=output
        )
    return transformers
