"""Descriptions of lines and edges checked on real strokes.

At each image's single most active position of a first-layer channel, the local stroke
orientation is read from the structure tensor of the input patch around that position (its
main eigenvector lies across the stroke; angles counter-clockwise from the horizontal with image
rows counting down, as everywhere in the suite). The description agrees where the patch is
oriented (coherence at least 0.5) and the stroke's orientation is within 22.5 degrees of the
one described; a "side" description also needs the intensity to rise towards the side the words
put the stroke's interior on. A channel passes at 60 % agreement or more and at least 20 points
above the agreement at random oriented stroke positions of the same images.
"""

from __future__ import annotations

import math

import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from dissect.faithfulness import Check
from dissect.infra import distributed as dist
from dissect.layout import centre_map
from dissect.probes import INTERIOR_OF, ORIENTATION_OF
from dissect.specimen import Specimen, specimen_of

__all__ = [
    "stroke_orientation",
    "description_check",
    "COHERENT",
    "TOLERANCE",
    "PASS",
    "ABOVE_RANDOM",
]

COHERENT, TOLERANCE, PASS, ABOVE_RANDOM = 0.5, 22.5, 0.6, 0.2


# Scharr's derivative across x (right minus left), as a correlation kernel: unlike central
# differences, whose structure tensor pulls orientations up to 5 degrees towards the diagonals
# (a stroke at 70 degrees read as 65), it reads a stroke's orientation to within a degree.
_SCHARR_X = (
    torch.tensor([[-3.0, 0.0, 3.0], [-10.0, 0.0, 10.0], [-3.0, 0.0, 3.0]], device="cpu") / 32.0
)


