from .checkpoint_io import (WEIGHT_CHOICES, TrainingWeights, find_fused_keys, read_training_checkpoint,
                            select_training_weights)
from .conversion import ConversionResult, convert_whole_model, summary_lines, write_conversion
from .convert import fuse_repvgg_blocks, iter_repvgg_blocks
from .equivalence import (DEFAULT_TOLERANCE, EquivalenceReport, check_equivalence,
                          check_untouched_tensors)
from .errors import ConversionError
from .fuse import (bn_scale_shift, check_fusable_norm, fuse_identity_bn, fuse_kernel_bn, identity_kernel,
                   pad_kernel_to, sum_kernel_bias)
from .whole_model import fused_state_dict, repvgg_model_convert, whole_model_convert

__all__ = ['DEFAULT_TOLERANCE', 'WEIGHT_CHOICES', 'ConversionError', 'ConversionResult',
           'EquivalenceReport', 'TrainingWeights', 'bn_scale_shift', 'check_equivalence',
           'check_fusable_norm', 'check_untouched_tensors', 'convert_whole_model', 'find_fused_keys',
           'fuse_identity_bn', 'fuse_kernel_bn', 'fuse_repvgg_blocks', 'fused_state_dict',
           'identity_kernel', 'iter_repvgg_blocks', 'pad_kernel_to', 'read_training_checkpoint',
           'repvgg_model_convert', 'select_training_weights', 'sum_kernel_bias', 'summary_lines',
           'whole_model_convert', 'write_conversion']
