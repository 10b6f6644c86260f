"""A training process killed at random moments (and at chosen points of a checkpoint write):
``last/`` stays one consistent checkpoint and ``--resume`` ends with the weights of an
uninterrupted run."""

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

from dissect.infra.runtime import run_cli
from simpleconvnet.cli import _main
from tests.cli_helpers import ROOT
from tests.conftest import make_mnist_folder
from tests.test_bad_inputs import BIN, one_line

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
    assert state["epoch"] == meta.epoch == len(meta.history)
    return int(meta.epoch)


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
import simpleconvnet.train_folder as train
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
    tables = train.write_tables
    def patched_tables(*a, **k):
        kill_at("tables")
        return tables(*a, **k)
    train.write_tables = patched_tables
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
