from .convert import fuse_repvgg_blocks, iter_repvgg_blocks
from .fuse import (bn_scale_shift, check_fusable_norm, fuse_identity_bn, fuse_kernel_bn, identity_kernel,
                   pad_kernel_to, sum_kernel_bias)

__all__ = ['bn_scale_shift', 'check_fusable_norm', 'fuse_identity_bn', 'fuse_kernel_bn',
           'fuse_repvgg_blocks', 'identity_kernel', 'iter_repvgg_blocks', 'pad_kernel_to',
           'sum_kernel_bias']
