"""The RepVGG architecture table (arXiv 2101.03697) and helpers that derive channels from it."""
import copy
from typing import Dict, Sequence, Tuple, Union

BASE_WIDTHS = (64, 128, 256, 512)
_GROUPED_LAYERS = tuple(range(2, 27, 2))  # global block indices (stage-1 first block = 1)


def _arch(num_blocks, width_factor, groups=1, use_se=False):
    return dict(num_blocks=num_blocks, width_factor=width_factor,
                group_layer_map={i: groups for i in _GROUPED_LAYERS} if groups > 1 else None,
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
