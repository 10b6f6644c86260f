import json
from pathlib import Path

import pytest
import torch

from dissect.infra.checkpoints import load_checkpoint, save_model
from dissect.infra.errors import AuditError
from simpleconvnet import load_checkpoint as public_load
from simpleconvnet.model import SimpleConvNet, SimpleConvNetConfig, init_weights


def _model(convs=(4, 6)) -> SimpleConvNet:
    m = SimpleConvNet(SimpleConvNetConfig(convs=convs, fc4=12))
    init_weights(m, torch.Generator().manual_seed(0))
    return m


def test_round_trip_gives_back_same_model(tmp_path: Path) -> None:
    model = _model()
    save_model(tmp_path / "ck", model, {"seed": 3, "metrics": {"test_accuracy": 0.5}})
    loaded, meta = public_load(tmp_path / "ck")
    assert meta.seed == 3 and meta.config["convs"] == [4, 6]
    x = torch.rand(2, 1, 28, 28)
    assert torch.equal(loaded(x), model.eval()(x))
    assert sorted(p.name for p in (tmp_path / "ck").iterdir()) == [
        "model.json",
        "model.safetensors",
    ]


def test_missing_checkpoint(tmp_path: Path) -> None:
    with pytest.raises(AuditError, match="does not exist"):
        load_checkpoint(tmp_path / "nothing")


def test_truncated_weights(tmp_path: Path) -> None:
    save_model(tmp_path / "ck", _model())
    weights = tmp_path / "ck" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:200])
    with pytest.raises(AuditError, match="truncated or corrupt"):
        load_checkpoint(tmp_path / "ck")


def test_mismatched_shapes(tmp_path: Path) -> None:
    save_model(tmp_path / "ck", _model())
    meta_path = tmp_path / "ck" / "model.json"
    meta = json.loads(meta_path.read_text())
    meta["config"]["convs"] = [5, 6]
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(AuditError, match=r"conv1\.\w+ has shape .* but the config expects"):
        load_checkpoint(tmp_path / "ck")


def test_other_architecture(tmp_path: Path) -> None:
    save_model(tmp_path / "ck", _model())
    meta_path = tmp_path / "ck" / "model.json"
    meta = json.loads(meta_path.read_text())
    meta["config"]["convs"] = [4, 6, 8]
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(AuditError, match="another architecture"):
        load_checkpoint(tmp_path / "ck")


def test_foreign_object_is_refused(tmp_path: Path) -> None:
    save_model(tmp_path / "ck", _model())
    meta_path = tmp_path / "ck" / "model.json"
    meta = json.loads(meta_path.read_text())
    meta["architecture"] = "os:system"
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(AuditError, match="not written by this suite"):
        load_checkpoint(tmp_path / "ck")


def test_interrupted_write_leaves_previous_checkpoint(tmp_path: Path, monkeypatch) -> None:
    first = _model()
    save_model(tmp_path / "ck", first)
    import dissect.infra.checkpoints as ck

    def failing_save(state, path):
        Path(path).write_bytes(b"half")
        raise OSError("disk full")

    monkeypatch.setattr(ck, "save_file", failing_save)
    with pytest.raises(OSError):
        save_model(tmp_path / "ck", _model(convs=(4, 6)))
    assert sorted(p.name for p in (tmp_path / "ck").iterdir()) == [
        "model.json",
        "model.safetensors",
    ]
    loaded, _ = load_checkpoint(tmp_path / "ck")
    assert torch.equal(loaded.conv1.weight, first.conv1.weight)
