"""RepVGG block: 3x3 conv-BN + 1x1 conv-BN + identity BN at training time, one conv deployed."""
from typing import Iterator, Optional

import torch
import torch.nn.functional as F
import torch.utils.checkpoint as cp
from mmcv.cnn import ConvModule, build_activation_layer, build_conv_layer, build_norm_layer
from mmengine.model import BaseModule
from torch import Tensor, nn

from repvgg_mm.registry import MODELS

from ..utils.weight_init import init_weights_cfg_last
from .fuse import (
    KernelBias,
    bn_scale_shift,
    check_fusable_norm,
    fuse_identity_bn,
    fuse_kernel_bn,
    sum_kernel_bias,
)
from .online_fusion import check_online_fusion_mode, online_fusion_active, online_kernel_bias
from .se_layer import SqueezeExcitation


@MODELS.register_module()
class RepVGGBlock(BaseModule):
    """A re-parameterisable VGG block.

    Training time: ``act(se(bn(conv3x3(x)) + bn(conv1x1(x)) + bn(x)))``, the identity branch only
    when ``in_channels == out_channels``, ``stride == 1`` and ``padding == dilation``. After
    :meth:`switch_to_deploy` (or with ``deploy=True``) the three branches are one ``branch_fused``
    conv.

    Args:
        in_channels / out_channels: channels of input and output.
        stride, dilation, groups: of the 3x3 conv (the 1x1 shares stride and groups).
        padding: of the 3x3 conv; must equal ``dilation`` (the default) so the branches align.
        use_se / se_ratio: squeeze-excitation before the activation (RepVGG-D2se), hidden
            channels ``out_channels // se_ratio``.
        deploy: build the fused single-conv structure directly.
        conv_cfg / norm_cfg / act_cfg: mmcv layer configs. Fusing needs a BatchNorm-like norm.
        with_cp: gradient checkpointing of the block.
        online_fusion: ``'auto'`` (default): while every norm of the block is in eval mode
            (frozen BN) and autograd records, the branches run as the one equivalent conv, with
            the same outputs and gradients (see :mod:`~repvgg_mm.models.blocks.online_fusion`);
            ``'off'``: always the three branches.
        init_cfg: applied by :meth:`init_weights` after the default init, which makes every conv
            (branches, fused conv, SE) Kaiming-normal (fan_out, ReLU gain, bias 0) as mmcv's
            ConvModule does, and every BN weight 1 and bias 0.
    """

    kernel_size = 3

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1,
                 padding: Optional[int] = None, dilation: int = 1, groups: int = 1,
                 use_se: bool = False, se_ratio: int = 16, deploy: bool = False, conv_cfg=None,
                 norm_cfg=dict(type='BN'), act_cfg=dict(type='ReLU'), with_cp: bool = False,
                 online_fusion: str = 'auto', init_cfg=None):
        super().__init__(init_cfg)
        self.in_channels, self.out_channels = in_channels, out_channels
        self.stride, self.dilation, self.groups = stride, dilation, groups
        self.padding = dilation if padding is None else padding
        if self.padding != dilation:
            raise ValueError(f'padding ({self.padding}) must equal dilation ({dilation}) so that '
                             'the 3x3, 1x1 and identity branches produce the same output size')
        self.conv_cfg, self.norm_cfg = conv_cfg, norm_cfg
        self.use_se, self.se_ratio = use_se, se_ratio
        self.with_cp = with_cp
        self.deploy = deploy
        self.online_fusion = check_online_fusion_mode(online_fusion)

        if deploy:
            self.branch_fused = self._build_fused_conv()
        else:
            self._build_branches()
        self.se = SqueezeExcitation(out_channels, se_ratio, conv_cfg) if use_se else nn.Identity()
        self.act = build_activation_layer(act_cfg) if act_cfg is not None else nn.Identity()

    @property
    def has_identity(self) -> bool:
        return self.in_channels == self.out_channels and self.stride == 1

    # The training-time modules that switch_to_deploy replaces by branch_fused.
    branch_names = ('branch_3x3', 'branch_1x1', 'branch_identity')

    def _build_branches(self) -> None:
        self.branch_3x3 = self._conv_branch(self.kernel_size, self.norm_cfg)
        self.branch_1x1 = self._conv_branch(1, self.norm_cfg)
        self.branch_identity = (build_norm_layer(self.norm_cfg, self.in_channels)[1]
                                if self.has_identity else None)

    def _conv_branch(self, kernel_size: int, norm_cfg) -> ConvModule:
        """A ``kernel_size`` conv (padded to the 3x3's output size, no bias), then ``norm_cfg``."""
        padding = self.padding if kernel_size == self.kernel_size else 0
        dilation = self.dilation if kernel_size == self.kernel_size else 1
        return ConvModule(self.in_channels, self.out_channels, kernel_size, stride=self.stride,
                          padding=padding, dilation=dilation, groups=self.groups, bias=False,
                          conv_cfg=self.conv_cfg, norm_cfg=norm_cfg, act_cfg=None)

    def _build_fused_conv(self) -> nn.Module:
        return build_conv_layer(
            self.conv_cfg, self.in_channels, self.out_channels, self.kernel_size,
            stride=self.stride, padding=self.padding, dilation=self.dilation, groups=self.groups,
            bias=True)

    def norm_layers(self) -> Iterator[nn.Module]:
        """The norm layers of the training-time branches."""
        if not self.deploy:
            yield from (self.branch_3x3.norm, self.branch_1x1.norm)
            if self.branch_identity is not None:
                yield self.branch_identity

    def branch_convs(self) -> Iterator[nn.Module]:
        """The convolutions of the training-time branches."""
        if not self.deploy:
            yield from (self.branch_3x3.conv, self.branch_1x1.conv)

    def _branch_sum(self, x: Tensor) -> Tensor:
        if self.deploy:
            return self.branch_fused(x)
        if online_fusion_active(self):
            kernel, bias = online_kernel_bias(self)
            return F.conv2d(x, kernel, bias, self.stride, self.padding, self.dilation, self.groups)
        return self._train_branches(x)

    def _train_branches(self, x: Tensor) -> Tensor:
        out = self.branch_3x3(x) + self.branch_1x1(x)
        if self.branch_identity is not None:
            out = out + self.branch_identity(x)
        return out

    def _output(self, x: Tensor) -> Tensor:
        """The step shared by training and deploy mode: branches (or fused conv), SE, activation."""
        return self.act(self.se(self._branch_sum(x)))

    def forward(self, x: Tensor) -> Tensor:
        if self.with_cp and x.requires_grad:
            return cp.checkpoint(self._output, x, use_reentrant=False)
        return self._output(x)

    def get_equivalent_kernel_bias(self) -> KernelBias:
        """Kernel and bias of one 3x3 conv equal to the branches (eval-mode BN); differentiable."""
        if self.deploy:
            return self.branch_fused.weight, self.branch_fused.bias
        # The 1x1 and identity terms are summed at 1x1 and padded once: while training fused
        # online, fewer kernel-sized tensors are made and kept for backward.
        parts = [fuse_kernel_bn(self.branch_3x3.conv.weight, self.branch_3x3.norm),
                 fuse_kernel_bn(self.branch_1x1.conv.weight, self.branch_1x1.norm)]
        if self.branch_identity is not None:
            parts.append(fuse_identity_bn(self.branch_identity, self.groups, 1))
        return sum_kernel_bias(parts)

    def get_custom_L2(self) -> Tensor:  # noqa: N802 (name of the original RepVGG API)
        """The paper's L2 on the equivalent kernel (a weight-decay replacement); differentiable."""
        if self.deploy:
            raise RuntimeError('get_custom_L2 needs the training-time branches')
        k3, k1 = self.branch_3x3.conv.weight, self.branch_1x1.conv.weight
        scale3 = bn_scale_shift(self.branch_3x3.norm)[0].detach().reshape(-1, 1, 1, 1)
        scale1 = bn_scale_shift(self.branch_1x1.norm)[0].detach().reshape(-1, 1, 1, 1)
        c = self.kernel_size // 2
        centre3 = k3[:, :, c:c + 1, c:c + 1]
        ring = (k3 ** 2).sum() - (centre3 ** 2).sum()
        centre = ((centre3 * scale3 + k1 * scale1) ** 2 / (scale3 ** 2 + scale1 ** 2)).sum()
        return ring + centre

    def check_fusable(self) -> None:
        """Raise a clear error if a norm layer of this block cannot be folded into a conv."""
        for norm in self.norm_layers():
            check_fusable_norm(norm)

    def init_weights(self) -> None:
        init_weights_cfg_last(self)

    def switch_to_deploy(self) -> None:
        """Replace the branches by one conv with the same output. Idempotent.

        The fused conv is frozen (``requires_grad=False``) when every parameter of the branches it
        replaces was (e.g. a frozen stage), trainable otherwise.
        """
        if self.deploy:
            return
        self.check_fusable()
        branches = [getattr(self, name) for name in self.branch_names]
        frozen = not any(p.requires_grad for branch in branches if branch is not None
                         for p in branch.parameters())
        with torch.no_grad():
            kernel, bias = self.get_equivalent_kernel_bias()
            fused = self._build_fused_conv().to(device=kernel.device, dtype=kernel.dtype)
            fused.weight.copy_(kernel)
            fused.bias.copy_(bias)
        fused.requires_grad_(not frozen)
        fused.train(self.training)
        for name in self.branch_names:
            delattr(self, name)
        self.branch_fused = fused
        self.deploy = True
