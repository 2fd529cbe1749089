"""The README's self-contained examples run as printed, on the embedded data, and give what they claim."""

import re
from pathlib import Path

import numpy as np
import pytest

README = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
BLOCKS = re.findall(r"```python\n(.*?)```", README, flags=re.DOTALL)


def block_with(text: str) -> str:
    """The one README Python block that contains ``text``."""
    found = [block for block in BLOCKS if text in block]
    assert len(found) == 1, f"{len(found)} README blocks contain {text!r}"
    return found[0]


def run_block(code: str, last_expression: bool = False) -> dict:
    """Execute a README block; with ``last_expression``, its last line's value is ``namespace["_"]``."""
    lines = code.rstrip().split("\n")
    if last_expression:
        lines[-1] = "_ = " + lines[-1]
    namespace = {}
    exec(compile("\n".join(lines), "README.md", "exec"), namespace)
    return namespace


def test_quickstart_scores_what_its_comment_says():
    code = block_with("model.fit(X[:8000], y[:8000]).score(X[8000:], y[8000:])")
    claimed = float(re.search(r"# (0\.\d+) from 49 numbers per digit", code).group(1))
    score = run_block(code, last_expression=True)["_"]
    assert abs(score - claimed) < 0.01, (score, claimed)


def test_compressed_store_walkthrough(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # the block writes digits.wlstore where it runs
    ns = run_block(block_with('CompressedStore.create("digits.wlstore", codec)'))
    X, y = ns["X"], ns["y"]
    assert len(ns["blobs"]) == 2000 and all(isinstance(b, bytes) for b in ns["blobs"])
    np.testing.assert_array_equal(ns["codes"], ns["codec"].set_params(quantize=True).transform(X[8000:]))
    assert ns["Z"].shape == (8000, 49) and np.array_equal(ns["labels"], y[:8000])
    assert (ns["Z_batch"].shape[0], len(ns["y_batch"])) == (8000 % 256, 8000 % 256)  # the last, partial batch
    assert len(ns["loader"].dataset) == 8000
    assert "digits.wlstore" in str(ns["store"].path) and capsys.readouterr().out.strip()


@pytest.mark.parametrize("text", ["np.memmap(\"images.u8\"", "from_checkpoint(\"checkpoints/RGB_16x.pth\")"])
def test_examples_that_need_user_data_still_name_current_api(text):
    """Blocks that read the user's files cannot run here; the names they call must exist."""
    import walloc_features

    names = set(re.findall(r"\b(?:codec|WaLLoCTransformer)\.(\w+)\(", block_with(text)))
    assert names >= {"transform"}
    missing = [name for name in names if not hasattr(walloc_features.WaLLoCTransformer, name)]
    assert not missing, missing
