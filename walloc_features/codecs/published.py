"""The published WaLLoC checkpoints: load them into :class:`WaLLoCCodec`, export codecs back.

The authors publish each codec as a ``.pth`` state dict plus a ``.json`` config (Hugging Face
``danjacobellis/walloc``: ``RGB_16x``, ``RGB_4x``, ``stereo_5x``, ``stereo_20x``), for the modules
of the ``walloc`` package (version 1.2.1):

* ``Codec2D`` (config ``channels, J, Ne, Nd, latent_dim, latent_bits, lightweight_encode``): state
  keys ``encoder.0.*`` (the 1x1 projection), ``decoder.1.*`` (an AutoencoderKL-style decoder, here
  :class:`~walloc_features.codecs.kl_decoder.KLDecoder`);
* ``Codec1D`` (the same plus ``post_filter``): ``encoder.0.*`` (a ``Conv1d`` with ``padding=1``, which
  adds two bias-only latent frames), ``decoder.1.*`` (an Oobleck decoder,
  :class:`~walloc_features.codecs.oobleck.OobleckDecoder`) and ``post.*`` (a 129-tap filter);
* ``LinearCodec2D`` (``channels, J, latent_dim, latent_bits``): ``decoder.1.*`` is a 1x1 convolution.

All carry the wavelet filters as buffers ``wt.*`` / ``iwt.*`` (pytorch_wavelets' layout: analysis
filters reversed, synthesis filters as they are); they are checked against PyWavelets' ``bior4.4``
and not used. Configs may hold other (training) keys, which are ignored. Images enter the published
codecs as ``x - 0.5`` (``x`` in [0, 1]), audio as ``0.5 x`` (``x`` in [-1, 1]; the codecs were
trained on clips peak-normalised to 0.5).

Checkpoints are read with ``torch.load(weights_only=True)`` (or safetensors): a file that needs
arbitrary unpickling is refused, never executed.
"""

from __future__ import annotations

import argparse
import json
import pickle
import shlex
import types
from pathlib import Path

import numpy as np
import pywt
import torch

from .._files import check_torch_file, write_atomic
from .walloc import WaLLoCCodec, _check_weight_values, codec_from_state

# The user-facing API; the readers and converters below are its steps, importable but not promised.
__all__ = ["load_published_codec", "save_published", "CheckpointError"]

WAVELET = "bior4.4"
#: Published input scale: (input_shift, input_gain) by signal dimension.
INPUT_MAP = {2: (-0.5, 1.0), 1: (0.0, 0.5)}
POST_FILTER_TAPS = 129
_STATE_SUFFIXES = (".pth", ".pt", ".bin", ".safetensors")
#: Plain attribute holders training checkpoints keep their hyper-parameters in; unpickling them
#: only sets attributes, so weights_only loading may accept them (the weights are all we read).
_SAFE_CONFIG_TYPES = [types.SimpleNamespace, argparse.Namespace]
#: Minimum signal size, in units of 2**(J - 1) samples, at which pytorch_wavelets' periodization
#: (one wrap-around per level) equals true periodization: every level's input spans the 10 taps.
MIN_LEVEL_INPUT = 10


class CheckpointError(ValueError):
    """A checkpoint or config that does not describe a published WaLLoC codec (says why)."""


def reference_min_size(levels: int) -> int:
    """Smallest (padded) signal side on which the authors' code computes the true periodized WPT.

    pytorch_wavelets wraps a level's input around once; when that input is shorter than the
    10-tap filters (sides under ``2**(J-1) * 10``: 40 pixels at J=3, 1280 samples at J=8), its
    packets, and so the published codecs' latents, differ from the true periodization computed here.
    """
    return 2 ** (levels - 1) * MIN_LEVEL_INPUT


