"""End-to-end INT8 experiment on the embedded toy data: train, fuse, PTQ, insert-BN + QAT, timing.

:func:`run_quantization_experiment` is what ``tools/deployment/quantize.py`` runs;
:func:`int8_speed` times the
FP32 fused model against its INT8 version at deployment size.
"""
import copy
import os
from dataclasses import asdict, dataclass, field
from typing import Dict, List, Optional, Union

import torch
from mmengine.logging import MMLogger
from torch import Tensor

import toy_task
from repvgg_mm.datasets.fashion_mnist import DEBIAN_ROOT
from repvgg_mm.deploy import quantization as quant
from repvgg_mm.deploy.cpu_optimize import DEFAULT_CPU_VARIANT, optimize_for_cpu
from repvgg_mm.models import RepVGG
from repvgg_mm.models.utils import fuse_repvgg_blocks, randomize_bn_
from repvgg_mm.utils.analysis import LinearClassifierNet
from repvgg_mm.utils.compare import max_relative_error
from repvgg_mm.utils.errors import UserError
from repvgg_mm.utils.timing import time_interleaved, torch_threads

# A RepVGG small enough to train on the toy data in seconds (tests, quick runs).
TINY_ARCH = dict(num_blocks=(1, 2, 2, 1), width_factor=(0.5, 0.5, 0.5, 1.0))


@dataclass
class QuantExperiment:
    """Settings of one INT8 experiment: the toy data, Fashion-MNIST or a class-folder dataset."""

    arch: Union[str, dict] = 'A0'
    block_type: str = 'repvgg'  # or 'qarepvgg'
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
    mode: str = 'ptq'  # 'ptq' or 'qat' (QAT also reports PTQ)
    qat_epochs: int = 2
    qat_lr: float = 0.005
    backend: str = quant.DEFAULT_BACKEND
    seed: int = 0


@dataclass
class QuantResult:
    accuracy: Dict[str, float] = field(default_factory=dict)
    checks: Dict[str, float] = field(default_factory=dict)
    data: str = ''
    num_val: int = 0

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


def _calibration(loader, count: int) -> List[Tensor]:
    batches = []
    for images, _ in loader:
        batches.append(images)
        if len(batches) == count:
            break
    return batches


def _finetune_qat(prepared, loader, cfg: QuantExperiment, logger: MMLogger) -> None:
    """QAT: train with fake quantization; the last epoch with frozen observers and BN statistics."""
    from torch.ao.nn.intrinsic.qat import freeze_bn_stats
    from torch.ao.quantization import disable_observer
    for epoch in range(cfg.qat_epochs):
        if cfg.qat_epochs > 1 and epoch == cfg.qat_epochs - 1:
            prepared.apply(disable_observer)
            prepared.apply(freeze_bn_stats)
        toy_task.train_classifier(prepared, loader, epochs=1, lr=cfg.qat_lr, logger=logger)


