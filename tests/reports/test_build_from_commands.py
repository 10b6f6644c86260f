"""A person trains, prunes, builds and fine-tunes with the commands, each into its own folder,
and `reports build --train ... --pruned ...` makes the report of those runs: the same numbers
as `reports run` with the same seeds and settings (the tiny run of conftest)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from tests.reports.conftest import run_reports

SETTINGS = ["--device", "cpu", "--quiet"]


def _sh(main, *argv: str) -> None:
    assert main(list(argv)) == 0, argv


@pytest.fixture(scope="module")
def by_hand(tiny_run: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The tiny run's networks made again with the commands, with its settings."""
    from handnet.cli import _main as handnet
    from simpleconvnet.cli import _main as simpleconvnet

    data = json.loads((tiny_run / "run.json").read_text())["data_dir"]
    root = tmp_path_factory.mktemp("commands")
    d = {k: root / k for k in ("scn", "pruned", "hand", "constrained", "free")}
    _sh(simpleconvnet, "train", "--dataset", "mnist", "--data-dir", data, "--epochs", "1",
        "--widths", "4,8", "--fc4", "16", "--snapshot-every", "25", "--out", str(d["scn"]), *SETTINGS)  # fmt: skip
    _sh(simpleconvnet, "prune", str(d["scn"] / "last"), "--iterations", "1", "--targets", "2,4",
        "--epochs", "1", "--final-epochs", "1", "--superstimulus-steps", "8",
        "--out", str(d["pruned"]), *SETTINGS)  # fmt: skip
    _sh(handnet, "build", "--dataset", "mnist", "--data-dir", data, "--widths", "2,4", "--fc4", "16",
        "--out", str(d["hand"]), *SETTINGS)  # fmt: skip
    for mode in ("constrained", "free"):
        _sh(handnet, "finetune", str(d["hand"]), "--mode", mode, "--epochs", "1",
            "--snapshot-every", "25", "--out", str(d[mode]), *SETTINGS)  # fmt: skip
    return d


def _close(a, b) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-9)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_close(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_close(x, y) for x, y in zip(a, b, strict=True))
    return a == b


def test_a_report_of_the_commands_runs_equals_the_pipelines(
    tiny_run: Path, by_hand: dict[str, Path], tmp_path: Path
) -> None:
    d = by_hand
    code = run_reports(
        "build", "--name", "mine", "--runs-root", str(tmp_path), "--train", str(d["scn"]),
        "--pruned", str(d["pruned"]), "--handnet", str(d["hand"]),
        "--constrained", str(d["constrained"]), "--free", str(d["free"]),
        "--superstimulus-steps", "8", *SETTINGS,
    )  # fmt: skip
    assert code == 0
    mine = tmp_path / "mine"
    assert (mine / "report" / "index.html").is_file()
    compared = 0
    for record in sorted(tiny_run.glob("*/stage.json")):
        stage = record.parent.name
        if not stage.startswith(("measure-", "dissect-", "explain-")):
            continue
        a = json.loads(record.read_text())["summary"]
        b = json.loads((mine / stage / "stage.json").read_text())["summary"]
        assert _close(a, b), (stage, a, b)
        compared += 1
    assert compared >= 10
    prune = json.loads((mine / "prune" / "stage.json").read_text())["summary"]
    pipeline = json.loads((tiny_run / "prune" / "stage.json").read_text())["summary"]
    assert _close(prune["parameters_kept"], pipeline["parameters_kept"])
    assert prune["redundancy"] == pipeline["redundancy"]


def test_runs_that_do_not_belong_together_are_refused(
    by_hand: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import shutil

    from reports.cli import main

    d = by_hand
    copy = tmp_path / "scn-copy"
    shutil.copytree(d["scn"], copy)
    cases = [
        (["--train", str(d["hand"])], "holds a HandNet, not a SimpleConvNet"),
        (["--pruned", str(d["scn"] / "last")], "is a trained checkpoint, not pruned"),
        (["--train", str(copy), "--pruned", str(d["pruned"])], "was made from"),
        (["--constrained", str(tmp_path / "nowhere")], "no such folder"),
        (["--train", str(d["scn"]), "--name", "a/b"], "--name"),
    ]
    for extra, needle in cases:
        with pytest.raises(SystemExit) as exit_:
            main(["build", "--name", "x", "--runs-root", str(tmp_path), *extra, "--quiet"])
        assert exit_.value.code == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and needle in err, (extra, err)
        assert not (tmp_path / "x").exists()


def test_a_network_not_given_is_named_with_the_command_that_makes_it(
    by_hand: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = run_reports("build", "--name", "part", "--runs-root", str(tmp_path),
                       "--train", str(by_hand["scn"]), "--superstimulus-steps", "8", *SETTINGS)  # fmt: skip
    assert code == 0
    out = capsys.readouterr().out
    assert "handnet build --out runs/hand" in out and "--pruned" in out
    html = (tmp_path / "part" / "report" / "index.html").read_text()
    assert "simpleconvnet prune runs/scn/last" in html