# ------------------------------------------------------------------------------------ files --
def resolve_checkpoint(checkpoint, config=None) -> tuple[Path, Path]:
    """``(state file, config file)`` from a state file (the config beside it, same stem) or a folder.

    A folder must hold one state file (``.pth``, ``.pt``, ``.bin`` or ``.safetensors``); its config
    is the ``.json`` of the same stem (or the folder's only ``.json``).
    """
    path = Path(checkpoint)
    if path.is_dir():
        states = sorted(p for p in path.iterdir() if p.suffix in _STATE_SUFFIXES)
        if len(states) != 1:
            found = ", ".join(p.name for p in states) or "none"
            raise FileNotFoundError(
                f"{path} must hold exactly one checkpoint ({'/'.join(_STATE_SUFFIXES)}), found {found}; pass the file"
            )
        path = states[0]
        if config is None and not path.with_suffix(".json").is_file():
            configs = sorted(path.parent.glob("*.json"))
            config = configs[0] if len(configs) == 1 else None
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} not found")
    config = path.with_suffix(".json") if config is None else Path(config)
    if not config.is_file():
        raise FileNotFoundError(f"config {config} not found: pass it as config= (the .json published with {path.name})")
    return path, config


def read_published_config(path) -> dict:
    """The architecture keys of a published ``.json`` config, validated (other keys are dropped)."""
    path = Path(path)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{path} is not valid JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise CheckpointError(f"{path} must hold a JSON object, got {type(raw).__name__}")
    missing = [k for k in ("channels", "J", "latent_dim", "latent_bits") if k not in raw]
    if missing:
        raise CheckpointError(f"{path} lacks the WaLLoC config key(s) {missing}")
    config = {k: raw[k] for k in ("channels", "J", "latent_dim", "latent_bits")}
    for key, value in config.items():
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise CheckpointError(f"{path}: {key} must be a positive integer, got {value!r}")
    if "Nd" in raw:  # Codec2D / Codec1D
        if raw.get("lightweight_encode") is not True:
            raise CheckpointError(
                f"{path} describes a codec with a nonlinear encoder (lightweight_encode="
                f"{raw.get('lightweight_encode')!r}); only WaLLoC's linear encoder (lightweight_encode=true) "
                "is supported"
            )
        if not isinstance(raw["Nd"], int) or raw["Nd"] < 1:
            raise CheckpointError(f"{path}: Nd must be a positive integer, got {raw['Nd']!r}")
        config.update(Ne=raw.get("Ne"), Nd=raw["Nd"], lightweight_encode=True)
        if "post_filter" in raw:
            if not isinstance(raw["post_filter"], bool):
                raise CheckpointError(f"{path}: post_filter must be true or false, got {raw['post_filter']!r}")
            config["post_filter"] = raw["post_filter"]
    return config


def read_state_dict(path) -> dict[str, torch.Tensor]:
    """Tensors of a ``.pth`` (``weights_only`` unpickling) or ``.safetensors`` file, on the CPU."""
    path = Path(path)
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            return load_file(path)
        except Exception as exc:  # safetensors raises its own SafetensorError
            raise CheckpointError(f"{path} is not a readable safetensors file: {exc}") from None
    check_torch_file(path, CheckpointError)
    try:
        with torch.serialization.safe_globals(_SAFE_CONFIG_TYPES):
            state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        reason = str(exc).split("WeightsUnpickler error:")[-1].strip().split(". ")[0].splitlines()[0]
        script = (
            f"import torch; c = torch.load({str(path)!r}, weights_only=False); "
            "torch.save(c.get('model_state_dict', c), 'converted.pth')"
        )
        raise CheckpointError(
            f"{path} cannot be read safely: torch.load(weights_only=True) refuses it ({reason}). It holds "
            "pickled Python objects beyond tensors (or is damaged); unpickling those could run arbitrary code, "
            "so it is not attempted. If you trust its source, convert it once to a plain state dict: "
            f"python -c {shlex.quote(script)}"
        ) from None
    except (RuntimeError, EOFError, OSError) as exc:
        reason, size = str(exc) or type(exc).__name__, path.stat().st_size
        raise CheckpointError(f"{path} ({size} bytes) is not a readable torch checkpoint: {reason}") from None
    for key in ("model_state_dict", "state_dict"):  # training checkpoints nest the weights
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{path} does not hold a state dict (a mapping of names to tensors)")
    names = [key for key in state if not isinstance(key, str)]
    if names:
        raise CheckpointError(f"{path} does not hold a state dict: its keys include {names[0]!r}, not a name")
    return state


