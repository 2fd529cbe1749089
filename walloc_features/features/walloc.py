"""``WaLLoCTransformer``: WaLLoC latents as a scikit-learn transformer."""

from __future__ import annotations

import hashlib
import json
import math
import os
from numbers import Integral, Real
from pathlib import Path

import numpy as np
import torch
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted

from .._device import seeded, torch_device
from .._files import write_atomic
from .._memory import physical_memory
from .._warnings import warn
from ..codecs.companding import code_dtype
from ..codecs.decoders import DECODERS
from ..codecs.entropy import ContextEntropyModel
from ..codecs.klt import MomentAccumulator, principal_axes
from ..codecs.published import load_published_codec, reference_min_size, resolve_checkpoint, save_published
from ..codecs.training import train_decoder
from ..codecs.walloc import WaLLoCCodec, codec_from_state
from ..evaluation.metrics import psnr
from ._base import DATA_RANGE, SIGNAL_CONSTRAINTS, SignalTransformer, fill_rows, forget_fit, warn_if_off_scale
from ._compress import CompressMixin
from ._signals import SignalLayout, input_scale

__all__ = ["WaLLoCTransformer"]

#: Published WaLLoC depths: J=3 for images, J=8 for audio.
DEFAULT_LEVELS = {"image": 3, "audio": 8}
#: Largest padding (as a fraction of the signal) the automatic choice of J accepts.
MAX_PADDING = 0.125
#: Most wavelet packets the automatic choice of J goes to past the published depth: the fit holds their float64
#: covariance (128 MB at 4096; RGB J=7 would need 19 GB).
MAX_AUTO_PACKETS = 4096
_FORMAT = "walloc-features/WaLLoCTransformer"
_FORMAT_VERSION = 2  # 2: adds the entropy model; version 1 directories still load
_ENTROPY_PREFIX = "entropy_model."


def _padding(spatial: tuple, levels: int) -> float:
    """Fraction of padding the transform adds at ``levels``."""
    step = 2**levels
    return float(np.prod([math.ceil(s / step) * step for s in spatial]) / np.prod(spatial) - 1)


def _check_covariance_fits(n_packets: int, levels: int, channels: int) -> None:
    """Refuse a depth whose fit cannot hold its packets' float64 covariance, eigenvectors and their copies (about
    five n x n matrices): an explicit J=15 of stereo audio asked for 160 GiB and the machine ran out, no error said."""
    need, memory = 5 * 8 * n_packets**2, physical_memory()
    if memory is not None and need > memory:
        raise ValueError(
            f"J={levels} gives {n_packets} wavelet packets ({channels} channel(s)); the fit holds their float64 "
            f"covariance and eigenvectors, about {need / 2**30:.0f} GiB, more than this machine's "
            f"{memory / 2**30:.0f} GiB: lower J (J=None picks a depth of at most {MAX_AUTO_PACKETS} packets)"
        )


def _auto_levels(spatial: tuple, channels: int, needed: float, modality: str) -> int:
    """The published depth, lowered to pad at most MAX_PADDING; deeper only if ``needed`` packets need it.

    ``needed`` is the reduction (packets per latent: at least one latent) or the latent_dim. Depths
    must fit the signal (``2**J <= min size``; at least 1). Up to the published depth: the deepest
    with little padding that still has ``needed`` packets, else the shallowest that has enough.
    When none has enough, deeper ones of at most MAX_AUTO_PACKETS packets: the shallowest with
    enough packets and little padding, else the shallowest with enough, else the deepest.
    """
    base = 2 ** len(spatial)
    fits = max(1, int(math.log2(min(spatial))))
    published = min(DEFAULT_LEVELS[modality], fits)
    enough = [j for j in range(published, 0, -1) if channels * base**j >= needed]
    if not enough:  # e.g. reduction=256 of grayscale images, 512 of mono audio
        deeper = [j for j in range(published + 1, fits + 1) if channels * base**j <= MAX_AUTO_PACKETS]
        reaching = [j for j in deeper if channels * base**j >= needed]
        little_padding = [j for j in reaching if _padding(spatial, j) <= MAX_PADDING]
        return (little_padding or reaching or deeper[-1:] or [published])[0]
    for levels in enough:
        if _padding(spatial, levels) <= MAX_PADDING:
            return levels
    return min(enough)


