"""Rate-distortion evaluation of the package's codecs: bits spent against reconstruction quality.

:func:`evaluate_codec` measures one operating point of one transformer: the rate of its integer
codes (entropy-coded bytes where the transformer can write them), the PSNR / SSIM of decoding
those codes, encode / decode times and encoder FLOPs. :func:`rate_distortion` sweeps several
transformers per codec (e.g. one per reduction) and returns one record per codec in the layout of
CompressAI's results files
(``compressai.utils.eval_model``)::

    {"name": ..., "description": ..., "results": {"psnr": [...], "bpp": [...], ...}}

with one list entry per operating point, sorted by rate. :func:`save_rate_distortion` and
:func:`load_rate_distortion` write and read those records as one JSON file per codec, and
:func:`default_codecs` builds the standard sweep (WaLLoC and the baselines at matched reductions).

Rates are those of real bytes where the transformer can write them: for transformers with
``compress`` (``WaLLoCTransformer``) the size of the entropy-coded blobs, headers and checksums
included (``"entropy_coded": true``); for the others the fixed-length codes as emitted,
``bits_per_code_`` bits per value (``"entropy_coded": false``), an upper bound on what an entropy
coder would spend. Every record also carries the fixed-length rate and the compression ratio
against 8-bit images or 16-bit PCM audio.
"""

from __future__ import annotations

import copy
import inspect
import json
import math
import re
import time
from collections.abc import Mapping
from numbers import Integral, Real
from pathlib import Path

import numpy as np
from sklearn.base import BaseEstimator, clone
from sklearn.exceptions import NotFittedError
from sklearn.utils.validation import check_is_fitted

from .._files import write_atomic
from .._warnings import warn
from ..features._base import DATA_RANGE
from ..features._signals import input_scale, read_signals, to_numpy
from .flops import transform_flops_per_sample
from .metrics import psnr

__all__ = ["default_codecs", "evaluate_codec", "load_rate_distortion", "rate_distortion", "save_rate_distortion"]

#: Per-point values :func:`rate_distortion` collects into lists, in order (CompressAI's "results").
RESULT_KEYS = (
    "psnr", "ssim", "mse", "bpp", "bits_per_sample", "bits_per_code", "reduction", "encoding_time",
    "decoding_time", "encode_throughput", "decode_throughput", "encode_flops_per_sample",
    "fixed_length_bits_per_sample", "compression_ratio", "compress_time", "decompress_time", "n_exact",
)  # fmt: skip
#: Bits per sample of the uncompressed signals compression ratios are quoted against.
RAW_BITS = {"image": 8, "audio": 16}
#: Largest error, as a share of the data range, of a sample that counts as reconstructed exactly: ~16 float32 steps
#: (2**-20), far under one step of 16-bit PCM (2**-16) or of 8-bit pixels. Every value of the sample must be within
#: it: a mean over a clip would let a few samples one PCM step off pass.
EXACT_ERROR = 2.0**-20
#: Samples whose ``transform`` FLOPs are counted (also the warm-up before the timed passes).
FLOP_SAMPLES = 4
#: Largest SSIM window (scikit-image's default 7x7), shrunk for smaller images.
SSIM_WINDOW = 7


class _Reader(BaseEstimator):
    """Throwaway estimator that ``read_signals`` records ``n_features_in_`` on."""


