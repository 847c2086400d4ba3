"""RepVGG vs QARepVGG under INT8: the same recipe trains both blocks, fuses them, exports ONNX and
quantizes it with ONNX Runtime's static INT8 (the product's path, :mod:`repvgg_mm.deploy.int8`).

:func:`run_quantization_experiment` is what ``tools/analysis_tools/compare_blocks_int8.py`` runs
per block type; :func:`int8_speed` times the fused FP32 model (PyTorch eager and ONNX Runtime)
against its ONNX Runtime INT8 version at deployment size.
"""
import os
import tempfile
from dataclasses import asdict, dataclass, field
from typing import Dict, List, Optional, Union

import numpy as np
import torch
from mmengine.logging import MMLogger
from torch.utils.data import DataLoader

from repvgg_mm.apis.deployment import measure_latency
from repvgg_mm.datasets.fashion_mnist import DEBIAN_ROOT
from repvgg_mm.deploy.int8 import quantize_onnx, quantized_convs
from repvgg_mm.deploy.onnx_export import export_onnx
from repvgg_mm.deploy.runtime import create_session
from repvgg_mm.models.utils import fuse_repvgg_blocks, randomize_bn_
from repvgg_mm.testing import named_arch
from repvgg_mm.utils.compare import max_relative_error
from repvgg_mm.utils.errors import UserError

from . import toy_task
from .reference_models import repvgg_classifier
from .targets import INT8_DROP_FRACTION

BLOCK_TYPES = ('repvgg', 'qarepvgg', 'linear')


@dataclass
class QuantExperiment:
    """Settings of one INT8 experiment: the toy data, Fashion-MNIST or a class-folder dataset."""

    arch: Union[str, dict] = 'A0'
    block_type: str = 'repvgg'  # or 'qarepvgg', 'linear'
    dataset: str = 'toy'  # 'toy' or 'fashion-mnist' (data_root: class folders instead)
    fashion_mnist_root: str = DEBIAN_ROOT
    train_limit: Optional[int] = None  # Fashion-MNIST: the first N train / test images
    val_limit: Optional[int] = None
    image_size: int = 64
    train_per_class: int = 100
    val_per_class: int = 30
    data_root: Optional[str] = None  # folder with train/<class>/ and val/<class>/ instead
    batch_size: int = 32
    epochs: int = 8
    lr: float = 0.05
    calibration_batches: int = 4
    seed: int = 0


@dataclass
class QuantResult:
    accuracy: Dict[str, float] = field(default_factory=dict)
    checks: Dict[str, float] = field(default_factory=dict)
    data: str = ''
    num_val: int = 0
    int8_convs: int = 0

    def as_dict(self) -> dict:
        return asdict(self)


def _datasets(cfg: QuantExperiment):
    if cfg.dataset == 'fashion-mnist':
        train = toy_task.fashion_mnist_classification(cfg.fashion_mnist_root, 'train',
                                                      cfg.image_size, cfg.train_limit)
        val = toy_task.fashion_mnist_classification(cfg.fashion_mnist_root, 'test',
                                                    cfg.image_size, cfg.val_limit)
        return train, val, (f'Fashion-MNIST from {cfg.fashion_mnist_root} ({len(train)} train / '
                            f'{len(val)} test images, {cfg.image_size}px, grey repeated to RGB)')
    if cfg.dataset != 'toy':
        raise UserError(f"dataset must be 'toy' or 'fashion-mnist', got {cfg.dataset!r}")
    if cfg.data_root:
        return (toy_task.folder_classification(os.path.join(cfg.data_root, 'train'),
                                               cfg.image_size),
                toy_task.folder_classification(os.path.join(cfg.data_root, 'val'), cfg.image_size),
                f'class folders under {cfg.data_root}')
    return (toy_task.toy_classification('train', cfg.train_per_class, cfg.image_size, cfg.seed),
            toy_task.toy_classification('val', cfg.val_per_class, cfg.image_size, cfg.seed),
            f'embedded toy data rendered in memory ({cfg.train_per_class}+{cfg.val_per_class} '
            f'images per class, {cfg.image_size}px, seed {cfg.seed})')


