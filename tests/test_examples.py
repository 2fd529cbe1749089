"""The example scripts run end to end in their ``--quick`` mode and write what they promise."""

import json
import os
import runpy
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]


def run_example(script: str, out: Path) -> str:
    """Run ``examples/<script> --quick --out <out>`` from the repository root; its standard output."""
    # The quick runs are tiny: one BLAS / OpenMP thread avoids oversubscribed, spin-waiting thread
    # pools (tens of times slower) when the tests share the cores with other work.
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    completed = subprocess.run(
        [sys.executable, str(Path("examples") / script), "--quick", "--out", str(out)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert completed.returncode == 0, f"{script} failed:\n{completed.stdout}\n{completed.stderr}"
    return completed.stdout


@pytest.mark.parametrize("script", ["compress_latents.py", "rate_distortion.py", "speech_data_budget.py",
                                    "timm_equal_compute.py"])  # fmt: skip
def test_an_unusable_out_is_refused_before_any_work(tmp_path, script, capsys):
    """A file given as --out was found only when the results were written, minutes of work later, in a traceback."""
    (tmp_path / "afile").write_text("")
    main = runpy.run_path(str(ROOT / "examples" / script), run_name="example")["main"]
    with pytest.raises(SystemExit) as exit_:
        main(["--out", str(tmp_path / "afile")])
    captured = capsys.readouterr()
    assert exit_.value.code == 2 and not captured.out
    assert f"argument --out: {tmp_path / 'afile'} is a file, so {tmp_path / 'afile'} cannot be made" in captured.err


@pytest.mark.slow
def test_speech_data_budget(tmp_path):
    stdout = run_example("speech_data_budget.py", tmp_path)
    for line in ("logistic: test accuracy by training-set size", "CNN: test accuracy by training-set size",
                 "WaLLoC - resolution", f"report: {tmp_path / 'report.md'}"):  # fmt: skip
        assert line in stdout
    for name in ("results.csv", "report.md", "accuracy_vs_train_size.png", "accuracy_vs_compute.png"):
        assert (tmp_path / name).is_file()
    assert "WaLLoC 16x + CNN" in (tmp_path / "report.md").read_text(encoding="utf-8")
    results = pd.read_csv(tmp_path / "results.csv")  # every cell ran: 5 pipelines at 2 sizes, none failed (NaN)
    assert results.groupby("pipeline").train_size.nunique().to_dict() == dict.fromkeys(
        ["raw + logistic", "WaLLoC 16x + logistic", "resolution 16x + logistic", "WaLLoC 16x + CNN",
         "resolution 16x + CNN"], 2)  # fmt: skip
    assert results.accuracy.notna().all() and results.total_gflops.gt(0).all()


@pytest.mark.slow
def test_timm_equal_compute(tmp_path):
    stdout = run_example("timm_equal_compute.py", tmp_path)
    for model in ("pixels", "WaLLoC 16x, same epochs", "WaLLoC 16x, equal compute"):
        assert model in stdout
    table = pd.read_csv(tmp_path / "equal_compute.csv", index_col="model")
    pixels, same, equal = (table.loc[m] for m in ("pixels", "WaLLoC 16x, same epochs", "WaLLoC 16x, equal compute"))
    assert pixels.epochs == same.epochs == 2 and equal.epochs > same.epochs  # latents are cheaper per epoch
    one_epoch = same["train GFLOPs"] / same.epochs  # at least one latent epoch (it includes some encoding)
    assert pixels["train GFLOPs"] - one_epoch <= equal["train GFLOPs"] <= pixels["train GFLOPs"]


@pytest.mark.slow
def test_rate_distortion(tmp_path):
    stdout = run_example("rate_distortion.py", tmp_path)
    for dataset in ("mnist", "speech_commands"):
        assert f"{dataset}: " in stdout and "bits/sample" in stdout
        directory = tmp_path / dataset
        assert (directory / "rate_distortion.png").is_file()
        for codec in ("walloc", "resolution", "dct"):
            record = json.loads((directory / f"{codec}.json").read_text())
            curve = pd.DataFrame(record["results"]).sort_values("reduction")
            assert len(curve) == 2  # requested 4x and 16x (achieved: 3.1x and 12.25x for WaLLoC's padded digits)
            # the lesser reduction keeps more: more bits per sample and a higher PSNR, on both datasets
            assert curve.bits_per_sample.is_monotonic_decreasing and curve.psnr.is_monotonic_decreasing


@pytest.mark.slow
def test_compress_latents(tmp_path):
    stdout = run_example("compress_latents.py", tmp_path)
    for line in ("Photos at 16x", "Photos at 4x", "Speech at 20x", "ours"):
        assert line in stdout
    table = pd.read_csv(tmp_path / "storage.csv", index_col="route")
    assert set(table.setting) == {"photos 16x", "photos 4x", "speech 20x"}
    ours = table.loc["ours"].set_index("setting")
    assert (ours.relative_to_best_upstream < 1).all()  # smaller than every tiled-image route, in every setting
