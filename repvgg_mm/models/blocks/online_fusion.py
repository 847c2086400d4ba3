"""Online fusion: a training-time block whose norms are all frozen runs as one 3x3 conv.

With every BatchNorm of a block in eval mode (``norm_eval``, frozen stages, or a user's own
``.eval()``), each branch is linear, so the block's branch sum is exactly
``conv3x3(x, K, b)`` with ``(K, b) = block.get_equivalent_kernel_bias()``. That kernel is
differentiable in the branch convs and the BN affine parameters, so one conv gives the same outputs
and the same gradients as the three branches for a fraction of the compute and of the activations
kept for backward. A block with any norm in training mode keeps its branches (batch statistics
cannot be folded), so training from scratch is unchanged.

Online fusion engages while autograd records (``torch.is_grad_enabled()``) outside tracing: under
``no_grad`` / ``inference_mode`` a block computes its branches, the reference that fusing proofs
compare with (fuse with ``switch_to_deploy`` for fast inference), and ``torch.jit.trace`` or the
ONNX exporter record the branches of a training-time model (the deploy tools fuse first).

The kernel is computed from the block's current tensors in every forward, never cached: a cache
keyed by tensor versions goes stale on writes that bypass them (``p.data.mul_``, ``p.data = t``,
``nn.utils.vector_to_parameters``). A block whose parameters are all frozen computes it without
autograd (a few small tensor operations beside the convolution it replaces).
"""
import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from .fuse import KernelBias

ONLINE_FUSION_MODES = ('auto', 'off')


def check_online_fusion_mode(mode: str) -> str:
    if mode not in ONLINE_FUSION_MODES:
        raise ValueError(f"online_fusion must be one of {ONLINE_FUSION_MODES}, got {mode!r}")
    return mode


def online_fusion_active(block: nn.Module) -> bool:
    """Whether ``block`` runs as one conv in this forward.

    ``block`` must provide ``deploy``, ``online_fusion``, ``norm_layers()`` (its BatchNorms) and
    ``branch_convs()`` (its convolutions).
    """
    if (block.deploy or block.online_fusion != 'auto' or not torch.is_grad_enabled()
            or torch.jit.is_tracing()):
        return False
    norms = list(block.norm_layers())
    return (all(isinstance(n, _BatchNorm) and not n.training and n.track_running_stats
                for n in norms)
            and all(type(conv) is nn.Conv2d for conv in block.branch_convs()))


def online_kernel_bias(block: nn.Module) -> KernelBias:
    """The block's equivalent kernel and bias from its current tensors: differentiable when any
    parameter is trainable, computed without autograd when all are frozen."""
    if any(p.requires_grad for p in block.parameters()):
        return block.get_equivalent_kernel_bias()
    with torch.no_grad():
        return block.get_equivalent_kernel_bias()
