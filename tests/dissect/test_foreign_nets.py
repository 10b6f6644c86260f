"""dissect on networks written the way other people write them (tests/dissect/foreign_nets.py),
loaded as a person would bring them (a class or factory from a file plus a plain state dict),
and on hand-built networks with known answers: in-place ReLU, GELU, unusual convs, residual
additions, concatenation, and the errors a person can cause."""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TypeVar

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from dissect.ablation import ablation_table
from dissect.activations import activation_maps, activation_stats
from dissect.audit import explain_prediction
from dissect.contributions import contribution_table, layer_contributions
from dissect.foreign import import_model, load_model
from dissect.gabor import gabor_fit
from dissect.head import class_drivers, score_contributions
from dissect.infra.errors import AuditError
from dissect.labels import describe_model
from dissect.mistakes import confident_mistakes, confusion_examples
from dissect.specimen import InputSpec, Specimen
from dissect.superstimuli import class_superstimuli, layer_superstimuli
from dissect.weights import first_layer_weights
from tests.dissect.foreign_nets import tiny_data, train_briefly

NETS_FILE = Path(__file__).resolve().with_name("foreign_nets.py")
NETS = {
    "ExampleNet": (["conv1", "conv2"], "fc2"),
    "SequentialNet": (["conv1.0", "conv2.0"], "head"),
    "lenet5": (["0", "3"], "11"),
}
EXACT = 1e-5  # relative bound of every decomposition


def _spec(name: str) -> str:
    return f"{NETS_FILE}:{name}"


@pytest.fixture(scope="module")
def data() -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    return {"train": tiny_data(20, seed=0), "test": tiny_data(5, seed=1)}


@pytest.fixture(scope="module")
def foreign(tmp_path_factory, data) -> dict[str, tuple[nn.Module, nn.Module]]:
    """Each net trained briefly, saved as a plain state dict and loaded back by file path:
    ``name -> (trained model, loaded model)``."""
    folder = tmp_path_factory.mktemp("foreign")
    nets = {}
    for name in NETS:
        torch.manual_seed(0)
        images, labels = data["train"]
        trained = train_briefly(import_model(_spec(name)), images, labels, steps=40, seed=0)
        path = folder / f"{name}.pt"
        torch.save(trained.state_dict(), path)
        nets[name] = (trained, load_model(_spec(name), path))
    return nets


@pytest.fixture(params=list(NETS))
def net(request, foreign) -> tuple[str, nn.Module]:
    return request.param, foreign[request.param][1]


def _width(specimen: Specimen, layer: str) -> int:
    """Outer channels of conv ``layer``."""
    return int(specimen.conv(layer).weight.shape[0])


def _float64(model: nn.Module, spec: InputSpec | None = None) -> Specimen:
    return Specimen(copy.deepcopy(model).double(), spec)


def _assert_conv_exact(
    specimen: Specimen, layer: str, images: torch.Tensor, channels: Iterable[int]
) -> None:
    """``|bias + sum_j a_j - y| <= EXACT (sum_j |a_j| + |bias|)`` everywhere, and ``y`` is what
    the conv module itself gives on what it read."""
    conv = specimen.conv(layer)
    x_in = specimen.run(images, {f"{layer}:in"})[f"{layer}:in"]
    for o in channels:
        _, a, bias, y = layer_contributions(specimen, layer, images, o)
        scale = a.abs().sum(1) + bias.abs()
        assert ((bias + a.sum(1) - y).abs() <= EXACT * scale).all(), (layer, o)
        assert torch.allclose(y, conv(x_in)[:, o], rtol=0, atol=1e-12), (layer, o)


# -- the three foreign networks --------------------------------------------------------------


def test_the_loaded_weights_are_the_trained_ones_and_learned_the_task(foreign, data) -> None:
    x, y = data["test"]
    for name, (trained, loaded) in foreign.items():
        for key, value in trained.state_dict().items():
            assert torch.equal(value, loaded.state_dict()[key]), (name, key)
        assert not loaded.training
        with torch.no_grad():
            accuracy = float((loaded(x).argmax(1) == y).float().mean())
        assert accuracy >= 0.6, (name, accuracy)


def test_layout_is_found_by_module_path(net) -> None:
    name, model = net
    convs, logits = NETS[name]
    specimen = Specimen(model)
    assert specimen.conv_names == convs
    assert specimen.logits_name == logits
    assert specimen.num_classes == 10
    assert specimen.activations == {layer: "relu" for layer in convs}


