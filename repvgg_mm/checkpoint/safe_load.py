"""Safe checkpoint loading: torch's weights-only unpickler, always, whatever the environment says;
and the up-front checks of checkpoint files (one given path, or every one a config names).

``weights_only=True`` is passed explicitly, which ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD`` does not
override (that variable only changes torch's default). Only tensors, plain containers and the
allow-listed types of :mod:`repvgg_mm.utils.safe_globals` (mmengine's Runner files) load; anything
else, e.g. a pickled function call, refuses the file as untrusted. Every failure is a one-line
:class:`~repvgg_mm.utils.errors.CheckpointError` saying what is wrong with the file.
"""
import os
import pickle
import re
import zipfile
from typing import Any, Iterator, Tuple

import torch

from repvgg_mm.utils.errors import CheckpointError, MissingInputError
from repvgg_mm.utils.safe_globals import register_safe_globals

_ZIP_MAGIC = b'PK\x03\x04'
_PICKLE_PROTOCOL_BYTE = 0x80
# torch's refusal starts by suggesting weights_only=False (exactly what must not be done with a
# stranger's file); what was blocked follows in a later paragraph.
_SUGGESTION = re.compile(r'weights.only load failed|re-running|weights_only|in pytorch 2\.6', re.I)


def check_checkpoint_file(path: str) -> None:
    """Refuse, in one line, a path that cannot hold a checkpoint (missing, a folder, unreadable,
    empty, not a torch file or an incomplete zip archive); cheap, so tools call it before their
    long work. ``.safetensors`` files get the file checks only."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise CheckpointError(f'checkpoint not found: {path}')
    if os.path.isdir(path):
        raise CheckpointError(f'checkpoint {path} is a folder, not a file')
    if not os.access(path, os.R_OK):
        raise CheckpointError(f'checkpoint {path} is not readable (permission denied)')
    if os.path.getsize(path) == 0:
        raise CheckpointError(f'checkpoint {path} is empty')
    if path.endswith('.safetensors'):
        return
    with open(path, 'rb') as handle:
        head = handle.read(4)
    if head != _ZIP_MAGIC and head[0] != _PICKLE_PROTOCOL_BYTE:
        raise CheckpointError(f'{path} is not a PyTorch checkpoint (neither a zip archive nor a '
                              'pickle)')
    if head == _ZIP_MAGIC and not zipfile.is_zipfile(path):
        raise CheckpointError(f'{path} is truncated or corrupt (an incomplete zip archive)')


def _pretrained_checkpoints(node, key: str) -> Iterator[Tuple[str, str]]:
    """``(path, config key)`` of every ``init_cfg`` of type Pretrained under ``node``."""
    if isinstance(node, dict):
        if node.get('type') == 'Pretrained' and isinstance(node.get('checkpoint'), str):
            yield node['checkpoint'], f'{key}.checkpoint'
        for name, value in node.items():
            yield from _pretrained_checkpoints(value, f'{key}.{name}')
    elif isinstance(node, (list, tuple)):
        for i, value in enumerate(node):
            yield from _pretrained_checkpoints(value, f'{key}.{i}')


def _check_config_file(path: str, key: str, fix: str) -> None:
    """:func:`check_checkpoint_file`'s message, plus the config key and the option that fix it
    (:class:`MissingInputError` for a missing file)."""
    try:
        check_checkpoint_file(path)
    except CheckpointError as exc:
        kind = CheckpointError if os.path.exists(path) else MissingInputError
        raise kind(f'{exc} (from {key}); pass --cfg-options {fix}') from exc


def check_checkpoints(cfg) -> None:
    """Refuse, in one line naming the config key and the fix, a local pretrained checkpoint
    (``init_cfg`` of type Pretrained) or ``load_from`` that cannot be a checkpoint; URLs are left
    to the download."""
    for path, key in _pretrained_checkpoints(cfg.get('model'), 'model'):
        if '://' not in path:
            owner = key.split('.init_cfg')[0]
            _check_config_file(path, key, f'{key}=PATH, or {owner}.init_cfg=None to train from '
                                          'scratch')
    load_from = cfg.get('load_from')
    if isinstance(load_from, str) and '://' not in load_from:
        _check_config_file(load_from, 'load_from', 'load_from=PATH or load_from=None')


def _reason(exc: BaseException) -> str:
    """The part of an unpickling error that says what was wrong, in one line."""
    paragraphs = [' '.join(p.split()) for p in str(exc).split('\n\n') if p.strip()]
    useful = [p for p in paragraphs
              if not _SUGGESTION.search(p) and not p.startswith('Check the documentation')]
    text = useful[0] if useful else (paragraphs[0] if paragraphs else '')
    return f'{type(exc).__name__}: {text}' if text else type(exc).__name__


def safe_load(path: str, map_location: Any = 'cpu') -> Any:
    """Load a checkpoint with torch's weights-only unpickler; raise :class:`CheckpointError` on any
    failure (missing, empty, not a checkpoint, truncated, untrusted content)."""
    register_safe_globals()
    path = os.fspath(path)
    check_checkpoint_file(path)
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        raise CheckpointError(f'refusing {path} as untrusted: it holds more than weights and '
                              f'allow-listed types ({_reason(exc)})') from exc
    except Exception as exc:  # truncated archives, corrupt records, wrong formats
        raise CheckpointError(f'{path} is truncated or corrupt ({_reason(exc)})') from exc
