"""Start a fine-tuning block from RepVGG weights: the block's eval-mode function kept exactly.

The linear-scaling and the fused+BN block both end in one BatchNorm after a sum of linear
branches, ``bn(u) + ...`` with ``u = K * x`` where ``K`` is the RepVGG block's equivalent kernel
without bias (``u = sum_i scale_i * z_i`` over the branch outputs ``z_i`` before their BNs). That
BN starts as ``u + bias`` in eval mode, whatever its statistics: ``running_mean = m``,
``running_var = v``, ``weight = sqrt(v + eps)``, ``bias = m + bias``. The statistics are the
source's estimate of ``u``'s, so that a training-mode BN (batch statistics) also starts close to
``u + bias``: the mean ``m = sum_i scale_i * mean_i`` is exact (linearity), the variance
``v = sum_i scale_i**2 * var_i`` treats the branches as uncorrelated (an estimate; it changes no
eval-mode output). A fused source has no statistics left: ``m = 0``, ``v = 1``.
"""
from typing import Dict, Mapping, Tuple

import torch
from torch import Tensor

from .fuse import bn_scale_shift
from .repvgg_block import RepVGGBlock

FUSED_KEY = 'branch_fused.weight'


def _problems(own: Mapping[str, Tensor], state: Mapping[str, Tensor]) -> str:
    def listed(keys):
        keys = sorted(keys)
        return ', '.join(keys[:4]) + (f' ... (+{len(keys) - 4})' if len(keys) > 4 else '')

    found = [(what, keys) for what, keys in (
        ('missing', set(own) - set(state)), ('unexpected', set(state) - set(own)),
        ('with another shape', {k for k in set(own) & set(state)
                                if tuple(own[k].shape) != tuple(state[k].shape)})) if keys]
    return '; '.join(f'{len(keys)} {what}: {listed(keys)}' for what, keys in found)


@torch.no_grad()
def repvgg_source(block: RepVGGBlock, state: Mapping[str, Tensor]) -> RepVGGBlock:
    """A float64 :class:`RepVGGBlock` with ``block``'s geometry holding ``state`` (the keys of one
    RepVGG block, training-time or fused) in eval mode; BN batch counters a file lacks are zero.

    Raises ``ValueError`` listing missing, unexpected and mis-shaped keys.
    """
    deploy = FUSED_KEY in state
    with torch.device('meta'):
        source = RepVGGBlock(block.in_channels, block.out_channels, stride=block.stride,
                             padding=block.padding, dilation=block.dilation, groups=block.groups,
                             use_se=block.use_se, se_ratio=block.se_ratio, deploy=deploy,
                             conv_cfg=block.conv_cfg, norm_cfg=block.norm_cfg,
                             online_fusion='off')
    own = source.state_dict()
    state = dict(state)
    for key in own:
        if key.endswith('num_batches_tracked') and key not in state:
            state[key] = torch.zeros((), dtype=torch.long)
    problems = _problems(own, state)
    if problems:
        kind = 'fused' if deploy else 'training-time'
        raise ValueError(f'the weights do not fit a {kind} RepVGG block of this geometry '
                         f'({block.in_channels}->{block.out_channels}, stride {block.stride}, '
                         f'groups {block.groups}): {problems}')
    source.load_state_dict(state, strict=True, assign=True)
    return source.double().eval()  # the conversion's arithmetic in float64


def branch_sum_statistics(source: RepVGGBlock) -> Tuple[Tensor, Tensor]:
    """``(mean, var)`` per channel of ``u = K * x`` estimated from ``source``'s branch BNs (see
    the module docstring); ``(0, 1)`` for a fused source."""
    if source.deploy:
        bias = source.branch_fused.bias
        return torch.zeros_like(bias), torch.ones_like(bias)
    mean = var = 0
    for norm in source.norm_layers():
        scale, _ = bn_scale_shift(norm)
        mean = mean + scale * norm.running_mean
        var = var + scale.square() * norm.running_var
    return mean, var


def shift_bn_state(mean: Tensor, var: Tensor, bias: Tensor, eps: float,
                   num_batches_tracked: Tensor) -> Dict[str, Tensor]:
    """State of a BN (affine, running statistics) computing ``x + bias`` in eval mode, with
    running statistics ``mean`` / ``var``."""
    return dict(weight=torch.sqrt(var + eps), bias=mean + bias, running_mean=mean.clone(),
                running_var=var.clone(), num_batches_tracked=num_batches_tracked.clone())


def source_batch_counter(source: RepVGGBlock) -> Tensor:
    """The BN batch counter of the source's 3x3 branch (0 for a fused source)."""
    if source.deploy:
        return torch.zeros((), dtype=torch.long)
    return source.branch_3x3.norm.num_batches_tracked.clone()


def se_state(source: RepVGGBlock) -> Dict[str, Tensor]:
    """The squeeze-excitation tensors of ``source`` (keys ``se.*``), unchanged."""
    return {f'se.{k}': v for k, v in source.se.state_dict().items()}
