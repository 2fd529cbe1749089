"""Compute budgets in FLOPs, counted by PyTorch's own ``FlopCounterMode``.

``FlopCounterMode`` counts the floating-point operations of matrix products and convolutions
(2 per multiply-add) as torch dispatches them; elementwise work (activations, companding) is not
counted, the usual convention for model FLOPs. Fused kernels torch has no formula for are counted
here by their products: scaled dot-product attention on the CPU (``QK^T`` and the weighted sum of
``V``, as torch counts its GPU kernels), the inference fast paths of ``nn.MultiheadAttention`` and
``nn.TransformerEncoderLayer`` (projections, attention and feed-forward layers; nested inputs at
their padded size), and the oneDNN / cuDNN recurrent layers (an LSTM's or GRU's input and hidden
products at every step), so for these a count does not depend on the device or the kernel picked.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch
from torch.utils.flop_counter import FlopCounterMode

from .._device import TORCH_GLOBALS
from ..codecs.wavelets import strided_convolutions

__all__ = ["count_flops", "transform_flops_per_sample", "classifier_flops_per_sample"]


def count_flops(fn, *args, **kwargs) -> int:
    """FLOPs of one call ``fn(*args, **kwargs)`` (run without gradients; a module runs in eval mode with its
    parameters frozen, and both are restored after the call, so batch norm's running statistics are untouched).

    Parameters
    ----------
    fn : callable or torch.nn.Module
        What to run.
    *args, **kwargs
        Its arguments.

    Returns
    -------
    int
        FLOPs as ``torch.utils.flop_counter`` counts them (a multiply-add is 2), plus the fused
        attention and recurrent kernels it has no formula for.

    Examples
    --------
    >>> import torch
    >>> layer = torch.nn.Linear(10, 4)
    >>> count_flops(layer, torch.zeros(1, 10))  # 10 x 4 multiply-adds
    80
    """
    # A module's parameters are frozen for the count: under no_grad, the counter's module tracker fails on a
    # view of a trainable parameter fed to a submodule (timm's attention pooling: "Expected gradient function").
    trainable = [p for p in fn.parameters() if p.requires_grad] if isinstance(fn, torch.nn.Module) else []
    # eval mode: a count must not move batch norm's running statistics or draw dropout masks from the global RNG
    modes = {m: m.training for m in fn.modules()} if isinstance(fn, torch.nn.Module) else {}
    with TORCH_GLOBALS:  # the counter's module hooks are process-wide: another thread's seeded training waits
        try:
            for p in trainable:
                p.requires_grad_(False)
            for m in modes:
                m.training = False  # each module itself: train() would recurse into children of another mode
            with torch.no_grad(), FlopCounterMode(display=False, custom_mapping=_FUSED_KERNELS) as counter:
                fn(*args, **kwargs)
        finally:
            for p in trainable:
                p.requires_grad_(True)
            for m, mode in modes.items():
                m.training = mode
    return int(counter.get_total_flops())


def _attention_flops(query, key, value, *args, out_shape=None, **kwargs) -> int:
    """Scaled dot-product attention on shapes ``(..., heads, length, dim)``: ``Q K^T`` and ``A V``, 2 FLOPs per
    multiply-add (grouped-query key and value heads are broadcast to the query's)."""
    *batch, heads, q_len, q_dim = query
    k_len, v_dim = key[-2], value[-1]
    return 2 * int(np.prod(batch, dtype=np.int64)) * heads * q_len * k_len * (q_dim + v_dim)


def _recurrent_flops(input_shape, weight_shapes, *args, out_shape=None, **kwargs) -> int:
    """A cuDNN recurrent stack: every layer and direction multiplies each of the ``T x B`` rows (or packed rows)
    by its input, hidden (and projection) matrices, the 2-D weights."""
    rows = int(np.prod(input_shape[:-1], dtype=np.int64))
    return 2 * rows * sum(int(np.prod(w, dtype=np.int64)) for w in weight_shapes if len(w) == 2)


def _recurrent_layer_flops(input_shape, w_ih, w_hh, *args, out_shape=None, **kwargs) -> int:
    """One oneDNN LSTM layer (one direction): the input and hidden products of each of the ``T x B`` rows."""
    return _recurrent_flops(input_shape, [w_ih, w_hh])


def _padded_shape(tensor) -> tuple:
    """A tensor's shape; a nested tensor's padded one (the fast paths take nested batches of unequal lengths)."""
    return tuple(tensor.to_padded_tensor(0.0).shape if tensor.is_nested else tensor.shape)


def _multi_head_attention_flops(query, key, value, embed_dim, num_heads, *args, out_val=None, **kwargs) -> int:
    """``nn.MultiheadAttention``'s fused inference kernel (raw arguments): the query, key and value projections,
    ``Q K^T`` and ``A V`` over all heads, and the output projection."""
    q, k = _padded_shape(query), _padded_shape(key)
    rows_q, rows_k = int(np.prod(q[:-1], dtype=np.int64)), int(np.prod(k[:-1], dtype=np.int64))
    projections = embed_dim * embed_dim * (2 * rows_q + 2 * rows_k)  # in (q; k and v) and out (q) projections
    head = embed_dim // num_heads
    heads = (*q[:-2], num_heads)
    attention = _attention_flops((*heads, q[-2], head), (*heads, k[-2], head), (*heads, k[-2], head))
    return 2 * projections + attention


def _encoder_layer_flops(src, embed_dim, num_heads, *args, out_val=None, **kwargs) -> int:
    """``nn.TransformerEncoderLayer``'s fused inference kernel (raw arguments): its self-attention and its two
    feed-forward products (``ffn_weight_1`` is ``(dim_feedforward, embed_dim)``)."""
    ffn_weight_1 = args[11] if len(args) > 11 else kwargs["ffn_weight_1"]
    rows = int(np.prod(_padded_shape(src)[:-1], dtype=np.int64))
    return _multi_head_attention_flops(src, src, src, embed_dim, num_heads) + 2 * rows * 2 * ffn_weight_1.numel()


_multi_head_attention_flops._get_raw = True  # FlopCounterMode passes tensors, not shapes (a nested one has none)
_encoder_layer_flops._get_raw = True


def _fused_kernels() -> dict:
    """Formulas for the fused kernels ``FlopCounterMode`` has none for (the ops this torch build has)."""
    formulas = {
        "_scaled_dot_product_flash_attention_for_cpu": _attention_flops,
        "_native_multi_head_attention": _multi_head_attention_flops,
        "_transformer_encoder_layer_fwd": _encoder_layer_flops,
        "mkldnn_rnn_layer": _recurrent_layer_flops,
        "_cudnn_rnn": _recurrent_flops,
        "miopen_rnn": _recurrent_flops,
    }
    ops = {name: getattr(torch.ops.aten, name, None) for name in formulas}
    return {op: formulas[name] for name, op in ops.items() if op is not None}


_FUSED_KERNELS = _fused_kernels()


def transform_flops_per_sample(transformer, X) -> float:
    """FLOPs per sample of a fitted transformer's ``transform`` on ``X`` (a few samples suffice).

    Torch matrix products and convolutions are counted as they run (WaLLoC's wavelet packets and
    projection, DCT blocks; WaLLoC runs its fused filters as strided convolutions for the count, without
    the padding work of its matmul path, wherever it sits (inside a ResidualVQ too), see
    :func:`~walloc_features.codecs.wavelets.strided_convolutions`); work the
    counter cannot see is added from the transformer's own analytic count,
    ``_uncounted_flops_per_sample()``, where it has one (the resolution reducer's interpolation and
    polyphase filters, ResidualVQ's nearest-centre search).

    Parameters
    ----------
    transformer : fitted transformer
    X : array-like
        Samples as ``transform`` takes them, at least one.

    Returns
    -------
    float

    Examples
    --------
    >>> import numpy as np
    >>> from walloc_features import WaLLoCTransformer
    >>> X = np.random.default_rng(0).random((4, 3, 32, 32)).astype(np.float32)
    >>> codec = WaLLoCTransformer(reduction=16).fit(X)
    >>> transform_flops_per_sample(codec, X) > 0
    True
    """
    n = len(X)
    if n == 0:
        raise ValueError("X needs at least one sample")
    with strided_convolutions():  # this thread's packet transforms only
        counted = count_flops(transformer.transform, X) / n
    uncounted = getattr(transformer, "_uncounted_flops_per_sample", None)
    return counted + (float(uncounted()) if uncounted is not None else 0.0)


def classifier_flops_per_sample(classifier, inputs) -> float:
    """Forward FLOPs per sample of a fitted classifier on ``inputs`` (a few rows it would see).

    Torch estimators report their own (``flops_per_sample_``); linear models (``coef_``) cost
    2 FLOPs per (active input, output): the mean non-zeros per row for sparse inputs, the width
    for dense ones. Other models: NaN (unknown), libsvm's ``SVC(kernel="linear")`` among them (its
    ``coef_`` is derived; it predicts through its support vectors).

    Parameters
    ----------
    classifier : fitted classifier
    inputs : array-like or sparse matrix
        Rows it would predict on (their non-zeros price a linear model on sparse input).

    Returns
    -------
    float
        NaN when the cost is unknown.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.linear_model import LogisticRegression
    >>> X, y = np.random.default_rng(0).random((30, 5)), np.arange(30) % 3
    >>> classifier_flops_per_sample(LogisticRegression().fit(X, y), X[:2])  # 5 inputs x 3 classes
    30.0
    """
    if hasattr(classifier, "flops_per_sample_"):
        return float(classifier.flops_per_sample_)
    if not is_linear_model(classifier):
        return float("nan")
    coef = classifier.coef_
    outputs = coef.shape[0] if np.ndim(coef) == 2 else 1  # (a sparsified model's coef_ is a scipy matrix)
    return float(2 * active_inputs(inputs) * outputs)


def is_linear_model(estimator) -> bool:
    """Whether ``estimator`` predicts through its ``coef_``: libsvm's linear-kernel SVC also has one, but computes its
    kernel against every support vector, and its ``n_iter_`` counts SMO steps, not passes over the data."""
    return getattr(estimator, "coef_", None) is not None and not hasattr(estimator, "support_vectors_")


def active_inputs(inputs) -> float:
    """Inputs a linear map reads per sample: the mean non-zeros of a row of a sparse matrix or array (any format),
    the width of dense rows."""
    if sp.issparse(inputs):
        return float(np.diff(sp.csr_array(inputs).indptr).mean()) if inputs.shape[0] else 0.0
    return float(np.prod(np.shape(inputs)[1:]))
