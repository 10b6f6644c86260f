"""HandNet: a ConvNet of SimpleConvNet's shape built from readable parts (analytic Gabor
filters, written combination rules), a convex readout, and fine-tuning that keeps meanings."""

from handnet.filters import GaborSpec, describe_gabor, gabor_kernel
from handnet.head import fit_head
from handnet.layers import GaborConv2d, Rule, RuleConv2d, Term
from handnet.model import HandNet, HandNetConfig, default_config

__all__ = [
    "GaborSpec",
    "gabor_kernel",
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