class WaLLoCTransformer(CompressMixin, SignalTransformer):
    """Wavelet Learned Lossy Compression (WaLLoC) latents as features.

    The encoder is a wavelet packet transform followed by one linear 1x1 projection and
    companding (Jacobellis & Yoo, "Learned Compression for Compressed Learning", DCC 2025).
    ``fit`` learns it from your data on a CPU in seconds: the projection in closed form (the
    KLT / PCA of the wavelet packet vectors, optimal for a linear code under MSE), the
    companding gain from the latent variances, and, with ``decoder="conv"``, a small
    convolutional decoder trained through the noise bottleneck.

    Parameters
    ----------
    reduction : float, default=16
        Target dimensionality reduction (input samples per latent value). Ignored when
        ``latent_dim`` is given. The achieved value, after padding, is ``reduction_``.
    latent_dim : int, default=None
        Latent channels; overrides ``reduction`` (with ``J=None``, the depth is then chosen to
        give at least ``latent_dim`` wavelet packets).
    J : int, default=None
        Wavelet packet levels. ``None`` picks the published depth (3 for images, 8 for audio),
        lowered while it would pad a signal by more than 12.5% (28x28 digits get J=2), and
        deeper where that depth has too few packets for ``reduction`` or ``latent_dim``
        (``reduction=256`` of 64x64 grayscale images gets J=4), as far as the signal allows and
        up to 4096 packets, whose covariance the fit holds (an explicit ``J`` goes further, as far as
        five float64 matrices of that size fit in the machine's memory).
    wavelet : str, default="bior4.4"
        Any discrete PyWavelets wavelet.
    latent_bits : int, default=8
        Bits per quantized latent (2 to 16); sets the companding range.
    decoder : {"linear", "conv"}, default="linear"
        ``"linear"`` is the closed-form KLT decoder; ``"conv"`` adds a residual CNN trained for
        ``max_epochs`` (better reconstructions, slower fit).
    hidden_channels : int, default=64
        Width of the ``"conv"`` decoder.
    n_blocks : int, default=2
        Residual blocks of the ``"conv"`` decoder.
    max_epochs : int, default=10
        Training epochs of the ``"conv"`` decoder.
    batch_size : int, default=32
        Samples per batch in fit, transform and inverse_transform (bounds memory).
    learning_rate : float, default=1e-3
        AdamW learning rate of the ``"conv"`` decoder (cosine-annealed).
    device : str, default="cpu"
        Torch device, e.g. ``"cuda"``.
    output : {"flat", "tensor"}, default="flat"
        ``"flat"``: ``(N, D)`` rows for scikit-learn estimators; ``"tensor"``: the channel-first
        latent array ``(N, latent_dim, h, w)`` (images) or ``(N, latent_dim, t)`` (audio), e.g.
        for timm models.
    quantize : bool, default=False
        ``False``: continuous companded latents in ``(-2**(b-1), 2**(b-1))`` as float32 (what the
        published classifiers trained on); ``True``: the rounded integer codes (int8 for
        ``latent_bits <= 8``, else int16).
    modality : {"auto", "image", "audio"}, default="auto"
        How to read 3-D input; see *Notes*.
    input_shape : tuple of int, default=None
        Per-sample shape for flat ``(N, D)`` input, e.g. ``(1, 28, 28)`` for flattened images or
        ``(1, -1)`` for mono signals: of the fitted length with ``output="flat"`` (whose rows need a
        fixed width), of any length, call by call, with ``output="tensor"``. Flat input of the
        fitted size gives flat ``inverse_transform`` output.
    random_state : int, RandomState instance or None, default=None
        Seeds the decoder's initialisation, shuffling and bottleneck noise.
    verbose : bool, default=False
        Show progress bars (tqdm) and the training table.
    checkpoint : str, path or (str, str), default=None
        A published WaLLoC checkpoint to use instead of learning a codec: its ``.pth`` file (the
        ``.json`` config beside it, same stem), a folder holding both, or a ``(pth, json)`` pair.
        ``fit`` then only reads the input layout and learns the entropy model; the architecture
        parameters (``reduction`` to ``max_epochs``, ``learning_rate``) are ignored. See
        :meth:`from_checkpoint`.

    Attributes
    ----------
    codec_ : WaLLoCCodec
        The fitted torch module.
    modality_ : str
        ``"image"`` or ``"audio"``.
    J_ : int
        Wavelet packet levels used.
    latent_dim_ : int
        Latent channels.
    input_shape_ : tuple
        Per-sample ``(C, H, W)`` or ``(C, T)`` shape seen in fit.
    latent_shape_ : tuple
        Per-sample latent shape ``(latent_dim, h, w)`` or ``(latent_dim, t)`` for that input.
    reduction_ : float
        Achieved dimensionality reduction: input samples / latent values, per sample; for a checkpoint
        loaded without ``X``, the nominal ``channels * (2**J)**d / latent_dim`` (no input size known).
    n_features_in_ : int
        Values per input sample.
    feature_names_in_ : ndarray of str
        Column names, when fit on a DataFrame.
    loss_curve_ : list of float
        Training loss per epoch (empty for the linear decoder).
    n_iter_ : int
        Training epochs run.
    input_dtype_ : str
        Dtype of the fit input; transform refuses an integer dtype read on another scale.
    input_range_ : tuple of float
        Lowest and highest sample of the fit input, on the scale the codec reads (integers divided
        by their full scale). A codec fitted on the [0, 1] image / [-1, 1] audio scale refuses samples
        read as stored (floats, int64) far off it (pixels on 0-255) instead of encoding saturated latents. Absent for
        published checkpoints.
    bits_per_code_ : int
        ``latent_bits``: bits per quantized latent, before entropy coding.
    code_range_ : tuple of int
        Inclusive range of the codes ``quantize=True`` emits, ``+-(2**(bits_per_code_ - 1) - 1)``:
        the ``alphabet`` to give a quantized-input strategy.
    entropy_model_ : ContextEntropyModel
        The context model :meth:`compress` codes latents with, learned in ``fit`` from the
        codes of (up to 2**18 latent positions per channel of) the training data.
    layout_ : SignalLayout
        How ``fit`` read the input (modality, channels, spatial size, flat rows or not); ``transform`` and
        ``inverse_transform`` follow it. Internal: its fields may change between versions.

    Notes
    -----
    Inputs: images ``(N, C, H, W)`` / ``(N, H, W)`` (uint8, or float in [0, 1]); audio
    ``(N, C, T)`` / ``(N, T)`` (float in [-1, 1], or int16/int32 PCM); numpy arrays or torch
    tensors. With
    ``modality="auto"``, 3-D input is audio when its last axis is at least 32x longer than its
    second (``(N, 2, 16000)``), else grayscale images (``(N, 28, 28)``). Sizes that are not a
    multiple of ``2**J`` are padded symmetrically and cropped back by ``inverse_transform``.
    In ``output="tensor"`` mode, images of another size than in fit are encoded too (the codec
    is fully convolutional); pass ``output_size`` to ``inverse_transform`` to crop their
    reconstruction (by default it is cropped to the fitted size when the latent grid is the
    fitted one, and left padded otherwise). Reconstructions are clipped to [0, 1] (images) or
    [-1, 1] (audio). A warning says when ``reduction`` cannot be met at the chosen ``J``.

    Examples
    --------
    >>> from sklearn.linear_model import LogisticRegression
    >>> from sklearn.pipeline import make_pipeline
    >>> from walloc_features import WaLLoCTransformer
    >>> from walloc_features.datasets import load_mnist
    >>> X, y = load_mnist()
    >>> model = make_pipeline(WaLLoCTransformer(reduction=16), LogisticRegression(max_iter=200))
    >>> model.fit(X[:2000], y[:2000]).score(X[-500:], y[-500:]) > 0.8
    True
    >>> codec = model[0]
    >>> codec.latent_shape_, codec.reduction_
    ((1, 7, 7), 16.0)
    """

    _off_scale_consequence = (
        "the features still work, but inverse_transform clips reconstructions to {scale} and score() measures PSNR "
        "on it"
    )
    _parameter_constraints: dict = {
        **SIGNAL_CONSTRAINTS,
        "reduction": [Interval(Real, 1, None, closed="left")],
        "latent_dim": [Interval(Integral, 1, None, closed="left"), None],
        "J": [Interval(Integral, 1, None, closed="left"), None],
        "wavelet": [str],
        "latent_bits": [Interval(Integral, 2, 16, closed="both")],
        "decoder": [StrOptions(set(DECODERS))],
        "hidden_channels": [Interval(Integral, 1, None, closed="left")],
        "n_blocks": [Interval(Integral, 0, None, closed="left")],
        "max_epochs": [Interval(Integral, 0, None, closed="left")],
        "learning_rate": [Interval(Real, 0, None, closed="neither")],
        "quantize": ["boolean"],
        "random_state": ["random_state"],
        "checkpoint": [str, os.PathLike, tuple, list, None],
    }

    def __init__(
        self,
        reduction=16,
        *,
        latent_dim=None,
        J=None,
        wavelet="bior4.4",
        latent_bits=8,
        decoder="linear",
        hidden_channels=64,
        n_blocks=2,
        max_epochs=10,
        batch_size=32,
        learning_rate=1e-3,
        device="cpu",
        output="flat",
        quantize=False,
        modality="auto",
        input_shape=None,
        random_state=None,
        verbose=False,
        checkpoint=None,
    ):
        self.reduction = reduction
        self.latent_dim = latent_dim
        self.J = J
        self.wavelet = wavelet
        self.latent_bits = latent_bits
        self.decoder = decoder
        self.hidden_channels = hidden_channels
        self.n_blocks = n_blocks
        self.max_epochs = max_epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.device = device
        self.output = output
        self.quantize = quantize
        self.modality = modality
        self.input_shape = input_shape
        self.random_state = random_state
        self.verbose = verbose
        self.checkpoint = checkpoint

    # ---------------------------------------------------------------------------------- fit --
    def fit(self, X, y=None):
        """Learn the codec from ``X`` (``y`` is ignored).

        Parameters
        ----------
        X : array-like or torch.Tensor
            Images ``(N, C, H, W)`` / ``(N, H, W)``, audio ``(N, C, T)`` / ``(N, T)``, or flat
            rows with ``input_shape``.
        y : None
            Ignored.

        Returns
        -------
        self : WaLLoCTransformer
        """
        self._validate_params()
        if self.checkpoint is not None:
            return self._fit_checkpoint(X)
        X, layout = self._read_fit(X, checked_by_batches=True)  # by the statistics pass, before anything is learned
        device = self._torch_device()
        levels, latent_dim = self._architecture(layout)
        seed = int(check_random_state(self.random_state).randint(np.iinfo(np.int32).max))
        # seeded: the conv decoder's initialisation, shuffling and noise; trainable inside a caller's inference_mode
        with seeded(seed, device), torch.inference_mode(False):
            codec = WaLLoCCodec(
                layout.channels, latent_dim, levels, layout.ndim, self.wavelet, self.latent_bits,
                self.decoder, self.hidden_channels, self.n_blocks,
            ).to(device)  # fmt: skip
            moments, low, high = MomentAccumulator(), math.inf, -math.inf
            with torch.no_grad():
                for _, batch in self._iter_batches(X, device, desc="WaLLoC statistics"):
                    moments.update(codec.packets(batch))
                    extremes = torch.aminmax(batch)
                    low, high = min(low, float(extremes.min)), max(high, float(extremes.max))
            warn_if_off_scale(low, high, X.dtype, layout.modality, self._off_scale_consequence)
            mean, cov = moments.finalize()
            if not (np.isfinite(cov).all() and np.isfinite(mean).all()):  # eigh would fail to converge on them
                raise ValueError(
                    f"the wavelet packet statistics of X overflowed: values near float32's maximum (X spans "
                    f"[{low:.3g}, {high:.3g}]) leave the encoder's arithmetic; scale the data"
                )
            eigvals, eigvecs = principal_axes(cov)
            if eigvals[0] <= 1e-9 * max(float(mean @ mean), np.finfo(float).tiny):
                message = "X has (almost) no variance: the fitted code cannot represent other data"
                warn(message, UserWarning)
                eigvals = np.maximum(eigvals, 1.0)  # unit gain instead of an infinite one
            elif eigvals[0] < 1e-24:  # zero-mean signals the relative test misses: the encoder caps its gain
                warn(
                    f"X is nearly silent (its largest wavelet packet standard deviation is {np.sqrt(eigvals[0]):.3g}, "
                    "under the encoder's gain floor of 1e-12): its codes use a fraction of their range, or none",
                    UserWarning,
                )  # fmt: skip
            codec.init_linear_code(mean, eigvals, eigvecs)
            loss_curve = []
            if self.decoder == "conv" and self.max_epochs > 0:
                loss_curve = train_decoder(  # reads rows as stored, converted one at a time
                    codec, X, scale=input_scale(X.dtype), max_epochs=self.max_epochs,
                    batch_size=self.batch_size, lr=self.learning_rate, device=str(device),
                    verbose=bool(self.verbose),
                )  # fmt: skip
        self._set_codec(codec, layout, X.dtype, loss_curve)
        self.input_range_ = (low, high)
        self._fit_entropy_model_or_forget(X)
        if self.latent_dim is None:
            self._warn_if_reduction_missed(self.reduction, f" at J={levels}")
        return self

    # ---------------------------------------------------------------- published checkpoints --
    @classmethod
    def from_checkpoint(cls, checkpoint, config=None, *, X=None, **params) -> "WaLLoCTransformer":
        """A transformer running a published WaLLoC codec (``RGB_16x``, ``RGB_4x``, ``stereo_5x``, ...).

        Download the ``.pth`` and ``.json`` files once (Hugging Face ``danjacobellis/walloc``); this
        reads them from disk, never from the network. The state dict is read with
        ``torch.load(weights_only=True)``: a file that would need arbitrary unpickling is refused
        with a :class:`~walloc_features.codecs.published.CheckpointError` (a ValueError) that says how
        to convert it. The encoder runs without extra dependencies; the published decoders
        (AutoencoderKL-style for images, Oobleck for audio) are implemented in this package.

        Parameters
        ----------
        checkpoint : str or path
            The ``.pth`` (or ``.safetensors``) state file, or a folder holding one state file and
            its config.
        config : str or path, default=None
            The ``.json`` config; by default the file of the same stem beside ``checkpoint``.
        X : array-like, default=None
            Sample signals. When given, the transformer is fitted on them as by :meth:`fit`: their
            size becomes the one flat output takes, and :meth:`compress` gets an entropy model
            learned from them. Without ``X``, signals of any size are encoded (``output`` then
            defaults to ``"tensor"``) and :meth:`compress` needs :meth:`fit_entropy_model` first.
        **params
            Other parameters (``output``, ``quantize``, ``batch_size``, ``device``, ...).

        Returns
        -------
        transformer : WaLLoCTransformer
            Fitted; images are read on the [0, 1] scale and enter the codec as ``x - 0.5``, audio on
            the [-1, 1] scale as ``0.5 x`` (the published codecs were trained on clips
            peak-normalised to 0.5, so normalise quiet clips for the best reconstructions).

        Examples
        --------
        >>> import tempfile, numpy as np
        >>> from walloc_features.codecs import WaLLoCCodec
        >>> from walloc_features.codecs.published import save_published
        >>> folder = tempfile.mkdtemp()
        >>> _ = save_published(WaLLoCCodec(3, latent_dim=12, levels=3), folder)  # stands in for RGB_16x
        >>> codec = WaLLoCTransformer.from_checkpoint(folder)
        >>> codec.transform(np.zeros((2, 3, 64, 48), np.uint8)).shape
        (2, 12, 8, 6)
        """
        target = str(checkpoint) if config is None else (str(checkpoint), str(config))
        if X is not None:
            return cls(checkpoint=target, **params).fit(X)
        self = cls(checkpoint=target, **{"output": "tensor", **params})
        self._validate_params()
        if self.output != "tensor":
            raise ValueError("output='flat' needs the input size: pass X (a few samples) to from_checkpoint")
        codec = self._load_checkpoint()
        layout = SignalLayout(
            modality=self._checkpoint_modality(codec), channels=codec.config["in_channels"],
            spatial=(codec.multiple,) * codec.ndim, has_channel_axis=True,
        )  # fmt: skip
        self._set_codec(codec, layout, np.float32)
        self.n_features_in_ = int(np.prod(layout.sample_shape))
        # the nominal ratio, samples per latent: the placeholder's grid holds the border frames the published
        # audio codecs add (encoder_padding), which would count a 5x stereo codec as 1.6x
        self.reduction_ = float(layout.channels * codec.multiple**codec.ndim / codec.config["latent_dim"])
        return self

    def _load_checkpoint(self):
        """The published codec ``checkpoint`` names."""
        if isinstance(self.checkpoint, (tuple, list)):
            if len(self.checkpoint) != 2:
                raise ValueError(f"checkpoint must be a path or a (pth, json) pair, got {self.checkpoint!r}")
            return load_published_codec(*self.checkpoint)
        return load_published_codec(self.checkpoint)

    def _source_files(self) -> list:
        """The files a fit reads (a checkpoint's state file and the config beside it), for caches keyed on them."""
        if self.checkpoint is None:
            return []
        pair = tuple(self.checkpoint) if isinstance(self.checkpoint, (tuple, list)) else (self.checkpoint,)
        try:
            return list(resolve_checkpoint(*pair))
        except (OSError, ValueError, TypeError):  # the fit will say what is wrong with it
            return []

    def _checkpoint_modality(self, codec) -> str:
        """The checkpoint's modality, refused when the ``modality`` parameter names the other one."""
        modality = "image" if codec.ndim == 2 else "audio"
        if self.modality not in ("auto", modality):
            raise ValueError(f"modality={self.modality!r}, but the checkpoint holds an {modality} codec")
        return modality

    def _fit_checkpoint(self, X):
        """fit with a published codec: read the layout, learn the entropy model, train nothing."""
        codec = self._load_checkpoint()
        modality = self._checkpoint_modality(codec)
        X, layout = self._read_fit(X, modality)  # the checkpoint decides how 3-D input is read
        if layout.channels != codec.config["in_channels"]:
            raise ValueError(
                f"X, read as {modality}, has {layout.channels} channel(s) of size {layout.spatial}, but the "
                f"checkpoint's codec takes {codec.config['in_channels']}"
            )
        self._set_codec(codec, layout, X.dtype)
        self._fit_entropy_model_or_forget(X)
        return self

    def _fit_entropy_model_or_forget(self, X) -> None:
        """The last step of fit: a failure there leaves the transformer unfitted, not half-fitted."""
        try:
            self.entropy_model_ = self._learn_entropy_model(X)
        except BaseException:
            forget_fit(self)
            raise

    def _warn_if_below_reference_size(self, size) -> None:
        """Published codecs on tiny signals: the authors' transform differs there (see reference_min_size)."""
        if self.checkpoint is None:
            return
        smallest = reference_min_size(self.J_)
        padded = [-(-int(n) // 2**self.J_) * 2**self.J_ for n in size]
        if min(padded) < smallest:
            warn(
                f"signals of size {tuple(size)} are smaller than {smallest} samples per axis: there the authors' "
                "wavelet transform (pytorch_wavelets, one wrap-around per level) differs from the true periodized "
                "one computed here, so latents and reconstructions differ from the published code's",
                UserWarning,
            )

    def _set_codec(self, codec: WaLLoCCodec, layout: SignalLayout, dtype, loss_curve=()) -> None:
        """The fitted attributes a codec determines (fit, checkpoints and load all end here)."""
        self.codec_ = codec.eval()
        self.J_ = codec.wpt.levels
        self.latent_dim_ = codec.config["latent_dim"]
        self.loss_curve_ = list(loss_curve)
        self.n_iter_ = len(self.loss_curve_)
        self.bits_per_code_ = codec.latent_bits
        self._set_fitted(layout, dtype, (self.latent_dim_, *codec.latent_size(layout.spatial)))

    def _architecture(self, layout: SignalLayout) -> tuple[int, int]:
        """Wavelet levels and latent channels for this input, with the errors for impossible ones."""
        if self.J is not None:
            levels = self.J
            if 2**levels > min(layout.spatial):
                raise ValueError(
                    f"signal too small for J={levels}: every axis needs at least 2**J = {2**levels} samples, "
                    f"got {layout.spatial}; lower J or leave J=None to choose it from the size"
                )
        else:
            # the depth must give latent_dim packets when that is set (reduction is then ignored, as documented)
            needed = self.reduction if self.latent_dim is None else self.latent_dim
            levels = _auto_levels(layout.spatial, layout.channels, needed, layout.modality)
        n_packets = layout.channels * (2**layout.ndim) ** levels
        _check_covariance_fits(n_packets, levels, layout.channels)
        if self.latent_dim is None:
            return levels, int(np.clip(round(n_packets / self.reduction), 1, n_packets))
        if self.latent_dim > n_packets:
            raise ValueError(
                f"latent_dim={self.latent_dim} exceeds the {n_packets} wavelet packets of "
                f"{layout.channels} channel(s) at J={levels}"
            )
        return levels, int(self.latent_dim)

    # ---------------------------------------------------------------------------- transform --
    @property
    def code_range_(self) -> tuple[int, int]:
        """Inclusive range of the codes ``quantize=True`` emits: ``+-(2**(bits_per_code_ - 1) - 1)``."""
        check_is_fitted(self)
        half = 2 ** (self.bits_per_code_ - 1) - 1
        return (-half, half)

    def transform(self, X):
        """Encode ``X`` to latents.

        Returns
        -------
        Z : ndarray
            ``(N, D)`` when ``output="flat"``, else ``(N, latent_dim, *grid)``; float32 companded
            latents, or integer codes when ``quantize=True``.
        """
        X, _ = self._read(X, batched=True)
        return self._format_output(self._encode(X, quantize=self.quantize))

    def inverse_transform(self, X, output_size=None):
        """Decode latents (continuous or integer codes, flat or tensor) back to signals.

        Parameters
        ----------
        X : array-like
            ``(N, D)`` flat latents, or ``(N, latent_dim, *grid)``.
        output_size : int or tuple of int, default=None
            Size to crop the reconstruction to, for inputs of another size than in fit: positive, at
            most the padded size ``(grid - 2 p) * 2**J`` (``p``: the codec's ``encoder_padding``, 1 for
            the published audio codecs, else 0). By default the fitted size when the grid is the
            fitted one, else the padded size.

        Returns
        -------
        X_rec : ndarray of float32
            In the layout of the fit input (flat rows stay flat, ``(N, H, W)`` stays 3-D), on the
            [0, 1] image / [-1, 1] audio scale, clipped to it.
        """
        Z = self._read_latents(X)
        border = 2 * self.codec_.config.get("encoder_padding", 0)  # latents the decoder drops at the ends
        size = self._output_size(Z.shape[2:], output_size, limit=[(n - border) * 2**self.J_ for n in Z.shape[2:]])
        device = self._torch_device()
        codec = self._codec_on(device)
        batches = self._iter_batches(Z, device, desc="WaLLoC decode", scale=1.0, samples=False)
        with torch.no_grad():
            out = fill_rows(len(Z), ((start, codec.decode(z, size=size).cpu().numpy()) for start, z in batches))
        return self._restore(out)

    def score(self, X, y=None):
        """Mean PSNR (dB) of the quantized, clipped round trip ``decode(round(encode(X)))``.

        The peak-to-peak range is 1 for images (scaled to [0, 1]) and 2 for audio.
        """
        X, _ = self._read(X, batched=True)
        device = self._torch_device()
        codec = self._codec_on(device)
        low, high = (0.0, 1.0) if self.modality_ == "image" else (-1.0, 1.0)
        scores = []
        with torch.no_grad():
            for _, batch in self._iter_batches(X, device, desc="WaLLoC score"):
                recon = codec.decode(torch.round(codec.encode(batch)), size=batch.shape[2:]).clamp(low, high)
                axes = tuple(range(1, batch.ndim))
                scores.append(psnr(batch.cpu().numpy(), recon.cpu().numpy(), DATA_RANGE[self.modality_], axis=axes))
        return float(np.mean(np.concatenate(scores)))

    def _codec_on(self, device) -> WaLLoCCodec:
        """The codec on ``device``; ``Module.to`` walks every parameter, so it is skipped when already there."""
        weight = self.codec_.encoder.weight
        return self.codec_ if weight.device == device else self.codec_.to(device)

    def _quantized_codes(self, X) -> np.ndarray:
        return self._encode(X, quantize=True)

    def _encode(self, X, *, quantize: bool) -> np.ndarray:
        self._warn_if_below_reference_size(X.shape[2:])
        device = self._torch_device()
        codec = self._codec_on(device)
        grid = codec.latent_size(X.shape[2:])
        dtype = code_dtype(codec.latent_bits) if quantize else np.float32
        out = np.empty((len(X), self.latent_dim_, *grid), dtype=dtype)
        scale = input_scale(X.dtype)
        with torch.no_grad():
            for start, batch in self._iter_batches(X, device, desc="WaLLoC encode", raw=True):
                z = codec.encode(batch, scale=1.0 if batch.is_floating_point() else scale)
                # finite input whose filter sums overflow float32 (inf - inf) gives NaN; the companded latents are
                # bounded otherwise, so their sum is NaN exactly then (29 us a call less than isnan().any() at batch 1)
                if torch.isnan(z.sum()):
                    raise ValueError(
                        f"the encoder overflowed on samples {start}-{start + len(z) - 1}: values near float32's "
                        f"maximum (|x| up to {float(batch.abs().max()):.3g}) leave its arithmetic; scale the data"
                    )
                # Rounded in place and cast by torch straight into the output (from any device): at batch
                # 1 that is 20 us a call less than a rounded copy, then numpy's cast.
                torch.from_numpy(out[start : start + len(z)]).copy_(z.round_() if quantize else z)
        return out

    # ------------------------------------------------------------------------- persistence --
    def save(self, path, *, format="walloc-features") -> Path:
        """Write the fitted transformer (or its codec in the published layout) to ``path``.

        Parameters
        ----------
        path : str or path
            ``format="walloc-features"``: a directory that receives ``config.json`` and
            ``model.safetensors``; :meth:`load` restores an identical transformer (entropy model
            included). No pickle is involved; both files are written under temporary names and
            renamed, and the config records its weights' SHA-256 and its own, so :meth:`load` refuses
            weights and a config of two saves (one interrupted between its renames) instead of mixing
            them, and a config damaged or edited since the save.
            ``format="published"``: a ``.pth`` file (its ``.json`` config goes beside it) or a
            directory (receives ``walloc.pth`` and ``walloc.json``), loadable by
            :meth:`from_checkpoint` and by the ``walloc`` package. A codec fitted here folds its
            input shift into the exported float32 weights: read back, its latents agree within float
            rounding (~3e-5), so a code on a rounding boundary can differ by one.
        format : {"walloc-features", "published"}, default="walloc-features"
            ``"published"`` exports the codec alone (no entropy model, no input layout) and exists
            for codecs with a published architecture: those loaded from published checkpoints, and
            2-D codecs with ``decoder="linear"`` (as ``LinearCodec2D``); others raise ValueError.

        Returns
        -------
        path : Path
            The directory, or the published ``.pth`` file.
        """
        check_is_fitted(self)
        if format == "published":
            return save_published(self.codec_, path)[0]
        if format != "walloc-features":
            raise ValueError(f"format must be 'walloc-features' or 'published', got {format!r}")
        from safetensors.torch import save as safetensors_bytes

        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        tensors = {k: v.detach().cpu().contiguous() for k, v in self.codec_.state_dict().items()}
        if getattr(self, "entropy_model_", None) is not None:
            for name, array in self.entropy_model_.get_arrays().items():
                tensors[_ENTROPY_PREFIX + name] = torch.from_numpy(np.ascontiguousarray(array))
        weights = safetensors_bytes(tensors)
        # The two files are renamed one after the other: the config names its weights' digest, so that load
        # tells a save interrupted between the renames (new weights, old config) from a whole one.
        config = {"format": _FORMAT, "format_version": _FORMAT_VERSION, **self._fitted_config(),
                  "weights_sha256": hashlib.sha256(weights).hexdigest()}  # fmt: skip
        # and its own digest: the codec's config (input gain and shift, bits) changes every code if damaged
        config = json.dumps({**config, "config_sha256": _config_digest(config)}, indent=2)
        write_atomic({path / "model.safetensors": weights, path / "config.json": config.encode()})
        return path

    @classmethod
    def load(cls, path, *, device=None) -> "WaLLoCTransformer":
        """Read a transformer written by :meth:`save` (optionally onto another ``device``; by default the one it
        was saved with, or the CPU, with a warning, for a CUDA model where CUDA is not available)."""
        from safetensors.torch import load as load_safetensors

        if device is not None:
            torch_device(device)  # an unusable device fails here, not at the first transform
        path = Path(path)
        config_file, weights_file = path / "config.json", path / "model.safetensors"
        for f in (config_file, weights_file):
            if not f.is_file():
                raise FileNotFoundError(f"{f} not found: expected a directory written by WaLLoCTransformer.save")
        try:
            config = json.loads(config_file.read_text())
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ValueError(f"{config_file} is not valid JSON ({exc}): damaged since it was saved") from None
        if not isinstance(config, dict):
            kinds = {list: "array", str: "string", bool: "boolean", int: "number", float: "number"}
            kind = kinds.get(type(config), "null")
            raise ValueError(f"{config_file} holds a JSON {kind}, not the config object save writes")
        recorded = config.pop("config_sha256", None)  # absent before 12-05
        if recorded is not None and recorded != _config_digest(config):
            raise ValueError(f"{config_file} does not match the digest it was saved with: edited or damaged since "
                             "(to change parameters, load the original, set_params and save again)")  # fmt: skip
        if config.get("format") != _FORMAT:
            raise ValueError(f"{config_file} is not a WaLLoCTransformer config (format={config.get('format')!r})")
        version = config.get("format_version", 0)
        if not isinstance(version, int) or isinstance(version, bool):
            raise ValueError(f"{config_file} has a malformed format_version {version!r}")
        if version > _FORMAT_VERSION:
            raise ValueError(f"{config_file} has format version {version}; upgrade walloc-features")
        saved_device = config.get("params", {}).get("device") if isinstance(config.get("params"), dict) else None
        fall_back = device is None and str(saved_device).startswith("cuda") and not torch.cuda.is_available()
        weights = weights_file.read_bytes()  # hashed and parsed from one read: a save in between cannot slip in
        digest = config.get("weights_sha256")  # absent from saves before it was recorded
        if digest is not None and hashlib.sha256(weights).hexdigest() != digest:
            raise ValueError(f"{weights_file} is not the weights {config_file} was saved with (a save interrupted "
                             "between its two files, or a file copied from another model); save the model again")
        try:
            self = cls._from_config(config, load_safetensors(weights))
        except (KeyError, TypeError, AttributeError) as exc:  # a field missing or of another kind than save writes
            raise ValueError(f"{config_file} is not a config save writes ({type(exc).__name__}: {exc})") from None
        except ValueError as exc:
            raise ValueError(f"{path}: {exc}") from None
        if fall_back:  # a model trained on a GPU box, read on a laptop: as skorch moves its nets (once it loaded)
            warn(
                f"{path} was saved with device={saved_device!r}, but CUDA is not available: loaded onto the CPU "
                "(pass device= to choose)",
                UserWarning,
            )
            device = "cpu"
        if device is not None:
            self.set_params(device=device)
        return self

    def _fitted_config(self) -> dict:
        """JSON-able parameters and fitted metadata (everything but the weights)."""
        params = {k: _jsonable(v) for k, v in self.get_params().items()}
        if not isinstance(params["random_state"], (int, type(None))):
            params["random_state"] = None  # a RandomState instance has no JSON form
        fitted = {
            "J_": self.J_, "latent_dim_": self.latent_dim_, "n_features_in_": self.n_features_in_,
            "loss_curve_": self.loss_curve_, "input_dtype_": self.input_dtype_, "reduction_": self.reduction_,
            "feature_names_in_": list(getattr(self, "feature_names_in_", [])) or None,
            "input_range_": list(getattr(self, "input_range_", [])) or None,
        }  # fmt: skip
        return {
            "params": params,
            "codec": self.codec_.config,
            "layout": self.layout_.to_dict(),
            "fitted": {k: _jsonable(v) for k, v in fitted.items()},
            "output_config": dict(getattr(self, "_sklearn_output_config", {})),
            "entropy_model": self.entropy_model_.get_config() if getattr(self, "entropy_model_", None) else None,
        }

    @classmethod
    def _from_config(cls, config: dict, state: dict) -> "WaLLoCTransformer":
        params = dict(config["params"])
        if params.get("input_shape") is not None:
            params["input_shape"] = tuple(params["input_shape"])
        self = cls(**params)
        if config.get("output_config", {}).get("transform"):
            self.set_output(transform=config["output_config"]["transform"])
        entropy = {k[len(_ENTROPY_PREFIX) :]: v.numpy() for k, v in state.items() if k.startswith(_ENTROPY_PREFIX)}
        weights = {k: v for k, v in state.items() if not k.startswith(_ENTROPY_PREFIX)}
        codec = codec_from_state(config["codec"], weights, what="the codec")
        if config.get("entropy_model"):
            self.entropy_model_ = ContextEntropyModel.from_state(config["entropy_model"], entropy)
        fitted = config["fitted"]
        self.n_features_in_ = fitted["n_features_in_"]
        if fitted.get("feature_names_in_"):
            self.feature_names_in_ = np.asarray(fitted["feature_names_in_"], dtype=object)
        self._set_codec(codec, SignalLayout.from_dict(config["layout"]), fitted["input_dtype_"], fitted["loss_curve_"])
        if fitted.get("reduction_") is not None:  # from_checkpoint's nominal ratio (absent from older saves)
            self.reduction_ = float(fitted["reduction_"])
        if fitted.get("input_range_") is not None:  # (absent from older saves and published checkpoints)
            self.input_range_ = tuple(float(v) for v in fitted["input_range_"])
        return self

    _torch_modules = ("codec_",)

    def _module_spec(self, name, module):
        return module.config

    def _build_module(self, name, spec):
        return WaLLoCCodec(**spec)


def _config_digest(config: dict) -> str:
    """SHA-256 of the config's canonical JSON (sorted keys, no whitespace): indifferent to how it is laid out."""
    return hashlib.sha256(json.dumps(config, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _jsonable(value):
    """numpy scalars and tuples -> plain JSON types (grid searches hand out numpy integers)."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, (tuple, list)):
        return [_jsonable(v) for v in value]
    return value
