"""Fine-tuning: constrained keeps the structure, free starts from the hand-built weights."""

from __future__ import annotations

from dataclasses import replace

import pandas as pd
import pytest
import torch
from safetensors.torch import load_file

import simpleconvnet.train as train_module
from dissect.gabor import gabor_fit
from dissect.infra.checkpoints import CheckpointMeta, read_metadata
from handnet.filters import GaborSpec
from handnet.finetune import filter_drift, finetune, freed_copy
from handnet.head import fit_head
from handnet.layers import GaborConv2d
from handnet.model import HandNet, default_config
from simpleconvnet.train import EvalResult, TrainConfig

CONFIG = TrainConfig(epochs=1, batch_size=50, lr=3e-3, augment=False, seed=0, snapshot_every=0)


def _built(train, context: bool = True) -> HandNet:
    net = HandNet(default_config(fc4=16, context=context))
    fit_head(net, *train, l2=1e-3)
    return net


def test_constrained_keeps_every_channel_in_its_form(tiny_data) -> None:
    train, test = tiny_data
    net = _built(train, context=False)
    mask = net.conv2.weight.detach().abs().sum(dim=(2, 3)) > 0
    before = [p.detach().clone() for p in net.conv1.parameters()]
    result = finetune(net, train, test, "constrained", CONFIG, quiet=True)
    after = result.model
    assert after is net and result.trainable == sum(p.numel() for p in net.parameters())
    assert any(not torch.equal(a, b) for a, b in zip(before, net.conv1.parameters(), strict=True))
    # conv1 is still exactly the Gabor formula of its (updated) parameters
    rebuilt = GaborConv2d(net.conv1.specs)
    torch.testing.assert_close(rebuilt.weight, net.conv1.weight, atol=1e-4, rtol=1e-4)
    # conv2 has weight only on the pairs its rules name
    new_mask = net.conv2.weight.detach().abs().sum(dim=(2, 3)) > 0
    assert torch.equal(mask, new_mask)
    # the rules read back from the net rebuild exactly its layer
    rebuilt2 = HandNet(net.current_config()).conv2
    torch.testing.assert_close(rebuilt2.weight, net.conv2.weight, atol=1e-5, rtol=1e-5)
    d = net.descriptions()
    assert len(d["conv1"]) == 8 and len(d["conv2"]) == 16 and all(d["conv1"])


def test_constrained_keeps_the_terms_with_context(tiny_data) -> None:
    train, test = tiny_data
    net = _built(train)
    index, sign = net.conv2.index.clone(), net.conv2.sign.clone()
    finetune(net, train, test, "constrained", CONFIG, quiet=True)
    assert torch.equal(index, net.conv2.index) and torch.equal(sign, net.conv2.sign)
    assert all(t.strength > 0 for _, t in net.conv2.terms())


def test_freed_copy_computes_the_same_function(tiny_data) -> None:
    train, _ = tiny_data
    net = _built(train)
    free = freed_copy(net)
    assert isinstance(free.conv1, torch.nn.Conv2d) and free.layer_kinds()["conv1"] == "free"
    x = train[0][:4]
    torch.testing.assert_close(free(x), net(x), atol=1e-5, rtol=1e-5)


def test_drift_of_an_unchanged_net_is_zero(tiny_data) -> None:
    train, _ = tiny_data
    net = _built(train)
    drift = filter_drift(net, freed_copy(net))
    assert len(drift) == 24 and drift["channel"].iloc[0] == 1
    assert drift["relative_change"].abs().max() < 1e-6
    conv1 = drift[drift["layer"] == "conv1"]
    assert conv1["gabor_r2"].min() > 0.999
    assert (conv1["description_before"] == conv1["description_after"]).all()


def test_gabor_fit_recovers_a_moved_orientation() -> None:
    """The fit filter_drift makes (zero-mean, centred) gives back a conv1 channel's spec."""
    target = GaborConv2d([GaborSpec(38.0, 4.0, -90.0, 1.2, 0.5, 1.0)]).weight
    fit = gabor_fit(target[0, 0].detach().double().numpy(), zero_mean=True, centred=True)
    assert fit.r2 > 0.999 and abs(fit.orientation - 38.0) < 1.0
    assert abs(fit.phase - 270.0) < 1.0  # -90 degrees


def test_drift_describes_a_turned_filter(tiny_data) -> None:
    train, _ = tiny_data
    net = _built(train)
    turned = freed_copy(net)
    with torch.no_grad():  # the vertical line detector, turned to 60 degrees
        turned.conv1.weight[2] = GaborConv2d([GaborSpec(60.0, gain=0.15)]).weight[0]
    row = filter_drift(net, turned).iloc[2]
    assert row["description_before"] == "vertical line"
    assert row["description_after"] == "line at 60 degrees" and row["gabor_r2"] > 0.999


def test_finetuned_checkpoints_say_their_mode_and_parent(tiny_data, tmp_path) -> None:
    train, test = tiny_data
    parent = CheckpointMeta(data={"name": "mnist"}, parent="built")
    finetune(_built(train), train, test, "constrained", CONFIG, out_dir=tmp_path, quiet=True,
             metadata=parent)  # fmt: skip
    meta = read_metadata(tmp_path / "last")
    assert (meta.kind, meta.mode, meta.parent, meta.data) == ("HandNet", "constrained", "built",
                                                              {"name": "mnist"})  # fmt: skip
    assert meta.metrics["accuracy"] >= 0 and meta.extra["trainable_parameters"] > 0


@pytest.mark.parametrize("mode", ["constrained", "free"])
def test_resumed_finetune_ends_where_a_whole_one_does(tiny_data, tmp_path, mode) -> None:
    train, test = tiny_data
    two = TrainConfig(**{**CONFIG.__dict__, "epochs": 2})
    finetune(_built(train), train, test, mode, two, out_dir=tmp_path / "whole", quiet=True)

    def interrupt(epoch: int, row: dict) -> None:
        raise KeyboardInterrupt

    cut = tmp_path / "cut"
    with pytest.raises(KeyboardInterrupt):
        finetune(_built(train), train, test, mode, two, out_dir=cut, quiet=True,
                 on_epoch_end=interrupt)  # fmt: skip
    result = finetune(_built(train), train, test, mode, two, out_dir=cut, quiet=True, resume=True)
    assert list(result.train.history["epoch"]) == [1, 2]
    whole = load_file(str(tmp_path / "whole" / "last" / "model.safetensors"))
    resumed = load_file(str(cut / "last" / "model.safetensors"))
    assert whole.keys() == resumed.keys()
    assert all(torch.equal(whole[k], resumed[k]) for k in whole)


def test_fine_tuning_stops_after_patience_epochs_without_improvement(
    tiny_data, tmp_path, monkeypatch
) -> None:
    train, test = tiny_data
    val = (train[0][:20].clone(), train[1][:20].clone())
    real = train_module.evaluate
    flat = EvalResult(loss=1.0, accuracy=0.5, per_class=[0.5] * 10, confusion=pd.DataFrame())

    def evaluate(model, images, labels, batch_size=1000) -> EvalResult:
        return flat if images is val[0] else real(model, images, labels, batch_size)

    monkeypatch.setattr(train_module, "evaluate", evaluate)
    config = replace(CONFIG, epochs=10, patience=2)
    result = finetune(_built(train), train, test, "constrained", config, val=val,
                      out_dir=tmp_path, quiet=True)  # fmt: skip
    run = result.train
    assert run.epochs_run == 3 and run.best_epoch == 1 and list(run.history["epoch"]) == [1, 2, 3]
    assert read_metadata(tmp_path / "best").epoch == 1
