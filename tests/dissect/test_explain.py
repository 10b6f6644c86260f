"""Per-class reasoning in words: known answers on a hand-set network, the paragraph generator
on known roles, and the command line."""

from __future__ import annotations

import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from dissect.explain import ClassReasoning, Driver, Inner, explain_classes, reasoning_table
from dissect.infra.errors import AuditError
from dissect.specimen import InputSpec, Specimen


class Planted(nn.Module):
    """conv1: channel 1 = x, channel 2 = 1 - x (ReLU); conv2: channels 1 and 2 copy them,
    channel 3 = 2 * (x) - (1 - x); global average pool; class k reads conv2 channel k + 1 only,
    so conv2 channel 3 (0-based 2) is built to drive class 2."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 2, 1)
        self.conv2 = nn.Conv2d(2, 3, 1)
        self.fc = nn.Linear(3, 3)
        with torch.no_grad():
            self.conv1.weight.copy_(torch.tensor([1.0, -1.0]).view(2, 1, 1, 1))
            self.conv1.bias.copy_(torch.tensor([0.0, 1.0]))
            self.conv2.weight.copy_(
                torch.tensor([[1.0, 0.0], [0.0, 1.0], [2.0, -1.0]]).view(3, 2, 1, 1)
            )
            self.conv2.bias.zero_()
            self.fc.weight.copy_(torch.eye(3))
            self.fc.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.conv2(F.relu(self.conv1(x))))
        return self.fc(F.adaptive_avg_pool2d(x, 1).flatten(1))


def _planted() -> Specimen:
    return Specimen(Planted(), InputSpec(1, 6, 6))


def _descriptions() -> pd.DataFrame:
    return pd.DataFrame({
        "layer": ["conv1", "conv1", "conv2", "conv2", "conv2"],
        "channel": [1, 2, 1, 2, 3],
        "description": ["bright", "dark", "bright copy", "dark copy", "bright against dark"],
        "confident": [True, True, True, False, True],
    })  # fmt: skip


def test_the_planted_driver_is_named_with_what_builds_it() -> None:
    g = torch.Generator().manual_seed(0)
    images = 0.6 + 0.4 * torch.rand(20, 1, 6, 6, generator=g)  # bright: x > 1 - x everywhere
    labels = torch.full((20,), 2)
    (reason,) = explain_classes(_planted(), images, labels, classes=[2], descriptions=_descriptions())  # fmt: skip
    (driver,) = reason.carried_by
    assert (driver.layer, driver.channel, driver.description) == ("conv2", 2, "bright against dark")
    assert driver.share == pytest.approx(1.0)
    assert [i.channel for i in driver.reinforced_by] == [0] and [i.channel for i in driver.negated_by] == [1]  # fmt: skip
    bright = images.mean((1, 2, 3))  # per image: a_1 sums to 2 * bright, a_2 to -(1 - bright)
    expected = float((2 * bright / (2 * bright + (1 - bright))).mean())
    assert driver.reinforced_by[0].share == pytest.approx(expected, rel=1e-5)
    assert reason.coverage == pytest.approx(1.0)
    text = reason.paragraph()
    assert "'bright against dark' (conv2 channel 3), 100 %" in text
    assert "built from conv1's 'bright' reinforced, 'dark' negated" in text


def test_a_class_no_channel_carries_and_a_bad_class() -> None:
    images = torch.zeros(4, 1, 6, 6)  # black: only 'dark' fires, so class 2 reads 2*0 - 1 < 0
    (reason,) = explain_classes(_planted(), images, torch.full((4,), 2), classes=[2], descriptions=_descriptions())  # fmt: skip
    assert reason.carried_by == () and "no channel" in reason.paragraph()
    with pytest.raises(AuditError, match="no class 5"):
        explain_classes(_planted(), images, torch.zeros(4, dtype=torch.long), classes=[5])


def test_paragraph_and_table_on_known_roles() -> None:
    up = Inner("conv1", 0, "upper side of a horizontal line", 0.4)
    down = Inner("conv1", 3, "vertical line", -0.25)
    top = Driver("conv2", 5, "horizontal stroke at the top", True, 0.18, (up,), (down,))
    held = Driver("conv2", 2, "curve opening left", False, -0.09)
    reason = ClassReasoning(7, "7", (top,), (held,), coverage=0.8, images=400)
    text = reason.paragraph()
    assert text.startswith("A 7 is mostly 'horizontal stroke at the top' (conv2 channel 6), 18 %")
    assert "built from conv1's 'upper side of a horizontal line' reinforced, 'vertical line' negated" in text  # fmt: skip
    assert "held back by 'curve opening left' (conv2 channel 3) (-9 %)" in text
    assert "carry 80 % of its positive score (over 400 images)" in text
    twice = Driver(
        "conv2", 1, "x", True, 0.5, (up, Inner("conv1", 5, "upper side of a horizontal line", 0.1))
    )
    assert (
        "'upper side of a horizontal line' (channels 1 and 6) reinforced"
        in ClassReasoning(1, "1", (twice,), (), 1.0, 9).paragraph()
    )
    table = reasoning_table([reason])
    assert list(table["role"]) == ["carries", "holds back"] and list(table["channel"]) == [6, 3]
    assert table["reinforced_by"].iloc[0] == "upper side of a horizontal line (+0.40)"


def test_command_line_explains_and_refuses_bad_layer_and_class(tmp_path, capsys) -> None:
    from dissect.cli import _main
    from dissect.infra.runtime import run_cli
    from tests.dissect.test_foreign_cli import NETS_FILE

    torch.manual_seed(0)
    weights = tmp_path / "net.pt"
    from dissect.foreign import import_model

    torch.save(import_model(f"{NETS_FILE}:lenet5").state_dict(), weights)
    from tests.conftest import make_mnist_folder

    data = make_mnist_folder(tmp_path / "data", n_train=60, n_test=10)
    common = ["--model", f"{NETS_FILE}:lenet5", "--weights", str(weights), "--out", str(tmp_path / "out"),
              "--dataset", "mnist", "--data-dir", str(data), "--device", "cpu", "--quiet"]  # fmt: skip
    assert run_cli(_main, ["explain", *common, "--class", "4"]) == 0
    text = (tmp_path / "out" / "explain.txt").read_text()
    assert text.startswith("A 4 is mostly") or text.startswith("Class 4: no channel")
    capsys.readouterr()
    for bad, needle in (
        (["--class", "10"], "--class 10"),
        (["--layer", "5"], "valid layers are 0, 3"),
    ):
        assert run_cli(_main, ["explain", *common, *bad]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and needle in err[0], err


def test_the_planted_driver_is_confirmed_against_random_channels_and_a_decoy_is_not() -> None:
    from dissect.faithfulness import driver_check, scorecard, weak_rows_check

    g = torch.Generator().manual_seed(1)
    images = torch.cat([0.6 + 0.4 * torch.rand(30, 1, 6, 6, generator=g), 0.3 * torch.rand(30, 1, 6, 6, generator=g)])  # fmt: skip
    labels = torch.cat([torch.full((30,), 2), torch.full((30,), 1)])
    planted = _planted()
    recall, margin = driver_check(planted, "conv2", 2, [2], images, labels, draws=60)
    assert recall.holds and margin.holds and margin.p < 0.05 and margin.statistic > margin.chance
    decoy = driver_check(planted, "conv2", 2, [0], images, labels, draws=60)[1]
    assert not decoy.holds  # conv2 channel 1 feeds class 0, not class 2
    card = scorecard([recall, margin, decoy])
    assert list(card["claims"]) == [1, 2] and list(card["hold"]) == [1, 1]
    # conv2 channel 3 = 2 * bright - dark: on bright images 'dark' is small but not negligible
    assert weak_rows_check(planted, "conv2", 2, [], images).holds
    assert not weak_rows_check(planted, "conv2", 2, [0], images[:30]).holds


class OneFilter(nn.Module):
    """One 5x5 filter, an exact zero-mean line at 45 degrees ('/': row + column = 4)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 1, 5, padding=2)
        self.fc = nn.Linear(1, 2)
        line = torch.zeros(5, 5)
        for r in range(5):
            line[r, 4 - r] = 1.0
        with torch.no_grad():
            self.conv1.weight.copy_((line - line.mean())[None, None])
            self.conv1.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(F.adaptive_max_pool2d(F.relu(self.conv1(x)), 1).flatten(1))