def evaluate_codec(transformer, X, *, X_fit=None, name=None, batch_size=None) -> dict:
    """Rate, distortion and cost of one codec at one operating point.

    The transformer's integer codes are measured: a copy is set to ``quantize=True`` (where the
    transformer has that parameter), encodes ``X`` with ``transform`` and decodes the codes with
    ``inverse_transform``; distortion compares that reconstruction with ``X``.

    Parameters
    ----------
    transformer : transformer
        A signal transformer of this package (``WaLLoCTransformer``, ``ResolutionReducer``,
        ``DCTTransformer``, ``ResidualVQ``, ...): it needs ``fit``, ``transform`` and
        ``inverse_transform``, and after fit ``reduction_``, ``bits_per_code_`` and
        ``modality_``. It is never modified. Transformers without a ``quantize`` parameter are
        evaluated on their own output.
    X : array-like or torch.Tensor
        Signals to encode and score, in any layout the transformer accepts: images
        ``(N, C, H, W)`` / ``(N, H, W)`` or audio ``(N, C, T)`` / ``(N, T)`` (flat rows with the
        transformer's ``input_shape``). Integer samples are read on the package's scales
        (uint8 / 255 pixels, int16 / 32768 PCM, ...), floats as [0, 1] images / [-1, 1] audio.
    X_fit : array-like, default=None
        Training signals: a clone of ``transformer`` (with ``quantize=True``) is fitted on them.
        Without ``X_fit`` a fitted transformer is used as it is, and an unfitted one is fitted
        on ``X`` itself (an in-sample evaluation; no ``NotFittedError`` is raised; the record's
        ``"fitted_on"`` says which happened).
    name : str, default=None
        Label of the record (default: the transformer's class name).
    batch_size : int, default=None
        Overrides the transformer's ``batch_size`` for encoding and decoding (where it has that
        parameter); None keeps it.

    Returns
    -------
    dict
        One flat record of JSON-able values:

        * ``name``, ``modality`` (``"image"`` / ``"audio"``), ``n_samples``, ``fitted_on``
          (``"X_fit"``, ``"X"`` or ``"prefitted"``), ``entropy_coded`` (True when the
          transformer has ``compress`` and the rate is that of its blobs);
        * ``reduction``: input samples per code of the codes ``X`` gave (``reduction_`` at the
          fitted size; another size, in tensor mode, pads by another share); ``bits_per_code``:
          ``bits_per_code_``;
        * ``bits_per_sample``: the rate per input sample (per pixel and channel, or per audio
          sample and channel): ``8 * bytes of the blobs / values`` when entropy coded (every
          blob is checked to decompress to the codes), else ``fixed_length_bits_per_sample``;
        * ``fixed_length_bits_per_sample``: ``bits_per_code_ / reduction``;
        * ``bpp``: bits per pixel, ``bits_per_sample * channels`` (images); None for audio,
          whose rate is ``bits_per_sample``;
        * ``compression_ratio``: 8 (images) or 16 (audio) bits per sample over ``bits_per_sample``;
        * ``compress_time`` / ``decompress_time``: seconds per sample of ``compress`` /
          ``decompress`` (the entropy coder alone, codes to bytes and back); None when not
          entropy coded;
        * ``psnr``: mean over samples of the per-sample PSNR in dB (peak-to-peak range 1 for
          images in [0, 1], 2 for audio in [-1, 1]), over the samples not reconstructed exactly
          (every value to float32's resolution, :data:`EXACT_ERROR`; a silent clip or a blank
          image often is: its PSNR is infinite), ``inf`` only if all are; ``n_exact``: how many
          were, with a warning that counts them; ``mse``: mean squared error on that scale, over
          all samples;
        * ``ssim``: mean per-sample SSIM (``skimage.metrics.structural_similarity``, 7x7 uniform
          window, shrunk to the image for smaller ones, channels by ``channel_axis``, same data
          range); None for audio, NaN for images smaller than 3x3;
        * ``encoding_time`` / ``decoding_time``: wall-clock seconds per sample of ``transform``
          / ``inverse_transform`` over all of ``X`` (``time.perf_counter``, after a warm-up
          call on a few samples); ``encode_throughput`` / ``decode_throughput``: samples per
          second;
        * ``encode_flops_per_sample``: FLOPs of ``transform`` per sample on the first few
          samples (:func:`~walloc_features.evaluation.transform_flops_per_sample`: torch-counted,
          plus the transformer's analytic count of work torch cannot see).

    Raises
    ------
    TypeError
        If ``transformer`` lacks ``fit`` / ``transform`` / ``inverse_transform``, or its fit
        leaves no ``reduction_`` / ``bits_per_code_`` / ``modality_``.
    ValueError
        If ``X`` (or ``X_fit``) is empty or not signals, or if ``X_fit`` and ``X`` differ in
        modality or channels.

    Examples
    --------
    >>> from walloc_features import ResolutionReducer
    >>> from walloc_features.datasets import load_mnist
    >>> from walloc_features.evaluation.rate_distortion import evaluate_codec
    >>> X, _ = load_mnist()
    >>> point = evaluate_codec(ResolutionReducer(reduction=4), X[:100], X_fit=X[100:300])
    >>> point["reduction"], point["bits_per_sample"], point["bpp"], point["entropy_coded"]
    (4.0, 2.0, 2.0, False)
    >>> bool(15 < point["psnr"] < 40), bool(0.5 < point["ssim"] < 1)
    (True, True)
    >>> from walloc_features import WaLLoCTransformer
    >>> coded = evaluate_codec(WaLLoCTransformer(reduction=4), X[:100], X_fit=X[100:1100])
    >>> coded["entropy_coded"], bool(coded["bits_per_sample"] < coded["fixed_length_bits_per_sample"])
    (True, True)
    """
    _check_transformer(transformer)
    X = _as_array(X, "X")
    if batch_size is not None and (not isinstance(batch_size, Integral) or isinstance(batch_size, bool)
                                   or batch_size < 1):  # fmt: skip
        raise ValueError(f"batch_size must be a positive integer or None, got {batch_size!r}")
    params = transformer.get_params(deep=False) if hasattr(transformer, "get_params") else {}
    overrides = {"quantize": True} if "quantize" in params else {}
    if batch_size is not None and "batch_size" in params:
        overrides["batch_size"] = int(batch_size)

    signals, layout = _read(X, params, "X")
    if X_fit is not None:
        X_fit = _as_array(X_fit, "X_fit")
        fit_layout = _read(X_fit, params, "X_fit")[1]
        if (fit_layout.modality, fit_layout.channels) != (layout.modality, layout.channels):
            raise ValueError(
                f"X_fit is {_describe(fit_layout)} but X is {_describe(layout)}: a codec is evaluated "
                "on the kind of signals it was fitted on"
            )
        codec, fitted_on = clone(transformer).set_params(**overrides).fit(X_fit), "X_fit"
    elif not _is_fitted(transformer):
        codec, fitted_on = clone(transformer).set_params(**overrides).fit(X), "X"
    else:
        codec, fitted_on = copy.deepcopy(transformer), "prefitted"
        if overrides:
            codec.set_params(**overrides)
    for attribute in ("reduction_", "bits_per_code_", "modality_"):
        if not hasattr(codec, attribute):
            raise TypeError(
                f"{type(transformer).__name__} has no {attribute} after fit; evaluate_codec needs the fitted "
                "attributes reduction_, bits_per_code_ and modality_ of this package's transformers"
            )
    modality = codec.modality_
    if layout.modality != modality:
        raise ValueError(f"X is {_describe(layout)}, but {type(transformer).__name__} was fitted on {modality}")

    n = len(signals)
    flops = transform_flops_per_sample(codec, X[:FLOP_SAMPLES])  # also warms the encoder up
    start = time.perf_counter()
    Z = codec.transform(X)
    encode_seconds = time.perf_counter() - start
    decode_kwargs = {"output_size": layout.spatial} if _accepts(codec.inverse_transform, "output_size") else {}
    codec.inverse_transform(Z[:FLOP_SAMPLES], **decode_kwargs)  # decoder warm-up
    start = time.perf_counter()
    reconstruction = codec.inverse_transform(Z, **decode_kwargs)
    decode_seconds = time.perf_counter() - start

    reference = signals.astype(np.float64) * input_scale(signals.dtype)
    reconstruction = np.asarray(to_numpy(reconstruction), dtype=np.float64)
    if reconstruction.size != reference.size or len(reconstruction) != n:
        raise ValueError(
            f"{type(transformer).__name__}.inverse_transform returned shape {reconstruction.shape}, which does not "
            f"match X's {n} samples of shape {layout.sample_shape}"
        )
    reconstruction = reconstruction.reshape(reference.shape)
    axes = tuple(range(1, reference.ndim))
    data_range = DATA_RANGE[modality]
    per_sample = np.atleast_1d(psnr(reference, reconstruction, data_range, axis=axes))
    # Exact to float32's resolution: a float32 reconstruction of float64 references (uint8 / 255) is never exact to
    # the last bit; one such sample (~150 dB), or an infinite one, would dominate the mean
    error = reference - reconstruction  # (one pass over the samples for the exactness test and the MSE)
    exact = np.abs(error).max(axis=axes) <= EXACT_ERROR * data_range
    if exact.any():
        rest = n - int(exact.sum())
        mean = f"averages the other {rest}" if rest else "is infinite too"
        warn(
            f"{type(transformer).__name__ if name is None else name}: {int(exact.sum())} of {n} sample(s) were "
            "reconstructed exactly, to float32's resolution (silent clips, flat images, lossless codes); their PSNR "
            f"is infinite, so 'psnr' {mean} (n_exact counts them)",
            UserWarning,
        )  # fmt: skip
    mse = float(np.mean(np.square(error)))
    # the codes X itself gave: in tensor mode X may have another size than the fit, and padding another share
    codes = math.prod(np.shape(Z))  # (shape, not size: a sparse matrix's size counts its non-zeros)
    bits_per_code, reduction = int(codec.bits_per_code_), n * math.prod(layout.sample_shape) / codes
    fixed_length = bits_per_code / reduction
    coded = _entropy_coded(codec, Z, n * int(np.prod(layout.sample_shape)))
    bits_per_sample = coded["bits_per_sample"] if coded else fixed_length
    is_image = modality == "image"
    return {
        "name": type(transformer).__name__ if name is None else str(name),
        "modality": modality,
        "n_samples": int(n),
        "fitted_on": fitted_on,
        "entropy_coded": bool(coded),
        "reduction": reduction,
        "bits_per_code": bits_per_code,
        "bits_per_sample": bits_per_sample,
        "fixed_length_bits_per_sample": fixed_length,
        "compression_ratio": RAW_BITS[modality] / bits_per_sample,
        "compress_time": coded["compress_time"] if coded else None,
        "decompress_time": coded["decompress_time"] if coded else None,
        "bpp": bits_per_sample * layout.channels if is_image else None,
        "psnr": float(np.mean(per_sample[~exact])) if not exact.all() else math.inf,
        "n_exact": int(exact.sum()),
        "ssim": _mean_ssim(reference, reconstruction, data_range) if is_image else None,
        "mse": mse,
        "encoding_time": encode_seconds / n,
        "decoding_time": decode_seconds / n,
        "encode_throughput": _per_second(n, encode_seconds),
        "decode_throughput": _per_second(n, decode_seconds),
        "encode_flops_per_sample": float(flops),
    }


