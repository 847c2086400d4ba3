"""The fused RepVGG block with a BatchNorm inserted after its conv: fine-tuning at plain-VGG cost.

The original RepVGG FAQ's cheap option for fine-tuning with trainable BN: convert (fuse) the
pretrained model, insert a BN after every fused conv, train the plain network ("performance may be
slightly lower" than the three-branch block). Fusing again folds each BN back into its conv.
"""
from typing import Dict, Iterator

import torch
from mmcv.cnn import build_conv_layer, build_norm_layer
from torch import Tensor, nn

from repvgg_mm.registry import MODELS

from .from_repvgg import branch_sum_statistics, se_state, shift_bn_state, source_batch_counter
from .fuse import KernelBias, fuse_kernel_bn
from .repvgg_block import RepVGGBlock


@MODELS.register_module()
class FusedBNBlock(RepVGGBlock):
    """``act(se(bn(conv3x3(x))))`` at training time: one bias-free 3x3 ``conv`` and the BN
    ``post_norm``, the block RepVGG fuses into, with its BN kept trainable.

    :meth:`switch_to_deploy` folds the BN into the ``branch_fused`` conv of :class:`RepVGGBlock`
    (same keys and shapes), so the fused weights load into ``RepVGG(deploy=True)`` of the same
    arch; with frozen BN, online fusion runs the folded conv while training (see
    :class:`RepVGGBlock`'s ``online_fusion``).

    Init (from scratch): the conv Kaiming-normal, the BN weight 1 / bias 0, i.e. a plain VGG block.
    From RepVGG weights (:meth:`state_from_repvgg`, training-time or fused): ``conv`` holds the
    equivalent kernel of the source block and ``post_norm`` computes ``+ bias`` in eval mode, with
    running statistics estimated from the source's branch BNs (see
    :mod:`~repvgg_mm.models.blocks.from_repvgg`), so the block computes the source block's function
    exactly in eval mode. Arguments as :class:`RepVGGBlock`; there is no custom L2.
    """

    branch_names = ('conv', 'post_norm')

    def _build_branches(self) -> None:
        self.conv = build_conv_layer(
            self.conv_cfg, self.in_channels, self.out_channels, self.kernel_size,
            stride=self.stride, padding=self.padding, dilation=self.dilation, groups=self.groups,
            bias=False)
        self.post_norm = build_norm_layer(self.norm_cfg, self.out_channels)[1]

    def norm_layers(self) -> Iterator[nn.Module]:
        if not self.deploy:
            yield self.post_norm

    def branch_convs(self) -> Iterator[nn.Module]:
        if not self.deploy:
            yield self.conv

    def _train_branches(self, x: Tensor) -> Tensor:
        return self.post_norm(self.conv(x))

    def get_equivalent_kernel_bias(self) -> KernelBias:
        """Kernel and bias of one 3x3 conv equal to conv + BN (eval mode); differentiable."""
        if self.deploy:
            return self.branch_fused.weight, self.branch_fused.bias
        return fuse_kernel_bn(self.conv.weight, self.post_norm)

    def get_custom_L2(self) -> Tensor:  # noqa: N802 (name of the original RepVGG API)
        raise NotImplementedError('the custom L2 of the RepVGG paper is defined for RepVGGBlock; '
                                  'train the fused+BN block with ordinary weight decay')

    @torch.no_grad()
    def state_from_repvgg(self, source: RepVGGBlock) -> Dict[str, Tensor]:
        """This block's state dict computing ``source``'s function exactly in eval mode
        (``source``: a training-time or fused :class:`RepVGGBlock` of the same geometry, e.g. from
        :func:`~repvgg_mm.models.blocks.from_repvgg.repvgg_source`)."""
        if self.deploy:
            raise ValueError('a deploy-mode block loads fused RepVGG weights as they are')
        kernel, bias = source.get_equivalent_kernel_bias()
        mean, var = branch_sum_statistics(source)
        state = {'conv.weight': kernel}
        bn = shift_bn_state(mean, var, bias, self.post_norm.eps, source_batch_counter(source))
        state.update({f'post_norm.{k}': v for k, v in bn.items()})
        state.update(se_state(source))
        return state
