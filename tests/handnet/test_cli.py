"""The real entry point on a tiny data set: build, fine-tune, and one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

from tests.cli_helpers import assert_one_line_error, run_module


def test_build_then_finetune(mnist_dir: Path, tmp_path: Path) -> None:
    built = tmp_path / "built"
    r = run_module("handnet", "build", "--dataset", "mnist", "--data-dir", str(mnist_dir),
                   "--fc4", "16", "--out", str(built), "--quiet")  # fmt: skip
    assert r.returncode == 0, r.stderr
    meta = json.loads((built / "model.json").read_text())
    assert meta["architecture"] == "handnet.model:HandNet" and meta["mode"] == "hand-built"
    assert "stage" not in meta and meta["parent"] is None and meta["world_size"] == 1
    assert meta["metrics"]["accuracy"] == meta["metrics"]["test_accuracy"]
    assert meta["versions"]["torch"] and meta["head_fit"]["l2"] in (1e-3, 1e-4, 1e-2)
    assert meta["head_fit"]["l2_chosen_on_validation"] and meta["head_fit"]["copies"] >= 1
    assert meta["config"]["layer_kinds"] == {"conv1": "gabor", "conv2": "rule"}
    assert meta["config"]["descriptions"]["conv1"][2] == "vertical line"
    out = tmp_path / "free"
    r = run_module("handnet", "finetune", str(built), "--mode", "free", "--epochs", "1",
                   "--out", str(out), "--quiet", "--snapshot-every", "0")  # fmt: skip
    assert r.returncode == 0, r.stderr
    meta = json.loads((out / "last" / "model.json").read_text())
    assert meta["mode"] == "free" and meta["config"]["free"] == ["conv1", "conv2"]
    assert "finetune" not in meta and meta["parent"] == str(built) and meta["seed"] == 0
    assert 0 <= meta["metrics"]["accuracy"] <= 1 and meta["world_size"] == 1
    assert (out / "drift.csv").read_text().count("\n") == 25


def test_errors_are_one_line(tmp_path: Path) -> None:
    r = run_module("handnet", "finetune", str(tmp_path / "nope"), "--mode", "constrained")
    assert_one_line_error(r, "does not exist")
    r = run_module("handnet", "build", "--widths", "17,16", "--out", str(tmp_path / "x"))
    assert_one_line_error(r, "--widths")
