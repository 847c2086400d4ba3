"""Sections ``detectors`` and ``segmentation``: whole training steps of configs of the repository.

- ``detectors``: one training step (``mode='loss'``, backward) of the RetinaNet-A0 and Faster
  R-CNN-A0 COCO configs with random boxes, off vs auto; then the peak RSS of each detector and
  mode, each in a process of its own (:func:`repvgg_mm.benchmark.memory.run_workers`).
- ``segmentation``: PSPNet-A0 with trained BN (norm_eval False): no block may run fused online,
  and the step time must not change.
"""
from typing import Dict, Sequence

import torch
from mmengine.logging import MMLogger
from torch import nn

from repvgg_mm.utils.timing import torch_threads

from ..memory import mib, peak_rss_bytes, reset_peak_rss, rss_bytes, run_workers
from ..targets import ONLINE_FUSION_TARGETS as TARGETS
from ..targets import off_auto_ratio
from ..workloads import detection_batch, loss_step, segmentation_batch
from .settings import (
    DETECTORS,
    MODES,
    SEG_CONFIG,
    arch_label,
    checked_step,
    model_config,
    random_model,
    repvgg_blocks,
    time_modes,
    timing_dict,
    twins,
)


def build_detector(name: str, s: dict, mode: str = 'auto') -> nn.Module:
    cfg = model_config(DETECTORS[name][1], s, {'model.backbone.online_fusion': mode})
    return random_model(cfg, s).train()


def _detection_batch(s: dict):
    return detection_batch(s['batch'], s['size'], s['boxes'], s['seed'])


def detector_peak_rss(name: str, mode: str, s: dict) -> dict:
    """Peak RSS of ``s['rss_steps']`` training steps of one detector in one mode, in this process
    (run by :func:`~repvgg_mm.benchmark.memory.run_workers`).

    ``ru_maxrss`` is the peak of the whole process, imports included (they peak above a small
    model's steps); the mark is reset after the model and its inputs are built, so ``peak_rss``
    is the peak of model + steps (``process_peak_rss``: without the reset)."""
    with torch_threads(s['threads']):
        model = build_detector(name, s, mode)
        step = loss_step(model, *_detection_batch(s))
        process_peak = peak_rss_bytes()
        before = rss_bytes()
        reset = reset_peak_rss()
        for index in range(s['rss_steps']):
            torch.manual_seed(s['seed'] + index)
            step()
        peak = peak_rss_bytes()
    return dict(detector=name, mode=mode, steps=s['rss_steps'], rss_before=before,
                peak_rss=peak, peak_reset=reset, process_peak_rss=max(process_peak, peak))


def measure_peak_rss(names: Sequence[str], s: dict, logger: MMLogger
                     ) -> Dict[str, Dict[str, dict]]:
    """``{name: {mode: worker report}}``: one process per detector and mode, ``s['rss_jobs']``
    at a time (started after the timings, so they disturb none)."""
    jobs = {f'{name} ({mode})': (f'{__name__}:detector_peak_rss',
                                 dict(name=name, mode=mode, s=s))
            for name in names for mode in MODES}

    def on_start(key):
        name, mode = key.split(' (')
        logger.info(f'{DETECTORS[name][0]}-{arch_label(s)} ({mode[:-1]}): peak RSS of '
                    f'{s["rss_steps"]} steps in a separate process')

    reports = run_workers(jobs, s['rss_jobs'], on_start)
    return {name: {mode: reports[f'{name} ({mode})'] for mode in MODES} for name in names}


def _peak_rss_result(rss: Dict[str, dict], steps: int) -> dict:
    peak = {mode: rss[mode]['peak_rss'] for mode in MODES}
    before = {mode: rss[mode]['rss_before'] for mode in MODES}
    growth = {mode: peak[mode] - before[mode] for mode in MODES}
    return dict(
        peak, ratio=peak['auto'] / peak['off'], auto_lower=peak['auto'] < peak['off'],
        verdict='pass' if peak['auto'] < peak['off'] else 'miss', steps=steps,
        rss_before_steps=before, growth_during_steps=growth,
        peak_reset_before_steps={mode: rss[mode]['peak_reset'] for mode in MODES},
        process_peak_rss={mode: rss[mode]['process_peak_rss'] for mode in MODES},
        growth_ratio=growth['auto'] / growth['off'] if growth['off'] > 0 else None)


