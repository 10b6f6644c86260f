"""Loading a network a person brings: a class from a file or module, weights without pickles."""

from __future__ import annotations

import builtins
import collections
import pathlib
import pickle
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from dissect.foreign import (
    import_model,
    load_model,
    load_weights,
    parse_model_args,
    read_state_dict,
)
from dissect.infra.errors import AuditError

MODEL_SOURCE = textwrap.dedent(
    """
    from __future__ import annotations

    from dataclasses import dataclass

    import torch
    import torch.nn.functional as F
    from torch import nn


    @dataclass(frozen=True)
    class TinyConfig:
        channels: int = 2


    class TinyNet(nn.Module):
        def __init__(self, channels: int = 2, classes: int = 3) -> None:
            super().__init__()
            self.conv1 = nn.Conv2d(1, channels, 3)
            self.conv2 = nn.Conv2d(channels, 2 * channels, 3)
            self.fc4 = nn.Linear(2 * channels * 4 * 4, 8)
            self.fc5 = nn.Linear(8, classes)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            x = F.relu(self.conv1(x))
            x = F.relu(self.conv2(x))
            return self.fc5(self.fc4(x.flatten(1)))


    class Helper:
        pass


    def make_net(channels: int) -> TinyNet:
        return TinyNet(channels=TinyConfig(channels).channels)


    def make_number() -> int:
        return 3
    """
)
MODULE_NAME = "foreign_tinynet"
StateDict = dict[str, torch.Tensor]


def one_line_error(excinfo: pytest.ExceptionInfo[AuditError]) -> str:
    message = str(excinfo.value)
    assert message and "\n" not in message
    return message


@pytest.fixture()
def model_file(tmp_path: Path) -> Path:
    path = tmp_path / "tinynet.py"
    path.write_text(MODEL_SOURCE)
    return path


@pytest.fixture()
def importable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """``tmp_path`` on sys.path, holding ``foreign_tinynet.py``; forgotten afterwards."""
    (tmp_path / f"{MODULE_NAME}.py").write_text(MODEL_SOURCE)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    for name in [MODULE_NAME, "foreign_broken"]:
        sys.modules.pop(name, None)


def tiny_net(model_file: Path, seed: int, channels: int = 2) -> nn.Module:
    torch.manual_seed(seed)
    return import_model(f"{model_file}:TinyNet", {"channels": channels})


def forward(model: nn.Module) -> torch.Tensor:
    x = torch.linspace(-1, 1, 2 * 8 * 8).reshape(2, 1, 8, 8)
    with torch.no_grad():
        return model(x)


# --- import_model ---------------------------------------------------------------------------


def test_a_class_is_imported_from_a_file_path(model_file: Path) -> None:
    model = import_model(f"{model_file}:TinyNet")
    assert type(model).__name__ == "TinyNet"
    assert tuple(model.conv1.weight.shape) == (2, 1, 3, 3)
    assert forward(model).shape == (2, 3)