def rate_distortion(codecs, X, *, X_fit=None) -> list[dict]:
    """Rate-distortion curves: every codec at each of its operating points, CompressAI-style.

    Parameters
    ----------
    codecs : dict of str -> transformer or list of transformers
        Codec name -> its operating points, e.g. ``{"WaLLoC": [WaLLoCTransformer(4),
        WaLLoCTransformer(16)]}`` (see :func:`default_codecs`). Each transformer is evaluated
        by :func:`evaluate_codec`.
    X : array-like or torch.Tensor
        Signals to score.
    X_fit : array-like, default=None
        Training signals for every transformer; see :func:`evaluate_codec` for the rules
        without it.

    Returns
    -------
    list of dict
        One record per codec, in the order of ``codecs``::

            {"name": name, "description": str, "modality": "image" | "audio",
             "n_samples": int, "entropy_coded": bool,
             "results": {"psnr": [...], "ssim": [...], "mse": [...], "bpp": [...],
                         "bits_per_sample": [...], "bits_per_code": [...],
                         "reduction": [...], "encoding_time": [...], "decoding_time": [...],
                         "encode_throughput": [...], "decode_throughput": [...],
                         "encode_flops_per_sample": [...], "fixed_length_bits_per_sample": [...],
                         "compression_ratio": [...], "compress_time": [...], "decompress_time": [...],
                         "n_exact": [...]}}

        Each list has one entry per transformer, all sorted by ``bits_per_sample`` ascending
        (the x axis of a rate-distortion plot); the values are those of :func:`evaluate_codec`
        (``bpp`` and ``ssim`` are None for audio; times in seconds per sample). RGB image
        curves also carry ``"psnr-rgb"`` (the same values), CompressAI's key. ``entropy_coded``
        is True when every point's rate is that of real blobs.

    Examples
    --------
    >>> import numpy as np
    >>> from walloc_features import DCTTransformer, WaLLoCTransformer
    >>> from walloc_features.evaluation.rate_distortion import rate_distortion
    >>> X = np.random.default_rng(0).random((8, 1, 32, 32))
    >>> curves = rate_distortion({"WaLLoC": [WaLLoCTransformer(16), WaLLoCTransformer(4)],
    ...                           "DCT": DCTTransformer(8)}, X)
    >>> [curve["name"] for curve in curves], curves[0]["results"]["reduction"]
    (['WaLLoC', 'DCT'], [16.0, 4.0])
    >>> psnr = curves[0]["results"]["psnr"]
    >>> bool(psnr[1] > psnr[0])  # more bits, less distortion
    True
    """
    if not isinstance(codecs, Mapping) or not codecs:
        raise TypeError(f"codecs must be a non-empty dict of name -> transformer(s), got {type(codecs).__name__}")
    X = _as_array(X, "X")
    if X_fit is not None:
        X_fit = _as_array(X_fit, "X_fit")
    curves = []
    for name, points in codecs.items():
        points = list(points) if isinstance(points, (list, tuple)) else [points]
        if not points:
            raise ValueError(f"codec {name!r} has no transformers")
        records = [evaluate_codec(t, X, X_fit=X_fit, name=str(name)) for t in points]
        records.sort(key=lambda r: (r["bits_per_sample"], -r["reduction"]))
        first = records[0]
        classes = ", ".join(dict.fromkeys(type(t).__name__ for t in points))
        curves.append({
            "name": str(name),
            "description": (
                f"{classes} on {first['n_samples']} {first['modality']} sample(s), fitted on "
                f"{'X_fit' if X_fit is not None else 'X unless prefitted'}; rate: "
                + ("bits of the entropy-coded blobs (compress) per input sample"
                   if all(r["entropy_coded"] for r in records) else
                   "bits per input sample of fixed-length codes, bits_per_code_ / reduction (input samples per "
                   "code X gave), without entropy coding")
                + "; distortion: mean per-sample PSNR (dB) / SSIM of the decoded codes; "
                "times: seconds per sample"
            ),
            "modality": first["modality"],
            "n_samples": first["n_samples"],
            "entropy_coded": all(r["entropy_coded"] for r in records),
            "results": {key: [r[key] for r in records] for key in RESULT_KEYS},
        })  # fmt: skip
        if first["bpp"] is not None and first["bpp"] == first["bits_per_sample"] * 3:  # RGB images
            curves[-1]["results"]["psnr-rgb"] = curves[-1]["results"]["psnr"]  # CompressAI's key for RGB PSNR
    return curves


