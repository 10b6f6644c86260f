"""Superstimuli reach their targets and say how: channels beat the best of 100 test digits,
classes are sure and look like their class's mean digit, on HandNet (hand-built) and on a tiny
net made silent on a blank image on purpose (the cause of blank class superstimuli: no conv2
unit fires, so the true gradient of every class score is exactly zero)."""

import pytest
import torch

from dissect.infra.datasets import load_split, stratified_sample
from dissect.objectives import classes_confidence
from dissect.render import capture, render_noting_fallbacks
from dissect.specimen import specimen_of
from dissect.superstimuli import (
    best_in_data,
    class_means,
    class_superstimuli,
    closest_to_own,
    layer_superstimuli,
)
from simpleconvnet.model import SimpleConvNet, SimpleConvNetConfig, init_weights

STEPS = 128


@pytest.fixture(scope="module")
def digits() -> dict[str, torch.Tensor]:
    train_x, train_y = load_split("mnist-5k", "train")
    test_x, test_y = load_split("mnist-5k", "test")
    fit = stratified_sample(train_y, 40, seed=1)  # 400 digits fit HandNet's head
    return {
        "fit_x": train_x[fit], "fit_y": train_y[fit], "train_x": train_x, "train_y": train_y,
        "test_100": test_x[stratified_sample(test_y, 10, seed=0)],
    }  # fmt: skip


@pytest.fixture(scope="module")
def handnet(digits: dict[str, torch.Tensor]) -> torch.nn.Module:
    """HandNet built as `handnet build` and the pipeline build it (its head on the training
    digits less the validation ones and their augmented copies), with the penalty validation
    chooses there (1e-4) given, to spare the choice's three fits."""
    from dissect.infra.datasets import split_validation
    from handnet.steps import build_handnet

    fit, _ = split_validation(digits["train_x"], digits["train_y"], "mnist-5k")
    model, _, _ = build_handnet((8, 16), 32, fit, 1e-4, dataset="mnist-5k")
    return model.eval()


def test_handnet_channel_superstimuli_beat_the_best_test_digit(
    handnet: torch.nn.Module, digits: dict[str, torch.Tensor]
) -> None:
    for layer in ("conv1", "conv2"):
        s = layer_superstimuli(handnet, layer, steps=STEPS, data=digits["fit_x"])
        best, _ = best_in_data(handnet, layer, torch.arange(len(s.activation)), digits["test_100"])
        assert bool((s.activation >= best).all()), (layer, s.activation, best)


def test_handnet_class_superstimuli_are_sure_and_look_like_their_class(
    handnet: torch.nn.Module, digits: dict[str, torch.Tensor]
) -> None:
    x, y = digits["train_x"], digits["train_y"]
    s = class_superstimuli(handnet, steps=STEPS, data=x, labels=y)
    assert bool((s.activation >= 0.9).all()), s.activation
    assert bool(closest_to_own(s.images, class_means(x, y, 10)).all()), s.used
    assert set(s.used) <= {"mean-digit", "class-mean", "mean-digit+redirected",
                           "class-mean+redirected"}  # fmt: skip
    assert float(s.images.std((1, 2, 3)).min()) > 0.05, s.images.std((1, 2, 3))  # not uniform


def _silenced() -> SimpleConvNet:
    """A tiny net whose conv2 never fires on a blank image (bias -0.3)."""
    model = SimpleConvNet(SimpleConvNetConfig(convs=(2, 4), fc4=8, mean=0.0, std=1.0))
    init_weights(model, torch.Generator().manual_seed(0))
    with torch.no_grad():
        model.conv2.bias.fill_(-0.3)
    return model.eval()


def test_redirected_gradient_wakes_a_silent_net_and_says_so() -> None:
    model, classes = _silenced(), torch.arange(10)
    start = torch.zeros(10, 1, 28, 28)
    assert float(capture(model, start, {"conv2:post"})["conv2:post"].max()) == 0.0
    images, redirected = render_noting_fallbacks(
        model, classes_confidence(classes), 10, steps=40, start=(classes, start)
    )
    assert bool(redirected.all())
    # a class that wants conv2 silent may leave it silent; those that want it firing wake it
    assert float(capture(model, images, {"conv2:post"})["conv2:post"].detach().max()) > 0
    s = class_superstimuli(model, steps=40, data=start[:1])
    assert all(u == "mean-digit+redirected" for u in s.used)


def test_no_channel_ends_below_the_best_data_image(digits: dict[str, torch.Tensor]) -> None:
    """With a single optimiser step every random start stays far below what a real digit gives;
    those channels start again from their best digit, and end at least there."""
    model = SimpleConvNet(SimpleConvNetConfig(convs=(6, 8), fc4=16))
    init_weights(model, torch.Generator().manual_seed(3))
    model.eval()
    data = digits["test_100"]
    s = layer_superstimuli(model, "conv2", steps=1, data=data)
    best, _ = best_in_data(specimen_of(model), "conv2", torch.arange(8), data)
    assert bool((s.activation >= best - 1e-6).all())
    assert "digit" in {u.split("+")[0] for u in s.used}  # some started again from a digit
