"""Every dissect command on a person's own network (``--model SPEC --weights FILE``), for the
three shapes of tests/dissect/foreign_nets.py, and the bad inputs such a person can give: one
line on stderr, exit code 2, nothing written."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import torch

from dissect.cli import _main
from dissect.infra.errors import AuditError
from dissect.infra.runtime import run_cli
from tests.cli_helpers import assert_one_line_error, run_module
from tests.conftest import make_mnist_folder
from tests.dissect.foreign_nets import tiny_data, train_briefly

NETS_FILE = Path(__file__).resolve().with_name("foreign_nets.py")
LAST = {"ExampleNet": "conv2", "SequentialNet": "conv2.0", "lenet5": "3"}


@pytest.fixture(scope="module")
def saved(tmp_path_factory) -> dict[str, Path]:
    """Each net trained briefly and saved as a plain state dict; plus an MNIST folder."""
    from dissect.foreign import import_model

    folder = tmp_path_factory.mktemp("foreign-cli")
    x, y = tiny_data(10, seed=0)
    paths = {"data": make_mnist_folder(folder / "data", n_train=20, n_test=60)}
    for name in LAST:
        torch.manual_seed(0)
        model = train_briefly(import_model(f"{NETS_FILE}:{name}"), x, y, steps=10)
        paths[name] = folder / f"{name}.pt"
        torch.save(model.state_dict(), paths[name])
    return paths


def _args(saved: dict[str, Path], name: str) -> list[str]:
    return ["--model", f"{NETS_FILE}:{name}", "--weights", str(saved[name]), "--dataset", "mnist",
            "--data-dir", str(saved["data"]), "--device", "cpu", "--quiet"]  # fmt: skip


def _run(argv: list[str], capsys) -> tuple[int, str, str]:
    code = run_cli(_main, argv)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("name", list(LAST))
def test_every_command_runs_on_a_foreign_network(name, saved, tmp_path, capsys) -> None:
    common = _args(saved, name)
    code, out, _ = _run(["layers", *common], capsys)
    assert code == 0 and LAST[name] in out and "class scores:" in out
    out_dir = str(tmp_path / "out")
    code, out, _ = _run(["labels", *common, "--out", out_dir], capsys)
    labels = pd.read_csv(tmp_path / "out" / "labels.csv")
    assert code == 0 and set(labels["layer"].astype(str)) == {
        LAST[name],
        *labels["layer"].astype(str),
    }
    assert labels["description"].notna().all()
    code, out, _ = _run(["contributions", *common, "--layer", LAST[name], "--channel", "2", "--image", "3", "--out", out_dir], capsys)  # fmt: skip
    table = pd.read_csv(next((tmp_path / "out").glob("*_channel2.csv")))
    assert code == 0 and table["c_j"].iloc[-1] == pytest.approx(
        float(table["a_j"].sum()), rel=1e-4, abs=1e-4
    )
    code, out, _ = _run(["audit", *common, "--image", "5", "--out", out_dir], capsys)
    assert code == 0 and "predicted class" in out and f"channels of {LAST[name]}" in out
    code, out, _ = _run(["superstimuli", *common, "--steps", "4", "--out", out_dir], capsys)
    assert code == 0 and (tmp_path / "out" / f"superstimuli_{LAST[name]}.npz").is_file()
    code, out, _ = _run(["superstimuli", *common, "--classes", "--steps", "4", "--out", out_dir], capsys)  # fmt: skip
    assert code == 0 and (tmp_path / "out" / "superstimuli_classes.png").is_file()


class Boom:
    """Unpickling this creates the marker file: what a malicious weights file would do."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (Path.touch, (self.marker,))


