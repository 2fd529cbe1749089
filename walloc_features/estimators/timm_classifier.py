"""``TimmClassifier``: any timm model as a scikit-learn classifier of latents, signals or pixels."""

from __future__ import annotations

import math
import sys
from numbers import Integral
from pathlib import Path

import torch
from sklearn.utils._param_validation import Interval, StrOptions

from .._files import check_torch_file
from ._torch import TRAINING_CONSTRAINTS, TorchClassifier
from .stem import adapt_strides, unknown_downsamplers

__all__ = ["TimmClassifier"]


class TimmClassifier(TorchClassifier):
    """A timm model trained with skorch, for ``(N, C, H, W)`` latents/images or ``(N, C, T)`` signals.

    ``in_chans`` comes from the input and ``num_classes`` from ``y``. Training: AdamW, linear
    warmup then cosine decay, optional label smoothing, early stopping on a stratified
    validation split (best weights restored), bfloat16 autocast on CUDA. Inputs are
    standardised per channel with statistics of the training set (part of the model).

    **Small inputs.** Codec latents are often 4x4 to 32x32, which an ImageNet CNN would
    downsample to nothing. With ``stem="auto"`` the earliest downsampling layers (the stem
    first) lose their stride until the last feature map keeps ``min_feature_size`` per side;
    ViTs get ``img_size`` set to the input and a patch size leaving about 8 tokens per side (padded to
    whole patches, or for ViTs that cannot pad, a patch dividing the side, at up to 4x the tokens along it;
    PiT, CrossViT and PVT-v2 are refused). Layers it does not adapt (BlurPool2d) are named when the model fails.
    ``stem_changes_`` lists the layers changed; ``stem="none"`` keeps the architecture as is.

    **1-D signals.** ``(N, C, T)`` input (WaLLoC audio latents, EnCodec embeddings, waveforms)
    is laid out as ``(N, C, 1, T)``; every kernel becomes ``1 x k`` (its centre row) and nothing
    downsamples the singleton axis, so the 2-D model acts as a 1-D one.

    **Layout.** Channels come first: square ``(N, H, H, C)`` images that look channel-last (1, 3
    or 4 values on the last axis, 28 or more on the other two) get a warning at fit. ``predict``
    takes samples of the fitted shape only: latents of another size (another reduction or crop)
    are refused, though a pooled CNN would run on them.

    Parameters
    ----------
    model : str, default="resnet18"
        Any ``timm.list_models()`` name (timm's tiny ``test_*`` models are handy on a CPU).
    pretrained : bool, default=False
        timm's own pretrained weights (downloaded from the hub when online; weights neither cached nor
        downloadable raise OSError naming the model); timm adapts the first convolution to ``in_chans`` and
        replaces the classifier.
    checkpoint_path : str or path, default=None
        Local weights file (``.pth``, ``.safetensors``, read with ``weights_only=True``) for
        ``model``, or a ``net_.module_`` saved from a TimmClassifier. It is adapted as timm adapts
        its pretrained weights (the model module's ``checkpoint_filter_fn``: a ViT's patch and
        position embeddings are resampled to the patch size and token grid ``stem="auto"`` sets),
        the first conv is adapted to ``in_chans`` (timm's ``adapt_input_conv``) and a classifier
        of another size is replaced; a file whose other weights do not fit the model is refused
        with a ValueError.
    model_kwargs : dict, default=None
        Extra ``timm.create_model`` arguments (e.g. ``drop_rate``).
    stem : {"auto", "none"}, default="auto"
    min_feature_size : int, default=1
        Smallest final feature map per axis that ``stem="auto"`` keeps (rounding up: a 7x7
        latent ends at 2x2 with 1, at 4x4 with 2, at roughly 4x the compute).
    input_shape : tuple of int, default=None
        ``(C, H, W)`` or ``(C, T)`` to lay each sample out in: of flat ``(N, D)`` input (e.g. after
        a flat transformer), or of samples of another shape holding as many values (``(N, 28, 28)``
        digits with ``(1, 28, 28)``); one entry may be -1. A shape that cannot hold them is refused.
    max_epochs : int, default=30
    batch_size : int, default=64
    lr : float, default=2e-3
    weight_decay : float, default=0.05
    warmup_epochs : int, default=1
    label_smoothing : float, default=0.0
    validation_fraction : float, default=0.1
    early_stopping : bool, default=True
    patience : int, default=5
    mixed_precision : bool, default=True
        bfloat16 autocast when ``device`` is CUDA (ignored on the CPU).
    device : str, default="cpu"
    random_state : int, RandomState instance or None, default=None
        Seeds initialisation, the validation split, shuffling and dropout (through torch's global
        generator, seeded for the fit and restored after it: another thread of yours drawing from it
        meanwhile changes the fit).
    verbose : bool, default=False
        skorch's epoch table and a tqdm bar per epoch.

    Attributes
    ----------
    classes_ : ndarray
    net_ : skorch.NeuralNetClassifier
        The trained net; ``net_.module_`` is the torch model, ``net_.history`` the curves.
    stem_changes_ : list of str
        Layers whose downsampling ``stem="auto"`` removed.
    flops_per_sample_ : int or float
        Forward FLOPs of one sample (``torch.utils.flop_counter``); NaN, with a warning, if the counter
        fails on the trained model.
    training_flops_ : int or float
        ``(3 * n_train + n_valid) * flops_per_sample_ * n_epochs_``: forward and backward (about twice
        the forward) on the training samples, forward on the validation ones.
    n_parameters_ : int
    n_epochs_ : int
    fit_time_ : float
        Seconds spent in training.
    n_features_in_ : int
        Values per sample.
    feature_names_in_ : ndarray of str
        Column names of a DataFrame seen in ``fit`` (only then); checked at predict time.
    sample_shape_ : tuple of int
        Shape one sample is read as, after ``input_shape``: ``(C, H, W)``, or ``(C, 1, T)`` for signals.
    one_d_ : bool
        Whether ``fit`` took ``(C, T)`` signals (run as images one row high); ``predict`` needs the same.

    Examples
    --------
    >>> from walloc_features import WaLLoCTransformer
    >>> from walloc_features.datasets import load_mnist
    >>> from walloc_features.estimators import TimmClassifier
    >>> from sklearn.pipeline import make_pipeline
    >>> X, y = load_mnist()
    >>> model = make_pipeline(
    ...     WaLLoCTransformer(reduction=16, output="tensor"),  # 49 numbers per digit
    ...     TimmClassifier("test_resnet", max_epochs=4, batch_size=128, lr=3e-3, random_state=0),
    ... )
    >>> model.fit(X[:3000], y[:3000]).score(X[-1000:], y[-1000:]) > 0.9  # 0.93 in 8 s on 2 CPU cores
    True
    """

    _parameter_constraints: dict = {
        **TRAINING_CONSTRAINTS,
        "model": [str],
        "pretrained": ["boolean"],
        "checkpoint_path": [str, Path, None],
        "model_kwargs": [dict, None],
        "stem": [StrOptions({"auto", "none"})],
        "min_feature_size": [Interval(Integral, 1, None, closed="left")],
        "input_shape": [tuple, list, None],
    }

    def __init__(
        self, model="resnet18", *, pretrained=False, checkpoint_path=None, model_kwargs=None, stem="auto",
        min_feature_size=1, input_shape=None, max_epochs=30, batch_size=64, lr=2e-3, weight_decay=0.05,
        warmup_epochs=1, label_smoothing=0.0, validation_fraction=0.1, early_stopping=True, patience=5,
        mixed_precision=True, device="cpu", random_state=None, verbose=False,
    ):  # fmt: skip
        self.model = model
        self.pretrained = pretrained
        self.checkpoint_path = checkpoint_path
        self.model_kwargs = model_kwargs
        self.stem = stem
        self.min_feature_size = min_feature_size
        self.input_shape = input_shape
        self.max_epochs = max_epochs
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.warmup_epochs = warmup_epochs
        self.label_smoothing = label_smoothing
        self.validation_fraction = validation_fraction
        self.early_stopping = early_stopping
        self.patience = patience
        self.mixed_precision = mixed_precision
        self.device = device
        self.random_state = random_state
        self.verbose = verbose

    def _create(self, in_chans: int, n_classes: int, **extra):
        import timm

        hub = self.model.startswith(("hf-hub:", "hf_hub:"))
        if not hub and self.model not in timm.list_models() and self.model not in timm.list_models(pretrained=True):
            raise ValueError(f"timm has no model {self.model!r} (see timm.list_models(), or use an 'hf-hub:' id)")
        taken = sorted({"num_classes", "in_chans", "pretrained"} & set(self.model_kwargs or {}))
        if taken:
            raise ValueError(
                f"model_kwargs sets {taken}, which {type(self).__name__} derives itself (classes and channels from "
                "the training data, pretrained from its own parameter); leave them out"
            )
        kwargs = dict(self.model_kwargs or {}, **extra)
        pretrained = self.pretrained and self.checkpoint_path is None
        try:
            return timm.create_model(self.model, pretrained=pretrained, num_classes=n_classes, in_chans=in_chans,
                                     **kwargs)  # fmt: skip
        except OSError as exc:  # (the hub's "cannot find the requested files", which names neither model nor remedy)
            if not pretrained:
                raise
            raise OSError(
                f"pretrained=True could not get the weights of {self.model!r} ({type(exc).__name__}: {exc}); "
                "offline, download them on a connected machine and pass checkpoint_path='/path/to/weights', or "
                "train from scratch with pretrained=False"
            ) from exc

    def _build_module(self, sample_shape: tuple, n_classes: int):
        in_chans, height, width = sample_shape
        network = self._create(in_chans, n_classes)
        self.stem_changes_, hint = [], ""  # (hint: what the errors add about layers stem='auto' leaves alone)
        state = None if self.checkpoint_path is None else _read_checkpoint(self.checkpoint_path)
        if self.stem == "auto" and hasattr(network, "patch_embed"):  # ViT-style: size the patches
            chosen = {"img_size", "patch_size", "dynamic_img_pad", "dynamic_img_size"}
            sizing = sorted(chosen & set(self.model_kwargs or {}))
            if sizing:  # they were overridden below without a word
                raise ValueError(
                    f"model_kwargs sets {sizing}, which stem='auto' chooses for this ViT-style model from the input "
                    "size; pass stem='none' to set them yourself"
                )
            if isinstance(network.patch_embed, torch.nn.ModuleList):  # CrossViT: a patch size and image per branch
                raise ValueError(
                    f"stem='auto' sizes one patch embedding, and {self.model!r} has one per branch: use stem='none' "
                    "with the model's own img_size and patch_size (model_kwargs), or another model"
                )
            patch = (1 if self.one_d_ else _patch(height), _patch(width))
            padded = (-(-height // patch[0]) * patch[0], -(-width // patch[1]) * patch[1])
            # Uneven sizes are padded up to whole patches with position embeddings to match (dynamic_img_size lifts
            # timm's check that the input is img_size, which the padded grid is not); models that pad without it
            # (Swin) or not at all (BEiT, CaiT) get patches that divide the size, so no edge is left unread.
            dividing = tuple(_dividing_patch(side, edge) for side, edge in zip((height, width), patch, strict=True))
            attempts = [dict(img_size=padded, patch_size=patch, dynamic_img_pad=True, dynamic_img_size=True)]
            if all(4 * d >= edge for d, edge in zip(dividing, patch, strict=True)):  # (else far more tokens: a
                attempts.append(dict(img_size=(height, width), patch_size=dividing))  # 16001-sample clip, 16001)
            for attempt in attempts:
                try:
                    network = self._create(in_chans, n_classes, **attempt)
                    break
                except TypeError as exc:  # (an argument the model does not take)
                    error = exc
            else:  # (a patch_embed of other arguments: PVT-v2, XCiT; or a size no patch near `patch` divides)
                uneven = "" if len(attempts) > 1 else (
                    f"; it cannot pad, and no patch near {patch} divides ({height}, {width}): crop or pad the input "
                    f"to multiples of {patch}, or")
                raise ValueError(
                    f"stem='auto' cannot size the patches of {self.model!r} ({error}){uneven or ';'} use stem='none' "
                    "with inputs the model accepts, or another model"
                ) from None
            _check_patch_strides(network, self.model)
            size, patch = attempt["img_size"], attempt["patch_size"]
            padding = "" if size == (height, width) else f" (input padded from ({height}, {width}))"
            self.stem_changes_ = [f"patch_embed: img_size={size}, patch_size={patch}{padding}"]
            if state is not None:
                _load_checkpoint(network, state, self.checkpoint_path, in_chans)
        elif self.stem == "auto":
            if state is not None:  # weights of the 2-D architecture are adapted with it (1-D: centre rows) ...
                try:
                    _load_checkpoint(network, state, self.checkpoint_path, in_chans)
                    state = None
                except _ShapeMismatch:  # (raised before any weight is loaded)
                    if not self.one_d_:
                        raise
            probe = network.pretrained_cfg.get("input_size", (in_chans, 256, 256))[1:]
            unknown = unknown_downsamplers(network)
            if unknown:
                hint = f"; its {', '.join(unknown)} layers downsample in a way stem='auto' does not adapt"
            try:
                self.stem_changes_ = adapt_strides(
                    network, (height, width), channels=in_chans, min_size=self.min_feature_size,
                    one_d=self.one_d_, probe_size=probe,
                )  # fmt: skip
            except Exception as exc:  # models with fixed-size parts (window attention, MLP mixers)
                raise ValueError(
                    f"stem='auto' cannot adapt {self.model!r}: {exc}{hint}. Use stem='none' with inputs the model "
                    "accepts, or another model"
                ) from exc
            if state is not None:  # ... a module saved from a 1-D TimmClassifier (1 x k kernels) fits only after
                _load_checkpoint(network, state, self.checkpoint_path, in_chans)
        elif state is not None:
            _load_checkpoint(network, state, self.checkpoint_path, in_chans)
        _check_forward(network, self.model, (in_chans, height, width), self.stem, hint)
        return network


def _check_forward(network, name: str, sample_shape: tuple, stem: str, hint: str = "") -> None:
    """One forward pass at the real size, so an unusable architecture fails at once, clearly (with the way out
    that ``stem`` leaves: under "none", min_feature_size does nothing; nor where ``hint`` names layers that
    stem='auto' does not adapt)."""
    was_training = network.training
    try:
        network.eval()
        with torch.no_grad():
            network(torch.zeros(2, *sample_shape))
    except Exception as exc:
        ways = ("stem='auto' (which adapts the downsampling to small inputs), another model, or model_kwargs that "
                "fit the input (img_size, patch_size)") if stem == "none" else (
            "another model, or stem='none'" if hint else "another model, stem='none', or a larger min_feature_size")
        raise ValueError(
            f"timm model {name!r} cannot take inputs of shape {sample_shape} here ({exc}){hint}; try {ways}"
        ) from exc
    finally:
        network.train(was_training)


def _check_patch_strides(network, name: str) -> None:
    """Refuse a patch embedding whose convolutions stride past their kernels: PiT's has a stride argument of its own
    (8), so sized for 1x1 patches it read 1 pixel in 64 without a word (the other 63 moved no prediction)."""
    for path, module in network.patch_embed.named_modules():
        if isinstance(module, (torch.nn.Conv1d, torch.nn.Conv2d)):
            if any(stride > kernel for stride, kernel in zip(module.stride, module.kernel_size, strict=True)):
                skipped = math.prod(module.stride) - math.prod(min(s, k) for s, k in
                                                              zip(module.stride, module.kernel_size, strict=True))
                raise ValueError(
                    f"stem='auto' cannot size the patches of {name!r}: its patch embedding "
                    f"{('patch_embed.' + path).rstrip('.')} strides {tuple(module.stride)} over a "
                    f"{tuple(module.kernel_size)} kernel and would skip {skipped} of every "
                    f"{math.prod(module.stride)} input positions; use stem='none' with the model's own sizes, or "
                    "another model"
                )


class _Mismatch(ValueError):
    """A checkpoint whose weights do not fit the model (a ValueError: what users catch)."""


class _ShapeMismatch(_Mismatch):
    """Weights of other shapes than the model's, found before anything is loaded."""


def _read_checkpoint(path) -> dict:
    """The state dict of a local weights file; a TimmClassifier's saved ``net_.module_`` loses its
    ``network.`` prefix and its standardisation buffers."""
    from timm.models import load_state_dict

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint_path {path} does not exist")
    if path.suffix != ".safetensors":  # safetensors checks its own header; a zip's CRCs go unchecked by torch
        check_torch_file(path)
    state = load_state_dict(str(path), weights_only=True)
    if any(k.startswith("network.") for k in state):  # a TimmClassifier's net_.module_
        state = {k[len("network."):]: v for k, v in state.items() if k.startswith("network.")}
    return state


def _load_checkpoint(network, state: dict, path, in_chans: int) -> None:
    """Load the weights ``state`` (read from ``path``) into ``network``, refusing weights that do not fit it.

    timm's own pretrained loader silently skips mismatched keys whenever the head changes; this
    one adapts the weights as that loader does (the model module's ``checkpoint_filter_fn``: a
    ViT's patch embedding and position embedding resampled to the model's patch and grid size),
    adapts the first conv to ``in_chans`` (timm's ``adapt_input_conv``), drops a classifier of
    another size, and raises if anything else is missing or unexpected (this package's own saved
    modules arrive without their ``network.`` prefix: :func:`_read_checkpoint`).
    """
    from timm.models._manipulate import adapt_input_conv

    filter_fn = getattr(sys.modules.get(type(network).__module__), "checkpoint_filter_fn", None)
    if filter_fn is not None:  # what timm's pretrained loader applies for most architectures
        try:
            state = filter_fn(dict(state), network)
        except (RuntimeError, ValueError, KeyError) as exc:  # e.g. a ViT's non-square token grid, resampled as square
            raise _Mismatch(
                f"{path} cannot be adapted to {type(network).__name__} by timm's checkpoint filter: {exc}"
            ) from exc
    own = network.state_dict()
    cfg = getattr(network, "pretrained_cfg", {}) or {}
    first = cfg.get("first_conv")
    first = [first] if isinstance(first, str) else list(first or [])
    for name in first:
        key = f"{name}.weight"
        if key in state and key in own and state[key].shape[1] != own[key].shape[1]:
            state[key] = adapt_input_conv(in_chans, state[key], base_chans=state[key].shape[1])
    classifier = cfg.get("classifier")
    heads = [classifier] if isinstance(classifier, str) else list(classifier or [])
    for head in heads:
        for suffix in (".weight", ".bias"):
            key = head + suffix
            if key in state and key in own and state[key].shape != own[key].shape:
                del state[key]
    mismatched = [k for k in state if k in own and state[k].shape != own[k].shape]
    if mismatched:
        raise _ShapeMismatch(f"{path} does not fit {type(network).__name__}: shapes differ for {mismatched[:5]}")
    result = network.load_state_dict(state, strict=False)
    missing = [k for k in result.missing_keys if not any(k.startswith(h + ".") for h in heads)]
    if missing or result.unexpected_keys:
        raise _Mismatch(
            f"{path} does not match the model: missing {missing[:5]}, unexpected {list(result.unexpected_keys)[:5]}"
        )


def _dividing_patch(size: int, edge: int) -> int:
    """The largest patch edge up to ``edge`` that divides ``size``, for models that cannot pad to whole patches."""
    return max(d for d in range(1, edge + 1) if size % d == 0)


def _patch(size: int) -> int:
    """Power-of-two patch edge leaving about 8 tokens along an axis of ``size``."""
    return max(1, 2 ** int(math.log2(max(1, size // 8)))) if size >= 16 else 1
