"""``TimmClassifier``: any timm model as a scikit-learn classifier of latents, signals or pixels."""

from __future__ import annotations

import math
from numbers import Integral, Real
from pathlib import Path

from sklearn.utils._param_validation import Interval, StrOptions

from ._torch import TorchClassifier
from .stem import adapt_strides

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
    ViTs get ``img_size`` set to the input and a patch size leaving about 8 tokens per side.
    ``stem_changes_`` lists the layers changed; ``stem="none"`` keeps the architecture as is.

    **1-D signals.** ``(N, C, T)`` input (WaLLoC audio latents, EnCodec embeddings, waveforms)
    is laid out as ``(N, C, 1, T)``; every kernel becomes ``1 x k`` (its centre row) and nothing
    downsamples the singleton axis, so the 2-D model acts as a 1-D one.

    Parameters
    ----------
    model : str, default="resnet18"
        Any ``timm.list_models()`` name (timm's tiny ``test_*`` models are handy on a CPU).
    pretrained : bool, default=False
        timm's own pretrained weights (downloaded from the hub when online); timm adapts the
        first convolution to ``in_chans`` and replaces the classifier.
    checkpoint_path : str or path, default=None
        Local weights file (``.pth``, ``.safetensors``) for ``model``, loaded the same way as
        ``pretrained`` (first conv adapted, classifier replaced).
    model_kwargs : dict, default=None
        Extra ``timm.create_model`` arguments (e.g. ``drop_rate``).
    stem : {"auto", "none"}, default="auto"
    min_feature_size : int, default=1
        Smallest final feature map per axis that ``stem="auto"`` keeps (rounding up: a 7x7
        latent ends at 2x2 with 1, at 4x4 with 2, at roughly 4x the compute).
    input_shape : tuple of int, default=None
        ``(C, H, W)`` or ``(C, T)`` of flat ``(N, D)`` input (e.g. after a flat transformer).
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
        Seeds initialisation, the validation split, shuffling and dropout.
    verbose : bool, default=False
        skorch's epoch table and a tqdm bar per epoch.

    Attributes
    ----------
    classes_ : ndarray
    net_ : skorch.NeuralNetClassifier
        The trained net; ``net_.module_`` is the torch model, ``net_.history`` the curves.
    stem_changes_ : list of str
        Layers whose downsampling ``stem="auto"`` removed.
    flops_per_sample_ : int
        Forward FLOPs of one sample (``torch.utils.flop_counter``).
    training_flops_ : int
        ``3 * flops_per_sample_ * n_train * n_epochs_`` (forward + backward estimate).
    n_parameters_ : int
    n_epochs_ : int
    fit_time_ : float
        Seconds spent in training.

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
        "model": [str],
        "pretrained": ["boolean"],
        "checkpoint_path": [str, Path, None],
        "model_kwargs": [dict, None],
        "stem": [StrOptions({"auto", "none"})],
        "min_feature_size": [Interval(Integral, 1, None, closed="left")],
        "input_shape": [tuple, list, None],
        "max_epochs": [Interval(Integral, 1, None, closed="left")],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "lr": [Interval(Real, 0, None, closed="neither")],
        "weight_decay": [Interval(Real, 0, None, closed="left")],
        "warmup_epochs": [Interval(Integral, 0, None, closed="left")],
        "label_smoothing": [Interval(Real, 0, 1, closed="left")],
        "validation_fraction": [Interval(Real, 0, 1, closed="left")],
        "early_stopping": ["boolean"],
        "patience": [Interval(Integral, 1, None, closed="left")],
        "mixed_precision": ["boolean"],
        "device": [str],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
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

        if self.model not in timm.list_models() and self.model not in timm.list_models(pretrained=True):
            raise ValueError(f"timm has no model {self.model!r} (see timm.list_models())")
        kwargs = dict(self.model_kwargs or {}, **extra)
        if self.checkpoint_path is not None:
            path = Path(self.checkpoint_path)
            if not path.is_file():
                raise FileNotFoundError(f"checkpoint_path {path} does not exist")
            # timm's pretrained loader adapts the first conv to in_chans and drops a mismatched head
            kwargs.update(pretrained=True, pretrained_cfg_overlay=dict(file=str(path)))
        else:
            kwargs.update(pretrained=self.pretrained)
        return timm.create_model(self.model, num_classes=n_classes, in_chans=in_chans, **kwargs)

    def _build_module(self, sample_shape: tuple, n_classes: int):
        in_chans, height, width = sample_shape
        network = self._create(in_chans, n_classes)
        self.stem_changes_ = []
        if self.stem == "auto" and hasattr(network, "patch_embed"):  # ViT-style: size the patches
            patch = (1 if self.one_d_ else _patch(height), _patch(width))
            network = self._create(in_chans, n_classes, img_size=(height, width), patch_size=patch, dynamic_img_pad=True)
            self.stem_changes_ = [f"patch_embed: img_size=({height}, {width}), patch_size={patch}"]
        elif self.stem == "auto":
            self.stem_changes_ = adapt_strides(
                network, (height, width), channels=in_chans, min_size=self.min_feature_size, one_d=self.one_d_
            )
        return network


def _patch(size: int) -> int:
    """Power-of-two patch edge leaving about 8 tokens along an axis of ``size``."""
    return max(1, 2 ** int(math.log2(max(1, size // 8)))) if size >= 16 else 1
