"""The deployment table: trained configs through every deployment path, scored by their own
evaluators and timed side by side in one process.

For each case (a config, its training-time checkpoint, optional ``--cfg-options``):

* **fused PyTorch**: the deploy pair written by the whole-model converter, scored by
  ``tools/test.py``'s test loop;
* **ONNX Runtime FP32**, **full INT8** and the **partial INT8** that ``max_drop`` picks (the fewest
  most-sensitive convs kept in floating point whose metric drop stays within ``max_drop``), all by
  :func:`repvgg_mm.apis.deployment.quantize_model` (the model folder of
  ``tools/deployment/quantize.py --val --max-drop D``);
* **latency** of the exported part (batch 1) at one fixed size for all four, interleaved medians:
  the fused model is exported again at that size and quantized with the calibration images
  resized to it (ranges only change values, not speed); the partial model keeps the convs the
  accuracy search kept.

:func:`speed_row` is the speed target of the deployment issue: a fused PSPNet-A0 (random weights,
BN statistics too) at 512x512, batch 1: PyTorch FP32 eager vs ONNX Runtime FP32 and INT8.
"""
import os
from dataclasses import asdict, dataclass, field
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from mmengine.logging import MMLogger

from repvgg_mm.apis.deployment import (
    evaluate,
    load_deploy_model,
    measure_latency,
    quantize_model,
)
from repvgg_mm.conversion import convert_whole_model, write_conversion
from repvgg_mm.deploy.int8 import preprocessed_inputs, quantize_onnx
from repvgg_mm.deploy.model_folder import FP32_FILE, export_to_folder, exported_part
from repvgg_mm.engine import train
from repvgg_mm.models import build_analysis_model
from repvgg_mm.utils.config import load_config
from repvgg_mm.utils.errors import UserError
from repvgg_mm.utils.fileio import atomic_output_dir

from .machine import cpu_name, has_vnni
from .targets import Target

# metrics shown per codebase: (name in the evaluator's output, label, scale to the shown unit)
SHOWN_METRICS = {'mIoU': ('mIoU', 1.0), 'coco/bbox_mAP': ('bbox mAP', 1.0),
                 'coco/segm_mAP': ('segm mAP', 1.0), 'accuracy/top1': ('top-1', 1.0)}
LATENCY_NAMES = ('pytorch fp32', 'onnxruntime fp32', 'int8 full', 'int8 partial')
#: the deployment issue's speed target: ONNX Runtime INT8 vs the fused PyTorch FP32 eager model
INT8_SPEEDUP = Target('min', 2.0, unit='x')


@dataclass
class Case:
    """One row: ``config`` trained (``train_options``: extra ``--cfg-options`` of training and of
    every later step, e.g. a block type) into ``<work_dir>/<name>/train``."""
    name: str
    config: str
    options: Dict[str, object] = field(default_factory=dict)


#: the toy configs of the deployment table (trained from scratch on the embedded data)
TOY_CASES = (
    Case('PSPNet-A0', 'configs/toy/pspnet_repvgg_a0_toy.py'),
    Case('DeepLabV3+-A0', 'configs/toy/deeplabv3plus_repvgg_a0_toy.py'),
    Case('UPerNet-A0', 'configs/toy/upernet_repvgg_a0_toy.py'),
    Case('PSPNet-QARepVGG-A0', 'configs/toy/pspnet_repvgg_a0_toy.py',
         {'model.backbone.block_type': 'qarepvgg'}),
    Case('RetinaNet-A0', 'configs/toy/retinanet_repvgg_a0_toy.py'),
    Case('Mask R-CNN-A0', 'configs/toy/mask_rcnn_repvgg_a0_toy.py'),
    Case('A0 classifier', 'configs/toy/repvgg_a0_toy_cls.py'),
)


def trained_checkpoint(case: Case, work_dir: str, logger: MMLogger) -> str:
    """The last checkpoint of the case's training run; trained first when there is none."""
    train_dir = os.path.join(work_dir, 'train')
    record = os.path.join(train_dir, 'last_checkpoint')
    if not os.path.isfile(record):
        logger.info(f'{case.name}: training {case.config} into {train_dir}')
        train(case.config, work_dir=train_dir, cfg_options=dict(case.options))
    with open(record, encoding='utf-8') as handle:
        return handle.read().strip()


