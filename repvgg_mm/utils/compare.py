"""Numeric comparison of tensors and model outputs (fused vs training-time, ONNX vs PyTorch).

Errors are relative: ``max|reference - other| / max|reference|``, computed in float64.
"""
from dataclasses import dataclass
from typing import List

from torch import Tensor

from .errors import UserError


@dataclass
class Difference:
    """Largest absolute and relative difference between two sets of tensors."""
    max_abs: float = 0.0
    max_rel: float = 0.0

    def merge(self, other: 'Difference') -> 'Difference':
        return Difference(max(self.max_abs, other.max_abs), max(self.max_rel, other.max_rel))


def tensor_difference(reference: Tensor, other: Tensor) -> Difference:
    """Max abs and relative difference of two tensors of one shape (empty tensors agree)."""
    if reference.shape != other.shape:
        raise UserError(f'output shapes differ: {tuple(reference.shape)} vs {tuple(other.shape)}')
    if reference.numel() == 0:
        return Difference()
    reference, other = reference.double(), other.double()
    diff = (reference - other).abs().max().item()
    scale = reference.abs().max().item()
    return Difference(diff, diff / scale if scale > 0 else diff)


def max_relative_error(reference: Tensor, other: Tensor) -> float:
    """``max|reference - other| / max|reference|`` (0 when both are zero)."""
    return tensor_difference(reference, other).max_rel


def flatten_tensors(output) -> List[Tensor]:
    """Tensors of a (nested) tuple/list/dict output, in order."""
    if isinstance(output, Tensor):
        return [output]
    if isinstance(output, (list, tuple)):
        return [t for item in output for t in flatten_tensors(item)]
    if isinstance(output, dict):
        return [t for item in output.values() for t in flatten_tensors(item)]
    return []


def outputs_difference(reference, other) -> Difference:
    """The largest difference over all tensors of two (nested) outputs of the same structure."""
    ref, oth = flatten_tensors(reference), flatten_tensors(other)
    if len(ref) != len(oth) or not ref:
        raise UserError(f'the models return {len(ref)} and {len(oth)} tensors')
    total = Difference()
    for a, b in zip(ref, oth):
        total = total.merge(tensor_difference(a, b))
    return total
