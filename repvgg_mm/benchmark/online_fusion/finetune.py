"""Section ``finetune``: the toy RetinaNet (norm_eval=True) fine-tuned twice from the same weights
on the same batches, online fusion off and auto, interleaved iteration by iteration; the losses of
the last iteration must agree, within the noise floor of a third run from weights 1 ulp away."""
import copy
import itertools
import os
import time
from typing import Dict, List, Optional, Tuple

import torch
from mmengine.logging import MMLogger
from mmengine.registry import DefaultScope
from torch import Tensor, nn

from repvgg_mm.datasets.toy_dense import make_toy_dense
from repvgg_mm.utils.config import build_model
from repvgg_mm.utils.errors import UserError, first_line
from repvgg_mm.utils.timing import Timing

from ..targets import ONLINE_FUSION_TARGETS as TARGETS
from ..targets import off_auto_ratio
from .settings import MODES, TOY_CONFIG, arch_label, model_config, random_model, repvgg_blocks


def toy_data_root(data_root: Optional[str], s: dict) -> str:
    """``data_root``, or the repository's ``data/toy_dense`` (generated if missing)."""
    if data_root is None:
        data_root = os.path.join(s['repo'], 'data', 'toy_dense')
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


def _models(cfgs: dict, s: dict, control: str) -> Dict[str, nn.Module]:
    """The models of off, auto and the control (off, from 1-ulp perturbed weights): one state."""
    with DefaultScope.overwrite_default_scope('mmdet'):
        state = copy.deepcopy(random_model(cfgs['auto'], s).state_dict())
        models = {}
        for mode, weights in (('off', state), ('auto', state),
                              (control, ulp_perturbed(state, s['seed']))):
            models[mode] = build_model(cfgs['auto' if mode == 'auto' else 'off'])
            models[mode].load_state_dict(weights)
    return models


def finetune_section(data_root: Optional[str], s: dict, logger: MMLogger) -> dict:
    data_root = toy_data_root(data_root, s)
    cfgs = {mode: toy_config(s, mode, data_root) for mode in MODES}
    control = 'off, 1-ulp perturbed weights'  # the noise floor of float32 training
    models = _models(cfgs, s, control)
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
                                per_iteration=diffs, target=TARGETS['loss_diff'].value,
                                verdict=TARGETS['loss_diff'].verdict(diffs[-1])),
        noise_floor=dict(run=control, losses=losses[control], last_loss=losses[control][-1],
                         last_loss_rel_diff_vs_off=floor[-1], max_over_iterations=max(floor),
                         per_iteration=floor, auto_within=max(diffs) <= max(floor)),
        wall_s={mode: runs[mode].seconds for mode in MODES},
        median_iteration_s={mode: t.median for mode, t in timing.items()},
        speedup=off_auto_ratio(timing))
