"""What the online-fusion benchmark measures (full or quick sizes) and the models it builds.

Every comparison runs one model and its deep copy with ``online_fusion`` switched on every
RepVGGBlock (:func:`twins`: identical weights, random BN statistics), side by side in one process.
"""
import copy
import os
from typing import Callable, Dict, List, Optional

import torch
from mmengine.logging import MMLogger
from torch import nn

from repvgg_mm.models import RepVGGBlock, build_analysis_model
from repvgg_mm.testing import TINY_NAME
from repvgg_mm.utils.errors import UserError
from repvgg_mm.utils.timing import Timing, time_interleaved

from ..workloads import measuring_config

MODES = ('off', 'auto')
SECTIONS = ('backbone', 'detectors', 'segmentation', 'finetune')
# configs relative to the repository root (settings['repo'])
DETECTORS = {
    'retinanet': ('RetinaNet', 'configs/detection/retinanet_repvgg_a0_fpn_1x_coco.py'),
    'faster_rcnn': ('Faster R-CNN', 'configs/detection/faster_rcnn_repvgg_a0_fpn_1x_coco.py'),
}
SEG_CONFIG = 'configs/pspnet_repvgg_a0.py'
TOY_CONFIG = 'configs/toy/retinanet_repvgg_a0_toy.py'

FULL = dict(size=512, batch=2, archs=('A0', 'B1g2'), repeats=5, warmup=1, det_repeats=3,
            rss_steps=2, rss_detectors=tuple(DETECTORS), seg_size=512, seg_batch=2,
            seg_repeats=3, iters=20, boxes=4, fp64_size=128)
QUICK = dict(size=64, batch=2, archs=(TINY_NAME, ), repeats=1, warmup=0, det_repeats=1,
             rss_steps=1, rss_detectors=('retinanet', ), seg_size=64, seg_batch=2,
             seg_repeats=1, iters=2, boxes=2, fp64_size=64)


def make_settings(repo: str, quick: bool = False, threads: int = 2, seed: int = 0,
                  rss_jobs: int = 2, **overrides) -> dict:
    """The full (or ``quick``: tiny arch, 64x64, one round, 2 fine-tune iterations) settings with
    ``overrides`` (None: keep); ``repeats`` sets the rounds of every section. ``repo``: the folder
    that holds ``configs/`` (and ``data/toy_dense``)."""
    s = dict(QUICK if quick else FULL)
    for key, value in overrides.items():
        if value is None:
            continue
        if key == 'repeats':
            s.update(repeats=value, det_repeats=value, seg_repeats=value)
        elif key in ('archs', 'rss_detectors'):
            s[key] = tuple(value)
        elif key in s:
            s[key] = value
        else:
            raise KeyError(f'unknown setting {key!r}')
    for key in ('size', 'batch', 'iters', 'repeats', 'rss_steps', 'seg_size', 'seg_batch'):
        if s[key] < 1:
            raise UserError(f'{key.replace("_", "-")} must be at least 1, got {s[key]}')
    if s['warmup'] < 0:
        raise UserError(f'warmup must be >= 0, got {s["warmup"]}')
    for key, value in (('threads', threads), ('rss-jobs', rss_jobs)):
        if value < 1:
            raise UserError(f'--{key} must be at least 1, got {value}')
    unknown = set(s['rss_detectors']) - set(DETECTORS)
    if unknown:
        raise UserError(f'unknown detectors {sorted(unknown)}; choose from {list(DETECTORS)}')
    s.update(quick=quick, threads=threads, seed=seed, rss_jobs=rss_jobs, repo=str(repo))
    return s


def arch_label(s: dict) -> str:
    """The backbone of the config-built models: A0, or the tiny arch with ``quick``."""
    return TINY_NAME if s['quick'] else 'A0'


def model_config(relative: str, s: dict, cfg_options: Optional[dict] = None):
    """A config of the repository with plain BN and random weights; the tiny arch if quick."""
    return measuring_config(os.path.join(s['repo'], relative), cfg_options, tiny=s['quick'])


def random_model(cfg, s: dict) -> nn.Module:
    """The config's model with its own init (as the Runner's) and random BN statistics."""
    return build_analysis_model(cfg, seed=s['seed'], init_weights=True)


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


def time_modes(steps: Dict[str, Callable[[], object]], repeats: int, warmup: int,
               logger: MMLogger, what: str) -> Dict[str, Timing]:
    logger.info(f'{what}: timing off vs auto, {warmup} warm-up + {repeats} interleaved rounds')

    def on_round(index):
        logger.info(f'{what}: round {index + 1}/{repeats} done')

    return time_interleaved({mode: steps[mode] for mode in MODES}, repeats=repeats,
                            warmup=warmup, on_round=on_round)


def timing_dict(timing: Timing) -> dict:
    return dict(median_s=timing.median, best_s=timing.best, spread=timing.spread,
                samples_s=list(timing.samples))


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


def checked_step(model: nn.Module, step: Callable[[], float], seed: int):
    """Run one step; return its loss and how many blocks ran fused online."""
    calls = BranchCalls(model)
    torch.manual_seed(seed)
    try:
        loss = step()
    finally:
        calls.remove()
    return loss, calls.online
