"""Switching the RepVGG arch of a config: the neck's or the heads' input channels follow.

Configs write the stage channels of their arch into ``neck.in_channels`` (detectors) or the
``in_channels`` / ``c1_in_channels`` of ``decode_head`` and ``auxiliary_head`` (segmentors). When
``--cfg-options`` (or :func:`switch_arch`) changes the backbone's arch, base channels or
``out_indices``, :func:`fit_channels` puts the new channels wherever the config held those of its
own backbone, and refuses in one line a value that fits neither.
"""
import copy
from typing import Any, Callable, Iterator, List, Optional, Tuple

from mmengine.logging import print_log

from repvgg_mm.arch_settings import BASE_WIDTHS, arch_channels

from .errors import UserError

BACKBONE_TYPES = ('RepVGG', 'repvgg_mm.RepVGG')
Site = Tuple[str, dict, str, Callable[[Tuple[int, ...]], Any]]


def output_channels(backbone: Any) -> Optional[Tuple[int, ...]]:
    """Channels of each output (``out_indices``) of a RepVGG backbone config; None for another
    backbone or an invalid one (building it says what is wrong)."""
    if not isinstance(backbone, dict) or backbone.get('type') not in BACKBONE_TYPES:
        return None
    try:
        _, stages = arch_channels(backbone.get('arch', 'A0'),
                                  backbone.get('base_channels', BASE_WIDTHS))
        return tuple(stages[i] for i in backbone.get('out_indices', (3, )))
    except (KeyError, TypeError, ValueError, IndexError):
        return None


def arch_name(arch: Any) -> str:
    return arch if isinstance(arch, str) else 'custom'


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, (list, tuple)) else value


def _sites(model: dict) -> Iterator[Site]:
    """``(config key, node, field, expected(output channels))`` of every field that holds backbone
    channels: the neck's ``in_channels`` when there is a neck, else the heads'."""
    neck = model.get('neck')
    if isinstance(neck, dict) and 'in_channels' in neck:
        yield 'model.neck.in_channels', neck, 'in_channels', list
        return
    for name in ('decode_head', 'auxiliary_head'):
        heads = model.get(name)
        for i, head in enumerate(heads if isinstance(heads, (list, tuple)) else [heads]):
            if not isinstance(head, dict):
                continue
            key = f'model.{name}' + (f'.{i}' if isinstance(heads, (list, tuple)) else '')
            index = head.get('in_index', -1)
            if 'in_channels' in head:
                yield (key + '.in_channels', head, 'in_channels',
                       lambda outs, index=index: [outs[i] for i in index]
                       if isinstance(index, (list, tuple)) else outs[index])
            if 'c1_in_channels' in head:  # DeepLabV3+: low-level features of the first output
                yield key + '.c1_in_channels', head, 'c1_in_channels', lambda outs: outs[0]


def _expected(expected: Callable, outs: Tuple[int, ...]) -> Any:
    try:
        return _plain(expected(outs))
    except IndexError:
        return None  # an in_index beyond the outputs: fits no value


def fit_channels(model: dict, before_backbone: Any) -> List[str]:
    """Fit the neck/head input channels of ``model`` (a model config, changed in place) to its
    backbone, if the backbone's channels differ from those of ``before_backbone`` (the config's
    own). A field holding the old channels gets the new ones (logged); one holding the new ones
    stays; anything else is a :class:`UserError` naming it. Returns the changes."""
    new, old = output_channels(model.get('backbone')), output_channels(before_backbone)
    if new is None or old is None or new == old:
        return []
    source = f'{arch_name(before_backbone.get("arch", "A0"))} {list(old)}'
    target = f'{arch_name(model["backbone"].get("arch", "A0"))} {list(new)}'
    changes = []
    for key, node, field, expected in _sites(model):
        value, want = _plain(node[field]), _expected(expected, new)
        if value == want:
            continue
        if want is None or value != _expected(expected, old):
            raise UserError(f'{key} is {value}: it fits neither the config\'s backbone outputs '
                            f'({source}) nor the requested ones ({target}); '
                            + (f'set it to {want}' if want is not None else
                               'its in_index lies beyond the backbone outputs'))
        node[field] = want
        changes.append(f'{key} {value} -> {want}')
    if changes:
        print_log(f'backbone outputs {source} -> {target}: ' + ', '.join(changes),
                  logger='current')
    return changes


def switch_arch(cfg, arch: Any) -> List[str]:
    """Give ``cfg.model.backbone`` the arch ``arch`` (a name or a dict) and fit the channels of its
    neck or heads (see :func:`fit_channels`)."""
    before = copy.deepcopy(cfg.model.backbone)
    cfg.model.backbone.arch = arch
    return fit_channels(cfg.model, before)
