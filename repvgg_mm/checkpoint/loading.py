"""Strict loading of weights into modules, and RepVGG's ``init_cfg=dict(type='Pretrained')``."""
from typing import Dict, Optional, Tuple

from mmengine.logging import MMLogger
from torch import Tensor, nn

from repvgg_mm.registry import WEIGHT_INITIALIZERS
from repvgg_mm.utils.compare import check_finite
from repvgg_mm.utils.errors import CheckpointError

from .layouts import OURS, ParsedState, format_keys, read_state_dict
from .reader import read_weights


def _has(keys, part: str) -> bool:
    return any(part in key for key in keys)


def _has_1x1_norm(keys) -> bool:
    """A norm in the 1x1 branch (RepVGG's; QARepVGG's 1x1 branch is a bare conv)."""
    return any('.branch_1x1.' in key and '.branch_1x1.conv.' not in key for key in keys)


def structure_hint(model_keys, file_keys) -> str:
    """What to change when a file's RepVGG blocks are of another kind than the model's (block
    type, fused vs training-time); '' when the keys say nothing of the kind."""
    model_keys, file_keys = set(model_keys), set(file_keys)
    missing, unexpected = model_keys - file_keys, file_keys - model_keys
    if _has(unexpected, '.branch_fused.') and _has(missing, '.branch_3x3.'):
        return ('the file holds fused (deploy-time) RepVGG blocks: use the deploy config that '
                'tools/convert_whole_model.py wrote beside it (<config>_deploy.py), or set '
                'model.backbone.deploy=True')
    if _has(missing, '.branch_fused.') and _has(unexpected, '.branch_3x3.'):
        return ('the file holds training-time RepVGG blocks but the model is fused (deploy=True): '
                'use the training-time config (tools/test.py --fuse tests it fused), or convert '
                'the file with tools/convert_whole_model.py')
    if _has(unexpected, '.post_norm.') and _has_1x1_norm(missing):
        return ("the file holds QARepVGG blocks (post_norm): set "
                "model.backbone.block_type='qarepvgg'")
    if _has(missing, '.post_norm.') and _has_1x1_norm(unexpected):
        return ("the file holds RepVGG blocks (a BN in every branch): set "
                "model.backbone.block_type='repvgg'")
    return ''


def load_state_dict_strict(module: nn.Module, state: Dict[str, Tensor], source: str = '') -> None:
    """``load_state_dict(strict=True)`` with a readable list of missing/unexpected/mismatched
    keys, and what to change when the blocks are of another kind."""
    own = module.state_dict()
    missing = set(own) - set(state)
    unexpected = set(state) - set(own)
    mismatched = {k for k in set(own) & set(state) if own[k].shape != state[k].shape}
    problems = [f'{len(keys)} {what}: {format_keys(keys)}' for what, keys in (
        ('missing', missing), ('unexpected', unexpected), ('with another shape', mismatched))
        if keys]
    if problems:
        hint = structure_hint(own, state)
        raise CheckpointError(f'weights {source} do not fit {type(module).__name__}'
                              + (f': {hint}' if hint else '') + '; ' + '; '.join(problems))
    module.load_state_dict(state, strict=True)


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


def _convert_blocks(module: nn.Module, state: Dict[str, Tensor], source: str
                    ) -> Dict[str, Tensor]:
    """RepVGG weights (our keys) converted by the module into its own blocks, checked finite."""
    try:
        converted = module.state_dict_from_repvgg(state)
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f'cannot convert {source} into the {module.block_type!r} blocks of '
                              f'{type(module).__name__}: {exc}') from exc
    check_finite(converted, f'{source} converted into {module.block_type!r} blocks')
    return converted


def load_pretrained(module: nn.Module, path: str, prefix: Optional[str] = None,
                    logger=None) -> None:
    """Load a RepVGG checkpoint of any known layout into ``module`` strictly.

    The file may be ours, the original RepVGG's, timm's or mmpretrain's (train-time or fused keys,
    ``module.`` prefixes, flat or nested under ``state_dict`` / ``model``, ``.safetensors``).
    Keys under ``prefix`` (e.g. ``backbone.``) are taken; a file without such keys (an official
    classifier file) is read whole and its classifier head left out. A file whose keys already
    equal the module's loads as is. A module with ``converts_repvgg_weights`` (a RepVGG backbone
    of linear-scaling or fused+BN blocks) converts RepVGG weights with its
    ``state_dict_from_repvgg`` (the same function in eval mode; non-finite results refused). Any
    unmatched, missing or mis-shaped key raises
    :class:`CheckpointError`; BN ``num_batches_tracked`` counters a file lacks are taken from the
    module, as ``torch.nn.BatchNorm`` itself does for such files.
    """
    state, used_prefix = select_prefixed(read_weights(path).state, prefix)
    if set(state) == set(module.state_dict()):
        converted, description = dict(state), 'keys as is'
    else:
        try:
            parsed = read_state_dict(state)
        except CheckpointError as exc:
            where = f'keys under {prefix!r}' if used_prefix else 'the file'
            hint = structure_hint(module.state_dict(), state)
            raise CheckpointError(f'cannot load {path} into {type(module).__name__}: '
                                  + (hint if hint else f'{where}: {exc}')) from exc
        converts = getattr(module, 'converts_repvgg_weights', False)
        if not converts:
            _check_deploy_matches(module, parsed, path)
        converted = parsed.to_layout(OURS, 'backbone')
        kind = 'fused' if parsed.is_deploy else 'training-time'
        head = ', classifier head left out' if parsed.head else ''
        description = f'{parsed.layout.name} layout, {kind}{head}'
        if converts:
            converted = _convert_blocks(module, converted, f'{path} ({description})')
            description += f', converted into {module.block_type!r} blocks'
    filled = _fill_batch_counters(module, converted)
    load_state_dict_strict(module, converted, source=f'from {path} ({description})')
    if logger is not None:
        counters = f'; {filled} missing BN batch counters set as in the model' if filled else ''
        prefix_note = ('' if used_prefix or not prefix
                       else f'; no key starts with {prefix!r}, read whole')
        logger.info(f'loaded {len(converted) - filled} tensors into {type(module).__name__} from '
                    f'{path} ({description}{prefix_note}{counters})')


@WEIGHT_INITIALIZERS.register_module(name='Pretrained')
class RepVGGPretrainedInit:
    """``init_cfg=dict(type='Pretrained', checkpoint=PATH, prefix=None)`` for RepVGG modules.

    Unlike mmengine's ``PretrainedInit`` (non-strict, pickle-based), it reads any known RepVGG
    layout through the safe reader and loads strictly (:func:`load_pretrained`).
    """

    def __init__(self, checkpoint: str, prefix: Optional[str] = None, map_location='cpu'):
        self.checkpoint, self.prefix = checkpoint, prefix

    def __call__(self, module: nn.Module) -> None:
        load_pretrained(module, self.checkpoint, prefix=self.prefix,
                        logger=MMLogger.get_current_instance())

    def _get_init_info(self) -> str:
        return f'{type(self).__name__}: load from {self.checkpoint}'
