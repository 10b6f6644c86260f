"""``--data-dir`` is only read: torchvision's layout (plain or ``.gz``) and a flat folder of the
four ``*-ubyte.gz`` files both load from a read-only folder that stays exactly as it was (``.gz``
files are unpacked into the cache). And bad inputs to ``dissect`` commands: a parse error is one
line (exit 2, nothing written), every option is checked before the network is loaded where it
can be, ``--help`` shows every default; colour and odd-size PNGs are accepted with a note."""

from __future__ import annotations

import argparse
import gzip
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from dissect.infra.datasets import IDX_FILES, check_data, load_split
from dissect.infra.errors import AuditError
from tests.cli_helpers import assert_help_documents_every_option
from tests.conftest import make_mnist_folder, synthetic_digits, write_idx
from tests.test_bad_inputs import check_cases, run_in_process, snapshot


@pytest.fixture()
def cache(tmp_path, monkeypatch) -> Path:
    folder = tmp_path / "cache"
    monkeypatch.setenv("XDG_CACHE_HOME", str(folder))
    return folder


def _flat(folder: Path, n_train: int = 30, n_test: int = 20, gz: bool = True) -> Path:
    """The four official files in one folder (``.gz`` unless ``gz`` is False)."""
    folder.mkdir(parents=True)
    for prefix, n, seed in (("train", n_train, 1), ("t10k", n_test, 2)):
        images, labels = synthetic_digits(n, seed)
        for kind, array in (("images-idx3", images), ("labels-idx1", labels)):
            plain = folder / f"{prefix}-{kind}-ubyte"
            write_idx(plain, array)
            if gz:
                (folder / f"{plain.name}.gz").write_bytes(gzip.compress(plain.read_bytes()))
                plain.unlink()
    return folder


def _read_only(folder: Path) -> None:
    for path in sorted(folder.rglob("*"), reverse=True):
        path.chmod(0o555 if path.is_dir() else 0o444)
    folder.chmod(0o555)


def _writable(folder: Path) -> None:
    folder.chmod(0o755)
    for path in folder.rglob("*"):
        path.chmod(0o755 if path.is_dir() else 0o644)


def _layouts(root: Path) -> dict[str, tuple[str, Path]]:
    gz_tv = make_mnist_folder(root / "tv-gz", n_train=30, n_test=20)
    for plain in (gz_tv / "MNIST" / "raw").iterdir():
        (plain.parent / f"{plain.name}.gz").write_bytes(gzip.compress(plain.read_bytes()))
        plain.unlink()
    fashion = root / "fashion"
    _flat(fashion / "FashionMNIST" / "raw")
    return {
        "torchvision, unpacked": ("mnist", make_mnist_folder(root / "tv", n_train=30, n_test=20)),
        "torchvision, .gz": ("mnist", gz_tv),
        "flat, .gz": ("mnist", _flat(root / "flat")),
        "flat, unpacked": ("mnist", _flat(root / "flat-plain", gz=False)),
        "class folder (MNIST/) given": ("mnist", gz_tv / "MNIST"),
        "FashionMNIST/raw, .gz": ("fashion-mnist", fashion),
    }


def test_every_layout_loads_from_a_read_only_folder(tmp_path, cache) -> None:
    expected = {
        split: torch.as_tensor(synthetic_digits(n, seed)[1], dtype=torch.int64)
        for split, n, seed in (("train", 30, 1), ("test", 20, 2))
    }
    layouts = _layouts(tmp_path / "data")
    for what, (name, folder) in layouts.items():
        _read_only(folder)
        before = snapshot(folder)
        try:
            check_data(name, str(folder))
            for split in ("train", "test"):
                x, y = load_split(name, split, str(folder))
                assert x.shape == (len(expected[split]), 1, 28, 28), what
                assert torch.equal(y, expected[split]), what
                assert float(x.max()) == pytest.approx(230 / 255), what
            assert snapshot(folder) == before, f"{what}: the data folder changed"
        finally:
            _writable(folder)
    # unpacked torchvision folders are read in place; .gz files are unpacked into the cache
    # (once per source folder: MNIST/ and its parent share one), plain files are linked there
    unpacked = [p for p in cache.rglob("*-ubyte") if not p.is_symlink()]
    assert len(unpacked) == 3 * 4 and len(list(cache.rglob("*-ubyte"))) == 4 * 4


def test_the_cache_is_reused_and_refreshed_when_the_files_change(tmp_path, cache) -> None:
    flat = _flat(tmp_path / "flat")
    load_split("mnist", "test", str(flat))
    (cached,) = cache.rglob("t10k-images-idx3-ubyte")
    stamp = cached.stat().st_mtime_ns
    load_split("mnist", "test", str(flat))
    assert cached.stat().st_mtime_ns == stamp  # not unpacked again
    shutil.rmtree(flat)
    _flat(flat, n_test=40)
    x, _ = load_split("mnist", "test", str(flat))
    assert len(x) == 40


