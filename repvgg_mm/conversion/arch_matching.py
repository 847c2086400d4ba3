"""Which RepVGG arch a backbone state dict (our layout) holds, and strict checks against an arch."""
import re
from collections import Counter
from typing import Dict, Mapping, Optional, Tuple

import torch
from torch import Tensor

from repvgg_mm.checkpoint.layouts import format_keys
from repvgg_mm.models import ARCH_NAMES, RepVGG, arch_channels, resolve_arch
from repvgg_mm.utils.errors import CheckpointError

_STAGE_BLOCK = re.compile(r'stage(\d+)\.(\d+)\.')


def _stage_depths(keys) -> Tuple[int, ...]:
    blocks = {match.groups() for match in map(_STAGE_BLOCK.match, keys) if match}
    per_stage = Counter(int(stage) for stage, _ in blocks)
    return tuple(per_stage[stage] for stage in sorted(per_stage))


def _block_channels(shapes: Mapping[str, Tuple[int, ...]], block: str) -> Optional[int]:
    """Output channels of a block, from its 3x3 kernel (training-time or fused)."""
    for part in ('branch_3x3.conv', 'branch_fused'):
        if f'{block}.{part}.weight' in shapes:
            return shapes[f'{block}.{part}.weight'][0]
    return None


def _shapes(state: Mapping[str, Tensor]) -> Dict[str, Tuple[int, ...]]:
    return {key: tuple(value.shape) for key, value in state.items()}


def build_backbone(arch, deploy: bool, device='cpu'):
    """A :class:`~repvgg_mm.models.RepVGG` of ``arch`` (``device='meta'``: shapes only, no
    memory)."""
    with torch.device(device):
        return RepVGG(arch, deploy=deploy)


def infer_arch(state: Mapping[str, Tensor]) -> Optional[str]:
    """Name of the standard arch (``A0`` ... ``D2se``) whose backbone has exactly the keys and
    shapes of ``state`` (our backbone layout, training-time or fused), or None for any other
    structure."""
    shapes = _shapes(state)
    deploy = any('.branch_fused.' in key for key in shapes)
    depths = _stage_depths(shapes)
    channels = (_block_channels(shapes, 'stem'),
                tuple(_block_channels(shapes, f'stage{i + 1}.0') for i in range(len(depths))))
    for name in ARCH_NAMES:
        if tuple(resolve_arch(name)['num_blocks']) != depths or arch_channels(name) != channels:
            continue
        if _shapes(build_backbone(name, deploy, device='meta').state_dict()) == shapes:
            return name
    return None


def check_fits_arch(state: Mapping[str, Tensor], arch, deploy: bool,
                    head: Optional[Mapping[str, Tensor]] = None, source: str = '') -> None:
    """Raise :class:`CheckpointError` listing the keys of ``state`` (our backbone layout) that are
    missing, unexpected or of another shape for a RepVGG of ``arch``.

    ``head`` (``weight``/``bias`` of a classifier Linear), if given, must take the last stage's
    channels.
    """
    try:
        model = build_backbone(arch, deploy, device='meta')
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(str(exc).strip('"\'')) from exc
    own, theirs = _shapes(model.state_dict()), _shapes(state)
    problems = [f'{len(keys)} {what}: {format_keys(keys)}' for what, keys in (
        ('missing', set(own) - set(theirs)), ('unexpected', set(theirs) - set(own)),
        ('with another shape', {k for k in set(own) & set(theirs) if own[k] != theirs[k]})) if keys]
    kind = 'fused' if deploy else 'training-time'
    if problems:
        raise CheckpointError(f'weights {source} do not fit a {kind} RepVGG-{arch}; '
                              + '; '.join(problems))
    if head is not None and head['weight'].shape[-1] != model.stage_channels[-1]:
        raise CheckpointError(f'the classifier head takes {head["weight"].shape[-1]} channels, but '
                              f'RepVGG-{arch} ends with {model.stage_channels[-1]}')
