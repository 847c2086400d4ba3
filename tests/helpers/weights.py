"""Random weights for tests, and the ways checkpoint files found in the wild wrap their weights."""
import torch
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm

from repvgg_mm.models.utils import randomize_bn_
from repvgg_mm.utils.compare import outputs_difference

# How files found in the wild hold their weights.
WRAPPERS = {
    'flat': lambda state: dict(state),
    'ddp': lambda state: {f'module.{k}': v for k, v in state.items()},
    'runner': lambda state: {'meta': {'epoch': 1}, 'state_dict': dict(state)},
    'model+ddp': lambda state: {'model': {f'module.{k}': v for k, v in state.items()}},
}


@torch.no_grad()
def randomize_(model: nn.Module, generator: torch.Generator) -> nn.Module:
    """Random BN statistics and affine parameters, random conv/linear biases; eval mode."""
    randomize_bn_(model, generator)
    norms = {name for name, module in model.named_modules() if isinstance(module, _BatchNorm)}
    for name, param in model.named_parameters():
        if name.endswith('bias') and name.rsplit('.', 1)[0] not in norms:
            param.copy_(torch.randn(param.shape, generator=generator) * 0.1)
    return model.eval()


def classifier_state(backbone: nn.Module, head: nn.Linear):
    """Our classifier layout: ``backbone.*`` + ``head.fc.*``."""
    state = {f'backbone.{k}': v for k, v in backbone.state_dict().items()}
    state.update({f'head.fc.{k}': v for k, v in head.state_dict().items()})
    return state


@torch.no_grad()
def logits(backbone: nn.Module, weight: Tensor, bias: Tensor, x: Tensor) -> Tensor:
    """Global-average-pooled last feature map through a Linear."""
    return nn.functional.linear(backbone.eval()(x)[-1].mean((2, 3)), weight, bias)


@torch.no_grad()
def outputs_rel_error(model_a: nn.Module, model_b: nn.Module, inputs: Tensor) -> float:
    """Max relative error between two models' outputs in eval mode (tuples/dicts allowed)."""
    return outputs_difference(model_a.eval()(inputs), model_b.eval()(inputs)).max_rel


def runner_checkpoint(state: dict, ddp: bool = False, **extra) -> dict:
    """A checkpoint as mmengine's Runner writes it (optionally from a DDP-wrapped model)."""
    prefix = 'module.' if ddp else ''
    return dict(meta=dict(epoch=3, iter=120, dataset_meta=dict(classes=('a', 'b', 'c'))),
                state_dict={prefix + k: v for k, v in state.items()},
                optimizer=dict(state={}, param_groups=[]), message_hub=dict(), **extra)
