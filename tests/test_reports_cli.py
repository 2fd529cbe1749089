"""Reports (files written, tables, Pareto front) and the walloc-features command line."""

import json
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from walloc_features.cli import build_parser, main
from walloc_features.evaluation.benchmark import RESULT_COLUMNS
from walloc_features.evaluation.reports import pareto_front, summarize, write_report


@pytest.fixture
def results():
    """A small results table in run_benchmark's shape (two pipelines, two sizes, two repeats)."""
    rows = []
    for pipeline, base, gflops in [("cheap", 0.80, 0.1), ("costly", 0.90, 10.0)]:
        for size in (100, 400):
            for repeat in (0, 1):
                rows.append({
                    "pipeline": pipeline, "features": "F", "classifier": "C", "train_size": size, "repeat": repeat,
                    "accuracy": base + 0.05 * (size == 400) + 0.01 * repeat, "f1_macro": base,
                    "feature_dim": 49, "reduction": 16.0, "bits_per_sample": np.nan,
                    "encode_flops_per_sample": 1e4, "model_flops_per_sample": 1e3, "training_flops": 1e6,
                    "total_gflops": gflops * size / 100, "encode_seconds": 1e-4, "fit_seconds": 0.5,
                    "predict_seconds": 0.01,
                })  # fmt: skip
    table = pd.DataFrame(rows, columns=RESULT_COLUMNS)
    table.attrs.update(n_pool=500, n_test=100)
    return table


def test_summary_averages_repeats(results):
    summary = summarize(results).set_index(["pipeline", "train_size"])
    assert summary.loc[("cheap", 400), "accuracy"] == pytest.approx(0.855)
    assert summary.loc[("cheap", 400), "accuracy_std"] == pytest.approx(np.std([0.85, 0.86], ddof=1))
    assert summary.loc[("costly", 100), "repeats"] == 2


def test_a_failed_repeat_leaves_a_gap_not_an_average_of_the_others(results):
    """run_benchmark(error_score=np.nan) marks a failed cell NaN: its mean must not quietly drop it."""
    failed = results.copy()
    failed.loc[(failed.pipeline == "cheap") & (failed.train_size == 400) & (failed.repeat == 1), "accuracy"] = np.nan
    summary = summarize(failed).set_index(["pipeline", "train_size"])
    assert np.isnan(summary.loc[("cheap", 400), "accuracy"]) and np.isnan(summary.loc[("cheap", 400), "accuracy_std"])
    assert summary.loc[("cheap", 100), "accuracy"] == pytest.approx(0.805)
    single = summarize(results[results.repeat == 0]).set_index(["pipeline", "train_size"])
    assert single.loc[("cheap", 100), "accuracy_std"] == 0.0  # one repeat: no spread


def test_a_failed_cell_is_a_blank_in_the_report_not_nan(results, tmp_path):
    failed = results.copy()
    failed.loc[(failed.pipeline == "cheap") & (failed.train_size == 400) & (failed.repeat == 1), "accuracy"] = np.nan
    report = write_report(failed, tmp_path)["report"].read_text()
    assert "| cheap | 0.8050 ± 0.0071 |  |" in report and "nan" not in report


def test_a_run_whose_every_cell_failed_still_gets_its_report(results, tmp_path):
    """run_benchmark(error_score=np.nan) with every fit failing: matplotlib's "cannot be log-scaled" lost the report."""
    failed = results.assign(accuracy=np.nan, total_gflops=np.nan)
    with pytest.warns(UserWarning, match=r"failed in every cell: \['cheap', 'costly'\] left out"):
        written = write_report(failed, tmp_path)
    assert written["report"].is_file() and "nan" not in written["report"].read_text()