def test_an_exact_45_degree_line_is_described_and_confirmed_on_real_strokes() -> None:
    from dissect.labels import describe_layer
    from dissect.strokes import description_check, stroke_orientation
    from tests.dissect.foreign_nets import tiny_data

    net = OneFilter().eval()
    (row,) = describe_layer(net, "conv1").itertuples()
    assert row.description == "line at 45 degrees (/)" and row.confident
    images, _ = tiny_data(10, seed=2)
    check = description_check(net, "conv1", 0, row.description, images)
    assert (
        check is not None
        and check.holds
        and check.statistic >= 0.6
        and check.statistic - check.chance >= 0.2
    )
    wrong = description_check(net, "conv1", 0, "line at 135 degrees (\\)", images)
    assert wrong is not None and not wrong.holds
    assert description_check(net, "conv1", 0, "corner opening up-right", images) is None
    # the structure tensor reads a drawn "/" as 45 degrees, and as oriented
    patch = torch.zeros(1, 7, 7)
    for r in range(7):
        patch[0, r, 6 - r] = 1.0
    orientation, coherence, _ = stroke_orientation(patch)
    assert abs(float(orientation) - 45.0) < 1.0 and float(coherence) > 0.8


def test_a_reinforcing_row_lowers_its_channel_where_it_is_active_and_a_negating_row_does_not() -> (
    None
):
    from dissect.faithfulness import reinforcing_row_check

    g = torch.Generator().manual_seed(2)
    images = torch.rand(40, 1, 6, 6, generator=g) * (torch.rand(40, 1, 6, 6, generator=g) > 0.5)
    planted = _planted()  # conv2 channel 3 = 2 * bright - dark
    yes = reinforcing_row_check(planted, "conv2", 2, 0, images)
    assert yes is not None and yes.holds and yes.statistic > yes.chance
    no = reinforcing_row_check(planted, "conv2", 2, 1, images)
    assert no is not None and not no.holds and no.statistic < 0


