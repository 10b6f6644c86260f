import numpy as np
import pytest
import torch
from skimage.filters import gabor_kernel as sk_gabor

from dissect.gabor import _jacobian, _residual, gabor_fit, gabor_kernel
from dissect.infra.errors import AuditError
from dissect.labels import describe_layer, probe_responses
from dissect.probes import LINE_NAMES, make_probes
from simpleconvnet.model import SimpleConvNet, SimpleConvNetConfig


def _net_with_conv1(kernels: list[np.ndarray]) -> SimpleConvNet:
    """A net whose conv1 holds the given 5x5 kernels (zero bias); the input normalisation is
    made the identity so the kernels see raw pixels."""
    model = SimpleConvNet(SimpleConvNetConfig(convs=(len(kernels), 2), mean=0.0, std=1.0))
    with torch.no_grad():
        model.conv1.weight.copy_(torch.tensor(np.stack(kernels), dtype=torch.float32)[:, None])
        model.conv1.bias.zero_()
    return model


def test_diagonal_detector_responds_most_to_the_135_degree_line() -> None:
    diag = np.full((5, 5), 0.0)
    diag[1:4, 1:4] = [[0.5, -1, -1], [-1, 0.5, -1], [-1, -1, 0.5]]
    model = _net_with_conv1([diag])
    table = describe_layer(model, "conv1")
    assert table.loc[0, "description"] == LINE_NAMES[135]
    responses, names = probe_responses(model, "conv1")
    assert names[int(responses[0].argmax())] == "line at 135 degrees (\\)"


@pytest.mark.parametrize("angle", [0, 45, 90, 135])
def test_line_filters_are_described_by_their_orientation(angle: int) -> None:
    model = _net_with_conv1([gabor_kernel(5, angle, 4.0, 0.0, 1.2, 0.5) - 0.0])
    table = describe_layer(model, "conv1")
    assert table.loc[0, "description"] == LINE_NAMES[angle]
    assert bool(table.loc[0, "confident"])


def test_odd_gabor_is_one_side_of_an_edge() -> None:
    model = _net_with_conv1([gabor_kernel(5, 90, 5.0, np.pi / 2, 1.2, 0.5)])
    assert "side of a vertical line" in describe_layer(model, "conv1").loc[0, "description"]


def test_gabor_kernel_matches_scikit_image() -> None:
    # skimage: x right, y down, theta clockwise from x. Ours at orientation t has its carrier
    # across the line, i.e. along t + 90 degrees counter-clockwise (up is up).
    sigma, lam = 1.5, 4.0
    sk = np.real(sk_gabor(1 / lam, theta=np.pi / 2, sigma_x=sigma, sigma_y=sigma, n_stds=2))
    sk = sk / sk.max()
    ours = gabor_kernel(len(sk), 0.0, lam, 0.0, sigma, 1.0)
    assert sk.shape[0] >= 5 and np.allclose(ours, sk, atol=1e-6)
    sk45 = np.real(
        sk_gabor(1 / lam, theta=np.pi / 2 + np.pi / 4, sigma_x=sigma, sigma_y=sigma, n_stds=2)
    )
    ours45 = gabor_kernel(len(sk45), 45.0, lam, 0.0, sigma, 1.0)
    assert np.allclose(ours45, sk45 / sk45.max(), atol=1e-6) or np.allclose(
        ours45, np.flipud(sk45 / sk45.max()), atol=1e-6
    )


def test_gabor_fit_recovers_parameters_and_flags_noise() -> None:
    fit = gabor_fit(gabor_kernel(5, 30.0, 4.0, 0.3, 1.2, 0.6))
    assert fit.r2 > 0.999 and fit.orientation == pytest.approx(30.0, abs=0.5)
    assert not fit.noise_like
    noise = gabor_fit(np.random.default_rng(0).normal(size=(5, 5)))
    assert noise.noise_like and noise.r2 < fit.r2


@pytest.mark.parametrize("seed", range(4))
def test_gabor_fit_jacobian_matches_finite_differences(seed: int) -> None:
    rng = np.random.default_rng(seed)
    target = rng.normal(size=(5, 5))
    low, high = [0, 2, -3, 0.8, 0.3, -2, -1, -1], [180, 10, 3, 3, 1.5, 2, 1, 1]
    p = rng.uniform(low, high)
    steps = np.eye(8) * 1e-6
    numeric = np.stack(
        [(_residual(p + e, target) - _residual(p - e, target)) / 2e-6 for e in steps], axis=1
    )
    assert np.allclose(_jacobian(p, target), numeric, atol=1e-7)


@pytest.mark.parametrize(
    "params", [(0.0, 4.0, 0.0, 1.2, 0.5), (75.0, 6.0, 1.0, 1.5, 0.8), (160.0, 3.0, 2.0, 1.0, 0.4)]
)
def test_gabor_fit_finds_every_orientation(params: tuple[float, ...]) -> None:
    fit = gabor_fit(gabor_kernel(5, *params))
    turn = abs((fit.orientation - params[0] + 90) % 180 - 90)
    assert fit.r2 > 0.99 and turn < 2.0


def test_probes_cover_every_family() -> None:
    probes = make_probes()
    assert set(probes.kinds) == {"line", "edge", "corner", "curve", "line end"}
    assert probes.images.shape[1:] == (1, 28, 28) and float(probes.images.max()) == 1.0
    vertical = probes.images[probes.classes.index("vertical line"), 0]
    assert (
        float(vertical[:, 20].sum()) == 28.0 and float(vertical.sum()) == 28.0
    )  # 1 px wide, 6 px right of centre


def test_bad_layer_lists_valid_layers() -> None:
    with pytest.raises(AuditError, match="valid layers are conv1, conv2"):
        describe_layer(_net_with_conv1([np.zeros((5, 5))]), "conv7")
