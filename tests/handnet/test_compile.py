"""Networks compiled from a dissection (handnet.compile)."""

from __future__ import annotations

from dataclasses import replace
from typing import cast

import pytest
import torch

from dissect.infra.errors import AuditError
from handnet.compile import (
    EDGE_WIDTH,
    HEAD_L2,
    LINE_WIDTH,
    SILENT,
    canonical_spec,
    compile_explanation,
    refit_readout,
)
from handnet.filters import edge_detector_spec, line_detector_spec
from handnet.model import HandNet, default_config
from simpleconvnet.model import SimpleConvNet, SimpleConvNetConfig


def _weight(net: torch.nn.Module, layer: str) -> torch.Tensor:
    return cast(torch.Tensor, net.get_submodule(layer).weight)


def test_words_name_the_canonical_filters() -> None:
    line, edge = dict(width=LINE_WIDTH, gain=1.0), dict(width=EDGE_WIDTH, gain=1.0)
    assert canonical_spec("line at 45 degrees (/)") == line_detector_spec(45.0, **line)
    assert canonical_spec("left side of a vertical line") == edge_detector_spec(180.0, **edge)
    assert canonical_spec("top side of a horizontal line") == edge_detector_spec(90.0, **edge)
    assert canonical_spec("corner opening up-right") is None


def test_a_compiled_filter_at_an_in_between_angle_reads_as_its_words() -> None:
    from dissect.probes import EDGE_SIDES, LINE_NAMES
    from handnet.filters import describe_gabor

    for angle in (22.5, 67.5, 112.5, 157.5):
        for words in (LINE_NAMES[angle], *(name for name, _ in EDGE_SIDES[angle])):
            spec = canonical_spec(words)
            assert spec is not None
            assert describe_gabor(spec.orientation, spec.phase) == words


# default_conv1's channels, in its order (its rules read them by index), in the probes' words
_WORDS = ("horizontal line", "line at 45 degrees (/)", "vertical line", "line at 135 degrees (\\)",
          "top side of a horizontal line", "bottom side of a horizontal line",
          "left side of a vertical line", "right side of a vertical line")  # fmt: skip


def _analytic(seed: int) -> HandNet:
    """The default HandNet's shape, each first-layer filter the canonical filter of its words
    (random gains and biases), the head random."""
    g = torch.Generator().manual_seed(seed)
    config = default_config((8, 16), fc4=32, context=False)
    gains, biases = 0.1 + torch.rand(8, generator=g), 0.1 * torch.randn(8, generator=g)
    conv1 = []
    for words, gain, bias in zip(_WORDS, gains.tolist(), biases.tolist(), strict=True):
        spec = canonical_spec(words)
        assert spec is not None, words
        conv1.append(replace(spec, gain=gain, bias=bias))
    net = HandNet(replace(config, conv1=tuple(conv1))).eval()
    with torch.no_grad():
        for p in (net.fc4.weight, net.fc5.weight):
            p.copy_(torch.randn(p.shape, generator=g) * 0.1)
    return net