@pytest.mark.parametrize(
    ("damage", "needle"),
    [
        ("truncate-gz", "is not a complete gzip file"),
        ("drop-one", "not found in"),
        ("wrong-magic", "is not an IDX image file"),
        ("label-count", "holds 20 images but t10k-labels 7 labels"),
        ("odd-size", "holds 32x32 images, not 28x28"),
    ],
)
def test_damaged_folders_are_one_clear_line(tmp_path, cache, damage, needle) -> None:
    flat = _flat(tmp_path / "flat")
    target = flat / "t10k-images-idx3-ubyte.gz"
    if damage == "truncate-gz":
        target.write_bytes(target.read_bytes()[:60])
    elif damage == "drop-one":
        target.unlink()
    elif damage == "wrong-magic":
        target.write_bytes(gzip.compress(b"\x00\x00\x08\x01" + bytes(100)))
    else:
        plain = tmp_path / "idx"
        if damage == "label-count":
            write_idx(plain, np.zeros(7, dtype=np.uint8))
            target = flat / "t10k-labels-idx1-ubyte.gz"
        else:
            write_idx(plain, np.zeros((20, 32, 32), dtype=np.uint8))
        target.write_bytes(gzip.compress(plain.read_bytes()))
    with pytest.raises(AuditError) as info:
        check_data("mnist", str(flat))
        load_split("mnist", "test", str(flat))
    assert needle in str(info.value) and "\n" not in str(info.value)


def test_a_truncated_gz_fails_when_unpacked_with_one_line(tmp_path, cache) -> None:
    flat = _flat(tmp_path / "flat")
    target = flat / "train-images-idx3-ubyte.gz"
    target.write_bytes(target.read_bytes()[:-40])  # the header is intact, the end is not
    check_data("mnist", str(flat))  # the cheap check reads only the header
    with pytest.raises(AuditError, match="is not a complete gzip file"):
        load_split("mnist", "train", str(flat))
    assert not [p for p in cache.rglob("*") if p.name.endswith(".tmp")]


def test_an_unwritable_cache_is_one_line(tmp_path, monkeypatch) -> None:
    blocker = tmp_path / "cache-file"
    blocker.write_text("a file where the cache should be")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocker))
    with pytest.raises(AuditError, match="set XDG_CACHE_HOME"):
        load_split("mnist", "train", str(_flat(tmp_path / "flat")))


def test_train_reads_a_read_only_flat_folder(tmp_path, cache, capsys) -> None:
    from dissect.infra.runtime import run_cli
    from simpleconvnet.cli import _main

    flat = _flat(tmp_path / "flat", n_train=40, n_test=20)
    _read_only(flat)
    before = snapshot(flat)
    try:
        argv = ["train", "--dataset", "mnist", "--data-dir", str(flat), "--epochs", "1",
                "--widths", "4,6", "--fc4", "8", "--batch-size", "20", "--snapshot-every", "0",
                "--device", "cpu", "--quiet", "--out", str(tmp_path / "run")]  # fmt: skip
        assert run_cli(_main, argv) == 0
        assert snapshot(flat) == before
    finally:
        _writable(flat)
    assert sorted(IDX_FILES) == sorted(p.name for p in cache.rglob("*-ubyte"))


def test_a_file_system_failure_is_one_line_and_anything_else_a_traceback(capsys) -> None:
    from dissect.infra.runtime import run_cli

    def full_disk(argv):
        raise OSError(28, "No space left on device", "/runs/x/model.safetensors")

    assert run_cli(full_disk, []) == 1
    line = capsys.readouterr().err.strip()
    assert line == ("error: No space left on device (/runs/x/model.safetensors): check the path, "
                    "its permissions and free space")  # fmt: skip

    def refused(argv):
        raise ConnectionRefusedError(111, "Connection refused")

    with pytest.raises(ConnectionRefusedError):  # not a file: a bug or a network problem
        run_cli(refused, [])


# -- a few dissect commands ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> tuple[Path, Path]:
    from dissect.infra.checkpoints import CheckpointMeta, save_model
    from simpleconvnet.model import SimpleConvNet, SimpleConvNetConfig, init_weights

    root = tmp_path_factory.mktemp("dissect-bad")
    data = make_mnist_folder(root / "data", n_train=20, n_test=12)
    model = SimpleConvNet(SimpleConvNetConfig(convs=(4, 6), fc4=16))
    init_weights(model, torch.Generator().manual_seed(0))
    meta = CheckpointMeta(
        kind="SimpleConvNet", mode="trained", data={"name": "mnist", "data_dir": str(data)}
    )
    return save_model(root / "ckpt", model, meta), root


