"""Online fusion measured: training-time RepVGG with frozen BN, online_fusion 'auto' vs 'off'.

    python tools/analysis_tools/benchmark_online_fusion.py              # the full measurement
    python tools/analysis_tools/benchmark_online_fusion.py --quick      # tiny sizes (smoke test)
    python tools/analysis_tools/benchmark_online_fusion.py --sections backbone detectors

Sections (see :mod:`repvgg_mm.benchmark.online_fusion`): ``backbone`` (RepVGG train step with
frozen BN: time, bytes saved for backward, equivalence of outputs and gradients), ``detectors``
(RetinaNet-A0 and Faster R-CNN-A0 train steps; peak RSS of each mode in a process of its own;
``--quick``: RetinaNet only), ``segmentation`` (PSPNet-A0 with trained BN: no block fused online,
the same step time) and ``finetune`` (the toy RetinaNet fine-tuned twice: the last losses agree).
``--quick`` uses repvgg_mm.testing.TINY_ARCH everywhere (necks and heads fitted to it), 64x64
inputs, one round and 2 fine-tune iterations.

Outputs: ``<work-dir>/online_fusion.json`` with every number, and a markdown table on stdout.
OpenMP threads sleep at barriers (OMP_WAIT_POLICY=PASSIVE unless set), as in benchmark.py.
"""
import os

os.environ.setdefault('OMP_WAIT_POLICY', 'PASSIVE')  # before torch starts its OpenMP runtime

import sys
from pathlib import Path

from mmengine.logging import MMLogger

from repvgg_mm.benchmark.online_fusion import (
    SECTIONS,
    make_settings,
    markdown_table,
    run_online_fusion,
    summary_lines,
    table_rows,
)
from repvgg_mm.benchmark.online_fusion.settings import DETECTORS
from repvgg_mm.models import ARCH_NAMES
from repvgg_mm.utils.argtypes import non_negative_int, positive_int
from repvgg_mm.utils.cli import run_tool, tool_parser
from repvgg_mm.utils.fileio import write_json_atomic

REPO = Path(__file__).resolve().parents[2]


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
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    s = make_settings(str(REPO), args.quick, args.threads, args.seed, args.rss_jobs,
                      size=args.input_size, batch=args.batch, iters=args.iters,
                      warmup=args.warmup, rss_steps=args.rss_steps, repeats=args.repeats,
                      archs=args.archs, rss_detectors=args.rss_detectors)
    logger = MMLogger.get_instance('repvgg_mm_online_fusion', log_level='INFO')
    report = run_online_fusion(s, args.sections, args.data_root, logger)
    path = os.path.join(args.work_dir, 'online_fusion.json')
    os.makedirs(args.work_dir, exist_ok=True)
    write_json_atomic(report, path)
    print(markdown_table(table_rows(report)))
    print('\n'.join(summary_lines(report)))
    print(f'wrote {path} ({report["seconds"]:.0f} s)')
    return 0


if __name__ == '__main__':
    sys.exit(run_tool(main))
