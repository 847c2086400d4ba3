"""Pure re-parameterisation math: turn conv+BN branches into one kernel and bias.

Every function is differentiable and builds its tensors on the dtype/device of its inputs.
"""
from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm

KernelBias = Tuple[Tensor, Tensor]


def check_fusable_norm(norm: nn.Module) -> None:
    """Raise a clear error unless ``norm`` is a BatchNorm with running statistics."""
    if not isinstance(norm, _BatchNorm):
        raise TypeError(
            f'cannot fuse {type(norm).__name__}: only BatchNorm-like layers with running '
            'statistics (BN, SyncBN, _BatchNormXd) fold into a convolution; GroupNorm/LayerNorm '
            'depend on the input')
    if norm.running_mean is None or norm.running_var is None:
        raise TypeError(f'cannot fuse {type(norm).__name__} built with track_running_stats=False')


def bn_scale_shift(norm: _BatchNorm) -> KernelBias:
    """Per-channel ``(scale, shift)`` such that ``norm(x) == x * scale + shift`` in eval mode."""
    check_fusable_norm(norm)
    inv_std = torch.rsqrt(norm.running_var + norm.eps)
    scale = inv_std if norm.weight is None else norm.weight * inv_std
    shift = -norm.running_mean * scale
    if norm.bias is not None:
        shift = shift + norm.bias
    return scale, shift


def fuse_kernel_bn(kernel: Tensor, norm: _BatchNorm,
                   conv_bias: Optional[Tensor] = None) -> KernelBias:
    """Fold ``norm`` (applied after a conv with ``kernel``) into an equivalent kernel and bias."""
    scale, shift = bn_scale_shift(norm)
    if conv_bias is not None:
        shift = shift + conv_bias * scale
    return kernel * scale.reshape(-1, 1, 1, 1), shift


def pad_kernel_to(kernel: Tensor, size: int) -> Tensor:
    """Zero-pad a square kernel symmetrically to ``size x size`` (e.g. 1x1 -> 3x3)."""
    pad = (size - kernel.shape[-1]) // 2
    if pad < 0 or kernel.shape[-1] + 2 * pad != size:
        raise ValueError(f'cannot centre a {kernel.shape[-1]}x{kernel.shape[-1]} kernel in '
                         f'{size}x{size}')
    return F.pad(kernel, [pad] * 4)


def identity_kernel(channels: int, groups: int, size: int, dtype: torch.dtype,
                    device: torch.device) -> Tensor:
    """Kernel of a (grouped) ``size x size`` conv that maps its input to itself."""
    if channels % groups:
        raise ValueError(f'{channels} channels do not split into {groups} groups')
    in_per_group = channels // groups
    kernel = torch.zeros(channels, in_per_group, size, size, dtype=dtype, device=device)
    out_idx = torch.arange(channels, device=device)
    kernel[out_idx, out_idx % in_per_group, size // 2, size // 2] = 1
    return kernel


def fuse_identity_bn(norm: _BatchNorm, groups: int, size: int) -> KernelBias:
    """Kernel and bias of a bare BN (identity branch) as a grouped ``size x size`` conv."""
    check_fusable_norm(norm)
    ref = norm.running_var
    kernel = identity_kernel(norm.num_features, groups, size, ref.dtype, ref.device)
    return fuse_kernel_bn(kernel, norm)


def sum_kernel_bias(parts) -> KernelBias:
    """Add up ``(kernel, bias)`` pairs of parallel branches; a smaller (e.g. 1x1) kernel is
    centred in the largest one, after the smaller ones are summed at their own size."""
    parts = sorted(parts, key=lambda part: part[0].shape[-1])
    kernel, bias = parts[0]
    for part_kernel, part_bias in parts[1:]:
        if part_kernel.shape[-1] != kernel.shape[-1]:
            kernel = pad_kernel_to(kernel, part_kernel.shape[-1])
        kernel, bias = kernel + part_kernel, bias + part_bias
    return kernel, bias
