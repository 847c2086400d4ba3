"""The deploy variant of a config: ``deploy=True`` on every RepVGG module config, wherever
nested."""
import inspect
from typing import List, Optional, Tuple

from mmengine.config import Config

from repvgg_mm.registry import MODELS as OUR_MODELS
from repvgg_mm.registry import SCOPE as OUR_SCOPE
from repvgg_mm.utils.config import config_scope, setup_codebase


def _is_repvgg_module_type(type_, scope: Optional[str]) -> bool:
    """Whether a config ``type`` names a module of ours that has a ``deploy`` switch."""
    if isinstance(type_, str):
        owner, _, name = type_.rpartition('.')
        if owner not in ('', OUR_SCOPE) or (not owner and scope not in (None, OUR_SCOPE)):
            return False
        cls = OUR_MODELS.module_dict.get(name)
    elif inspect.isclass(type_):
        cls = type_ if type_.__module__.startswith(f'{OUR_SCOPE}.') else None
    else:
        return False
    return cls is not None and 'deploy' in inspect.signature(cls).parameters


def _set_deploy(node, path: str, scope: Optional[str], flagged: List[str]) -> bool:
    """Set ``deploy=True`` on every RepVGG module config under ``node``; return whether any."""
    found = False
    if isinstance(node, dict):
        if 'type' in node and _is_repvgg_module_type(node['type'], scope):
            node['deploy'] = True
            notes = []
            init_cfg = node.get('init_cfg')
            if isinstance(init_cfg, dict) and init_cfg.get('type') == 'Pretrained':
                node['init_cfg'] = None  # training-time weights cannot load into fused blocks
                notes.append('Pretrained init_cfg dropped')
            if node.get('pretrained'):
                node['pretrained'] = None
                notes.append('pretrained dropped')
            flagged.append((path or '<root>') + (f' ({", ".join(notes)})' if notes else ''))
            found = True
        for key, value in node.items():
            found |= _set_deploy(value, f'{path}.{key}' if path else str(key), scope, flagged)
        # mmseg's segmentors copy their own `pretrained` into the backbone (as init_cfg)
        if found and node.get('pretrained') and isinstance(node.get('backbone'), dict) \
                and node['backbone'].get('deploy'):
            node['pretrained'] = None
            flagged.append(f'{path or "<root>"}.pretrained (dropped)')
    elif isinstance(node, (list, tuple)):
        for index, value in enumerate(node):
            found |= _set_deploy(value, f'{path}[{index}]', scope, flagged)
    return found


def deploy_config(cfg: Config) -> Tuple[Config, List[str]]:
    """A copy of ``cfg`` with ``deploy=True`` on every RepVGG module config, wherever it is nested.

    Their ``Pretrained`` init_cfg and ``pretrained`` (also mmseg's segmentor-level ``pretrained``,
    which mmseg copies into the backbone) are dropped: the deploy checkpoint carries all weights.
    Returns the new config and the dotted paths of the changed entries (e.g. ``model.backbone``,
    with a note where something was dropped).
    """
    setup_codebase(cfg)
    cfg_dict = cfg.to_dict()
    flagged: List[str] = []
    _set_deploy(cfg_dict, '', config_scope(cfg), flagged)
    return Config(cfg_dict), flagged
