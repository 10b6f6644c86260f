"""What every command line of simpleconvnet, handnet and reports shares: ``--help`` shows
every option with its default, ``--quiet`` exists on every command, a parse error is one line,
and bad input given to the real console scripts is one line with exit code 2. Plus the helpers
the bad-input suites of each package use (tests/*/test_bad_inputs.py): a snapshot of a folder,
an in-process run of a command, and console scripts run in parallel.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import pytest

from tests.cli_helpers import ROOT, assert_help_documents_every_option

BIN = Path(sys.executable).parent

Snapshot = dict[str, tuple[str, int, int]]


def snapshot(root: Path) -> Snapshot:
    """Every path below ``root`` (itself included) with its kind, size and mtime."""
    found: Snapshot = {}
    for path in [root, *root.rglob("*")]:
        st = path.lstat()
        kind = "link" if path.is_symlink() else "dir" if path.is_dir() else "file"
        found[str(path.relative_to(root))] = (kind, st.st_size if kind == "file" else 0, st.st_mtime_ns)  # fmt: skip
    return found


def one_line(err: str) -> str:
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert "Traceback" not in err, err
    assert len(lines) == 1, err
    assert lines[0].startswith("error: "), err
    return lines[0]


def run_in_process(main: Callable, argv: list[str], capsys) -> tuple[int, str, str]:
    """``run_cli(main, argv)`` as the console script runs it: exit code, stdout, stderr."""
    from dissect.infra.runtime import run_cli

    capsys.readouterr()
    code = run_cli(main, argv)
    out, err = capsys.readouterr()
    return code, out, err


def check_cases(
    main: Callable,
    cases: Iterable[tuple[list[str], str]],
    root: Path,
    capsys,
    code: int = 2,
) -> int:
    """Run each bad ``argv`` in-process: exit code 2, one ``error:`` line holding the needle,
    no traceback, nothing printed on stdout, and ``root`` exactly as it was. Returns the count."""
    n = 0
    for argv, needle in cases:
        before = snapshot(root)
        got, out, err = run_in_process(main, argv, capsys)
        assert got == code, (argv, got, err)
        line = one_line(err)
        assert needle in line, (argv, line)
        assert out == "", (argv, out)
        assert snapshot(root) == before, (argv, "the folder changed")
        n += 1
    return n


def run_scripts(
    cases: list[tuple[list[str], str]], root: Path, env: dict[str, str] | None = None
) -> int:
    """Run each ``[script, args...]`` as a real console-script subprocess, as many at once as
    there are cores; each must exit 2 with one ``error:`` line holding its needle, print
    nothing on stdout, and ``root`` must not change."""
    before = snapshot(root)
    full_env = {**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}
    width = max(2, min(4, os.cpu_count() or 2))
    pending = list(cases)
    running: list[tuple[list[str], str, subprocess.Popen]] = []
    done = 0
    while pending or running:
        while pending and len(running) < width:
            argv, needle = pending.pop(0)
            proc = subprocess.Popen(
                [str(BIN / argv[0]), *argv[1:]], cwd=ROOT, env=full_env, text=True,
                stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            )  # fmt: skip
            running.append((argv, needle, proc))
        argv, needle, proc = running.pop(0)
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 2, (argv, proc.returncode, err)
        assert needle in one_line(err), (argv, err)
        assert out == "", (argv, out)
        done += 1
    assert snapshot(root) == before
    return done


# -- every command: --help shows every default, --quiet exists ---------------------------------
def _parsers() -> list[tuple[str, argparse.ArgumentParser]]:
    from handnet.cli import build_parser as handnet_parser
    from reports.cli import build_parser as reports_parser
    from simpleconvnet.cli import build_parser as scn_parser

    found = []
    for build in (scn_parser, handnet_parser, reports_parser):
        parser = build()
        sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        found += [(f"{parser.prog} {name}", p) for name, p in sub.choices.items()]
    return found


COMMANDS = [name for name, _ in _parsers()]


def test_every_command_is_covered() -> None:
    assert COMMANDS == [
        "simpleconvnet train", "simpleconvnet eval", "simpleconvnet prune",
        "handnet build", "handnet finetune",
        "reports run", "reports build", "reports audit",
    ]  # fmt: skip


@pytest.mark.parametrize("command", COMMANDS)
def test_help_shows_every_option_with_its_default(command: str, capsys) -> None:
    from handnet.cli import _main as handnet_main
    from reports.cli import _main as reports_main
    from simpleconvnet.cli import _main as scn_main

    parser = dict(_parsers())[command]
    prog, sub = command.split()
    main = {"simpleconvnet": scn_main, "handnet": handnet_main, "reports": reports_main}[prog]
    with pytest.raises(SystemExit) as info:
        main([sub, "--help"])
    assert info.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    assert_help_documents_every_option(parser, text, command)


@pytest.mark.parametrize(
    ("main_of", "argv", "needle"),
    [
        ("simpleconvnet", ["train", "--epochs"], "expected one argument"),
        ("simpleconvnet", ["train", "--bogus"], "unrecognized arguments: --bogus"),
        ("handnet", ["finetune", "x"], "--mode"),
        ("reports", ["run", "--widths", "4,x"], "--widths"),
        ("reports", [], "COMMAND"),
    ],
)
def test_parse_errors_are_one_line(main_of: str, argv: list[str], needle: str, capsys) -> None:
    import importlib

    main = importlib.import_module(f"{main_of}.cli")._main
    code, out, err = run_in_process(main, argv, capsys)
    assert code == 2 and needle in one_line(err) and f"see {main_of}" in err


# -- the real console scripts, all at once (each starts a Python with torch: about 4 s) ---------
def test_bad_inputs_as_console_scripts(tmp_path) -> None:
    from dissect.infra.checkpoints import CheckpointMeta, save_model
    from simpleconvnet.model import SimpleConvNet, SimpleConvNetConfig
    from tests.conftest import make_mnist_folder

    data = make_mnist_folder(tmp_path / "data", n_train=20, n_test=10)
    meta = CheckpointMeta(
        kind="SimpleConvNet", mode="trained", data={"name": "mnist", "data_dir": str(data)}
    )
    ckpt = save_model(tmp_path / "ckpt", SimpleConvNet(SimpleConvNetConfig((32, 64, 128))), meta)
    truncated = save_model(tmp_path / "truncated", SimpleConvNet(SimpleConvNetConfig((4, 6))), meta)
    (truncated / "model.safetensors").write_bytes(b"\x00" * 64)
    afile = tmp_path / "afile.txt"
    afile.write_text("not a folder")
    run = tmp_path / "run"
    (run / "last").mkdir(parents=True)
    (run / "history.csv").write_text("epoch\n1\n")
    partial = tmp_path / "runs" / "partial"
    partial.mkdir(parents=True)
    (partial / "run.json").write_text(json.dumps({"name": "partial"}))
    prune = ["prune", str(ckpt), "--out", str(tmp_path / "pruned")]
    reports = ["reports", "run", "--runs-root", str(tmp_path / "runs"), "--dataset", "mnist",
               "--data-dir", str(data), "--widths", "4,8", "--prune-targets", "2,4", "--quiet"]  # fmt: skip
    cases = [
        (["simpleconvnet", "train", "--out", str(afile)], "is a file, not a folder"),
        (["simpleconvnet", *prune, "--targets", "500,900"], "conv1 has 32 channels, so its target must be from 1 to 32, not 500"),
        (["simpleconvnet", *prune, "--targets", "abc"], "--targets 'abc' is not a list of whole numbers"),
        (["simpleconvnet", "eval", str(truncated)], "truncated or corrupt"),
        (["simpleconvnet", "train", "--epochs", "-1"], "--epochs: '-1' must be at least 1"),
        (["handnet", "build", "--widths", "8,20", "--out", str(tmp_path / "hand")], "--widths '8,20'"),
        (["handnet", "finetune", str(ckpt), "--mode", "free", "--out", str(tmp_path / "ft")], "is not a HandNet checkpoint"),
        (["handnet", "finetune", str(ckpt), "--mode", "free", "--out", str(run)], "already holds a run"),
        ([*reports, "--prune-criteria", "bogus"], "--prune-criteria 'bogus': unknown 'bogus'"),
        ([*reports, "--name", "<b>x"], "--name '<b>x' is not a plain name"),
        (["reports", "build", str(partial)], "stage 'train' has not finished"),
    ]  # fmt: skip
    t0 = time.perf_counter()
    assert run_scripts(cases, tmp_path) == 11
    assert time.perf_counter() - t0 < 120  # each refused before any work (no stage, no epoch)
