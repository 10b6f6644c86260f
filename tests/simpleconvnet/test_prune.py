from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from dissect.infra.datasets import split_validation
from dissect.infra.errors import AuditError
from simpleconvnet.criteria import (
    activation_variation,
    combine,
    low_frequency_share,
    rank_normalise,
)
from simpleconvnet.model import SimpleConvNet, SimpleConvNetConfig, init_weights
from simpleconvnet.prune import PruneConfig, choose_at_random, choose_by_score, prune, schedule
from simpleconvnet.redundancy import copy_correlation
from simpleconvnet.train import TrainConfig, fit

QUICK = {
    "weights": {"variation": 1.0},
    "epochs": 1,
    "final_epochs": 1,
    "score_images": 100,
}


def _trained(tiny_data, convs=(8, 10, 12)) -> SimpleConvNet:
    m = SimpleConvNet(SimpleConvNetConfig(convs=convs, fc4=16))
    init_weights(m, torch.Generator().manual_seed(0))
    fit(m, *tiny_data, TrainConfig(epochs=2, batch_size=20), quiet=True)
    return m


def test_schedule_is_geometric_and_reaches_the_target() -> None:
    assert schedule(32, 8, 7) == [26, 22, 18, 14, 12, 10, 8]
    assert schedule(64, 16, 2) == [32, 16]
    assert schedule(8, 16, 3) == [8, 8, 8]


def test_rank_normalise_and_combine() -> None:
    assert rank_normalise(torch.tensor([3.0, 1.0, 2.0])).tolist() == [1.0, 0.0, 0.5]
    c = combine(
        {"a": torch.tensor([1.0, 2.0, 3.0]), "b": torch.tensor([3.0, 2.0, 1.0])},
        {"a": 3.0, "b": 1.0},
    )
    assert torch.allclose(c, torch.tensor([0.25, 0.5, 0.75]))


def test_activation_variation_ranks_a_dead_channel_last(tiny_data) -> None:
    model = _trained(tiny_data, convs=(6, 8))
    with torch.no_grad():
        model.conv1.weight[2] = 0
        model.conv1.bias[2] = 0
    score = activation_variation(model, "conv1", tiny_data[0])
    assert int(score.argmin()) == 2 and float(score[2]) == 0.0


def test_low_frequency_share_ranks_zero_and_noise_below_smooth_filters() -> None:
    g = torch.Generator().manual_seed(0)
    yy, xx = torch.meshgrid(torch.arange(5.0) - 2, torch.arange(5.0) - 2, indexing="ij")
    smooth = torch.exp(-(xx**2) / 2) * torch.cos(yy * 0.5)
    weight = torch.stack([smooth, torch.zeros(5, 5), torch.randn(5, 5, generator=g), xx.clone()])[
        :, None
    ]
    share = low_frequency_share(weight)
    assert float(share[1]) == 0.0
    assert share[0] > share[2] and share[3] > share[2]


def test_copy_correlation_finds_a_copied_channel() -> None:
    model = SimpleConvNet(SimpleConvNetConfig(convs=(3, 2)))
    with torch.no_grad():
        model.conv2.weight.zero_()
        model.conv2.bias.zero_()
        model.conv2.weight[1, 2, 2, 2] = 1.0  # channel 2 of conv2 copies channel 3 of conv1
    best, where = copy_correlation(model, "conv2", torch.rand(8, 1, 28, 28))
    assert float(best[1]) == pytest.approx(1.0, abs=1e-5) and int(where[1]) == 2


def _prune_data(tiny_data):
    """``(train, test)`` with the training digits less the validation ones, and ``val``."""
    fitted, val = split_validation(*tiny_data[0], "mnist")
    return (fitted, tiny_data[1]), val