# ---------------------------------------------------------------------------- conversions --
def _kind(config: dict) -> str:
    if "post_filter" in config:
        return "Codec1D"
    return "Codec2D" if "Nd" in config else "LinearCodec2D"


def _wavelet_buffers(ndim: int) -> dict[str, torch.Tensor]:
    """The ``wt.*`` / ``iwt.*`` buffers pytorch_wavelets stores for bior4.4, in float32."""
    w = pywt.Wavelet(WAVELET)
    filters = {"h0": w.dec_lo[::-1], "h1": w.dec_hi[::-1], "g0": w.rec_lo, "g1": w.rec_hi}
    out = {}
    for name, taps in filters.items():
        t = torch.tensor(np.array(taps), dtype=torch.float32)
        prefix = "wt." if name[0] == "h" else "iwt."
        if ndim == 1:
            out[prefix + name] = t.reshape(1, 1, -1)
        else:
            out[f"{prefix}{name}_col"] = t.reshape(1, 1, -1, 1)
            out[f"{prefix}{name}_row"] = t.reshape(1, 1, 1, -1)
    return out


def _check_wavelet_buffers(state: dict, ndim: int) -> None:
    """Refuse checkpoints whose filter buffers are not bior4.4 (we run our own transform)."""
    for key, expected in _wavelet_buffers(ndim).items():
        if key not in state:
            raise CheckpointError(f"checkpoint lacks the wavelet filter buffer {key!r}")
        stored = state[key].detach()
        # the filters as the checkpoint's dtype holds them: a half-precision save rounds them by ~1e-3
        precision = 4 * torch.finfo(stored.dtype).eps if stored.is_floating_point() else 1e-6
        found = stored.to(torch.float64).flatten()
        if found.shape != expected.flatten().shape or not torch.allclose(
            found, expected.to(torch.float64).flatten(), atol=max(precision, 1e-6)
        ):
            raise CheckpointError(
                f"checkpoint's wavelet filter {key!r} is not {WAVELET}'s ({found.tolist()}); "
                f"only {WAVELET} codecs can be loaded"
            )


def codec_from_published(config: dict, state: dict) -> WaLLoCCodec:
    """A :class:`WaLLoCCodec` with a published config (see :func:`read_published_config`) and state dict."""
    kind = _kind(config)
    ndim = 1 if kind == "Codec1D" else 2
    weight = state.get("encoder.0.weight")
    if weight is None:
        raise CheckpointError("checkpoint lacks 'encoder.0.weight': not a WaLLoC state dict with a linear encoder")
    if weight.ndim != ndim + 2:
        raise CheckpointError(
            f"the config describes a {ndim}-D {kind}, but encoder.0.weight has shape {tuple(weight.shape)}"
        )
    packets = config["channels"] * (2**ndim) ** config["J"]
    expected = (config["latent_dim"], packets) + (1,) * ndim
    if tuple(weight.shape) != expected:  # checked before building anything of the config's size
        raise CheckpointError(
            f"checkpoint does not fit the {kind} its config describes: encoder.0.weight has shape "
            f"{tuple(weight.shape)}, the config (channels={config['channels']}, J={config['J']}, "
            f"latent_dim={config['latent_dim']}) needs {expected}"
        )
    _check_wavelet_buffers(state, ndim)
    weights = {key: value for key, value in state.items() if not key.startswith(("wt.", "iwt."))}
    _check_weight_values(weights, CheckpointError, "the checkpoint")  # by the file's names, before renaming
    shift, gain = INPUT_MAP[ndim]
    options = dict(
        in_channels=config["channels"], latent_dim=config["latent_dim"], levels=config["J"], ndim=ndim,
        wavelet=WAVELET, latent_bits=config["latent_bits"], input_shift=shift, input_gain=gain,
    )  # fmt: skip
    if kind == "LinearCodec2D":
        options.update(decoder="linear")
    else:
        options.update(decoder="kl" if ndim == 2 else "oobleck", hidden_channels=config["Nd"], n_blocks=2)
    if kind == "Codec1D":
        options.update(encoder_padding=1, post_filter=POST_FILTER_TAPS if config["post_filter"] else 0)
    renamed, unexpected = {}, []
    for key, value in state.items():
        if key.startswith(("wt.", "iwt.")):
            continue
        head, _, rest = key.partition(".")
        if head == "encoder" and rest.startswith("0."):
            renamed["encoder." + rest[2:]] = value
        elif head == "decoder" and rest.startswith("1."):
            renamed[("decoder.linear." if kind == "LinearCodec2D" else "decoder.") + rest[2:]] = value
        elif head == "post":
            renamed["post_filter." + rest] = value
        else:
            unexpected.append(key)
    if unexpected:
        raise CheckpointError(f"checkpoint holds keys no {kind} has: {unexpected[:5]}")
    # a config far larger than its weights (Nd=7680 for 768) is refused before gigabytes are allocated
    return codec_from_state(options, renamed, error=CheckpointError, what=f"the {kind}").eval()


