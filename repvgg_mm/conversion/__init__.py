"""Conversions with proof: whole models to their fused deploy form, and checkpoint layouts to
ours."""
from .arch_matching import check_fits_arch, infer_arch
from .checkpoint_file import ConversionSummary, convert_checkpoint_file
from .deploy_config import deploy_config
from .equivalence import (
    DEFAULT_TOLERANCE,
    EquivalenceReport,
    check_equivalence,
    check_untouched_tensors,
)
from .whole_model import (
    ConversionResult,
    convert_whole_model,
    repvgg_model_convert,
    summary_lines,
    whole_model_convert,
    write_conversion,
)

__all__ = ['ConversionResult', 'ConversionSummary', 'DEFAULT_TOLERANCE', 'EquivalenceReport',
           'check_equivalence', 'check_fits_arch', 'check_untouched_tensors',
           'convert_checkpoint_file', 'convert_whole_model', 'deploy_config', 'infer_arch',
           'repvgg_model_convert', 'summary_lines', 'whole_model_convert', 'write_conversion']
