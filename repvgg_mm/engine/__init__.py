"""Runner components of repvgg_mm; importing this registers them in the ``repvgg_mm`` scope."""
from .hooks import RepVGGFuseHook, StrictCheckpointHook, unwrap_model

__all__ = ['RepVGGFuseHook', 'StrictCheckpointHook', 'unwrap_model']
