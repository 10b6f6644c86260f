import torch

from simpleconvnet.model import SimpleConvNet, SimpleConvNetConfig, init_weights


def test_shapes_with_and_without_conv3() -> None:
    x = torch.rand(3, 1, 28, 28)
    full = SimpleConvNet()
    assert full.conv_names == ["conv1", "conv2", "conv3"]
    assert full.features(x).shape == (3, 128, 3, 3)
    assert full(x).shape == (3, 10)
    small = SimpleConvNet(SimpleConvNetConfig(convs=(8, 16)))
    assert small.conv_names == ["conv1", "conv2"] and not hasattr(small, "conv3")
    assert small.features(x).shape == (3, 16, 7, 7)
    assert small.fc4.in_features == 16 * 49


def test_output_is_log_softmax_of_linear_head() -> None:
    model = SimpleConvNet(SimpleConvNetConfig(convs=(4, 6), fc4=5))
    x = torch.rand(2, 1, 28, 28)
    z = torch.flatten(model.features(x), 1)
    manual = torch.log_softmax(model.fc5(model.fc4(z)), 1)
    assert torch.allclose(model(x), manual)
    assert torch.allclose(model(x).exp().sum(1), torch.ones(2))


def test_seeded_init_is_reproducible() -> None:
    a, b = SimpleConvNet(), SimpleConvNet()
    init_weights(a, torch.Generator().manual_seed(7))
    init_weights(b, torch.Generator().manual_seed(7))
    for (name, p), q in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert torch.equal(p, q), name


def test_summary_names_layers_and_counts_parameters() -> None:
    text = SimpleConvNet(SimpleConvNetConfig(convs=(8, 16))).summary()
    assert "Conv2d" in text and "Linear" in text
    params = 8 * 25 + 8 + 16 * 8 * 25 + 16 + 16 * 49 * 128 + 128 + 128 * 10 + 10
    assert f"{params:,}" in text
