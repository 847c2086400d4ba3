"""ONNX export of fused models with a dynamic batch axis, checked with onnxruntime.

The exported graph must be the plain single-branch one: :func:`check_single_branch_graph` counts the
graph's Conv nodes against the fused model (one conv per RepVGG block plus the convs outside the
blocks), which a training-time graph (3x3 + 1x1 per block) cannot pass.
"""
import os
import sys
import tempfile
import warnings
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from mmengine.logging import MMLogger
from torch import Tensor, nn

from repvgg_mm.models.utils import detection_samples, is_two_stage, iter_repvgg_blocks
from repvgg_mm.utils.compare import flatten_tensors, tensor_difference
from repvgg_mm.utils.errors import ExportError
from repvgg_mm.utils.fileio import atomic_output

EXPORTERS = ('auto', 'torchscript', 'dynamo')
DEFAULT_OPSET = 17
DYNAMO_MIN_OPSET = 18
#: opsets the exporters write for these models (the TorchScript exporter stops at 20)
SUPPORTED_OPSETS = (11, 20)


class ExportAdapter(nn.Module):
    """A one-tensor-in, tensors-out view of a model for export, analysis and benchmarking.

    ``entry``: ``'forward'`` calls ``model(x)``; ``'tensor'`` calls ``model(x, samples,
    mode='tensor')`` (mmengine models: classifier and segmentor logits, a detector's raw head
    outputs; ``samples`` are image-only data samples for two-stage detectors, None otherwise);
    ``'extract_feat'`` calls ``model.extract_feat(x)`` (a detector's backbone + neck).
    """

    ENTRIES = ('forward', 'tensor', 'extract_feat')

    def __init__(self, model: nn.Module, entry: str = 'forward'):
        super().__init__()
        if entry not in self.ENTRIES:
            raise KeyError(f'entry must be one of {self.ENTRIES}, got {entry!r}')
        self.model = model
        self.entry = entry
        self.two_stage = is_two_stage(model)
        self.train(model.training)  # mirror the wrapped model's mode

    def forward(self, x: Tensor):
        if self.entry == 'tensor':
            samples = detection_samples(x) if self.two_stage else None
            return self.model(x, samples, mode='tensor')
        if self.entry == 'extract_feat':
            return tuple(self.model.extract_feat(x))
        return self.model(x)


