"""Runner components of repvgg_mm; importing this registers them in the ``repvgg_mm`` scope."""
from .hooks import RepVGGFuseHook
from .launch import build_runner, test, train
from .runner import RepVGGRunner, unwrap_model

__all__ = ['RepVGGFuseHook', 'RepVGGRunner', 'build_runner', 'test', 'train', 'unwrap_model']
