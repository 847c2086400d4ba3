"""Linear-scaling RepVGG block: three linear branches and one BN, trained as one conv + one BN.

The idea of OREPA (Hu et al., "Online Convolutional Re-parameterization", CVPR 2022) and of
RepOptimizer's constant-scale blocks (Ding et al., ICLR 2023): without a BN inside the branches the
branch sum is linear in the input, so it IS one 3x3 convolution in every mode, BN training
included, and the block costs about what the plain (fused) network costs to train.
"""
from typing import Dict, Iterator, List, Optional

import torch
from mmcv.cnn import build_conv_layer, build_norm_layer
from mmengine.model import BaseModule
from torch import Tensor, nn

from repvgg_mm.registry import MODELS

from .from_repvgg import branch_sum_statistics, se_state, shift_bn_state, source_batch_counter
from .fuse import KernelBias, bn_scale_shift, fuse_kernel_bn, identity_kernel, pad_kernel_to
from .kernel_conv import conv2d_recomputed_kernel
from .repvgg_block import RepVGGBlock


class ChannelScale(BaseModule):
    """``x * weight`` with a learnable per-channel ``weight`` that starts (and re-initialises, in
    :meth:`init_weights`) at ``init_value``."""

    def __init__(self, channels: int, init_value: float = 1.0):
        super().__init__()
        self.init_value = float(init_value)
        self.weight = nn.Parameter(torch.full((channels, ), self.init_value))

    def per_channel(self) -> Tensor:
        """The scale shaped to multiply a conv kernel (out channels first)."""
        return self.weight.reshape(-1, 1, 1, 1)

    def forward(self, x: Tensor) -> Tensor:
        return x * self.weight.reshape(1, -1, 1, 1)

    def init_weights(self) -> None:
        with torch.no_grad():
            self.weight.fill_(self.init_value)
        self._is_init = True


