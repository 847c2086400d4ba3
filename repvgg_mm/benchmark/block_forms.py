"""Training cost of the three fine-tuning forms with BN in training mode, side by side.

The forms (the backbone's ``block_type``): ``'repvgg'`` (three branches, three BNs),
``'linear'`` (:class:`~repvgg_mm.models.LinearRepVGGBlock`: one conv + one BN) and ``'fused_bn'``
(:class:`~repvgg_mm.models.FusedBNBlock`: the fused conv + BN, the plain network trained
directly). The linear and fused+BN models are converted from the RepVGG model
(``state_dict_from_repvgg``), so the three compute the same function in eval mode (checked: a
max relative error is reported) and train from the same point.

Sections:

- ``backbone``: RepVGG (``out_indices`` 0-3, BN training) train step: forward, backward of a fixed
  random weighting of all outputs, zero grads; median time over interleaved rounds (the three
  forms in one process, :func:`~repvgg_mm.utils.timing.time_interleaved`), and the bytes autograd
  saves for backward (parameters, buffers and the input left out; each storage once).
- ``segmentors``: one whole train step (``train_step``: data preprocessor, losses, backward, SGD
  step) of segmentor configs (the toy PSPNet and UPerNet) built with each block type, BN training
  (SyncBN run as BN); bytes saved by the loss forward.

Speed claims are ratios of medians (RepVGG block / form: > 1 means faster than the RepVGG block);
the report names the CPU.
"""
import copy
from dataclasses import asdict, dataclass, field
from typing import Callable, Dict, List, Optional, Sequence, Union

import torch
from mmengine.logging import MMLogger
from mmengine.optim import OptimWrapper
from torch import Tensor, nn

from repvgg_mm.models import RepVGG, RepVGGBlock, build_analysis_model
from repvgg_mm.models.utils import randomize_bn_
from repvgg_mm.testing import TINY_NAME, named_arch
from repvgg_mm.utils.compare import outputs_difference
from repvgg_mm.utils.errors import UserError
from repvgg_mm.utils.timing import Timing, time_interleaved, torch_threads

from .machine import machine_info, machine_line
from .memory import SavedTensors, persistent_tensors
from .targets import BLOCK_FORM_TARGETS as TARGETS
from .workloads import (
    backbone_step,
    measuring_config,
    output_weights,
    segmentation_data,
    weighted_loss,
)

FORMS = ('repvgg', 'linear', 'fused_bn')
FORM_TITLES = {'repvgg': 'RepVGG block', 'linear': 'linear-scaling', 'fused_bn': 'fused+BN'}


@dataclass
class BlockFormsSettings:
    """What :func:`run_block_forms` measures; :meth:`quick` gives tiny sizes for tests."""

    archs: Sequence[str] = ('A0', 'B1g2')
    batch: int = 2
    size: int = 512
    seg_configs: Dict[str, str] = field(default_factory=dict)  # name -> config path
    seg_batch: int = 2
    seg_size: int = 512
    repeats: int = 5
    warmup: int = 1
    threads: Optional[int] = 2
    seed: int = 0

    @classmethod
    def quick(cls, seg_configs: Optional[Dict[str, str]] = None, **overrides
              ) -> 'BlockFormsSettings':
        """The tiny arch (also inside the segmentors) at 64x64, one round, no warm-up."""
        values = dict(archs=(TINY_NAME, ), size=64, seg_configs=dict(seg_configs or {}),
                      seg_size=64, repeats=1, warmup=0)
        values.update(overrides)
        return cls(**values)

    def check(self) -> None:
        for name in ('batch', 'size', 'seg_batch', 'seg_size', 'repeats'):
            if getattr(self, name) < 1:
                raise UserError(f'{name.replace("_", "-")} must be at least 1, got '
                                f'{getattr(self, name)}')
        if self.warmup < 0:
            raise UserError(f'warmup must be >= 0, got {self.warmup}')
        if self.threads is not None and self.threads < 1:
            raise UserError(f'threads must be at least 1, got {self.threads}')
        if not self.archs and not self.seg_configs:
            raise UserError('nothing to measure: give archs or segmentor configs')


def convert_backbone_state(model: nn.Module, source_state: Dict[str, Tensor],
                           prefix: str = '') -> Dict[str, Tensor]:
    """``source_state`` (a model whose RepVGG backbone sits under ``prefix``) for ``model``: the
    backbone converted by ``model``'s own backbone, every other tensor as it is."""
    backbone = model.get_submodule(prefix.rstrip('.')) if prefix else model
    if not getattr(backbone, 'converts_repvgg_weights', False):
        return dict(source_state)
    inner = {k[len(prefix):]: v for k, v in source_state.items() if k.startswith(prefix)}
    state = {k: v for k, v in source_state.items() if not k.startswith(prefix)}
    state.update({prefix + k: v for k, v in backbone.state_dict_from_repvgg(inner).items()})
    return state


