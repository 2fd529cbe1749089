"""``walloc-features``: the command line of the benchmark suite.

``walloc-features benchmark`` trains the preset's pipelines over training-set sizes and writes a
report (CSV, PNG plots, Markdown); ``walloc-features rd`` measures the codecs' rate-distortion
(CompressAI-style JSON and a plot). Both work offline on the built-in data (embedded digits,
speech synthesised locally):

    walloc-features benchmark --preset quick --dataset mnist --dataset speech_commands --out report
    walloc-features rd --dataset mnist --out report

Exit status: 0 on success, 2 for bad arguments (with usage), 1 when the run fails (message on
standard error).
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np

from . import __version__

__all__ = ["main", "build_parser", "load_dataset"]

DATASETS = ("mnist", "speech_commands")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (subcommands ``benchmark`` and ``rd``)."""
    parser = argparse.ArgumentParser(
        prog="walloc-features", description="Compressed-domain learning benchmarks: accuracy against data and "
        "compute budgets, and rate-distortion, on the embedded data or your own folders.",
    )  # fmt: skip
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="{benchmark,rd}")

    def common(sub, quick):
        sub.add_argument("--preset", choices=("quick", "full"), default="quick",
                         help=f"quick: {quick} on 2 CPU cores for both built-in datasets; full: longer")
        sub.add_argument("--dataset", action="append", type=_dataset, metavar="{mnist,speech_commands,PATH}",
                         help="built-in dataset name or a folder with one subfolder per class (repeatable; "
                              "default: mnist)")
        sub.add_argument("--out", type=Path, default=Path("walloc-report"), help="output directory (default: "
                         "walloc-report)")
        sub.add_argument("--image-size", type=_positive_int, default=64,
                         help="folder datasets: images are resized and centre-cropped to this size")
        sub.add_argument("--sample-rate", type=_positive_int, default=16000, help="folder datasets: audio rate")
        sub.add_argument("--duration", type=_positive_float, default=1.0,
                         help="folder datasets: seconds of audio kept per clip (longer clips are cut, shorter padded)")
        sub.add_argument("--skip-unreadable", action="store_true",
                         help="folder datasets: leave out files that do not decode (one warning lists them) "
                              "instead of stopping")
        sub.add_argument("--quiet", action="store_true", help="no progress bars or status lines (results still print)")
        sub.add_argument("--seed", type=_seed, default=0,
                         help="random_state of splits and models")  # fmt: skip

    bench = commands.add_parser("benchmark", help="accuracy against training-set size and compute")
    common(bench, "about 2 minutes")
    bench.add_argument("--repeats", type=_positive_int, help="repeats per training-set size (preset's default)")
    bench.add_argument("--n-jobs", type=_n_jobs, default=1, help="parallel grid cells (joblib); -1: all cores")
    bench.add_argument("--cache", type=Path, help="directory caching encoded features between runs")
    bench.set_defaults(func=_benchmark)

    rd = commands.add_parser("rd", help="rate-distortion of WaLLoC and the baselines")
    common(rd, "about 10 seconds")
    rd.set_defaults(func=_rate_distortion)
    return parser