@MODELS.register_module()
class LinearRepVGGBlock(RepVGGBlock):
    """``act(se(bn(s3 * conv3x3(x) + s1 * conv1x1(x) + s_id * x)))`` at training time.

    ``s3``, ``s1``, ``s_id`` are learnable per-output-channel scales (:class:`ChannelScale`:
    ``scale_3x3``, ``scale_1x1``, ``scale_identity``); the branches have no BN and no bias, the one
    BN (``post_norm``) follows their sum and precedes SE (as in :class:`QARepVGGBlock`), and the
    identity term exists where RepVGG's identity branch does. The forward pass is ONE convolution
    with the kernel ``s3*W3 + pad(s1*W1 + s_id*I)`` (differentiable in the weights and scales;
    recomputed in backward rather than kept, see
    :func:`~repvgg_mm.models.blocks.kernel_conv.conv2d_recomputed_kernel`) followed by
    ``post_norm``, in every mode: BN
    training, eval, and frozen BN, where online fusion also folds ``post_norm`` into that conv
    (see :class:`RepVGGBlock`'s ``online_fusion``). Only a conv type other than ``nn.Conv2d``
    (``conv_cfg``) computes the branches one by one. :meth:`switch_to_deploy` fuses it into the
    ``branch_fused`` conv of :class:`RepVGGBlock`: same keys and shapes, so the fused weights load
    into ``RepVGG(deploy=True)`` of the same arch.

    Init (from scratch): ``W3`` and ``W1`` Kaiming-normal as every RepVGG conv, ``post_norm``
    weight 1 / bias 0, and every scale, ``s_id`` included, 1: the block starts as the BN of the
    plain branch sum, each branch weighted as RepVGG's per-branch BNs weigh them at init (all 1).
    From a RepVGG checkpoint (:meth:`state_from_repvgg`): ``W3``, ``W1`` as they are, each scale
    the eval-mode scale ``gamma / sqrt(var + eps)`` of the branch's BN, and ``post_norm`` computing
    the sum of the branch BNs' shifts (see :mod:`~repvgg_mm.models.blocks.from_repvgg`), so the
    block computes the RepVGG block's function exactly in eval mode.

    The paper's custom L2 is not defined for this block (use ordinary weight decay; the scales,
    like BN weights, are usually left without decay). Arguments as :class:`RepVGGBlock`.
    """

    branch_names = ('conv_3x3', 'conv_1x1', 'scale_3x3', 'scale_1x1', 'scale_identity',
                    'post_norm')

    def _build_branches(self) -> None:
        self.conv_3x3 = self._plain_conv(self.kernel_size)
        self.conv_1x1 = self._plain_conv(1)
        self.scale_3x3 = ChannelScale(self.out_channels)
        self.scale_1x1 = ChannelScale(self.out_channels)
        self.scale_identity = ChannelScale(self.out_channels) if self.has_identity else None
        self.post_norm = build_norm_layer(self.norm_cfg, self.out_channels)[1]

    def _plain_conv(self, kernel_size: int) -> nn.Module:
        """A bias-free ``kernel_size`` conv aligned with the 3x3 (the 1x1: no padding/dilation)."""
        full = kernel_size == self.kernel_size
        return build_conv_layer(
            self.conv_cfg, self.in_channels, self.out_channels, kernel_size, stride=self.stride,
            padding=self.padding if full else 0, dilation=self.dilation if full else 1,
            groups=self.groups, bias=False)

    def norm_layers(self) -> Iterator[nn.Module]:
        if not self.deploy:
            yield self.post_norm

    def branch_convs(self) -> Iterator[nn.Module]:
        if not self.deploy:
            yield from (self.conv_3x3, self.conv_1x1)

    def kernel_inputs(self) -> List[Tensor]:
        """``W3, W1, s3, s1`` (and ``s_id``): the tensors :meth:`kernel_from` combines."""
        scales = [self.scale_3x3, self.scale_1x1] + (
            [self.scale_identity] if self.scale_identity is not None else [])
        return [self.conv_3x3.weight, self.conv_1x1.weight, *(s.weight for s in scales)]

    def kernel_from(self, w3: Tensor, w1: Tensor, s3: Tensor, s1: Tensor,
                    s_id: Optional[Tensor] = None) -> Tensor:
        """``s3*W3 + pad(s1*W1 + s_id*I)`` (scales per output channel); the 1x1 terms are summed
        at 1x1 and padded once."""
        centre = w1 * s1.reshape(-1, 1, 1, 1)
        if s_id is not None:
            identity = identity_kernel(self.in_channels, self.groups, 1, centre.dtype,
                                       centre.device)
            centre = centre + identity * s_id.reshape(-1, 1, 1, 1)
        return w3 * s3.reshape(-1, 1, 1, 1) + pad_kernel_to(centre, self.kernel_size)

    def sum_kernel(self) -> Tensor:
        """The kernel of the branch sum; differentiable."""
        return self.kernel_from(*self.kernel_inputs())

    def _train_branches(self, x: Tensor) -> Tensor:
        if all(type(conv) is nn.Conv2d for conv in self.branch_convs()):
            # one conv; the kernel is recomputed in backward instead of kept
            out = conv2d_recomputed_kernel(x, self.kernel_from, self.kernel_inputs(),
                                           self.stride, self.padding, self.dilation, self.groups)
        else:  # a conv_cfg conv may not be a plain convolution with its weight
            out = self.scale_3x3(self.conv_3x3(x)) + self.scale_1x1(self.conv_1x1(x))
            if self.scale_identity is not None:
                out = out + self.scale_identity(x)
        return self.post_norm(out)

    def get_equivalent_kernel_bias(self) -> KernelBias:
        """Kernel and bias of one 3x3 conv equal to the block before SE (eval-mode BN);
        differentiable."""
        if self.deploy:
            return self.branch_fused.weight, self.branch_fused.bias
        return fuse_kernel_bn(self.sum_kernel(), self.post_norm)

    def get_custom_L2(self) -> Tensor:  # noqa: N802 (name of the original RepVGG API)
        raise NotImplementedError('the custom L2 of the RepVGG paper is defined for RepVGGBlock; '
                                  'train the linear-scaling block with ordinary weight decay')

    @torch.no_grad()
    def state_from_repvgg(self, source: RepVGGBlock) -> Dict[str, Tensor]:
        """This block's state dict computing ``source``'s function exactly in eval mode
        (``source``: a training-time :class:`RepVGGBlock` of the same geometry, e.g. from
        :func:`~repvgg_mm.models.blocks.from_repvgg.repvgg_source`)."""
        if self.deploy:
            raise ValueError('a deploy-mode block loads fused RepVGG weights as they are')
        if source.deploy:
            raise ValueError("fused RepVGG weights have no branches left to start the "
                             "linear-scaling block from: convert a training-time checkpoint, or "
                             "fine-tune the fused network with block_type='fused_bn'")
        state = {'conv_3x3.weight': source.branch_3x3.conv.weight,
                 'conv_1x1.weight': source.branch_1x1.conv.weight}
        shift = 0
        for name, norm in (('scale_3x3', source.branch_3x3.norm),
                           ('scale_1x1', source.branch_1x1.norm),
                           ('scale_identity', source.branch_identity)):
            if norm is not None:
                state[f'{name}.weight'], branch_shift = bn_scale_shift(norm)
                shift = shift + branch_shift
        mean, var = branch_sum_statistics(source)
        bn = shift_bn_state(mean, var, shift, self.post_norm.eps, source_batch_counter(source))
        state.update({f'post_norm.{k}': v for k, v in bn.items()})
        state.update(se_state(source))
        return state
