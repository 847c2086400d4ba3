"""Allow-list what mmengine's Runner checkpoints hold beyond tensors for torch's weights-only
loader.

Registered when ``repvgg_mm`` is imported, so that mmseg's/mmdet's stock scripts (which import us
through ``custom_imports``) can read Runner checkpoints under torch>=2.6 too.
"""
import pickle
from typing import Any

import numpy as np
import torch

_REGISTERED = False


def _numpy_globals():
    try:  # numpy >= 2; numpy 1.26 ships an alias package that must be imported explicitly
        from numpy._core import multiarray
    except ImportError:
        from numpy.core import multiarray
    globals_ = [multiarray._reconstruct, multiarray.scalar, np.ndarray, np.dtype]
    for name in ('float16', 'float32', 'float64', 'int8', 'int16', 'int32', 'int64', 'uint8',
                 'bool_'):
        globals_.append(type(np.dtype(getattr(np, name))))
    return globals_


def _history_buffer_getattr(obj: Any, name: str) -> Any:
    """Stand-in for ``builtins.getattr`` while unpickling: only HistoryBuffer's statistics methods.

    mmengine pickles ``HistoryBuffer._statistics_methods`` as ``getattr(HistoryBuffer, 'mean')``
    etc.;
    a general ``getattr`` would let a malicious file reach arbitrary methods, so nothing else
    passes.
    """
    from mmengine.logging import HistoryBuffer
    allowed = {'min', 'max', 'current', 'mean', *HistoryBuffer._statistics_methods}
    if obj is HistoryBuffer and name in allowed:
        return getattr(obj, name)
    raise pickle.UnpicklingError('refusing getattr('
                                 f'{getattr(obj, "__name__", type(obj).__name__)}, '
                                 f'{name!r}) in a checkpoint')


def register_safe_globals() -> None:
    """Allow-list what mmengine's Runner checkpoints hold beyond tensors (idempotent).

    torch>=2.6 loads with ``weights_only=True`` by default; mmengine 0.10.7 files carry its
    ``HistoryBuffer`` (with its statistics methods) and numpy arrays/scalars in
    ``meta['message_hub']``.
    """
    global _REGISTERED
    if _REGISTERED or not hasattr(torch.serialization, 'add_safe_globals'):
        return
    from mmengine.logging import HistoryBuffer
    torch.serialization.add_safe_globals(
        [HistoryBuffer, (_history_buffer_getattr, 'builtins.getattr'), *_numpy_globals()])
    _REGISTERED = True
