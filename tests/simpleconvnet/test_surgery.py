import pytest
import torch

from dissect.infra.errors import AuditError
from simpleconvnet.model import SimpleConvNet, SimpleConvNetConfig, init_weights
from simpleconvnet.surgery import (
    conv_parameter_count,
    drop_last_conv,
    remove_channels,
    zero_channels,
)


def _model(convs=(6, 8, 10)) -> SimpleConvNet:
    m = SimpleConvNet(SimpleConvNetConfig(convs=convs, fc4=12))
    init_weights(m, torch.Generator().manual_seed(3))
    return m.eval()


@pytest.mark.parametrize(
    ("convs", "layer"),
    [((6, 8, 10), "conv1"), ((6, 8, 10), "conv2"), ((6, 8, 10), "conv3"), ((6, 8), "conv2")],
)
def test_removed_channels_equal_zeroed_channels(convs, layer) -> None:
    model = _model(convs)
    width = getattr(model, layer).out_channels
    keep = [c for c in range(width) if c % 3 != 1]
    drop = [c for c in range(width) if c not in keep]
    x = torch.rand(4, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    small = remove_channels(model, layer, keep).eval()
    zeroed = zero_channels(model, layer, drop).eval()
    assert getattr(small, layer).out_channels == len(keep)
    assert torch.allclose(small(x), zeroed(x), atol=1e-6)
    assert not torch.allclose(model(x), zeroed(x))


def test_parameter_count_shrinks() -> None:
    model = _model((6, 8))
    small = remove_channels(model, "conv1", [0, 1, 2])
    assert conv_parameter_count(model) == 6 * 25 + 6 + 8 * 6 * 25 + 8
    assert conv_parameter_count(small) == 3 * 25 + 3 + 8 * 3 * 25 + 8


def test_drop_last_conv_keeps_earlier_layers() -> None:
    model = _model()
    small = drop_last_conv(model, torch.Generator().manual_seed(0))
    assert small.conv_names == ["conv1", "conv2"] and small.fc4.in_features == 8 * 49
    assert torch.equal(small.conv2.weight, model.conv2.weight) and torch.equal(
        small.fc5.weight, model.fc5.weight
    )
    with pytest.raises(AuditError, match="no conv3"):
        drop_last_conv(small, torch.Generator())


def test_bad_channels_and_layers_are_user_errors() -> None:
    model = _model()
    with pytest.raises(AuditError, match="valid layers are conv1, conv2, conv3"):
        remove_channels(model, "conv9", [0])
    with pytest.raises(AuditError, match="must be 0..5"):
        remove_channels(model, "conv1", [0, 6])