def _resized(inputs: Sequence[np.ndarray], size: Sequence[int]) -> List[np.ndarray]:
    return [F.interpolate(torch.from_numpy(x), size=tuple(size), mode='bilinear',
                          align_corners=False).numpy() for x in inputs]


def _shown(metrics: Dict[str, float]) -> Dict[str, float]:
    return {key: metrics[key] for key in SHOWN_METRICS if key in metrics}


def measure_case(case: Case, checkpoint: str, work_dir: str, *, max_drop: float = 1.0,
                 calib: int = 32, latency_size: Sequence[int] = (512, 512), threads: int = 2,
                 repeats: int = 7, logger: Optional[MMLogger] = None) -> dict:
    """The metrics and latencies of one case (see the module docstring); files in ``work_dir``.

    The checkpoint is fused once, by the whole-model converter with its proof; every later step
    starts from the deploy pair it writes (the case's ``options`` are in that deploy config).
    """
    logger = logger or MMLogger.get_current_instance()
    # fused PyTorch, scored as tools/test.py scores the converter's deploy pair
    result = convert_whole_model(case.config, checkpoint, cfg_options=case.options, logger=logger)
    deploy_cfg, deploy_ckpt = write_conversion(result, case.config, checkpoint,
                                               os.path.join(work_dir, 'fused'), force=True)
    fused = evaluate(deploy_cfg, deploy_ckpt)
    logger.info(f'{case.name}: fused PyTorch {_shown(fused)}')
    # ONNX Runtime FP32, full and partial INT8 (the search of --max-drop)
    report = quantize_model(deploy_cfg, deploy_ckpt, os.path.join(work_dir, 'onnx'), calib=calib,
                            max_drop=max_drop, val=True, force=True, latency_repeats=1,
                            logger=logger)
    metric = report['metric']
    # latency at one fixed size: the same fused model exported at that size
    cfg, model, _ = load_deploy_model(deploy_cfg, deploy_ckpt, logger=logger)
    calibration = _resized(preprocessed_inputs(cfg, model.data_preprocessor, 'train', calib),
                           latency_size)
    example = torch.from_numpy(calibration[0])
    latency_dir = os.path.join(work_dir, 'latency')
    with atomic_output_dir(latency_dir, replace=os.path.isdir(latency_dir)) as tmp:
        export_to_folder(tmp, cfg, model, example, logger=logger)
        fp32 = os.path.join(tmp, FP32_FILE)
        full, partial = os.path.join(tmp, 'int8_full.onnx'), os.path.join(tmp, 'int8_partial.onnx')
        quantize_onnx(fp32, full, calibration)
        quantize_onnx(fp32, partial, calibration, keep_fp32=report['kept_fp32'])
        latency = measure_latency({'pytorch fp32': exported_part(model), 'onnxruntime fp32': fp32,
                                   'int8 full': full, 'int8 partial': partial}, example, threads,
                                  repeats)
    row = dict(name=case.name, config=case.config, options=case.options, checkpoint=checkpoint,
               metric=metric, fused_pytorch=_shown(fused),
               onnxruntime_fp32=_shown(report['metrics']['fp32']),
               int8_full=_shown(report['metrics']['int8 full']),
               int8_partial=_shown(report['metrics']['int8']),
               kept_fp32=len(report['kept_fp32']), quantized_convs=report['quantized_convs'],
               search=report['search'], latency_ms=latency,
               latency_input=[1, 3, *latency_size])
    logger.info(f'{case.name}: {row}')
    return row


