"""The one reader of weights files: every path that reads weights (init_cfg Pretrained, the Runner's
load_from/resume, the converters, export, inference) goes through :func:`read_weights`.

Files read: ``.safetensors`` (timm's hub files) and torch files loaded with
:func:`~repvgg_mm.checkpoint.safe_load.safe_load` (never with pickle's full power): flat state
dicts,
DistributedDataParallel files (``module.`` keys), Runner files (``state_dict`` + ``meta`` +
optimizer etc.) and files with ``model`` as the weights entry.

Which weights are taken (``weights=``):

* ``'auto'`` (default): the file's main weights, i.e. exactly what mmengine's ``load_checkpoint``
  and the stock test scripts evaluate. Embedded EMA copies (see below) are left out.
* ``'ema'``: the exponential-moving-average weights; an error if the file has none.
* ``'raw'``: the non-averaged weights (the main weights when the file has no EMA copy).

OpenMMLab's EMA hooks (mmengine's ``EMAHook``, mmcv 1.x's ``EMAHook``) swap the average *into* the
main weights when saving and keep the raw weights in their EMA-named copy (``ema_state_dict`` with
``module.`` keys, or ``ema_<name_with_underscores>`` buffers). For their files ``'auto'`` and
``'ema'`` select the same tensors and ``'raw'`` selects the EMA-named copy. Copies written by other
tools (``state_dict_ema`` / ``model_ema`` / ``ema`` entries, ``ema_model.module.`` / ``ema.`` ...
keys of an averaged submodule) hold the average itself.
"""
import copy
import os
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

from torch import Tensor

from repvgg_mm.utils.compare import NonFiniteError, first_non_finite
from repvgg_mm.utils.errors import CheckpointError

from .layouts import DDP_PREFIX, strip_ddp_prefix
from .safe_load import check_checkpoint_file, safe_load

WEIGHT_CHOICES = ('auto', 'ema', 'raw')
# Separate entries holding an averaged copy (not swapped into the main weights).
EMA_ENTRIES = ('state_dict_ema', 'model_ema', 'ema')
# Submodule names of an averaged copy held by the model itself (e.g. an ExponentialMovingAverage,
# whose keys are '<owner>module.<key>' plus a 'steps' counter).
EMBEDDED_EMA_OWNERS = ('ema_model.', 'model_ema.', 'ema.')
EMA_COUNTERS = ('steps', 'n_averaged', 'num_updates', 'updates')


@dataclass
class Weights:
    """The weights chosen from a checkpoint, keys without ``module.``."""
    state: Dict[str, Tensor]
    meta: dict
    layout: str
    selected: str
    had_module_prefix: bool
    dropped_entries: List[str] = field(default_factory=list)


@dataclass
class _EmaCopy:
    state: Dict[str, Tensor]
    source: str
    swapped: bool  # True: OpenMMLab hook file, the main weights hold the average


def _tensors(entry) -> Dict[str, Tensor]:
    return ({k: v for k, v in entry.items() if isinstance(v, Tensor)} if isinstance(entry, dict)
            else {})


def _split_embedded_ema(state: Dict[str, Tensor]) -> Tuple[Dict[str, Tensor], Optional[_EmaCopy]]:
    """Separate an EMA copy stored under prefixed keys from the model weights."""
    for owner in EMBEDDED_EMA_OWNERS:
        rest = {k: v for k, v in state.items() if not k.startswith(owner)}
        inner, _ = strip_ddp_prefix({k[len(owner):]: v for k, v in state.items()
                                        if k.startswith(owner)})
        averaged = {k: v for k, v in inner.items() if k not in EMA_COUNTERS}
        if averaged and rest and set(averaged) <= set(rest):
            return rest, _EmaCopy(averaged, f"keys prefixed '{owner}'", swapped=False)
    # mmcv 1.x EMAHook: buffers named 'ema_' + key with '.' -> '_' next to the model's own keys.
    candidates = {k for k in state if k.startswith('ema_')}
    rest = {k: v for k, v in state.items() if k not in candidates}
    by_buffer = {'ema_' + k.replace('.', '_'): k for k in rest}
    if candidates and candidates <= set(by_buffer):
        raw = dict(rest)
        raw.update({by_buffer[k]: state[k] for k in candidates})
        return rest, _EmaCopy(raw, "'ema_*' buffers (mmcv EMAHook)", swapped=True)
    return state, None


