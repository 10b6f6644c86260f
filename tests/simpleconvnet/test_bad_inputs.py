"""Bad input to ``simpleconvnet train / eval / prune``: each is one ``error:`` line on stderr,
exit code 2, no traceback, checked before any work, and the folder it names is left exactly as
it was. Then ``--force`` and ``--resume`` on a folder holding a run, and a training process
killed at random moments (and at chosen points of a checkpoint write) that ``--resume`` ends
with the weights of an uninterrupted run."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from dissect.infra.runtime import run_cli
from simpleconvnet.cli import _main
from tests.cli_helpers import ROOT
from tests.conftest import make_mnist_folder
from tests.test_bad_inputs import BIN, check_cases, one_line, snapshot

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


# -- interrupted training ---------------------------------------------------------------------
KILL_ARGS = ["--epochs", "12", "--widths", "4,6", "--fc4", "8", "--batch-size", "20",
             "--snapshot-every", "1", "--device", "cpu", "--quiet", "--seed", "3"]  # fmt: skip


def _state_epoch(out: Path) -> int:
    try:
        return int(json.loads((out / "last" / "training_state.json").read_text())["epoch"])
    except (OSError, ValueError, KeyError):
        return 0


def _assert_last_loads(out: Path) -> int:
    """``last/`` loads after a kill and is one epoch's checkpoint (its optimiser state, its
    weights' JSON and its history agree); returns its epoch."""
    from simpleconvnet import load_checkpoint

    _, meta = load_checkpoint(out / "last")
    state = json.loads((out / "last" / "training_state.json").read_text())
    assert state["epoch"] == meta["epoch"] == len(meta["history"])
    return int(meta["epoch"])


def _history(out: Path):
    """``history.csv`` without the wall-clock column (which a resumed run cannot reproduce)."""
    import pandas as pd

    return pd.read_csv(out / "history.csv").drop(columns="seconds")


@pytest.fixture(scope="module")
def kill_data(tmp_path_factory) -> tuple[Path, bytes, Path]:
    """Tiny data, the weights of an uninterrupted run on it (in this process), and its folder."""
    root = tmp_path_factory.mktemp("kill")
    data = make_mnist_folder(root / "data", n_train=60, n_test=40)
    whole = root / "whole"
    argv = ["train", "--dataset", "mnist", "--data-dir", str(data), *KILL_ARGS, "--out", str(whole)]  # fmt: skip
    assert run_cli(_main, argv) == 0
    return data, (whole / "last" / "model.safetensors").read_bytes(), whole