def _bad_cases(saved: dict[str, Path], tmp: Path) -> list[tuple[list[str], str]]:
    marker = tmp / "marker"
    evil = tmp / "evil.pt"
    torch.save({"conv1.weight": torch.zeros(1), "payload": Boom(marker)}, evil, pickle_protocol=4)
    state = torch.load(saved["ExampleNet"], weights_only=True)
    state["conv1.weight"] = torch.zeros(4, 1, 3, 3)
    torch.save(state, tmp / "narrow.pt")
    (tmp / "linear.py").write_text("import torch.nn as nn\nclass Flat(nn.Module):\n    def __init__(self):\n        super().__init__()\n        self.fc = nn.Linear(784, 10)\n    def forward(self, x):\n        return self.fc(x.flatten(1))\n")  # fmt: skip
    ex = f"{NETS_FILE}:ExampleNet"
    data = ["--dataset", "mnist", "--data-dir", str(saved["data"]), "--device", "cpu"]
    return [
        (["layers", "--model", ex, "--weights", str(evil)], "unpickling"),
        (["layers", "--model", ex, "--weights", str(saved["SequentialNet"])], "missing conv1.weight"),
        (["layers", "--model", ex, "--weights", str(tmp / "narrow.pt")], "conv1.weight is (4, 1, 3, 3) in the file but (8, 1, 3, 3)"),
        (["layers", "--model", str(tmp / "nowhere.py") + ":Net"], "does not exist"),
        (["layers", "--model", "no_such_package_xyz.models:Net"], "no_such_package_xyz"),
        (["layers", "--model", f"{NETS_FILE}:Nett"], "SequentialNet"),
        (["layers", "--model", ex, "--input", "1,20,20"], "[1, 1, 20, 20]"),
        (["contributions", "--model", ex, "--weights", str(saved["ExampleNet"]), "--layer", "fc1", "--channel", "1", *data], "valid layers are conv1, conv2"),
        (["layers", "--model", f"{tmp / 'linear.py'}:Flat"], "no nn.Conv2d"),
        (["layers", "--model", ex, "--input", "3,28,28", "--normalize", "0.5,0.2,0.5"], "--normalize"),
        (["layers", "--model", ex, "--input", "1,a,28"], "--input"),
        (["layers", "--model", ex, "--model-args", "{not json"], "JSON"),
        (["superstimuli", "--model", ex, "--steps", "0"], "--steps"),
        (["layers"], "no network given"),
    ]  # fmt: skip


def test_bad_inputs_are_one_line_and_write_nothing(saved, tmp_path, capsys) -> None:
    out = tmp_path / "out"
    for argv, needle in _bad_cases(saved, tmp_path):
        code, _, err = _run([*argv, "--out", str(out)] if argv[0] != "layers" else argv, capsys)
        lines = [ln for ln in err.splitlines() if ln.strip()]
        assert code == 2 and len(lines) == 1 and needle in lines[0], (argv, err)
        assert "Traceback" not in err
    assert not (tmp_path / "marker").exists(), "loading the weights ran code from the file"
    assert not out.exists()


def test_bad_weights_as_real_subprocesses(saved, tmp_path) -> None:
    cases = _bad_cases(saved, tmp_path)
    for argv, needle in (cases[0], cases[1], cases[6]):
        assert_one_line_error(run_module("dissect", *argv), needle)
    assert not (tmp_path / "marker").exists()


def test_python_entry_point_takes_the_same_model(saved) -> None:
    import dissect

    specimen = dissect.open_model(
        f"{NETS_FILE}:SequentialNet", saved["SequentialNet"], normalize=[(0.1307, 0.3081)]
    )
    assert specimen.conv_names == ["conv1.0", "conv2.0"] and specimen.logits_name == "head"
    x, _ = tiny_data(2, seed=3)
    split = dissect.score_contributions(specimen, x)
    assert split.relative_error <= 1e-5 and split.non_affine == ()
    with pytest.raises(AuditError, match="pairs for 1 input channel"):
        dissect.open_model(f"{NETS_FILE}:SequentialNet", normalize=[(0, 1), (0, 1)])
