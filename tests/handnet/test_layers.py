"""GaborConv2d and RuleConv2d: generated weights, gradients, and rules applied by hand."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from handnet.filters import GaborSpec, spec_kernel
from handnet.layers import GaborConv2d, Rule, RuleConv2d, Term, spatial_profile


def test_gabor_conv_weight_is_the_formula() -> None:
    specs = [GaborSpec(45.0, 4.0, 0.0, 1.2, 0.5, 2.0, 0.3), GaborSpec(90.0, 5.0, 90.0)]
    layer = GaborConv2d(specs)
    assert layer.weight.shape == (2, 1, 5, 5)
    torch.testing.assert_close(layer.weight[0, 0], 2.0 * spec_kernel(specs[0]))
    torch.testing.assert_close(layer.weight[1, 0], spec_kernel(specs[1]))
    x = torch.randn(3, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(layer(x), F.conv2d(x, layer.weight, layer.bias, padding=2))
    assert layer.descriptions == ["line at 45 degrees", "left side of a vertical line"]
    back = layer.specs
    assert abs(back[0].orientation - 45.0) < 1e-4 and abs(back[1].wavelength - 5.0) < 1e-5


def test_gabor_conv_gradients_reach_every_parameter() -> None:
    layer = GaborConv2d([GaborSpec(30.0, 4.0, 20.0, 1.2, 0.6, 1.0, 0.1)])
    x = torch.randn(2, 1, 9, 9, generator=torch.Generator().manual_seed(1))
    layer(x).pow(2).sum().backward()
    names = [n for n, _ in layer.named_parameters()]
    assert len(names) == 7
    for name, p in layer.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_orientation_change_updates_the_description() -> None:
    layer = GaborConv2d([GaborSpec(45.0)])
    with torch.no_grad():
        layer.orientation.fill_(torch.deg2rad(torch.tensor(38.0)).item())
    assert layer.descriptions == ["line at 38 degrees"]


def test_profile_is_a_normalised_oriented_gaussian() -> None:
    one = torch.ones(1)
    p = spatial_profile(5, torch.zeros(1), 2 * one, 0.5 * one, torch.zeros(1), torch.ones(1))[0]
    assert abs(p.sum().item() - 1) < 1e-6
    assert p.argmax().item() == 1 * 5 + 2  # dy = +1 (up) is row 1, centre column
    assert p[1, 0] > p[0, 2]  # elongated along the horizontal


def test_rule_output_equals_the_rule_applied_by_hand() -> None:
    """Outer 0 = 2 * profile_a (*) x_1 - 0.5 * profile_b (*) x_0 + bias; outer 1 = x_2 only."""
    a = Term(1, 1, 2.0, orientation=45.0, length=1.5, width=0.7, dx=1.0, dy=0.0)
    b = Term(0, -1, 0.5, orientation=0.0, length=1.0, width=1.0)
    c = Term(2, 1, 1.0, orientation=90.0)
    layer = RuleConv2d(3, [Rule("r0", (a, b), -0.25), Rule("r1", (c,), 0.0)])
    x = torch.randn(2, 3, 6, 6, generator=torch.Generator().manual_seed(2))

    def prof(t: Term) -> torch.Tensor:
        f = torch.tensor
        return spatial_profile(5, f([t.orientation]), f([t.length]), f([t.width]),
                               f([t.dx]), f([t.dy]))[0][None, None]  # fmt: skip

    def corr(j: int, t: Term) -> torch.Tensor:
        return F.conv2d(x[:, j : j + 1], prof(t), padding=2)[:, 0]

    expected0 = 2.0 * corr(1, a) - 0.5 * corr(0, b) - 0.25
    expected1 = corr(2, c)
    out = layer(x)
    torch.testing.assert_close(out[:, 0], expected0, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out[:, 1], expected1, atol=1e-5, rtol=1e-5)
    w = layer.weight
    assert w[0, 2].abs().sum() == 0 and w[1, 0].abs().sum() == 0 and w[1, 1].abs().sum() == 0
    assert layer.descriptions == ["r0", "r1"]
    back = dict((o, t) for o, t in layer.terms())
    assert back[1].inner == 2 and abs(back[0].strength - 0.5) < 1e-6


def test_rule_gradients_reach_strengths_but_not_absent_pairs() -> None:
    layer = RuleConv2d(2, [Rule("r", (Term(0, 1, 1.0),), 0.0)])
    x = torch.randn(1, 2, 6, 6, generator=torch.Generator().manual_seed(3))
    layer(x).sum().backward()
    assert layer.log_strength.grad is not None and layer.log_strength.grad.abs().item() > 0
    assert layer.weight[0, 1].abs().sum() == 0


def test_grown_context_terms_join_the_description() -> None:
    rule = Rule("vertical line", (Term(0, 1, 1.0), Term(1, 1, 0.02, context=True),
                                  Term(1, -1, 0.02, context=True)))  # fmt: skip
    layer = RuleConv2d(2, [rule])
    layer.inner_names = ["vertical line", "horizontal line"]
    assert layer.descriptions == ["vertical line"]
    x = torch.randn(1, 2, 5, 5, generator=torch.Generator().manual_seed(4))
    assert layer(x).shape == (1, 1, 5, 5)  # the cancelling pair adds nothing
    torch.testing.assert_close(layer.weight[0, 1], torch.zeros(5, 5))
    with torch.no_grad():
        layer.log_strength[2].fill_(torch.log(torch.tensor(0.52)).item())  # net -0.5
    assert layer.descriptions == ["vertical line; learned: suppressing horizontal line (0.50)"]


def test_a_context_pair_that_moved_apart_reshapes() -> None:
    rule = Rule("vertical line", (Term(0, 1, 1.0), Term(1, 1, 1.0, context=True),
                                  Term(1, -1, 1.0, context=True)))  # fmt: skip
    layer = RuleConv2d(2, [rule])
    layer.inner_names = ["vertical line", "horizontal line"]
    with torch.no_grad():
        layer.dx[1].fill_(1.5)  # + on the right, - in the centre: a derivative, not a sum
    assert layer.descriptions[0].startswith("vertical line; learned: reshaping horizontal line")
