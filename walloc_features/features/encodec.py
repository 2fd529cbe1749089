"""``EnCodecTransformer``: discrete EnCodec codes through Hugging Face ``transformers``.

The ``encodec`` package is not used: it imports torchaudio, whose wheels do not match current
torch (see DESIGN.md). ``transformers.EncodecModel`` is pure PyTorch. Resampling to the model's
rate uses ``scipy.signal.resample_poly``. Install with ``pip install walloc-features[encodec]``.
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from fractions import Fraction
from numbers import Integral, Real
from pathlib import Path

import numpy as np
import torch
from scipy.signal import resample_poly
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted

from ._base import LayoutFollowsQuantize, SignalTransformer, fill_rows

__all__ = ["EnCodecTransformer", "load_encodec"]

DEFAULT_MODEL = "facebook/encodec_24khz"


def load_encodec(model, *, local_files_only: bool = False, verbose: bool = False):
    """Load an ``EncodecModel`` from a local directory or a hub id, with an actionable error.

    A directory (``config.json`` + ``model.safetensors``, as ``save_pretrained`` writes them) is
    read directly. A hub id is looked up in the Hugging Face cache, and downloaded only when the
    machine is online and ``local_files_only`` is False. ``transformers``' "Loading weights" bar shows only
    with ``verbose`` (and where transformers' progress bars are on).
    """
    try:
        from transformers import EncodecModel
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("EnCodecTransformer needs transformers: pip install 'walloc-features[encodec]'") from exc
    path = Path(str(model)).expanduser()
    if not path.is_dir() and (isinstance(model, Path) or not _could_be_hub_id(str(model))):
        raise FileNotFoundError(f"no EnCodec model directory at {path} (and {str(model)!r} is not a hub id)")
    source = str(path) if path.is_dir() else str(model)
    try:
        with _transformers_bars(verbose):
            return EncodecModel.from_pretrained(source, local_files_only=local_files_only or path.is_dir()).eval()
    except (OSError, ValueError) as exc:
        from huggingface_hub.constants import HF_HUB_CACHE

        raise OSError(
            f"could not load EnCodec weights {model!r}: {exc}\n"
            f"Offline, download the model files (config.json and model.safetensors of {DEFAULT_MODEL}) "
            f"on a connected machine, copy them into a directory and pass model='/path/to/that/directory'; "
            f"or place the hub snapshot in the Hugging Face cache ({HF_HUB_CACHE}) and pass the hub id."
        ) from exc


@contextmanager
def _transformers_bars(verbose: bool):
    """transformers' own progress bars off for a quiet load (its "Loading weights" bar ignores our ``verbose``),
    back as they were after. Its ``disable_progress_bar()`` would also reset huggingface_hub's per-group bar
    settings (and warn under HF_HUB_DISABLE_PROGRESS_BARS=0), so only transformers' flag is flipped; a
    transformers without that flag shows its bar."""
    from transformers.utils import logging

    flip = not verbose and getattr(logging, "_tqdm_active", None) is True
    if flip:
        logging._tqdm_active = False
    try:
        yield
    finally:
        if flip:
            logging._tqdm_active = True


def _could_be_hub_id(name: str) -> bool:
    """Whether ``name`` has a hub id's form ("org/name"): a mistyped local path fails at once instead of
    after the hub client's retries."""
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(name)
    except HFValidationError:
        return False
    return True


class EnCodecTransformer(LayoutFollowsQuantize, SignalTransformer):
    """EnCodec residual-VQ codes (or continuous encoder embeddings) of audio.

    Parameters
    ----------
    model : str or path, default="facebook/encodec_24khz"
        A local directory written by ``EncodecModel.save_pretrained`` (or holding a downloaded
        snapshot), or a hub id (read from the Hugging Face cache; downloaded when online and
        ``local_files_only`` is False).
    bandwidth : float, default=6.0
        Target kbps; sets the codebooks used (24 kHz model: 1.5, 3, 6, 12, 24 -> 2, 4, 8, 16, 32). Read at
        fit: codes keep the fitted bandwidth (``n_codebooks_``) until the next fit.
    sample_rate : int, default=None
        Rate of the input; resampled to the model's rate when it differs. None: the model's rate.
        Read at fit (``sample_rate_``), as ``bandwidth`` is: the codes' frames, and so the flat
        output's width, follow it.
    quantize : bool, default=True
        True: integer codes ``(N, n_codebooks, frames)``; False: the continuous encoder output
        ``(N, hidden_size, frames)`` (EnCodec's embeddings before quantization) over the whole clip:
        for chunked models (the 48 kHz one) neither cut into chunks nor normalised as the codes are,
        so its frames can differ in number. Read at transform time: ``latent_shape_`` and the
        feature names follow it.
    output : {"flat", "tensor"}, default="flat"
    input_shape : tuple of int, default=None
        Per-sample shape of flat input, e.g. ``(1, -1)``.
    local_files_only : bool, default=False
        Never reach the hub, even when online.
    batch_size : int, default=16
    device : str, default="cpu"
    verbose : bool, default=False
        Progress bars: one over the batches of ``transform``, and ``transformers``' over the weights it loads.

    Attributes
    ----------
    model_ : transformers.EncodecModel
    n_codebooks_ : int
    sample_rate_ : int
        Rate of the input ``transform`` and ``inverse_transform`` assume: ``sample_rate`` at fit.
    frame_rate_ : float
        Code frames per second.
    latent_shape_ : tuple
        ``(n_codebooks_, frames_)`` for codes, ``(hidden_size, embedding_frames_)`` for embeddings.
    frames_, embedding_frames_ : int
        Code and embedding frames of a fitted-length clip.
    reduction_ : float
        Input samples per code, whichever ``quantize`` fit or transform ran with (the budget the
        codes set, as ResidualVQ's; the embeddings of ``quantize=False`` hold ``hidden_size /
        n_codebooks_`` times as many values).
    bits_per_code_ : int
        ``log2(codebook_size)`` (10 for the published models).
    code_range_ : tuple of int
        ``(0, codebook_size - 1)``: the codebook indices ``quantize=True`` emits.
    n_features_in_, modality_, input_shape_, input_dtype_, layout_
        How ``fit`` read the input, as in :class:`WaLLoCTransformer` (``"audio"``, ``(C, T)``).
    bandwidth_ : float
        ``bandwidth`` at fit (kbps): ``transform`` codes at it, as ``n_codebooks_`` says.

    Notes
    -----
    Stereo input for a mono model is mixed down to mono (the mean of its channels). Models that
    encode in overlapping chunks (such as the 48 kHz one) code a clip as ``EncodecModel.encode``
    does, one chunk at every stride, the last one's codes padded to a chunk's frames; their codes
    list every chunk's frames one after the other. Only where ``encode`` cannot stack the chunks (a
    next-to-last one of fewer frames than the first) is the clip zero-padded, until it has as many.
    ``inverse_transform`` decodes codes (or embeddings, with ``quantize=False``: so a ResidualVQ
    on EnCodec embeddings inverts) with EnCodec's decoder for models that neither normalise nor
    chunk their input (such as the 24 kHz one) and resamples back to ``sample_rate_``.

    Examples
    --------
    >>> import tempfile, numpy as np
    >>> from transformers import EncodecConfig, EncodecModel
    >>> from walloc_features.features import EnCodecTransformer
    >>> config = EncodecConfig(sampling_rate=2400, upsampling_ratios=[8, 4], num_filters=4,
    ...                        hidden_size=16, codebook_dim=16, num_lstm_layers=1)
    >>> path = tempfile.mkdtemp()
    >>> EncodecModel(config).save_pretrained(path)
    >>> X = np.random.default_rng(0).uniform(-0.5, 0.5, (3, 2400)).astype(np.float32)
    >>> codec = EnCodecTransformer(model=path, bandwidth=6.0, output="tensor").fit(X)
    >>> codec.transform(X).shape  # 8 codebooks, 75 frames per second
    (3, 8, 75)
    """

    _parameter_constraints: dict = {
        "model": [str, Path],
        "bandwidth": [Interval(Real, 0, None, closed="neither")],
        "sample_rate": [Interval(Integral, 1, None, closed="left"), None],
        "quantize": ["boolean"],
        "output": [StrOptions({"flat", "tensor"})],
        "input_shape": [tuple, list, None],
        "local_files_only": ["boolean"],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "device": [str],
        "verbose": ["verbose"],
    }

    modality = "audio"  # fixed: EnCodec is an audio codec

    def __init__(
        self, model=DEFAULT_MODEL, *, bandwidth=6.0, sample_rate=None, quantize=True, output="flat",
        input_shape=None, local_files_only=False, batch_size=16, device="cpu", verbose=False,
    ):  # fmt: skip
        self.model = model
        self.bandwidth = bandwidth
        self.sample_rate = sample_rate
        self.quantize = quantize
        self.output = output
        self.input_shape = input_shape
        self.local_files_only = local_files_only
        self.batch_size = batch_size
        self.device = device
        self.verbose = verbose

    def fit(self, X, y=None):
        """Load the model and fix the codebooks and output size (nothing is learned)."""
        self._validate_params()
        X, layout = self._read_fit(X)
        device = self._torch_device()
        model = load_encodec(self.model, local_files_only=self.local_files_only, verbose=self.verbose).to(device)
        config = model.config
        supported = [float(b) for b in config.target_bandwidths]
        if float(self.bandwidth) not in supported:
            raise ValueError(f"bandwidth={self.bandwidth} is not one of this model's {supported} kbps")
        if layout.channels > 2 or (config.audio_channels > 1 and layout.channels != config.audio_channels):
            raise ValueError(
                f"X has {layout.channels} channel(s); this EnCodec model takes {config.audio_channels} "
                "(mono models also take stereo, mixed down). Audio is (N, C, T) or (N, T)."
            )
        self.model_ = model
        self.sample_rate_ = int(self.sample_rate or config.sampling_rate)  # (transform's frames depend on it)
        self.bandwidth_ = float(self.bandwidth)  # transform codes at the fitted bandwidth, as n_codebooks_ says
        self.n_codebooks_ = int(model.quantizer.get_num_quantizers_for_bandwidth(self.bandwidth_))
        self.frame_rate_ = float(config.frame_rate)
        self.bits_per_code_ = int(math.ceil(math.log2(config.codebook_size)))
        # codes and embeddings of one clip: a chunked model's codes have their chunks' frames, embeddings the clip's
        self.frames_ = int(self._encode(X[:1], device, quantize=True).shape[-1])
        self.embedding_frames_ = int(self._encode(X[:1], device, quantize=False).shape[-1])
        self._set_fitted(layout, X.dtype, self._latent_shape(bool(self.quantize)))
        self.reduction_ = float(np.prod(self.input_shape_) / (self.n_codebooks_ * self.frames_))  # of the codes
        return self

    def _latent_shape(self, quantize: bool) -> tuple:
        """``(n_codebooks_, frames_)`` for codes, ``(hidden_size, embedding_frames_)`` for embeddings."""
        if quantize:
            return (self.n_codebooks_, self.frames_)
        return (self.model_.config.hidden_size, getattr(self, "embedding_frames_", self.frames_))  # (older pickles)

    @property
    def code_range_(self) -> tuple[int, int]:
        """Inclusive range of the codes ``quantize=True`` emits: ``(0, codebook_size - 1)``."""
        check_is_fitted(self)
        return (0, int(self.model_.config.codebook_size) - 1)

    def transform(self, X):
        """Codes ``(N, n_codebooks, frames)`` (int16; int32 for codebooks over 2**15) or embeddings
        ``(N, hidden, frames)``."""
        X, _ = self._read(X, batched=True)
        return self._format_output(self._encode(X, self._torch_device()))

    def inverse_transform(self, X, output_size=None):
        """Decode codes (embeddings with ``quantize=False``) to audio at ``sample_rate`` (clipped to [-1, 1], fit
        layout)."""
        Z = self._read_latents(X)
        config = self.model_.config
        if config.normalize or config.chunk_length is not None:
            if not self.quantize:
                raise ValueError(
                    "this EnCodec model normalises its input or encodes it in chunks: its decoder reads what the "
                    "normalised chunks embed, not these embeddings of the whole clip as it is (quantize=False)"
                )
            raise ValueError(
                "this EnCodec model encodes normalised, overlapping chunks; decoding needs the per-chunk "
                "scales and boundaries that the flat code array does not keep"
            )
        quantized = bool(self.quantize)
        if quantized and (not np.array_equal(Z, np.round(Z)) or Z.min() < 0 or Z.max() >= config.codebook_size):
            raise ValueError(
                f"EnCodec codes must be integers in [0, {config.codebook_size}), got [{Z.min()}, {Z.max()}]"
            )
        device = self._torch_device()
        model = self._model_on(device)
        decoded = math.ceil(Z.shape[2] * config.hop_length * self._input_rate() / config.sampling_rate)
        size = self._output_size(Z.shape[2:], output_size, limit=[decoded]) or (None,)

        def batches():  # each batch written into the output as it is decoded: memory holds it once
            with torch.no_grad():
                for i in range(0, len(Z), self.batch_size):
                    if quantized:
                        codes = torch.as_tensor(np.asarray(Z[i : i + self.batch_size], dtype=np.int64), device=device)
                        audio = model.decode(codes[None], [None])[0].cpu().numpy()
                    else:  # embeddings: what the quantizer's decoding gives the decoder
                        embeddings = np.asarray(Z[i : i + self.batch_size], dtype=np.float32)
                        audio = model.decoder(torch.as_tensor(embeddings, device=device)).cpu().numpy()
                    audio = self._resample(audio, self.model_.config.sampling_rate, self._input_rate(), size[0])
                    if self.layout_.channels != audio.shape[1]:  # a mono model decodes mixed-down audio
                        audio = np.repeat(audio, self.layout_.channels, axis=1)
                    yield i, audio

        return self._restore(fill_rows(len(Z), batches(), dtype=np.float32))

    # ---------------------------------------------------------------------------- helpers --
    _torch_modules = ("model_",)  # weight-normed modules cannot be pickled as objects

    def _module_spec(self, name, module):
        return module.config.to_dict()

    def _build_module(self, name, spec):
        from transformers import EncodecConfig, EncodecModel

        return EncodecModel(EncodecConfig.from_dict(spec))

    def _model_on(self, device):
        """The model on ``device``: it stays where fit, a pickle (the CPU) or the last call put it, so a
        ``set_params(device=...)`` after fit would feed batches on one device to weights on another."""
        return self.model_ if next(self.model_.parameters()).device == device else self.model_.to(device)

    def _source_files(self) -> list:
        """The files a fit reads (a model folder's, or the cached hub snapshot's), for caches keyed on them."""
        try:
            path = Path(str(self.model)).expanduser()
        except RuntimeError:  # "~nobody/model": the fit says what is wrong
            return []
        if not path.is_dir():
            try:  # a hub id: the snapshot the offline cache holds now (refs/main names it)
                from huggingface_hub import snapshot_download

                path = Path(snapshot_download(str(self.model), local_files_only=True))
            except Exception:  # not cached (or not a hub id): nothing read yet, nothing to stamp
                return []
        return sorted(f for f in path.iterdir() if f.is_file())

    def _input_rate(self) -> int:
        """The fitted input rate (a pickle from before it was kept: the parameter's)."""
        return getattr(self, "sample_rate_", None) or int(self.sample_rate or self.model_.config.sampling_rate)

    @staticmethod
    def _resample(x: np.ndarray, rate_in: int, rate_out: int, length=None) -> np.ndarray:
        """Polyphase resampling along the last axis, cut or edge-padded to ``length``."""
        if rate_in != rate_out:
            ratio = Fraction(rate_out, rate_in)
            x = resample_poly(x, ratio.numerator, ratio.denominator, axis=-1)
        if length is not None:
            if x.shape[-1] < length:
                x = np.pad(x, [(0, 0)] * (x.ndim - 1) + [(0, length - x.shape[-1])], mode="edge")
            x = x[..., :length]
        return x

    def _encode(self, X, device, quantize=None) -> np.ndarray:
        model = self._model_on(device)
        config = model.config
        quantize = bool(self.quantize) if quantize is None else quantize
        code_type = np.int16 if config.codebook_size <= 2**15 else np.int32  # (int16 wrapped larger codebooks)

        def batches():
            for start, batch in self._iter_batches(X, device, desc="EnCodec encode"):
                if batch.shape[1] != config.audio_channels:  # mono model: mix down
                    batch = batch.mean(dim=1, keepdim=True)
                audio = self._resample(batch.cpu().numpy(), self._input_rate(), config.sampling_rate)
                audio = torch.as_tensor(_pad_to_chunks(audio, config), dtype=torch.float32, device=device)
                if quantize:
                    encoded = model.encode(audio, bandwidth=self.bandwidth_)
                    codes = encoded.audio_codes  # (chunks, n, n_q, frames)
                    yield start, codes.permute(1, 2, 0, 3).flatten(2).cpu().numpy().astype(code_type)
                else:
                    yield start, model.encoder(audio).cpu().numpy().astype(np.float32)

        with torch.no_grad():
            return fill_rows(len(X), batches())


def _pad_to_chunks(audio: np.ndarray, config) -> np.ndarray:
    """Zero-pad a chunked model's input only where ``EncodecModel.encode`` could not stack its chunks.

    ``encode`` starts a chunk at every stride and pads only the last chunk's codes to the first
    one's frames (``ceil(length / hop_length)``), so a clip in which another chunk has fewer frames
    than the first (a next-to-last chunk short of a whole one by a hop or more) cannot be stacked:
    it is then padded, by the least that gives every such chunk the first one's frames. Any other
    clip is coded as it is; padding it more would change its codes, as a normalising model's chunk
    scale (its RMS) would then count the zeros. A model whose chunks overlap by more than half of
    them (``chunk_length > 2 * chunk_stride``) may find no such padding shorter than a chunk for a
    clip of three chunks or more: that clip is refused.
    """
    if config.chunk_length is None:
        return audio
    length, stride, chunk, hop = audio.shape[-1], config.chunk_stride, config.chunk_length, config.hop_length
    n = length
    while True:
        first = -(-min(chunk, n) // hop)
        short = [o for o in range(stride, n, stride)[:-1] if -(-min(chunk, n - o) // hop) != first]
        if not short:
            break
        n = max(n + 1, short[-1] + (first - 1) * hop + 1)  # (a longer clip may start another chunk: look again)
        if n > length + chunk:
            raise ValueError(
                f"this EnCodec model's chunks ({chunk} samples every {stride}, {hop} a frame) cannot be stacked "
                f"for a clip of {length} samples at its rate, nor for it padded by up to a chunk (transformers' "
                f"EncodecModel.encode fails on it too): use clips of at most {2 * stride} samples, or a model whose "
                "chunks overlap by half of them at most"
            )
    return audio if n == length else np.pad(audio, [(0, 0)] * (audio.ndim - 1) + [(0, n - length)])