def _num_classes(dataset) -> int:
    if hasattr(dataset, 'classes'):
        return len(dataset.classes)
    return int(dataset.tensors[1].max()) + 1


def _calibration(loader: DataLoader, count: int) -> List[np.ndarray]:
    batches = []
    for images, _ in loader:
        batches.append(images.numpy())
        if len(batches) == count:
            break
    return batches


def onnx_accuracy(path: str, loader: DataLoader) -> float:
    """Top-1 accuracy (percent) of an ONNX classifier (logits out) run by ONNX Runtime."""
    session = create_session(path)
    name = session.get_inputs()[0].name
    correct = total = 0
    for images, labels in loader:
        (logits, ) = session.run(None, {name: images.numpy()})
        correct += int((torch.from_numpy(logits).argmax(1) == labels).sum())
        total += labels.numel()
    return 100.0 * correct / total


def run_quantization_experiment(cfg: QuantExperiment, logger: Optional[MMLogger] = None
                                ) -> QuantResult:
    """Train a RepVGG classifier in FP32, fuse it, export it and quantize it with ONNX Runtime.

    Accuracies (percent, val split): ``fp32 train-time``, ``fp32 fused`` (PyTorch),
    ``fp32 onnxruntime`` and ``int8 ptq`` (ONNX Runtime static INT8, calibrated on
    ``calibration_batches`` training batches). ``checks``: the fuse error.
    """
    if cfg.block_type not in BLOCK_TYPES:
        raise UserError(f'block_type must be one of {BLOCK_TYPES}, got {cfg.block_type!r}')
    if cfg.calibration_batches < 1:
        raise UserError(f'calibration_batches must be >= 1, got {cfg.calibration_batches}')
    logger = logger or MMLogger.get_current_instance()
    torch.manual_seed(cfg.seed)
    train_set, val_set, data_note = _datasets(cfg)
    train_loader = toy_task.make_loader(train_set, cfg.batch_size, shuffle=True, seed=cfg.seed)
    val_loader = toy_task.make_loader(val_set, 64)
    result = QuantResult(data=data_note, num_val=len(val_set))
    acc = result.accuracy

    name = {'repvgg': 'RepVGG', 'qarepvgg': 'QARepVGG', 'linear': 'linear-scaling RepVGG'}[
        cfg.block_type]
    logger.info(f'training {name}-{cfg.arch if isinstance(cfg.arch, str) else "custom"} in FP32 '
                f'for {cfg.epochs} epochs on {data_note}')
    model = repvgg_classifier(named_arch(cfg.arch), _num_classes(train_set), cfg.block_type)
    toy_task.train_classifier(model, train_loader, cfg.epochs, cfg.lr, logger=logger)
    acc['fp32 train-time'] = toy_task.evaluate_accuracy(model, val_loader)
    fused = fuse_repvgg_blocks(model).eval()
    acc['fp32 fused'] = toy_task.evaluate_accuracy(fused, val_loader)
    probe = next(iter(val_loader))[0][:8]
    with torch.no_grad():
        result.checks['fuse max rel err'] = max_relative_error(model.eval()(probe), fused(probe))

    calibration = _calibration(train_loader, cfg.calibration_batches)
    with tempfile.TemporaryDirectory() as tmp:
        fp32, int8 = os.path.join(tmp, 'fp32.onnx'), os.path.join(tmp, 'int8.onnx')
        export_onnx(fused, probe[:1], fp32, logger=logger)
        logger.info(f'ONNX Runtime static INT8, {len(calibration)} calibration batches')
        quantize_onnx(fp32, int8, calibration)
        result.int8_convs = len(quantized_convs(int8))
        acc['fp32 onnxruntime'] = onnx_accuracy(fp32, val_loader)
        acc['int8 ptq'] = onnx_accuracy(int8, val_loader)
    for key, value in acc.items():
        logger.info(f'accuracy {key}: {value:.2f}%')
    return result


