"""The RepVGG architecture table (arXiv 2101.03697) and helpers that derive channels from it."""
import copy
from typing import Dict, Sequence, Tuple, Union

BASE_WIDTHS = (64, 128, 256, 512)
STEM_CHANNELS = 64  # the stem is min(STEM_CHANNELS, stage-1 width) unless an arch says otherwise
_GROUPED_LAYERS = tuple(range(2, 27, 2))  # global block indices (stage-1 first block = 1)


def _arch(num_blocks, width_factor, groups=1, use_se=False, stem_channels=STEM_CHANNELS):
    return dict(num_blocks=num_blocks, width_factor=width_factor,
                group_layer_map=dict.fromkeys(_GROUPED_LAYERS, groups) if groups > 1 else None,
                use_se=use_se, se_ratio=16, stem_channels=stem_channels)


_A, _B = (2, 4, 14, 1), (4, 6, 16, 1)
_PAPER_ARCHS: Dict[str, dict] = {
    'A0': _arch(_A, (0.75, 0.75, 0.75, 2.5)),
    'A1': _arch(_A, (1, 1, 1, 2.5)),
    'A2': _arch(_A, (1.5, 1.5, 1.5, 2.75)),
    'B0': _arch(_B, (1, 1, 1, 2.5)),
    'B1': _arch(_B, (2, 2, 2, 4)),
    'B1g2': _arch(_B, (2, 2, 2, 4), groups=2),
    'B1g4': _arch(_B, (2, 2, 2, 4), groups=4),
    'B2': _arch(_B, (2.5, 2.5, 2.5, 5)),
    'B2g2': _arch(_B, (2.5, 2.5, 2.5, 5), groups=2),
    'B2g4': _arch(_B, (2.5, 2.5, 2.5, 5), groups=4),
    'B3': _arch(_B, (3, 3, 3, 5)),
    'B3g2': _arch(_B, (3, 3, 3, 5), groups=2),
    'B3g4': _arch(_B, (3, 3, 3, 5), groups=4),
    'D2se': _arch((8, 14, 24, 1), (2.5, 2.5, 2.5, 5), use_se=True),
}
# The paper's archs: every one has configs and paper numbers, and checkpoints are matched to them.
ARCH_NAMES = tuple(_PAPER_ARCHS)
# All named archs: the paper's and mmpretrain's YOLOX-PAI backbone (used with ``add_ppf=True``).
ARCH_SETTINGS: Dict[str, dict] = {
    **_PAPER_ARCHS,
    'yolox-pai-small': _arch((3, 5, 7, 3), (1, 1, 1, 1), stem_channels=32),
}
_ARCH_KEYS = {'num_blocks', 'width_factor', 'group_layer_map', 'use_se', 'se_ratio',
              'stem_channels', 'se_cfg'}


def _se_from_cfg(se_cfg) -> Tuple[bool, int]:
    """mmpretrain's ``se_cfg`` (None or a dict with ``ratio``) as ``(use_se, se_ratio)``.

    Our SE has ``channels // ratio`` hidden channels, i.e. mmpretrain's SELayer with ``divisor=1``
    (as its D2se); other divisors round the width differently and are refused.
    """
    if se_cfg is None:
        return False, 16
    if not isinstance(se_cfg, dict):
        raise TypeError(f'se_cfg must be None or a dict, not {type(se_cfg).__name__}')
    if set(se_cfg) - {'ratio', 'divisor'}:
        raise KeyError(f'se_cfg takes ratio (and divisor=1); got {sorted(se_cfg)}')
    if se_cfg.get('divisor', 1) != 1:
        raise ValueError(f'se_cfg divisor {se_cfg["divisor"]} is not supported: the SE layer has '
                         'channels // ratio hidden channels (divisor=1)')
    return True, se_cfg.get('ratio', 16)


