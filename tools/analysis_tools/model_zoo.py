"""Model zoo table of every shipped config: params and FLOPs training-time vs fused, CPU latency.

    python tools/analysis_tools/model_zoo.py                         # print the table
    python tools/analysis_tools/model_zoo.py --readme README.md      # and write it into README
    python tools/analysis_tools/model_zoo.py --configs configs/toy/*.py --repeats 3

For each config (configs/**/*.py without _base_/ and *_deploy.py): task, head, arch, dataset and
schedule read from the config; parameters and FLOPs (multiply-adds, mmengine's FlopAnalyzer) of the
training-time model and of its fused twin at the config's test size; and the median CPU latency of
both at one fixed size (--dense-size for segmentors/detectors, --cls-size for classifiers), timed
interleaved in one process. Weights are random (BN statistics randomised): the fused model is
checked against the training-time one before anything is counted. Models run their ``tensor``
forward (logits or raw head outputs, as mmseg's/mmdet's get_flops count them).
With --readme, the table replaces the lines between the markers ``<!-- model-zoo:start -->`` and
``<!-- model-zoo:end -->`` (written atomically); a README without them is refused.
"""
import glob
import os
import sys
from dataclasses import asdict, dataclass
from typing import List, Optional, Sequence, Tuple

import torch
from mmengine.logging import MMLogger
from torch import nn

from repvgg_mm.conversion import check_equivalence
from repvgg_mm.models.utils import detection_samples, fuse_repvgg_blocks, randomize_bn_
from repvgg_mm.utils.analysis import complexity
from repvgg_mm.utils.argtypes import non_negative_int, output_path, positive_int
from repvgg_mm.utils.cli import run_tool, tool_parser
from repvgg_mm.utils.config import build_model, config_scope, load_config, replace_sync_bn
from repvgg_mm.utils.errors import UserError
from repvgg_mm.utils.fileio import check_output_target, write_json_atomic, write_text_atomic
from repvgg_mm.utils.timing import time_interleaved
from speed import inference_workload, machine_summary

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
START, END = '<!-- model-zoo:start -->', '<!-- model-zoo:end -->'
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


def shipped_configs(root: str = ROOT) -> List[str]:
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


def _repo_relative(path: str) -> str:
    """``path`` relative to the repository root when it lies inside it, else absolute."""
    path = os.path.abspath(path)
    inside = os.path.commonpath([path, ROOT]) == ROOT
    return os.path.relpath(path, ROOT) if inside else path


def _load(config: str):
    return load_config(config if os.path.isabs(config) else os.path.join(ROOT, config))


def describe(config: str, cfg=None) -> ConfigInfo:
    """Table columns of ``config`` (a path relative to the repository root) from its text."""
    cfg = cfg or _load(config)
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


class TensorForward(nn.Module):
    """``model(x, samples, mode='tensor')`` for one image tensor ``x``: the logits of classifiers
    and segmentors, the raw head outputs of detectors (data samples made for two-stage ones)."""

    def __init__(self, model: nn.Module, scope: Optional[str]):
        super().__init__()
        self.model = model
        self.scope = scope
        self.train(model.training)  # mirror the wrapped model's mode

    def forward(self, x):
        samples = detection_samples(x) if self.scope == 'mmdet' else None
        return self.model(x, samples, mode='tensor')


def _fused_pair(cfg, seed: int) -> Tuple[nn.Module, nn.Module]:
    """The model with random weights (built only: no pretrained file is read) and its fused twin."""
    cfg.model, _ = replace_sync_bn(cfg.model)
    torch.manual_seed(seed)
    model = build_model(cfg).eval()
    randomize_bn_(model, torch.Generator().manual_seed(seed))
    return model, fuse_repvgg_blocks(model).eval()


def measure(config: str, dense_size: Sequence[int], cls_size: Sequence[int], repeats: int,
            seed: int = 0, tolerance: float = 1e-4) -> Tuple[ConfigInfo, Measurement]:
    cfg = _load(config)
    info = describe(config, cfg)
    scope = config_scope(cfg)
    train_model, fused_model = _fused_pair(cfg, seed)
    size = tuple(cls_size if info.task == 'classification' else dense_size)
    sample = torch.randn(1, 3, *size, generator=torch.Generator().manual_seed(seed))
    report = check_equivalence(train_model, fused_model, sample, tolerance=tolerance)
    if not report.ok:
        raise UserError(f'{config}: the fused model is not equivalent: {report.failure()}')
    train, fused = TensorForward(train_model, scope), TensorForward(fused_model, scope)
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
        f'Generated by `python tools/analysis_tools/model_zoo.py --readme README.md` (random '
        f'weights; FLOPs are multiply-adds at the test size; latency: median of {repeats} '
        f'interleaved runs, batch 1, {dense_size[0]}x{dense_size[1]} for segmentors/detectors and '
        f'{cls_size[0]}x{cls_size[1]} for classifiers; {machine_summary()}).',
        '',
        '| ' + ' | '.join(COLUMNS) + ' |',
        '|' + '---|' * len(COLUMNS)]
    lines += [table_row(info, m) for info, m in rows]
    return '\n'.join(lines)


def splice_readme(text: str, table: str, path: str = 'README') -> str:
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


def parse_args(argv=None):
    parser = tool_parser(__doc__.splitlines()[0])
    parser.add_argument('--configs', nargs='+', default=None,
                        help='configs to measure (default: every shipped config)')
    parser.add_argument('--dense-size', type=positive_int, nargs=2, default=(512, 512),
                        metavar=('H', 'W'))
    parser.add_argument('--cls-size', type=positive_int, nargs=2, default=(224, 224),
                        metavar=('H', 'W'))
    parser.add_argument('--repeats', type=positive_int, default=5,
                        help='timed runs per model (median)')
    parser.add_argument('--readme', default=None,
                        help='write the table into this README (updated in place, atomically)')
    parser.add_argument('--json', type=output_path, default=None,
                        help='also write the measurements as JSON')
    parser.add_argument('--seed', type=non_negative_int, default=0)
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    if args.readme:
        splice_readme(read_text(args.readme), '', args.readme)  # refuse it before measuring
    if args.json:
        check_output_target(args.json)
    configs = [_repo_relative(c) for c in args.configs or []] or shipped_configs()
    for config in configs:  # every config loads before the first is measured
        describe(config)
    logger = MMLogger.get_instance('repvgg_mm_model_zoo', log_level='INFO')
    rows = []
    for index, config in enumerate(configs, 1):
        info, m = measure(config, args.dense_size, args.cls_size, args.repeats, args.seed)
        logger.info(f'[{index}/{len(configs)}] {table_row(info, m)}')
        rows.append((info, m))
    table = render_table(rows, args.dense_size, args.cls_size, args.repeats)
    print(table)
    if args.json:
        write_json_atomic([dict(asdict(info), **asdict(m)) for info, m in rows], args.json)
    if args.readme:  # read again: edits made while the table was measured are kept
        write_text_atomic(args.readme, splice_readme(read_text(args.readme), table, args.readme))
        logger.info(f'wrote the table ({len(rows)} configs) into {args.readme}')
    return 0


if __name__ == '__main__':
    sys.exit(run_tool(main))