def detectors_section(s: dict, logger: MMLogger) -> dict:
    results = {}
    for name, (kind, relative) in DETECTORS.items():
        title = f'{kind}-{arch_label(s)}'
        logger.info(f'{title}: building {relative}')
        models = twins(build_detector(name, s))
        inputs, samples = _detection_batch(s)
        steps = {mode: loss_step(m, inputs, samples) for mode, m in models.items()}
        checked = {mode: checked_step(models[mode], steps[mode], s['seed']) for mode in MODES}
        timings = time_modes(steps, s['det_repeats'], s['warmup'], logger, title)
        ratio = off_auto_ratio(timings)
        results[name] = dict(
            title=title, config=relative, input=[s['batch'], 3, s['size'], s['size']],
            boxes_per_image=s['boxes'], blocks=len(repvgg_blocks(models['auto'])),
            online_blocks={mode: checked[mode][1] for mode in MODES},
            first_step_loss={mode: checked[mode][0] for mode in MODES},
            first_step_loss_rel_diff=abs(checked['auto'][0] - checked['off'][0])
            / max(abs(checked['off'][0]), 1e-12),
            time={mode: timing_dict(t) for mode, t in timings.items()},
            speedup=dict(ratio, target=TARGETS['detector_speedup'].value,
                         verdict=TARGETS['detector_speedup'].verdict(ratio['ratio'])))
        logger.info(f'{title}: speed-up {ratio["ratio"]:.2f}x')
        del models, steps
    rss = measure_peak_rss(s['rss_detectors'], s, logger)
    for name, result in results.items():
        if name not in rss:
            result['peak_rss'] = None  # not measured (rss_detectors)
            continue
        result['peak_rss'] = peak = _peak_rss_result(rss[name], s['rss_steps'])
        logger.info(f'{result["title"]}: peak RSS off {mib(peak["off"]):.0f} MiB, auto '
                    f'{mib(peak["auto"]):.0f} MiB (growth during the steps '
                    f'{mib(peak["growth_during_steps"]["off"]):.0f} / '
                    f'{mib(peak["growth_during_steps"]["auto"]):.0f} MiB)')
    return results


def segmentation_section(s: dict, logger: MMLogger) -> dict:
    cfg = model_config(SEG_CONFIG, s, {'model.backbone.norm_eval': False})
    models = twins(random_model(cfg, s).train())
    inputs, samples = segmentation_batch(s['seg_batch'], s['seg_size'],
                                         cfg.model.decode_head.num_classes, s['seed'])
    steps = {mode: loss_step(m, inputs, samples) for mode, m in models.items()}
    checked = {mode: checked_step(models[mode], steps[mode], s['seed']) for mode in MODES}
    total_blocks = len(repvgg_blocks(models['auto']))
    line = f'online fusion: {checked["auto"][1]}/{total_blocks} blocks'
    logger.info(f'PSPNet (trained BN), online_fusion=auto: {line}')
    timings = time_modes(steps, s['seg_repeats'], s['warmup'], logger, 'PSPNet (trained BN)')
    ratio = off_auto_ratio(timings)
    return dict(
        config=SEG_CONFIG, arch=arch_label(s),
        input=[s['seg_batch'], 3, s['seg_size'], s['seg_size']], norm_eval=False,
        blocks=total_blocks,
        online_blocks={mode: checked[mode][1] for mode in MODES}, online_line=line,
        online_verdict=TARGETS['seg_online'].verdict(checked['auto'][1]),
        time={mode: timing_dict(t) for mode, t in timings.items()},
        speedup=dict(ratio, target=TARGETS['seg_ratio'].value,
                     verdict=TARGETS['seg_ratio'].verdict(ratio['ratio'])))