def test_bad_layer_channel_and_image(ckpt, capsys) -> None:
    from dissect.cli import _main

    folder, root = ckpt
    (root / "notes.txt").write_text("not an image")
    out = ["--out", str(root / "out"), "--device", "cpu", "--quiet"]
    cases = [
        (["contributions", str(folder), "--layer", "conv9", "--channel", "1", *out], "valid layers are conv1, conv2"),
        (["contributions", str(folder), "--layer", "conv2", "--channel", "99", *out], "--channel 99"),
        (["audit", str(folder), "--image", "99999", *out], "out of range"),
        (["audit", str(folder), "--image", str(root / "notes.txt"), *out], "is not a readable image"),
        (["audit", str(folder), "--image", str(root / "missing.png"), *out], "does not exist"),
    ]  # fmt: skip
    assert check_cases(_main, cases, root, capsys) == len(cases)


@pytest.mark.parametrize(
    ("mode", "size", "background", "notes"),
    [
        ("RGB", (40, 30), 0, ["converted from RGB to grey", "resized from 40x30 to 28x28"]),
        ("L", (35, 20), 255, ["resized from 35x20 to 28x28", "inverted to white on black"]),
        ("RGBA", (28, 28), 0, ["converted from RGBA to grey"]),
    ],
)
def test_colour_and_odd_size_pngs_are_accepted_with_a_note(ckpt, tmp_path, capsys, mode, size, background, notes) -> None:  # fmt: skip
    from PIL import Image

    from dissect.cli import _main

    folder, _ = ckpt
    image = Image.new(mode, size, background if mode == "L" else (background,) * len(mode))
    path = tmp_path / "digit.png"
    image.save(path)
    argv = ["audit", str(folder), "--image", str(path), "--out", str(tmp_path / "out"), "--device", "cpu", "--quiet"]  # fmt: skip
    code, out, err = run_in_process(_main, argv, capsys)
    assert code == 0, err
    for note in notes:
        assert f"image: {note}" in out
    assert "predicted class" in out and list((tmp_path / "out").glob("*.png"))
    assert os.path.getsize(path) > 0


# -- dissect: parse errors, checks before loading, --help ---------------------------------------
def _dissect_parsers() -> list[tuple[str, argparse.ArgumentParser]]:
    from dissect.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return [(f"dissect {name}", p) for name, p in sub.choices.items()]


DISSECT_COMMANDS = [name for name, _ in _dissect_parsers()]


def test_every_dissect_command_is_covered() -> None:
    assert DISSECT_COMMANDS == [
        "dissect layers", "dissect contributions", "dissect labels", "dissect audit",
        "dissect superstimuli", "dissect explain",
    ]  # fmt: skip


@pytest.mark.parametrize("command", DISSECT_COMMANDS)
def test_dissect_help_shows_every_option_with_its_default(command: str, capsys) -> None:
    from dissect.cli import _main

    parser = dict(_dissect_parsers())[command]
    with pytest.raises(SystemExit) as info:
        _main([command.split()[1], "--help"])
    assert info.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    options = [a for a in parser._actions if a.option_strings and a.help is not argparse.SUPPRESS]
    assert {"--quiet", "--device", "--model", "--weights"} <= {s for a in options for s in a.option_strings}  # fmt: skip
    # the hooks set_defaults adds must not take over an option's default (as --check once did)
    assert not {"func", "check_options"} & {a.dest for a in parser._actions}
    for action, shown in assert_help_documents_every_option(parser, text, command):
        if isinstance(action, argparse._StoreTrueAction):
            assert "(default off)" in shown, (command, shown)
        assert shown.split()[-1] in text, (command, shown)