def stroke_orientation(patches: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``patches [N, h, w]`` -> ``(orientation [N] in degrees [0, 180), coherence [N],
    rising [N] the direction (degrees) in which the intensity rises at the centre)``; the
    structure tensor of Scharr gradients is weighted towards the patch's centre."""
    x = F.pad(patches.double()[:, None], (1, 1, 1, 1), mode="replicate")
    kx = _SCHARR_X.to(x)
    gx = F.conv2d(x, kx[None, None])[:, 0]
    gy = F.conv2d(x, -kx.T[None, None])[:, 0]  # y up: the row above minus the row below
    h, w = patches.shape[1:]
    r = torch.arange(h, dtype=torch.float64, device=x.device)[:, None] - (h - 1) / 2
    c = torch.arange(w, dtype=torch.float64, device=x.device)[None, :] - (w - 1) / 2
    near = torch.exp(-(r**2 + c**2) / (2 * (min(h, w) / 4) ** 2))  # weights around the centre
    jxx, jyy, jxy = (
        (near * gx * gx).sum((1, 2)),
        (near * gy * gy).sum((1, 2)),
        (near * gx * gy).sum((1, 2)),
    )
    across = 0.5 * torch.atan2(2 * jxy, jxx - jyy)  # main eigenvector: across the stroke
    root = torch.sqrt((jxx - jyy) ** 2 + 4 * jxy**2)
    coherence = root / (jxx + jyy).clamp(min=1e-12)
    orientation = (torch.rad2deg(across) + 90.0) % 180.0
    centre = torch.exp(-(r**2 + c**2) / 2)  # the rise right at the position (sigma 1 px)
    rising = torch.rad2deg(torch.atan2((centre * gy).sum((1, 2)), (centre * gx).sum((1, 2))))
    return orientation.float(), coherence.float(), rising.float()


def _angle_gap(a: torch.Tensor, b: float, period: float) -> torch.Tensor:
    d = (a - b) % period
    return torch.minimum(d, period - d)


def _agrees(patches: torch.Tensor, description: str) -> tuple[torch.Tensor, torch.Tensor]:
    """``(agrees [N], oriented [N])`` for patches at the positions to judge."""
    orientation, coherence, rising = stroke_orientation(patches)
    oriented = coherence >= COHERENT
    ok = oriented & (
        _angle_gap(orientation, float(ORIENTATION_OF[description]), 180.0) <= TOLERANCE
    )
    if description in INTERIOR_OF:
        ok &= _angle_gap(rising, INTERIOR_OF[description], 360.0) < 90.0
    return ok, oriented


def _patches(
    images: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor, size: int
) -> torch.Tensor:
    half = size // 2
    padded = F.pad(images.mean(1), (half, half, half, half))
    return torch.stack([padded[i, r : r + size, c : c + size] for i, (r, c) in enumerate(zip(rows.tolist(), cols.tolist(), strict=True))])  # fmt: skip


def _tally(
    images: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor, size: int, description: str
) -> torch.Tensor:
    """``[agreeing, oriented]`` counts (float64) of the patches at ``rows``/``cols``."""
    if len(images) == 0:
        return torch.zeros(2, dtype=torch.float64, device="cpu")
    agrees, oriented = _agrees(_patches(images, rows, cols, size), description)
    return torch.stack([agrees.sum(), oriented.sum()]).double()


def _random_positions(images: torch.Tensor, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(rows [N], cols [N])``: a random bright pixel of each image (any pixel where none is
    bright), drawn in image order from one generator."""
    g = torch.Generator(device="cpu").manual_seed(seed)
    bright = images.cpu().mean(1) > 0.5
    pick_r, pick_c = [], []
    for i in range(len(images)):
        where = torch.nonzero(bright[i])
        if len(where) == 0:
            where = torch.nonzero(torch.ones_like(bright[i]))
        r, c = where[int(torch.randint(len(where), (1,), generator=g, device="cpu"))].tolist()
        pick_r.append(r)
        pick_c.append(c)
    return torch.tensor(pick_r, device="cpu"), torch.tensor(pick_c, device="cpu")


@torch.no_grad()
def description_check(
    model: nn.Module | Specimen,
    layer: str,
    channel: int,
    description: str,
    images: torch.Tensor,
    seed: int = 0,
) -> Check | None:
    """Check a line or edge ``description`` of ``channel`` (0-based) of the first conv layer
    ``layer`` on real ``images``; None where the words name no line or edge (not checkable)."""
    if description not in ORIENTATION_OF:
        return None
    specimen = specimen_of(model)
    conv = specimen.conv(layer)
    size = max(int(conv.weight.shape[-1]), 5) + 2
    (sr, sc), (ar, ac) = centre_map(conv)
    height, width = images.shape[2], images.shape[3]

    def counts(x: torch.Tensor, pick_r: torch.Tensor, pick_c: torch.Tensor) -> torch.Tensor:
        post = specimen.run(x, {f"{layer}:post"})[f"{layer}:post"][:, channel].cpu()
        w = post.shape[2]
        flat = post.flatten(1).argmax(1)
        fires = post.flatten(1).amax(1) > 0
        rows = ((flat // w) * sr + ar).clamp(0, height - 1)
        cols = ((flat % w) * sc + ac).clamp(0, width - 1)
        x = x.cpu()
        at_peak = _tally(x[fires], rows[fires], cols[fires], size, description)
        # random oriented stroke positions of the same images: bright pixels, one per image
        return torch.cat([at_peak, _tally(x, pick_r, pick_c, size, description)])

    totals = dist.sharded_sum(counts, images, *_random_positions(images, seed))
    agree, oriented, rand_agree, rand_oriented = totals.tolist()
    share = agree / oriented if oriented > 0 else 0.0
    chance = rand_agree / rand_oriented if rand_oriented > 0 else 0.0
    holds = share >= PASS and share - chance >= ABOVE_RANDOM
    what = f"{layer} channel {channel + 1} detects a {description}"
    return Check("description: strokes", what, share, chance, math.nan, holds, int(oriented))


def check_first_layer(
    model: nn.Module | Specimen, descriptions: pd.DataFrame, images: torch.Tensor
) -> list[Check]:
    """:func:`description_check` of every confidently described channel of the first conv
    layer (``descriptions``: :func:`~dissect.labels.describe_model`'s table); channels whose
    words name no line or edge are not checkable and left out."""
    specimen = specimen_of(model)
    first = specimen.conv_names[0]
    rows = descriptions[(descriptions["layer"] == first) & descriptions["confident"].astype(bool)]
    checks = [
        description_check(specimen, first, int(r.channel) - 1, str(r.description), images)
        for r in rows.itertuples()
    ]
    return [c for c in checks if c is not None]
