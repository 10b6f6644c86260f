import json
from pathlib import Path

import pytest
import torch

from tests.cli_helpers import assert_one_line_error, run_module


def test_train_then_eval_through_the_cli(mnist_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    result = run_module(
        "simpleconvnet", "train", "--dataset", "mnist", "--data-dir", str(mnist_dir),
        "--epochs", "2", "--widths", "4,6", "--fc4", "16", "--batch-size", "20",
        "--out", str(out), "--quiet",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "test accuracy" in result.stdout and result.stderr == ""
    meta = json.loads((out / "last" / "model.json").read_text())
    assert meta["data"]["name"] == "mnist" and meta["epoch"] == 2
    assert meta["architecture"] == "simpleconvnet.model:SimpleConvNet"
    assert len(meta["history"]) == 2 and "torch" in meta["versions"]
    ev = run_module("simpleconvnet", "eval", str(out / "last"), "--out", str(tmp_path / "ev"))
    assert ev.returncode == 0, ev.stderr
    metrics = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert metrics["test_accuracy"] == pytest.approx(meta["metrics"]["test_accuracy"])


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["train", "--dataset", "mnist", "--data-dir", "/no/such/dir"], "/no/such/dir"),
        (["train", "--dataset", "mnist"], "needs --data-dir"),
        (["train", "--widths", "8,x"], "--widths"),
        (["eval", "/no/such/checkpoint"], "does not exist"),
    ],
)
def test_user_errors_are_one_line_with_exit_code_2(args, needle) -> None:
    assert_one_line_error(run_module("simpleconvnet", *args), needle)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_cuda_without_gpu_is_one_line() -> None:
    assert_one_line_error(run_module("simpleconvnet", "train", "--device", "cuda"), "no CUDA GPU")


def test_bad_option_values_are_refused_by_the_parser() -> None:
    result = run_module("simpleconvnet", "train", "--epochs", "0")
    assert result.returncode == 2 and "must be at least 1" in result.stderr


def test_resume_without_checkpoint(tmp_path: Path) -> None:
    result = run_module(
        "simpleconvnet", "train", "--resume", "--out", str(tmp_path / "x"), "--quiet"
    )
    assert_one_line_error(result, "no finished epoch to resume")


def test_help_explains_every_option() -> None:
    result = run_module("simpleconvnet", "train", "--help")
    for option in (
        "--dataset",
        "--data-dir",
        "--epochs",
        "--seed",
        "--out",
        "--device",
        "--quiet",
        "--resume",
    ):
        assert option in result.stdout
