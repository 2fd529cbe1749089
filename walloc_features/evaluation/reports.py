"""Reports of benchmark and rate-distortion results: PNG plots, a Markdown summary, the raw CSV.

Plots use matplotlib's non-interactive Agg backend (no display needed).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from .._files import TMP_PREFIX, unlink_quietly
from .._warnings import warn

__all__ = [
    "summarize", "pareto_front", "plot_data_budget", "plot_compute_budget", "plot_rate_distortion", "write_report",
]  # fmt: skip


def summarize(results: pd.DataFrame) -> pd.DataFrame:
    """Mean and sample standard deviation (``ddof=1``) of accuracy over repeats, per pipeline and training-set size.

    A repeat that failed (NaN accuracy, ``run_benchmark(error_score=np.nan)``) makes its cell's mean NaN,
    a gap in tables and plots, rather than an average over the repeats that happened to succeed.

    ``repeats`` counts the rows averaged, failed ones included (results of several runs concatenated
    count each run's repeats). Also carries the per-pipeline costs: feature_dim, reduction, bits_per_sample and encode
    FLOPs (the same in every cell), and the means of model FLOPs per sample, total GFLOPs and
    fit seconds.

    Examples
    --------
    >>> import pandas as pd
    >>> results = pd.DataFrame({"pipeline": ["a", "a"], "train_size": [100, 100], "repeat": [0, 1],
    ...                         "accuracy": [0.8, 0.9], "total_gflops": [1.0, 1.0]})
    >>> summarize(results)[["pipeline", "train_size", "accuracy", "repeats"]]
      pipeline  train_size  accuracy  repeats
    0        a         100      0.85        2
    """
    _check_results(results)
    results = results.assign(**{c: np.nan for c in _COST_COLUMNS if c not in results.columns})
    grouped = results.groupby(["pipeline", "train_size"], sort=False)
    summary = grouped.agg(
        accuracy=("accuracy", _mean), accuracy_std=("accuracy", _std), f1_macro=("f1_macro", _mean),
        feature_dim=("feature_dim", "first"), reduction=("reduction", "first"),
        bits_per_sample=("bits_per_sample", "first"), encode_flops_per_sample=("encode_flops_per_sample", "first"),
        model_flops_per_sample=("model_flops_per_sample", "mean"), total_gflops=("total_gflops", "mean"),
        fit_seconds=("fit_seconds", "mean"), repeats=("repeat", "size"),
    )  # fmt: skip
    single = summary["accuracy"].notna() & summary["accuracy_std"].isna()  # one repeat: no spread (a gap stays NaN)
    summary.loc[single, "accuracy_std"] = 0.0
    return summary.reset_index()


def _mean(values: pd.Series) -> float:
    return values.mean(skipna=False)  # a failed repeat (NaN) is a gap, not left out


def _std(values: pd.Series) -> float:
    return values.std(skipna=False)


#: Cost columns of run_benchmark's table that summaries carry (NaN when a table lacks them).
_COST_COLUMNS = ("f1_macro", "feature_dim", "reduction", "bits_per_sample", "encode_flops_per_sample",
                 "model_flops_per_sample", "fit_seconds")  # fmt: skip


def pareto_front(compute: np.ndarray, accuracy: np.ndarray) -> np.ndarray:
    """Indices of the points no other point beats (at most the compute and at least the accuracy, one of
    them strictly), by compute; equal points are all on the front.

    Examples
    --------
    >>> pareto_front(np.array([1.0, 2.0, 3.0, 4.0]), np.array([0.5, 0.4, 0.8, 0.7])).tolist()
    [0, 2]
    """
    compute, accuracy = np.asarray(compute, dtype=float), np.asarray(accuracy, dtype=float)
    order = np.lexsort((-accuracy, compute))  # cheapest first; the more accurate of equal cost first
    front, best = [], -np.inf
    for i in order:
        if not np.isfinite(compute[i]):
            continue
        last = front[-1] if front else None
        if accuracy[i] > best or (last is not None and (compute[i], accuracy[i]) == (compute[last], accuracy[last])):
            front.append(int(i))
            best = accuracy[i]
    return np.asarray(front, dtype=int)


def plot_data_budget(results: pd.DataFrame, path, *, title: str | None = None) -> Path:
    """Accuracy against training-set size, one line per pipeline (band: +-1 std over repeats)."""
    summary = summarize(results)
    fig, ax = _figure(7, 4.5)
    for name, rows in summary.groupby("pipeline", sort=False):
        rows = rows.sort_values("train_size")  # results concatenated or re-sorted would zigzag
        line = ax.plot(rows.train_size, rows.accuracy, marker="o", label=name)[0]
        ax.fill_between(rows.train_size, rows.accuracy - rows.accuracy_std, rows.accuracy + rows.accuracy_std,
                        color=line.get_color(), alpha=0.15, linewidth=0)  # fmt: skip
    if np.isfinite(summary.accuracy).any():
        ax.set_xscale("log")
    else:  # every cell failed (run_benchmark's error_score=nan): nothing to scale
        ax.text(0.5, 0.5, "no pipeline has a finite accuracy", ha="center", va="center", transform=ax.transAxes)
    ax.set_xlabel("training-set size (samples)")
    ax.set_ylabel("test accuracy")
    ax.set_title(title or "Accuracy against data budget")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="best")
    return _save(fig, path)


def plot_compute_budget(results: pd.DataFrame, path, *, title: str | None = None) -> Path:
    """Accuracy against total training compute (GFLOPs, log scale), the Pareto front marked.

    A pipeline without a known FLOP count (a model torch's counter and the linear-model rule cannot count,
    e.g. a random forest), or one that failed in every cell (``run_benchmark(error_score=np.nan)``), has no
    place on the axis: it is left out with a warning naming it and why, and named in a note under the plot.
    """
    summary = summarize(results)
    known = summary[np.isfinite(summary.total_gflops) & (summary.total_gflops > 0)]
    unknown = [name for name in summary.pipeline.unique() if name not in set(known.pipeline)]
    failed = [name for name in unknown if results.accuracy[results.pipeline == name].isna().all()]  # every row
    uncounted = [name for name in unknown if name not in failed]
    notes = [(uncounted, "no FLOP count"), (failed, "failed in every cell")]
    for names, why in notes:
        if names:
            warn(f"plot_compute_budget: {why}: {names} left out of the plot", UserWarning)
    fig, ax = _figure(7, 4.5)
    for name, rows in known.groupby("pipeline", sort=False):
        rows = rows.sort_values("total_gflops")
        ax.plot(rows.total_gflops, rows.accuracy, marker="o", linestyle=":", label=name)
    if len(known):
        front = known.iloc[pareto_front(known.total_gflops.to_numpy(), known.accuracy.to_numpy())]
        ax.step(front.total_gflops, front.accuracy, where="post", color="black", linewidth=1.5, label="Pareto front")
        ax.set_xscale("log")
    else:
        ax.text(0.5, 0.5, "no pipeline has a known FLOP count", ha="center", va="center", transform=ax.transAxes)
    ax.set_xlabel("total compute: encoding the training set + training (GFLOPs)")
    ax.set_ylabel("test accuracy")
    ax.set_title(title or "Accuracy against compute budget")
    ax.grid(True, which="both", alpha=0.3)
    if len(known):
        ax.legend(fontsize=7, loc="best")
    if unknown and len(known):
        note = "; ".join(f"{why}, not shown: {', '.join(map(str, names))}" for names, why in notes if names)
        fig.text(0.01, 0.01, note, fontsize=7)
    return _save(fig, path)


def plot_rate_distortion(
    rd_results: list[dict], path, *, metric: str = "psnr", rate: str = "bits_per_sample", title: str | None = None
) -> Path:
    """Distortion (``metric``, e.g. PSNR dB) against the ``rate``, one line per codec.

    ``rd_results`` are CompressAI-style dicts ``{"name", "results": {metric: [...],
    "bits_per_sample": [...], ...}}`` (see :func:`walloc_features.evaluation.rate_distortion`).
    ``rate="bpp"`` (bits per pixel, all channels, as CompressAI's results files give it; this package's
    image records have it too) puts CompressAI's reference codecs beside ours, with ``metric="psnr-rgb"``
    for colour. A record without the rate or the metric is left out with a warning naming it.
    Rates of two kinds can share the axis, so the legend says which each line is: a codec whose
    record has ``"entropy_coded": true`` is drawn at the size of its compressed blobs (solid), and again
    at its fixed-length rate ``fixed_length_bits_per_sample`` (dotted, same colour), the rate the
    other codecs' fixed-length codes are drawn at.
    """
    if rate not in ("bits_per_sample", "bpp"):
        raise ValueError(f"rate must be 'bits_per_sample' or 'bpp', got {rate!r}")
    fig, ax = _figure(6, 4.5)
    skipped = []
    for codec in rd_results:
        values = codec["results"]
        rates, quality = values.get(rate), values.get(metric)
        if any(v is None or all(x is None for x in v) for v in (rates, quality)):  # (audio records: bpp None)
            skipped.append(str(codec.get("name")))
            continue
        coded = bool(codec.get("entropy_coded"))
        # a record that does not say (CompressAI's reference codecs: real bitstreams) is drawn by its name alone
        kind = {True: " (entropy-coded)", False: " (fixed-length codes)"}.get(codec.get("entropy_coded"), "")
        (line,) = ax.plot(rates, quality, marker="o", label=f"{codec['name']}{kind}")
        fixed = values.get("fixed_length_bits_per_sample")
        if coded and fixed is not None:
            if rate == "bpp":  # the same factor (channels) turns both rates into bits per pixel
                fixed = [f * b / s for f, b, s in zip(fixed, rates, values["bits_per_sample"], strict=True)]
            ax.plot(fixed, quality, marker="o", linestyle=":", color=line.get_color(), markerfacecolor="none",
                    label=f"{codec['name']} (fixed-length codes)")  # fmt: skip
    if skipped:
        warn(f"plot_rate_distortion: no {rate!r} or {metric!r} values in {skipped}: left out of the plot",
             UserWarning)  # fmt: skip
    ax.set_xlabel("bits per input sample" if rate == "bits_per_sample" else "bits per pixel (all channels)")
    ax.set_ylabel({"psnr": "PSNR (dB)", "ssim": "SSIM"}.get(metric, metric))
    ax.set_title(title or "Rate-distortion")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    return _save(fig, path)


def write_report(results: pd.DataFrame, directory, *, title: str = "Benchmark", rd_results=None) -> dict:
    """Write ``results.csv``, the plots and ``report.md`` (tables and plots) into ``directory``.

    Parameters
    ----------
    results : pandas.DataFrame
        Rows of :func:`~walloc_features.evaluation.run_benchmark` (``pipeline``, ``train_size``,
        ``repeat`` and the scores).
    directory : str or path
        Where the files go; made if missing.
    title : str, default="Benchmark"
        Heading of ``report.md``.
    rd_results : list of dict, default=None
        Rate-distortion records (:func:`~walloc_features.evaluation.rate_distortion`), plotted into
        ``rate_distortion.png``, which the report shows.

    Returns
    -------
    dict of str -> pathlib.Path
        ``csv``, ``data_budget``, ``compute_budget``, ``report`` (and ``rate_distortion`` when
        ``rd_results`` are given).

    Examples
    --------
    >>> import tempfile
    >>> import pandas as pd
    >>> results = pd.DataFrame({"pipeline": ["a", "a", "b", "b"], "train_size": [100, 400] * 2,
    ...                         "repeat": 0, "accuracy": [0.7, 0.8, 0.75, 0.9], "total_gflops": [1, 4, 2, 8]})
    >>> with tempfile.TemporaryDirectory() as out:
    ...     sorted(p.name for p in write_report(results, out).values())
    ['accuracy_vs_compute.png', 'accuracy_vs_train_size.png', 'report.md', 'results.csv']
    """
    _check_results(results)
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    # Every file is made in a staging folder, then moved in with report.md last (and the old one removed
    # first): a run that fails or is killed midway leaves the previous report whole, never a new results.csv
    # beside the old report and plots.
    try:
        staging = Path(tempfile.mkdtemp(dir=directory, prefix=f"{TMP_PREFIX}report-"))
    except PermissionError:  # a folder whose files may be rewritten but which takes no new entry: in place
        return _write_report_files(results, directory, title, rd_results)
    try:
        staged = _write_report_files(results, staging, title, rd_results)
        paths = {key: directory / path.name for key, path in staged.items()}
        unlink_quietly(paths["report"])
        for key in sorted(staged, key=lambda key: key == "report"):
            os.replace(staged[key], paths[key])
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return paths


# ------------------------------------------------------------------------------ helpers --
def _write_report_files(results: pd.DataFrame, directory: Path, title: str, rd_results) -> dict:
    """The report's files, written into ``directory`` (report.md last)."""
    paths = {"csv": directory / "results.csv"}
    results.to_csv(paths["csv"], index=False)
    paths["data_budget"] = plot_data_budget(results, directory / "accuracy_vs_train_size.png", title=title)
    paths["compute_budget"] = plot_compute_budget(results, directory / "accuracy_vs_compute.png", title=title)
    if rd_results:
        paths["rate_distortion"] = plot_rate_distortion(rd_results, directory / "rate_distortion.png", title=title)
    paths["report"] = directory / "report.md"
    paths["report"].write_text(_markdown(results, title, paths), encoding="utf-8")
    return paths


def _markdown(results: pd.DataFrame, title: str, paths: dict) -> str:
    """The report: accuracy per size, costs per pipeline, the plots."""
    summary = summarize(results)
    repeated = summary.repeats.max() > 1
    accuracy = summary.assign(
        cell=[_fmt(m, ".4f") + (f" ± {s:.4f}" if r > 1 and np.isfinite(m) else "") for m, s, r in
              zip(summary.accuracy, summary.accuracy_std, summary.repeats, strict=True)]  # fmt: skip
    ).pivot(index="pipeline", columns="train_size", values="cell").fillna("")  # a size a pipeline was not run at
    accuracy = accuracy.loc[summary.pipeline.unique()]
    accuracy.columns = [f"n={c}" for c in accuracy.columns]
    # each pipeline at its own largest size: concatenated runs of other sizes must not lose a pipeline's row
    largest = summary.sort_values("train_size", kind="stable").groupby("pipeline", sort=False).tail(1)
    largest = largest.set_index("pipeline").loc[summary.pipeline.unique()]
    sizes = largest.train_size.unique()
    at = f"n={int(sizes[0])}" if len(sizes) == 1 else "each pipeline's largest n"
    costs = pd.DataFrame({
        "features": largest.feature_dim.map(lambda v: _fmt(v, ".0f")),
        "reduction": largest.reduction.map(lambda v: _fmt(v, ".3g")),
        "bits / sample": largest.bits_per_sample.map(lambda v: _fmt(v, ".3g")),
        "encode kFLOPs / sample": (largest.encode_flops_per_sample / 1e3).map(_fmt),
        "model kFLOPs / sample": (largest.model_flops_per_sample / 1e3).map(_fmt),
        "total GFLOPs": largest.total_gflops.map(_fmt),
        "fit s": largest.fit_seconds.map(lambda v: _fmt(v, ".2f")),
    })  # fmt: skip
    if len(sizes) > 1:
        costs.insert(0, "n", largest.train_size.astype(int))
    attrs = results.attrs
    split = ""
    if "n_pool" in attrs:
        disjoint = ", group-disjoint test set" if attrs.get("group_disjoint") else ""
        split = f"{attrs['n_pool']} pool / {attrs['n_test']} test samples{disjoint}; "
    lines = [
        f"# {title}", "",
        f"{split}{int(summary.repeats.max())} repeat(s) per training-set size; "
        f"{'mean ± sample std (ddof=1) of ' if repeated else ''}test accuracy (a blank cell: failed, or not run).",
        "",
        "## Accuracy against training-set size", "", _table(accuracy, index="pipeline"), "",
        f"## Costs (at {at})", "", _table(costs, index="pipeline"), "",
        "FLOPs: forward pass, 2 per multiply-add (torch's FlopCounterMode; linear models 2 x features x "
        "outputs, one output for two classes); total = encoding the training set + 3 x forward x samples x "
        "epochs. A blank cell: not known (e.g. a model without a FLOP count).", "",
        "## Plots", "",
        f"![accuracy against training-set size]({paths['data_budget'].name})", "",
        f"![accuracy against compute]({paths['compute_budget'].name})", "",
    ]  # fmt: skip
    if "rate_distortion" in paths:
        lines += [f"![rate-distortion]({paths['rate_distortion'].name})", ""]
    lines += [f"Raw results: [{paths['csv'].name}]({paths['csv'].name})", ""]
    return "\n".join(lines)


def _table(frame: pd.DataFrame, *, index: str) -> str:
    """A Markdown table (no extra dependency)."""
    def cell(value) -> str:
        return str(value).replace("|", "\\|")  # a pipe would end the cell

    header = [index, *frame.columns]
    rows = [[i, *row] for i, row in zip(frame.index, frame.to_numpy(), strict=True)]
    out = ["| " + " | ".join(map(cell, header)) + " |", "|" + "---|" * len(header)]
    return "\n".join(out + ["| " + " | ".join(map(cell, r)) + " |" for r in rows])


def _fmt(value, spec: str = ".4g") -> str:
    """A number for a table; blank when unknown (NaN)."""
    return "" if value is None or not np.isfinite(value) else format(value, spec)


def _check_results(results) -> None:
    if not isinstance(results, pd.DataFrame) or results.empty:
        raise ValueError("results must be the non-empty DataFrame run_benchmark returns")
    missing = {"pipeline", "train_size", "repeat", "accuracy", "total_gflops"} - set(results.columns)
    if missing:
        raise ValueError(f"results lack the columns {sorted(missing)}; pass run_benchmark's output")


def _figure(width: float, height: float):
    """A figure and its axes outside pyplot: nothing to close, even when plotting fails, and the caller's
    backend (a notebook's) stays as it was; ``savefig`` renders files without a display."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height))
    return fig, fig.subplots()


def _save(fig, path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    return path
