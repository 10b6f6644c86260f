"""Three small ConvNets written the way other people write them, for auditing as foreign models.

- :class:`ExampleNet`: the pytorch/examples MNIST shape (unpadded 3x3 convs, functional ReLU,
  dropout, a non-linear two-layer head, ``log_softmax`` as output);
- :class:`SequentialNet`: conv blocks as ``nn.Sequential`` (in-place ReLU, batch norm),
  raw scores, ``view`` to flatten;
- :func:`lenet5`: a bare numbered ``nn.Sequential`` in the LeNet-5 style.

Conv layers by module path: ``conv1, conv2`` / ``conv1.0, conv2.0`` / ``0, 3``.
:func:`tiny_data` draws 10 classes of synthetic strokes a small net learns in a few dozen steps;
:func:`train_briefly` trains on them. The file imports nothing of the suite, so it can be loaded
by path (``dissect.foreign.import_model("path/foreign_nets.py:ExampleNet")``).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["ExampleNet", "SequentialNet", "lenet5", "tiny_data", "train_briefly", "CLASS_STROKES"]


class ExampleNet(nn.Module):
    """pytorch/examples ``mnist/main.py``, narrowed: 28 -> 26 -> 24 -> pool 12."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 8, 3, 1)
        self.conv2 = nn.Conv2d(8, 16, 3, 1)
        self.dropout1 = nn.Dropout(0.25)
        self.dropout2 = nn.Dropout(0.5)
        self.fc1 = nn.Linear(16 * 12 * 12, 64)
        self.fc2 = nn.Linear(64, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv1(x)
        x = F.relu(x)
        x = self.conv2(x)
        x = F.relu(x)
        x = F.max_pool2d(x, 2)
        x = self.dropout1(x)
        x = torch.flatten(x, 1)
        x = self.fc1(x)
        x = F.relu(x)
        x = self.dropout2(x)
        x = self.fc2(x)
        return F.log_softmax(x, dim=1)


class SequentialNet(nn.Module):
    """Two ``nn.Sequential`` conv blocks (the second with batch norm) and a linear head."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Sequential(
            nn.Conv2d(1, 8, 5, padding=2), nn.ReLU(inplace=True), nn.MaxPool2d(2)
        )
        self.conv2 = nn.Sequential(
            nn.Conv2d(8, 16, 5, padding=2), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2)
        )
        self.head = nn.Linear(16 * 7 * 7, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv1(x)
        x = self.conv2(x)
        x = x.view(x.size(0), -1)
        return self.head(x)


def lenet5() -> nn.Sequential:
    """LeNet-5 with ReLU and max-pooling, as one numbered ``nn.Sequential``."""
    return nn.Sequential(
        nn.Conv2d(1, 6, 5, padding=2),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(6, 16, 5),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(400, 120),
        nn.ReLU(),
        nn.Linear(120, 84),
        nn.ReLU(),
        nn.Linear(84, 10),
    )


Stroke = tuple[tuple[float, float], tuple[float, float]]

# Each class: strokes as segments ((x0, y0), (x1, y1)) in a frame centred on the image, x right,
# y up, in pixels before jitter.
_S = 8.0
_CIRCLE = [
    ((_S * math.cos(a), _S * math.sin(a)), (_S * math.cos(b), _S * math.sin(b)))
    for a, b in ((2 * math.pi * i / 12, 2 * math.pi * (i + 1) / 12) for i in range(12))
]
CLASS_STROKES: tuple[list[Stroke], ...] = (
    [((-_S, 0), (_S, 0))],  # 0: horizontal line
    [((0, -_S), (0, _S))],  # 1: vertical line
    [((-_S, -_S), (_S, _S))],  # 2: line at 45 degrees
    [((-_S, _S), (_S, -_S))],  # 3: line at 135 degrees
    [((-_S, _S), (-_S, -_S)), ((-_S, -_S), (_S, -_S))],  # 4: corner opening up-right
    [((-_S, 0), (_S, 0)), ((0, -_S), (0, _S))],  # 5: plus
    [((-_S, -_S), (_S, _S)), ((-_S, _S), (_S, -_S))],  # 6: cross
    [((-_S, _S), (_S, _S)), ((_S, _S), (_S, -_S)), ((_S, -_S), (-_S, -_S)),
     ((-_S, -_S), (-_S, _S))],  # 7: square outline
    [((-_S, 4), (_S, 4)), ((-_S, -4), (_S, -4))],  # 8: two horizontal lines
    _CIRCLE,  # 9: circle
)  # fmt: skip


def _draw(
    strokes: list[Stroke], angle: float, scale: float, shift: tuple[float, float], width: float
) -> torch.Tensor:
    """One ``[28, 28]`` image: the strokes turned by ``angle`` (radians), scaled and shifted,
    drawn with soft edges ``width`` pixels wide."""
    rows, cols = torch.meshgrid(torch.arange(28.0), torch.arange(28.0), indexing="ij")
    px, py = cols - 13.5, 13.5 - rows
    c, s = math.cos(angle), math.sin(angle)
    image = torch.zeros(28, 28)
    for (x0, y0), (x1, y1) in strokes:
        ax, ay = scale * (c * x0 - s * y0) + shift[0], scale * (s * x0 + c * y0) + shift[1]
        bx, by = scale * (c * x1 - s * y1) + shift[0], scale * (s * x1 + c * y1) + shift[1]
        dx, dy = bx - ax, by - ay
        t = (((px - ax) * dx + (py - ay) * dy) / max(dx * dx + dy * dy, 1e-9)).clamp(0, 1)
        dist = torch.hypot(px - ax - t * dx, py - ay - t * dy)
        image = torch.maximum(image, (width / 2 + 0.5 - dist).clamp(0, 1))
    return image


def tiny_data(n_per_class: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(images [10 n, 1, 28, 28] in [0, 1], labels [10 n])``: class ``k`` is the stroke
    pattern ``CLASS_STROKES[k]`` with a random turn (up to 10 degrees), scale, shift (up to 3
    pixels), stroke width and brightness, on faint noise. Classes interleave (0, 1, ..., 9, 0...)."""
    g = torch.Generator().manual_seed(seed)
    n = 10 * n_per_class
    u = torch.rand(n, 6, generator=g)
    images = []
    for i in range(n):
        angle = math.radians(20 * (float(u[i, 0]) - 0.5))
        scale = 0.85 + 0.3 * float(u[i, 1])
        shift = (6 * float(u[i, 2]) - 3, 6 * float(u[i, 3]) - 3)
        width = 1.5 + 1.5 * float(u[i, 4])
        images.append(
            _draw(CLASS_STROKES[i % 10], angle, scale, shift, width) * (0.7 + 0.3 * float(u[i, 5]))
        )
    noise = 0.1 * torch.rand(n, 28, 28, generator=g)
    x = (torch.stack(images) + noise).clamp(0, 1).unsqueeze(1)
    return x, torch.arange(n) % 10


def train_briefly(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    steps: int = 40,
    seed: int = 0,
    batch_size: int = 64,
    lr: float = 3e-3,
) -> nn.Module:
    """``steps`` Adam steps on random batches of ``images``; deterministic for a ``seed``
    (batches and dropout). Cross-entropy works for raw scores and for log-probabilities alike
    (``log_softmax`` of log-probabilities is themselves). Returns the model in eval mode."""
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    for _ in range(steps):
        idx = torch.randint(len(images), (min(batch_size, len(images)),), generator=g)
        optimizer.zero_grad()
        F.cross_entropy(model(images[idx]), labels[idx]).backward()
        optimizer.step()
    return model.eval()
