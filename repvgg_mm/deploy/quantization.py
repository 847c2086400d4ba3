"""INT8 for fused RepVGG models with PyTorch's own FX graph-mode quantization (x86 / fbgemm).

Three steps, each a small function:

- :func:`quantize_ptq`: post-training static quantization (per-channel weights, calibrated
  activations) of a fused model.
- :func:`insert_bn_after_fused_convs`: put a BatchNorm after every fused 3x3 conv, initialised from
  the conv's output statistics so that the model computes exactly what it computed before (in eval
  mode ``BN(x) == x``). QAT can then re-learn a per-channel scale and shift that quantizes well, the
  remedy the RepVGG authors recommend for the accuracy that plain PTQ loses.
- :func:`prepare_qat` / :func:`convert_qat`: fake-quantized fine-tuning (conv+BN+ReLU fused into
  QAT modules that fold the BN) and conversion to a real INT8 model.

:func:`fold_inserted_bn` folds the inserted BNs back into plain convs (an FP32 deploy model again).
"""
import copy
import warnings
from collections import OrderedDict
from contextlib import contextmanager
from typing import Dict, Iterable, Iterator, List, Tuple

import torch
from torch import Tensor, nn
from torch.fx import GraphModule, symbolic_trace

from repvgg_mm.models.blocks import fuse_kernel_bn
from repvgg_mm.models.utils import iter_repvgg_blocks

DEFAULT_BACKEND = 'x86'


@contextmanager
def _quiet_ao_deprecation() -> Iterator[None]:
    """torch.ao.quantization warns that it moves to torchao; it still works in this torch."""
    with warnings.catch_warnings():
        warnings.filterwarnings('ignore', message='.*torch.ao.quantization is deprecated.*')
        warnings.filterwarnings('ignore', category=FutureWarning, module='torch.ao')
        warnings.filterwarnings('ignore', category=DeprecationWarning, module='torch.ao')
        yield


def set_quantized_engine(backend: str = DEFAULT_BACKEND) -> None:
    """Select the INT8 kernel library (x86 = fbgemm/oneDNN) for the whole process."""
    engines = torch.backends.quantized.supported_engines
    if backend not in engines:
        raise RuntimeError(f'quantized engine {backend!r} is not in this torch build ({engines})')
    torch.backends.quantized.engine = backend


def check_fused(model: nn.Module) -> None:
    """Raise unless every RepVGG block of ``model`` is fused (quantize the deploy model only)."""
    unfused = [name for name, block in iter_repvgg_blocks(model) if not block.deploy]
    if unfused:
        raise ValueError(f'{len(unfused)} RepVGG blocks are not fused (first: {unfused[0]!r}); '
                         'fuse the model (repvgg_mm.models.fuse_repvgg_blocks) before quantizing')


def trace_for_quantization(model: nn.Module) -> GraphModule:
    """FX-trace a deep copy of ``model`` and drop ``nn.Identity`` calls.

    A fused block computes ``act(se(conv(x)))`` with ``se = nn.Identity`` in the plain archs; the
    identity between conv (or BN) and ReLU would hide the conv+ReLU pattern from the quantizer.
    """
    graph_module = symbolic_trace(copy.deepcopy(model))
    for node in list(graph_module.graph.nodes):
        if node.op == 'call_module' and isinstance(graph_module.get_submodule(node.target),
                                                   nn.Identity):
            node.replace_all_uses_with(node.args[0])
            graph_module.graph.erase_node(node)
    graph_module.delete_all_unused_submodules()
    graph_module.recompile()
    return graph_module


@torch.no_grad()
def quantize_ptq(model: nn.Module, calibration_batches: Iterable[Tensor],
                 backend: str = DEFAULT_BACKEND) -> GraphModule:
    """Post-training static INT8 quantization of a fused model (``model`` itself is not changed)."""
    from torch.ao.quantization import get_default_qconfig_mapping
    from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx
    check_fused(model)
    set_quantized_engine(backend)
    batches = list(calibration_batches)
    if not batches:
        raise ValueError('calibration needs at least one batch')
    with _quiet_ao_deprecation():
        graph_module = trace_for_quantization(model.eval())
        prepared = prepare_fx(graph_module, get_default_qconfig_mapping(backend),
                              example_inputs=(batches[0], ))
        for batch in batches:
            prepared(batch)
        return convert_fx(prepared)


def fused_convs(model: nn.Module) -> List[Tuple[nn.Module, nn.Conv2d]]:
    """``(block, conv)`` for every fused RepVGG block whose ``branch_fused`` is still a bare
    conv."""
    check_fused(model)
    return [(block, block.branch_fused) for _, block in iter_repvgg_blocks(model)
            if isinstance(block.branch_fused, nn.Conv2d)]