#: Marks the files save_rate_distortion writes: ``replace=True`` removes no other.
_WRITER = "walloc-features"


def save_rate_distortion(results, directory, *, replace: bool = False) -> list[Path]:
    """Write each codec's record to ``<directory>/<slug of its name>.json``.

    Parameters
    ----------
    results : list of dict or dict
        Records of :func:`rate_distortion` (any dicts with a ``"name"``).
    directory : str or path
        Created if missing; files of the same name are overwritten.
    replace : bool, default=False
        Also remove the records an earlier ``save_rate_distortion`` left in the directory (of codecs
        not in ``results``), so that ``load_rate_distortion(directory)`` reads these alone. Only files
        this function wrote (marked ``"writer": "walloc-features"``) are removed: CompressAI's results
        files and any other file are left.

    Returns
    -------
    list of Path
        The files written, in the order of ``results``. Names are the lower-cased name with runs
        of other characters than letters, digits, ``.``, ``_`` and ``-`` replaced by ``-``
        (``"WaLLoC (conv)"`` -> ``walloc-conv.json``); clashing slugs get ``-2``, ``-3``, ...

    Notes
    -----
    The JSON is strict (indent 2): numpy scalars become numbers, and non-finite floats (a PSNR
    of ``inf`` for an exact reconstruction, NaN) are written as ``null``, so
    :func:`load_rate_distortion` reads them back as None.

    Examples
    --------
    >>> import tempfile
    >>> from walloc_features.evaluation.rate_distortion import load_rate_distortion, save_rate_distortion
    >>> curves = [{"name": "WaLLoC (linear)", "description": "",
    ...            "results": {"psnr": [30.5, float("inf")], "bpp": [0.5, 2.0]}}]
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     paths = save_rate_distortion(curves, tmp)
    ...     loaded = load_rate_distortion(tmp)
    >>> [p.name for p in paths], loaded[0]["results"]["psnr"]
    (['walloc-linear.json'], [30.5, None])
    """
    if isinstance(results, Mapping):
        results = [results]
    if not isinstance(results, (list, tuple)):
        raise TypeError(f"results must be a list of dicts (rate_distortion's output), got {type(results).__name__}")
    for record in results:
        if not isinstance(record, Mapping) or "name" not in record:
            raise ValueError("every record needs a 'name' (the output of rate_distortion)")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    paths, used = [], set()
    for record in results:
        slug = _slug(str(record["name"]))
        candidate, k = slug, 1
        while candidate in used:
            k += 1
            candidate = f"{slug}-{k}"
        used.add(candidate)
        path = directory / f"{candidate}.json"
        marked = {**record, "writer": _WRITER}  # what replace may remove later; load_rate_distortion drops it
        write_atomic({path: (json.dumps(_jsonable(marked), indent=2, allow_nan=False) + "\n").encode()})
        paths.append(path)
    for stale in sorted(set(directory.glob("*.json")) - set(paths)) if replace else ():
        try:
            ours = json.loads(stale.read_text()).get("writer") == _WRITER
        except (ValueError, OSError, AttributeError):  # unreadable, not JSON, not an object: not ours
            ours = False
        if ours:
            stale.unlink()
    return paths


