"""Whole-model re-parameterisation: fuse every RepVGG block wherever it sits.

Blocks are found by duck typing (a module with ``switch_to_deploy``, ``get_equivalent_kernel_bias``
and a ``deploy`` flag), so any block that implements the protocol is fused with its own
``switch_to_deploy``.
"""
import copy
from collections import OrderedDict
from typing import Iterator, List, Tuple

import torch
from torch import Tensor, nn

from repvgg_mm.utils.compare import check_finite
from repvgg_mm.utils.errors import ConversionError


def is_reparam_block(module: nn.Module) -> bool:
    """Whether ``module`` is a re-parameterisable block (fusable into one conv)."""
    return (callable(getattr(module, 'switch_to_deploy', None))
            and callable(getattr(module, 'get_equivalent_kernel_bias', None))
            and hasattr(module, 'deploy'))


def iter_repvgg_blocks(model: nn.Module) -> Iterator[Tuple[str, nn.Module]]:
    """Yield ``(name, block)`` for every re-parameterisable block of ``model`` (any nesting)."""
    for name, module in model.named_modules():
        if is_reparam_block(module):
            yield name, module


def training_time_blocks(model: nn.Module) -> List[Tuple[str, nn.Module]]:
    """``(name, block)`` of every RepVGG block of ``model`` that is not fused yet."""
    return [(name, block) for name, block in iter_repvgg_blocks(model) if not block.deploy]


def count_parameters(model: nn.Module) -> int:
    """Number of parameter elements of ``model``."""
    return sum(p.numel() for p in model.parameters())


def check_fusable(model: nn.Module) -> None:
    """Raise :class:`ConversionError` naming the first block whose norm cannot be folded."""
    for name, block in training_time_blocks(model):
        try:
            block.check_fusable()
        except TypeError as exc:
            raise ConversionError(f'RepVGG block {name!r}: {exc}') from exc


def fuse_repvgg_blocks(model: nn.Module, do_copy: bool = True) -> nn.Module:
    """Return ``model`` (a deep copy unless ``do_copy=False``) with all RepVGG blocks fused.

    Every block is checked before any is changed, so an unfusable norm leaves the model untouched.
    Modules that own a ``deploy`` flag and ``switch_to_deploy`` (e.g. the backbone) are marked
    deployed.
    """
    for _, block in training_time_blocks(model):
        block.check_fusable()
    if do_copy:
        model = copy.deepcopy(model)
    for _, block in iter_repvgg_blocks(model):
        block.switch_to_deploy()
    for module in model.modules():
        if hasattr(module, 'switch_to_deploy') and hasattr(module, 'deploy'):
            module.deploy = True
    return model


@torch.no_grad()
def fused_state_dict(model: nn.Module) -> Tuple['OrderedDict[str, Tensor]', List[str]]:
    """``model``'s state dict as if every training-time RepVGG block were fused; ``model`` is
    unchanged.

    Each block is fused on a throw-away copy of itself (its own ``switch_to_deploy``), so only one
    block is duplicated at a time and SyncBN blocks fuse without a process group (only running
    statistics are used). A fused tensor with NaN or infinity (e.g. from a negative running
    variance) raises :class:`~repvgg_mm.utils.compare.NonFiniteError` naming the block. Returns the
    state dict and the names of the fused blocks.
    """
    check_fusable(model)
    blocks = training_time_blocks(model)
    state = model.state_dict()
    for name, block in blocks:
        prefix = f'{name}.' if name else ''
        fused = copy.deepcopy(block)
        fused.switch_to_deploy()
        check_finite(fused.state_dict(), f'fused RepVGG block {name!r}')
        for key in [k for k in state if k.startswith(prefix)]:
            del state[key]
        state.update((prefix + k, v) for k, v in fused.state_dict().items())
    return state, [name for name, _ in blocks]
