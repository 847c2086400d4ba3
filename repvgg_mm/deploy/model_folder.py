"""The self-describing ONNX model folder: what export writes and the runtime wrapper reads.

    OUT_DIR/end2end.onnx       the exported part of the fused model (FP32)
    OUT_DIR/end2end_int8.onnx  its static INT8 version (tools/deployment/quantize.py)
    OUT_DIR/deploy_config.py   the (deploy) config the model was exported from
    OUT_DIR/heads.pth          two-stage detectors only: RPN and RoI head weights (run in PyTorch)
    OUT_DIR/deploy.json        :class:`ModelInfo`: model kind, exported part, input and output
                               names and shapes, normalisation, class names, opset, the source

What is exported, per model kind (:func:`model_kind`): classifiers and segmentors the whole network
(logits; mmseg then resizes and takes the argmax as the config's test mode says); single-stage
detectors backbone + neck + head up to the raw head outputs (the head's own ``predict_by_feat``
decodes them and runs NMS); two-stage detectors backbone + neck (RPN and RoI heads run in PyTorch).
"""
import datetime
import hashlib
import json
import os
from dataclasses import asdict, dataclass, field
from typing import Dict, List, Optional, Sequence

import mmengine
import torch
from mmengine.config import Config
from mmengine.logging import MMLogger
from torch import Tensor, nn

from repvgg_mm.models.classifiers import ImageClassifier
from repvgg_mm.models.utils import iter_repvgg_blocks
from repvgg_mm.utils.compare import check_finite
from repvgg_mm.utils.errors import ExportError, UserError, first_line
from repvgg_mm.version import __version__

from .onnx_export import (
    DEFAULT_OPSET,
    ExportAdapter,
    check_single_branch_graph,
    compare_with_onnxruntime,
    export_onnx,
)

INFO_FILE = 'deploy.json'
FP32_FILE = 'end2end.onnx'
INT8_FILE = 'end2end_int8.onnx'
CONFIG_FILE = 'deploy_config.py'
HEADS_FILE = 'heads.pth'
FORMAT = 'repvgg_mm.onnx_model_folder'
FORMAT_VERSION = 1

# kind: (what the ONNX graph holds, the ExportAdapter entry that computes it)
KINDS = {
    'classifier': ('the whole classifier: logits', 'tensor'),
    'segmentor': ('the whole segmentor: decode-head logits at feature resolution', 'tensor'),
    'single_stage_detector': ('backbone + neck + head: raw head outputs', 'tensor'),
    'two_stage_detector': ('backbone + neck: feature pyramid', 'extract_feat'),
}
# the modules of each kind that run in ONNX Runtime, not in PyTorch
EXPORTED_MODULES = {'classifier': ('backbone', ),
                    'segmentor': ('backbone', 'neck', 'auxiliary_head'),
                    'single_stage_detector': ('backbone', 'neck'),
                    'two_stage_detector': ('backbone', 'neck')}
TWO_STAGE_HEADS = ('rpn_head', 'roi_head')


def _class_names(model: nn.Module) -> List[str]:
    return [f'{c.__module__}.{c.__qualname__}' for c in type(model).__mro__]


def _defines(model: nn.Module, method: str) -> str:
    """``module.Class`` of the class whose ``method`` the model runs."""
    owner = next(c for c in type(model).__mro__ if method in c.__dict__)
    return f'{owner.__module__}.{owner.__qualname__}'


def model_kind(model: nn.Module) -> str:
    """The kind of ``model`` the ONNX Runtime wrapper serves (a key of :data:`KINDS`).

    Served: our ``ImageClassifier``; mmseg's ``EncoderDecoder`` and its subclasses; mmdet's
    ``SingleStageDetector`` subclasses that keep its ``predict`` (RetinaNet, FCOS, ...); mmdet's
    ``TwoStageDetector`` subclasses (Faster/Mask R-CNN, ...). Anything else: one-line error.
    """
    names = _class_names(model)
    if isinstance(model, ImageClassifier):
        return 'classifier'
    if any(n.startswith('mmseg.') and n.endswith('.EncoderDecoder') for n in names):
        return 'segmentor'
    if any(n.startswith('mmdet.') and n.endswith('.TwoStageDetector') for n in names):
        return 'two_stage_detector'
    if any(n.startswith('mmdet.') and n.endswith('.SingleStageDetector') for n in names):
        if _defines(model, 'predict').endswith('.SingleStageDetector') and \
                _defines(model, '_forward').endswith('.SingleStageDetector'):
            return 'single_stage_detector'
        raise UserError(f'{type(model).__name__} changes what a single-stage detector predicts; '
                        'the ONNX Runtime wrapper serves detectors whose predict is mmdet\'s '
                        'SingleStageDetector.predict')
    raise UserError(f'the ONNX Runtime wrapper does not serve {type(model).__name__} models: it '
                    'serves classifiers (repvgg_mm ImageClassifier), segmentors (mmseg '
                    'EncoderDecoder) and single-/two-stage detectors (mmdet)')