@contextmanager
def _quiet_native_output():
    """Swallow what C++ code writes to stdout/stderr (the TorchScript exporter dumps its whole IR
    graph there when it fails, because torch 2.14 always switches its ONNX log on)."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 1)
        os.dup2(sink.fileno(), 2)
        try:
            yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)


def _dynamic_axes(input_name: str, output_names: Sequence[str], output_ranks: Sequence[int],
                  dynamic_hw: bool) -> Dict[str, Dict[int, str]]:
    """The batch axis of every tensor; with ``dynamic_hw`` also H and W of 4-D tensors."""
    axes = {input_name: {0: 'batch', 2: 'height', 3: 'width'} if dynamic_hw else {0: 'batch'}}
    for name, rank in zip(output_names, output_ranks):
        axes[name] = ({0: 'batch', 2: f'{name}_height', 3: f'{name}_width'}
                      if dynamic_hw and rank == 4 else {0: 'batch'})
    return axes


def _export_torchscript(model, example, path, input_name, output_names, opset, dynamic_hw,
                        output_ranks):
    dynamic_axes = _dynamic_axes(input_name, output_names, output_ranks, dynamic_hw)
    with warnings.catch_warnings(), _quiet_native_output():
        warnings.simplefilter('ignore')
        torch.onnx.export(model, (example, ), path, dynamo=False, input_names=[input_name],
                          output_names=output_names, dynamic_axes=dynamic_axes,
                          opset_version=opset)


def _export_dynamo(model, example, path, input_name, output_names, opset, dynamic_hw,
                   output_ranks):
    batch = torch.export.Dim('batch', min=1, max=4096)
    shapes = {0: batch}
    if dynamic_hw:
        shapes.update({2: torch.export.Dim('height', min=8, max=16384),
                       3: torch.export.Dim('width', min=8, max=16384)})
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        # The torch.export-based exporter implements opset >= 18 only; asking for less triggers a
        # lossy version conversion, so it always writes at least 18.
        program = torch.onnx.export(model, (example, ), dynamo=True, input_names=[input_name],
                                    output_names=output_names, dynamic_shapes=(shapes, ),
                                    opset_version=max(opset, DYNAMO_MIN_OPSET),
                                    external_data=False, verbose=False)
        program.save(path, external_data=False)


def export_onnx(model: nn.Module, example: Tensor, path: str, exporter: str = 'auto',
                opset: int = DEFAULT_OPSET, input_name: str = 'input',
                logger: Optional[MMLogger] = None, dynamic_hw: bool = False) -> str:
    """Export eval-mode ``model`` to ``path`` (atomically) with a dynamic batch axis (and dynamic
    height and width of the input and of 4-D outputs with ``dynamic_hw``).

    ``exporter='auto'`` tries the TorchScript exporter (``dynamo=False``) first and falls back to
    the torch.export-based one. Returns the exporter that wrote the file.
    """
    if exporter not in EXPORTERS:
        raise KeyError(f'exporter must be one of {EXPORTERS}, got {exporter!r}')
    low, high = SUPPORTED_OPSETS
    if not low <= opset <= high:
        raise ExportError(f'opset {opset} is not supported; choose one in [{low}, {high}]')
    logger = logger or MMLogger.get_current_instance()
    model.eval()
    with torch.no_grad():
        output_ranks = [t.dim() for t in flatten_tensors(model(example))]
    output_names = ['output'] if len(output_ranks) == 1 else [
        f'output{i}' for i in range(len(output_ranks))]
    order = ['torchscript', 'dynamo'] if exporter == 'auto' else [exporter]
    functions = {'torchscript': _export_torchscript, 'dynamo': _export_dynamo}
    errors = []
    for name in order:
        try:
            with atomic_output(path) as tmp_path:
                functions[name](model, example, tmp_path, input_name, output_names, opset,
                                dynamic_hw, output_ranks)
            return name
        except Exception as error:  # each exporter fails in its own ways
            errors.append(f'{name}: {type(error).__name__}: {str(error).splitlines()[0][:300]}')
            if name != order[-1]:
                logger.warning(f'{name} ONNX exporter failed ({errors[-1]}); trying the next one')
                if order[order.index(name) + 1] == 'dynamo' and opset < DYNAMO_MIN_OPSET:
                    logger.warning(f'the dynamo exporter writes opset {DYNAMO_MIN_OPSET} or '
                                   f'later: opset {DYNAMO_MIN_OPSET} instead of {opset}')
    hint = ''
    if any('adaptive_avg_pool2d' in e for e in errors):  # PPM/PSP pooling of mmseg heads
        hint = ('; adaptive pooling exports only when each pooled feature map divides by the '
                'pool output sizes: choose an input size whose stride-32 (or stride-8) map is a '
                'multiple of 6 for pool scales (1, 2, 3, 6)')
    raise ExportError('ONNX export failed: ' + ' | '.join(errors) + hint)


def run_onnxruntime(path: str, inputs: Tensor) -> List[np.ndarray]:
    import onnxruntime
    session = onnxruntime.InferenceSession(path, providers=['CPUExecutionProvider'])
    return session.run(None, {session.get_inputs()[0].name: inputs.numpy()})


@torch.no_grad()
def compare_with_onnxruntime(path: str, model: nn.Module, inputs: Tensor) -> Tuple[float, float]:
    """``(max |onnxruntime - PyTorch|, max |PyTorch|)`` over all outputs for ``inputs``."""
    model.eval()
    expected = flatten_tensors(model(inputs))
    actual = run_onnxruntime(path, inputs)
    if len(expected) != len(actual):
        raise ValueError(f'ONNX graph returns {len(actual)} outputs, PyTorch {len(expected)}')
    diff = scale = 0.0
    for ref, out in zip(expected, actual):
        if tuple(ref.shape) != tuple(out.shape):
            raise ValueError(f'output shape {tuple(out.shape)} != PyTorch {tuple(ref.shape)}')
        diff = max(diff, tensor_difference(ref, torch.from_numpy(np.asarray(out)),
                                           'ONNX Runtime output').max_abs)
        scale = max(scale, float(ref.abs().max()))
    return diff, scale


def onnx_op_counts(path: str) -> Counter:
    import onnx
    return Counter(node.op_type for node in onnx.load(path, load_external_data=False).graph.node)


@torch.no_grad()
def conv_calls(model: nn.Module, example: Tensor) -> Dict[str, int]:
    """Conv2d calls of one forward: ``{'fused_blocks': ..., 'blocks': ..., 'other': ...}``.

    ``fused_blocks`` counts the ``branch_fused`` convs of RepVGG blocks, ``blocks`` the blocks and
    ``other`` every other conv that runs (heads, necks, SE layers; aux heads that do not run in
    inference are not counted).
    """
    fused_convs = {id(module) for _, block in iter_repvgg_blocks(model) if block.deploy
                   for module in block.branch_fused.modules() if isinstance(module, nn.Conv2d)}
    counts = Counter()

    def hook(module, _inputs, _output):
        counts['fused_blocks' if id(module) in fused_convs else 'other'] += 1

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, nn.Conv2d)]
    try:
        model.eval()
        model(example)
    finally:
        for handle in handles:
            handle.remove()
    return dict(fused_blocks=counts['fused_blocks'], other=counts['other'],
                blocks=len(list(iter_repvgg_blocks(model))))


@dataclass
class GraphCheck:
    conv_nodes: int
    expected_conv_nodes: int
    blocks: int
    other_convs: int
    op_counts: Counter

    @property
    def ok(self) -> bool:
        return self.conv_nodes == self.expected_conv_nodes

    def describe(self) -> str:
        return (f'{self.conv_nodes} Conv nodes (expected {self.expected_conv_nodes} = '
                f'{self.blocks} fused RepVGG blocks + {self.other_convs} other convs)')


def check_single_branch_graph(path: str, model: nn.Module, example: Tensor) -> GraphCheck:
    """Compare the graph's Conv nodes with one conv per fused RepVGG block plus the other convs."""
    calls = conv_calls(model, example)
    if calls['blocks'] == 0:
        raise ValueError('the model has no RepVGG blocks')
    if calls['fused_blocks'] != calls['blocks']:
        raise ValueError(f'only {calls["fused_blocks"]} of {calls["blocks"]} RepVGG blocks are '
                         'fused; export the fused model')
    counts = onnx_op_counts(path)
    return GraphCheck(conv_nodes=counts.get('Conv', 0),
                      expected_conv_nodes=calls['blocks'] + calls['other'],
                      blocks=calls['blocks'], other_convs=calls['other'], op_counts=counts)