def eval_differences(models: Dict[str, nn.Module], run: Callable[[nn.Module], object]
                     ) -> Dict[str, float]:
    """Max relative difference of each form's eval-mode output from the RepVGG model's."""
    with torch.no_grad():
        outputs = {form: run(model.eval()) for form, model in models.items()}
    return {form: outputs_difference(outputs['repvgg'], out).max_rel
            for form, out in outputs.items() if form != 'repvgg'}


def compare(timings: Dict[str, Timing], saved: Dict[str, int]) -> dict:
    """Medians, ratios against the RepVGG block, and the linear form's verdicts."""
    base = timings['repvgg'].median
    speedup = {form: base / t.median for form, t in timings.items()}
    saved_ratio = {form: saved[form] / saved['repvgg'] for form in saved}
    return dict(
        time={form: dict(median_s=t.median, best_s=t.best, spread=t.spread,
                         samples_s=list(t.samples)) for form, t in timings.items()},
        speedup=speedup, saved_bytes=dict(saved), saved_ratio=saved_ratio,
        verdict=dict(speedup=TARGETS['speedup'].verdict(speedup['linear']),
                     saved_ratio=TARGETS['saved_ratio'].verdict(saved_ratio['linear'])))


def timed(steps: Dict[str, Callable[[], object]], s: BlockFormsSettings, logger: MMLogger,
          what: str) -> Dict[str, Timing]:
    logger.info(f'{what}: {s.warmup} warm-up + {s.repeats} interleaved rounds of '
                f'{", ".join(steps)}')
    return time_interleaved(steps, repeats=s.repeats, warmup=s.warmup,
                            on_round=lambda i: logger.info(f'{what}: round {i + 1}/{s.repeats}'))


# --------------------------------------------------------------------------------------------
# backbone


def backbone_forms(arch: Union[str, dict], seed: int) -> Dict[str, RepVGG]:
    """The three forms of a RepVGG backbone (BN training), the same function in eval mode."""
    torch.manual_seed(seed)
    source = randomize_bn_(RepVGG(arch, out_indices=(0, 1, 2, 3)),
                           torch.Generator().manual_seed(seed))
    models = {'repvgg': source}
    for form in FORMS[1:]:
        model = RepVGG(arch, out_indices=(0, 1, 2, 3), block_type=form)
        model.load_state_dict(convert_backbone_state(model, source.state_dict()), strict=True)
        models[form] = model
    return models


def backbone_result(name: str, s: BlockFormsSettings, logger: MMLogger) -> dict:
    models = backbone_forms(named_arch(name), s.seed)
    generator = torch.Generator().manual_seed(s.seed + 1)
    small = torch.randn(1, 3, 64, 64, generator=generator)
    eval_error = eval_differences(models, lambda m: m(small))
    inputs = torch.randn(s.batch, 3, s.size, s.size, generator=generator)
    with torch.no_grad():
        shapes = [o.shape for o in models['repvgg'].eval()(inputs)]
    weights = output_weights(shapes, generator)
    saved = {}
    for form, model in models.items():
        model.train()
        with SavedTensors(persistent_tensors(model, inputs)) as recorder:
            outputs = model(inputs)
        weighted_loss(outputs, weights).backward()
        model.zero_grad(set_to_none=True)
        saved[form] = recorder.nbytes
        del outputs

    timings = timed({form: backbone_step(m, inputs, weights) for form, m in models.items()}, s,
                    logger, f'backbone {name}')
    result = dict(input=[s.batch, 3, s.size, s.size],
                  blocks=sum(isinstance(m, RepVGGBlock) for m in models['repvgg'].modules()),
                  eval_max_rel_error=eval_error, **compare(timings, saved))
    logger.info(f'backbone {name}: ' + ', '.join(
        f'{form} {result["time"][form]["median_s"] * 1e3:.0f} ms ({result["speedup"][form]:.2f}x) '
        f'{saved[form] / 2 ** 20:.1f} MiB' for form in FORMS))
    return result


# --------------------------------------------------------------------------------------------
# segmentors


def segmentor_forms(path: str, s: BlockFormsSettings, quick: bool) -> Dict[str, nn.Module]:
    """The segmentor of ``path`` with each block type; every form starts from the same weights."""
    cfg = measuring_config(path, tiny=quick)
    models = {}
    for form in FORMS:
        form_cfg = copy.deepcopy(cfg)
        form_cfg.model.backbone.block_type = form
        models[form] = build_analysis_model(form_cfg, seed=s.seed, init_weights=True)
    source = models['repvgg']
    for form in FORMS[1:]:
        state = convert_backbone_state(models[form], source.state_dict(), 'backbone.')
        models[form].load_state_dict(state, strict=True)
    return models


