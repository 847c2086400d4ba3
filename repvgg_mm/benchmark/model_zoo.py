"""The model-zoo table of every shipped config: params and FLOPs training-time vs fused, CPU
latency (``tools/analysis_tools/model_zoo.py``, which writes it into ``docs/model_zoo.md``).

For each config (configs/**/*.py without _base_/ and *_deploy.py): task, head, arch, dataset and
schedule read from the config; parameters and FLOPs (multiply-adds, mmengine's FlopAnalyzer) of the
training-time model and of its fused twin at the config's test size; and the median CPU latency of
both at one fixed size, timed interleaved in one process. Weights are random (BN statistics
randomised): the fused model is checked against the training-time one before anything is counted.
Models run their ``tensor`` forward (logits or raw head outputs, as mmseg's/mmdet's get_flops count
them).
"""
import glob
import os
from dataclasses import dataclass
from typing import List, Sequence, Tuple

import torch

from repvgg_mm.conversion import check_equivalence
from repvgg_mm.deploy.onnx_export import ExportAdapter
from repvgg_mm.models import build_analysis_model
from repvgg_mm.utils.analysis import complexity
from repvgg_mm.utils.config import config_scope, load_config
from repvgg_mm.utils.errors import UserError
from repvgg_mm.utils.timing import time_interleaved

from .machine import machine_summary
from .workloads import inference_workload

START, END = '<!-- model-zoo:start -->', '<!-- model-zoo:end -->'
#: the page whose table the tool updates, relative to the repository root
PAGE = 'docs/model_zoo.md'
TASKS = {'mmseg': 'segmentation', 'mmdet': 'detection'}
GENERIC_DATASETS = ('BaseSegDataset', 'CocoDataset', 'ImageFolderDataset', 'CustomDataset')
COLUMNS = ('config', 'task', 'head', 'arch', 'dataset', 'schedule', 'test size',
           'params train -> fused', 'FLOPs train -> fused', 'CPU latency train -> fused')


@dataclass
class ConfigInfo:
    """What the table says about a config without building it."""

    config: str
    task: str
    head: str
    arch: str
    dataset: str
    schedule: str
    test_size: Tuple[int, int]

    def cells(self) -> List[str]:
        return [f'`{self.config}`', self.task, self.head, self.arch, self.dataset, self.schedule,
                f'{self.test_size[0]}x{self.test_size[1]}']


@dataclass
class Measurement:
    params: Tuple[float, float]  # training-time, fused
    flops: Tuple[float, float]
    latency: Tuple[float, float]  # median seconds at the fixed size
    latency_size: Tuple[int, int]
    max_rel_diff: float


def shipped_configs(root: str) -> List[str]:
    """Every runnable config under ``root``/configs: no ``_base_`` parts, no ``*_deploy.py``
    twins (the table's fused columns are those)."""
    found = glob.glob(os.path.join(root, 'configs', '**', '*.py'), recursive=True)
    return sorted(os.path.relpath(p, root) for p in found
                  if '_base_' not in p.split(os.sep) and not p.endswith('_deploy.py'))


# How the arch column names each training-time block type (the fused model is RepVGG's).
BLOCK_TYPE_NAMES = {'repvgg': 'RepVGG-{}', 'qarepvgg': 'QARepVGG-{}',
                    'linear': 'RepVGG-{} (linear-scaling)', 'fused_bn': 'RepVGG-{} (fused+BN)'}


def _arch_name(backbone: dict) -> str:
    arch = backbone.get('arch')
    name = arch if isinstance(arch, str) else 'custom'
    return BLOCK_TYPE_NAMES.get(backbone.get('block_type', 'repvgg'), 'RepVGG-{}').format(name)


def _dataset_name(cfg) -> str:
    dataset = cfg.test_dataloader.dataset
    while isinstance(dataset.get('dataset'), dict):  # wrappers
        dataset = dataset['dataset']
    root = str(dataset.get('data_root') or '').rstrip('/')
    if 'toy' in os.path.basename(root):
        return 'toy (embedded)'
    kind = str(dataset.get('type', '?')).split('.')[-1]
    if kind in GENERIC_DATASETS:
        return {'CocoDataset': 'COCO', 'ImageFolderDataset': 'ImageNet'}.get(
            kind, os.path.basename(root) or kind)
    return kind[:-len('Dataset')] if kind.endswith('Dataset') else kind


def _schedule(cfg) -> str:
    loop = cfg.get('train_cfg') or {}
    if 'max_iters' in loop:
        iters = loop['max_iters']
        return f'{iters // 1000}k iters' if iters % 1000 == 0 else f'{iters} iters'
    return f"{loop.get('max_epochs', '?')} epochs"


def _pipeline(cfg) -> list:
    dataset = cfg.test_dataloader.dataset
    return list(dataset.get('pipeline') or dataset.get('transforms') or [])


def input_size_of(cfg) -> Tuple[int, int]:
    """(H, W) the test pipeline feeds the model.

    A ``CenterCrop`` gives its size; a keep-ratio ``Resize`` to (long, short) gives short x long,
    or short x short when long > 2 x short (then long only caps odd shapes, as ADE20K's
    2048 x 512); without either, the config's ``img_scale`` or ``crop_size``.
    """
    for step in _pipeline(cfg):
        if step.get('type') == 'CenterCrop':
            size = step['size'] if 'size' in step else step['crop_size']
            return (size, size) if isinstance(size, int) else tuple(size)
    for step in _pipeline(cfg):
        if step.get('type') == 'Resize' and step.get('scale'):
            long, short = max(step['scale']), min(step['scale'])
            return (short, long) if long <= 2 * short else (short, short)
    if cfg.get('img_scale'):  # (W, H), as mmdet's scales
        return (cfg.img_scale[1], cfg.img_scale[0])
    if cfg.get('crop_size'):  # (H, W), as mmseg's crop sizes
        return tuple(cfg.crop_size)
    raise UserError('cannot tell the test size: no CenterCrop or Resize in the test pipeline and '
                    'no img_scale/crop_size in the config')