def test_prune_loop_history_is_consistent_and_resumes(tiny_data, tmp_path: Path) -> None:
    model = _trained(tiny_data)
    config = PruneConfig(iterations=2, targets=(4, 5), budget=100.0, **QUICK)
    data, val = _prune_data(tiny_data)
    result = prune(model, *data, config, val=val, out_dir=tmp_path / "a", quiet=True)
    h = result.history
    assert list(h["iteration"]) == [0, 1, 2, 3]
    assert list(h["widths"]) == ["8/10/12", "6/7/12", "4/5/12", "4/5"]
    assert result.redundancy["dropped"] and h["conv_parameters"].is_monotonic_decreasing
    assert result.model.conv_names == ["conv1", "conv2"]
    scores = pd.read_csv(tmp_path / "a" / "scores.csv")
    assert len(scores) == 8 + 10 + 6 + 7 and scores.groupby(["iteration", "layer"])[
        "kept"
    ].sum().tolist() == [6, 7, 4, 5]
    assert h.loc[3, "removed"] == "conv3"
    removed = h.loc[1, "removed"]
    assert removed.startswith("conv1: ") and len(removed.split(";")[0].split()) == 1 + 2
    # an interruption during iteration 2, then --resume: it must end where the whole run did

    def interrupted(layer, combined, n_keep, iteration):
        if iteration == 2:
            raise KeyboardInterrupt
        return choose_by_score(layer, combined, n_keep, iteration)

    with pytest.raises(KeyboardInterrupt):
        prune(
            _trained(tiny_data),
            *data,
            config,
            val=val,
            out_dir=tmp_path / "b",
            quiet=True,
            chooser=interrupted,
        )
    again = prune(
        _trained(tiny_data), *data, config, val=val, out_dir=tmp_path / "b", quiet=True,
        resume=True,
    )  # fmt: skip
    assert list(again.history["widths"]) == list(h["widths"])
    a = (tmp_path / "a" / "final" / "model.safetensors").read_bytes()
    assert a == (tmp_path / "b" / "final" / "model.safetensors").read_bytes()


def test_random_chooser_is_seeded() -> None:
    c = torch.arange(10.0)
    assert choose_at_random(1)("conv1", c, 4, 1) == choose_at_random(1)("conv1", c, 4, 1)
    assert choose_at_random(1)("conv1", c, 4, 1) != choose_at_random(2)("conv1", c, 4, 1)


def _planted(tiny_data) -> SimpleConvNet:
    """A trained net whose conv1 holds line/edge Gabors, except channel 2 (all zero) and
    channel 4 (pure noise of the same energy)."""
    from dissect.gabor import gabor_kernel

    model = _trained(tiny_data, convs=(6, 8))
    kernels = [
        gabor_kernel(5, a, 4.0, p, 1.2, 0.5)
        for a, p in ((0, 0), (0, 0), (90, 0), (0, 0), (45, 90.0), (135, 0))
    ]
    with torch.no_grad():
        model.conv1.weight.copy_(torch.tensor(np.stack(kernels), dtype=torch.float32)[:, None])
        model.conv1.weight[1] = 0
        model.conv1.bias[1] = 0
        noise = torch.randn(1, 5, 5, generator=torch.Generator().manual_seed(5))
        model.conv1.weight[3] = noise / noise.norm() * model.conv1.weight[0].norm()
    return model


@pytest.mark.parametrize("name", ["variation", "structure", "superstimulus", "selectivity"])
def test_each_criterion_ranks_planted_useless_channels_last(tiny_data, name) -> None:
    from simpleconvnet.criteria import CRITERIA

    score = CRITERIA[name](_planted(tiny_data), "conv1", tiny_data[0])
    assert score.shape == (6,)
    worst_two = set(torch.argsort(score)[:2].tolist())
    assert 1 in worst_two if name != "structure" else worst_two == {1, 3}


def test_retraining_stops_once_recovered(tiny_data) -> None:
    data, val = _prune_data(tiny_data)
    model = _trained(tiny_data)
    # a tolerance of 100 points is met after one epoch: no retraining runs to its cap of 4,
    # but the last cut's and the net without conv3's, which run their whole schedule
    config = PruneConfig(iterations=2, targets=(4, 5), budget=100.0, tolerance=100.0,
                         **{**QUICK, "epochs": 4, "final_epochs": 4})  # fmt: skip
    result = prune(model, *data, config, val=val, quiet=True)
    assert list(result.history["retrain_epochs"]) == [0, 1, 4, 4]
    r = result.redundancy
    assert r["retrain_epochs"] == 4
    # conv3's removal is judged on the validation split
    assert r["loss_points"] == pytest.approx(
        (r["val_baseline_accuracy"] - r["val_accuracy_without"]) * 100
    )
    assert result.history["val_accuracy_before_cut"].iloc[0] == r["val_baseline_accuracy"]


def test_tolerance_must_not_be_negative() -> None:
    with pytest.raises(AuditError, match="--tolerance"):
        PruneConfig(tolerance=-0.1)