def test_a_relative_file_path_is_accepted(
    model_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(model_file.parent)
    assert type(import_model("tinynet.py:TinyNet")).__name__ == "TinyNet"


def test_two_imports_of_a_file_do_not_share_a_module(model_file: Path) -> None:
    first = import_model(f"{model_file}:TinyNet")
    second = import_model(f"{model_file}:TinyNet")
    assert type(first) is not type(second)
    assert type(first).__module__ in sys.modules


def test_a_model_file_may_import_the_module_beside_it(tmp_path: Path) -> None:
    (tmp_path / "foreign_blocks_beside.py").write_text(
        "from torch import nn\n\nclass Block(nn.Conv2d):\n    pass\n"
    )
    (tmp_path / "net.py").write_text(
        "from torch import nn\nfrom foreign_blocks_beside import Block\n\n"
        "class Net(nn.Module):\n"
        "    def __init__(self):\n        super().__init__()\n        self.conv1 = Block(1, 3, 3)\n"
    )
    try:
        model = import_model(f"{tmp_path / 'net.py'}:Net")
    finally:
        sys.modules.pop("foreign_blocks_beside", None)
    assert type(model.conv1).__name__ == "Block"
    assert str(tmp_path) not in sys.path


def test_a_class_is_imported_from_a_module(importable: Path) -> None:
    model = import_model(f"{MODULE_NAME}:TinyNet", {"channels": 5})
    assert type(model).__module__ == MODULE_NAME
    assert tuple(model.conv2.weight.shape) == (10, 5, 3, 3)


def test_a_factory_is_called_with_the_model_args(model_file: Path) -> None:
    model = import_model(f"{model_file}:make_net", parse_model_args('{"channels": 4}'))
    assert tuple(model.conv1.weight.shape) == (4, 1, 3, 3)
    assert tuple(model.fc4.weight.shape) == (8, 8 * 4 * 4)


def test_a_spec_without_a_colon_shows_the_expected_form(model_file: Path) -> None:
    with pytest.raises(AuditError) as excinfo:
        import_model(str(model_file))
    assert "path/to/file.py:ClassName" in one_line_error(excinfo)


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(AuditError) as excinfo:
        import_model(f"{tmp_path / 'absent.py'}:Net")
    message = one_line_error(excinfo)
    assert "absent.py" in message and "does not exist" in message


def test_a_module_that_cannot_be_imported_gives_the_import_error() -> None:
    with pytest.raises(AuditError) as excinfo:
        import_model("foreign_no_such_module_xyz:Net")
    assert "No module named 'foreign_no_such_module_xyz'" in one_line_error(excinfo)


def test_a_file_that_raises_on_import_gives_its_exception(tmp_path: Path) -> None:
    path = tmp_path / "broken.py"
    path.write_text("import torch\n\nraise ValueError('this model needs\\na GPU')\n")
    with pytest.raises(AuditError) as excinfo:
        import_model(f"{path}:Net")
    assert "ValueError: this model needs a GPU" in one_line_error(excinfo)


def test_a_module_that_raises_on_import_gives_its_exception(importable: Path) -> None:
    (importable / "foreign_broken.py").write_text("x = 1 / 0\n")
    with pytest.raises(AuditError) as excinfo:
        import_model("foreign_broken:Net")
    assert "ZeroDivisionError: division by zero" in one_line_error(excinfo)


def test_a_file_with_a_syntax_error_says_where(tmp_path: Path) -> None:
    path = tmp_path / "typo.py"
    path.write_text("class Net(:\n    pass\n")
    with pytest.raises(AuditError) as excinfo:
        import_model(f"{path}:Net")
    assert "SyntaxError" in one_line_error(excinfo)


def test_an_unknown_name_lists_the_network_classes(model_file: Path) -> None:
    with pytest.raises(AuditError) as excinfo:
        import_model(f"{model_file}:TinyNett")
    message = one_line_error(excinfo)
    assert "TinyNett" in message and "TinyNet" in message.replace("TinyNett", "")
    assert "Helper" not in message and "TinyConfig" not in message


def test_an_unknown_name_lists_all_classes_when_none_is_a_network(tmp_path: Path) -> None:
    path = tmp_path / "plain.py"
    path.write_text("class Alpha:\n    pass\n\nclass Beta:\n    pass\n")
    with pytest.raises(AuditError) as excinfo:
        import_model(f"{path}:Net")
    assert "Alpha, Beta" in one_line_error(excinfo)


def test_missing_model_args_suggest_model_args_json(model_file: Path) -> None:
    with pytest.raises(AuditError) as excinfo:
        import_model(f"{model_file}:make_net")
    message = one_line_error(excinfo)
    assert "TypeError" in message and "--model-args" in message and "channels" in message


def test_unknown_model_args_suggest_model_args_json(model_file: Path) -> None:
    with pytest.raises(AuditError) as excinfo:
        import_model(f"{model_file}:TinyNet", {"width": 3})
    message = one_line_error(excinfo)
    assert "'width'" in message and "--model-args" in message


def test_a_factory_that_returns_no_module_is_refused(model_file: Path) -> None:
    with pytest.raises(AuditError) as excinfo:
        import_model(f"{model_file}:make_number")
    message = one_line_error(excinfo)
    assert "int" in message and "not a torch.nn.Module" in message


@pytest.mark.parametrize(
    ("text", "expected"),
    [(None, {}), ("  ", {}), ('{"channels": 8, "classes": 10}', {"channels": 8, "classes": 10})],
)
def test_model_args_parse_json_objects(text: str | None, expected: dict[str, Any]) -> None:
    assert parse_model_args(text) == expected


@pytest.mark.parametrize("text", ["{channels: 8}", "[8, 10]", "8"])
def test_model_args_that_are_no_json_object_are_refused(text: str) -> None:
    with pytest.raises(AuditError) as excinfo:
        parse_model_args(text)
    assert "--model-args" in one_line_error(excinfo)


# --- read_state_dict ------------------------------------------------------------------------


def save_state(obj: Any, path: Path) -> None:
    if path.suffix == ".safetensors":
        save_file(obj, str(path))
    else:
        torch.save(obj, path)


def prefixed(state: StateDict, prefix: str) -> StateDict:
    return {prefix + key: value for key, value in state.items()}


@pytest.mark.parametrize(
    ("file_name", "wrap"),
    [
        ("w.pt", lambda sd: sd),
        ("w.pth", lambda sd: sd),
        ("w.bin", lambda sd: collections.OrderedDict(sd)),
        ("w.safetensors", lambda sd: sd),
        ("w.pt", lambda sd: {"state_dict": sd, "epoch": 7, "lr": 0.1}),
        ("w.pt", lambda sd: {"model": sd, "optimizer": {"step": torch.tensor(3)}}),
        ("w.pt", lambda sd: {"checkpoint": 1, "model": {"state_dict": sd}}),
        ("w.pt", lambda sd: prefixed(sd, "module.")),
        ("w.pt", lambda sd: {"state_dict": prefixed(sd, "module.")}),
        ("w.safetensors", lambda sd: prefixed(sd, "module.")),
    ],
)
def test_state_dicts_round_trip(
    model_file: Path, tmp_path: Path, file_name: str, wrap: Callable[[StateDict], Any]
) -> None:
    original = tiny_net(model_file, seed=1)
    state = {k: v.detach().clone() for k, v in original.state_dict().items()}
    save_state(wrap(state), tmp_path / file_name)

    read = read_state_dict(tmp_path / file_name)
    assert sorted(read) == sorted(state)  # safetensors gives the keys sorted
    assert all(torch.equal(read[key], state[key]) for key in state)

    other = tiny_net(model_file, seed=2)
    assert not torch.equal(forward(other), forward(original))
    load_weights(other, read)
    assert torch.equal(forward(other), forward(original))
    assert not other.training


def test_a_prefix_only_some_keys_have_is_kept(tmp_path: Path) -> None:
    state = {"module.conv1.weight": torch.ones(1), "head.weight": torch.zeros(1)}
    torch.save(state, tmp_path / "w.pt")
    assert list(read_state_dict(tmp_path / "w.pt")) == list(state)


def test_a_missing_weights_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(AuditError) as excinfo:
        read_state_dict(tmp_path / "absent.pt")
    assert "absent.pt" in one_line_error(excinfo) and "does not exist" in str(excinfo.value)


@pytest.mark.parametrize("file_name", ["w.pt", "w.safetensors"])
def test_a_truncated_weights_file_is_reported_in_one_line(tmp_path: Path, file_name: str) -> None:
    path = tmp_path / file_name
    save_state({"w": torch.arange(1000.0)}, path)
    path.write_bytes(path.read_bytes()[:-200])
    with pytest.raises(AuditError) as excinfo:
        read_state_dict(path)
    assert "truncated" in one_line_error(excinfo)


@pytest.mark.parametrize("content", [b"", b"this is not a checkpoint at all"])
def test_a_file_that_is_no_checkpoint_is_reported_in_one_line(
    tmp_path: Path, content: bytes
) -> None:
    path = tmp_path / "w.pt"
    path.write_bytes(content)
    with pytest.raises(AuditError) as excinfo:
        read_state_dict(path)
    assert "corrupt" in one_line_error(excinfo)


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ([torch.ones(2)], "holds a Python list"),
        ({"conv1.weight": torch.ones(2), "epoch": 3}, "'epoch' is not a tensor (int)"),
        ({}, "empty"),
    ],
)
def test_a_file_holding_no_state_dict_is_refused(
    tmp_path: Path, content: Any, expected: str
) -> None:
    torch.save(content, tmp_path / "w.pt")
    with pytest.raises(AuditError) as excinfo:
        read_state_dict(tmp_path / "w.pt")
    assert expected in one_line_error(excinfo)


