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
ONNX exporter record the branches of a training-time model (the deploy tools fuse first). A block
whose parameters are all frozen computes its kernel without autograd and caches it until any of its
tensors changes (every in-place write bumps a tensor's version counter, part of the cache key).
"""
from typing import Iterator, Optional, Tuple

import torch
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm

ONLINE_FUSION_MODES = ('auto', 'off')
KernelBias = Tuple[Tensor, Tensor]


def check_online_fusion_mode(mode: str) -> str:
    if mode not in ONLINE_FUSION_MODES:
        raise ValueError(f"online_fusion must be one of {ONLINE_FUSION_MODES}, got {mode!r}")
    return mode


class OnlineFusion:
    """Decides whether a block runs fused online and serves its kernel (one per block).

    ``block`` must provide ``deploy``, ``online_fusion``, ``get_equivalent_kernel_bias()``,
    ``norm_layers()`` (its BatchNorms) and ``branch_convs()`` (its convolutions).
    """

    def __init__(self):
        self._cache_key: Optional[Tuple] = None
        self._cache: Optional[KernelBias] = None

    @staticmethod
    def _tensors(block: nn.Module) -> Iterator[Tensor]:
        yield from block.parameters()
        yield from block.buffers()

    @staticmethod
    def active(block: nn.Module) -> bool:
        """Whether ``block`` runs as one conv in this forward."""
        if (block.deploy or block.online_fusion != 'auto' or not torch.is_grad_enabled()
                or torch.jit.is_tracing()):
            return False
        norms = list(block.norm_layers())
        return (all(isinstance(n, _BatchNorm) and not n.training and n.track_running_stats
                    for n in norms)
                and all(type(conv) is nn.Conv2d for conv in block.branch_convs()))

    def kernel_bias(self, block: nn.Module) -> KernelBias:
        """The block's equivalent kernel and bias: differentiable when any parameter is trainable,
        computed once without autograd (and cached) when all are frozen."""
        if any(p.requires_grad for p in block.parameters()):
            self._cache_key = self._cache = None
            return block.get_equivalent_kernel_bias()
        key = tuple((id(t), t._version, t.dtype, t.device) for t in self._tensors(block))
        if key != self._cache_key:
            with torch.no_grad():
                self._cache = block.get_equivalent_kernel_bias()
            self._cache_key = key
        return self._cache