def load_rate_distortion(directory_or_files) -> list[dict]:
    """Read records written by :func:`save_rate_distortion` (or CompressAI's results files).

    Parameters
    ----------
    directory_or_files : str, path or list of them
        A directory (its ``*.json`` files, by name), one file, or a list of files.

    Returns
    -------
    list of dict
        One record per file, each with at least ``"name"`` and ``"results"``.

    Examples
    --------
    See :func:`save_rate_distortion`.
    """
    if isinstance(directory_or_files, (str, Path)):
        source = Path(directory_or_files)
        if source.is_dir():
            files = sorted(source.glob("*.json"))
        elif source.is_file():
            files = [source]
        else:
            raise FileNotFoundError(f"{source} is neither a directory nor a file")
    else:
        files = [Path(f) for f in directory_or_files]
    records = []
    for path in files:
        try:
            record = json.loads(Path(path).read_text())
        except (UnicodeDecodeError, json.JSONDecodeError) as error:  # a cut-short or foreign file: say which
            raise ValueError(f"{path} is not a rate-distortion record: {error}") from None
        if not isinstance(record, dict) or "name" not in record or not isinstance(record.get("results"), dict):
            raise ValueError(f"{path} is not a rate-distortion record (needs 'name' and a 'results' dict)")
        if record.get("writer") == _WRITER:
            del record["writer"]  # save_rate_distortion's mark, not part of the record it was given
        records.append(record)
    return records


