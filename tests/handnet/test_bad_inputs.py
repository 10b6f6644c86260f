"""Bad input to ``handnet build / finetune``: one ``error:`` line, exit code 2, no traceback,
checked before any work, nothing changed; ``--force`` and ``--resume`` on a folder holding a
run; ``--quiet`` prints nothing on stderr."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from dissect.infra.runtime import run_cli
from handnet.cli import _main
from tests.conftest import make_mnist_folder
from tests.test_bad_inputs import check_cases, one_line, snapshot

BUILD = ["--fc4", "10", "--device", "cpu", "--quiet"]
TUNE = ["--epochs", "1", "--batch-size", "20", "--snapshot-every", "0", "--device", "cpu", "--quiet"]  # fmt: skip


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> dict[str, Path]:
    """A built HandNet and a one-epoch fine-tune of it, a SimpleConvNet checkpoint, a freed
    HandNet, a truncated one, and odd files."""
    from dissect.infra.checkpoints import CheckpointMeta, save_model
    from dissect.infra.runtime import run_cli
    from handnet.finetune import freed_copy
    from handnet.model import HandNet, default_config
    from simpleconvnet.model import SimpleConvNet, SimpleConvNetConfig

    root = tmp_path_factory.mktemp("handnet-bad")
    data = make_mnist_folder(root / "data", n_train=60, n_test=40)
    w = {"root": root, "data": data, "built": root / "built", "tuned": root / "tuned"}
    argv = ["build", "--dataset", "mnist", "--data-dir", str(data), "--out", str(w["built"]), *BUILD]  # fmt: skip
    assert run_cli(_main, argv) == 0
    argv = ["finetune", str(w["built"]), "--mode", "free", "--out", str(w["tuned"]), *TUNE]
    assert run_cli(_main, argv) == 0
    meta = CheckpointMeta(kind="SimpleConvNet", data={"name": "mnist", "data_dir": str(data)})
    w["scn"] = save_model(root / "scn", SimpleConvNet(SimpleConvNetConfig(convs=(4, 6), fc4=10)), meta)  # fmt: skip
    w["freed"] = save_model(root / "freed", freed_copy(HandNet(default_config((4, 8), 10))), meta)
    w["truncated"] = root / "truncated"
    shutil.copytree(w["built"], w["truncated"])
    weights = w["truncated"] / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    w["afile"] = root / "afile.txt"
    w["afile"].write_text("not a folder")
    w["empty"] = root / "empty"
    w["empty"].mkdir()
    return w


def _build(w, *extra: str, out: Path | None = None) -> list[str]:
    out = out if out is not None else w["root"] / "new"
    return ["build", "--dataset", "mnist", "--data-dir", str(w["data"]), *BUILD, "--out", str(out), *extra]  # fmt: skip


def _tune(w, *extra: str, ckpt: str = "built", out: Path | None = None) -> list[str]:
    out = out if out is not None else w["root"] / "new"
    source = str(w[ckpt]) if ckpt in w else ckpt
    return ["finetune", source, "--mode", "constrained", *TUNE, "--out", str(out), *extra]


def cases(w) -> list[tuple[list[str], str]]:
    return [
        (_build(w, "--widths", "17,16"), "--widths '17,16'"),
        (_build(w, "--widths", "8,20"), "--widths '8,20': HandNet widths (8, 20): more than 16"),
        (_build(w, "--widths", "16,49"), "--widths '16,49'"),
        (_build(w, "--widths", "8,16,20"), "--widths '8,16,20'"),
        (_build(w, "--widths", "a,b"), "--widths"),
        (_build(w, "--widths", "8"), "--widths"),
        (_build(w, "--l2", "-1"), "--l2: '-1' must be 0 or more"),
        (_build(w, "--l2", "inf"), "finite"),
        (_build(w, "--fc4", "0"), "--fc4"),
        (_build(w, "--fc4", "9"), "--fc4 9: the closed-form head needs fc4 at least as wide"),
        (_build(w, out=w["built"]), "already holds a run"),
        (_build(w, out=w["tuned"]), "already holds a run"),
        (_build(w, out=w["afile"]), "is a file, not a folder"),
        (_build(w, "--data-dir", str(w["root"] / "nowhere")), "does not exist"),
        (_build(w, "--data-dir", str(w["empty"])), "not found in"),
        (_build(w, "--dataset", "emnist"), "invalid choice: 'emnist'"),
        (_build(w, "--device", "tpu"), "unknown device"),
        (_build(w, "--nproc", "-1"), "--nproc"),
        (_build(w, "--resume"), "unrecognized arguments: --resume"),
        (["finetune", str(w["built"]), *TUNE], "the following arguments are required: --mode"),
        (_tune(w, "--mode", "bogus"), "invalid choice: 'bogus'"),
        (_tune(w, ckpt="scn"), "is not a HandNet checkpoint"),
        (_tune(w, ckpt=str(w["root"] / "missing")), "does not exist"),
        (_tune(w, ckpt="afile"), "is not a checkpoint"),
        (_tune(w, ckpt="freed"), "already freed"),
        (_tune(w, ckpt="truncated"), "truncated or corrupt"),
        (_tune(w, "--epochs", "0"), "--epochs"),
        (_tune(w, "--patience", "0"), "--patience: '0' must be at least 1"),
        (_tune(w, "--patience", "few"), "--patience: 'few' is not a whole number"),
        (_tune(w, "--epochs", "many"), "--epochs: 'many' is not a whole number"),
        (_tune(w, "--lr", "0"), "--lr: '0' must be greater than 0"),
        (_tune(w, "--batch-size", "x"), "--batch-size"),
        (_tune(w, "--snapshot-every", "-5"), "--snapshot-every"),
        (_tune(w, "--seed", "-1"), "--seed"),
        (_tune(w, out=w["tuned"]), "already holds a run"),
        (_tune(w, "--resume", out=w["empty"]), "no finished epoch to resume"),
        (_tune(w, "--resume", "--force", out=w["tuned"]), "--resume and --force"),
        (_tune(w, "--data-dir", str(w["root"] / "nowhere")), "does not exist"),
        (_tune(w, "--out", str(w["afile"])), "is a file, not a folder"),
    ]


def test_bad_inputs_in_process(world, capsys, monkeypatch) -> None:
    monkeypatch.chdir(world["root"])
    assert check_cases(_main, cases(world), world["root"], capsys) >= 30
    # the default --out, runs/handnet/MODE, holding a run is refused too
    default = world["root"] / "runs" / "handnet" / "constrained"
    shutil.copytree(world["tuned"], default)
    argv = ["finetune", str(world["built"]), "--mode", "constrained", *TUNE]
    assert check_cases(_main, [(argv, "'runs/handnet/constrained' already holds a run")], world["root"], capsys)  # fmt: skip


def test_force_overwrites_a_fine_tune_and_build(world, tmp_path, capsys) -> None:
    out = tmp_path / "tuned"
    shutil.copytree(world["tuned"], out)
    before = snapshot(out)
    argv = _tune(world, out=out)
    assert run_cli(_main, argv) == 2 and snapshot(out) == before
    assert "add --resume to continue it, --force" in one_line(capsys.readouterr().err)
    assert run_cli(_main, [*argv, "--force"]) == 0
    assert (out / "last" / "model.json").stat().st_mtime_ns > before["last/model.json"][2]
    built = tmp_path / "built"
    shutil.copytree(world["built"], built)
    argv = _build(world, out=built)
    assert run_cli(_main, argv) == 2
    assert "--force to overwrite it" in one_line(capsys.readouterr().err)
    assert run_cli(_main, [*argv, "--force"]) == 0
    out_text, err = capsys.readouterr()
    assert "hand-built" in out_text and err == ""  # --quiet: nothing on stderr


@pytest.mark.parametrize("modes", ["constrain", ","])
def test_bench_handnet_refuses_unknown_modes(modes) -> None:
    """``bench_handnet --modes`` names only constrained and free: anything else is one line and
    exit code 2 before any data is read (a typo would otherwise run no fine-tuning at all)."""
    from tests.cli_helpers import assert_one_line_error, run_module

    assert_one_line_error(run_module("benchmarks.bench_handnet", "--modes", modes), "--modes")


@pytest.mark.parametrize(
    ("args", "names"),
    [
        (["--kinds", "free,inhibitory"], "--kinds"),
        (["--widths", "8,16,16"], "--widths"),
        (["--widths", "a,b"], "--widths"),
        (["--widths", "32,64"], "HandNet widths"),
        (["--head-seeds", "0,x"], "--head-seeds"),
    ],
)
def test_bench_handnet_ceiling_refuses_bad_arguments(args, names) -> None:
    """``bench_handnet_ceiling``: an unknown kind, widths it cannot build and seeds that are
    not numbers are one line and exit code 2, before any data is read or any net trained."""
    from tests.cli_helpers import assert_one_line_error, run_module

    assert_one_line_error(run_module("benchmarks.bench_handnet_ceiling", *args), names)