def resolve_arch(arch: Union[str, dict]) -> dict:
    """Return a validated copy of an arch setting given by name (case-insensitive) or as a dict.

    A dict needs ``num_blocks`` and ``width_factor`` (one entry per stage) and may give
    ``group_layer_map`` (global block index -> groups; the first block of stage 1 is 1),
    ``use_se`` / ``se_ratio`` or mmpretrain's ``se_cfg`` (None or ``dict(ratio=r)``), and
    ``stem_channels`` (default 64). The result has every key but ``se_cfg``.
    """
    if isinstance(arch, str):
        by_lower = {name.lower(): name for name in ARCH_SETTINGS}
        if arch.lower() not in by_lower:
            raise KeyError(f'unknown RepVGG arch {arch!r}; choose one of '
                           f'{", ".join(ARCH_SETTINGS)} or give a dict with num_blocks and '
                           'width_factor')
        return copy.deepcopy(ARCH_SETTINGS[by_lower[arch.lower()]])
    if not isinstance(arch, dict):
        raise TypeError(f'arch must be a name or a dict, not {type(arch).__name__}')
    unknown = set(arch) - _ARCH_KEYS
    if unknown or not {'num_blocks', 'width_factor'} <= set(arch):
        raise KeyError(f'a custom arch needs num_blocks and width_factor (optional: '
                       f'{", ".join(sorted(_ARCH_KEYS - {"num_blocks", "width_factor"}))}); '
                       f'got {sorted(arch)}')
    resolved = dict(group_layer_map=None, use_se=False, se_ratio=16, stem_channels=STEM_CHANNELS)
    resolved.update(copy.deepcopy(arch))
    if 'se_cfg' in resolved:
        if {'use_se', 'se_ratio'} & set(arch):
            raise ValueError('give either se_cfg (mmpretrain style) or use_se/se_ratio, not both')
        resolved['use_se'], resolved['se_ratio'] = _se_from_cfg(resolved.pop('se_cfg'))
    if len(resolved['num_blocks']) != len(resolved['width_factor']):
        raise ValueError('num_blocks and width_factor must have one entry per stage')
    total = sum(resolved['num_blocks'])
    group_map = resolved['group_layer_map'] or {}
    outside = sorted(k for k in group_map if not 1 <= k <= total)
    if outside:
        raise ValueError(f'group_layer_map names blocks {outside} outside 1..{total} (the blocks '
                         'of the stages, counted from 1)')
    if not isinstance(resolved['stem_channels'], int) or resolved['stem_channels'] < 1:
        raise ValueError(f'stem_channels must be a positive int, got {resolved["stem_channels"]!r}')
    return resolved


def _base_widths(base_channels: Union[int, Sequence[int]], num_stages: int) -> Tuple[int, ...]:
    """Stage widths before width factors: ``base * 2**i`` for an int (mmpretrain), else the first
    ``num_stages`` entries of the sequence."""
    if isinstance(base_channels, int):
        return tuple(base_channels * 2 ** i for i in range(num_stages))
    widths = tuple(base_channels)
    if len(widths) < num_stages:
        raise ValueError(f'base_channels {widths} has fewer entries than the {num_stages} stages')
    return widths[:num_stages]


def arch_channels(arch: Union[str, dict], base_channels: Union[int, Sequence[int]] = BASE_WIDTHS
                  ) -> Tuple[int, Tuple[int, ...]]:
    """``(stem_channels, stage_channels)`` of an arch, e.g. A0 -> ``(48, (48, 96, 192, 1280))``.

    Stage i has ``int(base_i * width_factor[i])`` channels, the stem
    ``min(stem_channels, int(base_0 * width_factor[0]))``.
    """
    setting = resolve_arch(arch)
    widths = setting['width_factor']
    bases = _base_widths(base_channels, len(widths))
    stem = min(setting['stem_channels'], int(bases[0] * widths[0]))
    return stem, tuple(int(c * w) for c, w in zip(bases, widths))


# The paper's numbers (arXiv 2101.03697, Table 4: 120 epochs, 1080Ti fp32 batch 128): ImageNet
# top-1, img/s, params (M) and GMACs (FLOPs as multiply-adds) of the deployed models at 224x224.
# B3 and B3g4 are 200-epoch models (params/FLOPs only; their top-1 is not comparable).
PAPER_TABLE: Dict[str, dict] = {
    name: dict(top1=top1, img_per_s=speed, params=params, flops=flops)
    for name, top1, speed, params, flops in (
        ('RepVGG-A0', 72.41, 3256, 8.31, 1.36), ('ResNet-18', 71.16, 2442, 11.68, 1.8),
        ('RepVGG-A1', 74.46, 2339, 12.79, 2.37), ('RepVGG-B0', 75.14, 1817, 14.34, 3.06),
        ('ResNet-34', 74.17, 1419, 21.78, 3.7), ('RepVGG-A2', 76.48, 1322, 25.50, 5.12),
        ('RepVGG-B1g4', 77.58, 868, 36.13, 7.32), ('RepVGG-B1g2', 77.78, 792, 41.36, 8.82),
        ('ResNet-50', 76.31, 719, 25.53, 3.9), ('RepVGG-B1', 78.37, 685, 51.83, 11.82),
        ('RepVGG-B2g4', 78.50, 581, 55.77, 11.3), ('RepVGG-B2', 78.78, 460, 80.31, 18.4),
        ('ResNet-101', 77.21, 430, 44.49, 7.6), ('RepVGG-B3', None, None, 110.96, 26.22),
        ('RepVGG-B3g4', None, None, 75.63, 16.08))}