def exported_part(model: nn.Module, kind: Optional[str] = None) -> ExportAdapter:
    """The one-tensor-in view of ``model`` that goes into the ONNX graph."""
    return ExportAdapter(model, KINDS[kind or model_kind(model)][1])


def output_groups(outputs) -> Optional[List[int]]:
    """How a single-stage head's nested outputs (a tuple of per-level lists) flatten: the length
    of each group, e.g. ``[3, 3]`` for RetinaNet's class scores and box deltas on 3 levels."""
    if isinstance(outputs, Tensor):
        return None
    if not isinstance(outputs, (tuple, list)):
        raise UserError(f'cannot export outputs of type {type(outputs).__name__}')
    if all(isinstance(o, Tensor) for o in outputs):
        return None
    if not all(isinstance(group, (tuple, list)) and group and
               all(isinstance(o, Tensor) for o in group) for group in outputs):
        raise UserError('the head returns outputs other than tensors or lists of tensors '
                        '(e.g. None): it cannot be exported')
    return [len(group) for group in outputs]


def group_outputs(flat: Sequence[Tensor], groups: Optional[Sequence[int]]):
    """Undo the flattening of :func:`output_groups`."""
    if groups is None:
        return tuple(flat)
    grouped, start = [], 0
    for size in groups:
        grouped.append(list(flat[start:start + size]))
        start += size
    return tuple(grouped)


def sha256_of(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, 'rb') as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b''):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass
class ModelInfo:
    """The content of ``deploy.json``."""

    kind: str
    exported: str
    scope: Optional[str]
    model_type: str
    input: dict  # name, shape (ints or axis names), dynamic_hw
    outputs: List[dict]  # name, shape of each graph output
    output_groups: Optional[List[int]]
    preprocess: dict  # the data_preprocessor config (mean, std, bgr_to_rgb, padding)
    dataset_meta: dict  # classes (and palette) of the model's dataset
    opset: int
    exporter: str
    config: str = CONFIG_FILE
    onnx: Dict[str, str] = field(default_factory=lambda: {'fp32': FP32_FILE})
    head_weights: Optional[str] = None
    source_checkpoint: Optional[dict] = None  # path, sha256
    check: dict = field(default_factory=dict)  # onnxruntime vs PyTorch at export
    quantization: Optional[dict] = None  # the INT8 model: recipe, calibration, convs kept FP32
    versions: dict = field(default_factory=dict)
    format: str = FORMAT
    format_version: int = FORMAT_VERSION

    def write(self, folder: str) -> None:
        with open(os.path.join(folder, INFO_FILE), 'w', encoding='utf-8') as handle:
            json.dump(asdict(self), handle, indent=2)


def read_model_info(folder: str) -> ModelInfo:
    """Read and check ``folder/deploy.json`` (one-line errors for anything else)."""
    path = os.path.join(folder, INFO_FILE)
    if not os.path.isfile(path):
        raise UserError(f'{folder} is not an ONNX model folder: it has no {INFO_FILE} (write one '
                        'with tools/deployment/export_onnx.py CONFIG CHECKPOINT OUT_DIR)')
    try:
        with open(path, encoding='utf-8') as handle:
            data = json.load(handle)
        if data.get('format') != FORMAT or data.get('format_version') != FORMAT_VERSION:
            raise ValueError(f'format {data.get("format")!r} version '
                             f'{data.get("format_version")!r}')
        info = ModelInfo(**data)
        if info.kind not in KINDS:
            raise ValueError(f'unknown model kind {info.kind!r}')
    except (ValueError, TypeError, AttributeError) as exc:
        raise UserError(f'{path} is not a {FORMAT} v{FORMAT_VERSION} description: '
                        f'{first_line(exc)}') from exc
    for name in [info.config, *info.onnx.values(), *filter(None, [info.head_weights])]:
        if os.path.basename(name) != name or not os.path.isfile(os.path.join(folder, name)):
            raise UserError(f'{path} lists {name!r}, which is not a file of {folder}')
    return info


