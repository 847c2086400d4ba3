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
from .qarepvgg_block import QARepVGGBlock
from .repvgg_block import RepVGGBlock
from .se_layer import SqueezeExcitation

__all__ = ['KernelBias', 'QARepVGGBlock', 'RepVGGBlock', 'SqueezeExcitation', 'bn_scale_shift',
           'check_fusable_norm', 'fuse_identity_bn', 'fuse_kernel_bn', 'identity_kernel',
           'pad_kernel_to', 'sum_kernel_bias']
