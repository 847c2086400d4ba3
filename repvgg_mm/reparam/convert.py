"""Whole-model re-parameterisation: fuse every RepVGG block wherever it sits."""
import copy

from torch import nn


def iter_repvgg_blocks(model: nn.Module):
    """Yield ``(name, block)`` for every RepVGG block of ``model`` (any nesting)."""
    # Imported here: the block module itself imports repvgg_mm.reparam.fuse (no import cycle).
    from repvgg_mm.models.blocks import RepVGGBlock
    for name, module in model.named_modules():
        if isinstance(module, RepVGGBlock):
            yield name, module


def fuse_repvgg_blocks(model: nn.Module, do_copy: bool = True) -> nn.Module:
    """Return ``model`` (a deep copy unless ``do_copy=False``) with all RepVGG blocks fused.

    Every block is checked before any is changed, so an unfusable norm leaves the model untouched.
    Modules that own a ``deploy`` flag (e.g. the RepVGG backbone) are marked deployed.
    """
    blocks = list(iter_repvgg_blocks(model))
    for _, block in blocks:
        block.check_fusable()
    if do_copy:
        model = copy.deepcopy(model)
    for _, block in iter_repvgg_blocks(model):
        block.switch_to_deploy()
    for module in model.modules():
        if hasattr(module, 'switch_to_deploy') and hasattr(module, 'deploy'):
            module.deploy = True
    return model
