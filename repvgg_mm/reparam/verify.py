"""Checks that a fused model computes what its training-time twin computes."""
from typing import Optional

import torch
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm

from .equivalence import outputs_difference, tensor_difference


def _uniform(like: Tensor, low: float, high: float, generator: Optional[torch.Generator]) -> Tensor:
    return (low + (high - low) * torch.rand(like.shape, generator=generator)).to(like)


@torch.no_grad()
def randomize_bn_(model: nn.Module, generator: Optional[torch.Generator] = None) -> nn.Module:
    """Give every BatchNorm non-trivial running stats and affine parameters (in place).

    Freshly built BNs are identities in eval mode, which hides fusing bugs. The ranges keep deep
    random networks well-conditioned: with ``running_var`` near 1 and unit-scale weights, a plain
    random RepVGG multiplies activations every block and amplifies float rounding chaotically
    (measured: fp32 vs fp64 of the same D2se differ by O(1)), which would hide real errors too.
    """
    for module in model.modules():
        if isinstance(module, _BatchNorm):
            module.running_mean.copy_(_uniform(module.running_mean, -0.5, 0.5, generator))
            module.running_var.copy_(_uniform(module.running_var, 1.0, 4.0, generator))
            if module.weight is not None:
                module.weight.copy_(_uniform(module.weight, 0.5, 1.0, generator))
                module.bias.copy_(_uniform(module.bias, -0.5, 0.5, generator))
    return model


def max_relative_error(reference: Tensor, other: Tensor) -> float:
    """``max|reference - other| / max|reference|`` (computed in float64; 0 when both are zero)."""
    return tensor_difference(reference, other).max_rel


@torch.no_grad()
def compare_outputs(model_a: nn.Module, model_b: nn.Module, inputs: Tensor) -> float:
    """Max relative error between two models' outputs (eval mode; tuples/dicts of tensors allowed)."""
    model_a.eval()
    model_b.eval()
    return outputs_difference(model_a(inputs), model_b(inputs)).max_rel
