"""The steps a ``dissect`` command and the pipeline share: the files each writes, and that they
hold what the analysis functions they wrap return."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from dissect.figures import image_grid_png
from dissect.gabor import gabor_kernel
from dissect.labels import describe_model
from dissect.specimen import InputSpec, Specimen
from dissect.steps import (
    ReasoningConfig,
    SuperstimuliConfig,
    write_labels,
    write_reasoning,
    write_superstimuli,
)


class Tiny(nn.Module):
    """conv1 (two 5x5 Gabors at 0 and 90 degrees) -> ReLU -> conv2 (3 channels) -> global
    average pool -> 3 class scores."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 2, 5, padding=2)
        self.conv2 = nn.Conv2d(2, 3, 3, padding=1)
        self.fc = nn.Linear(3, 3)
        torch.manual_seed(0)
        with torch.no_grad():
            for c, angle in enumerate((0.0, 90.0)):
                self.conv1.weight[c, 0] = torch.tensor(gabor_kernel(5, angle, 4.0))
            self.conv1.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.conv2(F.relu(self.conv1(x))))
        return self.fc(F.adaptive_avg_pool2d(x, 1).flatten(1))


def _tiny() -> Specimen:
    return Specimen(Tiny(), InputSpec(1, 16, 16))


def test_image_grid_png_lays_out_images_in_channel_order() -> None:
    images = torch.zeros(3, 1, 4, 4)
    images[1, 0, 0, 0] = 1.0  # image 2: one bright corner pixel
    grid = np.array(Image.open(io.BytesIO(image_grid_png(images, columns=2, scale=1, gap=1))))
    assert grid.shape == (2 * 5, 2 * 5)
    assert grid[0, 5] == 255 and grid[0, 6] == 0  # image 2 starts after image 1 and a gap


def test_labels_step_writes_labels_and_the_first_layers_gabor_fits(tmp_path) -> None:
    specimen = _tiny()
    result = write_labels(specimen, tmp_path)
    labels = pd.read_csv(tmp_path / "labels.csv")
    gabor = pd.read_csv(tmp_path / "gabor.csv")
    assert labels.equals(pd.read_csv(io.StringIO(describe_model(specimen).to_csv(index=False))))
    assert "gabor_r2" not in labels.columns
    first = labels[labels["layer"] == "conv1"]
    assert gabor["channel"].tolist() == [1, 2]
    assert gabor["description"].tolist() == first["description"].tolist()
    assert gabor["r2"].min() > 0.99 and not gabor["noise_like"].any()  # exact Gabors
    assert result.evidence and result.layer == "conv1" and len(result.fits) == 2


def test_superstimuli_step_writes_a_grid_per_layer_and_every_units_activation(tmp_path) -> None:
    result = write_superstimuli(_tiny(), tmp_path, SuperstimuliConfig(steps=2, seed=1))
    assert [s.layer for s in result.found] == ["conv1", "conv2", "classes"]
    for name in ("conv1", "conv2", "classes"):
        assert (tmp_path / f"{name}.png").is_file()
    table = pd.read_csv(tmp_path / "activations.csv")
    assert table.groupby("layer", sort=False)["unit"].max().to_dict() == {
        "conv1": 2,
        "conv2": 3,
        "classes": 3,
    }
    assert np.allclose(table["activation"], torch.cat([s.activation for s in result.found]))


def test_reasoning_step_writes_the_paragraphs_and_the_table(tmp_path) -> None:
    g = torch.Generator().manual_seed(0)
    images, labels = torch.rand(30, 1, 16, 16, generator=g), torch.arange(30) % 3
    config = ReasoningConfig(classes=(1,), top=2)
    result = write_reasoning(_tiny(), images, labels, tmp_path, config, stem="explain")
    assert [r.index for r in result.reasons] == [1]
    assert (tmp_path / "explain.txt").read_text() == result.reasons[0].paragraph() + "\n"
    table = pd.read_csv(tmp_path / "explain.csv")
    assert len(table) == len(result.table) and set(table["class"].astype(str)) <= {"1"}
