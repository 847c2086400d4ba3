"""Strict loading of backbone weights (``init_cfg=dict(type='Pretrained', ...)``)."""
import os
from typing import Dict, Optional, Tuple

from torch import Tensor, nn

from .layouts import OURS, ParsedState, read_state_dict, strip_ddp_prefix
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


def read_checkpoint(path: str) -> Dict[str, Tensor]:
    """The weights of a checkpoint file: ``.safetensors`` (timm's hub files), or a torch file read
    with :func:`safe_load` (flat or nested under ``state_dict`` / ``model``)."""
    if os.fspath(path).endswith('.safetensors'):
        if not os.path.isfile(path):
            raise CheckpointError(f'checkpoint not found: {path}')
        from safetensors import SafetensorError
        from safetensors.torch import load_file
        try:
            return load_file(path)
        except (SafetensorError, OSError) as exc:
            raise CheckpointError(f'cannot read {path} as safetensors: {exc}') from exc
    return extract_state_dict(safe_load(path))


def select_prefixed(state: Dict[str, Tensor], prefix: Optional[str]
                    ) -> Tuple[Dict[str, Tensor], bool]:
    """Keys under ``prefix`` with it removed, and True; the whole state and False when no key
    has it (official classifier files of the original and timm have no ``backbone.`` prefix)."""
    if not prefix:
        return state, False
    prefix = prefix if prefix.endswith('.') else prefix + '.'
    selected = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
    return (selected, True) if selected else (state, False)


def _check_deploy_matches(module: nn.Module, parsed: ParsedState, path: str) -> None:
    deploy = getattr(module, 'deploy', None)
    if deploy is None or bool(deploy) == parsed.is_deploy:
        return
    if parsed.is_deploy:
        raise CheckpointError(f'{path} holds fused (deploy-time) RepVGG weights; build the '
                              'backbone with deploy=True to load them')
    raise CheckpointError(f'{path} holds training-time RepVGG weights but the backbone was built '
                          'with deploy=True; load them with deploy=False and fuse afterwards '
                          '(switch_to_deploy or tools/convert_whole_model.py)')


def _fill_batch_counters(module: nn.Module, state: Dict[str, Tensor]) -> int:
    """Add BN ``num_batches_tracked`` counters the file lacks (torch's own rule for such files)."""
    own = module.state_dict()
    missing = [k for k in own if k.endswith('.num_batches_tracked') and k not in state]
    for key in missing:
        state[key] = own[key].clone()
    return len(missing)


def load_pretrained(module: nn.Module, path: str, prefix: Optional[str] = None,
                    logger=None) -> None:
    """Load a RepVGG checkpoint of any known layout into ``module`` strictly.

    The file may be ours, the original RepVGG's, timm's or mmpretrain's (train-time or fused keys,
    ``module.`` prefixes, flat or nested under ``state_dict`` / ``model``, ``.safetensors``).
    Keys under ``prefix`` (e.g. ``backbone.``) are taken; a file without such keys (an official
    classifier file) is read whole and its classifier head left out. A file whose keys already
    equal the module's loads as is. Any unmatched, missing or mis-shaped key raises
    :class:`CheckpointError`; BN ``num_batches_tracked`` counters a file lacks are taken from the
    module, as ``torch.nn.BatchNorm`` itself does for such files.
    """
    state = strip_ddp_prefix(read_checkpoint(path))
    state, used_prefix = select_prefixed(state, prefix)
    if set(state) == set(module.state_dict()):
        converted, description = dict(state), 'keys as is'
    else:
        try:
            parsed = read_state_dict(state)
        except CheckpointError as exc:
            where = f'keys under {prefix!r}' if used_prefix else 'the file'
            raise CheckpointError(
                f'cannot load {path} into {type(module).__name__}: {where}: {exc}') from exc
        _check_deploy_matches(module, parsed, path)
        converted = parsed.to_layout(OURS, 'backbone')
        kind = 'fused' if parsed.is_deploy else 'training-time'
        head = ', classifier head left out' if parsed.head else ''
        description = f'{parsed.layout.name} layout, {kind}{head}'
    filled = _fill_batch_counters(module, converted)
    load_state_dict_strict(module, converted, source=f'from {path} ({description})')
    if logger is not None:
        counters = f'; {filled} missing BN batch counters set as in the model' if filled else ''
        prefix_note = ('' if used_prefix or not prefix
                       else f'; no key starts with {prefix!r}, read whole')
        logger.info(f'loaded {len(converted) - filled} tensors into {type(module).__name__} from '
                    f'{path} ({description}{prefix_note}{counters})')
