"""Adapt a timm CNN to small inputs (codec latents are 4x4 to 32x32) and to 1-D signals.

ImageNet CNNs downsample 32x: a 7x7 latent would vanish after the stem. ``adapt_strides``
removes downsampling from the *first* strided layers (the stem first, as CIFAR ResNets drop
their stride-2 stem and max-pool) until the last feature map keeps ``min_size`` samples along
the shorter axis. Both axes lose a layer's stride together; a conv that loses its stride pads
``"same"`` to keep its input size; a pooling layer that loses its stride becomes the identity.
For 1-D signals laid out as ``(N, C, 1, T)``, every stride and pooling window along the singleton
height axis is removed too.
"""

from __future__ import annotations

import math

import torch
from torch import nn

__all__ = ["adapt_strides", "total_stride", "unknown_downsamplers"]

_STRIDED = (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d)


def _pair(value) -> tuple:
    return tuple(value) if isinstance(value, (tuple, list)) else (value, value)


def _strided_layers(model: nn.Module) -> list:
    """Conv and pooling layers that downsample, in registration (≈ forward) order."""
    return [m for m in model.modules() if isinstance(m, _STRIDED) and _pair(m.stride) != (1, 1)]


def total_stride(model: nn.Module) -> tuple:
    """Product of the strides of all downsampling layers, per axis (height, width)."""
    strides = [_pair(m.stride) for m in _strided_layers(model)]
    return tuple(math.prod(s[axis] for s in strides) for axis in (0, 1))


def _unstride(layer: nn.Module, axes: tuple) -> None:
    """Remove the stride of ``layer`` along ``axes`` (0: height, 1: width), keeping the size.

    A conv left with no stride pads ``"same"`` (exact for even kernels and dilation); a pooling
    layer with no downsampling left along an axis has no window there either.
    """
    stride = list(_pair(layer.stride))
    for axis in axes:
        stride[axis] = 1
    if isinstance(layer, nn.Conv2d):
        layer.stride = tuple(stride)
        if stride != [1, 1]:  # callers remove strides on every axis that has one
            raise AssertionError(f"partial stride removal on {layer}")
        layer.padding = "same"
    else:
        kernel, padding = list(_pair(layer.kernel_size)), list(_pair(layer.padding))
        for axis in axes:
            kernel[axis], padding[axis] = 1, 0
        layer.kernel_size, layer.stride, layer.padding = tuple(kernel), tuple(stride), tuple(padding)


def _downsampling_groups(model: nn.Module, channels: int, probe: tuple, axis: int) -> list:
    """Strided layers grouped by the input size they see along ``axis``, largest size first.

    Parallel branches (a residual block's main path and its shortcut) downsample the same
    feature map, so they see one size and form one group: removing a group's stride keeps the
    branches' outputs the same size.
    """
    seen = {}

    def record(layer, args, output):  # returns None: a hook's return value would replace the output
        seen.setdefault(layer, args[0].shape[2 + axis])

    hooks = [layer.register_forward_hook(record) for layer in _strided_layers(model) if _pair(layer.stride)[axis] != 1]
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(torch.zeros(1, channels, *probe))
    finally:
        model.train(was_training)
        for hook in hooks:
            hook.remove()
    groups = {}
    for layer, size in seen.items():
        groups.setdefault(size, []).append(layer)
    return [groups[size] for size in sorted(groups, reverse=True)]


def _make_one_d(model: nn.Module, names: dict) -> list:
    """Turn every 2-D kernel into a 1 x k one along height (its centre row) with no stride there."""
    changed = []
    for layer in model.modules():
        if isinstance(layer, nn.Conv2d) and (layer.kernel_size[0] != 1 or _pair(layer.stride)[0] != 1):
            centre, height = (layer.kernel_size[0] - 1) // 2, layer.kernel_size[0]
            layer.weight = nn.Parameter(layer.weight.data[:, :, centre : centre + 1].clone())
            if isinstance(getattr(layer, "scale", None), float):  # weight-standardised convs (NFNets):
                layer.scale *= math.sqrt(height)  # gamma / sqrt(fan_in) with the smaller fan-in
            layer.kernel_size = (1, layer.kernel_size[1])
            layer.stride = (1, _pair(layer.stride)[1])
            layer.padding = "same" if layer.padding == "same" else (0, _pair(layer.padding)[1])
            changed.append(names[id(layer)])
        elif isinstance(layer, (nn.MaxPool2d, nn.AvgPool2d)) and (
            _pair(layer.kernel_size)[0] != 1 or _pair(layer.stride)[0] != 1
        ):
            layer.kernel_size = (1, _pair(layer.kernel_size)[1])
            layer.stride = (1, _pair(layer.stride)[1])
            layer.padding = (0, _pair(layer.padding)[1])
            changed.append(names[id(layer)])
    return changed


def unknown_downsamplers(model: nn.Module) -> list:
    """Names of the types of layers that downsample a feature map (2-D leaves with a stride) other than the convs
    and pools adapt_strides changes: anti-aliased ResNets' BlurPool2d keeps its stride while its shortcut loses its
    own, so the branches no longer add up (for the error message; such models may still work)."""
    return sorted({type(m).__name__ for m in model.modules() if not isinstance(m, (*_STRIDED, nn.ConvTranspose2d))
                   and next(m.children(), None) is None  # (blocks record their stride too, for their layers)
                   and isinstance(getattr(m, "stride", None), (int, tuple, list))
                   and len(_pair(m.stride)) == 2 and _pair(m.stride) != (1, 1)})  # fmt: skip


def adapt_strides(
    model: nn.Module, input_size: tuple, *, channels: int, min_size: int = 2, one_d: bool = False, probe_size=None
) -> list:
    """Drop early downsampling so ``input_size`` keeps ``min_size`` samples per axis at the end.

    Parameters
    ----------
    model : torch.nn.Module
        A CNN taking ``channels`` input channels (modified in place).
    input_size : tuple of int
        ``(height, width)`` of the inputs (``(1, T)`` for 1-D signals).
    channels : int
        Input channels (for the probing forward pass).
    min_size : int, default=2
        Smallest final feature-map size wanted per axis.
    one_d : bool, default=False
        Make every kernel 1 x k and remove all downsampling along the height axis.
    probe_size : tuple of int, default=None
        Input size of the probing forward pass that finds the downsampling layers (the model's
        native size for models that need one; 256 x 256 by default).

    Returns
    -------
    list of str
        Names of the layers changed (for the estimator's ``stem_changes_``).
    """
    names = {id(m): name for name, m in model.named_modules()}
    changed = _make_one_d(model, names) if one_d else []
    # Both axes lose their downsampling together, so every changed conv can pad "same".
    axes = (1,) if one_d else (0, 1)
    allowed = max(1, min(input_size[a] for a in axes) // max(1, min_size))
    probe = tuple(probe_size) if probe_size is not None else (256, 256)
    groups = _downsampling_groups(model, channels, probe=probe, axis=axes[-1])
    product = math.prod(max(_pair(m.stride)[axes[-1]] for m in group) for group in groups)
    for group in groups:  # earliest (largest feature map) first
        if product <= allowed:
            break
        product //= max(_pair(m.stride)[axes[-1]] for m in group)
        for layer in group:
            _unstride(layer, axes)
            changed.append(names[id(layer)])
    return sorted(set(changed), key=changed.index)
