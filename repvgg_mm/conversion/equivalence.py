"""Evidence that a fused model still is the training-time model.

Three checks: the raw network outputs on a deterministic sample (eval mode), the output of every
fused block given the very input its training-time twin saw (which names the first diverging
block), and bit-identity of every tensor outside the fused blocks.

Errors are relative: ``max|reference - fused| / max|reference|`` per output tensor, the largest over
all tensors. ``DEFAULT_TOLERANCE`` (1e-4) is far above float32 re-association noise (about 1e-6 for
the deepest RepVGGs) and far below any real fusing bug (1e-2 and more).
"""
import copy
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import torch
from mmengine.model import BaseModel, revert_sync_batchnorm
from torch import Tensor, nn

from repvgg_mm.models.utils import detection_samples, is_two_stage, iter_repvgg_blocks
from repvgg_mm.utils.compare import Difference, outputs_difference, tensor_difference
from repvgg_mm.utils.errors import ConversionError

DEFAULT_TOLERANCE = 1e-4
PROBE_SIZE = 16  # spatial size of the probe input for blocks the sample does not reach


@dataclass
class BlockCheck:
    """One call of a fused block compared with its training-time twin (``call=-1``: probed
    alone)."""
    name: str
    call: int
    diff: Difference


@dataclass
class EquivalenceReport:
    outputs: Difference
    blocks: List[BlockCheck]
    tolerance: float
    sample_shape: Tuple[int, ...]

    def first_diverging_block(self) -> Optional[BlockCheck]:
        """The first block (in execution order) above the tolerance, if any."""
        return next((b for b in self.blocks if b.diff.max_rel > self.tolerance), None)

    def worst_block(self) -> Optional[BlockCheck]:
        return max(self.blocks, key=lambda b: b.diff.max_rel, default=None)

    @property
    def ok(self) -> bool:
        return self.outputs.max_rel <= self.tolerance and self.first_diverging_block() is None

    def failure(self) -> str:
        """One line saying where the fused model deviates ('' when it does not)."""
        if self.ok:
            return ''
        block = self.first_diverging_block()
        net = (f'network outputs differ by max rel {self.outputs.max_rel:.3g} '
               f'(abs {self.outputs.max_abs:.3g})')
        if block is not None:
            where = 'probed alone' if block.call < 0 else f'call {block.call}'
            return (f'fused model deviates beyond tolerance {self.tolerance:g}: first diverging '
                    f'block {block.name!r} ({where}) differs by max rel {block.diff.max_rel:.3g} '
                    f'(abs {block.diff.max_abs:.3g}); {net}')
        worst = self.worst_block()
        worst_text = (f'; largest block error {worst.diff.max_rel:.3g} in {worst.name!r}'
                      if worst else '')
        return (f'fused model deviates beyond tolerance {self.tolerance:g}: {net}, although every '
                f'RepVGG block agrees{worst_text}; the difference arises outside the blocks')


def input_channels(model: nn.Module) -> int:
    """Channels the network expects: those of its first convolution."""
    for module in model.modules():
        if isinstance(module, nn.modules.conv._ConvNd):
            return module.in_channels
    raise ConversionError('cannot tell the input channels: the model has no convolution')


