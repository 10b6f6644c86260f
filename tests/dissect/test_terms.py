"""A row of a contribution table as one oriented term (dissect.terms)."""

from __future__ import annotations

import pytest
import torch

from dissect.terms import (
    TERM_LENGTH,
    TERM_ROUND,
    TERM_WIDTH,
    profile_of,
    row_term,
    spatial_profile,
    term_words,
)


def _profile(orientation: float, length: float, width: float, dx: float, dy: float) -> torch.Tensor:
    f = lambda v: torch.tensor([v], dtype=torch.float64)  # noqa: E731
    return spatial_profile(5, f(orientation), f(length), f(width), f(dx), f(dy))[0]


@pytest.mark.parametrize(("words", "strength", "dx", "dy"), [
    ("vertical line", 0.4, 1.0, 0.0),
    ("line at 45 degrees (/)", -0.25, -0.5, 1.5),
    ("corner opening up-left", 0.7, 0.0, -1.0),
])  # fmt: skip
def test_a_row_that_is_one_term_of_its_words_profile_is_found_exactly(
    words: str, strength: float, dx: float, dy: float
) -> None:
    orientation, length, width = profile_of(words)
    term = row_term(strength * _profile(orientation, length, width, dx, dy), words)
    assert term is not None
    assert (term.dx, term.dy, term.sign) == (dx, dy, 1 if strength > 0 else -1)
    assert term.strength == pytest.approx(strength, rel=1e-9)


def test_words_choose_the_profile() -> None:
    assert profile_of("vertical line") == (90.0, TERM_LENGTH, TERM_WIDTH)
    assert profile_of("left side of a vertical line") == (90.0, TERM_LENGTH, TERM_WIDTH)
    assert profile_of("curve opening up") == (0.0, TERM_ROUND, TERM_ROUND)
    assert profile_of(None) == (0.0, TERM_ROUND, TERM_ROUND)


def test_a_lobe_beside_the_centre_is_placed_there_with_its_sign() -> None:
    # a plain positive column one pixel right of centre, a negative one a pixel left: the
    # larger lobe (right) is the term
    row = torch.zeros(5, 5)
    row[:, 3], row[:, 1] = 0.2, -0.1
    term = row_term(row, "vertical line")
    assert term is not None and term.sign == 1 and term.dx == 1.0 and term.dy == 0.0
    assert term_words(term).startswith("+") and term_words(term).endswith("at (1, 0)")
    assert row_term(torch.zeros(5, 5), "vertical line") is None and term_words(None) == ""
    assert row_term(torch.ones(3, 5), "vertical line") is None  # not square: not summarised


def test_contribution_tables_show_each_rows_term() -> None:
    from dissect.contributions import contribution_table
    from simpleconvnet.model import SimpleConvNet, SimpleConvNetConfig

    model = SimpleConvNet(SimpleConvNetConfig(convs=(2, 3), fc4=8)).eval()
    with torch.no_grad():
        model.conv2.weight.zero_()
        model.conv2.weight[0, 1] = -0.5 * _profile(90.0, TERM_LENGTH, TERM_WIDTH, 0.0, 1.0).float()
    x = torch.rand(3, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    table = contribution_table(model, "conv2", 0, x[:1], inner_descriptions=["horizontal line", "vertical line"])  # fmt: skip
    assert table["term"].tolist() == ["", "-0.5 at (0, 1)", ""]
