"""Atomic output files (see :mod:`repvgg_mm.fileio`)."""
from repvgg_mm.fileio import atomic_output, write_text_atomic

__all__ = ['atomic_output', 'write_text_atomic']