def load_published_codec(checkpoint, config=None) -> WaLLoCCodec:
    """Load a published checkpoint (state file or folder, see :func:`resolve_checkpoint`).

    Parameters
    ----------
    checkpoint : str or path
        The state file (``.pth``, ``.pt``, ``.bin`` or ``.safetensors``) or a folder holding one.
    config : str or path, default=None
        Its ``.json`` config; None takes the one beside it (same stem), or the folder's only one.

    Returns
    -------
    WaLLoCCodec
        In evaluation mode.

    Raises
    ------
    FileNotFoundError
        The state file or its config is missing, or a folder holds no state file or several.
    CheckpointError
        A ``ValueError``: the files do not describe a published WaLLoC codec (the message says why).

    Examples
    --------
    >>> import tempfile
    >>> from walloc_features.codecs import WaLLoCCodec
    >>> codec = WaLLoCCodec(3, latent_dim=12, levels=3)
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     pth, _ = save_published(codec, folder)
    ...     loaded = load_published_codec(pth)
    >>> loaded.config["decoder"], loaded.config["input_shift"]
    ('linear', -0.5)
    """
    state_file, config_file = resolve_checkpoint(checkpoint, config)
    return codec_from_published(read_published_config(config_file), read_state_dict(state_file))


def published_state_dict(codec: WaLLoCCodec) -> tuple[dict, dict]:
    """``(config, state dict)`` of ``codec`` in the published layout; ValueError when it has none.

    Codecs loaded from published checkpoints map back key for key. This package's 2-D codecs with
    the ``"linear"`` decoder export as ``LinearCodec2D``; their input scale is folded into the
    encoder and decoder biases so the exported codec takes ``x - 0.5`` like the published ones.
    """
    c = codec.config
    ndim, decoder = c["ndim"], c["decoder"]
    if c["wavelet"] != WAVELET:
        raise ValueError(f"only {WAVELET} codecs have a published layout, this one uses {c['wavelet']!r}")
    head = dict(channels=c["in_channels"], J=c["levels"], latent_dim=c["latent_dim"], latent_bits=c["latent_bits"])
    shift, gain = INPUT_MAP[ndim]
    same_map = (c["input_shift"], c["input_gain"]) == (shift, gain)
    if decoder == "kl" and c["n_blocks"] == 2 and c["encoder_padding"] == 0 and same_map:
        config = {**head, "Ne": None, "Nd": c["hidden_channels"], "lightweight_encode": True}
    elif (
        decoder == "oobleck" and c["n_blocks"] == 2 and c["encoder_padding"] == 1 and same_map
        and c["post_filter"] in (0, POST_FILTER_TAPS) and c["hidden_channels"] >= c["latent_dim"]
    ):  # fmt: skip
        config = {**head, "Ne": None, "Nd": c["hidden_channels"], "lightweight_encode": True,
                  "post_filter": bool(c["post_filter"])}  # fmt: skip
    elif decoder == "linear" and ndim == 2 and c["encoder_padding"] == 0 and c["post_filter"] == 0:
        config = head
    else:
        raise ValueError(
            f"this codec ({ndim}-D, decoder={decoder!r}) has no published layout: the published codecs are "
            "Codec2D (decoder 'kl'), Codec1D (decoder 'oobleck') and LinearCodec2D (2-D, decoder 'linear')"
        )
    state = {k: v.detach().cpu().clone() for k, v in codec.state_dict().items()}
    out = dict(_wavelet_buffers(ndim))
    for key, value in state.items():
        if key.startswith("encoder."):
            out["encoder.0." + key[len("encoder.") :]] = value
        elif key.startswith("decoder.linear."):
            out["decoder.1." + key[len("decoder.linear.") :]] = value
        elif key.startswith("decoder."):
            out["decoder.1." + key[len("decoder.") :]] = value
        elif key.startswith("post_filter."):
            out["post." + key[len("post_filter.") :]] = value
    if not same_map:  # linear codec: x_ours = a * x_published + b, folded into the 1x1 maps
        a = c["input_gain"] / gain
        b = (c["input_shift"] - shift) * c["input_gain"]
        w, bias = out["encoder.0.weight"].double(), out["encoder.0.bias"].double()
        flat_w = w.reshape(w.shape[0], w.shape[1])
        out["encoder.0.weight"] = (a * w).float()
        out["encoder.0.bias"] = (bias + flat_w @ codec.constant_packets(b)).float()
        dw, db = out["decoder.1.weight"].double(), out["decoder.1.bias"].double()
        out["decoder.1.weight"] = (dw / a).float()
        out["decoder.1.bias"] = (db / a + codec.constant_packets(-b / a)).float()
    return config, out