def speed_row(config: str = 'configs/pspnet_repvgg_a0.py', size: Sequence[int] = (512, 512),
              threads: int = 2, repeats: int = 7, calib: int = 8, seed: int = 0,
              work_dir: str = 'work_dirs/deployment/speed',
              logger: Optional[MMLogger] = None) -> dict:
    """Fused ``config`` (random weights and BN statistics) at ``size``, batch 1: PyTorch FP32
    eager vs ONNX Runtime FP32 and full INT8 (calibrated on ``calib`` random inputs)."""
    logger = logger or MMLogger.get_current_instance()
    cfg = load_config(config)
    cfg.model.backbone.pop('init_cfg', None)
    _, model = build_analysis_model(cfg, seed=seed, fused_twin=True)
    generator = torch.Generator().manual_seed(seed)
    calibration = [torch.randn(1, 3, *size, generator=generator).numpy() for _ in range(calib)]
    example = torch.from_numpy(calibration[0])
    with atomic_output_dir(work_dir, replace=os.path.isdir(work_dir)) as tmp:
        export_to_folder(tmp, cfg, model, example, logger=logger)
        fp32, int8 = os.path.join(tmp, FP32_FILE), os.path.join(tmp, 'int8.onnx')
        quantize_onnx(fp32, int8, calibration)
        latency = measure_latency({'pytorch fp32': exported_part(model), 'onnxruntime fp32': fp32,
                                   'onnxruntime int8': int8}, example, threads, repeats)
    base = latency['pytorch fp32']
    speedup = {name: base / ms for name, ms in latency.items()}
    return dict(config=config, input=[1, 3, *size], latency_ms=latency, speedup=speedup,
                target=str(INT8_SPEEDUP), verdict=INT8_SPEEDUP.verdict(speedup['onnxruntime int8']),
                threads=threads, repeats=repeats, cpu=cpu_name(), vnni=has_vnni())


def _cell(values: Dict[str, float], metric: str, extra: Sequence[str] = ()) -> str:
    shown = [metric] + [m for m in extra if m in values and m != metric]
    return ' / '.join(f'{values[m]:.2f}' if 'mIoU' in m or 'top1' in m else f'{values[m]:.3f}'
                      for m in shown if m in values)


def markdown_table(rows: Sequence[dict]) -> str:
    """The deployment table: metrics of the four paths, convs kept, latencies and their ratios."""
    size = 'x'.join(map(str, rows[0]['latency_input'][2:])) if rows else ''
    lines = ['| model | metric | fused PyTorch | ORT FP32 | INT8 full | INT8 partial (convs kept '
             f'FP32) | latency ms at {size}, batch 1: PyTorch / ORT FP32 / INT8 full / INT8 '
             'partial | INT8 partial vs PyTorch |',
             '|---|---|---|---|---|---|---|---|']
    for r in rows:
        extra = ['coco/segm_mAP'] if 'coco/segm_mAP' in r['fused_pytorch'] else []
        label = ' / '.join(SHOWN_METRICS[m][0] for m in [r['metric']] + extra)
        lat = r['latency_ms']
        lines.append(
            f"| {r['name']} | {label} | {_cell(r['fused_pytorch'], r['metric'], extra)} | "
            f"{_cell(r['onnxruntime_fp32'], r['metric'], extra)} | "
            f"{_cell(r['int8_full'], r['metric'], extra)} | "
            f"{_cell(r['int8_partial'], r['metric'], extra)} ({r['kept_fp32']} of "
            f"{r['quantized_convs']}) | "
            + ' / '.join(f'{lat[n]:.1f}' for n in LATENCY_NAMES)
            + f" | {lat['pytorch fp32'] / lat['int8 partial']:.2f}x |")
    return '\n'.join(lines)


def speed_table(speed: dict) -> str:
    lat, up = speed['latency_ms'], speed['speedup']
    shape = 'x'.join(map(str, speed['input']))
    return '\n'.join([
        f'| {os.path.basename(speed["config"])} fused (random weights), {shape} | ms | vs PyTorch '
        f'FP32 | target |',
        '|---|---|---|---|',
        *[f'| {name} | {lat[name]:.1f} | {up[name]:.2f}x | '
          + (f'{speed["target"]}: {speed["verdict"]}' if name == 'onnxruntime int8' else '-')
          + ' |' for name in lat]])


def check_cases(cases: Sequence[Case]) -> None:
    """Every case's config loads (before any training or measurement)."""
    if not cases:
        raise UserError('no case to measure')
    names = [case.name for case in cases]
    if len(set(names)) != len(names):
        raise UserError(f'case names must be unique, got {names}')
    for case in cases:
        load_config(case.config, case.options)


def case_dicts(cases: Sequence[Case]) -> List[dict]:
    return [asdict(case) for case in cases]
