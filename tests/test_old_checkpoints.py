"""Checkpoints written before the typed metadata (``model.json`` version 1, kept in
tests/fixtures/v1-checkpoints: a trained and a pruned SimpleConvNet and a hand-built HandNet)
still load, with the same outputs, and their metadata reads as the typed form."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from dissect.infra.checkpoints import CHECKPOINT_VERSION, load_checkpoint, read_metadata, save_model

FIXTURES = Path(__file__).parent / "fixtures" / "v1-checkpoints"
EXPECTED = json.loads((FIXTURES / "expected.json").read_text())


@pytest.mark.parametrize("name", ["simpleconvnet", "pruned", "handnet"])
def test_version_1_checkpoints_load_with_the_same_outputs(name: str) -> None:
    model, meta = load_checkpoint(FIXTURES / name)
    assert meta.version == 1 and meta.data["name"] == "mnist-5k"
    torch.manual_seed(0)
    x = torch.rand(2, 1, 28, 28)
    with torch.no_grad():
        out = model(x)
    assert torch.allclose(out, torch.tensor(EXPECTED[name]), atol=1e-6)


def test_version_1_fields_map_to_the_typed_ones() -> None:
    hand = read_metadata(FIXTURES / "handnet")
    assert hand.kind == "HandNet" and hand.mode == "hand-built"  # was "stage": "hand-built"
    assert "stage" not in hand.extra and hand.metrics["test_accuracy"] > 0.5
    trained = read_metadata(FIXTURES / "simpleconvnet")
    assert trained.epoch == 1 and len(trained.history) == 1 and "torch" in trained.versions
    pruned = read_metadata(FIXTURES / "pruned")
    assert "pruning_history" in pruned.extra and pruned.config["convs"] == [1, 2]


def test_a_loaded_version_1_checkpoint_is_saved_as_the_current_version(tmp_path: Path) -> None:
    model, meta = load_checkpoint(FIXTURES / "handnet")
    save_model(tmp_path / "again", model, meta)
    again = read_metadata(tmp_path / "again")
    assert again.version == CHECKPOINT_VERSION and again.mode == "hand-built"
    assert json.loads((tmp_path / "again" / "model.json").read_text())["mode"] == "hand-built"