def int8_speed(arch: Union[str, dict] = 'A0', input_size: int = 224, batch: int = 8,
               threads: Optional[int] = 2, repeats: int = 7, warmup: int = 2, seed: int = 0,
               logger: Optional[MMLogger] = None, block_type: str = 'repvgg') -> Dict[str, float]:
    """Median seconds per batch of the fused FP32 model (PyTorch eager, ONNX Runtime) and its
    ONNX Runtime static INT8 version, interleaved in this process.

    Weights are random (random BN statistics before fusing); calibration uses the timing batch.
    """
    logger = logger or MMLogger.get_current_instance()
    generator = torch.Generator().manual_seed(seed)
    inputs = torch.randn(batch, 3, input_size, input_size, generator=generator)
    fused = fuse_repvgg_blocks(randomize_bn_(
        repvgg_classifier(named_arch(arch), block_type=block_type), generator)).eval()
    with tempfile.TemporaryDirectory() as tmp:
        fp32, int8 = os.path.join(tmp, 'fp32.onnx'), os.path.join(tmp, 'int8.onnx')
        export_onnx(fused, inputs[:1], fp32, logger=logger)
        quantize_onnx(fp32, int8, [inputs.numpy()])
        logger.info(f'timing FP32 vs INT8 at batch {batch}, {input_size}x{input_size}')
        ms = measure_latency({'fp32 fused': fused, 'fp32 onnxruntime': fp32, 'int8': int8},
                             inputs, threads, repeats, warmup)
    return {name: value / 1000.0 for name, value in ms.items()}


def report_lines(result: dict, speed_size: int, speed_batch: int, threads: int) -> List[str]:
    """One block type's result (:meth:`QuantResult.as_dict` plus ``block_type``) as text."""
    acc = result['accuracy']
    lines = [f'{result["block_type"]}: data: {result["data"]} ({result["num_val"]} val images)']
    lines += [f'  top-1 {name:<18} {value:6.2f}%' for name, value in acc.items()]
    lines.append(f'  INT8 vs FP32 fused: {acc["int8 ptq"] - acc["fp32 fused"]:+.2f} points '
                 f'({result["int8_convs"]} INT8 convs)')
    lines += [f'  {name}: {value:.2e}' for name, value in result['checks'].items()]
    speeds = result.get('seconds_per_batch')
    if speeds:
        base = speeds['fp32 fused']
        lines.append(f'  speed, batch {speed_batch}, {speed_size}x{speed_size}, {threads} threads '
                     '(median s/batch):')
        lines += [f'    {name:<24} {seconds:.4f} s  ({base / seconds:.2f}x vs fp32 fused)'
                  for name, seconds in speeds.items()]
    return lines


def comparison_table(results: Dict[str, dict]) -> str:
    """FP32 and INT8 top-1, the drop, INT8 speed per block type, and the target's verdict
    (QARepVGG's drop within :data:`~repvgg_mm.benchmark.targets.INT8_DROP_FRACTION` of
    RepVGG's)."""
    rows = ['| block | FP32 top-1 (fused) | INT8 top-1 (onnxruntime) | drop | INT8 s/batch |',
            '|---|---|---|---|---|']
    for block_type, result in results.items():
        acc = result['accuracy']
        speed = result.get('seconds_per_batch', {}).get('int8')
        rows.append(f'| {block_type} | {acc["fp32 fused"]:.2f} | {acc["int8 ptq"]:.2f} | '
                    f'{acc["fp32 fused"] - acc["int8 ptq"]:.2f} | '
                    f'{f"{speed:.4f}" if speed else "-"} |')
    drops = {k: r['accuracy']['fp32 fused'] - r['accuracy']['int8 ptq'] for k, r in results.items()}
    met = drops['qarepvgg'] <= INT8_DROP_FRACTION.bound * max(drops['repvgg'], 0)
    rows.append(f'\nQARepVGG INT8 drop {INT8_DROP_FRACTION}: {"met" if met else "not met"} '
                f'({drops["qarepvgg"]:.2f} vs {drops["repvgg"]:.2f} points)')
    return '\n'.join(rows)