def test_dissect_parse_errors_are_one_line(ckpt, capsys, monkeypatch) -> None:
    """Non-numbers, numbers out of range, unknown options and choices, a missing --image file:
    one line naming the command and its --help, before anything is read or loaded."""
    import dissect.cli_model
    from dissect.cli import _main

    def never(*args, **kwargs):
        raise AssertionError("a bad option reached the point of loading the network")

    monkeypatch.setattr(dissect.cli_model, "load_subject", never)
    monkeypatch.setattr(dissect.cli_model, "check_inputs", never)
    folder, root = ckpt
    ck, out = str(folder), ["--out", str(root / "out"), "--device", "cpu", "--quiet"]
    contrib = ["contributions", ck, "--layer", "conv2", *out]
    cases = [
        ([*contrib, "--channel", "x"], "argument --channel: 'x' is not a whole number"),
        ([*contrib, "--channel", "0"], "argument --channel: '0' must be at least 1"),
        ([*contrib, "--channel", "-3"], "argument --channel: '-3' must be at least 1"),
        ([*contrib, "--channel", "1.5"], "'1.5' is not a whole number"),
        ([*contrib, "--channel", "1", "--image", "-1"], "argument --image: '-1' must be at least 0"),
        ([*contrib, "--channel", "1", "--image", str(root / "missing.png")], "does not exist: give a test-set index"),
        ([*contrib, "--channel", "1", "--image", str(root)], "is not a file"),
        (["contributions", ck, "--channel", "1", *out], "the following arguments are required: --layer"),
        (["audit", ck, *out], "the following arguments are required: --image"),
        (["audit", ck, "--image", "0", "--top", "0", *out], "argument --top: '0' must be at least 1"),
        (["audit", ck, "--image", "0", "--top", "many", *out], "argument --top: 'many' is not a whole number"),
        (["superstimuli", ck, "--steps", "0", *out], "argument --steps: '0' must be at least 1"),
        (["superstimuli", ck, "--steps", "1e3", *out], "argument --steps: '1e3' is not a whole number"),
        (["superstimuli", ck, "--seed", "-1", *out], "argument --seed: '-1' must be at least 0"),
        (["superstimuli", ck, "--seed", str(2**64), *out], f"must be at most {2**64 - 1}"),
        (["superstimuli", ck, "--seed", "x", *out], "argument --seed: 'x' is not a whole number"),
        (["superstimuli", ck, "--layer", "conv1", "--classes", *out], "not allowed with argument"),
        (["superstimuli", ck, "--param", "wavelets", *out], "argument --param: invalid choice: 'wavelets'"),
        (["explain", ck, "--draws", "19", *out], "argument --draws: '19' must be at least 20"),
        (["explain", ck, "--draws", "lots", *out], "argument --draws: 'lots' is not a whole number"),
        (["explain", ck, "--class", "-1", *out], "argument --class: '-1' must be at least 0"),
        (["explain", ck, "--class", "seven", *out], "argument --class: 'seven' is not a whole number"),
        (["explain", ck, "--top", "0", *out], "argument --top: '0' must be at least 1"),
        (["explain", ck, "--split", "val", *out], "argument --split: invalid choice: 'val'"),
        (["layers", ck, "--bogus"], "unrecognized arguments: --bogus"),
        (["layers", ck, "--quiet=yes"], "--quiet"),
        (["frobnicate"], "invalid choice: 'frobnicate'"),
        ([], "the following arguments are required: COMMAND"),
    ]  # fmt: skip
    assert check_cases(_main, cases, root, capsys) == len(cases)
    for argv, _ in cases:
        code, _, err = run_in_process(_main, argv, capsys)
        command = f"dissect {argv[0]}" if argv and argv[0] != "frobnicate" else "dissect"
        assert err.strip().endswith(f"; see {command} --help"), (argv, err)


def test_dissect_options_are_checked_before_the_network_is_loaded(ckpt, capsys, monkeypatch) -> None:  # fmt: skip
    """The device, --out, the checkpoint's metadata, the data set's files, an image file and the
    model options: refused in one line without loading the network or the images."""
    import dissect.cli_model
    from dissect.cli import _main

    def never(*args, **kwargs):
        raise AssertionError("a bad option reached the point of loading the network")

    monkeypatch.setattr(dissect.cli_model, "load_subject", never)
    folder, root = ckpt
    (root / "afile.txt").write_text("a file where --out should be")
    (root / "notes.txt").write_text("not an image")
    ck, cpu = str(folder), ["--device", "cpu", "--quiet"]
    out = ["--out", str(root / "out"), *cpu]
    contrib = ["contributions", ck, "--layer", "conv2", "--channel", "1"]
    cases = [
        ([*contrib, "--out", str(root / "afile.txt"), *cpu], "is a file, not a folder"),
        ([*contrib, "--out", str(root / "afile.txt" / "sub"), *cpu], "so no folder can be made there"),
        ([*contrib, "--device", "tpu", "--out", str(root / "out")], "unknown device 'tpu'"),
        ([*contrib, "--dataset", "mnist", "--data-dir", str(root / "nowhere"), *out], "does not exist: check --data-dir"),
        ([*contrib, "--dataset", "kmnist", *out], "unknown data set 'kmnist'"),
        (["audit", ck, "--image", str(root / "notes.txt"), *out], "is not a readable image"),
        (["explain", ck, "--data-dir", str(root / "nowhere"), *out], "does not exist: check --data-dir"),
        (["labels", str(root / "no-ckpt"), *out], "does not exist"),
        (["superstimuli", str(root), *out], "is not a checkpoint"),
        (["superstimuli", ck, "--weights", "w.pt", *out], "--weights only apply with --model"),
        (["layers", "--model", "x.py:Net", "--input", "1,a,28", *cpu], "--input"),
        (["layers", *cpu], "no network given"),
    ]  # fmt: skip
    assert check_cases(_main, cases, root, capsys) == len(cases)