def default_codecs(modality: str = "image", reductions=(4, 16), *, include_rvq: bool = False, random_state=0,
                   output: str = "flat") -> dict:  # fmt: skip
    """The standard sweep: WaLLoC and the baselines, each at every reduction in ``reductions``.

    Built with :func:`~walloc_features.features.matched_baselines`, so each transformer is
    configured as there (default parameters at the requested reduction).

    Parameters
    ----------
    modality : {"image", "audio"}, default="image"
    reductions : sequence of float, default=(4, 16)
        Target reductions (input samples per code); the achieved ones are the records'
        ``reduction``.
    include_rvq : bool, default=False
        Add ``"ResidualVQ"`` (raw-patch residual k-means; slower to fit).
    random_state : int, default=0
        Seeds ResidualVQ's k-means.
    output : {"flat", "tensor"}, default="flat"

    Returns
    -------
    dict of str -> list of transformers
        Unfitted transformers under ``"WaLLoC"``, ``"resolution"``, ``"DCT"`` and, with
        ``include_rvq``, ``"ResidualVQ"``; one per reduction, for :func:`rate_distortion`.

    Examples
    --------
    >>> from walloc_features.evaluation.rate_distortion import default_codecs
    >>> codecs = default_codecs("image", (4, 16))
    >>> {name: [t.reduction for t in ts] for name, ts in codecs.items()}
    {'WaLLoC': [4, 16], 'resolution': [4, 16], 'DCT': [4, 16]}
    """
    from ..features.matched import matched_baselines

    if modality not in ("image", "audio"):
        raise ValueError(f"modality must be 'image' or 'audio', got {modality!r}")
    reductions = [reductions] if isinstance(reductions, Real) else list(reductions)
    if not reductions or any(not isinstance(r, Real) or r < 1 for r in reductions):
        raise ValueError(f"reductions must be numbers >= 1, got {reductions!r}")
    names = {"walloc": "WaLLoC", "resolution": "resolution", "dct": "DCT"}
    if include_rvq:
        names["rvq"] = "ResidualVQ"
    codecs = {name: [] for name in names.values()}
    for reduction in reductions:
        matched = matched_baselines(reduction, modality, output=output, random_state=random_state)
        for key, name in names.items():
            codecs[name].append(matched[key])
    return codecs