@torch.no_grad()
def conv_output_statistics(model: nn.Module, convs: Iterable[nn.Conv2d],
                           batches: Iterable[Tensor]) -> Dict[nn.Conv2d, Tuple[Tensor, Tensor]]:
    """Per-channel mean and (population) variance of each conv's output over ``batches``."""
    convs = list(convs)
    sums = {conv: [0.0, 0.0, 0] for conv in convs}

    def accumulate(conv, _inputs, output):
        out = output.detach().double().transpose(0, 1).flatten(1)
        acc = sums[conv]
        acc[0] = acc[0] + out.sum(1)
        acc[1] = acc[1] + (out * out).sum(1)
        acc[2] += out.shape[1]

    handles = [conv.register_forward_hook(accumulate) for conv in convs]
    try:
        model.eval()
        seen = 0
        for batch in batches:
            model(batch)
            seen += 1
    finally:
        for handle in handles:
            handle.remove()
    if not seen:
        raise ValueError('activation statistics need at least one batch')
    stats = {}
    for conv, (total, total_sq, count) in sums.items():
        mean = total / count
        var = (total_sq / count - mean * mean).clamp_min(0)
        ref = conv.weight
        stats[conv] = (mean.to(ref), var.to(ref))
    return stats


def identity_bn(mean: Tensor, var: Tensor, eps: float = 1e-5) -> nn.BatchNorm2d:
    """A BN whose eval-mode output equals its input for data with this ``mean`` and ``var``.

    ``running_mean = bias = mean`` and ``weight = sqrt(running_var + eps)``, so
    ``(x - mean) / sqrt(var + eps) * weight + bias == x``; in training mode it normalises with batch
    statistics of the same scale, which keeps QAT close to the starting point.
    """
    bn = nn.BatchNorm2d(mean.numel(), eps=eps).to(mean)
    with torch.no_grad():
        bn.running_mean.copy_(mean)
        bn.running_var.copy_(var)
        bn.weight.copy_(torch.sqrt(var + eps))
        bn.bias.copy_(mean)
    return bn


@torch.no_grad()
def insert_bn_after_fused_convs(model: nn.Module, batches: Iterable[Tensor], eps: float = 1e-5,
                                do_copy: bool = True) -> nn.Module:
    """Return ``model`` (a deep copy unless ``do_copy=False``) with ``conv -> BN`` in every fused
    block.

    The BNs are initialised from the convs' output statistics over ``batches`` (see
    :func:`identity_bn`), so eval-mode outputs do not change. ``branch_fused`` becomes
    ``nn.Sequential(conv=..., bn=...)``.
    """
    if do_copy:
        model = copy.deepcopy(model)
    pairs = fused_convs(model)
    if not pairs:
        raise ValueError('no fused RepVGG conv without a BN found')
    stats = conv_output_statistics(model, [conv for _, conv in pairs], batches)
    for block, conv in pairs:
        mean, var = stats[conv]
        block.branch_fused = nn.Sequential(OrderedDict(conv=conv, bn=identity_bn(mean, var, eps)))
    return model


@torch.no_grad()
def fold_inserted_bn(model: nn.Module, do_copy: bool = True) -> nn.Module:
    """Undo :func:`insert_bn_after_fused_convs` by folding each BN into its conv (eval-mode
    math)."""
    if do_copy:
        model = copy.deepcopy(model)
    for _, block in iter_repvgg_blocks(model):
        branch = getattr(block, 'branch_fused', None)
        if isinstance(branch, nn.Sequential) and hasattr(branch, 'bn'):
            conv = branch.conv
            kernel, bias = fuse_kernel_bn(conv.weight, branch.bn, conv.bias)
            folded = copy.deepcopy(conv)
            if folded.bias is None:
                folded.bias = nn.Parameter(torch.zeros_like(bias))
            folded.weight.copy_(kernel)
            folded.bias.copy_(bias)
            block.branch_fused = folded
    return model


def prepare_qat(model: nn.Module, example: Tensor, backend: str = DEFAULT_BACKEND) -> GraphModule:
    """Fake-quantized copy of ``model`` for training (conv+BN+ReLU become fused QAT modules)."""
    from torch.ao.quantization import get_default_qat_qconfig_mapping
    from torch.ao.quantization.quantize_fx import prepare_qat_fx
    check_fused(model)
    set_quantized_engine(backend)
    with _quiet_ao_deprecation():
        graph_module = trace_for_quantization(model).train()
        return prepare_qat_fx(graph_module, get_default_qat_qconfig_mapping(backend),
                              example_inputs=(example, ))


def convert_qat(prepared: GraphModule) -> GraphModule:
    """Real INT8 model from a QAT-trained ``prepared`` model (which is left unchanged)."""
    from torch.ao.quantization.quantize_fx import convert_fx
    with _quiet_ao_deprecation():
        return convert_fx(copy.deepcopy(prepared).eval())


def count_quantized_convs(model: nn.Module) -> int:
    """Number of INT8 conv modules (plain or fused with ReLU) in a converted model."""
    from torch.ao.nn.quantized import Conv2d as QuantizedConv2d
    return sum(isinstance(module, QuantizedConv2d) for module in model.modules())