class Unpadded(nn.Module):
    """Unpadded 3x3 convs: conv1 channel 1 is on where the centre pixel is over 0.5; conv2
    channel 1 reads only the centre of conv1 channel 1's window."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 2, 3)
        self.conv2 = nn.Conv2d(2, 1, 3)
        self.fc = nn.Linear(1, 2)
        with torch.no_grad():
            self.conv1.weight.zero_()
            self.conv1.weight[0, 0, 1, 1] = 1.0
            self.conv1.bias.fill_(-0.5)
            self.conv2.weight.zero_()
            self.conv2.weight[0, 0, 1, 1] = 1.0
            self.conv2.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.conv2(F.relu(self.conv1(x))))
        return self.fc(F.adaptive_avg_pool2d(x, 1).flatten(1))


def test_the_reinforcing_check_lines_the_inner_map_up_with_an_unpadded_conv() -> None:
    from dissect.faithfulness import reinforcing_row_check

    torch.manual_seed(0)
    images = torch.rand(20, 1, 12, 12)
    check = reinforcing_row_check(Specimen(Unpadded(), InputSpec(1, 12, 12)), "conv2", 0, 0, images)
    assert check is not None and check.holds
    assert check.chance == 0.0  # where the centre is silent, removing the row changes nothing


def test_removal_sets_measured_together_match_one_pass_per_set(monkeypatch) -> None:
    """The permutation checks put many removal sets through one pass (each set its own copy of
    the images): the same sums as a pass per set, for zeroed channels and for removed rows."""
    from dissect import faithfulness as fa
    from dissect.contributions import removal_hook, set_removal_hook

    monkeypatch.setitem(fa.SET_PASS_IMAGES, "cpu", 12)  # 5 images: two sets a pass
    planted = _planted()
    images = torch.rand(5, 1, 6, 6, generator=torch.Generator().manual_seed(3))
    y = torch.tensor([2, 1, 0, 2, 2])
    base = fa.margins(planted, images, y)

    def expected(**run: object) -> list[float]:
        m = fa.margins(planted, images, y, **run)
        return [float((base > 0).sum()), float((m > 0).sum()), float((base - m).sum())]

    def rows(chunk: list[list[int]], n: int) -> dict[str, object]:
        return {"hooks": {"conv2": set_removal_hook(planted, "conv2", 2, chunk, n)}}

    sets = [[0], [1, 2], [2], []]
    got = fa._set_margin_sums(planted, images, y, base, sets, fa.zeroing("conv2", 3))
    want = [expected(zero={"conv2": s}) for s in sets]
    torch.testing.assert_close(got, torch.tensor(want, dtype=torch.float64))
    assert got[:, 2].abs().sum() > 0  # the removals do change the margins
    sets = [[0], [1], [0, 1], []]
    got = fa._set_margin_sums(planted, images, y, base, sets, rows)
    want = [expected(hooks={"conv2": removal_hook(planted, "conv2", 2, s)}) for s in sets]
    torch.testing.assert_close(got, torch.tensor(want, dtype=torch.float64))
    assert got[:, 2].abs().sum() > 0