# ----------------------------------------------------------------------------- helpers --
def _entropy_coded(codec, Z, n_values: int) -> dict | None:
    """Rate and coder times of ``codec.compress`` on ``X`` (None without one); checks the round trip."""
    if not hasattr(codec, "compress") or getattr(codec, "entropy_model_", None) is None:
        return None
    codes = np.asarray(Z).reshape(len(Z), *codec.latent_shape_) if np.ndim(Z) == 2 else np.asarray(Z)
    start = time.perf_counter()
    blobs = codec._compress_codes(codes)  # the coder alone: the encoder's codes are Z already
    compress_seconds = time.perf_counter() - start
    start = time.perf_counter()
    decoded = codec.decompress(blobs)
    decompress_seconds = time.perf_counter() - start
    if not np.array_equal(decoded, Z):
        raise RuntimeError(f"{type(codec).__name__}.decompress(compress(X)) differs from transform(X): a coder bug")
    return {
        "bits_per_sample": 8 * sum(len(b) for b in blobs) / n_values,
        "compress_time": compress_seconds / len(blobs),
        "decompress_time": decompress_seconds / len(blobs),
    }


def _check_transformer(transformer) -> None:
    if isinstance(transformer, type):
        raise TypeError(f"pass a transformer instance, got the class {transformer.__name__}")
    missing = [m for m in ("fit", "transform", "inverse_transform") if not callable(getattr(transformer, m, None))]
    if missing:
        raise TypeError(
            f"{type(transformer).__name__} has no {' / '.join(missing)}: evaluate_codec decodes the codes to "
            "measure distortion, so it needs a transformer with fit, transform and inverse_transform"
        )


def _as_array(X, what: str):
    """Numpy view of X (torch tensors and lists converted), refusing empty or sample-less input."""
    if X is None:
        raise ValueError(f"{what} is None; pass signals")
    X = to_numpy(X)
    if not hasattr(X, "ndim") or not hasattr(X, "__getitem__"):
        X = np.asarray(X)
    if X.ndim < 2:
        raise ValueError(f"{what} must hold samples along its first axis (2-D to 4-D), got shape {X.shape}")
    if len(X) == 0 or X.size == 0:
        raise ValueError(f"{what} is empty (shape {X.shape}): rate-distortion needs at least one sample")
    return X


def _read(X, params: dict, what: str):
    """``(N, C, *spatial)`` samples and layout of X as the transformer reads them."""
    modality = params.get("modality", "auto")
    try:
        return read_signals(_Reader(), X, modality=modality, input_shape=params.get("input_shape"), reset=True)
    except ValueError as error:
        raise ValueError(f"{what}: {error}") from error


def _describe(layout) -> str:
    return f"{layout.modality} with {layout.channels} channel(s)"


def _is_fitted(transformer) -> bool:
    try:
        check_is_fitted(transformer)
    except NotFittedError:
        return False
    except TypeError:  # not an estimator by scikit-learn's rules: trust its fitted attributes
        return hasattr(transformer, "reduction_")
    return True


def _accepts(method, parameter: str) -> bool:
    try:
        return parameter in inspect.signature(method).parameters
    except (TypeError, ValueError):
        return False


def _mean_ssim(reference: np.ndarray, reconstruction: np.ndarray, data_range: float) -> float:
    """Mean per-sample SSIM of ``(N, C, H, W)`` images; NaN when smaller than 3x3."""
    from skimage.metrics import structural_similarity

    window = min(SSIM_WINDOW, *reference.shape[2:])
    window -= 1 - window % 2  # odd
    if window < 3:
        return float("nan")
    if reference.shape[1] == 1:
        pairs, kwargs = zip(reference[:, 0], reconstruction[:, 0], strict=True), {}
    else:
        pairs, kwargs = zip(reference, reconstruction, strict=True), {"channel_axis": 0}
    scores = [structural_similarity(r, x, data_range=data_range, win_size=window, **kwargs) for r, x in pairs]
    return float(np.mean(scores))


def _per_second(n: int, seconds: float) -> float:
    return n / seconds if seconds > 0 else float("inf")


def _slug(name: str) -> str:
    slug = re.sub(r"[^a-z0-9._-]+", "-", name.lower()).strip("-.")
    return slug or "codec"


def _jsonable(value):
    """Plain JSON types: numpy scalars/arrays unwrapped, non-finite floats -> None."""
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [_jsonable(v) for v in (value.tolist() if isinstance(value, np.ndarray) else value)]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise TypeError(f"cannot write {type(value).__name__} to JSON: {value!r}")
