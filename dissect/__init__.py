"""dissect: a microscope for any PyTorch ConvNet (a model adapter over hooks, exact
contributions, probes, channel descriptions, superstimuli, ablations). Imports none of the
suite's other packages.

A person's own network: ``specimen = dissect.open_model("net.py:Net", "net.pt")``; every function
below takes it (or a plain ``nn.Module``) and pixel images in [0, 1]."""

from dissect.ablation import ablation_table
from dissect.activations import activation_maps, activation_stats, layer_activation
from dissect.contributions import contribution_table, contributions
from dissect.explain import explain_classes
from dissect.gabor import gabor_fit, gabor_kernel
from dissect.head import ScoreSplit, class_drivers, head_contributions, score_contributions
from dissect.infra.checkpoints import load_checkpoint, save_model
from dissect.infra.errors import AuditError
from dissect.labels import describe_layer, describe_model
from dissect.mistakes import confident_mistakes, confusion_examples
from dissect.probes import make_probes
from dissect.receptive import receptive_fields
from dissect.specimen import InputSpec, Specimen
from dissect.subject import open_model
from dissect.superstimuli import class_superstimuli, layer_superstimuli, plainness_scores

__all__ = [
    "AuditError",
    "InputSpec",
    "ScoreSplit",
    "Specimen",
    "open_model",
    "score_contributions",
    "ablation_table",
    "activation_maps",
    "activation_stats",
    "class_drivers",
    "class_superstimuli",
    "confident_mistakes",
    "confusion_examples",
    "contribution_table",
    "contributions",
    "describe_layer",
    "describe_model",
    "explain_classes",
    "gabor_fit",
    "gabor_kernel",
    "head_contributions",
    "layer_activation",
    "layer_superstimuli",
    "load_checkpoint",
    "make_probes",
    "plainness_scores",
    "receptive_fields",
    "save_model",
]
