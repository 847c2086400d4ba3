"""Checkpoint IO: safe loading, RepVGG key layouts, the one weights reader, strict loading.

Importing this registers the ``Pretrained`` weight initializer of the ``repvgg_mm`` scope.
"""
from .layouts import (
    LAYOUTS,
    ParsedState,
    add_ddp_prefix,
    convert_state_dict,
    detect_layout,
    export_state_dict,
    find_fused_keys,
    read_state_dict,
    strip_ddp_prefix,
)
from .loading import RepVGGPretrainedInit, load_pretrained, load_state_dict_strict
from .reader import WEIGHT_CHOICES, Weights, load_checkpoint_file, read_weights, select_weights
from .safe_load import check_checkpoint_file, check_checkpoints, safe_load

__all__ = ['LAYOUTS', 'ParsedState', 'RepVGGPretrainedInit', 'WEIGHT_CHOICES', 'Weights',
           'add_ddp_prefix', 'check_checkpoint_file', 'check_checkpoints', 'convert_state_dict',
           'detect_layout', 'export_state_dict', 'find_fused_keys', 'load_checkpoint_file',
           'load_pretrained', 'load_state_dict_strict', 'read_state_dict', 'read_weights',
           'safe_load', 'select_weights', 'strip_ddp_prefix']
