"""A convolution with a computed kernel that keeps only the kernel's inputs for backward.

A block trained as one conv with a kernel computed from its parameters each step (e.g.
``s3*W3 + pad(s1*W1 + s_id*I)``) would otherwise keep that kernel (and its intermediates) for
backward on top of the activations: at 2x3x512x512 that is about 30 MiB for RepVGG-A0. Here the
kernel is recomputed in backward from the parameters (cheap next to the convolution), so autograd
keeps the input and the parameters only.
"""
from typing import Callable, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.autograd.function import once_differentiable
from torch.nn.modules.utils import _pair

Geometry = Tuple[Sequence[int], Sequence[int], Sequence[int], int]  # stride, padding, dilation,
# groups


class _RecomputedKernelConv(torch.autograd.Function):

    @staticmethod
    def forward(ctx, x: Tensor, kernel_fn: Callable[..., Tensor], geometry: Geometry,
                *params: Tensor) -> Tensor:
        with torch.no_grad():
            kernel = kernel_fn(*params)
        ctx.kernel_fn, ctx.geometry = kernel_fn, geometry
        ctx.save_for_backward(x, *params)
        return F.conv2d(x, kernel, None, *geometry)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out: Tensor):
        x, *params = ctx.saved_tensors  # version-checked: an in-place change in between raises
        need_x, need_params = ctx.needs_input_grad[0], ctx.needs_input_grad[3:]
        leaves = [p.detach().requires_grad_(need) for p, need in zip(params, need_params)]
        with torch.enable_grad():
            kernel = ctx.kernel_fn(*leaves)
        dtype = grad_out.dtype  # the conv's compute dtype (autocast may have lowered it)
        stride, padding, dilation, groups = ctx.geometry
        need_kernel = any(need_params)
        # one call for both gradients, as autograd's own convolution backward makes
        grad_x, grad_kernel, _ = torch.ops.aten.convolution_backward(
            grad_out, x.to(dtype), kernel.detach().to(dtype), None, _pair(stride),
            _pair(padding), _pair(dilation), False, [0, 0], groups,
            [need_x, need_kernel, False])
        param_grads = None
        if grad_x is not None:
            grad_x = grad_x.to(x.dtype)
        if need_kernel:
            grad_kernel = grad_kernel.to(kernel.dtype)
            wanted = [p for p, need in zip(leaves, need_params) if need]
            grads = iter(torch.autograd.grad(kernel, wanted, grad_kernel))
            param_grads = [next(grads) if need else None for need in need_params]
        return (grad_x, None, None, *(param_grads or [None] * len(params)))


def conv2d_recomputed_kernel(x: Tensor, kernel_fn: Callable[..., Tensor],
                             params: Sequence[Tensor], stride=1, padding=0, dilation=1,
                             groups: int = 1) -> Tensor:
    """``F.conv2d(x, kernel_fn(*params), None, ...)`` with the same outputs and gradients (of
    ``x`` and ``params``), keeping only ``x`` and ``params`` for backward: the kernel is recomputed
    there. ``kernel_fn`` must compute the kernel from its arguments alone.

    Not twice differentiable. Under ``no_grad`` or tracing, or when nothing needs a gradient, it
    is the plain convolution.
    """
    if (not torch.is_grad_enabled() or torch.jit.is_tracing()
            or not (x.requires_grad or any(p.requires_grad for p in params))):
        return F.conv2d(x, kernel_fn(*params), None, stride, padding, dilation, groups)
    return _RecomputedKernelConv.apply(x, kernel_fn, (stride, padding, dilation, groups), *params)
