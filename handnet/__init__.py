"""HandNet: a ConvNet of SimpleConvNet's shape built from readable parts (analytic Gabor
filters, written combination rules), a convex readout, and fine-tuning that keeps meanings.
The Gabor kernel itself is :func:`dissect.gabor.gabor_kernel`; the steps that the command line
and the pipeline share are :mod:`handnet.steps`."""

from handnet.filters import GaborSpec, describe_gabor
from handnet.head import fit_head
from handnet.layers import GaborConv2d, Rule, RuleConv2d, Term
from handnet.model import HandNet, HandNetConfig, default_config

__all__ = [
    "GaborSpec",
    "describe_gabor",
    "GaborConv2d",
    "RuleConv2d",
    "Rule",
    "Term",
    "HandNet",
    "HandNetConfig",
    "default_config",
    "fit_head",
]
