import numpy as np
import pytest
import torch

from dissect.gabor import gabor_kernel
from dissect.infra.errors import AuditError
from dissect.labels import claimed_class, describe_layer, probe_responses, probes_for
from dissect.probes import END_NAMES, LINE_NAMES, PHASES, make_probes
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


@pytest.mark.parametrize("angle", [0, 22.5, 45, 67.5, 90, 112.5, 135, 157.5])
def test_line_filters_are_described_by_their_orientation(angle: float) -> None:
    model = _net_with_conv1([gabor_kernel(5, angle, 4.0, 0.0, 1.2, 0.5) - 0.0])
    table = describe_layer(model, "conv1")
    assert table.loc[0, "description"] == LINE_NAMES[angle]
    assert bool(table.loc[0, "confident"])


def test_odd_gabor_is_one_side_of_an_edge() -> None:
    model = _net_with_conv1([gabor_kernel(5, 90, 5.0, 90.0, 1.2, 0.5)])  # phase in degrees
    assert "side of a vertical line" in describe_layer(model, "conv1").loc[0, "description"]


def test_probes_cover_every_family() -> None:
    probes = make_probes()
    assert set(probes.kinds) == {"line", "edge", "corner", "curve", "line end", "whole line"}
    assert probes.images.shape[1:] == (1, 28, 28) and float(probes.images.max()) == 1.0
    vertical = probes.images[probes.classes.index("vertical line"), 0]
    assert (
        float(vertical[:, 20].sum()) == 28.0 and float(vertical.sum()) == 28.0
    )  # 1 px wide, 6 px right of centre


def test_line_ends_run_past_the_central_half_and_come_before_corners() -> None:
    """An end probe shows one end only where responses are read (its far end, at every shift,
    lies outside the central half of the image), each end has its whole line at the same width
    and shift, and ends are ranked before corners and curves (ties go to the earlier class)."""
    probes = make_probes()
    names = probes.class_names
    assert set(END_NAMES.values()) <= set(names)
    first_corner = min(names.index(n) for n in names if n.startswith("corner"))
    assert max(names.index(n) for n in END_NAMES.values()) < first_corner
    central = probes.images[:, 0, 7:21, 7:21]
    for name in END_NAMES.values():
        for i in (i for i, c in enumerate(probes.classes) if c == name):
            img = probes.images[i, 0]
            inside = float(central[i].sum())
            # the stroke leaves the central half through its border and runs on to the image
            # border (up to the shift that moved it away from it)
            ring = torch.cat([central[i][0], central[i][-1], central[i][:, 0], central[i][:, -1]])
            assert inside > 0 and float(ring.sum()) > 0
            band = torch.ones_like(img, dtype=torch.bool)
            band[PHASES:-PHASES, PHASES:-PHASES] = False
            assert float(img[band].sum()) > 0, name
    n_ends = sum(k == "line end" for k in probes.kinds)
    assert sum(k == "whole line" for k in probes.kinds) == n_ends // 2


def test_bad_layer_lists_valid_layers() -> None:
    with pytest.raises(AuditError, match="valid layers are conv1, conv2"):
        describe_layer(_net_with_conv1([np.zeros((5, 5))]), "conv7")


@pytest.mark.parametrize("angle", [22.5, 67.5, 112.5, 157.5])
def test_edge_filters_between_the_main_orientations_are_named_sides_of_their_line(
    angle: float,
) -> None:
    model = _net_with_conv1([gabor_kernel(5, angle, 6.0, 90.0, 1.2, 0.5)])
    description = describe_layer(model, "conv1").loc[0, "description"]
    assert description.endswith(f"side of a line at {angle} degrees")


def test_deeper_layers_keep_the_four_main_orientations() -> None:
    model = _net_with_conv1([gabor_kernel(5, 22.5, 4.0, 0.0, 1.2, 0.5)])
    first = set(probes_for(model, "conv1").classes)
    deeper = set(probes_for(model, "conv2").classes)
    assert LINE_NAMES[22.5] in first and LINE_NAMES[22.5] not in deeper
    assert LINE_NAMES[45] in deeper and "corner opening up-right" in deeper


def test_in_between_strokes_are_anti_aliased_and_main_ones_crisp() -> None:
    probes = make_probes()
    shallow = probes.images[probes.classes.index(LINE_NAMES[22.5]), 0]
    vertical = probes.images[probes.classes.index(LINE_NAMES[90]), 0]
    grey = (shallow > 0) & (shallow < 1)
    assert int(grey.sum()) > 0
    assert set(vertical.unique().tolist()) == {0.0, 1.0}


def _tuning(values: dict[str, float]) -> tuple[torch.Tensor, list[str]]:
    """Responses over conv1's probe classes: the named ones as given, every other class 0.05."""
    names = list(dict.fromkeys(probes_for(_net_with_conv1([np.zeros((5, 5))]), "conv1").classes))
    return torch.tensor([values.get(n, 0.05) for n in names]), names


def test_a_lopsided_tuning_is_named_by_the_class_whose_claim_covers_it() -> None:
    # best at 135 degrees, but falling slowly towards 180 and steeply towards 90: the lobe
    # within one step of 157.5 (135, 157.5, 0) carries more than the one around 135
    r, names = _tuning({LINE_NAMES[135]: 1.0, LINE_NAMES[157.5]: 0.9, LINE_NAMES[0]: 0.77,
                        LINE_NAMES[112.5]: 0.3})  # fmt: skip
    best = names.index(LINE_NAMES[135])
    assert names[claimed_class(r, names, best)] == LINE_NAMES[157.5]


def test_a_symmetric_tuning_keeps_its_best_class() -> None:
    r, names = _tuning({LINE_NAMES[135]: 1.0, LINE_NAMES[157.5]: 0.9, LINE_NAMES[112.5]: 0.9,
                        LINE_NAMES[0]: 0.6, LINE_NAMES[90]: 0.6})  # fmt: skip
    best = names.index(LINE_NAMES[135])
    assert claimed_class(r, names, best) == best


def test_edge_tunings_are_windowed_over_the_side_the_interior_lies_on() -> None:
    # the upper-right side of a \\ line (interior towards 225 degrees) and, one step round,
    # the upper side of a 157.5-degree line (towards 247.5) and the top side of a horizontal
    # line (towards 270); the opposite sides (45, 67.5 degrees) do not count for it
    up_right, upper, top = "upper-right side of a \\ line", "upper side of a line at 157.5 degrees", "top side of a horizontal line"  # fmt: skip
    r, names = _tuning({up_right: 1.0, upper: 0.9, top: 0.8,
                        "lower-left side of a \\ line": 0.95, "lower side of a line at 157.5 degrees": 0.95})  # fmt: skip
    assert names[claimed_class(r, names, names.index(up_right))] == upper
    table_net = _net_with_conv1([gabor_kernel(5, 135, 6.0, 90.0, 1.2, 0.5)])
    (row,) = describe_layer(table_net, "conv1").itertuples()
    assert "side of a \\ line" in str(row.description)  # a symmetric edge filter keeps its class


def test_probes_are_drawn_once_and_handed_out_as_copies() -> None:
    first = make_probes()
    first.images.zero_()
    first.classes.clear()
    again = make_probes()
    assert float(again.images.sum()) > 0 and len(again.classes) == len(again.images)
