from .randomize import randomize_bn_
from .reparameterize import (
                             check_fusable,
                             count_parameters,
                             fuse_repvgg_blocks,
                             fused_state_dict,
                             is_reparam_block,
                             iter_repvgg_blocks,
                             training_time_blocks,
)

__all__ = ['check_fusable', 'count_parameters', 'fuse_repvgg_blocks', 'fused_state_dict',
           'is_reparam_block', 'iter_repvgg_blocks', 'randomize_bn_', 'training_time_blocks']
