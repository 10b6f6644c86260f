"""dissect: a generic microscope for small ConvNets (hooks, exact contributions, probes,
channel descriptions, superstimuli, ablations). Imports none of the suite's other packages."""

from dissect.checkpoints import load_checkpoint, save_model
from dissect.errors import AuditError

__all__ = ["AuditError", "load_checkpoint", "save_model"]
