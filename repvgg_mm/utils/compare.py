"""Numeric comparison of tensors and model outputs (fused vs training-time, ONNX vs PyTorch).

Errors are relative: ``max|reference - other| / max|reference|``, computed in float64. A NaN or an
infinity is never a small difference: every comparison refuses non-finite values with a
:class:`NonFiniteError` naming what held them.
"""
from dataclasses import dataclass
from typing import List, Mapping, Optional

import torch
from torch import Tensor

from .errors import UserError


class NonFiniteError(UserError):
    """A tensor that should be compared or written holds NaN or infinity."""


def first_non_finite(tensors: Mapping[str, Tensor]) -> Optional[str]:
    """The name of the first floating-point tensor holding NaN or infinity (None if all finite)."""
    for name, tensor in tensors.items():
        if torch.is_tensor(tensor) and tensor.is_floating_point() and \
                not bool(torch.isfinite(tensor).all()):
            return name
    return None


def check_finite(tensors: Mapping[str, Tensor], what: str) -> None:
    """Raise :class:`NonFiniteError` naming the first tensor of ``what`` with NaN or infinity."""
    name = first_non_finite(tensors)
    if name is not None:
        raise NonFiniteError(f'{what}: {name!r} holds NaN or infinity; refusing to use it')


@dataclass
class Difference:
    """Largest absolute and relative difference between two sets of tensors."""
    max_abs: float = 0.0
    max_rel: float = 0.0

    def merge(self, other: 'Difference') -> 'Difference':
        return Difference(max(self.max_abs, other.max_abs), max(self.max_rel, other.max_rel))


def tensor_difference(reference: Tensor, other: Tensor, name: str = 'output') -> Difference:
    """Max abs and relative difference of two tensors of one shape (empty tensors agree).

    Raises :class:`NonFiniteError` (naming ``name``) when either holds NaN or infinity.
    """
    if reference.shape != other.shape:
        raise UserError(f'{name} shapes differ: {tuple(reference.shape)} vs {tuple(other.shape)}')
    if reference.numel() == 0:
        return Difference()
    for side, tensor in (('reference', reference), ('compared', other)):
        if not bool(torch.isfinite(tensor).all()):
            raise NonFiniteError(f'the {side} {name} holds NaN or infinity')
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


def outputs_difference(reference, other, name: str = 'output') -> Difference:
    """The largest difference over all tensors of two (nested) outputs of the same structure."""
    ref, oth = flatten_tensors(reference), flatten_tensors(other)
    if len(ref) != len(oth) or not ref:
        raise UserError(f'the models return {len(ref)} and {len(oth)} tensors')
    total = Difference()
    for index, (a, b) in enumerate(zip(ref, oth)):
        total = total.merge(tensor_difference(a, b, f'{name} {index}' if len(ref) > 1 else name))
    return total
