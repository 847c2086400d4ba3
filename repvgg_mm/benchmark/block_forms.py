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
import logging
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Callable, Dict, Iterator, List, Optional, Sequence, Union

import torch
from mmengine.logging import MMLogger
from mmengine.optim import OptimWrapper
from torch import Tensor, nn

from repvgg_mm.models import RepVGG, RepVGGBlock, arch_channels
from repvgg_mm.models.utils import randomize_bn_
from repvgg_mm.testing import TINY_ARCH
from repvgg_mm.utils.compare import outputs_difference
from repvgg_mm.utils.config import build_model, load_config, replace_sync_bn
from repvgg_mm.utils.errors import UserError
from repvgg_mm.utils.timing import Timing, time_interleaved, torch_threads

from .machine import machine_info, machine_line
from .saved_tensors import SavedTensors, persistent_tensors

FORMS = ('repvgg', 'linear', 'fused_bn')
FORM_TITLES = {'repvgg': 'RepVGG block', 'linear': 'linear-scaling', 'fused_bn': 'fused+BN'}
# The linear-scaling form against the RepVGG block (issue 21): step time ratio at least, bytes
# saved for backward ratio at most.
TARGETS = dict(speedup=1.3, saved_ratio=0.75)
TINY_NAME = 'tiny'  # repvgg_mm.testing.TINY_ARCH (quick mode)


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


def arch_of(name: str) -> Union[str, dict]:
    return dict(TINY_ARCH) if name == TINY_NAME else name


@contextmanager
def quiet_logger() -> Iterator[None]:
    """Drop INFO records of the current logger (mmengine's per-parameter init dump)."""
    logger = MMLogger.get_current_instance()
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)


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
        verdict=dict(speedup='pass' if speedup['linear'] >= TARGETS['speedup'] else 'miss',
                     saved_ratio='pass' if saved_ratio['linear'] <= TARGETS['saved_ratio']
                     else 'miss'))


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


def weighted_loss(outputs: Sequence[Tensor], weights: Sequence[Tensor]) -> Tensor:
    return sum((o * w).sum() for o, w in zip(outputs, weights))


def backbone_result(name: str, s: BlockFormsSettings, logger: MMLogger) -> dict:
    models = backbone_forms(arch_of(name), s.seed)
    generator = torch.Generator().manual_seed(s.seed + 1)
    small = torch.randn(1, 3, 64, 64, generator=generator)
    eval_error = eval_differences(models, lambda m: m(small))
    inputs = torch.randn(s.batch, 3, s.size, s.size, generator=generator)
    with torch.no_grad():
        shapes = [o.shape for o in models['repvgg'].eval()(inputs)]
    weights = [torch.randn(shape, generator=generator) / shape.numel() ** 0.5
               for shape in shapes]
    saved = {}
    for form, model in models.items():
        model.train()
        with SavedTensors(persistent_tensors(model, inputs)) as recorder:
            outputs = model(inputs)
        weighted_loss(outputs, weights).backward()
        model.zero_grad(set_to_none=True)
        saved[form] = recorder.nbytes
        del outputs

    def step(model):
        def run():
            weighted_loss(model(inputs), weights).backward()
            model.zero_grad(set_to_none=True)
        return run

    timings = timed({form: step(m) for form, m in models.items()}, s, logger, f'backbone {name}')
    result = dict(input=[s.batch, 3, s.size, s.size],
                  blocks=sum(isinstance(m, RepVGGBlock) for m in models['repvgg'].modules()),
                  eval_max_rel_error=eval_error, **compare(timings, saved))
    logger.info(f'backbone {name}: ' + ', '.join(
        f'{form} {result["time"][form]["median_s"] * 1e3:.0f} ms ({result["speedup"][form]:.2f}x) '
        f'{saved[form] / 2 ** 20:.1f} MiB' for form in FORMS))
    return result


# --------------------------------------------------------------------------------------------
# segmentors


def use_arch(cfg, arch) -> None:
    """Put ``arch`` into ``cfg.model.backbone`` and fit the heads' input channels to it."""
    _, channels = arch_channels(arch)
    cfg.model.backbone.arch = arch
    for head in ('decode_head', 'auxiliary_head'):
        head_cfg = cfg.model.get(head)
        if head_cfg is None:
            continue
        if isinstance(head_cfg.in_index, int):
            head_cfg.in_channels = channels[cfg.model.backbone.out_indices[head_cfg.in_index]]
        else:
            head_cfg.in_channels = [channels[cfg.model.backbone.out_indices[i]]
                                    for i in head_cfg.in_index]


def segmentor_config(path: str, s: BlockFormsSettings, quick: bool):
    cfg = load_config(path)
    cfg.model = replace_sync_bn(cfg.model)[0]
    cfg.model.backbone.init_cfg = None
    cfg.model.backbone.pop('pretrained', None)
    cfg.model.pop('pretrained', None)
    if quick:
        use_arch(cfg, dict(TINY_ARCH))
    return cfg


def segmentor_forms(path: str, s: BlockFormsSettings, quick: bool) -> Dict[str, nn.Module]:
    """The segmentor of ``path`` with each block type; every form starts from the same weights."""
    cfg = segmentor_config(path, s, quick)
    models = {}
    for form in FORMS:
        form_cfg = copy.deepcopy(cfg)
        form_cfg.model.backbone.block_type = form
        torch.manual_seed(s.seed)
        with quiet_logger():
            model = build_model(form_cfg)
            model.init_weights()
        models[form] = model
    source = randomize_bn_(models['repvgg'], torch.Generator().manual_seed(s.seed))
    for form in FORMS[1:]:
        state = convert_backbone_state(models[form], source.state_dict(), 'backbone.')
        models[form].load_state_dict(state, strict=True)
    return models


def segmentation_batch(s: BlockFormsSettings, num_classes: int, seed: int) -> dict:
    """What a dataloader gives ``train_step``: uint8 images and label maps of ``seg_size``."""
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample
    generator = torch.Generator().manual_seed(seed)
    shape = (s.seg_size, s.seg_size)
    inputs, samples = [], []
    for _ in range(s.seg_batch):
        inputs.append(torch.randint(0, 256, (3, *shape), generator=generator, dtype=torch.uint8))
        sample = SegDataSample(metainfo=dict(img_shape=shape, ori_shape=shape, pad_shape=shape))
        sample.gt_sem_seg = PixelData(data=torch.randint(0, num_classes, (1, *shape),
                                                         generator=generator))
        samples.append(sample)
    return dict(inputs=inputs, data_samples=samples)


def segmentor_result(name: str, path: str, s: BlockFormsSettings, quick: bool,
                     logger: MMLogger) -> dict:
    models = segmentor_forms(path, s, quick)
    num_classes = models['repvgg'].decode_head.num_classes
    data = segmentation_batch(s, num_classes, s.seed + 1)
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
                     f'>= {TARGETS["speedup"]}x', r['verdict']['speedup']])
        rows.append([f'{title}, {shape}: saved for backward', *(_mib(r, f) for f in FORMS),
                     f'<= {TARGETS["saved_ratio"]}', r['verdict']['saved_ratio']])
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
