"""The live audit's Python side: MNIST-style centring and the effective-weights export."""

from __future__ import annotations

import base64

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from reports.live import area_resize, center_digit, export_network, live_payload


def decode(b64: str, shape: tuple[int, ...] | list[int]) -> torch.Tensor:
    return torch.from_numpy(np.frombuffer(base64.b64decode(b64), dtype="<f4").copy()).view(*shape)


def forward_from_export(net: dict, x: torch.Tensor) -> torch.Tensor:
    """The logits an exported network computes, from its JSON alone."""
    h = (x - net["mean"]) / net["std"]
    for c in net["convs"]:
        w = decode(c["weight"], (c["out"], c["in"], c["k"], c["k"]))
        h = F.max_pool2d(
            F.relu(F.conv2d(h, w, decode(c["bias"], (c["out"],)), padding=c["pad"])), 2
        )
    head = net["head"]
    weight = decode(head["weight"], (head["out"], head["in"]))
    return torch.flatten(h, 1) @ weight.T + decode(head["bias"], (head["out"],))


def test_filled_rectangle_becomes_20_tall_with_centre_of_mass_in_the_middle() -> None:
    drawn = np.zeros((28, 28))
    drawn[3:13, 2:7] = 1.0  # 10 tall, 5 wide, far off centre
    grid = center_digit(drawn)
    rows, cols = np.nonzero(grid)
    assert rows.max() - rows.min() + 1 == 20 and cols.max() - cols.min() + 1 == 10
    np.testing.assert_allclose(grid[grid > 0], 1.0)  # an exact 2x upscale of a flat box
    ys, xs = np.mgrid[0:28, 0:28] + 0.5
    assert abs((grid * ys).sum() / grid.sum() - 14) <= 0.5
    assert abs((grid * xs).sum() / grid.sum() - 14) <= 0.5


def test_centring_shrinks_a_large_stroke_keeping_its_mean_ink() -> None:
    drawn = np.zeros((28, 28))
    drawn[0:26, 13:15] = 1.0  # 26 tall, 2 wide
    grid = center_digit(drawn)
    assert (grid.sum(1) > 0).sum() == 20
    assert (grid.sum(0) > 0).sum() == 2  # 2 * 20 / 26 rounds to 2
    assert grid.sum() == pytest.approx(40)  # the box's mean ink (1) times its new area
    assert center_digit(np.zeros((28, 28))).sum() == 0


def test_area_resize_averages_blocks_and_keeps_the_mean() -> None:
    patch = np.arange(16, dtype=float).reshape(4, 4)
    np.testing.assert_allclose(area_resize(patch, 2, 2), [[2.5, 4.5], [10.5, 12.5]])
    rng = np.random.default_rng(0)
    src = rng.random((7, 5))
    assert area_resize(src, 20, 13).mean() == pytest.approx(src.mean())


@pytest.mark.parametrize("kind", ["simpleconvnet", "handnet"])
def test_export_reproduces_the_model(kind: str) -> None:
    torch.manual_seed(0)
    if kind == "handnet":
        from handnet.model import HandNet, default_config

        model = HandNet(default_config((4, 6), fc4=12))
        with torch.no_grad():  # move every parameter off its constructed value
            for p in model.parameters():
                p.add_(0.05 * torch.randn_like(p))
    else:
        from simpleconvnet.model import SimpleConvNet, SimpleConvNetConfig

        model = SimpleConvNet(SimpleConvNetConfig(convs=(3, 5, 4), fc4=12))
    model.eval()
    labels = pd.DataFrame({"layer": ["conv1"], "channel": [2], "description": ["<b>edge</b>"]})
    net = export_network(model, "k", "title", labels)
    x = torch.rand(3, 1, 28, 28)
    with torch.no_grad():
        expected = model.logits(x)
    torch.testing.assert_close(forward_from_export(net, x), expected, rtol=1e-5, atol=1e-5)
    assert net["convs"][0]["descriptions"][:2] == ["channel 1", "<b>edge</b>"]


def test_payload_is_safe_inside_a_script_element(tmp_path) -> None:
    import json

    (tmp_path / "live").mkdir()
    text = json.dumps({"title": "</script><script>alert(1)</script> & co"})
    (tmp_path / "live" / "live.json").write_text(text)
    assert live_payload(tmp_path) is None  # the stage has not finished
    (tmp_path / "live" / "stage.json").write_text(json.dumps({"finished": True}))
    payload = live_payload(tmp_path)
    assert payload is not None and "<" not in payload and "&" not in payload
    assert json.loads(payload) == json.loads(text)
