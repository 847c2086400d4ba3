"""Online fusion measured: training-time RepVGG with frozen BN, online_fusion 'auto' vs 'off'.

    python tools/analysis_tools/benchmark_online_fusion.py              # the full measurement
    python tools/analysis_tools/benchmark_online_fusion.py --quick      # tiny sizes (smoke test)
    python tools/analysis_tools/benchmark_online_fusion.py --sections backbone detectors

Every comparison runs one model and its deep copy with ``online_fusion`` switched on every
RepVGGBlock (identical weights, random BN statistics), side by side in one process: times are
medians of interleaved rounds (:func:`~repvgg_mm.utils.timing.time_interleaved`) and speed claims
are ratios of those medians, named with the CPU they ran on. Sections:

- ``backbone``: RepVGG (out_indices 0-3, norm_eval, frozen_stages=1) train step (forward, backward
  of a scalar loss of all outputs, zero grads): time; bytes saved for backward
  (``saved_tensors_hooks``, each storage once, parameters/buffers/input left out), all of them and
  split, from a second forward at another batch size, into activations (proportional to the batch)
  and batch-independent tensors (the fused kernels' intermediates); the equivalence of outputs and
  gradients.
- ``detectors``: one training step (``mode='loss'``, backward) of the RetinaNet-A0 and
  Faster R-CNN-A0 COCO configs with random boxes; peak RSS of each mode in its own process (the
  tool re-runs itself with ``--worker detector NAME MODE``; ``--quick``: RetinaNet only).
- ``segmentation``: PSPNet-A0 with trained BN (norm_eval False): no block may run fused online,
  and the step time must not change.
- ``finetune``: the toy RetinaNet with norm_eval=True fine-tuned for 20 iterations twice, from the
  same weights on the same batches (the two runs interleaved iteration by iteration); the losses
  of the last iteration must agree.

``--quick`` uses repvgg_mm.testing.TINY_ARCH everywhere (the configs' necks and heads fitted to
it), 64x64 inputs, one round and 2 fine-tune iterations.

Outputs: ``<work-dir>/online_fusion.json`` with every number, and a markdown table on stdout.
OpenMP threads sleep at barriers (OMP_WAIT_POLICY=PASSIVE unless set), as in benchmark.py.
"""
import os

os.environ.setdefault('OMP_WAIT_POLICY', 'PASSIVE')  # before torch starts its OpenMP runtime

import argparse
import copy
import itertools
import json
import logging
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import torch
from mmengine.logging import MMLogger
from mmengine.registry import DefaultScope
from torch import Tensor, nn

from repvgg_mm.arch_settings import arch_channels
from repvgg_mm.models import ARCH_NAMES, RepVGG, RepVGGBlock
from repvgg_mm.models.utils import detection_samples, randomize_bn_
from repvgg_mm.testing import TINY_ARCH
from repvgg_mm.utils.argtypes import non_negative_int, positive_int
from repvgg_mm.utils.cli import run_tool, tool_parser
from repvgg_mm.utils.compare import max_relative_error
from repvgg_mm.utils.config import build_model, load_config, replace_sync_bn
from repvgg_mm.utils.errors import UserError, first_line
from repvgg_mm.utils.fileio import write_json_atomic
from repvgg_mm.utils.timing import Timing, time_interleaved, torch_threads

REPO = Path(__file__).resolve().parents[2]
MODES = ('off', 'auto')
SECTIONS = ('backbone', 'detectors', 'segmentation', 'finetune')
DETECTORS = {
    'retinanet': ('RetinaNet', 'configs/detection/retinanet_repvgg_a0_fpn_1x_coco.py'),
    'faster_rcnn': ('Faster R-CNN', 'configs/detection/faster_rcnn_repvgg_a0_fpn_1x_coco.py'),
}
SEG_CONFIG = 'configs/pspnet_repvgg_a0.py'
TOY_CONFIG = 'configs/toy/retinanet_repvgg_a0_toy.py'
TINY_NAME = 'tiny'  # --quick: repvgg_mm.testing.TINY_ARCH instead of A0/B1g2

# targets: (kind, value); kind 'min' means >= value, 'max' means <= value, 'band' a (lo, hi) range
TARGETS = dict(
    backbone_speedup=('min', 1.2), saved_ratio=('max', 0.65), output_error=('max', 1e-5),
    grad_error=('max', 1e-3), detector_speedup=('min', 1.1),
    seg_online=('max', 0), seg_ratio=('band', (0.9, 1.1)), loss_diff=('max', 1e-3))

FULL = dict(size=512, batch=2, archs=('A0', 'B1g2'), repeats=5, warmup=1, det_repeats=3,
            rss_steps=2, rss_detectors=tuple(DETECTORS), seg_size=512, seg_batch=2,
            seg_repeats=3, iters=20, boxes=4, fp64_size=128)
QUICK = dict(size=64, batch=2, archs=(TINY_NAME, ), repeats=1, warmup=0, det_repeats=1,
             rss_steps=1, rss_detectors=('retinanet', ), seg_size=64, seg_batch=2,
             seg_repeats=1, iters=2, boxes=2, fp64_size=64)