def test_a_network_of_exact_analytic_filters_compiles_to_itself() -> None:
    original = _analytic(0)
    x = torch.rand(6, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    compiled = compile_explanation(original, x, torch.zeros(6, dtype=torch.long), layers=("conv1",), refit_head=False)  # fmt: skip
    assert all(s != SILENT for s in compiled.config.conv1)  # every filter was described
    with torch.no_grad():
        assert torch.allclose(_weight(compiled, "conv1"), _weight(original, "conv1"), atol=1e-6)
        assert torch.allclose(compiled.logits(x), original.logits(x), rtol=1e-5, atol=1e-5)


def test_conv1_and_conv2_compile_into_rules_and_a_refitted_head() -> None:
    g = torch.Generator().manual_seed(1)
    original = _analytic(2)
    x, y = torch.rand(40, 1, 28, 28, generator=g), torch.arange(40) % 10
    compiled = compile_explanation(original, x, y, reference=20)
    assert type(compiled.conv2).__name__ == "RuleConv2d"
    assert sum(len(r.terms) for r in compiled.config.conv2) > 0
    assert compiled(x).shape == (40, 10) and torch.isfinite(compiled(x)).all()


def test_rules_of_single_terms_in_the_words_profile_compile_to_themselves() -> None:
    # each conv2 rule: two terms over differently oriented inner channels, each the words'
    # profile along its inner channel's orientation, off centre by whole and half pixels
    from dissect.labels import describe_model
    from handnet.compile import TERM_LENGTH, TERM_WIDTH
    from handnet.layers import Rule, Term

    angle = {w: 0.0 if "horizontal" in w else 90.0 if "vertical" in w else 45.0 if "45" in w else 135.0
             for w in _WORDS}  # fmt: skip
    base = _analytic(5)
    rules = []
    for o in range(16):
        j, k = o % 8, (o + 3) % 8
        rules.append(Rule(f"rule {o}", (
            Term(j, 1, 1.0 + o / 16, angle[_WORDS[j]], TERM_LENGTH, TERM_WIDTH, 0.5 * (o % 3) - 0.5, 1.0 - 0.5 * (o % 5)),
            Term(k, -1 if o % 2 else 1, 0.8, angle[_WORDS[k]], TERM_LENGTH, TERM_WIDTH, -1.0 + 0.5 * (o % 4), 0.0),
        ), -0.1))  # fmt: skip
    original = HandNet(replace(base.config, conv2=tuple(rules))).eval()
    words = describe_model(original)
    words.loc[words["layer"] == "conv2", "confident"] = True  # every rule described
    g = torch.Generator().manual_seed(6)
    x, y = torch.rand(40, 1, 28, 28, generator=g), torch.arange(40) % 10
    compiled = compile_explanation(original, x, y, descriptions=words, refit_head=False, reference=20)  # fmt: skip
    for written, found in zip(rules, compiled.config.conv2, strict=True):
        assert [(t.inner, t.sign, t.dx, t.dy) for t in found.terms] == sorted(
            (t.inner, t.sign, t.dx, t.dy) for t in written.terms
        )
        for t, u in zip(found.terms, sorted(written.terms, key=lambda t: t.inner), strict=True):
            assert t.strength == pytest.approx(u.strength, rel=1e-4)
    with torch.no_grad():
        assert torch.allclose(_weight(compiled, "conv2"), _weight(original, "conv2"), atol=1e-5)


def test_the_readout_penalty_is_chosen_on_the_validation_digits() -> None:
    from tests.dissect.foreign_nets import tiny_data

    images, labels = tiny_data(20, seed=4)  # the validation split: 2 of each class's 20
    net = SimpleConvNet(SimpleConvNetConfig(convs=(4, 8), fc4=16)).eval()
    before = _weight(net, "conv1").clone()
    l2 = refit_readout(net, images, labels, "mnist-5k")
    assert l2 in HEAD_L2 and torch.equal(_weight(net, "conv1"), before)  # only the head moved
    with torch.no_grad():
        assert float((net(images).argmax(1) == labels).float().mean()) > 0.5
    assert refit_readout(net, images, labels) == HEAD_L2[0]  # no split named: the first


def test_only_the_first_conv_layers_compile() -> None:
    x, y = torch.rand(2, 1, 28, 28), torch.zeros(2, dtype=torch.long)
    net = SimpleConvNet(SimpleConvNetConfig(convs=(4, 8, 8), fc4=16))
    with pytest.raises(AuditError, match="the first conv layers in order"):
        compile_explanation(net, x, y, layers=("conv1", "conv3"))


def _analytic3(seed: int) -> HandNet:
    """:func:`_analytic` with a third layer of rules."""
    two = _analytic(seed)
    net = HandNet(replace(two.config, conv3=default_config((8, 16, 16), context=False).conv3))
    g = torch.Generator().manual_seed(seed + 100)
    with torch.no_grad():
        for p in (net.fc4.weight, net.fc5.weight):
            p.copy_(torch.randn(p.shape, generator=g) * 0.1)
    return net.eval()


def test_a_three_layer_net_keeps_what_is_not_compiled_and_compiles_the_rest() -> None:
    original = _analytic3(3)
    g = torch.Generator().manual_seed(4)
    x, y = torch.rand(30, 1, 28, 28, generator=g), torch.arange(30) % 10
    kept = compile_explanation(original, x, y, layers=("conv1",), refit_head=False)
    with torch.no_grad():  # exact filters, conv2 and conv3 kept, the head copied: the same net
        assert torch.allclose(kept.logits(x), original.logits(x), rtol=1e-5, atol=1e-5)
    two = compile_explanation(original, x, y, layers=("conv1", "conv2"), reference=20)
    assert type(two.conv2).__name__ == "RuleConv2d" and type(two.conv3).__name__ == "Conv2d"
    assert torch.equal(_weight(two, "conv3"), _weight(original, "conv3"))
    every = compile_explanation(original, x, y, layers=("conv1", "conv2", "conv3"), reference=20)
    assert type(every.conv3).__name__ == "RuleConv2d"
    assert sum(len(r.terms) for r in every.config.conv3) > 0
    assert torch.isfinite(every(x)).all()


def test_handnet_build_from_a_checkpoint(tmp_path) -> None:
    import json

    from dissect.infra.checkpoints import load_checkpoint, save_model
    from dissect.infra.runtime import run_cli
    from handnet.cli import _main
    from tests.conftest import make_mnist_folder

    data = make_mnist_folder(tmp_path / "data", n_train=60, n_test=20)
    for widths in ((4, 8), (4, 8, 8)):
        net = SimpleConvNet(SimpleConvNetConfig(convs=widths, fc4=16))
        save_model(
            tmp_path / f"net{len(widths)}", net, {"data": {"name": "mnist", "data_dir": str(data)}}
        )
    out = tmp_path / "compiled"
    assert (
        run_cli(_main, ["build", "--from", str(tmp_path / "net2"), "--out", str(out), "--quiet"])
        == 0
    )
    meta = json.loads((out / "model.json").read_text())
    assert meta["mode"] == "compiled" and meta["compiled_layers"] == ["conv1", "conv2"]
    assert meta["parent"] == str(tmp_path / "net2") and "stage" not in meta
    model, _ = load_checkpoint(out)
    assert isinstance(model, HandNet) and 0 <= meta["metrics"]["accuracy"] <= 1
    three = ["build", "--from", str(tmp_path / "net3"), "--compile", "conv1,conv2,conv3"]
    assert run_cli(_main, [*three, "--out", str(tmp_path / "three"), "--quiet"]) == 0
    meta = json.loads((tmp_path / "three" / "model.json").read_text())
    assert meta["compiled_layers"] == ["conv1", "conv2", "conv3"]
    two_layers = ["build", "--from", str(tmp_path / "net2"), "--compile", "conv1,conv2,conv3"]
    assert run_cli(_main, [*two_layers, "--out", str(tmp_path / "x"), "--quiet"]) == 2
    assert not (tmp_path / "x").exists()


def test_conv1_from_the_gabor_fits_of_exact_gabors_is_the_same_net() -> None:
    original = _analytic(5)
    x = torch.rand(6, 1, 28, 28, generator=torch.Generator().manual_seed(6))
    compiled = compile_explanation(original, x, torch.zeros(6, dtype=torch.long), layers=("conv1",),
                                   refit_head=False, first="gabor")  # fmt: skip
    with torch.no_grad():
        assert torch.allclose(_weight(compiled, "conv1"), _weight(original, "conv1"), atol=1e-5)
        assert torch.allclose(compiled.logits(x), original.logits(x), rtol=1e-4, atol=1e-4)
    with pytest.raises(AuditError, match="'words' or 'gabor'"):
        compile_explanation(original, x, torch.zeros(6, dtype=torch.long), first="fit")