# --- the security test: a pickle that would run code is never unpickled -----------------------


class TouchOnUnpickle:
    """Unpickling this creates ``marker`` (a stand-in for any code an attacker wants run)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> Any:
        return (pathlib.Path.touch, (self.marker,))


class ExecOnUnpickle(TouchOnUnpickle):
    def __reduce__(self) -> Any:
        return (builtins.exec, (f"open({str(self.marker)!r}, 'w').close()",))


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
@pytest.mark.parametrize("payload_type", [TouchOnUnpickle, ExecOnUnpickle])
@pytest.mark.parametrize("writer", ["torch.save", "torch.save legacy", "pickle.dump"])
def test_a_pickle_that_would_run_code_is_refused_and_never_runs(
    model_file: Path, tmp_path: Path, payload_type: type[TouchOnUnpickle], writer: str
) -> None:
    armed = tmp_path / "armed"
    pickle.loads(pickle.dumps(payload_type(armed)))
    assert armed.exists(), "the payload must really run code when unpickled"

    marker = tmp_path / "pwned"
    checkpoint = {"conv1.weight": torch.ones(2), "extra": payload_type(marker)}
    path = tmp_path / "evil.pt"
    if writer == "torch.save":
        torch.save(checkpoint, path)
    elif writer == "torch.save legacy":
        torch.save(checkpoint, path, _use_new_zipfile_serialization=False)
    else:
        path.write_bytes(pickle.dumps(checkpoint))

    with pytest.raises(AuditError) as excinfo:
        read_state_dict(path)
    message = one_line_error(excinfo)
    assert "unpickling" in message and "safetensors" in message and "state_dict()" in message
    assert not marker.exists()
    with pytest.raises(AuditError):
        load_model(f"{model_file}:TinyNet", path)
    assert not marker.exists()


# --- load_weights and load_model ------------------------------------------------------------


def test_weights_of_another_shape_name_the_keys_and_both_shapes(
    model_file: Path, tmp_path: Path
) -> None:
    state = dict(tiny_net(model_file, seed=0, channels=4).state_dict())
    del state["conv1.bias"]
    state["head.weight"] = torch.zeros(3)
    model = tiny_net(model_file, seed=0, channels=2)
    with pytest.raises(AuditError) as excinfo:
        load_weights(model, state)
    message = one_line_error(excinfo)
    assert message.startswith("weights do not fit this model: missing conv1.bias; ")
    assert "unexpected head.weight" in message
    assert "conv1.weight is (4, 1, 3, 3) in the file but (2, 1, 3, 3) in the model" in message
    assert "(and 1 more)" in message  # conv2.weight, conv2.bias and fc4.weight differ too


def test_load_model_builds_and_loads_in_eval_mode(model_file: Path, tmp_path: Path) -> None:
    original = tiny_net(model_file, seed=3, channels=3)
    save_file(dict(original.state_dict()), str(tmp_path / "w.safetensors"))

    model = load_model(f"{model_file}:make_net", tmp_path / "w.safetensors", {"channels": 3})
    assert not model.training
    assert torch.equal(forward(model), forward(original))


def test_load_model_without_weights_keeps_the_initial_weights(model_file: Path) -> None:
    torch.manual_seed(4)
    model = load_model(f"{model_file}:TinyNet", None)
    assert not model.training
    torch.manual_seed(4)
    assert torch.equal(forward(model), forward(import_model(f"{model_file}:TinyNet")))
