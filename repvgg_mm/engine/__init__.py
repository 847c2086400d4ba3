"""Runner components of repvgg_mm; importing this registers them in the ``repvgg_mm`` scope."""
from .hooks import RepVGGFuseHook
from .runner import RepVGGRunner, unwrap_model
from .train_test import build_runner, test, train

__all__ = ['RepVGGFuseHook', 'RepVGGRunner', 'build_runner', 'test', 'train', 'unwrap_model']
