"""Two processes (gloo, loopback) give the same answer as one; failures end the whole run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from tests.cli_helpers import ROOT, run_module
from tests.dist_helpers import finish, free_port, single_node, torchrun

pytestmark = pytest.mark.skipif(
    not torch.distributed.is_available(), reason="torch.distributed is not available"
)
TRAIN_ARGS = [
    "--widths",
    "4,6",
    "--fc4",
    "16",
    "--batch-size",
    "20",
    "--epochs",
    "1",
    "--quiet",
    "--snapshot-every",
    "1",
    "--device",
    "cpu",
]


def _snapshots(folder: Path) -> dict[str, torch.Tensor]:
    return load_file(str(folder / "snapshots.safetensors"))


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max() / b.abs().max())


@pytest.fixture(scope="module")
def single_run(tmp_path_factory) -> tuple[Path, Path]:
    from tests.conftest import make_mnist_folder

    root = tmp_path_factory.mktemp("dist")
    data = make_mnist_folder(root / "data")
    out = root / "one"
    args = ["train", "--dataset", "mnist", "--data-dir", str(data), "--out", str(out), *TRAIN_ARGS]
    result = run_module("simpleconvnet", *args)
    assert result.returncode == 0, result.stderr
    return data, out


def _assert_same_answer(one: Path, many: Path) -> None:
    a, b = _snapshots(one), _snapshots(many)
    assert a.keys() == b.keys()
    first_step = sorted(a)[1]
    assert _rel(b[first_step], a[first_step]) < 1e-5
    w1 = load_file(str(one / "last" / "model.safetensors"))
    w2 = load_file(str(many / "last" / "model.safetensors"))
    for key in w1:
        assert _rel(w2[key], w1[key]) < 1e-3, key
    acc1 = json.loads((one / "last" / "model.json").read_text())["metrics"]["test_accuracy"]
    acc2 = json.loads((many / "last" / "model.json").read_text())["metrics"]["test_accuracy"]
    assert abs(acc1 - acc2) <= 0.002


def test_two_processes_give_the_same_answer_as_one(single_run, tmp_path: Path) -> None:
    data, one = single_run
    many = tmp_path / "two"
    proc = single_node(
        2, "-m", "simpleconvnet", "train", "--dataset", "mnist", "--data-dir", str(data),
        "--out", str(many), *TRAIN_ARGS,
    )  # fmt: skip
    code, log = finish(proc)
    assert code == 0, log
    _assert_same_answer(one, many)


def test_two_nodes_with_c10d_rendezvous(single_run, tmp_path: Path) -> None:
    data, one = single_run
    many = tmp_path / "nodes"
    endpoint = f"127.0.0.1:{free_port()}"
    procs = [
        torchrun(
            "-m",
            "simpleconvnet",
            "train",
            "--dataset",
            "mnist",
            "--data-dir",
            str(data),
            "--out",
            str(many),
            *TRAIN_ARGS,
            nnodes_args=(
                "--nnodes",
                "2",
                "--nproc-per-node",
                "1",
                "--node-rank",
                str(node),
                "--rdzv-backend",
                "c10d",
                "--rdzv-endpoint",
                endpoint,
                "--rdzv-id",
                "test",
            ),
        )  # fmt: skip
        for node in (0, 1)
    ]
    for proc in procs:
        code, log = finish(proc)
        assert code == 0, log
    _assert_same_answer(one, many)


SCRIPT = str(ROOT / "tests" / "scripts" / "dist_fit.py")


def test_only_rank_zero_writes_and_a_resumed_run_ends_where_a_whole_one_does(
    single_run, tmp_path: Path
) -> None:
    data, _ = single_run
    code, log = finish(single_node(2, SCRIPT, "guard", str(data), str(tmp_path / "whole")))
    assert code == 0, log
    whole = (tmp_path / "whole" / "last" / "model.safetensors").read_bytes()
    code, log = finish(single_node(2, SCRIPT, "cut", str(data), str(tmp_path / "cut")))
    assert code != 0
    assert json.loads((tmp_path / "cut" / "last" / "model.json").read_text())["epoch"] == 1
    code, log = finish(single_node(2, SCRIPT, "resume", str(data), str(tmp_path / "cut")))
    assert code == 0, log
    assert (tmp_path / "cut" / "last" / "model.safetensors").read_bytes() == whole


def test_a_failing_rank_fails_the_whole_run_with_its_message(single_run, tmp_path: Path) -> None:
    data, _ = single_run
    script = str(ROOT / "tests" / "scripts" / "dist_fit.py")
    code, log = finish(
        single_node(2, script, "fail", str(data), str(tmp_path / "out")), timeout=120
    )
    assert code != 0
    assert "rank 1 was told to fail" in log


def test_dataset_statistics_and_a_pruning_cut_are_the_same_on_two_processes(
    single_run, tmp_path: Path
) -> None:
    _, one = single_run
    script = str(ROOT / "tests" / "scripts" / "dist_stats.py")
    plain = subprocess.run([sys.executable, script, str(one / "last"), str(tmp_path / "one.json")], cwd=ROOT,
                           capture_output=True, text=True, timeout=180, env={**os.environ, "OMP_NUM_THREADS": "1"})  # fmt: skip
    assert plain.returncode == 0, plain.stderr
    code, log = finish(single_node(2, script, str(one / "last"), str(tmp_path / "two.json")))
    assert code == 0, log
    a, b = (json.loads((tmp_path / f"{n}.json").read_text()) for n in ("one", "two"))
    assert a["pruned_channels"] == b["pruned_channels"]
    for key in ("activation_std", "variation", "selectivity", "drivers", "ablation", "share_data"):
        x, y = torch.tensor(a[key]), torch.tensor(b[key])
        assert torch.allclose(x, y, rtol=1e-5, atol=1e-6 * float(x.abs().max())), key
