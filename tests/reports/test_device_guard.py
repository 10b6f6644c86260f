"""Every stage, on the CPU, with no tensor created without an explicit device.

On a GPU, ``reports run --device cuda`` crashed because the HandNet head built a tensor with
``torch.zeros(...)`` and no ``device=``: it was on the CPU, the features on the GPU. On the CPU
such a bug cannot show, so this test runs the whole tiny pipeline, ``reports audit`` and every
``dissect`` command (on two suite checkpoints, SimpleConvNet and HandNet, and on a foreign
network) under :func:`tests.device_guard.explicit_devices`, which fails any tensor factory the
suite calls without ``device=``: the equivalent of ``torch.set_default_device("meta")`` that
leaves torch's own CPU-side construction alone and still computes real numbers."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tests.conftest import make_mnist_folder
from tests.device_guard import ExplicitDeviceMode, explicit_devices
from tests.dissect.foreign_nets import tiny_data, train_briefly
from tests.reports.conftest import TINY, run_reports

NETS_FILE = Path(__file__).resolve().parents[1] / "dissect" / "foreign_nets.py"


def _ok(code: int, guard: ExplicitDeviceMode) -> None:
    """The command finished, and no factory lacked its device (said first: a failing command
    may have turned the guard's AssertionError into an exit code)."""
    assert guard.violations == [], "\n".join(guard.violations)
    assert code == 0


def _every_dissect_command(net: list[str], out: Path, guard: ExplicitDeviceMode) -> None:
    from dissect.cli import _main
    from dissect.infra.runtime import run_cli

    def dissect(*argv: str) -> None:
        _ok(run_cli(_main, list(argv)), guard)

    to = ["--out", str(out)]
    dissect("layers", *net)
    dissect("labels", *net, *to)
    dissect("contributions", *net, "--layer", "conv2", "--channel", "2", "--image", "3", *to)
    dissect("audit", *net, "--image", "5", *to)
    dissect("superstimuli", *net, "--steps", "4", *to)
    dissect("superstimuli", *net, "--classes", "--steps", "4", *to)
    dissect("explain", *net, "--split", "test", *to)


def test_every_stage_names_the_device_of_its_tensors(tmp_path: Path) -> None:
    from dissect.foreign import import_model

    data = make_mnist_folder(tmp_path / "data")
    runs = tmp_path / "runs"
    torch.manual_seed(0)
    foreign = train_briefly(import_model(f"{NETS_FILE}:ExampleNet"), *tiny_data(10, seed=0), steps=10)  # fmt: skip
    torch.save(foreign.state_dict(), tmp_path / "net.pt")
    model = ["--model", f"{NETS_FILE}:ExampleNet", "--weights", str(tmp_path / "net.pt")]
    with explicit_devices() as guard:
        _ok(run_reports("run", "--name", "guarded", "--runs-root", str(runs), "--data-dir", str(data), *TINY), guard)  # fmt: skip
        _ok(run_reports("audit", *model, "--dataset", "mnist", "--data-dir", str(data), "--name", "mine", "--runs-root", str(runs), "--superstimulus-steps", "4", "--device", "cpu", "--quiet"), guard)  # fmt: skip
        common = ["--data-dir", str(data), "--device", "cpu", "--quiet"]
        for stage in ("train", "handnet-constrained"):  # SimpleConvNet; HandNet's own layers
            checkpoint = runs / "guarded" / stage / "best"
            assert (checkpoint / "model.json").is_file(), f"no checkpoint in {checkpoint}"
            _every_dissect_command([str(checkpoint), *common], tmp_path / stage, guard)
        _every_dissect_command([*model, "--dataset", "mnist", *common], tmp_path / "own", guard)
    assert guard.checked > 0, "the guard saw no tensor factory of the suite: it was not live"


def test_the_guard_catches_the_handnet_bug_and_spares_module_state() -> None:
    from handnet import head  # code compiled as this file's counts as the suite's
    from handnet.layers import GaborConv2d

    bug = compile("torch.zeros(3)", head.__file__, "eval")
    with explicit_devices() as guard:
        torch.nn.Linear(3, 2)  # torch's factories, called by torch: not flagged
        GaborConv2d([])  # parameters made in a module's __init__: moved with .to(), not flagged
        with pytest.raises(AssertionError, match=r"torch\.zeros\(\.\.\.\) without device= at .*head\.py"):  # fmt: skip
            eval(bug, {"torch": torch})
        eval(compile("torch.zeros(3, device='cpu')", head.__file__, "eval"), {"torch": torch})
    assert len(guard.violations) == 1 and guard.checked == 1
