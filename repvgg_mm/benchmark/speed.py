"""Deployment speed of RepVGG on the CPU: training-time vs fused vs references, measured side
by side (``tools/analysis_tools/benchmark.py``).

All workloads of one benchmark are timed in interleaved rounds (see :func:`time_interleaved`) in one
process, so ratios stay meaningful on a shared, noisy machine. Four benchmarks:

- :func:`classification_benchmark`: RepVGG training-time (eval mode) and fused (optionally also
  the fused model on ONNX Runtime, FP32 and static INT8), torchvision ResNet-18/34/50/101,
  params/FLOPs, img/s, fused speed-up, achieved GFLOP/s against a large GEMM; rows for a CSV and a
  speed-vs-accuracy plot with the paper's ImageNet top-1.
- :func:`segmentation_benchmark`: mmseg PSPNet with RepVGG (training-time and fused) vs mmseg's
  PSPNet-R50-d8 at the same input size.
- :func:`variants_benchmark`: the fused model under each CPU variant of
  :mod:`repvgg_mm.deploy.cpu_optimize` and thread count.
- :func:`targets_benchmark`: our A0 against timm's RepVGG (inference and training step) and the GEMM
  roofline, with the project's speed targets checked.
"""
import os
import tempfile
from dataclasses import asdict, dataclass, field
from typing import Dict, List, Optional, Sequence

import torch
from mmengine.logging import MMLogger
from torch import Tensor

from repvgg_mm.deploy.cpu_optimize import CPU_VARIANTS, DEFAULT_CPU_VARIANT, optimize_for_cpu
from repvgg_mm.deploy.export_targets import model_config, pspnet_config
from repvgg_mm.deploy.int8 import quantize_onnx
from repvgg_mm.deploy.onnx_export import ExportAdapter, export_onnx
from repvgg_mm.deploy.runtime import create_session
from repvgg_mm.models import PAPER_TABLE, build_analysis_model
from repvgg_mm.models.utils import fuse_repvgg_blocks, randomize_bn_
from repvgg_mm.utils.analysis import complexity
from repvgg_mm.utils.timing import Timing, time_interleaved, torch_threads

from . import reference_models as model_builders
from .machine import machine_summary
from .targets import SPEED_TARGETS, paired_ratio
from .workloads import Workload, inference_workload, train_step_workload

PAPER_ARCHS = ('A0', 'A1', 'A2', 'B0', 'B1g4', 'B1g2', 'B1', 'B2g4', 'B2')
RESNET_DEPTHS = (18, 34, 50, 101)
GEMM_SIZE = 2048


@dataclass
class BenchRow:
    """One measured workload; ``macs`` per image (0 when not a network)."""

    name: str
    family: str
    form: str
    batch: int
    input_size: str
    threads: int
    params: float = 0.0
    macs: float = 0.0
    seconds: float = 0.0
    best_seconds: float = 0.0
    spread: float = 0.0
    images_per_s: float = 0.0
    speedup: Optional[float] = None
    gflops: float = 0.0
    gemm_fraction: Optional[float] = None
    paper_top1: Optional[float] = None
    samples: List[float] = field(default_factory=list, repr=False)  # seconds, one per round

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class Candidate:
    """A workload to time and how to describe it."""

    name: str
    family: str
    form: str
    workload: Workload
    params: float = 0.0
    macs: float = 0.0
    paper_top1: Optional[float] = None
    flops_per_call: float = 0.0


@dataclass
class BenchResult:
    rows: List[BenchRow]
    gemm_gflops: float
    checks: Dict[str, dict] = field(default_factory=dict)


def _logger(logger: Optional[MMLogger]) -> MMLogger:
    return logger or MMLogger.get_current_instance()