def repo_relative(path: str, root: str) -> str:
    """``path`` relative to the repository ``root`` when it lies inside it, else absolute."""
    path, root = os.path.abspath(path), os.path.abspath(root)
    inside = os.path.commonpath([path, root]) == root
    return os.path.relpath(path, root) if inside else path


def _load(config: str, root: str):
    return load_config(config if os.path.isabs(config) else os.path.join(root, config))


def describe(config: str, root: str = '.', cfg=None) -> ConfigInfo:
    """Table columns of ``config`` (a path relative to the repository ``root``) from its text."""
    cfg = cfg or _load(config, root)
    scope = config_scope(cfg)
    model = cfg.model
    if scope == 'mmseg':
        task, head = 'segmentation', model.decode_head.type
    elif scope == 'mmdet':
        has_mask = bool(model.get('roi_head', {}).get('mask_head'))
        task = 'instance segmentation' if has_mask else 'detection'
        head = model.type
    else:
        task, head = 'classification', model.head.type
    return ConfigInfo(config=config, task=task, head=head, arch=_arch_name(model.backbone),
                      dataset=_dataset_name(cfg), schedule=_schedule(cfg),
                      test_size=input_size_of(cfg))


def measure(config: str, root: str, dense_size: Sequence[int], cls_size: Sequence[int],
            repeats: int, seed: int = 0, tolerance: float = 1e-4
            ) -> Tuple[ConfigInfo, Measurement]:
    """Describe, build (random weights, fused twin checked against it), count and time one
    config."""
    cfg = _load(config, root)
    info = describe(config, root, cfg)
    train_model, fused_model = build_analysis_model(cfg, seed=seed, fused_twin=True)
    size = tuple(cls_size if info.task == 'classification' else dense_size)
    sample = torch.randn(1, 3, *size, generator=torch.Generator().manual_seed(seed))
    report = check_equivalence(train_model, fused_model, sample, tolerance=tolerance)
    if not report.ok:
        raise UserError(f'{config}: the fused model is not equivalent: {report.failure()}')
    train, fused = ExportAdapter(train_model, 'tensor'), ExportAdapter(fused_model, 'tensor')
    counts = [complexity(m, (3, *info.test_size)) for m in (train, fused)]
    timings = time_interleaved({'train': inference_workload(train, sample),
                                'fused': inference_workload(fused, sample)}, repeats=repeats)
    return info, Measurement(
        params=(counts[0]['params'], counts[1]['params']),
        flops=(counts[0]['flops'], counts[1]['flops']),
        latency=(timings['train'].median, timings['fused'].median), latency_size=size,
        max_rel_diff=report.outputs.max_rel)


def _count(value: float, digits: int = 1) -> str:
    for scale, suffix in ((1e12, 'T'), (1e9, 'G'), (1e6, 'M'), (1e3, 'K')):
        if value >= scale:
            return f'{value / scale:.{digits}f}{suffix}'
    return f'{value:.0f}'


def _pair(before: float, after: float) -> str:
    """``before -> after`` with as many decimals as it takes to show that they differ."""
    for digits in range(1, 5):
        text = (_count(before, digits), _count(after, digits))
        if text[0] != text[1] or before == after:
            break
    return f'{text[0]} -> {text[1]}'


def table_row(info: ConfigInfo, m: Measurement) -> str:
    (pt, pf), (ft, ff), (lt, lf) = m.params, m.flops, m.latency
    cells = info.cells() + [
        _pair(pt, pf),
        _pair(ft, ff),
        f'{lt * 1000:.0f} -> {lf * 1000:.0f} ms ({lt / lf:.2f}x)']
    return '| ' + ' | '.join(cells) + ' |'


def render_table(rows: List[Tuple[ConfigInfo, Measurement]], dense_size, cls_size,
                 repeats: int) -> str:
    lines = [
        f'Generated by `python tools/analysis_tools/model_zoo.py --page` (random '
        f'weights; FLOPs are multiply-adds at the test size; latency: median of {repeats} '
        f'interleaved runs, batch 1, {dense_size[0]}x{dense_size[1]} for segmentors/detectors and '
        f'{cls_size[0]}x{cls_size[1]} for classifiers; {machine_summary()}).',
        '',
        '| ' + ' | '.join(COLUMNS) + ' |',
        '|' + '---|' * len(COLUMNS)]
    lines += [table_row(info, m) for info, m in rows]
    return '\n'.join(lines)


def splice_table(text: str, table: str, path: str = PAGE) -> str:
    """``text`` with the lines between the model-zoo markers replaced by ``table``."""
    if text.count(START) != 1 or text.count(END) != 1 or text.index(START) > text.index(END):
        raise UserError(f'{path} needs one {START} line and, after it, one {END} line')
    head, rest = text.split(START)
    _, tail = rest.split(END)
    return f'{head}{START}\n{table}\n{END}{tail}'


def read_text(path: str) -> str:
    try:
        with open(path, encoding='utf-8') as f:
            return f.read()
    except UnicodeDecodeError as exc:
        raise UserError(f'{path} is not UTF-8 text ({exc.reason} at byte {exc.start})') from exc