def save_published(codec: WaLLoCCodec, path) -> tuple[Path, Path]:
    """Write ``codec`` as a published ``.pth`` + ``.json`` pair; returns their paths.

    ``path`` ending in ``.pth`` or ``.pt`` names the state file (a plain state dict; the config goes
    beside it); otherwise it is a folder that receives ``walloc.pth`` and ``walloc.json``. The pair loads with
    :func:`load_published_codec` and with the ``walloc`` package (``Codec2D(**config)``, then
    ``load_state_dict``). Both files are written to temporaries first and renamed only once both are
    complete (:func:`walloc_features._files.write_atomic`); an existing ``.json`` is deleted before the
    renames, so a save killed between them leaves the config missing (an error when loaded), never new
    weights beside the old config (nothing in the format ties the two).

    Parameters
    ----------
    codec : WaLLoCCodec
    path : str or path
        A ``.pth`` / ``.pt`` state file name, or a folder (made if missing).

    Returns
    -------
    (pathlib.Path, pathlib.Path)
        The state file and the config.

    Raises
    ------
    ValueError
        The codec has no published layout. With the 9/7 wavelet, these export: ``Codec2D`` (decoder ``"kl"``)
        and ``Codec1D`` (``"oobleck"``) with the published input map and block layout, and a 2-D
        ``"linear"`` codec without encoder padding or post filter as ``LinearCodec2D`` (its input map
        folded into the biases).

    Examples
    --------
    >>> import json, tempfile
    >>> from walloc_features.codecs import WaLLoCCodec
    >>> folder = tempfile.mkdtemp()
    >>> pth, config = save_published(WaLLoCCodec(3, latent_dim=12, levels=3), folder)
    >>> pth.name, json.loads(config.read_text())["latent_dim"]
    ('walloc.pth', 12)
    """
    config, state = published_state_dict(codec)
    path = Path(path)
    if path.suffix not in (".pth", ".pt"):
        path.mkdir(parents=True, exist_ok=True)
        path = path / "walloc.pth"
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
    config_path = path.with_suffix(".json")
    write_atomic({path: lambda f: torch.save(state, f), config_path: json.dumps(config, indent=4).encode()},
                 remove_first=[config_path])  # fmt: skip
    return path, config_path