def gemm_candidates(size: int = GEMM_SIZE) -> List[Candidate]:
    """Large fp32 GEMMs: ``torch.mm`` (BLAS) and the same product as a oneDNN 1x1 convolution.

    The convolution runs in NHWC, where it is a plain GEMM for oneDNN (M = size pixels, K = N =
    size channels); on AMD CPUs it is the faster of the two, hence the stricter roofline.
    """
    a = torch.randn(size, size)
    b = torch.randn(size, size)
    out = torch.empty(size, size)
    pixels = torch.randn(1, size, 32, size // 32).contiguous(memory_format=torch.channels_last)
    kernel = torch.randn(size, size, 1, 1).contiguous(memory_format=torch.channels_last)
    flops = 2.0 * size ** 3

    def blas():
        torch.mm(a, b, out=out)

    def onednn():
        with torch.inference_mode():
            torch.nn.functional.conv2d(pixels, kernel)

    return [Candidate(f'GEMM {size}^3 (torch.mm)', 'GEMM', 'roofline', blas, flops_per_call=flops),
            Candidate(f'GEMM {size}^3 (oneDNN 1x1 conv)', 'GEMM', 'roofline', onednn,
                      flops_per_call=flops)]


def _rows_from_timings(candidates: List[Candidate], timings: Dict[str, Timing], batch: int,
                       input_size: str, threads: int) -> List[BenchRow]:
    rows = []
    for cand in candidates:
        timing = timings[cand.name]
        if cand.flops_per_call:
            flops = cand.flops_per_call
        else:  # inference: 2 FLOPs per multiply-add; a training step's FLOPs are not counted
            flops = 0.0 if cand.form == 'train step' else 2.0 * cand.macs * batch
        rows.append(BenchRow(
            cand.name, cand.family, cand.form, batch, input_size, threads, params=cand.params,
            macs=cand.macs, seconds=timing.median, best_seconds=timing.best, spread=timing.spread,
            images_per_s=0.0 if cand.family == 'GEMM' else batch / timing.median,
            gflops=flops / timing.median / 1e9, paper_top1=cand.paper_top1,
            samples=list(timing.samples)))
    return rows


def _attach_ratios(rows: List[BenchRow], gemm_gflops: float) -> None:
    """Speed-up of each model over its family's training-time row; GFLOP/s over the GEMM's."""
    train_time = {(r.family, r.name.split(' (')[0]): r for r in rows if r.form == 'train-time'}
    for row in rows:
        reference = train_time.get((row.family, row.name.split(' (')[0]))
        if reference is not None and row is not reference and row.form != 'train step':
            row.speedup = reference.seconds / row.seconds
        if row.family != 'GEMM' and row.gflops and gemm_gflops:
            row.gemm_fraction = row.gflops / gemm_gflops


def measure(candidates: List[Candidate], batch: int, input_size: str, threads: int,
            repeats: int, warmup: int, logger: Optional[MMLogger] = None) -> BenchResult:
    """Time all candidates interleaved; the roofline is the faster of the GEMM rows (if any)."""
    logger = _logger(logger)
    logger.info(f'timing {len(candidates)} workloads: {warmup} warm-up + {repeats} interleaved '
                f'rounds ({machine_summary()})')

    def on_round(index):
        logger.info(f'round {index + 1}/{repeats} done')

    timings = time_interleaved({c.name: c.workload for c in candidates}, repeats=repeats,
                               warmup=warmup, on_round=on_round)
    rows = _rows_from_timings(candidates, timings, batch, input_size, threads)
    gemm = max([r.gflops for r in rows if r.family == 'GEMM'], default=0.0)
    _attach_ratios(rows, gemm)
    return BenchResult(rows, gemm)


def onnxruntime_candidates(name: str, fused: torch.nn.Module, inputs: Tensor, folder: str,
                           stats: dict, top1: Optional[float], threads: Optional[int],
                           calibration_batches: int = 8, seed: int = 0) -> List[Candidate]:
    """The fused model exported to ONNX and run by ONNX Runtime in FP32 and in static INT8
    (:func:`repvgg_mm.deploy.int8.quantize_onnx`, calibrated on random batches: the ranges change
    the values, not the speed). Files go to ``folder``."""
    fp32, int8 = os.path.join(folder, f'{name}.onnx'), os.path.join(folder, f'{name}_int8.onnx')
    export_onnx(fused, inputs[:1], fp32)
    generator = torch.Generator().manual_seed(seed + 1)
    quantize_onnx(fp32, int8, [torch.randn(inputs.shape, generator=generator).numpy()
                               for _ in range(calibration_batches)])
    array = inputs.numpy()
    cands = []
    for path, variant in ((fp32, 'onnxruntime fp32'), (int8, 'onnxruntime int8')):
        session = create_session(path, threads)
        feed = {session.get_inputs()[0].name: array}
        cands.append(Candidate(f'{name} (fused, {variant})', 'RepVGG', f'fused+{variant}',
                               lambda s=session, f=feed: s.run(None, f), stats['params'],
                               stats['flops'], top1))
    return cands


def repvgg_candidates(arch: str, inputs: Tensor, optimize: Optional[str], seed: int,
                      logger: MMLogger, onnx_folder: Optional[str] = None) -> List[Candidate]:
    """RepVGG-``arch`` classifier: training-time (eval mode) and fused (+ optimised) workloads;
    with ``onnx_folder`` also the fused model on ONNX Runtime, FP32 and INT8."""
    generator = torch.Generator().manual_seed(seed)
    train_net = randomize_bn_(model_builders.repvgg_classifier(arch), generator).eval()
    fused_net = fuse_repvgg_blocks(train_net).eval()
    shape = tuple(inputs.shape[1:])
    train_stats, fused_stats = complexity(train_net, shape), complexity(fused_net, shape)
    name = f'RepVGG-{arch}'
    top1 = PAPER_TABLE.get(name, {}).get('top1')
    logger.info(f'{name}: {fused_stats["params"] / 1e6:.2f} M params, '
                f'{fused_stats["flops"] / 1e9:.2f} GMACs fused')
    cands = [
        Candidate(f'{name} (train-time)', 'RepVGG', 'train-time',
                  inference_workload(train_net, inputs), train_stats['params'],
                  train_stats['flops'], top1),
        Candidate(f'{name} (fused)', 'RepVGG', 'fused', inference_workload(fused_net, inputs),
                  fused_stats['params'], fused_stats['flops'], top1)]
    if optimize:
        runner = optimize_for_cpu(fused_net, inputs, optimize)
        cands.append(Candidate(f'{name} (fused, {optimize})', 'RepVGG', f'fused+{optimize}',
                               inference_workload(runner, inputs), fused_stats['params'],
                               fused_stats['flops'], top1))
    if onnx_folder is not None:
        logger.info(f'{name}: exporting the fused model to ONNX and quantizing it (INT8)')
        cands += onnxruntime_candidates(name, fused_net, inputs, onnx_folder, fused_stats, top1,
                                        torch.get_num_threads(), seed=seed)
    return cands


def resnet_candidates(depth: int, inputs: Tensor, optimize: Optional[str]) -> List[Candidate]:
    model = model_builders.torchvision_resnet(depth).eval()
    stats = complexity(model, tuple(inputs.shape[1:]))
    name = f'ResNet-{depth}'
    top1 = PAPER_TABLE.get(name, {}).get('top1')
    cands = [Candidate(name, 'ResNet', 'reference', inference_workload(model, inputs),
                       stats['params'], stats['flops'], top1)]
    if optimize:
        runner = optimize_for_cpu(model, inputs, optimize)
        cands.append(Candidate(f'{name} ({optimize})', 'ResNet', f'reference+{optimize}',
                               inference_workload(runner, inputs), stats['params'],
                               stats['flops'], top1))
    return cands


def classification_benchmark(archs: Sequence[str] = PAPER_ARCHS,
                             resnets: Sequence[int] = RESNET_DEPTHS, input_size: int = 224,
                             batch: int = 8, threads: Optional[int] = None, repeats: int = 5,
                             warmup: int = 1, optimize: Optional[str] = None,
                             gemm_size: int = GEMM_SIZE, seed: int = 0, onnxruntime: bool = False,
                             logger: Optional[MMLogger] = None) -> BenchResult:
    """RepVGG training-time vs fused (vs ONNX Runtime FP32/INT8 with ``onnxruntime``) vs
    torchvision ResNets (+ GEMM roofline), interleaved."""
    logger = _logger(logger)
    with torch_threads(threads), tempfile.TemporaryDirectory(prefix='repvgg_mm_ort_') as folder:
        inputs = torch.randn(batch, 3, input_size, input_size,
                             generator=torch.Generator().manual_seed(seed))
        cands: List[Candidate] = []
        for arch in archs:
            cands += repvgg_candidates(arch, inputs, optimize, seed, logger,
                                       folder if onnxruntime else None)
        for depth in resnets:
            logger.info(f'building ResNet-{depth}')
            cands += resnet_candidates(depth, inputs, optimize)
        cands += gemm_candidates(gemm_size)
        return measure(cands, batch, f'{input_size}x{input_size}', torch.get_num_threads(),
                       repeats, warmup, logger)


def segmentation_benchmark(archs: Sequence = ('A0', ), input_size: Sequence[int] = (512, 512),
                           batch: int = 1, threads: Optional[int] = None, repeats: int = 3,
                           warmup: int = 1, optimize: Optional[str] = None,
                           with_r50: bool = True, num_classes: int = 19,
                           head_channels: Optional[int] = None, gemm_size: int = GEMM_SIZE,
                           seed: int = 0, logger: Optional[MMLogger] = None) -> BenchResult:
    """mmseg PSPNet-RepVGG (training-time, fused) vs PSPNet-R50-d8 at the same input size.

    The segmentors run in ``mode='tensor'`` (backbone + PSP head; the auxiliary head is
    training-only).
    """
    logger = _logger(logger)
    height, width = input_size
    with torch_threads(threads):
        generator = torch.Generator().manual_seed(seed)
        inputs = torch.randn(batch, 3, height, width, generator=generator)
        shape = (3, height, width)
        cands: List[Candidate] = []
        for arch in archs:
            name = f'PSPNet-RepVGG-{arch}' if isinstance(arch, str) else 'PSPNet-RepVGG-custom'
            cfg = pspnet_config('repvgg', arch, num_classes, channels=head_channels)
            train_net = randomize_bn_(build_analysis_model(model_config(cfg, 'mmseg')), generator)
            train_net = ExportAdapter(train_net.eval(), 'tensor')
            fused_net = fuse_repvgg_blocks(train_net).eval()
            train_stats, fused_stats = complexity(train_net, shape), complexity(fused_net, shape)
            logger.info(f'{name}: {fused_stats["params"] / 1e6:.2f} M params, '
                        f'{fused_stats["flops"] / 1e9:.1f} GMACs fused')
            cands += [Candidate(f'{name} (train-time)', 'PSPNet-RepVGG', 'train-time',
                                inference_workload(train_net, inputs), train_stats['params'],
                                train_stats['flops']),
                      Candidate(f'{name} (fused)', 'PSPNet-RepVGG', 'fused',
                                inference_workload(fused_net, inputs), fused_stats['params'],
                                fused_stats['flops'])]
            if optimize:
                runner = optimize_for_cpu(fused_net, inputs, optimize)
                cands.append(Candidate(f'{name} (fused, {optimize})', 'PSPNet-RepVGG',
                                       f'fused+{optimize}', inference_workload(runner, inputs),
                                       fused_stats['params'], fused_stats['flops']))
        if with_r50:
            cfg = pspnet_config('r50', num_classes=num_classes, channels=head_channels)
            r50 = ExportAdapter(build_analysis_model(model_config(cfg, 'mmseg')), 'tensor')
            stats = complexity(r50, shape)
            logger.info(f'PSPNet-R50-d8: {stats["params"] / 1e6:.2f} M params, '
                        f'{stats["flops"] / 1e9:.1f} GMACs')
            cands.append(Candidate('PSPNet-R50-d8', 'PSPNet-R50-d8', 'reference',
                                   inference_workload(r50, inputs), stats['params'],
                                   stats['flops']))
            if optimize:
                cands.append(Candidate(f'PSPNet-R50-d8 ({optimize})', 'PSPNet-R50-d8',
                                       f'reference+{optimize}',
                                       inference_workload(optimize_for_cpu(r50, inputs, optimize),
                                                          inputs),
                                       stats['params'], stats['flops']))
        cands += gemm_candidates(gemm_size)
        return measure(cands, batch, f'{height}x{width}', torch.get_num_threads(), repeats,
                       warmup, logger)


def variants_benchmark(arch: str = 'A0', input_size: int = 224, batch: int = 8,
                       variants: Sequence[str] = tuple(CPU_VARIANTS),
                       thread_counts: Sequence[int] = (2, ), repeats: int = 7, warmup: int = 2,
                       gemm_size: int = GEMM_SIZE, seed: int = 0,
                       logger: Optional[MMLogger] = None) -> BenchResult:
    """The fused RepVGG under every CPU variant (+ ``no_grad`` instead of inference mode).

    Variants are interleaved within one thread count; thread counts run one after the other
    (switching the OpenMP pool size between calls would distort the timings), each with its own
    GEMM roofline. ``gemm_gflops`` of the result is the one of the largest thread count.
    """
    logger = _logger(logger)
    generator = torch.Generator().manual_seed(seed)
    inputs = torch.randn(batch, 3, input_size, input_size, generator=generator)
    train_net = randomize_bn_(model_builders.repvgg_classifier(arch), generator).eval()
    fused = fuse_repvgg_blocks(train_net).eval()
    stats = complexity(fused, (3, input_size, input_size))
    name = f'RepVGG-{arch}'

    def no_grad_workload():
        with torch.no_grad():
            fused(inputs)

    rows, gemm = [], 0.0
    for count in thread_counts:
        with torch_threads(count):
            cands = []
            for variant in variants:
                logger.info(f'preparing the {variant} variant of {name} (fused), {count} threads')
                runner = optimize_for_cpu(fused, inputs, variant)
                cands.append(Candidate(f'{name} (fused, {variant}, {count} threads)', 'RepVGG',
                                       f'fused+{variant}', inference_workload(runner, inputs),
                                       stats['params'], stats['flops']))
            cands.append(Candidate(f'{name} (fused, eager+no_grad, {count} threads)', 'RepVGG',
                                   'fused+eager_no_grad', no_grad_workload, stats['params'],
                                   stats['flops']))
            gemms = gemm_candidates(gemm_size)
            for cand in gemms:
                cand.name += f', {count} threads'
            result = measure(cands + gemms, batch, f'{input_size}x{input_size}', count, repeats,
                             warmup, logger)
        rows += result.rows
        gemm = result.gemm_gflops
    return BenchResult(rows, gemm)


def targets_benchmark(arch: str = 'A0', input_size: int = 224, batch: int = 8,
                      threads: Optional[int] = 2, repeats: int = 7, warmup: int = 2,
                      optimize: str = DEFAULT_CPU_VARIANT, gemm_size: int = GEMM_SIZE,
                      seed: int = 0, logger: Optional[MMLogger] = None) -> BenchResult:
    """Ours vs timm's RepVGG (inference and training step) and the GEMM roofline, with the targets.

    Targets: fused >= 1.3x training-time (eval mode); fused no slower than timm's fused; our train
    step no slower than timm's; fused GFLOP/s >= 80% of the large-GEMM GFLOP/s.
    """
    logger = _logger(logger)
    with torch_threads(threads):
        generator = torch.Generator().manual_seed(seed)
        inputs = torch.randn(batch, 3, input_size, input_size, generator=generator)
        cands = repvgg_candidates(arch, inputs, optimize, seed, logger)
        macs = cands[1].macs
        timm_train = randomize_bn_(model_builders.timm_repvgg(arch), generator).eval()
        timm_fused = model_builders.timm_reparameterize(timm_train)
        cands += [
            Candidate(f'timm RepVGG-{arch} (train-time)', 'timm RepVGG', 'train-time',
                      inference_workload(timm_train, inputs), macs=cands[0].macs),
            Candidate(f'timm RepVGG-{arch} (fused)', 'timm RepVGG', 'fused',
                      inference_workload(timm_fused, inputs), macs=macs),
            Candidate(f'timm RepVGG-{arch} (fused, {optimize})', 'timm RepVGG',
                      f'fused+{optimize}',
                      inference_workload(optimize_for_cpu(timm_fused, inputs, optimize), inputs),
                      macs=macs)]
        # Training steps on fresh models (default init), each on its own copy of the batch.
        ours_step = model_builders.repvgg_classifier(arch)
        timm_step = model_builders.timm_repvgg(arch)
        cands += [Candidate(f'RepVGG-{arch} (train step)', 'RepVGG', 'train step',
                            train_step_workload(ours_step, inputs.clone())),
                  Candidate(f'timm RepVGG-{arch} (train step)', 'timm RepVGG', 'train step',
                            train_step_workload(timm_step, inputs.clone()))]
        cands += gemm_candidates(gemm_size)
        result = measure(cands, batch, f'{input_size}x{input_size}', torch.get_num_threads(),
                         repeats, warmup, logger)
    result.checks = speed_targets(result, arch, optimize)
    return result


def speed_targets(result: BenchResult, arch: str, optimize: str) -> Dict[str, dict]:
    """The project's speed targets (:data:`~repvgg_mm.benchmark.targets.SPEED_TARGETS`) on a
    :func:`targets_benchmark` result: medians and quartiles of per-round ratios, each with its
    target and its :meth:`~repvgg_mm.benchmark.targets.Target.spread_verdict`."""
    row = {r.name: r for r in result.rows}
    ours, theirs = f'RepVGG-{arch}', f'timm RepVGG-{arch}'
    best_fused = max((row[f'{ours} (fused)'], row[f'{ours} (fused, {optimize})']),
                     key=lambda r: r.gflops)
    gemm = max((r for r in result.rows if r.family == 'GEMM'), key=lambda r: r.gflops)

    def ratio(slow: str, fast: str) -> Dict[str, float]:
        return paired_ratio(row[slow].samples, row[fast].samples)

    checks = {
        'fused / training-time speed (eager)': (
            ratio(f'{ours} (train-time)', f'{ours} (fused)'), 'fused_speedup'),
        'ours vs timm fused (eager): timm time / ours': (
            ratio(f'{theirs} (fused)', f'{ours} (fused)'), 'timm_fused'),
        f'ours vs timm fused ({optimize}): timm time / ours': (
            ratio(f'{theirs} (fused, {optimize})', f'{ours} (fused, {optimize})'), 'timm_fused'),
        'ours vs timm train step: timm time / ours': (
            ratio(f'{theirs} (train step)', f'{ours} (train step)'), 'timm_train_step'),
    }
    # Per round: (F_fused / t_fused) / (F_gemm / t_gemm) = F_fused / F_gemm * t_gemm / t_fused.
    fused_flops = 2.0 * best_fused.macs * best_fused.batch
    gemm_flops = gemm.gflops * gemm.seconds * 1e9
    times = paired_ratio(gemm.samples, best_fused.samples)
    checks[f'fused GFLOP/s / large-GEMM GFLOP/s ({best_fused.form})'] = (
        {key: value * fused_flops / gemm_flops for key, value in times.items()}, 'gemm_fraction')
    result_checks = {}
    for name, (value, key) in checks.items():
        target = SPEED_TARGETS[key]
        result_checks[name] = dict(value, target=target.bound,
                                   verdict=target.spread_verdict(value))
    return result_checks
