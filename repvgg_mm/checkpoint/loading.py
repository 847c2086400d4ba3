"""Strict loading of backbone weights (``init_cfg=dict(type='Pretrained', ...)``)."""
from typing import Dict, Optional

from torch import Tensor, nn

from .safe_load import CheckpointError, safe_load


def extract_state_dict(checkpoint) -> Dict[str, Tensor]:
    """The weights of a checkpoint: flat, or nested under ``state_dict`` / ``model``."""
    if not isinstance(checkpoint, dict):
        raise CheckpointError(f'expected a dict of weights, found {type(checkpoint).__name__}')
    for key in ('state_dict', 'model'):
        if key in checkpoint and isinstance(checkpoint[key], dict):
            return extract_state_dict(checkpoint[key])
    state = {k: v for k, v in checkpoint.items() if isinstance(v, Tensor)}
    if not state:
        raise CheckpointError('the checkpoint holds no tensors')
    return state


def strip_prefix(state: Dict[str, Tensor], prefix: Optional[str]) -> Dict[str, Tensor]:
    """Drop DDP's ``module.`` and keep only keys under ``prefix`` (e.g. ``backbone.``), removing it."""
    state = {k[len('module.'):] if k.startswith('module.') else k: v for k, v in state.items()}
    if prefix:
        prefix = prefix if prefix.endswith('.') else prefix + '.'
        selected = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
        if not selected:
            raise CheckpointError(f'no key of the checkpoint starts with {prefix!r}')
        state = selected
    return state


def load_state_dict_strict(module: nn.Module, state: Dict[str, Tensor], source: str = '') -> None:
    """``load_state_dict(strict=True)`` with a readable list of missing/unexpected/mismatched keys."""
    own = module.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    mismatched = sorted(k for k in set(own) & set(state) if own[k].shape != state[k].shape)
    if missing or unexpected or mismatched:
        def show(keys):
            return ', '.join(keys[:8]) + (f' ... (+{len(keys) - 8})' if len(keys) > 8 else '')
        parts = [f'{len(missing)} missing: {show(missing)}' if missing else '',
                 f'{len(unexpected)} unexpected: {show(unexpected)}' if unexpected else '',
                 f'{len(mismatched)} with another shape: {show(mismatched)}' if mismatched else '']
        raise CheckpointError(f'weights {source} do not fit {type(module).__name__}; '
                              + '; '.join(p for p in parts if p))
    module.load_state_dict(state, strict=True)


def load_pretrained(module: nn.Module, path: str, prefix: Optional[str] = None, logger=None) -> None:
    """Load ``path`` into ``module`` strictly (safe loading, ``module.`` stripped, optional prefix)."""
    state = strip_prefix(extract_state_dict(safe_load(path)), prefix)
    load_state_dict_strict(module, state, source=f'from {path}')
    if logger is not None:
        logger.info(f'loaded {len(state)} tensors into {type(module).__name__} from {path}')
