import pytest
import torch

from dissect.infra.errors import AuditError
from dissect.objectives import channel, class_study
from dissect.superstimuli import (
    capture,
    class_superstimuli,
    layer_superstimuli,
    plainness_scores,
    render,
)
from simpleconvnet.model import SimpleConvNet, SimpleConvNetConfig, init_weights


def _vertical_detector() -> SimpleConvNet:
    """conv1 channel 1 is a vertical-line detector: a bright centre column, dark flanks."""
    model = SimpleConvNet(SimpleConvNetConfig(convs=(2, 2), fc4=8, mean=0.0, std=1.0))
    init_weights(model, torch.Generator().manual_seed(0))
    with torch.no_grad():
        w = torch.full((5, 5), -0.5)
        w[:, 2] = 1.0
        model.conv1.weight[0, 0] = w
        model.conv1.bias[0] = 0.0
    return model


def test_objective_improves_over_a_few_steps() -> None:
    model = _vertical_detector()
    objective = channel("conv1:post", 0)
    start = render(model, objective, 1, steps=0, seed=1)
    after = render(model, objective, 1, steps=20, seed=1)
    with torch.no_grad():
        before, reached = (
            float(objective(capture(model, img, {"conv1:post"}))) for img in (start, after)
        )
    assert reached > 10 * before + 0.02


def test_vertical_line_detector_wants_vertical_lines() -> None:
    images = layer_superstimuli(_vertical_detector(), "conv1", steps=64, channels=[0]).images[0, 0]
    centred = images - images.mean()
    # vertical structure: columns differ a lot, rows hardly: variance across columns dominates
    across_columns = centred.mean(0).var()
    across_rows = centred.mean(1).var()
    assert across_columns > 4 * across_rows


def test_same_seed_same_images_other_seed_other_images() -> None:
    model = _vertical_detector()
    a = layer_superstimuli(model, "conv2", steps=8, seed=3)
    b = layer_superstimuli(model, "conv2", steps=8, seed=3)
    c = layer_superstimuli(model, "conv2", steps=8, seed=4)
    assert torch.equal(a.images, b.images) and not torch.equal(a.images, c.images)
    assert (
        a.images.shape == (2, 1, 28, 28)
        and float(a.images.min()) >= 0
        and float(a.images.max()) <= 1
    )


def test_class_superstimuli_are_batched_per_class() -> None:
    model = _vertical_detector()
    s = class_superstimuli(model, steps=30)
    assert s.images.shape == (10, 1, 28, 28) and s.activation.shape == (10,)
    with torch.no_grad():
        lsm = capture(model, s.images, {"log_softmax"})["log_softmax"]
        own = float(class_study(3)(capture(model, s.images[3:4], {"log_softmax"})))
        other = float(class_study(3)(capture(model, s.images[4:5], {"log_softmax"})))
    assert own > other or lsm.argmax(1)[3] == 3


def test_objectives_compose() -> None:
    model = _vertical_detector()
    acts = capture(model, torch.rand(2, 1, 28, 28), {"conv1:post"})
    combo = channel("conv1:post", 0) - 0.5 * channel("conv1:post", 1)
    expected = acts["conv1:post"][:, 0].mean((1, 2)) - 0.5 * acts["conv1:post"][:, 1].mean((1, 2))
    assert torch.allclose(combo(acts), expected)


def test_plainness_orders_blank_blob_and_stripes() -> None:
    yy, xx = torch.meshgrid(torch.arange(28.0), torch.arange(28.0), indexing="ij")
    blank = torch.zeros(28, 28)
    blob = torch.exp(-((xx - 14) ** 2 + (yy - 14) ** 2) / 60)
    stripes = (torch.sin(xx * 1.2) > 0).float()
    p = plainness_scores(torch.stack([blank, blob, stripes])[:, None])
    assert float(p[0]) == pytest.approx(1.0) and p[0] > p[1] > p[2]


def test_bad_layer_and_channel_are_clear_errors() -> None:
    model = _vertical_detector()
    with pytest.raises(AuditError, match="valid layers are conv1, conv2"):
        layer_superstimuli(model, "fc4")
    with pytest.raises(AuditError, match="conv2 has channels 1..2; got 5"):
        layer_superstimuli(model, "conv2", channels=[4])