def test_the_costs_table_keeps_a_pipeline_run_at_other_sizes(results, tmp_path):
    """Results of two runs concatenated: the pipeline never run at n=400 keeps its row, at its own largest n."""
    other = results[results.pipeline == "cheap"].assign(pipeline="other run", train_size=lambda t: t.train_size // 4)
    report = write_report(pd.concat([results, other], ignore_index=True), tmp_path)["report"].read_text()
    costs = report[report.index("## Costs (at each pipeline's largest n)"):report.index("## Plots")]
    assert "| other run | 100 | 49 |" in costs and "| cheap | 400 | 49 |" in costs
    assert "| other run | 0.8050 ± 0.0071 | 0.8550 ± 0.0071 |  |" in report and "nan" not in report
    assert "## Costs (at n=400)" in write_report(results, tmp_path / "one")["report"].read_text()


def test_pipelines_without_a_flop_count_are_named_not_silently_dropped_from_the_compute_plot(
    results, tmp_path, monkeypatch
):
    from walloc_features.evaluation import reports

    figures = []
    monkeypatch.setattr(reports, "_save", lambda fig, path: figures.append(fig) or Path(path))
    uncounted = results.copy()
    uncounted.loc[uncounted.pipeline == "costly", "total_gflops"] = np.nan  # e.g. a random forest
    with pytest.warns(UserWarning, match=r"no FLOP count: \['costly'\] left out of the plot"):
        reports.plot_compute_budget(uncounted, tmp_path / "b.png")
    labels = {line.get_label() for line in figures[0].axes[0].get_lines()}
    assert labels == {"cheap", "Pareto front"}
    assert [t.get_text() for t in figures[0].texts] == ["no FLOP count, not shown: costly"]


def test_pareto_front_keeps_only_undominated_points():
    compute = np.array([1.0, 2.0, 2.0, 5.0, 8.0])
    accuracy = np.array([0.7, 0.65, 0.8, 0.75, 0.9])
    assert pareto_front(compute, accuracy).tolist() == [0, 2, 4]
    assert pareto_front(np.array([1.0, 1.0, 2.0]), np.array([0.5, 0.5, 0.5])).tolist() == [0, 1]  # neither beats


def test_a_failed_pipeline_is_named_as_failed_not_as_uncounted(results, tmp_path, monkeypatch):
    from walloc_features.evaluation import reports

    figures = []
    monkeypatch.setattr(reports, "_save", lambda fig, path: figures.append(fig) or Path(path))
    failed = results.copy()
    failed.loc[failed.pipeline == "costly", ["accuracy", "total_gflops"]] = np.nan
    with pytest.warns(UserWarning, match=r"failed in every cell: \['costly'\]"):
        reports.plot_compute_budget(failed, tmp_path / "b.png")
    assert [t.get_text() for t in figures[0].texts] == ["failed in every cell, not shown: costly"]
    once = results.copy()  # a forest (no FLOP count) whose second repeat failed: a NaN mean, not a failed pipeline
    once.loc[once.pipeline == "costly", "total_gflops"] = np.nan
    once.loc[(once.pipeline == "costly") & (once.repeat == 1), "accuracy"] = np.nan
    with pytest.warns(UserWarning, match=r"no FLOP count: \['costly'\]"):
        reports.plot_compute_budget(once, tmp_path / "c.png")


def test_repeats_count_every_row_averaged_of_concatenated_runs(results):
    twice = summarize(pd.concat([results, results], ignore_index=True)).set_index(["pipeline", "train_size"])
    assert twice.loc[("cheap", 400), "repeats"] == 4  # the mean and std are over 4 rows, not the 2 repeat ids
    assert twice.loc[("cheap", 400), "accuracy_std"] == pytest.approx(np.std([0.85, 0.86, 0.85, 0.86], ddof=1))


def test_report_writes_csv_plots_and_markdown(results, tmp_path):
    rd = [{"name": "WaLLoC", "results": {"psnr": [20.0, 25.0], "bits_per_sample": [0.5, 2.0]}}]
    paths = write_report(results, tmp_path / "out", title="Digits", rd_results=rd)
    for key in ("csv", "data_budget", "compute_budget", "rate_distortion", "report"):
        assert paths[key].exists() and paths[key].stat().st_size > 0
    assert paths["data_budget"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    pd.testing.assert_frame_equal(pd.read_csv(paths["csv"]), results, check_dtype=False)
    report = paths["report"].read_text()
    assert report.startswith("# Digits")
    assert "| cheap | 0.8050 ± 0.0071 | 0.8550 ± 0.0071 |" in report
    assert "(accuracy_vs_train_size.png)" in report and "(rate_distortion.png)" in report


def test_a_report_that_fails_midway_leaves_the_previous_one_whole(results, tmp_path, monkeypatch):
    """A re-run killed in its plots left the new results.csv beside the old report.md and plots, which read as one
    report of two runs."""
    from walloc_features.evaluation import reports

    out = tmp_path / "out"
    write_report(results, out)
    before = {p.name: p.read_bytes() for p in out.iterdir()}

    def failing(*args, **kwargs):
        raise RuntimeError("killed while plotting")

    monkeypatch.setattr(reports, "plot_compute_budget", failing)
    with pytest.raises(RuntimeError, match="killed while plotting"):
        write_report(results.assign(accuracy=0.5), out)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # no staging folder left either
    monkeypatch.undo()
    paths = write_report(results.assign(accuracy=0.5), out)
    assert sorted(p.name for p in out.iterdir()) == sorted(before) and set(paths.values()) == set(out.iterdir())
    assert (pd.read_csv(paths["csv"]).accuracy == 0.5).all() and "0.5000" in paths["report"].read_text()


def test_a_report_folder_that_takes_no_new_entry_is_rewritten_in_place(results, tmp_path, monkeypatch):
    """A folder whose files may be rewritten but which takes no new entry (mode 0555, files 0666) had its report
    rewritten before the staging folder came; it must still be."""
    from walloc_features.evaluation import reports

    out = tmp_path / "out"
    write_report(results, out)

    def no_new_entry(*args, **kwargs):
        raise PermissionError(13, "Permission denied", str(out))

    monkeypatch.setattr(reports.tempfile, "mkdtemp", no_new_entry)
    paths = write_report(results.assign(accuracy=0.5), out)
    assert (pd.read_csv(paths["csv"]).accuracy == 0.5).all() and "0.5000" in paths["report"].read_text()


def test_plotting_leaves_the_callers_matplotlib_as_it_was_even_when_it_fails(results, tmp_path):
    """Every plot switched the process to the Agg backend (a notebook's plt.show() then showed nothing), and a plot
    that failed left its figure open in pyplot (25 failures: 'More than 20 figures have been opened')."""
    import matplotlib
    import matplotlib.pyplot as plt

    from walloc_features.evaluation.reports import plot_rate_distortion

    backend = matplotlib.get_backend()
    matplotlib.use("svg")
    try:
        figures = plt.get_fignums()
        write_report(results, tmp_path / "out")
        bad = [{"name": "uneven", "results": {"psnr": [20.0, 25.0], "bits_per_sample": [0.5]}}]
        for _ in range(3):
            with pytest.raises(ValueError):
                plot_rate_distortion(bad, tmp_path / "rd.png")
        assert matplotlib.get_backend() == "svg" and plt.get_fignums() == figures
    finally:
        matplotlib.use(backend)


def test_quiet_runs_start_no_progress_bar_thread_and_main_leaves_the_warning_filters(tmp_path, monkeypatch):
    """A disabled tqdm bar (verbose=False) still started tqdm's monitor thread, which outlived the call; main()
    left its 'early stopping turned off' filter in the caller's process."""
    from walloc_features import cli

    code = (
        "import threading, numpy as np\n"
        "from sklearn.linear_model import LogisticRegression\n"
        "from sklearn.pipeline import make_pipeline\n"
        "from walloc_features import RawSignal\n"
        "from walloc_features.evaluation import run_benchmark\n"
        "X = np.random.default_rng(0).random((60, 8, 8)); y = np.arange(60) % 2\n"
        "run_benchmark(X, y, {'raw': make_pipeline(RawSignal(), LogisticRegression())}, train_sizes=[20], "
        "n_repeats=1)\n"
        "print(sorted(t.name for t in threading.enumerate()))\n"
    )
    threads = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert threads.returncode == 0, threads.stderr
    assert "tqdm" not in threads.stdout, threads.stdout

    filters = list(warnings.filters)
    def unreadable(*args, **kwargs):
        raise ValueError("a folder that cannot be read")

    monkeypatch.setattr(cli, "load_dataset", unreadable)
    assert cli.main(["benchmark", "--out", str(tmp_path), "--quiet"]) == 1
    assert warnings.filters == filters


def test_rate_distortion_plot_says_which_rate_each_line_is(tmp_path, monkeypatch):
    """An entropy-coded codec's blob sizes and the others' fixed-length codes share the axis: the legend
    names each, and the coded codec's fixed-length rate is drawn too, so like can be compared with like."""
    from walloc_features.evaluation import reports

    figures = []
    monkeypatch.setattr(reports, "_save", lambda fig, path: figures.append(fig) or Path(path))
    def record(name, coded, psnr, rate, fixed):
        return {"name": name, "entropy_coded": coded,
                "results": {"psnr": psnr, "bits_per_sample": rate, "fixed_length_bits_per_sample": fixed}}  # fmt: skip

    rd = [record("WaLLoC", True, [15.0, 21.0], [0.57, 1.69], [0.5, 2.0]),
          record("DCT", False, [14.0, 21.0], [0.98, 3.92], [0.98, 3.92])]  # fmt: skip
    reports.plot_rate_distortion(rd, tmp_path / "rd.png")
    ax = figures[0].axes[0]
    lines = {line.get_label(): list(line.get_xdata()) for line in ax.get_lines()}
    assert lines == {"WaLLoC (entropy-coded)": [0.57, 1.69], "WaLLoC (fixed-length codes)": [0.5, 2.0],
                     "DCT (fixed-length codes)": [0.98, 3.92]}  # fmt: skip
    assert "before entropy coding" not in ax.get_xlabel()


def test_plots_draw_each_line_in_order_whatever_the_row_order(results, tmp_path, monkeypatch):
    """Concatenated runs or a re-sorted CSV must not zigzag: x grows along every line."""
    from walloc_features.evaluation import reports

    figures = []
    monkeypatch.setattr(reports, "_save", lambda fig, path: figures.append(fig) or Path(path))
    shuffled = results.sample(frac=1, random_state=3)
    reports.plot_data_budget(shuffled, tmp_path / "a.png")
    reports.plot_compute_budget(shuffled, tmp_path / "b.png")
    summary = reports.summarize(shuffled)
    for figure, x_column in zip(figures, ["train_size", "total_gflops"], strict=True):
        for line in figure.axes[0].get_lines():
            if line.get_label() != "Pareto front":
                x = np.asarray(line.get_xdata(), dtype=float)
                assert len(x) == 2 and np.all(np.diff(x) > 0), line.get_label()
                # each accuracy at its own budget (a reversed y passed the check of x alone)
                expected = summary[summary.pipeline == line.get_label()].sort_values(x_column)
                np.testing.assert_allclose(x, expected[x_column])
                np.testing.assert_allclose(np.asarray(line.get_ydata(), dtype=float), expected.accuracy)


def test_rate_distortion_plot_in_bits_per_pixel_beside_compressai_files(tmp_path, monkeypatch):
    """CompressAI's results files give bpp, not bits per sample: rate="bpp" draws them; a record lacking the
    rate asked for is left out with a warning that names it, not silently."""
    from walloc_features.evaluation import reports

    figures = []
    monkeypatch.setattr(reports, "_save", lambda fig, path: figures.append(fig) or Path(path))
    ours = {"name": "WaLLoC", "entropy_coded": True, "results": {
        "psnr-rgb": [25.0, 30.0], "bits_per_sample": [0.1, 0.4], "bpp": [0.3, 1.2],
        "fixed_length_bits_per_sample": [0.125, 0.5]}}  # fmt: skip
    jpeg = {"name": "JPEG", "results": {"psnr-rgb": [24.0, 31.0], "bpp": [0.4, 1.5]}}  # CompressAI's layout
    reports.plot_rate_distortion([ours, jpeg], tmp_path / "bpp.png", metric="psnr-rgb", rate="bpp")
    lines = {line.get_label(): list(line.get_xdata()) for line in figures[-1].axes[0].get_lines()}
    assert lines == {"WaLLoC (entropy-coded)": [0.3, 1.2], "WaLLoC (fixed-length codes)": pytest.approx([0.375, 1.5]),
                     "JPEG": [0.4, 1.5]}  # fmt: skip (fixed-length: x 3 channels too; JPEG's file says neither)
    assert figures[-1].axes[0].get_xlabel() == "bits per pixel (all channels)"
    with pytest.warns(UserWarning, match=r"no 'bits_per_sample' or 'psnr-rgb' values in \['JPEG'\]"):
        reports.plot_rate_distortion([ours, jpeg], tmp_path / "bps.png", metric="psnr-rgb")
    with pytest.raises(ValueError, match="rate must be"):
        reports.plot_rate_distortion([ours], tmp_path / "x.png", rate="kbps")


def test_report_refuses_what_is_not_a_benchmark_table(tmp_path):
    with pytest.raises(ValueError, match="non-empty"):
        write_report(pd.DataFrame(), tmp_path)
    with pytest.raises(ValueError, match="lack the columns"):
        write_report(pd.DataFrame({"pipeline": ["a"]}), tmp_path)


# ---------------------------------------------------------------------------------- CLI --
@pytest.mark.parametrize(
    "argv, message",
    [
        (["benchmark", "--preset", "huge"], "invalid choice: 'huge'"),
        (["benchmark", "--dataset", "imagenet"], "neither mnist nor speech_commands nor an existing folder"),
        (["benchmark", "--repeats", "0"], "expected a positive integer"),
        (["benchmark", "--n-jobs", "0"], "--n-jobs 0 runs nothing"),
        (["rd", "--seed", "-1"], "expected an integer from 0 to 2**32 - 1"),
        (["rd", "--seed", str(2**32)], "expected an integer from 0 to 2**32 - 1"),
        (["benchmark", "--seed", str(2**32)], "expected an integer from 0 to 2**32 - 1"),
        (["rd", "--duration", "0"], "expected a positive number"),
        (["rd", "--duration", "inf"], "expected a positive number"),
        (["frobnicate"], "invalid choice: 'frobnicate'"),
        ([], "required"),
    ],
)
def test_bad_arguments_exit_2_with_a_message(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args(argv)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_version_and_each_commands_help_say_what_a_user_needs(capsys):
    import walloc_features

    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.strip() == f"walloc-features {walloc_features.__version__}"
    for command, quick in (("benchmark", "about 2 minutes"), ("rd", "about 10 seconds")):
        with pytest.raises(SystemExit):
            build_parser().parse_args([command, "--help"])
        text = " ".join(capsys.readouterr().out.split())  # argparse wraps lines
        assert f"quick: {quick} on 2 CPU cores" in text and "(default: walloc-report)" in text


def test_a_failing_run_exits_1_and_says_why(tmp_path, capsys):
    (tmp_path / "data" / "cats").mkdir(parents=True)
    (tmp_path / "data" / "cats" / "notes.txt").write_text("no images here")
    assert main(["benchmark", "--dataset", str(tmp_path / "data"), "--out", str(tmp_path / "out"), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "walloc-features: error:" in err and "has no image or audio files in class subfolders" in err


def test_an_unusable_output_directory_fails_before_any_work(tmp_path, capsys, monkeypatch):
    from walloc_features import cli

    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    monkeypatch.setattr(cli, "load_dataset", lambda *a, **k: pytest.fail("data loaded before --out was checked"))
    assert main(["benchmark", "--out", str(blocker / "out"), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "walloc-features: error:" in err and str(blocker) in err


def test_an_existing_output_directory_that_takes_no_report_fails_before_any_work(tmp_path, capsys, monkeypatch):
    """mkdir succeeds on an existing read-only --out, or one holding a file where a report goes: every benchmark
    cell ran, then writing the report failed and the run's results were lost."""
    import tempfile

    from walloc_features import cli

    monkeypatch.setattr(cli, "load_dataset", lambda *a, **k: pytest.fail("data loaded before --out was checked"))
    (tmp_path / "clash" / "mnist").mkdir(parents=True)
    (tmp_path / "clash" / "mnist" / "rd").write_text("")  # rd writes <out>/mnist/rd/; benchmark <out>/mnist/
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "speech_commands").write_text("")
    assert main(["rd", "--out", str(tmp_path / "clash"), "--quiet"]) == 1
    assert f"{tmp_path / 'clash' / 'mnist' / 'rd'} is a file, so" in capsys.readouterr().err
    argv = ["benchmark", "--dataset", "mnist", "--dataset", "speech_commands", "--out", str(tmp_path / "other")]
    assert main(argv) == 1
    assert f"{tmp_path / 'other' / 'speech_commands'} is a file, so" in capsys.readouterr().err
    (tmp_path / "dangling").mkdir()
    (tmp_path / "dangling" / "mnist").symlink_to(tmp_path / "gone")  # mkdir(exist_ok=True) fails on it too
    assert main(["benchmark", "--out", str(tmp_path / "dangling")]) == 1
    assert f"{tmp_path / 'dangling' / 'mnist'} is a link to nothing, so" in capsys.readouterr().err

    refused = {tmp_path / "readonly", tmp_path / "readonly-cache"}  # (as root, chmod would not stop a write)
    probe = tempfile.TemporaryFile

    def read_only(*args, dir=None, **kwargs):
        if Path(dir) in refused:
            raise PermissionError(13, "Permission denied")
        return probe(*args, dir=dir, **kwargs)

    monkeypatch.setattr(tempfile, "TemporaryFile", read_only)
    for folder in refused:
        folder.mkdir()
    assert main(["benchmark", "--out", str(tmp_path / "readonly"), "--quiet"]) == 1
    assert f"--out {tmp_path / 'readonly'}: {tmp_path / 'readonly'} cannot be written (Permission denied)" in (
        capsys.readouterr().err)
    argv = ["benchmark", "--out", str(tmp_path / "out"), "--cache", str(tmp_path / "readonly-cache"), "--quiet"]
    assert main(argv) == 1
    assert f"--cache {tmp_path / 'readonly-cache'}: {tmp_path / 'readonly-cache'} cannot be written" in (
        capsys.readouterr().err)


def test_an_output_directory_inside_a_dataset_folder_is_refused(tmp_path, capsys, monkeypatch):
    """Created before loading, it would be read as an empty class folder (and its reports as data on a rerun)."""
    (tmp_path / "data" / "cats").mkdir(parents=True)
    assert main(["benchmark", "--dataset", str(tmp_path / "data"), "--out", str(tmp_path / "data" / "report")]) == 1
    assert "inside the dataset folder" in capsys.readouterr().err
    assert not (tmp_path / "data" / "report").exists()
    monkeypatch.chdir(tmp_path)  # --out . writes ./data/ (rd: ./data/rd), the dataset's own folder
    assert main(["rd", "--dataset", "data", "--out", "."]) == 1
    assert "puts reports (data) inside the dataset folder data" in capsys.readouterr().err


def test_a_cache_inside_a_dataset_folder_is_refused(tmp_path, capsys, monkeypatch):
    """Made before loading, the cache read as an empty class folder: that run and every later one on the data failed."""
    (tmp_path / "data" / "cats").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    assert main(["benchmark", "--dataset", "data", "--out", "out", "--cache", "data/cache", "--quiet"]) == 1
    assert "--cache data/cache puts its files (data/cache) inside the dataset folder data" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"] and not (tmp_path / "data" / "cache").exists()


def test_an_empty_dataset_name_is_not_the_working_folder(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_:
        main(["rd", "--dataset", ""])
    assert exit_.value.code == 2 and "'' is neither mnist nor speech_commands nor an existing folder" in (
        capsys.readouterr().err)


def test_a_failing_cell_is_named_on_the_command_line(tmp_path, capsys, monkeypatch):
    from walloc_features.evaluation import benchmark

    def fails(*args, **kwargs):
        raise ValueError("the model refused")

    monkeypatch.setattr(benchmark, "_scores", fails)
    assert main(["benchmark", "--out", str(tmp_path / "out"), "--quiet", "--repeats", "1"]) == 1
    err = capsys.readouterr().err
    assert "error: the model refused\n  (in run_benchmark's cell: pipeline 'raw + logistic', train size " in err


def test_load_dataset_and_the_pipelines_take_a_preset_by_name():
    from walloc_features.cli import load_dataset
    from walloc_features.evaluation.presets import benchmark_pipelines

    X, y, groups, modality, name = load_dataset("mnist", "quick")
    assert len(X) == 3000 and modality == "image"
    with pytest.raises(ValueError, match="preset must be one of \\['full', 'quick'\\]"):
        load_dataset("mnist", "huge")
    with pytest.raises(ValueError, match="preset must be one of \\['full', 'quick'\\]"):
        benchmark_pipelines("image", "fast")


def test_an_output_path_that_is_a_file_is_named_as_the_problem(tmp_path, capsys):
    (tmp_path / "afile").write_text("")
    assert main(["rd", "--out", str(tmp_path / "afile"), "--quiet"]) == 1
    assert f"--out {tmp_path / 'afile'}: {tmp_path / 'afile'} is a file, so" in capsys.readouterr().err
    out = tmp_path / "out"
    assert main(["benchmark", "--out", str(out), "--cache", str(tmp_path / "afile"), "--quiet"]) == 1
    assert f"--cache {tmp_path / 'afile'}: {tmp_path / 'afile'} is a file" in capsys.readouterr().err  # before a run
    assert not out.exists()  # a refused option leaves no folder behind


def test_rd_seeds_the_codecs_with_seed(tmp_path, monkeypatch):
    """--seed is the random_state of the models too: ResidualVQ's k-means in a sweep that includes it."""
    import importlib

    from walloc_features import cli

    rd = importlib.import_module("walloc_features.evaluation.rate_distortion")  # the module, not the function

    seeds = []
    def recording(*args, random_state=0, **kwargs):
        seeds.append(random_state)
        raise RuntimeError("stop here: only the codecs' seed is under test")

    monkeypatch.setattr(rd, "default_codecs", recording)
    assert cli.main(["rd", "--out", str(tmp_path), "--quiet", "--seed", "7"]) == 1
    assert seeds == [7]


def test_rd_on_speech_evaluates_speakers_the_codecs_were_not_fitted_on(tmp_path, monkeypatch):
    """benchmark's test set is speaker-disjoint; rd's evaluation half shared all its speakers with the fit half."""
    import importlib

    from walloc_features import cli

    rd = importlib.import_module("walloc_features.evaluation.rate_distortion")
    X, _, groups, _, _ = cli.load_dataset("speech_commands", "quick")
    speaker = {sample.tobytes(): group for sample, group in zip(X, groups, strict=True)}
    halves = {}

    def recording(codecs, X, X_fit=None, **kwargs):
        halves.update(fit=X_fit, evaluate=X)
        raise RuntimeError("stop here: only the split is under test")

    monkeypatch.setattr(rd, "rate_distortion", recording)
    assert cli.main(["rd", "--dataset", "speech_commands", "--out", str(tmp_path), "--quiet"]) == 1
    fit, evaluate = ({speaker[s.tobytes()] for s in halves[half]} for half in ("fit", "evaluate"))
    assert fit and evaluate and not fit & evaluate
    assert len(halves["fit"]) + len(halves["evaluate"]) == len(X) and 200 <= len(halves["evaluate"]) < 220


def test_skip_unreadable_leaves_undecodable_files_of_a_folder_out(tmp_path):
    from PIL import Image

    from walloc_features.cli import load_dataset
    from walloc_features.evaluation.presets import PRESETS

    for label, level in [("dark", 40), ("light", 200)]:
        (tmp_path / label).mkdir()
        for i in range(3):
            Image.fromarray(np.full((8, 8), level, np.uint8)).save(tmp_path / label / f"{i}.png")
    (tmp_path / "dark" / "broken.png").write_bytes(b"not a png")
    argv = ["rd", "--dataset", str(tmp_path), "--image-size", "8"]
    with pytest.raises(ValueError, match="broken.png"):
        load_dataset(str(tmp_path), PRESETS["quick"], build_parser().parse_args(argv))
    args = build_parser().parse_args(argv + ["--skip-unreadable"])
    assert args.skip_unreadable
    with pytest.warns(UserWarning, match="broken.png"):
        X, y, *_ = load_dataset(str(tmp_path), PRESETS["quick"], args)
    assert len(X) == 6 and sorted(set(y)) == ["dark", "light"]


def test_reports_of_folders_with_the_same_name_do_not_overwrite_each_other(tmp_path):
    from walloc_features.cli import _named

    for parent in ("a", "b"):
        (tmp_path / parent / "data").mkdir(parents=True)
    named = _named([str(tmp_path / "a" / "data"), str(tmp_path / "b" / "data"), "mnist"])
    assert [name for _, name in named] == ["data", "data-2", "mnist"]
    (tmp_path / "mnist-2").mkdir()  # a folder called like the second "mnist" would be
    named = _named(["mnist", "mnist", str(tmp_path / "mnist-2")])
    assert [name for _, name in named] == ["mnist", "mnist-2", "mnist-2-2"]


def test_rd_command_writes_json_and_a_plot(tmp_path, capsys):
    assert main(["rd", "--dataset", "mnist", "--out", str(tmp_path), "--quiet"]) == 0
    written = sorted(p.name for p in (tmp_path / "mnist" / "rd").iterdir())
    assert written == ["dct.json", "rate_distortion.png", "resolution.json", "walloc.json"]
    assert "mnist WaLLoC:" in capsys.readouterr().out
    record = json.loads((tmp_path / "mnist" / "rd" / "walloc.json").read_text())
    assert record["results"]["reduction"] == [16.0, 4.0]  # the quick preset's curve: two points
    psnr, rate = record["results"]["psnr"], record["results"]["bits_per_sample"]
    assert 12 < psnr[0] < psnr[1] < 30 and rate[0] < rate[1]  # measured 15.1 and 21.6 dB: more bits, more PSNR


def test_installed_entry_point_benchmarks_a_class_folder(tmp_path):
    """The console script on users' own images: a two-class folder, the quick preset, a report."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for label, level in [("dark", 40), ("light", 200)]:
        folder = tmp_path / "data" / label
        folder.mkdir(parents=True)
        for i in range(40):
            pixels = np.clip(rng.normal(level, 30, (20, 20)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(folder / f"{i}.png")
    script = [str(Path(sys.executable).with_name("walloc-features"))]  # installed by pip with the package
    args = ["benchmark", "--dataset", str(tmp_path / "data"), "--image-size", "16", "--repeats", "1",
            "--out", str(tmp_path / "out"), "--quiet"]  # fmt: skip
    done = subprocess.run(script + args, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    report = tmp_path / "out" / "data" / "report.md"
    assert report.exists() and "WaLLoC 16x + logistic" in report.read_text()
    assert "test accuracy by training-set size" in done.stdout
    results = pd.read_csv(tmp_path / "out" / "data" / "results.csv")  # dark against light: trivially separable
    largest = results[(results.pipeline == "raw + logistic") & (results.train_size == results.train_size.max())]
    assert largest.accuracy.min() >= 0.95  # measured 1.0 (labels shuffled when loaded: 0.35-0.75)


def test_python_dash_m_runs_the_command_line(tmp_path):
    """Where the console script is not on PATH (a venv not activated), ``python -m walloc_features`` is the CLI."""
    done = subprocess.run([sys.executable, "-m", "walloc_features", "--version"], capture_output=True, text=True,
                          timeout=300)  # fmt: skip
    assert done.returncode == 0 and done.stdout.startswith("walloc-features ")
    (tmp_path / "afile").write_text("")
    done = subprocess.run([sys.executable, "-m", "walloc_features", "rd", "--out", "afile"], capture_output=True,
                          text=True, timeout=300, cwd=tmp_path)  # fmt: skip
    assert done.returncode == 1 and "--out afile: afile is a file" in done.stderr  # main's status


def test_a_home_relative_cache_is_made_where_joblib_reads_it(tmp_path, monkeypatch):
    """The up-front mkdir made a folder literally named "~" in the working directory (joblib expands it)."""
    from walloc_features import cli

    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    seen = []
    monkeypatch.setattr(cli, "_benchmark", lambda args: seen.append(args.cache))
    assert main(["benchmark", "--out", str(tmp_path / "out"), "--cache", "~/wcache", "--quiet"]) == 0
    assert not (tmp_path / "~").exists() and (tmp_path / "home" / "wcache").is_dir()
    assert seen == [tmp_path / "home" / "wcache"]


def test_summary_costs_are_the_mean_over_repeats(results):
    """Three repeats that cost 1x, 1x and 4x: the summary's total GFLOPs, model FLOPs and fit seconds are their
    mean, 2x (not the median's 1x, nor the largest)."""
    costs = ["total_gflops", "model_flops_per_sample", "fit_seconds"]
    third = results[results.repeat == 0].assign(repeat=2)
    third[costs] = third[costs] * 4
    results.loc[results.repeat == 1, costs] = results.loc[results.repeat == 0, costs].to_numpy()
    summary = summarize(pd.concat([results, third])).set_index(["pipeline", "train_size"])
    first = results[(results.repeat == 0) & (results.pipeline == "costly") & (results.train_size == 400)].iloc[0]
    for cost in costs:
        assert summary.loc[("costly", 400), cost] == pytest.approx(2 * first[cost])


def test_repeats_given_on_the_command_line_reach_the_benchmark(tmp_path, monkeypatch):
    """--repeats 5 overrides the preset's count (the quick preset runs 2)."""
    import walloc_features.evaluation as evaluation

    seen = {}

    def stop(*args, **kwargs):
        seen.update(kwargs)
        raise KeyboardInterrupt  # enough: the call's arguments are what is checked

    monkeypatch.setattr(evaluation, "run_benchmark", stop)
    with pytest.raises(KeyboardInterrupt):
        main(["benchmark", "--dataset", "mnist", "--repeats", "5", "--out", str(tmp_path / "out"), "--quiet"])
    assert seen["n_repeats"] == 5


def test_rd_evaluates_rows_it_did_not_fit_on_and_replaces_only_its_own_records(tmp_path, monkeypatch):
    """On MNIST (no speakers) the evaluation rows are none of the fit rows; a rerun's folder holds this run's
    codecs only: an earlier run's record of another codec goes, a file of the user's (CompressAI's) stays."""
    import importlib

    from walloc_features import cli
    from walloc_features.evaluation import save_rate_distortion

    rd = importlib.import_module("walloc_features.evaluation.rate_distortion")
    folder = tmp_path / "mnist" / "rd"
    save_rate_distortion([{"name": "codec of an earlier run", "results": {}}], folder)
    (folder / "compressai.json").write_text('{"name": "bmshj2018", "results": {}}')
    halves, original = {}, rd.rate_distortion

    def recording(codecs, X, X_fit=None, **kwargs):
        halves.update(fit=X_fit, evaluate=X)
        return original({"resolution": codecs["resolution"]}, X, X_fit=X_fit, **kwargs)  # the quickest is enough

    monkeypatch.setattr(rd, "rate_distortion", recording)
    assert cli.main(["rd", "--out", str(tmp_path), "--quiet"]) == 0
    fit, evaluate = ({row.tobytes() for row in halves[half]} for half in ("fit", "evaluate"))
    assert len(halves["evaluate"]) == 200 and not fit & evaluate
    names = sorted(p.name for p in folder.glob("*.json"))
    assert "codec-of-an-earlier-run.json" not in names and "compressai.json" in names and len(names) == 2


@pytest.mark.parametrize("preset", ["quick", "full"])
def test_each_presets_cnns_train_for_its_epochs_of_that_modality(preset):
    """Images and the few speech clips get their own epoch counts (the CNN on 300 clips needs more passes); raw
    audio gets a CNN only where the preset affords its ~300 MFLOPs a clip."""
    from walloc_features.evaluation.presets import PRESETS, benchmark_pipelines

    settings = PRESETS[preset]
    for modality, epochs in (("image", settings.max_epochs), ("audio", settings.audio_epochs)):
        pipelines = benchmark_pipelines(modality, preset, random_state=3)
        cnns = {name: p[-1] for name, p in pipelines.items() if name.endswith("+ CNN")}
        assert cnns and {m.max_epochs for m in cnns.values()} == {epochs}
        assert {m.random_state for m in cnns.values()} == {3}
        assert ("raw + CNN" in cnns) == (modality == "image" or settings.raw_cnn_audio)
