"""Runner hooks: fuse RepVGG blocks before testing, and check checkpoints strictly on load."""
from mmengine.hooks import Hook
from mmengine.model import BaseTTAModel, is_model_wrapper
from torch import nn

from repvgg_mm.checkpoint import extract_state_dict, load_state_dict_strict, strip_prefix
from repvgg_mm.registry import HOOKS
from repvgg_mm.reparam import fuse_repvgg_blocks, iter_repvgg_blocks


def unwrap_model(model: nn.Module) -> nn.Module:
    """The network inside DDP-like wrappers and test-time-augmentation models."""
    if is_model_wrapper(model):
        model = model.module
    if isinstance(model, BaseTTAModel):
        model = model.module
    return model


@HOOKS.register_module()
class RepVGGFuseHook(Hook):
    """Fuse every RepVGG block of the model (in place) right before the test loop.

    Used by ``tools/test.py --fuse`` to test the re-parameterised model from a training-time
    checkpoint; works for classifiers, segmentors and detectors alike.
    """

    priority = 'LOW'

    def before_test(self, runner) -> None:
        model = unwrap_model(runner.model)
        num_blocks = len(list(iter_repvgg_blocks(model)))
        if num_blocks == 0:
            raise RuntimeError('RepVGGFuseHook: the model has no RepVGG blocks to fuse')
        fuse_repvgg_blocks(model, do_copy=False)
        runner.logger.info(f'fused {num_blocks} RepVGG blocks into single 3x3 convs for testing')


@HOOKS.register_module()
class StrictCheckpointHook(Hook):
    """Load the checkpoint's weights strictly, failing with a readable key list on any mismatch.

    mmengine's ``Runner.load_checkpoint`` loads with ``strict=False`` and only logs mismatches;
    this hook runs first (``after_load_checkpoint``) and raises
    :class:`repvgg_mm.checkpoint.CheckpointError` instead.
    """

    priority = 'VERY_HIGH'

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        if runner._resume:  # resuming restores the runner's own files; mmengine checks those
            return
        model = unwrap_model(runner.model)
        state = strip_prefix(extract_state_dict(checkpoint), prefix=None)
        load_state_dict_strict(model, state, source='of the checkpoint')
