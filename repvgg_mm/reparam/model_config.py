"""Configs in, models out: custom imports, the default scope, and the deploy variant of a config.

Classification configs build in the ``repvgg_mm`` scope, mmseg configs in ``mmseg`` and mmdet configs
in ``mmdet`` (``default_scope``; guessed from the model type when a config has none).
"""
import inspect
from importlib import import_module
from typing import List, Optional, Tuple

from mmengine.config import Config
from mmengine.registry import MODELS as ROOT_MODELS
from mmengine.registry import DefaultScope
from mmengine.utils import import_modules_from_strings
from torch import nn

from .errors import ConversionError

OUR_SCOPE = 'repvgg_mm'
KNOWN_SCOPES = (OUR_SCOPE, 'mmseg', 'mmdet')


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return f'{type(exc).__name__}: {text.splitlines()[0]}' if text else type(exc).__name__


def load_config(path: str, cfg_options: Optional[dict] = None) -> Config:
    """``Config.fromfile`` plus ``--cfg-options``; a one-line :class:`ConversionError` on failure."""
    try:
        cfg = Config.fromfile(path)
        if cfg_options:
            cfg.merge_from_dict(cfg_options)
    except Exception as exc:  # noqa: BLE001 - syntax errors, missing _base_ files, bad options
        raise ConversionError(f'cannot read config {path}: {_first_line(exc)}') from exc
    if not isinstance(cfg.get('model'), dict):
        raise ConversionError(f'config {path} defines no model')
    return cfg


def import_config_modules(cfg: Config) -> None:
    """Import our models and the config's ``custom_imports``."""
    import_module('repvgg_mm.models')
    if cfg.get('custom_imports'):
        try:
            import_modules_from_strings(**cfg['custom_imports'])
        except Exception as exc:  # noqa: BLE001
            raise ConversionError(f'custom_imports of the config failed: {_first_line(exc)}') from exc


def config_scope(cfg: Config) -> Optional[str]:
    """The registry scope the model builds in: ``default_scope``, else guessed from the model type."""
    if cfg.get('default_scope'):
        return cfg['default_scope']
    model_type = cfg['model'].get('type')
    if not isinstance(model_type, str):
        return None
    if '.' in model_type:
        return model_type.split('.', 1)[0]
    for scope in KNOWN_SCOPES:
        try:
            registry = import_module(f'{scope}.registry').MODELS
        except ImportError:
            continue
        if registry.get(model_type) is not None:
            return scope
    raise ConversionError(f'no known codebase ({", ".join(KNOWN_SCOPES)}) registers model type '
                          f'{model_type!r}; set default_scope in the config')


def build_model(cfg: Config) -> nn.Module:
    """Build ``cfg.model`` in the config's scope (after its custom imports)."""
    import_config_modules(cfg)
    scope = config_scope(cfg)
    try:
        with DefaultScope.overwrite_default_scope(scope):
            return ROOT_MODELS.build(cfg['model'])
    except Exception as exc:  # noqa: BLE001 - unknown types, bad arguments
        raise ConversionError(f'cannot build the model of the config: {_first_line(exc)}') from exc


def _is_repvgg_module_type(type_, scope: Optional[str]) -> bool:
    """Whether a config ``type`` names a module of ours that has a ``deploy`` switch."""
    from repvgg_mm.registry import MODELS as OUR_MODELS
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


def _set_deploy(node, path: str, scope: Optional[str], flagged: List[str]) -> None:
    if isinstance(node, dict):
        if 'type' in node and _is_repvgg_module_type(node['type'], scope):
            node['deploy'] = True
            note = ''
            init_cfg = node.get('init_cfg')
            if isinstance(init_cfg, dict) and init_cfg.get('type') == 'Pretrained':
                node['init_cfg'] = None  # training-time weights cannot load into the fused structure
                note = ' (Pretrained init_cfg dropped)'
            flagged.append((path or '<root>') + note)
        for key, value in node.items():
            _set_deploy(value, f'{path}.{key}' if path else str(key), scope, flagged)
    elif isinstance(node, (list, tuple)):
        for index, value in enumerate(node):
            _set_deploy(value, f'{path}[{index}]', scope, flagged)


def deploy_config(cfg: Config) -> Tuple[Config, List[str]]:
    """A copy of ``cfg`` with ``deploy=True`` on every RepVGG module config, wherever it is nested.

    Their ``Pretrained`` init_cfg is dropped (the deploy checkpoint carries all weights). Returns the
    new config and the dotted paths of the changed entries (e.g. ``model.backbone``, with a note
    where an init_cfg was dropped).
    """
    import_config_modules(cfg)
    cfg_dict = cfg.to_dict()
    flagged: List[str] = []
    _set_deploy(cfg_dict, '', config_scope(cfg), flagged)
    return Config(cfg_dict), flagged


def config_from_text(text: str) -> Config:
    """Parse a dumped ``.py`` config (used to prove that the written text builds)."""
    return Config.fromstring(text, '.py')
