"""Sizes and conv costs against counts done by hand."""

from __future__ import annotations

import pytest
import torch

from reports.measures import conv_macs, parameter_count, predictions
from simpleconvnet.model import SimpleConvNet, SimpleConvNetConfig


def test_conv_macs_and_parameters_of_a_tiny_net() -> None:
    model = SimpleConvNet(SimpleConvNetConfig(convs=(4, 8), fc4=16))
    # conv1: 28*28 positions * 4 outputs * 25 weights; conv2: 14*14 * 8 * (4*25)
    assert conv_macs(model) == 28 * 28 * 4 * 25 + 14 * 14 * 8 * 4 * 25
    convs = (4 * 25 + 4) + (8 * 4 * 25 + 8)
    head = (8 * 7 * 7 * 16 + 16) + (16 * 10 + 10)
    assert parameter_count(model) == convs + head


def test_predictions_rows_sum_to_one_and_confidence_is_the_max() -> None:
    model = SimpleConvNet(SimpleConvNetConfig(convs=(2, 2), fc4=4))
    images, labels = torch.rand(5, 1, 28, 28), torch.arange(5)
    frame = predictions(model, images, labels)
    probs = frame[[f"p{k}" for k in range(10)]].to_numpy()
    assert probs.sum(1) == pytest.approx([1.0] * 5, abs=1e-5)
    assert (frame["confidence"].to_numpy() == probs.max(1)).all()
    assert (frame["pred"].to_numpy() == probs.argmax(1)).all()
