"""Bad input to ``simpleconvnet train / eval / prune``: each is one ``error:`` line on stderr,
exit code 2, no traceback, checked before any work, and the folder it names is left exactly as
it was. Then ``--force`` and ``--resume`` on a folder holding a run. (Training processes
killed and resumed: ``test_interrupted.py``.)"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from dissect.infra.runtime import run_cli
from simpleconvnet.cli import _main
from tests.conftest import make_mnist_folder
from tests.test_bad_inputs import check_cases, one_line, snapshot

TINY = ["--epochs", "1", "--widths", "4,6,8", "--fc4", "8", "--batch-size", "20",
        "--snapshot-every", "0", "--device", "cpu", "--quiet"]  # fmt: skip


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> dict[str, Path]:
    """One tiny trained checkpoint, broken copies of it, a HandNet checkpoint, odd files."""
    from dissect.infra.checkpoints import save_model
    from handnet.model import HandNet, default_config

    root = tmp_path_factory.mktemp("scn-bad")
    data = make_mnist_folder(root / "data", n_train=60, n_test=40)
    run = root / "run"
    argv = ["train", "--dataset", "mnist", "--data-dir", str(data), "--out", str(run), *TINY]
    assert run_cli(_main, argv) == 0
    last = run / "last"
    w: dict[str, Path] = {"root": root, "data": data, "run": run, "last": last}

    def broken(name: str, change) -> None:
        folder = root / name
        shutil.copytree(last, folder)
        change(folder)
        w[name] = folder

    def edit_json(key_path: tuple[str, ...], value):
        def change(folder: Path) -> None:
            meta = json.loads((folder / "model.json").read_text())
            target = meta
            for key in key_path[:-1]:
                target = target[key]
            target[key_path[-1]] = value
            (folder / "model.json").write_text(json.dumps(meta))

        return change

    weights = "model.safetensors"
    broken("truncated", lambda f: (f / weights).write_bytes((f / weights).read_bytes()[:300]))
    broken("no_weights", lambda f: (f / weights).unlink())
    broken("garbled_json", lambda f: (f / "model.json").write_text("{not json"))
    broken("pickled", lambda f: torch.save({"conv1.weight": torch.zeros(4, 1, 5, 5)}, f / weights))
    broken("foreign", edit_json(("architecture",), "os:system"))
    broken("narrower", edit_json(("config", "convs"), [3, 6, 8]))
    broken("two_layers", edit_json(("config", "convs"), [4, 6]))
    broken("no_data", edit_json(("data", "data_dir"), str(root / "gone")))
    hand = HandNet(default_config((4, 8), 8))
    w["hand"] = save_model(root / "hand", hand, {"kind": "HandNet", "data": {"name": "mnist", "data_dir": str(data)}})  # fmt: skip
    w["afile"] = root / "afile.txt"
    w["afile"].write_text("not a folder")
    w["png"] = root / "digit.png"
    from PIL import Image

    Image.new("L", (28, 28), 0).save(w["png"])
    w["empty"] = root / "empty"
    w["empty"].mkdir()
    bad_data = root / "bad_data"
    make_mnist_folder(bad_data, n_train=20, n_test=10)
    images = bad_data / "MNIST" / "raw" / "train-images-idx3-ubyte"
    images.write_bytes(images.read_bytes()[:2000])
    w["bad_data"] = bad_data
    return w


def _train(w, *extra: str, out: Path | None = None) -> list[str]:
    out = out if out is not None else w["root"] / "new"
    return ["train", "--dataset", "mnist", "--data-dir", str(w["data"]), *TINY, "--out", str(out), *extra]  # fmt: skip


def _prune(w, *extra: str, ckpt: str = "last", out: Path | None = None) -> list[str]:
    out = out if out is not None else w["root"] / "pruned"
    return ["prune", str(w[ckpt]), "--out", str(out), "--device", "cpu", "--quiet", "--targets", "2,3", *extra]  # fmt: skip


def train_cases(w) -> list[tuple[list[str], str]]:
    data = ["--dataset", "mnist", *TINY, "--out", str(w["root"] / "new")]
    return [
        (_train(w, out=w["afile"]), "is a file, not a folder"),
        (_train(w, out=w["afile"] / "sub"), "is a file, so no folder can be made"),
        (_train(w, "--epochs", "abc"), "--epochs: 'abc' is not a whole number"),
        (_train(w, "--epochs", "-3"), "--epochs: '-3' must be at least 1"),
        (_train(w, "--epochs", "0"), "must be at least 1"),
        (_train(w, "--batch-size", "0"), "--batch-size"),
        (_train(w, "--batch-size", "2.5"), "not a whole number"),
        (_train(w, "--lr", "-0.1"), "--lr: '-0.1' must be greater than 0"),
        (_train(w, "--lr", "nan"), "finite"),
        (_train(w, "--label-smoothing", "1.5"), "--label-smoothing must lie in [0, 1)"),
        (_train(w, "--elastic", "9"), "--elastic in [0, 8] pixels"),
        (_train(w, "--augment", "flips"), "invalid choice: 'flips'"),
        (_train(w, "--lr", "fast"), "--lr: 'fast' is not a number"),
        (_train(w, "--fc4", "-5"), "--fc4"),
        (_train(w, "--seed", "-1"), "--seed: '-1' must be at least 0"),
        (_train(w, "--seed", "1e3"), "--seed"),
        (_train(w, "--snapshot-every", "-1"), "--snapshot-every: '-1' must be at least 0"),
        (_train(w, "--nproc", "0"), "--nproc"),
        (_train(w, "--widths", "8,x"), "--widths"),
        (_train(w, "--widths", "8"), "--widths '8': give 2 or 3"),
        (_train(w, "--widths", "0,4"), "--widths '0,4'"),
        (_train(w, "--widths", "4,4,4,4"), "--widths"),
        (_train(w, "--optimizer", "rmsprop"), "invalid choice: 'rmsprop'"),
        (_train(w, "--dataset", "cifar"), "invalid choice: 'cifar'"),
        (["train", *data], "needs --data-dir"),
        (["train", *data, "--data-dir", str(w["root"] / "nowhere")], "does not exist"),
        (["train", *data, "--data-dir", str(w["afile"])], "is a file, not a folder"),
        (["train", *data, "--data-dir", str(w["empty"])], "not found in"),
        (["train", *data, "--data-dir", str(w["bad_data"])], "missing or corrupt"),
        (_train(w, out=w["run"]), "already holds a run"),
        (_train(w, "--resume", "--force", out=w["run"]), "--resume and --force"),
        (_train(w, "--resume", out=w["empty"]), "no finished epoch to resume"),
        (_train(w, "--device", "tpu"), "unknown device"),
        (_train(w, "--device", "cuda:7"), "cuda"),
        (_train(w, "--bogus"), "unrecognized arguments: --bogus"),
    ]


def eval_cases(w) -> list[tuple[list[str], str]]:
    def ev(name: str, *extra: str) -> list[str]:
        return ["eval", str(w[name]) if name in w else name, "--device", "cpu", "--quiet", *extra]

    return [
        (ev(str(w["root"] / "missing")), "does not exist"),
        (ev("png"), "is not a checkpoint"),
        (ev("afile"), "is not a checkpoint"),
        (ev("truncated"), "truncated or corrupt"),
        (ev("no_weights"), "has no model.safetensors"),
        (ev("garbled_json"), "is corrupt"),
        (ev("pickled"), "truncated or corrupt"),
        (ev("foreign"), "unknown architecture"),
        (ev("narrower"), "has shape"),
        (ev("two_layers"), "another architecture"),
        (ev("no_data"), "does not exist"),
        (ev("last", "--split", "dev"), "invalid choice: 'dev'"),
        (ev("last", "--out", str(w["afile"])), "is a file, not a folder"),
        (ev("last", "--data-dir", str(w["bad_data"])), "missing or corrupt"),
    ]


def prune_cases(w) -> list[tuple[list[str], str]]:
    return [
        (_prune(w, "--targets", "500,900"), "conv1 has 4 channels, so its target must be from 1 to 4, not 500"),
        (_prune(w, "--targets", "abc"), "--targets 'abc' is not a list of whole numbers"),
        (_prune(w, "--targets", "1,2,3,4"), "names 4 conv layers but the network has 3 (4,6,8)"),
        (_prune(w, "--targets", "0,2"), "not 0"),
        (_prune(w, "--targets", "2,7"), "conv2 has 6 channels"),
        (_prune(w, "--targets", ""), "--targets"),
        (_prune(w, "--weights", "foo=1"), "unknown criterion 'foo'"),
        (_prune(w, "--weights", "variation=-1"), "--weights"),
        (_prune(w, "--weights", "variation=0"), "at least one criterion"),
        (_prune(w, "--weights", "variation"), "name=number"),
        (_prune(w, "--budget", "-1"), "--budget: '-1' must be 0 or more"),
        (_prune(w, "--budget", "x"), "--budget"),
        (_prune(w, "--tolerance", "-0.1"), "--tolerance: '-0.1' must be 0 or more"),
        (_prune(w, "--tolerance", "inf"), "--tolerance: 'inf' must be a finite number"),
        (_prune(w, "--iterations", "0"), "--iterations"),
        (_prune(w, "--final-epochs", "x"), "--final-epochs"),
        (_prune(w, "--epochs", "-2"), "--epochs"),
        (_prune(w, "--seed", "-2"), "--seed"),
        (_prune(w, ckpt="hand"), "holds a HandNet, not a SimpleConvNet"),
        (_prune(w, ckpt="truncated"), "truncated or corrupt"),
        (_prune(w, ckpt="png"), "is not a checkpoint"),
        (_prune(w, ckpt="no_data"), "does not exist"),
        (_prune(w, out=w["run"]), "already holds a run"),
        (_prune(w, "--resume", out=w["empty"]), "no finished pruning iteration"),
        (_prune(w, "--device", "gpu"), "device"),
    ]  # fmt: skip


def test_bad_inputs_in_process(world, capsys, monkeypatch) -> None:
    monkeypatch.chdir(world["root"])  # a relative default --out would land in the snapshot
    n = check_cases(_main, train_cases(world), world["root"], capsys)
    n += check_cases(_main, eval_cases(world), world["root"], capsys)
    n += check_cases(_main, prune_cases(world), world["root"], capsys)
    assert n >= 60


def test_eval_quiet_prints_nothing_on_stderr(world, capsys) -> None:
    code = run_cli(_main, ["eval", str(world["last"]), "--device", "cpu", "--quiet"])
    out, err = capsys.readouterr()
    assert code == 0 and "test accuracy" in out and err == ""


def test_force_overwrites_and_resume_continues(world, tmp_path, capsys) -> None:
    out = tmp_path / "run"
    shutil.copytree(world["run"], out)
    (out / "iter_3").mkdir()  # a stale folder of another kind of run
    (out / "notes.txt").write_text("mine")
    before = snapshot(out)
    argv = _train(world, out=out)
    assert run_cli(_main, argv) == 2 and snapshot(out) == before
    assert run_cli(_main, [*argv, "--resume"]) == 0  # the run already did its 1 epoch
    assert run_cli(_main, [*argv, "--force"]) == 0
    assert not (out / "iter_3").exists() and (out / "notes.txt").read_text() == "mine"
    meta = json.loads((out / "last" / "model.json").read_text())
    assert meta["epoch"] == 1 and len(meta["history"]) == 1
    capsys.readouterr()


def test_prune_refuses_a_pruned_folder_unless_forced(world, tmp_path, capsys) -> None:
    out = tmp_path / "pruned"
    argv = _prune(world, "--targets", "2,3", "--iterations", "1", "--epochs", "1",
                  "--final-epochs", "1", "--weights", "variation=1", out=out)  # fmt: skip
    assert run_cli(_main, argv) == 0 and (out / "final" / "model.json").is_file()
    assert capsys.readouterr().err == ""  # --quiet: no progress bars
    before = snapshot(out)
    assert run_cli(_main, argv) == 2 and snapshot(out) == before
    assert "--resume to continue it, --force" in one_line(capsys.readouterr().err)
    assert run_cli(_main, [*argv, "--force"]) == 0
    assert (out / "final" / "model.json").stat().st_mtime_ns > before["final/model.json"][2]