def _separate_ema(checkpoint: dict, main_entry: Optional[str]) -> Optional[_EmaCopy]:
    mm_ema = checkpoint.get('ema_state_dict') if main_entry == 'state_dict' else None
    if isinstance(mm_ema, dict):
        tensors = _tensors(mm_ema)
        if any(k.startswith(DDP_PREFIX) for k in tensors):  # mmengine ExponentialMovingAverage
            raw = {k[len(DDP_PREFIX):]: v for k, v in tensors.items() if k.startswith(DDP_PREFIX)}
            return _EmaCopy(raw, "'ema_state_dict' (mmengine EMAHook)", swapped=True)
        return _EmaCopy({k: v for k, v in tensors.items() if k not in EMA_COUNTERS},
                        "'ema_state_dict'", swapped=False)
    for entry in EMA_ENTRIES:
        tensors = _tensors(checkpoint.get(entry))
        if tensors:
            state, _ = strip_ddp_prefix(tensors)
            return _EmaCopy({k: v for k, v in state.items() if k not in EMA_COUNTERS},
                            f"'{entry}'", swapped=False)
    return None


def select_weights(checkpoint, weights: str = 'auto', source: str = 'the checkpoint') -> Weights:
    """Pick the weights from a loaded checkpoint object (see the module docstring); weights
    holding NaN or infinity are refused, naming the first such tensor."""
    if weights not in WEIGHT_CHOICES:
        raise ValueError(f'weights must be one of {WEIGHT_CHOICES}, got {weights!r}')
    if not isinstance(checkpoint, dict):
        raise CheckpointError(f'{source} is not a checkpoint: it holds a '
                              f'{type(checkpoint).__name__}, not a dict of weights')
    main_entry = next((k for k in ('state_dict', 'model') if isinstance(checkpoint.get(k), dict)),
                      None)
    main = _tensors(checkpoint[main_entry] if main_entry else checkpoint)
    if not main:
        raise CheckpointError(f'{source} holds no weights (no tensors at the top level or under '
                              "'state_dict'/'model')")
    main, had_prefix = strip_ddp_prefix(main)
    main, ema = _split_embedded_ema(main)
    ema = ema or _separate_ema(checkpoint, main_entry)
    meta = checkpoint.get('meta') if isinstance(checkpoint.get('meta'), dict) else {}
    layout = (f"Runner-style file (weights under '{main_entry}')" if main_entry
              else 'flat state dict') + (", 'module.' keys" if had_prefix else '')
    main_name = f"'{main_entry}'" if main_entry else 'the flat weights'

    if weights == 'auto' or ema is None and weights == 'raw':
        state, selected = main, main_name
    elif ema is None:
        raise CheckpointError(f'{source} holds no EMA weights (looked for ema_state_dict, '
                              f'{", ".join(EMA_ENTRIES)} and EMA-prefixed keys)')
    elif (weights == 'ema') == ema.swapped:
        state = main
        selected = (f'{main_name} ({"EMA average" if ema.swapped else "raw weights"} '
                    f'beside {ema.source})')
    else:
        state = ema.state
        selected = f'{ema.source} ({"raw weights" if ema.swapped else "EMA average"})'
    bad = first_non_finite(state)
    if bad is not None:
        raise NonFiniteError(f'{source}: {bad!r} holds NaN or infinity; refusing weights that '
                             'cannot give a meaningful result')
    top_level = set(checkpoint) if main_entry else {k for k, v in checkpoint.items()
                                                     if not isinstance(v, Tensor)}
    dropped = sorted(str(k) for k in top_level - {main_entry, 'meta'})
    return Weights(state=dict(state), meta=copy.deepcopy(meta), layout=layout,
                           selected=selected, had_module_prefix=had_prefix, dropped_entries=dropped)


def load_checkpoint_file(path: str) -> dict:
    """The content of a weights file: ``.safetensors`` as a flat dict, anything else through
    :func:`safe_load`."""
    path = os.fspath(path)
    if not path.endswith('.safetensors'):
        return safe_load(path)
    check_checkpoint_file(path)
    from safetensors import SafetensorError  # optional dependency (timm installs it)
    from safetensors.torch import load_file
    try:
        return load_file(path)
    except (SafetensorError, OSError) as exc:
        raise CheckpointError(f'cannot read {path} as safetensors: {exc}') from exc


def read_weights(path: str, weights: str = 'auto') -> Weights:
    """Read ``path`` safely and pick its weights (see the module docstring)."""
    return select_weights(load_checkpoint_file(path), weights, source=path)