def test_training_killed_at_random_moments_resumes_to_the_same_weights(kill_data, tmp_path) -> None:  # fmt: skip
    data, expected, whole = kill_data
    out = tmp_path / "killed"
    argv = [str(BIN / "simpleconvnet"), "train", "--dataset", "mnist", "--data-dir", str(data),
            *KILL_ARGS, "--out", str(out)]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    rng = random.Random(20240611)
    kills = 0
    for attempt in range(3):
        start = _state_epoch(out)
        proc = subprocess.Popen([*argv, *(["--resume"] if attempt else [])], cwd=ROOT, env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip
        deadline = time.monotonic() + 120
        while _state_epoch(out) <= start and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.002)
        time.sleep(rng.uniform(0.0, 0.03))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.wait(timeout=60)
        assert _assert_last_loads(out) >= 1
    assert kills >= 2, "training ended before it could be killed: give it more epochs"
    done = subprocess.run([*argv, "--resume"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert _assert_last_loads(out) == 12
    assert (out / "last" / "model.safetensors").read_bytes() == expected
    assert _history(out).equals(_history(whole))


CHILD = """
import os, signal, sys
from contextlib import contextmanager
from pathlib import Path
point, target = sys.argv[1], int(sys.argv[2])
seen = {"n": 0}

def kill_at(name):
    seen["n"] += 1
    if seen["n"] == target:
        os.kill(os.getpid(), signal.SIGKILL)

def in_last(path):  # last/ itself, or the folder that a new last/ is written into
    name = Path(path).name
    return name == "last" or name.startswith("last.tmp-")

import simpleconvnet.checkpoint as scn_ck
import simpleconvnet.train as train
if point == "state":  # last/'s optimiser state written, its weights not yet
    save_model = train.save_model
    def patched(directory, *a, **k):
        if in_last(directory):
            kill_at("state")
        return save_model(directory, *a, **k)
    train.save_model = patched
elif point in ("weights", "json"):  # half of last/'s weights written, or weights without JSON
    import dissect.infra.checkpoints as ck
    save_file, write_text = ck.save_file, ck.atomic_write_text
    def half_save(state, path, *a, **k):
        if point == "weights" and in_last(Path(path).parent):
            Path(path).write_bytes(b"half a file")
            kill_at("weights")
        return save_file(state, path, *a, **k)
    def json_write(target_path, text):
        if point == "json" and in_last(Path(target_path).parent):
            kill_at("json")
        return write_text(target_path, text)
    ck.save_file, ck.atomic_write_text = half_save, json_write
elif point in ("swap", "exchanged"):  # the new last/ complete: just before / after its swap
    swap_in = scn_ck._swap_in
    def swap(tmp, target):
        if point == "swap" and Path(target).name == "last":
            kill_at("swap")
        swap_in(tmp, target)
        if point == "exchanged" and Path(target).name == "last":
            kill_at("exchanged")
    scn_ck._swap_in = swap
elif point == "gap":  # no atomic exchange: killed between its two renames
    scn_ck._exchange = lambda a, b: False
    rename = os.rename
    def renamed(src, dst):
        rename(src, dst)
        if Path(src).name == "last":
            kill_at("gap")
    scn_ck.os.rename = renamed
elif point == "best":  # best/ swapped in, last/ not yet
    folder = train.atomic_folder
    @contextmanager
    def patched_folder(target):
        with folder(target) as tmp:
            yield tmp
        if Path(target).name == "best":
            kill_at("best")
    train.atomic_folder = patched_folder
elif point == "tables":  # last/ swapped in, history.csv and confusion.csv not yet
    tables = train._write_tables
    def patched_tables(*a, **k):
        kill_at("tables")
        return tables(*a, **k)
    train._write_tables = patched_tables
from simpleconvnet.cli import main
main(sys.argv[3:])
"""


#: Where a training process is killed during the 3rd write of ``last/`` (for ``best``: after
#: the 2nd write of ``best/``, at some epoch), and the epoch ``last/`` then holds (None: any).
POINTS = {"state": 2, "weights": 2, "json": 2, "swap": 2, "exchanged": 3, "gap": 3,
          "best": None, "tables": 3}  # fmt: skip


@pytest.fixture(scope="module")
def killed_in_writes(kill_data, tmp_path_factory) -> dict[str, tuple[list[str], Path, int, str]]:
    """For each point of a checkpoint write, a training process killed there (all started at
    once): ``(train argv, out folder, exit code, stderr)``."""
    data = kill_data[0]
    root = tmp_path_factory.mktemp("killed")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    started = {}
    for point in POINTS:
        n = "2" if point in ("best", "gap") else "3"  # the 1st last/ needs no rename of one
        train = ["train", "--dataset", "mnist", "--data-dir", str(data), *KILL_ARGS, "--out", str(root / point)]  # fmt: skip
        proc = subprocess.Popen([sys.executable, "-c", CHILD, point, n, *train], cwd=ROOT,
                                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)  # fmt: skip
        started[point] = (train, root / point, proc)
    found = {}
    for point, (train, out, proc) in started.items():
        _, err = proc.communicate(timeout=240)
        found[point] = (train, out, proc.returncode, err)
    return found


def _resume_after_kill(killed_in_writes, point: str) -> Path:
    """``last/`` loads (as the epoch :data:`POINTS` names) after the kill; ``--resume`` runs
    to the end and leaves no temporary folder; returns the run folder."""
    train, out, code, err = killed_in_writes[point]
    assert code == -signal.SIGKILL, err
    epoch = _assert_last_loads(out)
    assert epoch == POINTS[point] if POINTS[point] is not None else 1 <= epoch < 12
    assert run_cli(_main, [*train, "--resume"]) == 0
    assert sorted(p.name for p in out.iterdir()) == [
        "best", "confusion.csv", "history.csv", "last", "snapshots.safetensors"
    ]  # fmt: skip
    return out


@pytest.mark.parametrize("point", ["json", "state", "weights", "swap", "exchanged", "best", "tables"])  # fmt: skip
def test_killed_while_writing_a_checkpoint_resumes_to_the_same_run(kill_data, killed_in_writes, point) -> None:  # fmt: skip
    """Killed at each point of an epoch's writes: last/ is one consistent checkpoint, and
    --resume ends with the uninterrupted run's weights, best/, history and snapshots."""
    _, expected, whole = kill_data
    out = _resume_after_kill(killed_in_writes, point)
    assert (out / "last" / "model.safetensors").read_bytes() == expected
    for name in ("best/model.safetensors", "snapshots.safetensors", "confusion.csv"):
        assert (out / name).read_bytes() == (whole / name).read_bytes(), name
    assert list(_history(out).columns) == list(_history(whole).columns)
    assert _history(out).equals(_history(whole))


def test_killed_between_the_renames_of_a_folder_swap(kill_data, killed_in_writes) -> None:
    """Where a folder cannot be exchanged in one step it is swapped by two renames: killed in
    between, no last/ is left, and recover_folder puts the new one in place."""
    from simpleconvnet.checkpoint import recover_folder

    _, out, code, err = killed_in_writes["gap"]
    assert code == -signal.SIGKILL, err
    assert not (out / "last").exists()
    recover_folder(out / "last")
    out = _resume_after_kill(killed_in_writes, "gap")
    assert (out / "last" / "model.safetensors").read_bytes() == kill_data[1]
    assert _history(out).equals(_history(kill_data[2]))


def test_resume_refuses_a_last_folder_that_mixes_two_epochs(kill_data, tmp_path, capsys) -> None:
    """A last/ written by an older version, killed between its files (the optimiser state of
    one epoch, the model.json of the one before), is refused instead of resumed wrongly."""
    data, _, whole = kill_data
    out = tmp_path / "mixed"
    shutil.copytree(whole, out)
    state_file = out / "last" / "training_state.json"
    state = json.loads(state_file.read_text())
    state_file.write_text(json.dumps({**state, "epoch": 13}))
    argv = ["train", "--dataset", "mnist", "--data-dir", str(data), *KILL_ARGS, "--out", str(out), "--resume"]  # fmt: skip
    assert run_cli(_main, argv) == 2
    assert "mixes two epochs" in one_line(capsys.readouterr().err)