def segmentor_result(name: str, path: str, s: BlockFormsSettings, quick: bool,
                     logger: MMLogger) -> dict:
    models = segmentor_forms(path, s, quick)
    num_classes = models['repvgg'].decode_head.num_classes
    data = segmentation_data(s.seg_batch, s.seg_size, num_classes, s.seed + 1)
    eval_error = eval_differences(
        models, lambda m: m(**m.data_preprocessor(copy.deepcopy(data), False), mode='tensor'))
    saved, wrappers = {}, {}
    for form, model in models.items():
        model.train()
        batch = model.data_preprocessor(copy.deepcopy(data), True)
        with SavedTensors(persistent_tensors(model, batch['inputs'])) as recorder:
            losses = model(**batch, mode='loss')
        model.parse_losses(losses)[0].backward()
        model.zero_grad(set_to_none=True)
        saved[form] = recorder.nbytes
        del losses
        wrappers[form] = OptimWrapper(torch.optim.SGD(model.parameters(), lr=1e-4, momentum=0.9,
                                                      weight_decay=5e-4))

    def step(form):
        def run():
            models[form].train_step(copy.deepcopy(data), wrappers[form])
        return run

    timings = timed({form: step(form) for form in FORMS}, s, logger, name)
    decode = models['repvgg'].decode_head
    result = dict(config=path, head=type(decode).__name__,
                  arch=TINY_NAME if quick else str(models['repvgg'].backbone.arch),
                  input=[s.seg_batch, 3, s.seg_size, s.seg_size],
                  eval_max_rel_error=eval_error, **compare(timings, saved))
    logger.info(f'{name}: ' + ', '.join(
        f'{form} {result["time"][form]["median_s"] * 1e3:.0f} ms ({result["speedup"][form]:.2f}x)'
        for form in FORMS))
    return result


# --------------------------------------------------------------------------------------------
# run and report


def run_block_forms(s: BlockFormsSettings, logger: Optional[MMLogger] = None,
                    quick: bool = False) -> dict:
    """Measure every section; return the report (settings, machine, backbone, segmentors)."""
    s.check()
    logger = logger or MMLogger.get_current_instance()
    report = dict(settings=asdict(s), quick=quick)
    with torch_threads(s.threads):
        report['machine'] = machine_info()
        logger.info(f'block forms benchmark: {machine_line(report["machine"])}')
        report['backbone'] = {name: backbone_result(name, s, logger) for name in s.archs}
        report['segmentors'] = {name: segmentor_result(name, path, s, quick, logger)
                                for name, path in s.seg_configs.items()}
    return report


def _ms(result: dict, form: str) -> str:
    ms = result['time'][form]['median_s'] * 1e3
    return f'{ms:.0f} ms' if form == 'repvgg' else f'{ms:.0f} ms ({result["speedup"][form]:.2f}x)'


def _mib(result: dict, form: str) -> str:
    mib = result['saved_bytes'][form] / 2 ** 20
    return (f'{mib:.1f} MiB' if form == 'repvgg'
            else f'{mib:.1f} MiB ({result["saved_ratio"][form]:.2f})')


def table_rows(report: dict) -> List[List[str]]:
    rows = []
    workloads = [(f'RepVGG-{name} backbone', r) for name, r in report['backbone'].items()]
    workloads += [(f'{name} ({r["head"]}, {r["arch"]}) whole step', r)
                  for name, r in report['segmentors'].items()]
    for title, r in workloads:
        shape = 'x'.join(map(str, r['input']))
        rows.append([f'{title}, {shape}: train step', *(_ms(r, f) for f in FORMS),
                     str(TARGETS['speedup']), r['verdict']['speedup']])
        rows.append([f'{title}, {shape}: saved for backward', *(_mib(r, f) for f in FORMS),
                     str(TARGETS['saved_ratio']), r['verdict']['saved_ratio']])
    return rows


def markdown_table(report: dict) -> str:
    header = ['workload', *(FORM_TITLES[f] for f in FORMS), 'target (linear)', 'verdict']
    lines = ['| ' + ' | '.join(header) + ' |', '|' + '|'.join(['---'] * len(header)) + '|']
    lines += ['| ' + ' | '.join(row) + ' |' for row in table_rows(report)]
    return '\n'.join(lines)


def footer(report: dict) -> str:
    worst = max((e for section in ('backbone', 'segmentors')
                 for r in report[section].values() for e in r['eval_max_rel_error'].values()),
                default=0.0)
    return (f'CPU: {machine_line(report["machine"])}; times are medians of interleaved rounds, '
            'ratios RepVGG block / form (> 1: faster), saved tensors form / RepVGG block; the '
            f'forms compute the same eval-mode function (max rel. difference {worst:.1e})')