def run_quantization_experiment(cfg: QuantExperiment, logger: Optional[MMLogger] = None
                                ) -> QuantResult:
    """Train a RepVGG classifier in FP32, fuse it, quantize it (PTQ, and QAT if asked).

    Accuracies (percent, val split): ``fp32 train-time``, ``fp32 fused``, ``int8 ptq``; with
    ``mode='qat'`` also ``fp32 fused+bn`` (must equal fused), ``int8 qat before`` (calibrated,
    not fine-tuned) and ``int8 qat after``. ``checks`` holds the max relative output errors of the
    fuse and the insert-BN steps.
    """
    if cfg.mode not in ('ptq', 'qat'):
        raise ValueError(f"mode must be 'ptq' or 'qat', got {cfg.mode!r}")
    logger = logger or MMLogger.get_current_instance()
    torch.manual_seed(cfg.seed)
    train_set, val_set, data_note = _datasets(cfg)
    train_loader = toy_task.make_loader(train_set, cfg.batch_size, shuffle=True, seed=cfg.seed)
    val_loader = toy_task.make_loader(val_set, 64)
    result = QuantResult(data=data_note, num_val=len(val_set))
    acc = result.accuracy

    name = {'repvgg': 'RepVGG', 'qarepvgg': 'QARepVGG'}.get(cfg.block_type, cfg.block_type)
    logger.info(f'training {name}-{cfg.arch if isinstance(cfg.arch, str) else "custom"} in FP32 '
                f'for {cfg.epochs} epochs on {data_note}')
    model = LinearClassifierNet(RepVGG(cfg.arch, block_type=cfg.block_type),
                                _num_classes(train_set))
    toy_task.train_classifier(model, train_loader, cfg.epochs, cfg.lr, logger=logger)
    acc['fp32 train-time'] = toy_task.evaluate_accuracy(model, val_loader)
    fused = fuse_repvgg_blocks(model).eval()
    acc['fp32 fused'] = toy_task.evaluate_accuracy(fused, val_loader)
    probe = next(iter(val_loader))[0][:8]
    with torch.no_grad():
        result.checks['fuse max rel err'] = max_relative_error(model.eval()(probe), fused(probe))

    calib = _calibration(train_loader, cfg.calibration_batches)
    logger.info(f'post-training quantization ({cfg.backend}), {len(calib)} calibration batches')
    int8 = quant.quantize_ptq(fused, calib, cfg.backend)
    acc['int8 ptq'] = toy_task.evaluate_accuracy(int8, val_loader)

    if cfg.mode == 'qat':
        with_bn = quant.insert_bn_after_fused_convs(fused, calib)
        acc['fp32 fused+bn'] = toy_task.evaluate_accuracy(with_bn, val_loader)
        with torch.no_grad():
            result.checks['insert-bn max rel err'] = max_relative_error(fused(probe),
                                                                        with_bn.eval()(probe))
        prepared = quant.prepare_qat(with_bn, calib[0], cfg.backend)
        prepared.eval()
        with torch.no_grad():
            for batch in calib:
                prepared(batch)
        acc['int8 qat before'] = toy_task.evaluate_accuracy(quant.convert_qat(prepared),
                                                            val_loader)
        logger.info(f'QAT fine-tuning for {cfg.qat_epochs} epochs (lr {cfg.qat_lr})')
        _finetune_qat(prepared, train_loader, cfg, logger)
        acc['int8 qat after'] = toy_task.evaluate_accuracy(quant.convert_qat(prepared), val_loader)
    for name, value in acc.items():
        logger.info(f'accuracy {name}: {value:.2f}%')
    return result


def int8_speed(arch: Union[str, dict] = 'A0', input_size: int = 224, batch: int = 8,
               threads: Optional[int] = 2, repeats: int = 7, warmup: int = 2,
               backend: str = quant.DEFAULT_BACKEND, seed: int = 0,
               logger: Optional[MMLogger] = None, block_type: str = 'repvgg'
               ) -> Dict[str, float]:
    """Median seconds per batch of the fused FP32 model (eager, optimised) and its INT8 version.

    Weights are random (random BN statistics before fusing); calibration uses the timing batch.
    The INT8 model also runs TorchScript-frozen (``int8 jit``), which drops FX's Python overhead.
    """
    logger = logger or MMLogger.get_current_instance()
    with torch_threads(threads):
        generator = torch.Generator().manual_seed(seed)
        inputs = torch.randn(batch, 3, input_size, input_size, generator=generator)
        fused = fuse_repvgg_blocks(randomize_bn_(
            LinearClassifierNet(RepVGG(arch, block_type=block_type)), generator)).eval()
        int8 = quant.quantize_ptq(fused, [inputs], backend)
        with torch.no_grad():
            int8_jit = torch.jit.freeze(torch.jit.trace(int8, inputs))
        runners = {'fp32 fused': fused,
                   f'fp32 fused {DEFAULT_CPU_VARIANT}': optimize_for_cpu(copy.deepcopy(fused),
                                                                        inputs),
                   'int8': int8, 'int8 jit': int8_jit}

        def workload(runner):
            def run():
                with torch.inference_mode():
                    runner(inputs)
            return run

        logger.info(f'timing FP32 vs INT8 at batch {batch}, {input_size}x{input_size}')
        timings = time_interleaved({k: workload(v) for k, v in runners.items()}, repeats, warmup)
    return {name: timing.median for name, timing in timings.items()}
