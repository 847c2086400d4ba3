"""A hook for the kill-and-resume test: every rank SIGKILLs itself right after one iteration.

The child training processes import it through ``custom_imports`` (the repository on
PYTHONPATH).
"""
import os
import signal

from mmengine.hooks import Hook
from mmengine.registry import HOOKS


@HOOKS.register_module()
class SigkillAfterIterHook(Hook):
    """Kill the process with SIGKILL (no clean-up) once ``iteration`` iterations are done."""

    priority = 'LOWEST'  # after the CheckpointHook and the LoggerHook of that iteration

    def __init__(self, iteration: int):
        self.iteration = iteration

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        if runner.iter + 1 == self.iteration:
            os.kill(os.getpid(), signal.SIGKILL)
