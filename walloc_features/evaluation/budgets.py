"""Budgets of feature transformers: how much each keeps of the input."""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd
from sklearn.base import clone
from sklearn.utils.validation import check_is_fitted

__all__ = ["budget_table"]


def budget_table(transformers: dict, X=None) -> pd.DataFrame:
    """One row per transformer: its reduction and the bits its integer output spends.

    Parameters
    ----------
    transformers : dict of str -> transformer
        Fitted transformers, or unfitted ones together with ``X`` (clones are fitted on it).
    X : array-like, default=None
        Data to fit unfitted transformers on.

    Returns
    -------
    pandas.DataFrame
        Indexed by name, with ``reduction`` (input samples per output value),
        ``bits_per_code`` (bits of one quantized output value, before entropy coding),
        ``bits_per_sample`` (``bits_per_code / reduction``: bits per input sample),
        ``latent_shape`` and ``quantize`` (whether ``transform`` returns the integers).

    Examples
    --------
    >>> import numpy as np
    >>> from walloc_features.features import matched_baselines
    >>> from walloc_features.evaluation import budget_table
    >>> X = np.random.default_rng(0).integers(0, 256, (300, 1, 32, 32), dtype=np.uint8)
    >>> table = budget_table(matched_baselines(16, "image", random_state=0), X)
    >>> table["reduction"].tolist()
    [16.0, 16.0, 16.0, 16.0]
    """
    if not isinstance(transformers, Mapping):
        raise TypeError(f"transformers must be a dict of name -> transformer, got {type(transformers).__name__}")
    if not transformers:
        raise ValueError("transformers is empty: give at least one name -> transformer")
    rows = {}
    for name, transformer in transformers.items():
        if not all(hasattr(transformer, m) for m in ("fit", "transform", "get_params")):  # a model, or a name
            raise TypeError(
                f"{name!r} is a {type(transformer).__name__}, not a transformer (fit and transform): budget_table "
                "reads what a transformer's codes cost, e.g. WaLLoCTransformer(reduction=16)"
            )
        try:
            check_is_fitted(transformer)
        except Exception:
            if X is None:
                raise ValueError(f"{name!r} is not fitted; pass X to fit it") from None
            transformer = clone(transformer).fit(X)
        if not hasattr(transformer, "bits_per_code_"):
            raise TypeError(f"{name!r} ({type(transformer).__name__}) reports no bits_per_code_: it emits no codes")
        rows[name] = {
            "reduction": transformer.reduction_,
            "bits_per_code": transformer.bits_per_code_,
            "bits_per_sample": transformer.bits_per_code_ / transformer.reduction_,
            "latent_shape": tuple(transformer.latent_shape_),
            "quantize": bool(getattr(transformer, "quantize", False)),
        }
    return pd.DataFrame.from_dict(rows, orient="index")
