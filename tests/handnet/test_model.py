"""HandNet: the shared protocol, config and checkpoint round trips, the closed-form head."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from dissect.infra.checkpoints import CheckpointMeta, load_checkpoint, save_model
from handnet.head import fit_head, fit_logistic, frozen_features, set_head
from handnet.model import HandNet, HandNetConfig, default_config


def _images(n: int, seed: int) -> torch.Tensor:
    return torch.rand(n, 1, 28, 28, generator=torch.Generator().manual_seed(seed))


def test_protocol_and_shapes() -> None:
    net = HandNet()
    assert net.architecture == "handnet.model:HandNet"
    assert net.conv_names == ["conv1", "conv2"]
    assert net.conv1.weight.shape == (8, 1, 5, 5) and net.conv2.weight.shape == (16, 8, 5, 5)
    assert net.fc4.in_features == 16 * 7 * 7 and net.fc4.out_features == 128
    x = _images(3, 0)
    out = net(x)
    assert out.shape == (3, 10)
    torch.testing.assert_close(out.exp().sum(1), torch.ones(3))
    d = net.descriptions()
    assert len(d["conv1"]) == 8 and len(d["conv2"]) == 16 and all(d["conv1"] + d["conv2"])
    assert net.layer_kinds() == {"conv1": "gabor", "conv2": "rule"}


def test_widths_cut_the_bank() -> None:
    net = HandNet(default_config((4, 6), fc4=32))
    assert net.conv2.weight.shape == (6, 4, 5, 5) and net.fc4.out_features == 32


def test_config_json_round_trip() -> None:
    config = default_config()
    back = HandNetConfig.from_dict(json.loads(json.dumps(config.to_dict())))
    assert back == config


def test_checkpoint_round_trip(tmp_path: Path) -> None:
    net = HandNet()
    with torch.no_grad():
        net.conv1.orientation.add_(0.1)
        net.conv2.log_strength.mul_(0.5)
    save_model(tmp_path / "ck", net, CheckpointMeta(kind="HandNet", mode="hand-built"))
    back, meta = load_checkpoint(tmp_path / "ck")
    assert meta.architecture == "handnet.model:HandNet" and meta.mode == "hand-built"
    x = _images(2, 1)
    torch.testing.assert_close(back(x), net.eval()(x))
    assert back.descriptions() == net.descriptions()


def test_freed_layers_are_plain_convs_with_their_old_descriptions() -> None:
    config = default_config()
    free = HandNet(HandNetConfig(config.conv1, config.conv2, free=("conv1", "conv2")))
    assert isinstance(free.conv1, torch.nn.Conv2d)
    assert free.conv1.descriptions[0] == "horizontal line (freed)"
    assert free.layer_kinds()["conv2"] == "free"


def test_head_equals_the_fitted_linear_map() -> None:
    net = HandNet(default_config(fc4=24))
    images = _images(60, 2)
    labels = torch.arange(60) % 10
    feats = frozen_features(net, images)
    fit = fit_logistic(feats, labels, 10, l2=1e-3, max_iter=50)
    set_head(net, fit, feats)
    expected = feats @ fit.weight.T + fit.bias
    torch.testing.assert_close(net.logits(images), expected, atol=1e-3, rtol=1e-4)
    rows = net.fc4.weight.double()
    gram = rows @ rows.T  # orthogonal rows; the fitted directions carry sqrt(S), the rest 1
    torch.testing.assert_close(gram - torch.diag(gram.diag()), torch.zeros(24, 24).double(),
                               atol=1e-4, rtol=0)  # fmt: skip
    torch.testing.assert_close(gram.diag()[10:], torch.ones(14).double(), atol=1e-5, rtol=0)
    torch.testing.assert_close(net.fc5.weight[:, 10:], torch.zeros(10, 14))


def test_fit_head_separates_a_separable_toy_set() -> None:
    net = HandNet(default_config(fc4=16))
    images = torch.zeros(20, 1, 28, 28)
    labels = torch.arange(20) % 10
    for i, k in enumerate(labels.tolist()):
        images[i, 0, 2 + 2 * k : 4 + 2 * k, 4:24] = 1.0  # a horizontal bar per class
    before = [p.clone() for p in net.conv1.parameters()]
    fit = fit_head(net, images, labels, l2=1e-4)
    assert fit.train_accuracy == 1.0
    assert (net.logits(images).argmax(1) == labels).all()
    assert all(torch.equal(a, b) for a, b in zip(before, net.conv1.parameters(), strict=True))


def test_the_build_fits_its_head_on_augmented_copies_and_its_penalty_on_validation() -> None:
    from handnet.head import HEAD_L2, augmented_copies, choose_l2
    from handnet.steps import build_handnet

    bars = torch.zeros(40, 1, 28, 28)
    labels = torch.arange(40) % 10
    for i, k in enumerate(labels.tolist()):
        bars[i, 0, 2 + 2 * k : 4 + 2 * k, 4 + i // 10 : 24] = 1.0  # a horizontal bar per class
    x, y = augmented_copies(bars, labels, 3, "mnist")
    assert x.shape == (120, 1, 28, 28) and torch.equal(y, labels.repeat(3))
    assert torch.equal(x[:40], bars) and not torch.equal(x[40:80], bars)  # copies are moved
    assert torch.equal(x, augmented_copies(bars, labels, 3, "mnist")[0])  # and seeded
    assert torch.equal(x, augmented_copies(bars, labels, 3, "mnist", 0)[0])  # by seed 0
    other = augmented_copies(bars, labels, 3, "mnist", 1)[0]
    assert torch.equal(other[:40], bars) and not torch.equal(other[40:], x[40:])  # another draw
    assert augmented_copies(bars, labels, 1, "mnist")[0] is bars  # one copy: the digits alone
    fit, val = (bars[:30], labels[:30]), (bars[30:], labels[30:])
    net, head, l2 = build_handnet((8, 16), 16, fit, val=val, dataset="mnist")
    choice = choose_l2(net, fit, val, "mnist")
    assert l2 == choice.l2 and l2 in HEAD_L2 and choice.fit is not None
    torch.testing.assert_close(head.weight, choice.fit.weight)  # the chosen fit is the head
    assert (net.logits(bars[30:]).argmax(1) == labels[30:]).float().mean() >= 0.9
    assert build_handnet((8, 16), 16, fit, 1e-2, val=val, dataset="mnist")[2] == 1e-2
    plain, plain_head, plain_l2 = build_handnet((8, 16), 16, fit, val=val)  # no data set: no copies
    alone = choose_l2(plain, fit, val, None, copies=1)
    assert plain_l2 == alone.l2 and alone.features is not None and len(alone.features) == 30
    assert alone.fit is not None and torch.equal(plain_head.weight, alone.fit.weight)
    assert choose_l2(net, fit, (bars[:0], labels[:0]), "mnist").l2 == HEAD_L2[0]  # none to judge


def test_a_third_width_adds_a_conv3_of_rules_that_round_trips(tmp_path: Path) -> None:
    from handnet.finetune import freed_copy

    net = HandNet(default_config((8, 16, 12), fc4=32))
    assert net.conv_names == ["conv1", "conv2", "conv3"]
    assert net.conv3.weight.shape == (12, 16, 5, 5) and net.fc4.in_features == 12 * 3 * 3
    assert net.layer_kinds()["conv3"] == "rule" and len(net.descriptions()["conv3"]) == 12
    # conv3 channel j starts as a copy of conv2 channel j: its weight lies on inner channel j
    w = net.conv3.weight.detach().abs().sum(dim=(2, 3))
    assert torch.equal(w.argmax(1), torch.arange(12))
    with torch.no_grad():
        net.conv3.log_strength.mul_(0.5)
    save_model(tmp_path / "ck", net, {"kind": "HandNet"})
    back, _ = load_checkpoint(tmp_path / "ck")
    x = _images(2, 3)
    torch.testing.assert_close(back(x), net.eval()(x))
    torch.testing.assert_close(freed_copy(net)(x), net(x), atol=1e-5, rtol=1e-5)


def test_readout_is_convex_same_probabilities_from_two_starts() -> None:
    import torch.nn.functional as F

    g = torch.Generator().manual_seed(0)
    x = torch.randn(120, 6, generator=g)
    y = (x[:, 0] + 0.5 * torch.randn(120, generator=g) > 0).long() + (x[:, 1] > 1).long()
    other = fit_logistic(x * 2 + 1, y, 3, l2=1e-4)  # another fit of other features: a warm start
    fits = [
        fit_logistic(x, y, 3, l2=1e-2),
        fit_logistic(x, y, 3, l2=1e-2, start=(torch.randn(3, 6, generator=g) * 3,
                                              torch.randn(3, generator=g))),
        fit_logistic(x, y, 3, l2=1e-2, warm=other),
    ]  # fmt: skip
    probs = [F.softmax(x @ f.weight.T + f.bias, 1) for f in fits]
    torch.testing.assert_close(probs[0], probs[1], atol=1e-4, rtol=0)
    torch.testing.assert_close(probs[0], probs[2], atol=1e-4, rtol=0)


def test_no_conv_parameter_requires_grad_while_the_head_is_fitted() -> None:
    net = HandNet(default_config((4, 6), fc4=16))
    seen: list[bool] = []

    def record(module: torch.nn.Module, *_: object) -> None:
        seen.extend(p.requires_grad for p in module.parameters())

    hooks = [getattr(net, n).register_forward_hook(record) for n in net.conv_names]
    images = torch.rand(30, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    fit_head(net, images, torch.arange(30) % 10)
    for h in hooks:
        h.remove()
    assert seen and not any(seen)
    # afterwards the flags are back (fine-tuning may train the interpretable parameters)
    assert all(p.requires_grad for p in net.conv1.parameters())


def test_a_third_layer_of_carry_rules_passes_every_stroke_of_conv2_on() -> None:
    """conv3's carry rules copy their conv2 channel forward without a threshold: wherever the
    (non-negative) conv2 map has any mass nearby, the copy is positive after the ReLU."""
    net = HandNet(default_config((8, 16, 16), context=False)).eval()
    x = torch.zeros(1, 16, 7, 7)
    x[0, 3, 3, 3] = 0.01  # one faint point of conv2's channel 4
    with torch.no_grad():
        y = torch.relu(net.conv3(x))
    assert float(y[0, 3, 3, 3]) > 0 and float(y[0, 3, 3, 4]) > 0  # on it and around it
    assert float(y[0, 2].abs().max()) == 0.0  # the other channels stay silent


def test_carried_channels_are_described_by_what_they_carry() -> None:
    net = HandNet(default_config((8, 16, 4)))
    conv2 = net.conv2.rule_descriptions
    for j, written in enumerate(net.conv3.descriptions):
        assert written.startswith(conv2[j].split(",")[0].split(" (")[0] + " (conv2 channel "), (
            written
        )
