"""SimpleConvNet: (conv1+relu+maxpool) -> (conv2+relu+maxpool) -> [(conv3+relu+maxpool)]
-> flatten -> fc4 -> fc5 -> log_softmax.

All conv layers use 5x5 kernels with padding 2 and are followed by ReLU and 2x2 max-pooling.
There is deliberately no nonlinearity between fc4 and fc5: the head is one linear map, so every
class logit splits exactly into per-channel contributions of the last conv block.

Inputs are images in [0, 1], shape ``[N, 1, 28, 28]``, white digit on black; the model applies
its own input normalisation (MNIST mean and std) first, so that superstimuli and probes can be
optimised and drawn in pixel space.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["SimpleConvNetConfig", "SimpleConvNet", "init_weights", "IMAGE_SIZE"]

IMAGE_SIZE = 28
MNIST_MEAN = 0.1307
MNIST_STD = 0.3081


@dataclass(frozen=True)
class SimpleConvNetConfig:
    """Widths of the net. ``convs`` has two or three entries (conv3 is optional)."""

    convs: tuple[int, ...] = (32, 64, 128)
    fc4: int = 128
    classes: int = 10
    kernel_size: int = 5
    in_channels: int = 1
    mean: float = MNIST_MEAN
    std: float = MNIST_STD
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "convs", tuple(int(c) for c in self.convs))
        if len(self.convs) not in (2, 3) or min(self.convs) < 1:
            raise ValueError(f"convs must be two or three positive widths, got {self.convs}")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["convs"] = list(self.convs)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SimpleConvNetConfig:
        return cls(**{**d, "convs": tuple(d["convs"])})


def feature_size(n_convs: int, size: int = IMAGE_SIZE) -> int:
    """Spatial side of the last conv block's output after ``n_convs`` 2x2 poolings."""
    for _ in range(n_convs):
        size //= 2
    return size


class SimpleConvNet(nn.Module):
    """The plain ConvNet. Layers are reachable by name: ``conv1``, ``relu1``, ``pool1``, ...,
    ``fc4``, ``fc5``; ``conv_names`` lists the conv layers present.

    ``forward(x: [N, 1, 28, 28]) -> [N, classes]`` log-probabilities.
    """

    architecture = "simpleconvnet.model:SimpleConvNet"
    input_mean: torch.Tensor  # buffers registered in __init__
    input_std: torch.Tensor

    def __init__(self, config: SimpleConvNetConfig | None = None) -> None:
        super().__init__()
        self.config = config or SimpleConvNetConfig()
        c = self.config
        k = c.kernel_size
        widths = (c.in_channels, *c.convs)
        self.conv_names: list[str] = []
        for i in range(len(c.convs)):
            name = f"conv{i + 1}"
            self.add_module(name, nn.Conv2d(widths[i], widths[i + 1], k, padding=k // 2))
            self.add_module(f"relu{i + 1}", nn.ReLU())
            self.add_module(f"pool{i + 1}", nn.MaxPool2d(2))
            self.conv_names.append(name)
        side = feature_size(len(c.convs))
        self.fc4 = nn.Linear(c.convs[-1] * side * side, c.fc4)
        self.fc5 = nn.Linear(c.fc4, c.classes)
        self.register_buffer("input_mean", torch.tensor(c.mean), persistent=False)
        self.register_buffer("input_std", torch.tensor(c.std), persistent=False)

    # -- the shape every net of the suite shares -------------------------------------------
    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """Pixels in [0, 1] -> the normalised input conv1 sees."""
        return (x - self.input_mean) / self.input_std

    def block(self, i: int, x: torch.Tensor) -> torch.Tensor:
        """Conv block ``i`` (1-based): pool(relu(conv(x)))."""
        conv = getattr(self, f"conv{i}")
        return getattr(self, f"pool{i}")(getattr(self, f"relu{i}")(conv(x)))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """``[N, 1, 28, 28]`` pixels -> output of the last conv block ``[N, C, h, w]``."""
        h = self.normalize(x)
        for i in range(1, len(self.conv_names) + 1):
            h = self.block(i, h)
        return h

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """Class scores before log_softmax: fc5(fc4(flatten(features))) ``[N, classes]``."""
        return self.fc5(self.fc4(torch.flatten(self.features(x), 1)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.log_softmax(self.logits(x), dim=1)

    # -- checkpoint support -----------------------------------------------------------------
    def config_dict(self) -> dict[str, Any]:
        return self.config.to_dict()

    @classmethod
    def from_config_dict(cls, d: dict[str, Any]) -> SimpleConvNet:
        return cls(SimpleConvNetConfig.from_dict(d))

    def summary(self) -> str:
        """Layer shapes and parameter counts (torchinfo) for one 28x28 input."""
        from torchinfo import summary

        s = self.config.in_channels
        return str(summary(self, input_size=(1, s, IMAGE_SIZE, IMAGE_SIZE), verbose=0))


def init_weights(model: nn.Module, generator: torch.Generator) -> None:
    """Re-initialise every conv/linear layer like PyTorch's default, from ``generator`` only."""
    import math

    for module in model.modules():
        if isinstance(module, nn.Conv2d | nn.Linear):
            nn.init.kaiming_uniform_(module.weight, a=math.sqrt(5), generator=generator)
            if module.bias is not None:
                fan_in = module.weight[0].numel()
                bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0
                nn.init.uniform_(module.bias, -bound, bound, generator=generator)