def parse_args(argv=None):
    parser = tool_parser(__doc__.splitlines()[0])
    parser.add_argument('--sections', nargs='+', choices=SECTIONS, default=list(SECTIONS),
                        help='what to measure (default: all four)')
    parser.add_argument('--quick', action='store_true',
                        help='tiny inputs and arch, 2 fine-tune iterations, 1 round (for tests)')
    parser.add_argument('--work-dir', default='work_dirs/online_fusion',
                        help='gets online_fusion.json')
    parser.add_argument('--threads', type=positive_int, default=2, help='torch threads (default 2)')
    parser.add_argument('--archs', nargs='+', choices=ARCH_NAMES, default=None,
                        help='backbone section archs (default A0 B1g2)')
    parser.add_argument('--input-size', type=positive_int, default=None,
                        help='square input of the backbone/detector steps (default 512)')
    parser.add_argument('--batch', type=positive_int, default=None, help='default 2')
    parser.add_argument('--repeats', type=positive_int, default=None,
                        help='interleaved timing rounds of every section (default: backbone 5, '
                             'detectors and segmentation 3)')
    parser.add_argument('--warmup', type=non_negative_int, default=None,
                        help='warm-up rounds (default 1)')
    parser.add_argument('--iters', type=positive_int, default=None,
                        help='fine-tune iterations (default 20)')
    parser.add_argument('--rss-steps', type=positive_int, default=None,
                        help='training steps of each peak-RSS worker (default 2)')
    parser.add_argument('--rss-detectors', nargs='*', choices=tuple(DETECTORS), default=None,
                        help='detectors whose peak RSS is measured (default: both; --quick: '
                             'retinanet)')
    parser.add_argument('--rss-jobs', type=positive_int, default=2,
                        help='peak-RSS worker processes at a time (default 2)')
    parser.add_argument('--data-root', default=None,
                        help='toy dense dataset (default: data/toy_dense, generated if missing)')
    parser.add_argument('--seed', type=non_negative_int, default=0)
    parser.add_argument('--worker', nargs=3, metavar=('KIND', 'NAME', 'MODE'), default=None,
                        help=argparse.SUPPRESS)
    parser.add_argument('--worker-out', default=None, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def settings(args) -> dict:
    s = dict(QUICK if args.quick else FULL)
    for key, value in (('size', args.input_size), ('batch', args.batch), ('iters', args.iters),
                       ('warmup', args.warmup), ('rss_steps', args.rss_steps)):
        if value is not None:
            s[key] = value
    if args.repeats is not None:
        s.update(repeats=args.repeats, det_repeats=args.repeats, seg_repeats=args.repeats)
    if args.archs:
        s['archs'] = tuple(args.archs)
    if args.rss_detectors is not None:
        s['rss_detectors'] = tuple(args.rss_detectors)
    for key in ('size', 'batch', 'iters', 'repeats', 'rss_steps', 'seg_size', 'seg_batch'):
        if s[key] < 1:
            raise UserError(f'{key.replace("_", "-")} must be at least 1, got {s[key]}')
    if s['warmup'] < 0:
        raise UserError(f'warmup must be >= 0, got {s["warmup"]}')
    if args.threads < 1:
        raise UserError(f'--threads must be at least 1, got {args.threads}')
    if args.rss_jobs < 1:
        raise UserError(f'--rss-jobs must be at least 1, got {args.rss_jobs}')
    s.update(quick=args.quick, threads=args.threads, seed=args.seed, rss_jobs=args.rss_jobs)
    return s


# --------------------------------------------------------------------------------------------
# helpers


def repvgg_blocks(model: nn.Module) -> List[RepVGGBlock]:
    return [m for m in model.modules() if isinstance(m, RepVGGBlock) and not m.deploy]


def set_online_fusion(model: nn.Module, mode: str) -> nn.Module:
    for block in repvgg_blocks(model):
        block.online_fusion = mode
    return model


def twins(model: nn.Module) -> Dict[str, nn.Module]:
    """``{'off': copy, 'auto': model}``: the same weights, online fusion off / auto."""
    return dict(off=set_online_fusion(copy.deepcopy(model), 'off'),
                auto=set_online_fusion(model, 'auto'))


class BranchCalls:
    """Counts forward calls of each block's 3x3 branch conv (zero calls: the block ran fused)."""

    def __init__(self, model: nn.Module):
        self.blocks = repvgg_blocks(model)
        self.calls = [0] * len(self.blocks)
        self._handles = [block.branch_3x3.conv.register_forward_hook(self._hook(i))
                         for i, block in enumerate(self.blocks)]

    def _hook(self, index):
        def count(*_):
            self.calls[index] += 1
        return count

    @property
    def online(self) -> int:
        return sum(c == 0 for c in self.calls)

    def remove(self) -> None:
        for handle in self._handles:
            handle.remove()


def storage_key(tensor: Tensor) -> Tuple[int, int]:
    storage = tensor.untyped_storage()
    return storage.data_ptr(), storage.nbytes()


class SavedTensors:
    """Bytes of tensors autograd saves for backward while active; each storage counted once (by
    data_ptr), storages of ``persistent`` tensors (parameters, buffers, inputs) left out."""

    def __init__(self, persistent: Sequence[Tensor]):
        self.persistent = {storage_key(t)[0] for t in persistent}
        self.storages: Dict[int, int] = {}
        self._hooks = torch.autograd.graph.saved_tensors_hooks(self._pack, lambda t: t)

    def _pack(self, tensor: Tensor) -> Tensor:
        if tensor.layout == torch.strided and tensor.device.type != 'meta':
            ptr, nbytes = storage_key(tensor)
            if ptr and ptr not in self.persistent:
                self.storages[ptr] = max(self.storages.get(ptr, 0), nbytes)
        return tensor

    @property
    def nbytes(self) -> int:
        return sum(self.storages.values())

    def __enter__(self):
        self._hooks.__enter__()
        return self

    def __exit__(self, *exc):
        return self._hooks.__exit__(*exc)


def persistent_tensors(model: nn.Module, *inputs: Tensor) -> List[Tensor]:
    return [*model.parameters(), *model.buffers(), *inputs]


def speed_ratio(timings: Dict[str, Timing]) -> dict:
    """``off / auto`` of the medians (> 1: auto faster), and the per-round ratios."""
    per_round = sorted(a / b for a, b in zip(timings['off'].samples, timings['auto'].samples))
    return dict(ratio=timings['off'].median / timings['auto'].median,
                round_ratios=per_round, round_ratio_median=statistics.median(per_round))


def timing_dict(timing: Timing) -> dict:
    return dict(median_s=timing.median, best_s=timing.best, spread=timing.spread,
                samples_s=list(timing.samples))


def verdict(value: float, target_key: str) -> str:
    kind, target = TARGETS[target_key]
    if kind == 'min':
        ok = value >= target
    elif kind == 'max':
        ok = value <= target
    else:
        ok = target[0] <= value <= target[1]
    return 'pass' if ok else 'miss'


def time_modes(steps: Dict[str, Callable[[], object]], repeats: int, warmup: int,
               logger: MMLogger, what: str) -> Dict[str, Timing]:
    logger.info(f'{what}: timing off vs auto, {warmup} warm-up + {repeats} interleaved rounds')

    def on_round(index):
        logger.info(f'{what}: round {index + 1}/{repeats} done')

    return time_interleaved({mode: steps[mode] for mode in MODES}, repeats=repeats,
                            warmup=warmup, on_round=on_round)


def rss_bytes() -> int:
    """Current resident set size of this process."""
    with open('/proc/self/statm') as handle:
        return int(handle.read().split()[1]) * os.sysconf('SC_PAGE_SIZE')


def peak_rss_bytes() -> int:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == 'darwin' else peak * 1024  # Linux reports KiB


@contextmanager
def quiet_logger() -> Iterator[None]:
    """Drop INFO records of the current logger (mmengine's per-parameter init_weights dump)."""
    logger = MMLogger.get_current_instance()
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)