@dataclass
class ExportReport:
    name: str
    path: str
    exporter: str
    export_batch: int
    check_batch: int
    max_abs_diff: float
    output_scale: float
    atol: float
    rtol: float
    graph: GraphCheck

    @property
    def within_tolerance(self) -> bool:
        return self.max_abs_diff <= self.atol + self.rtol * self.output_scale

    @property
    def ok(self) -> bool:
        return self.within_tolerance and self.graph.ok

    def describe(self) -> str:
        return (f'{self.name}: {self.exporter} exporter -> {self.path}; onnxruntime vs PyTorch at '
                f'batch {self.check_batch} (exported at {self.export_batch}): max abs diff '
                f'{self.max_abs_diff:.3g} (max |output| {self.output_scale:.3g}, allowed '
                f'{self.atol:g} + {self.rtol:g} * max|output|); {self.graph.describe()}')


def export_and_check(name: str, model: nn.Module, input_shape: Sequence[int], path: str,
                     export_batch: int = 1, check_batch: int = 3, atol: float = 1e-4,
                     rtol: float = 1e-4, exporter: str = 'auto', opset: int = DEFAULT_OPSET,
                     seed: int = 0, logger: Optional[MMLogger] = None) -> ExportReport:
    """Export fused ``model`` at ``export_batch`` and check it with onnxruntime at ``check_batch``.

    The check passes when ``max |onnx - torch| <= atol + rtol * max |torch|`` (relative to the
    output
    scale: logits of models with random BN statistics reach 1e4) and the graph has one conv per
    fused RepVGG block plus the convs outside the blocks.
    """
    if export_batch == check_batch:
        raise ValueError('check with a batch size other than the export one (dynamic batch axis)')
    logger = logger or MMLogger.get_current_instance()
    generator = torch.Generator().manual_seed(seed)
    example = torch.randn(export_batch, *input_shape, generator=generator)
    check_inputs = torch.randn(check_batch, *input_shape, generator=generator)
    model.eval()
    used = export_onnx(model, example, path, exporter=exporter, opset=opset, logger=logger)
    graph = check_single_branch_graph(path, model, example)
    diff, scale = compare_with_onnxruntime(path, model, check_inputs)
    report = ExportReport(name, path, used, export_batch, check_batch, diff, scale, atol, rtol,
                          graph)
    logger.info(report.describe())
    return report
