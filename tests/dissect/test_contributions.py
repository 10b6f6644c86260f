import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from dissect.ablation import ablate_accuracy, ablation_table
from dissect.contributions import contribution_table, contributions, layer_contributions
from dissect.head import class_drivers, head_contributions
from dissect.images import load_png
from dissect.mistakes import confident_mistakes, confusion_examples
from dissect.weights import class_templates
from simpleconvnet.model import SimpleConvNet, SimpleConvNetConfig, init_weights
from simpleconvnet.train import TrainConfig, fit
from tests.cli_helpers import assert_one_line_error, run_module


@settings(max_examples=25, deadline=None)
@given(
    c_in=st.integers(1, 5),
    c_out=st.integers(1, 4),
    k=st.sampled_from([1, 3, 5]),
    seed=st.integers(0, 10_000),
)
def test_contributions_add_up_to_the_layer_output(c_in, c_out, k, seed) -> None:
    g = torch.Generator().manual_seed(seed)
    conv = torch.nn.Conv2d(c_in, c_out, k, padding=k // 2)
    with torch.no_grad():
        conv.weight.copy_(torch.randn(conv.weight.shape, generator=g))
        conv.bias.copy_(torch.randn(c_out, generator=g))
    x = torch.randn(2, c_in, 9, 9, generator=g)
    y = conv(x)
    for o in range(c_out):
        a = contributions(conv, x, o)
        assert a.shape == (2, c_in, 9, 9)
        assert torch.allclose(conv.bias[o] + a.sum(1), y[:, o], atol=1e-4, rtol=1e-5)


def test_hand_set_contribution() -> None:
    conv = torch.nn.Conv2d(2, 1, 1)
    with torch.no_grad():
        conv.weight.copy_(torch.tensor([[[[2.0]], [[-1.0]]]]))
        conv.bias.fill_(0.5)
    x = torch.tensor([[[[1.0, 3.0]], [[4.0, 0.0]]]])
    a = contributions(conv, x, 0)
    assert a.tolist() == [[[[2.0, 6.0]], [[-4.0, 0.0]]]]
    assert conv(x)[0, 0].tolist() == [[-1.5, 6.5]]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from dissect.infra.datasets import load_split
    from tests.conftest import make_mnist_folder

    root = make_mnist_folder(tmp_path_factory.mktemp("dissect") / "data")
    train, test = load_split("mnist", "train", str(root)), load_split("mnist", "test", str(root))
    model = SimpleConvNet(SimpleConvNetConfig(convs=(4, 6, 8), fc4=16))
    init_weights(model, torch.Generator().manual_seed(0))
    fit(model, train, test, TrainConfig(epochs=2, batch_size=20), quiet=True)
    return model.eval(), test


def test_exact_sum_on_every_layer_of_a_trained_model(trained) -> None:
    model, (x, _) = trained
    with torch.no_grad():
        for layer in model.conv_names:
            for o in range(getattr(model, layer).out_channels):
                _, a, bias, y = layer_contributions(model, layer, x[:20], o)
                assert torch.allclose(bias + a.sum(1), y, atol=1e-5 * float(y.abs().max()) + 1e-6)


def test_head_contributions_add_up_to_the_logits(trained) -> None:
    model, (x, y) = trained
    with torch.no_grad():
        contrib, bias = head_contributions(model, x[:30])
        assert contrib.shape == (30, 10, 8)
        assert torch.allclose(contrib.sum(2) + bias, model.logits(x[:30]).double(), atol=1e-4)
    drivers = class_drivers(model, x, y)
    assert len(drivers) == 10 * 8 and set(drivers[drivers["rank"] == 1]["class"]) == set(range(10))
    assert class_templates(model, x[:30]).shape == (10, 8)


def test_contribution_table_adds_up_and_assigns_roles(trained) -> None:
    model, (x, _) = trained
    table = contribution_table(model, "conv2", 1, x[:1], data=x[:40])
    assert list(table["j"][:-1]) == [1, 2, 3, 4] and table["j"].iloc[-1] == "bias"
    assert table["c_j"].iloc[-1] == pytest.approx(table.attrs["y_sum"], rel=1e-4, abs=1e-3)
    assert set(table["role"][:-1]) <= {"reinforces", "negates", "weak", "other"}
    assert table["share_image"][:-1].abs().sum() == pytest.approx(1.0, rel=1e-5)


def _copies_of_the_image(n: int) -> SimpleConvNet:
    """conv1: ``n`` copies of the image (+1, so every inner channel is active); conv2 zero."""
    model = SimpleConvNet(SimpleConvNetConfig(convs=(n, 1), fc4=4))
    with torch.no_grad():
        model.conv1.weight.zero_()
        model.conv1.weight[:, 0, 2, 2] = 1.0
        model.conv1.bias.fill_(1.0)
        model.conv2.weight.zero_()
        model.conv2.bias.zero_()
    return model


def test_a_copied_channel_reinforces_and_a_negated_one_negates() -> None:
    model = _copies_of_the_image(2)
    with torch.no_grad():
        model.conv2.weight[0, 0, 2, 2] = 1.0
        model.conv2.weight[0, 1, 2, 2] = -1.0
    x = torch.rand(1, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    roles = contribution_table(model, "conv2", 0, x)["role"].tolist()
    assert roles[:2] == ["reinforces", "negates"]


def test_a_tiny_row_is_weak_and_a_cancelling_one_is_not() -> None:
    """Row 2 adds a hundredth of row 1: weak. Row 3 adds as much as row 1 at one position and
    takes it away at the next, so its net share is about 0, yet removing it moves the channel:
    not weak, though a role read from the signed share would call it so."""
    model = _copies_of_the_image(4)
    with torch.no_grad():
        model.conv2.weight[0, 0, 2, 2] = 1.0
        model.conv2.weight[0, 1, 2, 2] = 0.01
        model.conv2.weight[0, 2, 2, 1] = 1.0
        model.conv2.weight[0, 2, 2, 3] = -1.0
        model.conv2.weight[0, 3, 2, 2] = 0.5
    g = torch.Generator().manual_seed(0)
    data = torch.rand(20, 1, 28, 28, generator=g)
    table = contribution_table(model, "conv2", 0, data[:1], data=data)
    roles = table["role"].tolist()[:4]
    assert abs(table["share_data"][2]) < 0.05  # the signed share would call row 3 weak
    assert roles[1] == "weak"
    assert roles[2] != "weak" and roles[0] != "weak" and roles[3] != "weak"


def test_ablation_of_a_dead_channel_changes_nothing(trained) -> None:
    model, (x, y) = trained
    with torch.no_grad():
        model.conv3.weight[2] = 0
        model.conv3.bias[2] = -1
    base = ablate_accuracy(model, x, y)
    assert torch.equal(ablate_accuracy(model, x, y, "conv3", 2), base)
    table = ablation_table(model, x, y, ["conv3"])
    assert float(table.loc[2, "drop"]) == 0.0


def test_confusion_examples_and_mistakes(trained) -> None:
    model, (x, y) = trained
    cells = confusion_examples(model, x, y)
    assert cells["count"].sum() == len(y)
    mistakes = confident_mistakes(model, x, y)
    assert (mistakes["true"] != mistakes["predicted"]).all()
    assert list(mistakes["confidence"]) == sorted(mistakes["confidence"], reverse=True)


def test_png_is_converted_like_mnist(tmp_path) -> None:
    rgb = np.full((56, 40, 3), 255, dtype=np.uint8)
    rgb[10:46, 18:22] = 0  # a dark vertical stroke on white
    Image.fromarray(rgb).save(tmp_path / "digit.png")
    image, notes = load_png(tmp_path / "digit.png")
    assert image.shape == (1, 1, 28, 28)
    assert notes == [
        "converted from RGB to grey",
        "resized from 40x56 to 28x28",
        "inverted to white on black",
    ]
    assert float(image[0, 0, :, 13].mean()) > 0.5 > float(image[0, 0, :, 2].mean())


def test_cli_bad_inputs_are_one_line(trained, tmp_path) -> None:
    from dissect.infra.checkpoints import CheckpointMeta, save_model

    model, _ = trained
    root = tmp_path / "data"
    from tests.conftest import make_mnist_folder

    make_mnist_folder(root)
    save_model(
        tmp_path / "ck", model, CheckpointMeta(data={"name": "mnist", "data_dir": str(root)})
    )
    ck = str(tmp_path / "ck")
    assert_one_line_error(
        run_module("dissect", "contributions", ck, "--layer", "conv9", "--channel", "1"),
        "valid layers are conv1, conv2, conv3",
    )
    assert_one_line_error(
        run_module("dissect", "contributions", ck, "--layer", "conv2", "--channel", "7"),
        "conv2 has channels 1..6",
    )
    assert_one_line_error(run_module("dissect", "audit", ck, "--image", "100"), "out of range")
    assert_one_line_error(
        run_module("dissect", "audit", ck, "--image", str(tmp_path / "none.png")), "does not exist"
    )
    ok = run_module("dissect", "audit", ck, "--image", "3", "--out", str(tmp_path / "o"))
    assert ok.returncode == 0, ok.stderr
    assert "predicted class" in ok.stdout and (tmp_path / "o").is_dir()


def test_contribution_table_under_torchrun_matches_one_process(trained, tmp_path) -> None:
    """`dissect contributions` on 2 gloo processes: the data-set-averaged shares of the table
    equal those of one process, and rank 0 alone prints."""
    import pandas as pd

    from dissect.infra.checkpoints import CheckpointMeta, save_model
    from tests.conftest import make_mnist_folder
    from tests.dist_helpers import finish, single_node

    model, _ = trained
    root = make_mnist_folder(tmp_path / "data")
    save_model(
        tmp_path / "ck", model, CheckpointMeta(data={"name": "mnist", "data_dir": str(root)})
    )
    args = ["contributions", str(tmp_path / "ck"), "--layer", "conv2", "--channel", "2",
            "--image", "3", "--device", "cpu"]  # fmt: skip
    one = run_module("dissect", *args, "--out", str(tmp_path / "one"))
    assert one.returncode == 0, one.stderr
    code, output = finish(single_node(2, "-m", "dissect", *args, "--out", str(tmp_path / "two")))
    assert code == 0, output
    assert output.count("contribution table:") == 1, output
    a = pd.read_csv(tmp_path / "one" / "conv2_channel2.csv")
    b = pd.read_csv(tmp_path / "two" / "conv2_channel2.csv")
    assert list(a.columns) == list(b.columns) and len(a) == len(b)
    numeric = a.select_dtypes("number").columns
    assert np.allclose(a[numeric], b[numeric], rtol=1e-5, atol=1e-7, equal_nan=True)
    assert a.drop(columns=numeric).fillna("").equals(b.drop(columns=numeric).fillna(""))