def mib(nbytes: float) -> float:
    return nbytes / 2 ** 20


# --------------------------------------------------------------------------------------------
# 1. backbone train step


def backbone_arch(name: str):
    return TINY_ARCH if name == TINY_NAME else name


def output_weights(outputs: Sequence[Tensor], seed: int) -> List[Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return [torch.randn(o.shape, generator=generator) / o.numel() ** 0.5 for o in outputs]


def saved_forward_bytes(model: nn.Module, batch: int, s: dict) -> int:
    """Bytes a forward pass of ``batch`` random images saves for backward (graph then freed)."""
    inputs = torch.randn(batch, 3, s['size'], s['size'],
                         generator=torch.Generator().manual_seed(s['seed'] + 1))
    with SavedTensors(persistent_tensors(model, inputs)) as recorder:
        outputs = model(inputs)
    del outputs
    return recorder.nbytes


def split_saved(model: nn.Module, saved: int, s: dict) -> dict:
    """Split the bytes saved at batch ``s['batch']`` into activations (proportional to the batch)
    and batch-independent tensors (online fusion's kernel intermediates: padded 1x1 kernels,
    identity kernels, the summed kernel), from a second forward at another batch size."""
    batch = s['batch']
    other = 1 if batch > 1 else 2
    per_image = (saved - saved_forward_bytes(model, other, s)) / (batch - other)
    return dict(activations=per_image * batch, batch_independent=saved - per_image * batch,
                batches=[batch, other])


def weighted_loss(outputs: Sequence[Tensor], weights: Sequence[Tensor]) -> Tensor:
    """A scalar loss of all outputs: fixed random weights, so every output gets a gradient."""
    return sum((o * w).sum() for o, w in zip(outputs, weights))


def backbone_step(model: nn.Module, inputs: Tensor, weights: List[Tensor]) -> Callable[[], None]:
    def run():
        weighted_loss(model(inputs), weights).backward()
        model.zero_grad(set_to_none=True)
    return run


def backbone_section(s: dict, logger: MMLogger) -> dict:
    return {name: backbone_result(name, s, logger) for name in s['archs']}


class PreActivationSigns:
    """Records the sign of every block's pre-activation (the ReLU input) while active."""

    def __init__(self, model: nn.Module):
        self.signs: List[Tensor] = []
        self._handles = [block.act.register_forward_pre_hook(self._record)
                         for block in repvgg_blocks(model)]

    def _record(self, module, args):
        self.signs.append(args[0].detach() > 0)

    def remove(self) -> None:
        for handle in self._handles:
            handle.remove()


def relu_flips(a: List[Tensor], b: List[Tensor]) -> int:
    """Elements whose pre-activation sign differs between two runs (ReLU on in one, off in the
    other: a pre-activation within rounding of 0), each flip changing the gradients locally."""
    return sum(int((x != y).sum()) for x, y in zip(a, b))


def step_outputs_grads(model: nn.Module, inputs: Tensor, weights: List[Tensor]):
    """Outputs and parameter gradients of one step (grads left zeroed)."""
    outputs = model(inputs)
    weighted_loss(outputs, weights).backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    model.zero_grad(set_to_none=True)
    return [o.detach() for o in outputs], grads


def equivalence(outputs: Dict[str, list], grads: Dict[str, dict], name: str) -> dict:
    """Max relative output error; max |grad_auto - grad_off| over the largest |grad_off|."""
    if set(grads['off']) != set(grads['auto']) or not grads['off']:
        raise UserError(f'{name}: the two modes train different parameters')
    output_error = max(max_relative_error(a, b) for a, b in zip(outputs['off'], outputs['auto']))
    largest = max(g.abs().max().item() for g in grads['off'].values())
    errors = {n: (grads['auto'][n] - g).abs().max().item() / largest
              for n, g in grads['off'].items()}
    worst = max(errors, key=errors.get)
    return dict(output=output_error, grad=errors[worst], worst_param=worst)


def float64_control(models: Dict[str, nn.Module], s: dict) -> dict:
    """The same comparison in float64 on a small input: rounding out of the way, what is left is
    the math (the fused kernel and its gradients are exact)."""
    size = s['fp64_size']
    generator = torch.Generator().manual_seed(s['seed'] + 2)
    inputs = torch.randn(1, 3, size, size, generator=generator, dtype=torch.float64)
    doubles = {mode: copy.deepcopy(m).double() for mode, m in models.items()}
    with torch.no_grad():
        weights = [w.double() for w in output_weights(doubles['off'](inputs), s['seed'])]
    outputs, grads = {}, {}
    for mode, m in doubles.items():
        outputs[mode], grads[mode] = step_outputs_grads(m, inputs, weights)
    return dict(equivalence(outputs, grads, 'float64 control'), input=[1, 3, size, size])


def backbone_result(name: str, s: dict, logger: MMLogger) -> dict:
    torch.manual_seed(s['seed'])
    generator = torch.Generator().manual_seed(s['seed'])
    model = RepVGG(backbone_arch(name), out_indices=(0, 1, 2, 3), norm_eval=True,
                   frozen_stages=1)
    models = twins(randomize_bn_(model, generator))
    inputs = torch.randn(s['batch'], 3, s['size'], s['size'], generator=generator)
    for m in models.values():
        m.train()
    with torch.no_grad():
        weights = output_weights(models['off'](inputs), s['seed'])

    # one checked step per mode: outputs, gradients, saved tensors, online blocks, ReLU signs
    outputs, grads, saved, online, signs = {}, {}, {}, {}, {}
    for mode, m in models.items():
        calls, recorder_signs = BranchCalls(m), PreActivationSigns(m)
        with SavedTensors(persistent_tensors(m, inputs)) as recorder:
            outs = m(inputs)  # only the network's own saved tensors (not the loss's)
        weighted_loss(outs, weights).backward()
        calls.remove()
        recorder_signs.remove()
        outputs[mode] = [o.detach() for o in outs]
        grads[mode] = {n: p.grad.clone() for n, p in m.named_parameters() if p.grad is not None}
        saved[mode], online[mode], signs[mode] = recorder.nbytes, calls.online, recorder_signs.signs
        m.zero_grad(set_to_none=True)
        del outs
    flips = relu_flips(signs['off'], signs['auto'])
    del signs
    split = {mode: split_saved(m, saved[mode], s) for mode, m in models.items()}
    total_blocks = len(repvgg_blocks(models['auto']))
    fp32 = equivalence(outputs, grads, name)
    del outputs, grads
    fp64 = float64_control(models, s)

    steps = {mode: backbone_step(m, inputs, weights) for mode, m in models.items()}
    timings = time_modes(steps, s['repeats'], s['warmup'], logger, f'backbone {name}')
    ratio = speed_ratio(timings)
    saved_ratio = saved['auto'] / saved['off']
    activations = {mode: split[mode]['activations'] for mode in MODES}
    act_ratio = activations['auto'] / activations['off']
    result = dict(
        input=[s['batch'], 3, s['size'], s['size']], blocks=total_blocks,
        online_blocks=online,
        trainable_params=sum(p.numel() for p in models['auto'].parameters()
                             if p.requires_grad),
        time={mode: timing_dict(t) for mode, t in timings.items()},
        speedup=dict(ratio, target=TARGETS['backbone_speedup'][1],
                     verdict=verdict(ratio['ratio'], 'backbone_speedup')),
        saved_activations=dict(activations, ratio=act_ratio,
                               target=TARGETS['saved_ratio'][1],
                               verdict=verdict(act_ratio, 'saved_ratio')),
        saved_total=dict(saved, ratio=saved_ratio, target=TARGETS['saved_ratio'][1],
                         verdict=verdict(saved_ratio, 'saved_ratio')),
        saved_batch_independent={mode: split[mode]['batch_independent'] for mode in MODES},
        saved_split_batches=split['off']['batches'],
        output_max_rel_error=dict(value=fp32['output'], target=TARGETS['output_error'][1],
                                  verdict=verdict(fp32['output'], 'output_error')),
        grad_max_diff_over_max_grad=dict(
            value=fp32['grad'], worst_param=fp32['worst_param'],
            target=TARGETS['grad_error'][1], verdict=verdict(fp32['grad'], 'grad_error')),
        relu_flips=flips,
        float64_control=dict(
            fp64, verdict='pass' if verdict(fp64['output'], 'output_error') == 'pass'
            and verdict(fp64['grad'], 'grad_error') == 'pass' else 'miss'))
    logger.info(f'backbone {name}: speed-up {ratio["ratio"]:.2f}x, saved activations '
                f'{mib(activations["off"]):.1f} -> {mib(activations["auto"]):.1f} MiB '
                f'({act_ratio:.2f}), all saved tensors {mib(saved["off"]):.1f} -> '
                f'{mib(saved["auto"]):.1f} MiB ({saved_ratio:.2f}), online blocks off '
                f'{online["off"]}/{total_blocks} auto {online["auto"]}/{total_blocks}, output '
                f'error {fp32["output"]:.2e}, grad error {fp32["grad"]:.2e} ({flips} ReLU '
                f'flips; float64: {fp64["output"]:.1e} / {fp64["grad"]:.1e})')
    return result


# --------------------------------------------------------------------------------------------
# model configs (detectors, PSPNet, toy RetinaNet)


def config_path(relative: str) -> str:
    return str(REPO / relative)


def use_arch(cfg, arch) -> None:
    """Put ``arch`` into ``cfg.model.backbone`` and fit the neck/head input channels to it."""
    _, channels = arch_channels(arch)
    model = cfg.model
    model.backbone.arch = arch
    if model.get('neck') is not None:
        model.neck.in_channels = [channels[i] for i in model.backbone.out_indices]
    for head in ('decode_head', 'auxiliary_head'):
        if model.get(head) is not None:
            model[head].in_channels = channels[model[head].in_index]


def model_config(relative: str, s: dict, cfg_options: Optional[dict] = None):
    """A config with plain BN and no pretrained checkpoint (random weights); tiny arch if
    quick."""
    cfg = load_config(config_path(relative), cfg_options)
    cfg.model = replace_sync_bn(cfg.model)[0]
    cfg.model.backbone.init_cfg = None
    if s['quick']:
        use_arch(cfg, TINY_ARCH)
        train_cfg = cfg.model.get('train_cfg') or {}
        if 'rcnn' in train_cfg:  # two-stage: fewer proposals and RoIs, so the test stays quick
            train_cfg.rpn_proposal.nms_pre, train_cfg.rpn_proposal.max_per_img = 200, 100
            train_cfg.rcnn.sampler.num = 64
    return cfg


def build_random_model(cfg, seed: int) -> nn.Module:
    """The config's model with its own init (no checkpoint) and random BN statistics."""
    torch.manual_seed(seed)
    model = build_model(cfg)
    with quiet_logger():
        model.init_weights()
    return randomize_bn_(model, torch.Generator().manual_seed(seed))


def detection_batch(s: dict, seed: int, num_classes: int = 3):
    """Random images and ``DetDataSample`` s with ``s['boxes']`` random boxes each."""
    from mmengine.structures import InstanceData
    generator = torch.Generator().manual_seed(seed)
    size, count = s['size'], s['boxes']
    inputs = torch.randn(s['batch'], 3, size, size, generator=generator)
    samples = detection_samples(inputs)
    for sample in samples:
        corner = torch.rand(count, 2, generator=generator) * size * 0.6
        extent = (torch.rand(count, 2, generator=generator) * 0.3 + 0.1) * size
        sample.gt_instances = InstanceData(
            bboxes=torch.cat([corner, corner + extent], dim=1),
            labels=torch.randint(0, num_classes, (count, ), generator=generator))
    return inputs, samples


def segmentation_batch(s: dict, seed: int, num_classes: int):
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample
    generator = torch.Generator().manual_seed(seed)
    size = s['seg_size']
    inputs = torch.randn(s['seg_batch'], 3, size, size, generator=generator)
    shape = (size, size)
    samples = []
    for _ in range(s['seg_batch']):
        sample = SegDataSample(metainfo=dict(img_shape=shape, ori_shape=shape, pad_shape=shape))
        sample.gt_sem_seg = PixelData(
            data=torch.randint(0, num_classes, (1, size, size), generator=generator))
        samples.append(sample)
    return inputs, samples


def loss_step(model: nn.Module, inputs: Tensor, samples: list) -> Callable[[], float]:
    """One training step without optimizer: loss mode, sum of the losses, backward, zero grads."""
    def run():
        losses = model(inputs, samples, mode='loss')
        loss, _ = model.parse_losses(losses)
        loss.backward()
        model.zero_grad(set_to_none=True)
        return loss.item()
    return run


def checked_step(model: nn.Module, step: Callable[[], float], seed: int) -> Tuple[float, int]:
    """Run one step; return its loss and how many blocks ran fused online."""
    calls = BranchCalls(model)
    torch.manual_seed(seed)
    try:
        loss = step()
    finally:
        calls.remove()
    return loss, calls.online


# --------------------------------------------------------------------------------------------
# 2. detectors


def arch_label(s: dict) -> str:
    """The backbone of the config-built models: A0, or the tiny arch with --quick."""
    return TINY_NAME if s['quick'] else 'A0'


def build_detector(name: str, s: dict, mode: str = 'auto') -> nn.Module:
    cfg = model_config(DETECTORS[name][1], s, {'model.backbone.online_fusion': mode})
    return build_random_model(cfg, s['seed']).train()


def reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS mark of this process (Linux >= 4.0); False if not possible."""
    try:
        with open('/proc/self/clear_refs', 'w') as handle:
            handle.write('5')
        return True
    except OSError:
        return False


def detector_worker(name: str, mode: str, s: dict, out: str, logger: MMLogger) -> None:
    """Peak RSS of ``s['rss_steps']`` training steps of one detector in one mode (this process).

    ``ru_maxrss`` is the peak of the whole process, imports included (they peak above a small
    model's steps); the mark is reset after the model and its inputs are built, so ``peak_rss``
    is the peak of model + steps (``process_peak_rss``: without the reset)."""
    model = build_detector(name, s, mode)
    inputs, samples = detection_batch(s, s['seed'])
    step = loss_step(model, inputs, samples)
    process_peak = peak_rss_bytes()
    before = rss_bytes()
    reset = reset_peak_rss()
    for index in range(s['rss_steps']):
        torch.manual_seed(s['seed'] + index)
        step()
    peak = peak_rss_bytes()
    logger.info(f'worker {name} {mode}: RSS before the steps {mib(before):.0f} MiB, peak '
                f'{mib(peak):.0f} MiB (peak reset: {reset})')
    write_json_atomic(dict(detector=name, mode=mode, steps=s['rss_steps'], rss_before=before,
                           peak_rss=peak, peak_reset=reset,
                           process_peak_rss=max(process_peak, peak)), out)


# A child exec'd straight from this (large) process inherits its peak RSS: exec keeps the old
# address space's high-water mark in the process's ru_maxrss (Linux signal->maxrss; Python spawns
# with vfork, so the old address space is this one). A small launcher in between forks the worker
# from its own tiny address space, so the worker's ru_maxrss is its own.
LAUNCHER = 'import subprocess, sys; sys.exit(subprocess.call(sys.argv[1:]))'


def worker_argv(args, kind: str, name: str, mode: str, out: str) -> List[str]:
    argv = [sys.executable, '-c', LAUNCHER,
            sys.executable, str(Path(__file__).resolve()), '--worker', kind, name, mode,
            '--worker-out', out, '--threads', str(args.threads), '--seed', str(args.seed)]
    for flag, value in (('--input-size', args.input_size), ('--batch', args.batch),
                        ('--rss-steps', args.rss_steps)):
        if value is not None:
            argv += [flag, str(value)]
    return argv + (['--quick'] if args.quick else [])


def measure_peak_rss(args, names: Sequence[str], s: dict, logger: MMLogger
                     ) -> Dict[str, Dict[str, dict]]:
    """``{name: {mode: worker report}}``: one process per detector and mode, ``s['rss_jobs']``
    at a time (started after the timings, so they disturb none; a process's peak RSS is its
    own). Each worker runs in its own process group, ended with it if anything fails here."""
    pending = [(name, mode) for name in names for mode in MODES]
    results: Dict[str, Dict[str, dict]] = {name: {} for name in names}
    running = []
    with tempfile.TemporaryDirectory(prefix='online_fusion_rss_') as folder:
        try:
            while pending or running:
                while pending and len(running) < s['rss_jobs']:
                    name, mode = pending.pop(0)
                    out = os.path.join(folder, f'{name}_{mode}.json')
                    logger.info(f'{DETECTORS[name][0]}-{arch_label(s)} ({mode}): peak RSS of '
                                f'{s["rss_steps"]} steps in a separate process')
                    with open(out + '.log', 'w') as log:
                        proc = subprocess.Popen(
                            worker_argv(args, 'detector', name, mode, out), cwd=str(REPO),
                            stdout=subprocess.DEVNULL, stderr=log, start_new_session=True)
                    running.append((name, mode, out, proc))
                name, mode, out, proc = running[0]
                proc.wait()
                running.pop(0)
                if proc.returncode != 0 or not os.path.exists(out):
                    with open(out + '.log') as log:
                        tail = log.read().strip().splitlines()[-1:]
                    raise UserError(f'the peak-RSS worker of {name} ({mode}) failed with status '
                                    f'{proc.returncode}: {" ".join(tail) or "no output"}')
                with open(out) as handle:
                    results[name][mode] = json.load(handle)
        finally:
            for *_, proc in running:  # only after a failure or an interrupt
                if proc.poll() is None:
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
    return results


def detectors_section(args, s: dict, logger: MMLogger) -> dict:
    results = {}
    for name, (kind, relative) in DETECTORS.items():
        title = f'{kind}-{arch_label(s)}'
        logger.info(f'{title}: building {relative}')
        models = twins(build_detector(name, s))
        inputs, samples = detection_batch(s, s['seed'])
        steps = {mode: loss_step(m, inputs, samples) for mode, m in models.items()}
        checked = {mode: checked_step(models[mode], steps[mode], s['seed']) for mode in MODES}
        timings = time_modes(steps, s['det_repeats'], s['warmup'], logger, title)
        ratio = speed_ratio(timings)
        results[name] = dict(
            title=title, config=relative, input=[s['batch'], 3, s['size'], s['size']],
            boxes_per_image=s['boxes'], blocks=len(repvgg_blocks(models['auto'])),
            online_blocks={mode: checked[mode][1] for mode in MODES},
            first_step_loss={mode: checked[mode][0] for mode in MODES},
            first_step_loss_rel_diff=abs(checked['auto'][0] - checked['off'][0])
            / max(abs(checked['off'][0]), 1e-12),
            time={mode: timing_dict(t) for mode, t in timings.items()},
            speedup=dict(ratio, target=TARGETS['detector_speedup'][1],
                         verdict=verdict(ratio['ratio'], 'detector_speedup')))
        logger.info(f'{title}: speed-up {ratio["ratio"]:.2f}x')
        del models, steps
    rss = measure_peak_rss(args, s['rss_detectors'], s, logger)
    for name, result in results.items():
        if name not in rss:
            result['peak_rss'] = None  # not measured (--rss-detectors)
            continue
        peak = {mode: rss[name][mode]['peak_rss'] for mode in MODES}
        before = {mode: rss[name][mode]['rss_before'] for mode in MODES}
        growth = {mode: peak[mode] - before[mode] for mode in MODES}
        ratio = peak['auto'] / peak['off']
        result['peak_rss'] = dict(
            peak, ratio=ratio, auto_lower=peak['auto'] < peak['off'],
            verdict='pass' if peak['auto'] < peak['off'] else 'miss', steps=s['rss_steps'],
            rss_before_steps=before, growth_during_steps=growth,
            peak_reset_before_steps={mode: rss[name][mode]['peak_reset'] for mode in MODES},
            process_peak_rss={mode: rss[name][mode]['process_peak_rss'] for mode in MODES},
            growth_ratio=growth['auto'] / growth['off'] if growth['off'] > 0 else None)
        logger.info(f'{result["title"]}: peak RSS off {mib(peak["off"]):.0f} MiB, auto '
                    f'{mib(peak["auto"]):.0f} MiB (growth during the steps '
                    f'{mib(growth["off"]):.0f} / {mib(growth["auto"]):.0f} MiB)')
    return results


# --------------------------------------------------------------------------------------------
# 3. segmentation with trained BN


def segmentation_section(s: dict, logger: MMLogger) -> dict:
    cfg = model_config(SEG_CONFIG, s, {'model.backbone.norm_eval': False})
    models = twins(build_random_model(cfg, s['seed']).train())
    inputs, samples = segmentation_batch(s, s['seed'], cfg.model.decode_head.num_classes)
    steps = {mode: loss_step(m, inputs, samples) for mode, m in models.items()}
    checked = {mode: checked_step(models[mode], steps[mode], s['seed']) for mode in MODES}
    total_blocks = len(repvgg_blocks(models['auto']))
    line = f'online fusion: {checked["auto"][1]}/{total_blocks} blocks'
    logger.info(f'PSPNet (trained BN), online_fusion=auto: {line}')
    timings = time_modes(steps, s['seg_repeats'], s['warmup'], logger, 'PSPNet (trained BN)')
    ratio = speed_ratio(timings)
    return dict(
        config=SEG_CONFIG, arch=arch_label(s),
        input=[s['seg_batch'], 3, s['seg_size'], s['seg_size']], norm_eval=False,
        blocks=total_blocks,
        online_blocks={mode: checked[mode][1] for mode in MODES}, online_line=line,
        online_verdict=verdict(checked['auto'][1], 'seg_online'),
        time={mode: timing_dict(t) for mode, t in timings.items()},
        speedup=dict(ratio, target=list(TARGETS['seg_ratio'][1]),
                     verdict=verdict(ratio['ratio'], 'seg_ratio')))


# --------------------------------------------------------------------------------------------
# 4. toy RetinaNet fine-tune


def toy_data_root(data_root: Optional[str]) -> str:
    if data_root is None:
        from repvgg_mm.datasets.toy_dense import make_toy_dense
        data_root = str(REPO / 'data' / 'toy_dense')
        make_toy_dense(data_root, progress=False)  # idempotent: keeps an existing copy
    annotations = os.path.join(data_root, 'annotations', 'instances_train.json')
    if not os.path.isfile(annotations):
        raise UserError(f'--data-root {data_root} holds no toy dense dataset (missing '
                        f'{annotations}); create one with tools/dataset_converters/'
                        'make_toy_dense.py')
    return data_root


def toy_config(s: dict, mode: str, data_root: str):
    cfg = model_config(TOY_CONFIG, s, {'model.backbone.norm_eval': True,
                                       'model.backbone.online_fusion': mode})
    cfg.train_dataloader.dataset.data_root = data_root.rstrip('/') + '/'
    if s['quick']:
        cfg.train_dataloader.batch_size = 2
    return cfg


def toy_batches(cfg, count: int, seed: int) -> Tuple[list, int]:
    """The first ``count`` batches of the config's train loader (cycling epochs), and the
    loader's length; the same batches every run (the random augmentations draw from the global
    ``random``/numpy generators, seeded here as the Runner seeds them)."""
    from mmengine.runner import Runner, set_random_seed
    set_random_seed(seed)
    with DefaultScope.overwrite_default_scope('mmdet'):
        try:
            loader = Runner.build_dataloader(copy.deepcopy(cfg.train_dataloader), seed=seed)
        except (UserError, OSError):
            raise
        except Exception as exc:  # a broken dataset folder: one line naming the cause
            raise UserError(f'cannot load the toy dataset: {first_line(exc)}') from exc
        batches, epochs = [], 0
        while len(batches) < count:
            if hasattr(loader.sampler, 'set_epoch'):
                loader.sampler.set_epoch(epochs)
            batches += list(itertools.islice(iter(loader), count - len(batches)))
            epochs += 1
        return batches, len(loader)


class FineTune:
    """One run of the toy fine-tune: the config's optimizer wrapper (AdamW, grad clipping) and
    its parameter schedulers, stepped per iteration (per epoch for ``by_epoch`` ones)."""

    def __init__(self, model: nn.Module, cfg, iters_per_epoch: int):
        from mmengine.optim import build_optim_wrapper
        from mmengine.registry import PARAM_SCHEDULERS
        self.model, self.iters_per_epoch = model.train(), iters_per_epoch
        self.optim_wrapper = build_optim_wrapper(model, copy.deepcopy(cfg.optim_wrapper))
        self.schedulers = [PARAM_SCHEDULERS.build(dict(sched, optimizer=self.optim_wrapper))
                           for sched in copy.deepcopy(cfg.get('param_scheduler') or [])]
        self.iteration, self.losses, self.seconds = 0, [], 0.0

    def step(self, batch) -> None:
        start = time.perf_counter()
        log_vars = self.model.train_step(batch, self.optim_wrapper)
        self.iteration += 1
        for scheduler in self.schedulers:
            if not scheduler.by_epoch or self.iteration % self.iters_per_epoch == 0:
                scheduler.step()
        self.seconds += time.perf_counter() - start
        loss = log_vars['loss']
        self.losses.append(float(loss.detach() if torch.is_tensor(loss) else loss))


def ulp_perturbed(state: Dict[str, Tensor], seed: int) -> Dict[str, Tensor]:
    """``state`` with half of its floating-point parameters moved by one ulp (the smallest change
    a float can take): a run from it shows how far float rounding alone carries training."""
    generator = torch.Generator().manual_seed(seed)
    perturbed = {}
    for key, value in state.items():
        if value.is_floating_point() and not key.endswith(('running_mean', 'running_var')):
            mask = torch.rand(value.shape, generator=generator) < 0.5
            value = torch.where(mask, torch.nextafter(value, torch.full_like(value, float('inf'))),
                                value)
        perturbed[key] = value
    return perturbed


def relative_differences(losses: List[float], reference: List[float]) -> List[float]:
    return [abs(a - b) / max(abs(b), 1e-12) for a, b in zip(losses, reference)]


def finetune_section(args, s: dict, logger: MMLogger) -> dict:
    data_root = toy_data_root(args.data_root)
    cfgs = {mode: toy_config(s, mode, data_root) for mode in MODES}
    control = 'off, 1-ulp perturbed weights'  # the noise floor of float32 training
    with DefaultScope.overwrite_default_scope('mmdet'):
        torch.manual_seed(s['seed'])
        initial = build_model(cfgs['auto'])
        with quiet_logger():
            initial.init_weights()
        randomize_bn_(initial, torch.Generator().manual_seed(s['seed']))
        state = copy.deepcopy(initial.state_dict())
        del initial
        models = {}
        for mode, weights in (('off', state), ('auto', state),
                              (control, ulp_perturbed(state, s['seed']))):
            models[mode] = build_model(cfgs['auto' if mode == 'auto' else 'off'])
            models[mode].load_state_dict(weights)
    batches, iters_per_epoch = toy_batches(cfgs['auto'], s['iters'], s['seed'])
    blocks_auto = {mode: sum(b.online_fusion == 'auto' for b in repvgg_blocks(models[mode]))
                   for mode in MODES}
    runs = {mode: FineTune(model, cfgs['off'], iters_per_epoch) for mode, model in models.items()}
    logger.info(f'toy RetinaNet fine-tune: {s["iters"]} iterations of batch '
                f'{cfgs["auto"].train_dataloader.batch_size} from {data_root}; off, auto and '
                f'"{control}" interleaved iteration by iteration')
    per_iteration = {mode: [] for mode in runs}
    with DefaultScope.overwrite_default_scope('mmdet'):
        for index, batch in enumerate(batches):
            order = list(runs) if index % 2 == 0 else list(reversed(runs))
            for mode in order:
                torch.manual_seed(s['seed'] + index)
                before = runs[mode].seconds
                runs[mode].step(copy.deepcopy(batch))
                per_iteration[mode].append(runs[mode].seconds - before)
            if (index + 1) % 5 == 0 or index + 1 == len(batches):
                logger.info(f'fine-tune iteration {index + 1}/{len(batches)}: loss off '
                            f'{runs["off"].losses[-1]:.6f}, auto {runs["auto"].losses[-1]:.6f}, '
                            f'control {runs[control].losses[-1]:.6f}')
    losses = {mode: run.losses for mode, run in runs.items()}
    diffs = relative_differences(losses['auto'], losses['off'])
    floor = relative_differences(losses[control], losses['off'])
    timing = {mode: Timing(mode, per_iteration[mode]) for mode in MODES}
    return dict(
        config=TOY_CONFIG, arch=arch_label(s), data_root=data_root, iterations=s['iters'],
        batch_size=cfgs['auto'].train_dataloader.batch_size, norm_eval=True,
        optimizer=cfgs['off'].optim_wrapper.optimizer.type, blocks_set_auto=blocks_auto,
        losses={mode: losses[mode] for mode in MODES},
        last_loss={mode: losses[mode][-1] for mode in MODES},
        last_loss_rel_diff=dict(value=diffs[-1], max_over_iterations=max(diffs),
                                per_iteration=diffs, target=TARGETS['loss_diff'][1],
                                verdict=verdict(diffs[-1], 'loss_diff')),
        noise_floor=dict(run=control, losses=losses[control], last_loss=losses[control][-1],
                         last_loss_rel_diff_vs_off=floor[-1], max_over_iterations=max(floor),
                         per_iteration=floor, auto_within=max(diffs) <= max(floor)),
        wall_s={mode: runs[mode].seconds for mode in MODES},
        median_iteration_s={mode: t.median for mode, t in timing.items()},
        speedup=speed_ratio(timing))


# --------------------------------------------------------------------------------------------
# report


def _fmt(value: float, digits: int = 3) -> str:
    return f'{value:.{digits}g}' if abs(value) < 1e-2 and value else f'{value:.{digits}f}'


def table_rows(report: dict) -> List[List[str]]:
    rows = []
    for name, r in report.get('backbone', {}).items():
        shape, fp64 = 'x'.join(map(str, r['input'])), r['float64_control']
        rows += [
            [f'RepVGG-{name} backbone train step, {shape} (s)',
             f'{r["time"]["off"]["median_s"]:.3f}', f'{r["time"]["auto"]["median_s"]:.3f}',
             f'{r["speedup"]["ratio"]:.2f}x faster',
             '>= 1.2x', r['speedup']['verdict']],
            [f'RepVGG-{name} activations saved for backward (MiB)',
             f'{mib(r["saved_activations"]["off"]):.1f}',
             f'{mib(r["saved_activations"]["auto"]):.1f}',
             f'{r["saved_activations"]["ratio"]:.2f} (auto/off)', '<= 0.65',
             r['saved_activations']['verdict']],
            [f'RepVGG-{name} all tensors saved for backward, incl. kernel intermediates (MiB)',
             f'{mib(r["saved_total"]["off"]):.1f}', f'{mib(r["saved_total"]["auto"]):.1f}',
             f'{r["saved_total"]["ratio"]:.2f} (auto/off)', '<= 0.65',
             r['saved_total']['verdict']],
            [f'RepVGG-{name} outputs, max rel. error', '-',
             _fmt(r['output_max_rel_error']['value']), '-', '<= 1e-5',
             r['output_max_rel_error']['verdict']],
            [f'RepVGG-{name} grads, max abs diff / max abs grad', '-',
             _fmt(r['grad_max_diff_over_max_grad']['value']),
             f'{r["relu_flips"]} ReLU flips', '<= 1e-3',
             r['grad_max_diff_over_max_grad']['verdict']],
            [f'RepVGG-{name} same in float64, {"x".join(map(str, fp64["input"]))}: '
             'outputs / grads', '-', f'{_fmt(fp64["output"])} / {_fmt(fp64["grad"])}', '-',
             '<= 1e-5 / <= 1e-3', fp64['verdict']],
        ]
    for r in report.get('detectors', {}).values():
        shape = 'x'.join(map(str, r['input']))
        rows += [
            [f'{r["title"]} train step, {shape} (s)', f'{r["time"]["off"]["median_s"]:.3f}',
             f'{r["time"]["auto"]["median_s"]:.3f}', f'{r["speedup"]["ratio"]:.2f}x faster',
             '>= 1.1x', r['speedup']['verdict']],
        ]
        if r['peak_rss'] is None:
            continue
        rows += [
            [f'{r["title"]} peak RSS, {r["peak_rss"]["steps"]} steps (MiB)',
             f'{mib(r["peak_rss"]["off"]):.0f}', f'{mib(r["peak_rss"]["auto"]):.0f}',
             f'{r["peak_rss"]["ratio"]:.2f} (auto/off)', 'auto lower',
             r['peak_rss']['verdict']],
            [f'{r["title"]} RSS growth during those steps (MiB)',
             f'{mib(r["peak_rss"]["growth_during_steps"]["off"]):.0f}',
             f'{mib(r["peak_rss"]["growth_during_steps"]["auto"]):.0f}',
             '-' if r['peak_rss']['growth_ratio'] is None else
             f'{r["peak_rss"]["growth_ratio"]:.2f} (auto/off)', '-', '-'],
        ]
    seg = report.get('segmentation')
    if seg:
        shape = 'x'.join(map(str, seg['input']))
        rows += [
            [f'PSPNet-{seg["arch"]}, trained BN: blocks fused online',
             f'{seg["online_blocks"]["off"]}/{seg["blocks"]}',
             f'{seg["online_blocks"]["auto"]}/{seg["blocks"]}', '-',
             '0 online', seg['online_verdict']],
            [f'PSPNet-{seg["arch"]}, trained BN: train step, {shape} (s)',
             f'{seg["time"]["off"]["median_s"]:.3f}', f'{seg["time"]["auto"]["median_s"]:.3f}',
             f'{seg["speedup"]["ratio"]:.2f}x', '~1.0 (0.9-1.1)', seg['speedup']['verdict']],
        ]
    ft = report.get('finetune')
    if ft:
        rows += [
            [f'Toy RetinaNet-{ft["arch"]} fine-tune, {ft["iterations"]} it: last loss',
             f'{ft["last_loss"]["off"]:.6f}', f'{ft["last_loss"]["auto"]:.6f}',
             f'{_fmt(ft["last_loss_rel_diff"]["value"])} (rel. diff)', '<= 1e-3',
             ft['last_loss_rel_diff']['verdict']],
            [f'Toy RetinaNet-{ft["arch"]} fine-tune, {ft["iterations"]} it: noise floor, off vs '
             'off from 1-ulp perturbed weights: last loss', f'{ft["last_loss"]["off"]:.6f}',
             f'{ft["noise_floor"]["last_loss"]:.6f}',
             f'{_fmt(ft["noise_floor"]["last_loss_rel_diff_vs_off"])} (rel. diff)', '-',
             'info'],
            [f'Toy RetinaNet-{ft["arch"]} fine-tune, {ft["iterations"]} it: wall time (s)',
             f'{ft["wall_s"]["off"]:.2f}', f'{ft["wall_s"]["auto"]:.2f}',
             f'{ft["speedup"]["ratio"]:.2f}x faster', '-', '-'],
        ]
    return rows


def markdown_table(rows: List[List[str]]) -> str:
    header = ['workload', 'mode off', 'mode auto', 'ratio', 'target', 'pass/miss']
    lines = ['| ' + ' | '.join(header) + ' |', '|' + '|'.join(['---'] * len(header)) + '|']
    lines += ['| ' + ' | '.join(row) + ' |' for row in rows]
    return '\n'.join(lines)


def machine(s: dict) -> dict:
    import speed as bench  # the harness beside this script (imported here: workers skip it)
    return dict(cpu=bench.cpu_name(), cores=os.cpu_count(), threads=torch.get_num_threads(),
                torch=torch.__version__, omp_wait_policy=os.environ.get('OMP_WAIT_POLICY'),
                summary=bench.machine_summary(), load_average_start=os.getloadavg())


def main(argv=None):
    args = parse_args(argv)
    s = settings(args)
    logger = MMLogger.get_instance('repvgg_mm_online_fusion', log_level='INFO')
    if args.worker is not None:
        kind, name, mode = args.worker
        if kind != 'detector' or name not in DETECTORS or mode not in MODES:
            raise UserError(f'--worker takes detector {{{",".join(DETECTORS)}}} '
                            f'{{{",".join(MODES)}}}, got {" ".join(args.worker)}')
        if not args.worker_out:
            raise UserError('--worker needs --worker-out')
        with torch_threads(s['threads']):
            detector_worker(name, mode, s, args.worker_out, logger)
        return 0
    if args.data_root is not None and not os.path.isdir(args.data_root):
        raise UserError(f'--data-root {args.data_root} is not a folder')
    os.makedirs(args.work_dir, exist_ok=True)
    report = dict(settings=dict(s))
    started = time.perf_counter()
    with torch_threads(s['threads']):
        report['machine'] = machine(s)
        logger.info(f'online fusion benchmark ({"quick" if s["quick"] else "full"}): '
                    f'{report["machine"]["summary"]}')
        if 'backbone' in args.sections:
            report['backbone'] = backbone_section(s, logger)
        if 'detectors' in args.sections:
            report['detectors'] = detectors_section(args, s, logger)
        if 'segmentation' in args.sections:
            report['segmentation'] = segmentation_section(s, logger)
        if 'finetune' in args.sections:
            report['finetune'] = finetune_section(args, s, logger)
    rows = table_rows(report)
    report['table'] = [dict(zip(('workload', 'off', 'auto', 'ratio', 'target', 'verdict'), row))
                       for row in rows]
    report['seconds'] = time.perf_counter() - started
    report['machine']['load_average_end'] = os.getloadavg()
    path = os.path.join(args.work_dir, 'online_fusion.json')
    write_json_atomic(report, path)
    machine_info = report['machine']
    print(markdown_table(rows))
    print(f'\nCPU: {machine_info["cpu"]} ({machine_info["cores"]} cores), '
          f'{machine_info["threads"]} torch threads, torch {machine_info["torch"]}, '
          f'OMP_WAIT_POLICY={machine_info["omp_wait_policy"]}; times are medians of interleaved '
          'rounds, speed ratios off/auto')
    if 'segmentation' in report:
        print(f'PSPNet-{report["segmentation"]["arch"]} with trained BN (online_fusion=auto): '
              f'{report["segmentation"]["online_line"]}')
    print(f'wrote {path} ({report["seconds"]:.0f} s)')
    return 0


if __name__ == '__main__':
    sys.exit(run_tool(main))
