from .fuse import (
    KernelBias,
    bn_scale_shift,
    check_fusable_norm,
    fuse_identity_bn,
    fuse_kernel_bn,
    identity_kernel,
    pad_kernel_to,
    sum_kernel_bias,
)
from .fused_bn_block import FusedBNBlock
from .linear_repvgg_block import ChannelScale, LinearRepVGGBlock
from .qarepvgg_block import QARepVGGBlock
from .repvgg_block import RepVGGBlock
from .se_layer import SqueezeExcitation

__all__ = ['ChannelScale', 'FusedBNBlock', 'KernelBias', 'LinearRepVGGBlock', 'QARepVGGBlock',
           'RepVGGBlock', 'SqueezeExcitation', 'bn_scale_shift', 'check_fusable_norm',
           'fuse_identity_bn', 'fuse_kernel_bn', 'identity_kernel', 'pad_kernel_to',
           'sum_kernel_bias']
