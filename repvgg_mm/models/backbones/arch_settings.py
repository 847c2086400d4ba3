"""The RepVGG architecture table (arXiv 2101.03697) and helpers that derive channels from it."""
import copy
from typing import Dict, Sequence, Tuple, Union

BASE_WIDTHS = (64, 128, 256, 512)
_GROUPED_LAYERS = tuple(range(2, 27, 2))  # global block indices (stage-1 first block = 1)


def _arch(num_blocks, width_factor, groups=1, use_se=False):
    return dict(num_blocks=num_blocks, width_factor=width_factor,
                group_layer_map=dict.fromkeys(_GROUPED_LAYERS, groups) if groups > 1 else None,
                use_se=use_se)


_A, _B = (2, 4, 14, 1), (4, 6, 16, 1)
ARCH_SETTINGS: Dict[str, dict] = {
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
ARCH_NAMES = tuple(ARCH_SETTINGS)
_ARCH_KEYS = {'num_blocks', 'width_factor', 'group_layer_map', 'use_se'}


def resolve_arch(arch: Union[str, dict]) -> dict:
    """Return a validated copy of an arch setting given by name (case-insensitive) or as a dict."""
    if isinstance(arch, str):
        by_lower = {name.lower(): name for name in ARCH_SETTINGS}
        if arch.lower() not in by_lower:
            raise KeyError(f'unknown RepVGG arch {arch!r}; choose one of {", ".join(ARCH_NAMES)} '
                           'or give a dict with num_blocks and width_factor')
        return copy.deepcopy(ARCH_SETTINGS[by_lower[arch.lower()]])
    if not isinstance(arch, dict):
        raise TypeError(f'arch must be a name or a dict, not {type(arch).__name__}')
    unknown = set(arch) - _ARCH_KEYS
    if unknown or not {'num_blocks', 'width_factor'} <= set(arch):
        raise KeyError(f'a custom arch needs num_blocks and width_factor (optional: group_layer_map, '
                       f'use_se); got {sorted(arch)}')
    resolved = {'group_layer_map': None, 'use_se': False, **copy.deepcopy(arch)}
    if len(resolved['num_blocks']) != len(resolved['width_factor']):
        raise ValueError('num_blocks and width_factor must have one entry per stage')
    return resolved


def arch_channels(arch: Union[str, dict], base_channels: Sequence[int] = BASE_WIDTHS
                  ) -> Tuple[int, Tuple[int, ...]]:
    """``(stem_channels, stage_channels)`` of an arch, e.g. A0 -> ``(48, (48, 96, 192, 1280))``."""
    setting = resolve_arch(arch)
    widths = setting['width_factor']
    stem = min(base_channels[0], int(base_channels[0] * widths[0]))
    return stem, tuple(int(c * w) for c, w in zip(base_channels, widths))


# The paper's numbers (arXiv 2101.03697, Table 4: 120 epochs, 1080Ti fp32 batch 128): ImageNet top-1,
# img/s, params (M) and GMACs (FLOPs as multiply-adds) of the deployed models at 224x224. B3 and
# B3g4 are 200-epoch models (params/FLOPs only; their top-1 is not comparable).
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
