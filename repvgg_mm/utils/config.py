"""Configs in, models out: the one path from a config file to a model, for every tool.

:func:`load_config` reads a file and applies ``--cfg-options``; :func:`setup_codebase` imports the
config's ``custom_imports`` and registers the codebase of its scope (``repvgg_mm`` for
classification, ``mmseg``, ``mmdet``; taken from ``default_scope`` or, without one, from the
registry that knows the model type); :func:`build_model` builds ``cfg.model`` in that scope.
Every failure is a one-line :class:`~repvgg_mm.utils.errors.UserError`.
"""
import copy
import os
from importlib import import_module
from typing import Any, Optional, Tuple

from mmengine.config import Config
from mmengine.registry import MODELS as ROOT_MODELS
from mmengine.registry import DefaultScope
from mmengine.utils import import_modules_from_strings
from torch import nn

from repvgg_mm.registry import SCOPE, register_all_modules

from .arch_switch import fit_channels
from .errors import UserError, first_line

SCOPES = (SCOPE, 'mmseg', 'mmdet')
SYNC_BN_TYPES = ('SyncBN', 'MMSyncBN')


def load_config(path: str, cfg_options: Optional[dict] = None) -> Config:
    """``Config.fromfile`` plus ``--cfg-options``; the config must define a model.

    Options that change a RepVGG backbone's arch (or base channels, out_indices) refit the neck's
    or the heads' input channels that the config wrote for its own arch (logged); a channel value
    that fits neither arch is a one-line error.
    """
    if not os.path.exists(path):
        raise UserError(f'config file not found: {path}')
    if not os.path.isfile(path):
        raise UserError(f'config is not a file: {path}')
    try:
        cfg = Config.fromfile(path)
    except Exception as exc:  # any parse/import failure of the user's file
        raise UserError(f'cannot load config {path}: {first_line(exc)}') from exc
    model = cfg.get('model')
    before = copy.deepcopy(model.get('backbone')) if isinstance(model, dict) else None
    if cfg_options:
        try:
            cfg.merge_from_dict(cfg_options)
        except Exception as exc:  # mmengine raises KeyError/TypeError/... for bad keys
            raise UserError(f'cannot apply --cfg-options: {first_line(exc)}') from exc
    if not isinstance(cfg.get('model'), dict):
        raise UserError(f'config {path} defines no model')
    if cfg_options:
        fit_channels(cfg.model, before)
    return cfg


def _guess_scope(model_type: Any) -> Optional[str]:
    if not isinstance(model_type, str):
        return None
    if '.' in model_type:
        return model_type.split('.', 1)[0]
    for scope in SCOPES:
        try:
            registry = import_module(f'{scope}.registry').MODELS
        except ImportError:
            continue
        if registry.get(model_type) is not None:
            return scope
    raise UserError(f'no known codebase ({", ".join(SCOPES)}) registers model type '
                    f'{model_type!r}; set default_scope in the config')


def config_scope(cfg: Config) -> Optional[str]:
    """The registry scope the model builds in: ``default_scope``, else guessed from the model
    type."""
    return cfg.get('default_scope') or _guess_scope(cfg['model'].get('type'))


def setup_codebase(cfg: Config) -> Optional[str]:
    """Register our modules, the config's ``custom_imports`` and its codebase; return the scope.

    A config without ``default_scope`` gets the guessed one, so the Runner builds in it too.
    """
    register_all_modules()
    if cfg.get('custom_imports'):
        try:
            import_modules_from_strings(**cfg['custom_imports'])
        except Exception as exc:
            raise UserError(f'custom_imports of the config failed: {first_line(exc)}') from exc
    scope = config_scope(cfg)
    if scope in ('mmseg', 'mmdet'):
        utils = import_module(f'{scope}.utils')
        utils.register_all_modules(init_default_scope=False)
        if scope == 'mmdet':
            utils.setup_cache_size_limit_of_dynamo()
    elif scope not in (None, SCOPE):
        try:
            import_module(f'{scope}.registry')
        except ImportError as exc:
            raise UserError(f'cannot import the registries of default_scope={scope!r} '
                            f'(supported: {", ".join(SCOPES)})') from exc
    if scope and not cfg.get('default_scope'):
        cfg.default_scope = scope
    return scope


def build_model(cfg: Config) -> nn.Module:
    """Build ``cfg.model`` in the config's scope (after :func:`setup_codebase`)."""
    scope = setup_codebase(cfg)
    try:
        with DefaultScope.overwrite_default_scope(scope):
            return ROOT_MODELS.build(cfg['model'])
    except Exception as exc:  # unknown types, bad arguments
        raise UserError(f'cannot build the model of the config: {first_line(exc)}') from exc


def _is_sync_bn(node: Any) -> bool:
    norm_type = node.get('type')
    return norm_type in SYNC_BN_TYPES or getattr(norm_type, '__name__', '') == 'SyncBatchNorm'


def replace_sync_bn(node: Any) -> Tuple[Any, int]:
    """``node`` (a config or part of one) with every SyncBN norm config typed ``'BN'``; and how
    many.

    The weights keep their names, so checkpoints move freely between the SyncBN and BN builds.
    """
    if isinstance(node, dict):
        items, count = {}, 0
        for key, value in node.items():
            items[key], n = replace_sync_bn(value)
            count += n
        if _is_sync_bn(node):
            items['type'] = 'BN'
            count += 1
        return type(node)(items), count
    if isinstance(node, (list, tuple)):
        converted = [replace_sync_bn(value) for value in node]
        return type(node)(c for c, _ in converted), sum(n for _, n in converted)
    return node, 0


def config_from_text(text: str) -> Config:
    """Parse a dumped ``.py`` config (used to prove that a written config builds)."""
    return Config.fromstring(text, '.py')
