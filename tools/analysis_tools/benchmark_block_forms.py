"""Fine-tuning with trainable BN: the RepVGG block, the linear-scaling block and fused+BN, measured.

    python tools/analysis_tools/benchmark_block_forms.py            # A0, B1g2, toy PSPNet/UPerNet
    python tools/analysis_tools/benchmark_block_forms.py --quick    # tiny sizes (smoke test)
    python tools/analysis_tools/benchmark_block_forms.py --archs A0 --no-segmentors

Backbone train steps (BN training, 2x3x512x512) and whole segmentor train steps of the three forms,
side by side in one process: medians of interleaved rounds, ratios, bytes saved for backward, the
CPU named (see :mod:`repvgg_mm.benchmark.block_forms`). Writes ``<work-dir>/block_forms.json`` and
prints a markdown table. Run it alone on the machine (one heavy job at a time); OpenMP threads
sleep at barriers (OMP_WAIT_POLICY=PASSIVE unless set).
"""
import os

os.environ.setdefault('OMP_WAIT_POLICY', 'PASSIVE')  # before torch starts its OpenMP runtime

import sys
import time
from pathlib import Path

from mmengine.logging import MMLogger

from repvgg_mm.benchmark.block_forms import (
    BlockFormsSettings,
    footer,
    markdown_table,
    run_block_forms,
)
from repvgg_mm.models import ARCH_NAMES
from repvgg_mm.utils.argtypes import non_negative_int, positive_int
from repvgg_mm.utils.cli import run_tool, tool_parser
from repvgg_mm.utils.fileio import check_output_target, write_json_atomic

REPO = Path(__file__).resolve().parents[2]
SEG_CONFIGS = {'toy PSPNet': 'configs/toy/pspnet_repvgg_a0_toy.py',
               'toy UPerNet': 'configs/toy/upernet_repvgg_a0_toy.py'}


def parse_args(argv=None):
    parser = tool_parser(__doc__.splitlines()[0])
    parser.add_argument('--quick', action='store_true',
                        help='tiny arch (also in the segmentors), 64x64, one round (for tests)')
    parser.add_argument('--archs', nargs='*', choices=ARCH_NAMES, default=None,
                        help='backbones (default A0 B1g2; none: segmentors only)')
    parser.add_argument('--no-segmentors', action='store_true',
                        help='skip the toy PSPNet / UPerNet whole train steps')
    parser.add_argument('--input-size', type=positive_int, default=None,
                        help='backbone input (512)')
    parser.add_argument('--batch', type=positive_int, default=None, help='backbone batch (2)')
    parser.add_argument('--seg-size', type=positive_int, default=None, help='segmentor input (512)')
    parser.add_argument('--seg-batch', type=positive_int, default=None, help='segmentor batch (2)')
    parser.add_argument('--repeats', type=positive_int, default=None, help='interleaved rounds (5)')
    parser.add_argument('--warmup', type=non_negative_int, default=None, help='warm-up rounds (1)')
    parser.add_argument('--threads', type=positive_int, default=2, help='torch threads (2)')
    parser.add_argument('--seed', type=non_negative_int, default=0)
    parser.add_argument('--work-dir', default='work_dirs/block_forms',
                        help='gets block_forms.json')
    return parser.parse_args(argv)


def settings(args) -> BlockFormsSettings:
    seg = {} if args.no_segmentors else {k: str(REPO / v) for k, v in SEG_CONFIGS.items()}
    s = BlockFormsSettings.quick(seg) if args.quick else BlockFormsSettings(seg_configs=seg)
    for name, value in (('archs', args.archs), ('size', args.input_size), ('batch', args.batch),
                        ('seg_size', args.seg_size), ('seg_batch', args.seg_batch),
                        ('repeats', args.repeats), ('warmup', args.warmup),
                        ('threads', args.threads), ('seed', args.seed)):
        if value is not None:
            setattr(s, name, tuple(value) if name == 'archs' else value)
    s.check()
    return s


def main(argv=None):
    args = parse_args(argv)
    s = settings(args)
    path = os.path.join(args.work_dir, 'block_forms.json')
    check_output_target(path)  # before the measurement
    logger = MMLogger.get_instance('repvgg_mm_block_forms', log_level='INFO')
    started = time.perf_counter()
    report = run_block_forms(s, logger, quick=args.quick)
    report['seconds'] = time.perf_counter() - started
    write_json_atomic(report, path)
    print(markdown_table(report))
    print(f'\n{footer(report)}')
    print(f'wrote {path} ({report["seconds"]:.0f} s)')
    return 0


if __name__ == '__main__':
    sys.exit(run_tool(main))