def find_model_info(onnx_path: str) -> Optional[ModelInfo]:
    """The description of the model folder ``onnx_path`` lies in (None for a bare .onnx file)."""
    folder = os.path.dirname(os.path.abspath(onnx_path))
    if not os.path.isfile(os.path.join(folder, INFO_FILE)):
        return None
    info = read_model_info(folder)
    return info if os.path.basename(onnx_path) in info.onnx.values() else None


def check_output_folder(out_dir: str, inputs: Sequence[str], force: bool) -> bool:
    """Refuse an ``out_dir`` that is a file, a non-empty folder (without ``force``), a non-empty
    folder that is not a model folder (even with ``force``: it is never deleted), or a folder that
    holds one of the ``inputs``. Returns whether an existing model folder will be replaced."""
    if not os.path.exists(out_dir):
        parent = os.path.dirname(os.path.abspath(out_dir))
        while not os.path.exists(parent):
            parent = os.path.dirname(parent)
        if not os.path.isdir(parent):
            raise UserError(f'OUT_DIR {out_dir} lies inside the file {parent}')
        return False
    if not os.path.isdir(out_dir):
        raise UserError(f'OUT_DIR {out_dir} exists and is not a folder')
    if not os.listdir(out_dir):
        return True
    if not force:
        raise UserError(f'OUT_DIR {out_dir} exists; pass --force to replace the model folder')
    if not os.path.isfile(os.path.join(out_dir, INFO_FILE)):
        raise UserError(f'OUT_DIR {out_dir} exists and is not a model folder (no {INFO_FILE}); '
                        'it is not replaced, even with --force: choose a new folder')
    root = os.path.realpath(out_dir)
    for path in inputs:
        if os.path.realpath(path).startswith(root + os.sep):
            raise UserError(f'OUT_DIR {out_dir} holds the input {path}; replacing it would delete '
                            'it: choose another OUT_DIR')
    return True


def _tolerance_ok(diff: float, scale: float, atol: float, rtol: float) -> bool:
    return diff <= atol + rtol * scale


