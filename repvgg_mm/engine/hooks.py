"""Runner hooks: fuse RepVGG blocks before testing."""
from mmengine.hooks import Hook

from repvgg_mm.models.utils import check_fusable, fuse_repvgg_blocks, iter_repvgg_blocks
from repvgg_mm.registry import HOOKS
from repvgg_mm.utils.errors import UserError

from .runner import unwrap_model


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
            raise UserError('RepVGGFuseHook: the model has no RepVGG blocks to fuse')
        check_fusable(model)  # a GroupNorm/LayerNorm block: one line naming it
        fuse_repvgg_blocks(model, do_copy=False)
        runner.logger.info(f'fused {num_blocks} RepVGG blocks into single 3x3 convs for testing')
