"""simpleconvnet: data sets, the SimpleConvNet model, training, checkpoints and pruning."""

from dissect.infra.checkpoints import load_checkpoint
from simpleconvnet.model import SimpleConvNet, SimpleConvNetConfig

__all__ = ["SimpleConvNet", "SimpleConvNetConfig", "load_checkpoint"]