def _second_size(size: int) -> int:
    """Another input size to prove a dynamic-H/W graph with (a multiple of 32, >= 64)."""
    other = max(64, (size // 2) // 32 * 32)
    return other if other != size else size + 32


def _export_checked(adapter: nn.Module, example: Tensor, path: str, exporter: str, opset: int,
                    atol: float, rtol: float, logger: MMLogger) -> dict:
    """Export with dynamic H/W when the graph computes the same as PyTorch at another size too,
    else with the example's H/W (a batch of 2 is always checked); returns the check record."""
    height, width = example.shape[-2:]
    other = torch.randn(1, example.shape[1], _second_size(height), _second_size(width),
                        generator=torch.Generator().manual_seed(1))
    batch2 = torch.cat([example, example.flip(-1)])
    for dynamic_hw in (True, False):
        inputs = [batch2, other] if dynamic_hw else [batch2]
        # dynamic H/W: the TorchScript exporter only under 'auto'; the torch.export one may
        # specialise shape-dependent ops (adaptive pooling) silently, and it is slow
        chosen = 'torchscript' if dynamic_hw and exporter == 'auto' else exporter
        try:
            used = export_onnx(adapter, example, path, chosen, opset, logger=logger,
                               dynamic_hw=dynamic_hw)
            diffs = [compare_with_onnxruntime(path, adapter, x) for x in inputs]
            bad = [(tuple(x.shape), d, s) for x, (d, s) in zip(inputs, diffs)
                   if not _tolerance_ok(d, s, atol, rtol)]
            if bad:
                raise ExportError(f'onnxruntime differs from PyTorch at input {bad[0][0]}: max abs '
                                  f'diff {bad[0][1]:.3g} (max |output| {bad[0][2]:.3g}, allowed '
                                  f'{atol:g} + {rtol:g} * max|output|)')
        except Exception as exc:  # exporters and onnxruntime fail in their own ways
            if not dynamic_hw:
                if isinstance(exc, UserError):
                    raise
                raise ExportError(f'onnxruntime cannot run the exported graph: '
                                  f'{first_line(exc)}') from exc
            logger.warning('the graph does not export with dynamic height/width '
                           f'({first_line(exc)[:300]}); exporting for the example size '
                           f'{height}x{width} only')
            continue
        return dict(exporter=used, dynamic_hw=dynamic_hw, atol=atol, rtol=rtol,
                    checks=[dict(input_shape=list(x.shape), max_abs_diff=d, output_scale=s)
                            for x, (d, s) in zip(inputs, diffs)])
    raise AssertionError('unreachable')  # pragma: no cover


def export_to_folder(folder: str, cfg: Config, model: nn.Module, example: Tensor, *,
                     source_checkpoint: Optional[str] = None, dataset_meta: Optional[dict] = None,
                     exporter: str = 'auto', opset: int = DEFAULT_OPSET, atol: float = 1e-4,
                     rtol: float = 1e-4, logger: Optional[MMLogger] = None) -> ModelInfo:
    """Export the fused ``model`` of ``cfg`` into the existing (empty, temporary) ``folder``.

    ``example``: one preprocessed input ``(1, 3, H, W)`` (what the config's data_preprocessor
    makes of a test image). The graph gets dynamic height and width when it computes the same
    as PyTorch at another size, else the example's size only (e.g. PSP pooling). The export is
    checked with onnxruntime against PyTorch (batch 2; ``atol + rtol * max|output|``) and must be
    the single-branch graph (one Conv per fused RepVGG block). Use an atomic folder around it.
    """
    logger = logger or MMLogger.get_current_instance()
    kind = model_kind(model)
    unfused = [name for name, block in iter_repvgg_blocks(model) if not block.deploy]
    if unfused:
        raise UserError(f'{len(unfused)} RepVGG blocks are not fused (first: {unfused[0]!r}); '
                        'export the fused model')
    check_finite(model.state_dict(), 'the model to export')
    model.eval()
    adapter = exported_part(model, kind)
    path = os.path.join(folder, FP32_FILE)
    check = _export_checked(adapter, example, path, exporter, opset, atol, rtol, logger)
    if any(True for _ in iter_repvgg_blocks(model)):
        graph = check_single_branch_graph(path, adapter, example)
        if not graph.ok:
            raise ExportError(f'the exported graph is not the single-branch one: '
                              f'{graph.describe()}')
        check['graph'] = graph.describe()
    with torch.no_grad():
        outputs = adapter(example)
    groups = output_groups(outputs) if kind == 'single_stage_detector' else None
    import onnx
    graph = onnx.load(path, load_external_data=False).graph

    def shape_of(value):
        return [d.dim_param or d.dim_value for d in value.type.tensor_type.shape.dim]

    head_weights = None
    if kind == 'two_stage_detector':
        head_weights = HEADS_FILE
        state = {k: v for k, v in model.state_dict().items() if k.startswith(
            tuple(f'{name}.' for name in TWO_STAGE_HEADS))}
        torch.save(state, os.path.join(folder, HEADS_FILE))
    cfg.dump(os.path.join(folder, CONFIG_FILE))
    model_cfg = cfg.model if isinstance(cfg.model, dict) else {}
    info = ModelInfo(
        kind=kind, exported=KINDS[kind][0], scope=cfg.get('default_scope'),
        model_type=str(model_cfg.get('type', type(model).__name__)),
        input=dict(name=graph.input[0].name, shape=shape_of(graph.input[0]),
                   dynamic_hw=check['dynamic_hw']),
        outputs=[dict(name=o.name, shape=shape_of(o)) for o in graph.output],
        output_groups=groups, preprocess=_jsonable(model_cfg.get('data_preprocessor') or {}),
        dataset_meta=_jsonable(dataset_meta or {}), opset=opset, exporter=check['exporter'],
        head_weights=head_weights,
        source_checkpoint=(dict(path=os.path.abspath(source_checkpoint),
                                sha256=sha256_of(source_checkpoint))
                           if source_checkpoint else None),
        check=check, versions=_versions())
    info.write(folder)
    logger.info(f'exported {kind} ({info.exported}) with the {info.exporter} exporter; '
                f'input {info.input["shape"]}, {len(info.outputs)} outputs')
    return info


def _jsonable(value):
    return json.loads(json.dumps(value, default=str))


def _versions() -> dict:
    import onnx
    import onnxruntime
    return dict(repvgg_mm=__version__, mmengine=str(mmengine.__version__),
                torch=str(torch.__version__), onnx=onnx.__version__,
                onnxruntime=onnxruntime.__version__,
                time=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds'))
