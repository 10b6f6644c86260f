"""Bad input to ``reports run / build / audit``: every option of every stage is checked before
the first stage starts, so a bad one is one ``error:`` line and exit code 2 in a second, not
after minutes of training; no traceback, nothing written."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest

from reports.cli import _main
from tests.conftest import make_mnist_folder
from tests.test_bad_inputs import check_cases


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> dict[str, Path]:
    from dissect.infra.checkpoints import save_model
    from simpleconvnet.model import SimpleConvNet, SimpleConvNetConfig

    root = tmp_path_factory.mktemp("reports-bad")
    data = make_mnist_folder(root / "data", n_train=20, n_test=10)
    w = {"root": root, "data": data, "runs": root / "runs"}
    bad = make_mnist_folder(root / "bad_data", n_train=20, n_test=10)
    labels = bad / "MNIST" / "raw" / "t10k-labels-idx1-ubyte"
    labels.write_bytes(labels.read_bytes()[:12])
    w["bad_data"] = bad
    # a run folder whose train stage never finished: run.json, and a prune stage only
    partial = w["runs"] / "partial"
    (partial / "prune").mkdir(parents=True)
    (partial / "run.json").write_text(json.dumps({"name": "partial"}))
    (partial / "prune" / "stage.json").write_text(json.dumps({"finished": True, "summary": {}}))
    w["partial"] = partial
    report_is_file = w["runs"] / "blocked"
    shutil.copytree(partial, report_is_file)
    (report_is_file / "train").mkdir()
    (report_is_file / "train" / "stage.json").write_text(json.dumps({"finished": True, "summary": {}}))  # fmt: skip
    (report_is_file / "report").write_text("not a folder")
    w["blocked"] = report_is_file
    meta = {"kind": "SimpleConvNet", "data": {"name": "mnist", "data_dir": str(data)}}
    ckpt = save_model(root / "ckpt", SimpleConvNet(SimpleConvNetConfig(convs=(4, 6), fc4=16)), meta)  # fmt: skip
    weights = ckpt / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    w["truncated"] = ckpt
    w["afile"] = root / "afile.txt"
    w["afile"].write_text("not a folder")
    (root / "notes").mkdir()
    return w


def _run(w, *extra: str) -> list[str]:
    return ["run", "--name", "x", "--runs-root", str(w["runs"]), "--dataset", "mnist",
            "--data-dir", str(w["data"]), "--epochs", "1", "--widths", "4,8", "--fc4", "16",
            "--prune-targets", "2,4", "--device", "cpu", "--quiet", *extra]  # fmt: skip


def cases(w) -> list[tuple[list[str], str]]:
    no_data = [a for a in _run(w) if a not in ("--data-dir", str(w["data"]))]
    audit = ["audit", "--name", "mine", "--runs-root", str(w["runs"]), "--device", "cpu", "--quiet"]
    return [
        (_run(w, "--prune-criteria", "bogus"), "--prune-criteria 'bogus': unknown 'bogus'"),
        (_run(w, "--prune-criteria", "variation,bogus"), "unknown 'bogus'"),
        (_run(w, "--prune-criteria", "variation,variation"), "give each once"),
        (_run(w, "--prune-criteria", ""), "--prune-criteria"),
        (_run(w, "--name", "<b>x"), "--name '<b>x' is not a plain name"),
        (_run(w, "--name", "../x"), "is not a plain name"),
        (_run(w, "--name", ".hidden"), "is not a plain name"),
        (_run(w, "--name", ""), "is not a plain name"),
        (_run(w, "--prune-targets", "8,16"), "conv1 has 4 channels (--widths), so it cannot be pruned to 8"),
        (_run(w, "--prune-targets", "2,4,4"), "--prune-targets 2,4,4 does not fit --widths 4,8"),
        (_run(w, "--widths", "4,8,16", "--prune-targets", "2,4,32"), "conv3 has 16 channels"),
        (_run(w, "--prune-targets", "x"), "--prune-targets: 'x' is not a list of whole numbers"),
        (_run(w, "--prune-targets", "0,2"), "every width must be at least 1"),
        (_run(w, "--widths", "4"), "--widths"),
        (_run(w, "--widths", "4,-8"), "--widths"),
        (_run(w, "--epochs", "-1"), "--epochs: '-1' must be at least 1"),
        (_run(w, "--epochs", "abc"), "--epochs: 'abc' is not a whole number"),
        (_run(w, "--finetune-epochs", "0"), "--finetune-epochs"),
        (_run(w, "--superstimulus-steps", "abc"), "--superstimulus-steps"),
        (_run(w, "--prune-iterations", "0"), "--prune-iterations"),
        (_run(w, "--fc4", "9"), "--fc4 9: HandNet's closed-form head"),
        (_run(w, "--seed", "-1"), "--seed"),
        (_run(w, "--nproc", "0"), "--nproc"),
        (_run(w, "--dataset", "svhn"), "invalid choice: 'svhn'"),
        (_run(w, "--data-dir", str(w["root"] / "nowhere")), "does not exist"),
        (_run(w, "--data-dir", str(w["afile"])), "is a file, not a folder"),
        (_run(w, "--data-dir", str(w["root"] / "notes")), "not found in"),
        (_run(w, "--data-dir", str(w["bad_data"])), "missing or corrupt"),
        (no_data, "needs --data-dir"),
        (_run(w, "--device", "cuda:5"), "cuda"),
        (_run(w, "--device", "abacus"), "unknown device"),
        (_run(w, "--runs-root", str(w["afile"])), "is a file, not a folder"),
        (_run(w, "--runs-root", str(w["afile"] / "sub")), "is a file, so no folder can be made"),
        (["build", str(w["root"] / "nowhere")], "is not a folder"),
        (["build", str(w["root"] / "notes")], "is not a run folder"),
        (["build", str(w["partial"])], "stage 'train' has not finished"),
        (["build", str(w["blocked"])], "report is a file"),
        (["build"], "give a run folder (e.g. runs/default) or the networks"),
        ([*audit, "--name", "<b>x", "--model", "x.py:Net"], "--name '<b>x' is not a plain name"),
        (audit, "no network given"),
        ([*audit, str(w["truncated"]), "--superstimulus-steps", "0"], "--superstimulus-steps"),
        ([*audit, str(w["truncated"]), "--weights", "w.pt"], "only apply with --model"),
        ([*audit, str(w["truncated"])], "truncated or corrupt"),
        ([*audit, str(w["truncated"]), "--runs-root", str(w["afile"])], "is a file, so no folder"),
        ([*audit, str(w["root"] / "missing")], "does not exist"),
    ]  # fmt: skip


def test_bad_inputs_in_process(world, capsys, monkeypatch) -> None:
    monkeypatch.chdir(world["root"])
    t0 = time.perf_counter()
    assert check_cases(_main, cases(world), world["root"], capsys) >= 40
    assert time.perf_counter() - t0 < 30  # checked up front: no stage ever starts
