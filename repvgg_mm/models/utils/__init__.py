from .data_samples import detection_samples, is_two_stage
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
from .weight_init import default_init_, init_weights_cfg_last

__all__ = ['check_fusable', 'count_parameters', 'default_init_', 'detection_samples',
           'fuse_repvgg_blocks', 'fused_state_dict', 'init_weights_cfg_last', 'is_reparam_block',
           'is_two_stage', 'iter_repvgg_blocks', 'randomize_bn_', 'training_time_blocks']
