"""Layer-free helpers of repvgg_mm: errors, the CLI policy, atomic files, configs, comparison,
timing."""
from .errors import (
    EXIT_ERROR,
    CheckpointError,
    ConversionError,
    MissingInputError,
    UserError,
    error_line,
    first_line,
)

__all__ = ['CheckpointError', 'ConversionError', 'EXIT_ERROR', 'MissingInputError', 'UserError',
           'error_line', 'first_line']
