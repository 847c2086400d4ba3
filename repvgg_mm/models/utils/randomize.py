"""Random BatchNorm statistics: what makes a fusing check meaningful."""
from typing import Optional

import torch
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm


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