def make_sample(model: nn.Module, spatial_shape: Sequence[int] = (128, 128), batch: int = 1,
                seed: int = 0) -> Tensor:
    """A deterministic standard-normal batch ``(batch, C, H, W)`` shaped for ``model``."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(batch, input_channels(model), *spatial_shape, generator=generator)


def network_outputs(model: nn.Module, inputs: Tensor, proposals=None) -> list:
    """Raw outputs of a network, no post-processing.

    OpenMMLab models: ``extract_feat`` plus ``forward(mode='tensor')``. Two-stage detectors:
    features,
    RPN outputs and RoI-head outputs for the given ``proposals`` (shared by both models, so that no
    NMS decision can differ between them).
    """
    if is_two_stage(model):
        samples = detection_samples(inputs)
        feats = model.extract_feat(inputs)
        return [feats, model.rpn_head(feats), model.roi_head.forward(feats, proposals, samples)]
    outputs = []
    if callable(getattr(model, 'extract_feat', None)):
        outputs.append(model.extract_feat(inputs))
    outputs.append(model(inputs, mode='tensor') if isinstance(model, BaseModel) else model(inputs))
    return outputs


def eval_copy(model: nn.Module) -> nn.Module:
    """A deep copy in eval mode with SyncBN turned into plain BN (runs on CPU, no process group)."""
    return revert_sync_batchnorm(copy.deepcopy(model)).eval()


class _BlockRecorder:
    """Records ``(name, input, output)`` of every RepVGG block call while active."""

    def __init__(self, model: nn.Module):
        self.calls: List[Tuple[str, Tensor, Tensor]] = []
        self.blocks: Dict[str, nn.Module] = dict(iter_repvgg_blocks(model))
        self._handles = [block.register_forward_hook(self._hook(name))
                         for name, block in self.blocks.items()]

    def _hook(self, name):
        def record(module, args, output):
            self.calls.append((name, args[0].detach(), output.detach()))
        return record

    def remove(self):
        for handle in self._handles:
            handle.remove()


@torch.no_grad()
def check_equivalence(train_model: nn.Module, deploy_model: nn.Module, sample: Tensor,
                      tolerance: float = DEFAULT_TOLERANCE, seed: int = 0) -> EquivalenceReport:
    """Compare a training-time model and its fused twin (neither is modified)."""
    reference, fused = eval_copy(train_model), eval_copy(deploy_model)
    proposals = None
    if is_two_stage(reference):
        proposals = reference.rpn_head.predict(reference.extract_feat(sample),
                                               detection_samples(sample), rescale=False)
    recorder = _BlockRecorder(reference)
    try:
        ref_out = network_outputs(reference, sample, proposals)
    finally:
        recorder.remove()

    # Blocks first, in execution order: a NaN or a divergence is named where it starts.
    fused_blocks = dict(iter_repvgg_blocks(fused))
    checks, calls_per_block = [], {}
    for name, block_in, block_out in recorder.calls:
        call = calls_per_block[name] = calls_per_block.get(name, -1) + 1
        checks.append(BlockCheck(name, call, tensor_difference(
            block_out, fused_blocks[name](block_in), f'output of RepVGG block {name!r}')))
    generator = torch.Generator().manual_seed(seed)
    for name, block in recorder.blocks.items():
        if name not in calls_per_block:  # e.g. an auxiliary head that inference skips
            probe = torch.randn(1, block.in_channels, PROBE_SIZE, PROBE_SIZE, generator=generator)
            checks.append(BlockCheck(name, -1, tensor_difference(
                block(probe), fused_blocks[name](probe), f'output of RepVGG block {name!r}')))
    outputs = outputs_difference(ref_out, network_outputs(fused, sample, proposals),
                                 'network output')
    return EquivalenceReport(outputs, checks, tolerance, tuple(sample.shape))


def assert_equivalent(report: EquivalenceReport) -> None:
    """Raise :class:`ConversionError` naming the first diverging block unless ``report.ok``."""
    if not report.ok:
        raise ConversionError(report.failure())


def check_untouched_tensors(source: Dict[str, Tensor], converted: Dict[str, Tensor],
                            fused_blocks: Sequence[str]) -> int:
    """Prove that only the fused blocks changed: every other tensor is bit-identical, no key is
    lost.

    Returns the number of tensors compared. ``source``: the checkpoint's weights; ``converted``: the
    deploy model's state dict; ``fused_blocks``: module names of the fused blocks.
    """
    prefixes = tuple(f'{name}.' if name else '' for name in fused_blocks)

    def in_block(key):
        return key.startswith(prefixes)

    stray = sorted(k for k in set(source) ^ set(converted) if not in_block(k))
    if stray:
        raise ConversionError(f'conversion added or dropped {len(stray)} tensors outside the fused '
                              f'blocks, e.g. {stray[0]!r}')
    shared = sorted(set(source) & set(converted))
    changed = [k for k in shared if source[k].shape != converted[k].shape
               or not torch.equal(source[k].to(converted[k].dtype), converted[k])]
    if changed:
        raise ConversionError(f'{len(changed)} tensors outside the fused branches changed, '
                              f'e.g. {changed[0]!r}')
    return len(shared)
