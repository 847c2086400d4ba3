"""Whole-model conversion API (the original RepVGG README's ``repvgg_model_convert`` and
``whole_model_convert``), built on the block's own ``switch_to_deploy``."""
import copy
from collections import OrderedDict
from typing import List, Optional, Tuple

import torch
from torch import Tensor, nn

from repvgg_mm.checkpoint import CheckpointError, load_state_dict_strict
from .checkpoint_io import atomic_torch_save
from .convert import fuse_repvgg_blocks, iter_repvgg_blocks
from .errors import ConversionError


def count_parameters(model: nn.Module) -> int:
    """Number of parameter elements of ``model``."""
    return sum(p.numel() for p in model.parameters())


def training_time_blocks(model: nn.Module) -> List[Tuple[str, nn.Module]]:
    """``(name, block)`` of every RepVGG block of ``model`` that is not fused yet."""
    return [(name, block) for name, block in iter_repvgg_blocks(model) if not block.deploy]


@torch.no_grad()
def fused_state_dict(model: nn.Module) -> Tuple['OrderedDict[str, Tensor]', List[str]]:
    """``model``'s state dict as if every training-time RepVGG block were fused; ``model`` is unchanged.

    Each block is fused on a throw-away copy of itself (its own ``switch_to_deploy``), so only one
    block is duplicated at a time and SyncBN blocks fuse without a process group (only running
    statistics are used). Returns the state dict and the names of the fused blocks.
    """
    blocks = training_time_blocks(model)
    for name, block in blocks:
        try:
            block.check_fusable()
        except TypeError as exc:
            raise ConversionError(f'RepVGG block {name!r}: {exc}') from exc
    state = model.state_dict()
    for name, block in blocks:
        prefix = f'{name}.' if name else ''
        fused = copy.deepcopy(block)
        fused.switch_to_deploy()
        for key in [k for k in state if k.startswith(prefix)]:
            del state[key]
        state.update((prefix + k, v) for k, v in fused.state_dict().items())
    return state, [name for name, _ in blocks]


def whole_model_convert(train_model: nn.Module, deploy_model: nn.Module,
                        save_path: Optional[str] = None) -> nn.Module:
    """Copy all weights of ``train_model`` into the already built ``deploy_model``, fusing RepVGG blocks.

    ``deploy_model`` must be the same network built with ``deploy=True`` on its RepVGG modules: it is
    loaded strictly (a readable error lists missing/unexpected/mismatched keys). Every other tensor
    is copied unchanged. ``save_path``: also save ``deploy_model``'s state dict there (atomically).
    """
    state, _ = fused_state_dict(train_model)
    try:
        load_state_dict_strict(deploy_model, state, source='of the fused training-time model')
    except CheckpointError as exc:
        raise ConversionError(f'the deploy model does not match the fused training-time model: {exc}'
                              ) from exc
    if save_path is not None:
        atomic_torch_save(deploy_model.state_dict(), save_path)
    return deploy_model


def repvgg_model_convert(model: nn.Module, save_path: Optional[str] = None,
                         do_copy: bool = True) -> nn.Module:
    """Fuse every RepVGG block of ``model`` (a deep copy unless ``do_copy=False``) and return it.

    ``save_path``: also save the fused model's flat state dict there (atomically), loadable with
    ``deploy_model.load_state_dict(torch.load(save_path))``.
    """
    model = fuse_repvgg_blocks(model, do_copy=do_copy)
    if save_path is not None:
        atomic_torch_save(model.state_dict(), save_path)
    return model