def test_the_input_spec_normalises_what_the_first_conv_reads(net, data) -> None:
    name, model = net
    spec = InputSpec(mean=(0.1307,), std=(0.3081,))
    x = data["test"][0][:4]
    first = NETS[name][0][0]
    seen = Specimen(model, spec).run(x, {f"{first}:in"})[f"{first}:in"]
    assert torch.allclose(seen, (x - 0.1307) / 0.3081, atol=1e-6)


def test_conv_decomposition_is_exact_on_every_layer(net, data) -> None:
    name, model = net
    specimen = _float64(model)
    x = data["test"][0]
    with torch.no_grad():
        for layer in specimen.conv_names:
            width = _width(specimen, layer)
            _assert_conv_exact(specimen, layer, x, sorted({0, width // 2, width - 1}))


def test_class_score_decomposition_is_exact_on_every_layer(net, data) -> None:
    name, model = net
    x = data["test"][0]
    specimen = Specimen(model)
    with torch.no_grad():
        own = copy.deepcopy(model).double()(x.double())
    for layer in specimen.conv_names:
        split = score_contributions(specimen, x, layer)
        width = _width(specimen, layer)
        assert split.contributions.shape == (len(x), 10, width)
        assert split.non_affine == ()
        assert split.relative_error <= EXACT, (layer, split.relative_error)
        # the scores are the model's own: its log-probabilities where it returns them
        scores = split.scores if name != "ExampleNet" else torch.log_softmax(split.scores, 1)
        assert torch.allclose(scores, own, atol=1e-9)


def test_every_public_function_runs_with_sane_results(net, data) -> None:
    name, model = net
    x, y = data["test"]
    specimen = Specimen(model)
    convs = specimen.conv_names
    widths = [_width(specimen, layer) for layer in convs]
    last, width = convs[-1], widths[-1]

    maps = activation_maps(specimen, last, x)
    assert maps.shape[:2] == (len(x), width) and maps.min() >= 0
    stats = activation_stats(specimen, last, x)
    assert all(stats[k].shape == (width,) for k in ("mean", "std", "active"))
    assert torch.allclose(stats["mean"], maps.mean((0, 2, 3)), atol=1e-5)

    table = contribution_table(specimen, last, width - 1, x[:1], data=x)
    assert len(table) == widths[-2] + 1 and table["j"].iloc[-1] == "bias"
    assert math.isclose(table["c_j"].iloc[-1], table.attrs["y_sum"], rel_tol=1e-4, abs_tol=1e-4)

    labels = describe_model(specimen)
    assert len(labels) == sum(widths)
    assert list(labels.groupby("layer", sort=False).size()) == widths

    ablations = ablation_table(specimen, x, y)
    assert len(ablations) == sum(widths) and ablations["drop"].abs().max() <= 100

    confusion = confusion_examples(specimen, x, y)
    assert confusion["count"].sum() == len(x)
    mistakes = confident_mistakes(specimen, x, y)
    assert (mistakes["true"] != mistakes["predicted"]).all()

    explanation = explain_prediction(specimen, x[:1])
    assert explanation.layer == last and len(explanation.drivers) == 5
    assert explanation.non_affine == () and abs(explanation.residual) <= 1e-6
    assert 0.0 < explanation.probability <= 1.0

    drivers = class_drivers(specimen, x, y)
    assert len(drivers) == 10 * width
    assert set(drivers[drivers["rank"] == 1]["class"]) == set(range(10))

    weights = first_layer_weights(specimen)
    assert weights.shape == specimen.conv(convs[0]).weight.shape
    for kernel in weights[:3, 0]:
        fit = gabor_fit(kernel.numpy())
        assert fit.r2 <= 1.0 + 1e-9 and 0.0 <= fit.orientation < 180.0


def test_superstimuli_raise_their_channels_and_classes(net) -> None:
    name, model = net
    specimen = Specimen(model)
    last = specimen.conv_names[-1]
    start = layer_superstimuli(specimen, last, steps=0)
    reached = layer_superstimuli(specimen, last, steps=32)
    assert reached.images.shape == (_width(specimen, last), 1, 28, 28)
    assert reached.images.min() >= 0 and reached.images.max() <= 1
    assert float(reached.activation.mean()) > float(start.activation.mean())
    # channels that fire at the start (a gradient through the ReLU) are raised
    firing = torch.tensor([u == "post" for u in reached.used])
    assert (reached.activation[firing] > start.activation[firing]).float().mean() >= 0.9
    classes = class_superstimuli(specimen, steps=32)
    assert classes.images.shape == (10, 1, 28, 28)
    assert float(classes.activation.mean()) > 0.5  # far above chance (0.1)


# -- hand-built networks with known answers ----------------------------------------------------

SMALL = InputSpec(1, 6, 6)


Net = TypeVar("Net", bound=nn.Module)


def _seeded(model: Net, seed: int) -> Net:
    """``model`` in float64 with weights drawn from ``seed`` (biases too), in eval mode."""
    g = torch.Generator().manual_seed(seed)
    model.double().eval()
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=torch.float64) * 0.5)
    return model


def _pixels(n: int, shape: tuple[int, ...] = (1, 6, 6), seed: int = 0) -> torch.Tensor:
    return torch.rand(n, *shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def test_in_place_relu_after_a_conv_does_not_change_the_captured_output() -> None:
    conv, fc = nn.Conv2d(1, 2, 3, padding=1), nn.Linear(72, 3)
    kernel = torch.zeros(2, 1, 3, 3)
    kernel[0, 0, 1, 1], kernel[1, 0, 1, 1] = 1.0, -1.0  # x - 0.5 and -x
    conv.weight, conv.bias = nn.Parameter(kernel), nn.Parameter(torch.tensor([-0.5, 0.0]))
    model = nn.Sequential(conv, nn.ReLU(inplace=True), nn.Flatten(), fc).double()
    x = _pixels(2)
    expected = torch.cat([x - 0.5, -x], 1)
    acts = Specimen(model.eval(), SMALL).run(x, {"0", "0:post", "logits"})
    assert torch.equal(acts["0"], expected) and acts["0"].min() < 0
    assert torch.equal(acts["0:post"], expected.clamp(min=0))
    with torch.no_grad():
        assert torch.allclose(acts["logits"], fc(expected.clamp(min=0).flatten(1)))


def test_a_post_activation_pass_stops_after_its_non_linearity() -> None:
    from tests.dissect.foreign_nets import ExampleNet

    model = ExampleNet().eval()
    specimen = Specimen(model, InputSpec(1, 28, 28))
    x = _pixels(2, (1, 28, 28)).float()
    specimen.run(x, {"conv1"})  # the first pass also finds the layout (every module runs)
    later: list[str] = []
    for name in ("conv2", "fc1"):
        model.get_submodule(name).register_forward_hook(lambda *_, n=name: later.append(n))
    acts = specimen.run(x, {"conv1:post"})
    assert later == [] and torch.equal(acts["conv1:post"], F.relu(model.conv1(x)))
    acts = specimen.run(x, {"conv1:post", "conv2"})  # a later need runs up to that layer
    assert later == ["conv2"] and "conv2" in acts
    specimen.run(x, {"conv1:post", "logits"})
    assert later == ["conv2", "conv2", "fc1"]


def test_a_gelu_on_the_path_is_named_and_its_residual_kept() -> None:
    fc = nn.Linear(32, 3)
    model = _seeded(nn.Sequential(nn.Conv2d(1, 2, 3), nn.GELU(), nn.Flatten(), fc), 1)
    specimen = Specimen(model, SMALL)
    assert specimen.activations == {"0": "gelu"}
    x = _pixels(4)
    split = score_contributions(specimen, x, "0")
    assert "gelu" in split.non_affine
    with torch.no_grad():
        assert torch.allclose(split.scores, model(x), atol=1e-12)
    # zeros through the frozen path: gelu(0) = 0, so the bias term is the linear layer's bias
    assert torch.allclose(split.bias, fc.bias.expand(4, 3), atol=1e-12)
    residual = split.scores - split.contributions.sum(2) - split.bias
    assert torch.allclose(split.residual, residual, atol=1e-12)
    assert float(residual.abs().max()) > 1e-4
    explanation = explain_prediction(specimen, x[:1])
    assert "gelu" in explanation.non_affine and explanation.residual != 0.0


def test_score_split_of_a_linear_head_matches_a_hand_computation() -> None:
    conv, fc = nn.Conv2d(1, 2, 3), nn.Linear(32, 3)
    model = _seeded(nn.Sequential(conv, nn.Flatten(), fc), 2)
    x = _pixels(3)
    split = score_contributions(Specimen(model, SMALL), x, "0")
    with torch.no_grad():
        z = conv(x)  # [3, 2, 4, 4]
        w = fc.weight.view(3, 2, 16)
        expected = torch.einsum("kcp,ncp->nkc", w, z.flatten(2))
    assert torch.allclose(split.contributions, expected, atol=1e-12)
    assert torch.allclose(split.bias, fc.bias.expand(3, 3), atol=1e-12)


UNUSUAL_CONVS: dict[str, Callable[[], nn.Conv2d]] = {
    "strided": lambda: nn.Conv2d(3, 4, 3, stride=2, padding=1),
    "dilated": lambda: nn.Conv2d(3, 4, 3, dilation=2, padding=2),
    "grouped": lambda: nn.Conv2d(3, 6, 3, groups=3, padding=1),
    "reflect-padded": lambda: nn.Conv2d(3, 4, 3, padding=1, padding_mode="reflect"),
    "bias-free": lambda: nn.Conv2d(3, 4, 3, padding=1, bias=False),
    "rectangular": lambda: nn.Conv2d(3, 4, (1, 3), stride=(2, 1), padding=(0, 2), dilation=2),
}


@pytest.mark.parametrize("kind", list(UNUSUAL_CONVS))
def test_unusual_convs_give_exact_contribution_tables(kind: str) -> None:
    conv = UNUSUAL_CONVS[kind]()
    stem = nn.Conv2d(1, 3, 3, padding=1)
    with torch.no_grad():
        width = conv(stem(torch.zeros(1, 1, 8, 8))).numel()
    model = _seeded(
        nn.Sequential(stem, nn.ReLU(), conv, nn.ReLU(), nn.Flatten(), nn.Linear(width, 3)), 3
    )
    specimen = Specimen(model, InputSpec(1, 8, 8))
    x = _pixels(3, (1, 8, 8))
    with torch.no_grad():
        own = conv(F.relu(stem(x)))  # the module's own output
        _assert_conv_exact(specimen, "2", x, range(conv.out_channels))
        for o in range(conv.out_channels):
            table = contribution_table(specimen, "2", o, x[:1])
            assert len(table) == conv.in_channels // conv.groups + 1
            assert math.isclose(table["c_j"].iloc[-1], float(own[0, o].sum()), abs_tol=1e-9)
            assert math.isclose(table.attrs["y_sum"], float(own[0, o].sum()), abs_tol=1e-9)
    if kind == "grouped":  # outer channel 5 reads inner channel 3 only (1-based)
        assert contribution_table(specimen, "2", 5, x[:1])["j"].tolist() == [3, "bias"]
    split = score_contributions(specimen, x, "2")
    assert split.relative_error <= EXACT and split.non_affine == ()


class Residual(nn.Module):
    """``h = relu(conv0 x); y = relu(conv2(relu(conv1 h)) + h)``, pooled, linear scores."""

    def __init__(self) -> None:
        super().__init__()
        self.conv0 = nn.Conv2d(1, 4, 3, padding=1)
        self.conv1 = nn.Conv2d(4, 4, 3, padding=1)
        self.conv2 = nn.Conv2d(4, 4, 3, padding=1)
        self.fc = nn.Linear(4 * 3 * 3, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.conv0(x))
        y = F.relu(self.conv2(F.relu(self.conv1(h))) + h)
        return self.fc(F.max_pool2d(y, 2).flatten(1))


class Branches(nn.Module):
    """Two branches concatenated, a conv over both, average pooling, linear scores."""

    def __init__(self) -> None:
        super().__init__()
        self.narrow = nn.Conv2d(1, 3, 3, padding=1)
        self.wide = nn.Conv2d(1, 2, 5, padding=2)
        self.mix = nn.Conv2d(5, 4, 3, padding=1)
        self.fc = nn.Linear(4 * 3 * 3, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.cat([F.relu(self.narrow(x)), F.relu(self.wide(x))], 1)
        h = F.relu(self.mix(h))
        return self.fc(F.avg_pool2d(h, 2).flatten(1))


@pytest.mark.parametrize("build", [Residual, Branches])
def test_residual_additions_and_concatenation_are_exact(build) -> None:
    model = _seeded(build(), 4)
    specimen = Specimen(model, SMALL)
    x = _pixels(5)
    with torch.no_grad():
        own = model(x)
        for layer in specimen.conv_names:
            _assert_conv_exact(specimen, layer, x, range(_width(specimen, layer)))
    for layer in specimen.conv_names:
        split = score_contributions(specimen, x, layer)
        assert split.non_affine == (), layer
        assert split.relative_error <= EXACT, (layer, split.relative_error)
        assert torch.allclose(split.scores, own, atol=1e-12)


def test_a_model_without_conv_is_refused() -> None:
    with pytest.raises(AuditError, match="no nn.Conv2d"):
        Specimen(nn.Sequential(nn.Flatten(), nn.Linear(784, 10)))


def test_a_forward_pass_that_fails_on_the_declared_input_names_the_shape(foreign) -> None:
    with pytest.raises(AuditError, match=r"\[1, 1, 10, 10\]"):
        Specimen(foreign["ExampleNet"][1], InputSpec(1, 10, 10))
    broken = nn.Sequential(nn.Conv2d(1, 4, 3), nn.Flatten(), nn.Linear(10, 3))
    with pytest.raises(AuditError, match=r"\[1, 1, 28, 28\]"):
        Specimen(broken)
