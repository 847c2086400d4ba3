"""Safe (``weights_only``) checkpoint loading with the globals mmengine's Runner files need."""
import os
from typing import Any

import torch

from repvgg_mm.utils.errors import CheckpointError
from repvgg_mm.utils.safe_globals import register_safe_globals


def safe_load(path: str, map_location: Any = 'cpu') -> Any:
    """Load a checkpoint with torch's safe unpickler; raise :class:`CheckpointError` on any failure."""
    register_safe_globals()
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise CheckpointError(f'checkpoint not found: {path}')
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling error means "not a usable checkpoint"
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f'cannot load {path} as a checkpoint with safe loading: {reason}') from exc