def main(argv=None) -> int:
    """Run the command line; returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        # every folder is checked before any is made: a refused option leaves nothing behind
        reports = ("rd",) if args.command == "rd" else ()
        reports_of = [args.out / name for _, name in _named(args.dataset)]  # each dataset's report folder
        # (option, value, folders it puts in place, folders written)
        folders = [("--out", args.out, reports_of, [folder.joinpath(*reports) for folder in reports_of])]
        if getattr(args, "cache", None) is not None:  # joblib failed deep in its store, naming neither option nor why
            args.cache = args.cache.expanduser()  # as joblib reads it: "~/dir" is no folder named "~" here
            folders.append(("--cache", args.cache, [args.cache], [args.cache]))
        for option, given, placed, written in folders:
            _check_outside_datasets(option, given, placed, args.dataset or [])
            for folder in written:  # (an existing read-only folder, a file or a dangling link on the way)
                _check_writable(option, given, folder)
        for option, given, _, _ in folders:  # an unusable folder fails now, not after the run
            try:
                given.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise ValueError(f"{option} {given} cannot be made a directory: {exc.strerror or exc}") from exc
        args.func(args)
    except (ValueError, TypeError, OSError, ImportError, RuntimeError) as exc:
        notes = "".join(f"\n  ({note})" for note in getattr(exc, "__notes__", []))  # e.g. the benchmark cell
        print(f"walloc-features: error: {exc}{notes}", file=sys.stderr)
        return 1
    return 0


def _check_outside_datasets(option: str, given: Path, targets, datasets) -> None:
    """Refuse a folder we write (``--out``, a dataset's ``--out/<name>``, ``--cache``) inside a folder dataset:
    created before loading, or left by an earlier run, it would be read as a class folder, then and ever after."""
    folders = {d: Path(d).resolve() for d in datasets if d not in DATASETS}
    what = "reports" if option == "--out" else "its files"
    for target in dict.fromkeys([Path(given), *targets]):
        for dataset, folder in folders.items():
            if target.resolve().is_relative_to(folder):
                raise ValueError(f"{option} {given} puts {what} ({target}) inside the dataset folder {dataset}: "
                                 "write them elsewhere")  # fmt: skip


def _check_writable(option: str, given: Path, folder: Path) -> None:
    """Refuse, before the run, a ``folder`` that could not be made or written (mkdir succeeds on an existing
    read-only directory): a benchmark found out only when writing its report, its cells' work lost."""
    existing = folder
    prefix = f"{option} {given}: " if option else ""
    while not os.path.lexists(existing):  # (a dangling link exists: mkdir would fail on it)
        existing = existing.parent
    if not existing.is_dir():
        kind = "a link to nothing" if existing.is_symlink() and not existing.exists() else "a file"
        raise ValueError(f"{prefix}{existing} is {kind}, so {folder} cannot be made")
    try:
        tempfile.TemporaryFile(dir=existing).close()  # a probe: permissions, read-only mounts and ACLs alike
    except OSError as exc:
        raise ValueError(f"{prefix}{existing} cannot be written ({exc.strerror or exc})") from exc


# ----------------------------------------------------------------------------- commands --
def _benchmark(args) -> None:
    from .evaluation.presets import PRESETS

    preset = PRESETS[args.preset]
    with warnings.catch_warnings():  # (a filter of its own: main() called from Python leaves the caller's as they were)
        # The smallest budgets are too small for a validation split; the report shows their size.
        warnings.filterwarnings("ignore", message="early stopping turned off", category=UserWarning)
        _benchmark_datasets(args, preset)


def _benchmark_datasets(args, preset) -> None:
    from .evaluation import run_benchmark
    from .evaluation.presets import benchmark_pipelines
    from .evaluation.reports import summarize, write_report

    for dataset, name in _named(args.dataset):
        X, y, groups, modality, _ = load_dataset(dataset, preset, args)
        pipelines = benchmark_pipelines(modality, preset, random_state=args.seed)
        _say(args, f"{name}: {len(X)} {modality} samples, {len(pipelines)} pipelines, preset {preset.name}")
        results = run_benchmark(
            X, y, pipelines, train_sizes=preset.train_sizes, n_repeats=args.repeats or preset.n_repeats,
            test_size=preset.test_size, groups=groups, random_state=args.seed, n_jobs=args.n_jobs,
            memory=args.cache, verbose=not args.quiet,
        )  # fmt: skip
        paths = write_report(results, args.out / name, title=f"{name} ({preset.name} preset)")
        table = summarize(results).pivot(index="pipeline", columns="train_size", values="accuracy")
        print(f"\n{name}: test accuracy by training-set size\n{table.round(4).to_string()}")
        print(f"report: {paths['report']}")


def _rate_distortion(args) -> None:
    from .evaluation.benchmark import _test_split
    from .evaluation.presets import PRESETS
    from .evaluation.rate_distortion import default_codecs, rate_distortion, save_rate_distortion
    from .evaluation.reports import plot_rate_distortion

    preset = args.preset
    for dataset, name in _named(args.dataset):
        X, y, groups, modality, _ = load_dataset(dataset, PRESETS[preset], args)
        if len(X) < 20:
            raise ValueError(f"{name} has {len(X)} samples; rate-distortion needs at least 20 (fit and evaluate)")
        n_eval = min(200 if preset == "quick" else 1000, len(X) // 2)
        if groups is None:
            order = np.random.default_rng(args.seed).permutation(len(X))  # folders come sorted by class
            fit, evaluate = X[order[n_eval:]], X[order[:n_eval]]
        else:  # whole speakers held out, as benchmark's test set is
            fit, evaluate = (X[index] for index in _test_split(y, groups, n_eval, args.seed))
        reductions = (4, 16) if preset == "quick" else (4, 8, 16, 32)
        apart = "" if groups is None else f" by speakers other than those of the {len(fit)} the codecs are fitted on"
        _say(args, f"{name}: rate-distortion of {len(evaluate)} {modality} samples{apart} at {reductions}")
        codecs = default_codecs(modality, reductions=reductions, random_state=args.seed)
        results = rate_distortion(codecs, evaluate, X_fit=fit)
        directory = args.out / name / "rd"
        save_rate_distortion(results, directory, replace=True)  # the folder is this command's: no stale codecs
        plot = plot_rate_distortion(results, directory / "rate_distortion.png", title=f"{name} rate-distortion")
        for codec in results:
            values = codec["results"]
            points = ", ".join(f"{b:.3g} b/s: {p:.2f} dB" for b, p in
                               zip(values["bits_per_sample"], values["psnr"], strict=True))  # fmt: skip
            print(f"{name} {codec['name']}: {points}")
        print(f"plot: {plot}")


# ------------------------------------------------------------------------------ datasets --
def load_dataset(dataset: str, preset, args=None):
    """``(X, y, groups, modality, name)`` for an embedded dataset name or a class-folder path.

    ``preset`` is a :class:`~walloc_features.evaluation.presets.Preset` or its name ("quick", "full").

    Examples
    --------
    >>> from walloc_features.evaluation.presets import PRESETS
    >>> X, y, groups, modality, name = load_dataset("mnist", PRESETS["quick"])
    >>> X.shape, modality, groups is None
    ((3000, 28, 28), 'image', True)
    """
    from .evaluation.presets import get_preset

    preset = get_preset(preset)
    if dataset == "mnist":
        from .datasets import load_mnist

        X, y = load_mnist()
        return X[: preset.mnist_samples], y[: preset.mnist_samples], None, "image", "mnist"
    if dataset == "speech_commands":
        from .datasets import load_speech_commands

        audio, labels, speakers = load_speech_commands(n_speakers=preset.speech_speakers)
        return audio, labels, speakers, "audio", "speech_commands"
    path = Path(dataset)
    modality = _folder_modality(path)
    on_error = "skip" if getattr(args, "skip_unreadable", False) else "raise"
    if modality == "image":
        from .datasets import load_image_folder

        X, y = load_image_folder(path, size=getattr(args, "image_size", 64), on_error=on_error)
    else:
        from .datasets import load_audio_folder

        X, y = load_audio_folder(path, sample_rate=getattr(args, "sample_rate", 16000),
                                 duration=getattr(args, "duration", 1.0), on_error=on_error)  # fmt: skip
    return X, y, None, modality, path.resolve().name or "dataset"


def _folder_modality(path: Path) -> str:
    """Image or audio folder, by the files the folder loaders would read in its class subfolders."""
    from .datasets.folders import AUDIO_EXTENSIONS, IMAGE_EXTENSIONS, _class_files

    classes = [d for d in path.iterdir() if d.is_dir() and not d.name.startswith(".")]
    images = sum(len(_class_files(d, IMAGE_EXTENSIONS)) for d in classes)
    audio = sum(len(_class_files(d, AUDIO_EXTENSIONS)) for d in classes)
    if not images and not audio:
        raise ValueError(f"{path} has no image or audio files in class subfolders (<path>/<class>/<file>)")
    return "image" if images >= audio else "audio"


def _named(datasets) -> list[tuple[str, str]]:
    """``(dataset, output name)`` pairs; names are made unique so no report overwrites another."""
    named, taken = [], set()
    for dataset in datasets or ["mnist"]:
        base = dataset if dataset in DATASETS else (Path(dataset).resolve().name or "dataset")
        name, count = base, 1
        while name in taken:  # a folder may itself be called "mnist-2"
            count += 1
            name = f"{base}-{count}"
        taken.add(name)
        named.append((dataset, name))
    return named


# ----------------------------------------------------------------------------- arguments --
def _dataset(value: str) -> str:
    if value in DATASETS or (value and Path(value).is_dir()):  # ("" is the working folder to Path)
        return value
    raise argparse.ArgumentTypeError(f"{value!r} is neither {' nor '.join(DATASETS)} nor an existing folder")


def output_directory(value: str) -> Path:
    """An argparse type for a folder a script writes to: made at once, so a file or an unwritable place in its
    way fails before the work, not after it (the examples' ``--out``).

    Examples
    --------
    >>> import argparse, tempfile
    >>> parser = argparse.ArgumentParser()
    >>> _ = parser.add_argument("--out", type=output_directory, default="report")
    >>> folder = tempfile.mkdtemp()
    >>> parser.parse_args(["--out", f"{folder}/runs/1"]).out.is_dir()
    True
    """
    path = Path(value).expanduser()
    try:
        _check_writable("", path, path)
        path.mkdir(parents=True, exist_ok=True)
    except (ValueError, OSError) as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return path


def _number(convert, accept, expected: str, refusal: str | None = None):
    """An argparse type: ``convert`` the text, keep it if ``accept``s it, else say what was expected."""

    def parse(value: str):
        try:
            number = convert(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {expected}, got {value!r}") from None
        if not accept(number):
            raise argparse.ArgumentTypeError(refusal or f"expected {expected}, got {value!r}")
        return number

    return parse


_positive_int = _number(int, lambda n: n >= 1, "a positive integer")
_seed = _number(int, lambda n: 0 <= n < 2**32, "an integer from 0 to 2**32 - 1 (a numpy seed)")
_positive_float = _number(float, lambda n: 0 < n < math.inf, "a positive number")
_n_jobs = _number(int, lambda n: n != 0, "an integer",
                  "--n-jobs 0 runs nothing; use 1 (serial), N cores, or -1 (all cores)")  # fmt: skip


def _say(args, message: str) -> None:
    if not args.quiet:
        print(message, file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
