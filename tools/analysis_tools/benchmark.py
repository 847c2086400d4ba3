"""Deployment speed of RepVGG on this CPU, measured side by side; CSV + speed-accuracy PNG.

    python tools/analysis_tools/benchmark.py                  # classification: RepVGG vs ResNets
    python tools/analysis_tools/benchmark.py --onnxruntime    # + fused on ONNX Runtime FP32/INT8
    python tools/analysis_tools/benchmark.py --mode targets   # our A0 vs timm's + GEMM,
                                                              # with the targets
    python tools/analysis_tools/benchmark.py --mode variants  # CPU variants x threads
                                                              # of the fused A0
    python tools/analysis_tools/benchmark.py --mode seg       # PSPNet-RepVGG vs PSPNet-R50-d8
    python tools/analysis_tools/benchmark.py --quick          # tiny sizes (smoke test)

Outputs go to --work-dir (default work_dirs/benchmark/): <mode>.csv and, for cls, <mode>.png.

OpenMP threads sleep at barriers here (OMP_WAIT_POLICY=PASSIVE unless set in the environment): on a
shared, oversubscribed CPU spinning threads made 2-thread runs up to 8x slower; on an idle machine
the policy makes no measurable difference.
"""
import os

os.environ.setdefault('OMP_WAIT_POLICY', 'PASSIVE')  # before torch starts its OpenMP runtime

import sys

import torch
from mmengine.logging import MMLogger

from repvgg_mm.benchmark import speed as bench
from repvgg_mm.benchmark import speed_report as bench_report
from repvgg_mm.benchmark.machine import machine_summary
from repvgg_mm.deploy.cpu_optimize import CPU_VARIANTS, DEFAULT_CPU_VARIANT
from repvgg_mm.models import ARCH_NAMES
from repvgg_mm.utils.argtypes import non_negative_int, positive_int
from repvgg_mm.utils.cli import run_tool, tool_parser
from repvgg_mm.utils.errors import UserError
from repvgg_mm.utils.fileio import write_json_atomic

QUICK = dict(input_size=64, batch=2, repeats=2, warmup=1, gemm_size=256)


def parse_args(argv=None):
    parser = tool_parser(__doc__.splitlines()[0])
    parser.add_argument('--mode', choices=('cls', 'seg', 'variants', 'targets'), default='cls')
    parser.add_argument('--archs', nargs='+', choices=ARCH_NAMES, default=None,
                        help='RepVGG archs (cls default: the paper table; others: A0)')
    parser.add_argument('--resnets', nargs='*', type=positive_int,
                        default=list(bench.RESNET_DEPTHS),
                        help='torchvision ResNet depths (cls mode)')
    parser.add_argument('--input-size', type=positive_int, nargs='+', default=None,
                        help='square size, or H W for seg (default 224; seg 512 512)')
    parser.add_argument('--batch', type=positive_int, default=None, help='default 8 (seg: 1)')
    parser.add_argument('--threads', type=positive_int, default=None,
                        help='torch threads (default: torch default; targets: 2)')
    parser.add_argument('--repeats', type=positive_int, default=None,
                        help='interleaved timing rounds')
    parser.add_argument('--warmup', type=non_negative_int, default=None)
    parser.add_argument('--optimize', choices=tuple(CPU_VARIANTS), default=None,
                        help=f'also time the fused model (and references) with this CPU variant; '
                             f'targets mode default: {DEFAULT_CPU_VARIANT}')
    parser.add_argument('--variants', nargs='+', choices=tuple(CPU_VARIANTS),
                        default=list(CPU_VARIANTS), help='variants mode: which to compare')
    parser.add_argument('--thread-counts', nargs='+', type=positive_int, default=None,
                        help='variants mode: thread counts, one block each (default: --threads or '
                             "torch's); compare counts in separate runs on a busy machine")
    parser.add_argument('--onnxruntime', action='store_true',
                        help='cls mode: also the fused RepVGG on ONNX Runtime, FP32 and static '
                             'INT8')
    parser.add_argument('--no-r50', action='store_true', help='seg mode: skip PSPNet-R50-d8')
    parser.add_argument('--gemm-size', type=positive_int, default=bench.GEMM_SIZE)
    parser.add_argument('--quick', action='store_true',
                        help='tiny inputs, A0 + ResNet-18 only, 2 rounds (for tests)')
    parser.add_argument('--work-dir', default='work_dirs/benchmark')
    parser.add_argument('--name', default=None, help='output file stem (default: the mode)')
    args = parser.parse_args(argv)
    # seg: one size or H W; the other modes take one square size
    parser.check_size(args.input_size, '--input-size', (1, 2) if args.mode == 'seg' else (1, ))
    return args


def _settings(args):
    quick = QUICK if args.quick else {}
    archs = args.archs or (['A0'] if args.quick or args.mode != 'cls' else list(bench.PAPER_ARCHS))
    size = args.input_size or ([quick['input_size']] if quick else
                               ([512, 512] if args.mode == 'seg' else [224]))
    default_batch = quick.get('batch', 1 if args.mode == 'seg' else 8)
    default_repeats = quick.get('repeats', 3 if args.mode == 'seg' else
                                (7 if args.mode in ('variants', 'targets') else 5))
    return dict(archs=archs, size=size, batch=args.batch or default_batch,
                repeats=args.repeats or default_repeats,
                warmup=args.warmup if args.warmup is not None else quick.get('warmup', 2),
                gemm_size=quick.get('gemm_size', args.gemm_size),
                resnets=[18] if args.quick and args.resnets == list(bench.RESNET_DEPTHS)
                else args.resnets)


def run(args, logger):
    s = _settings(args)
    common = dict(repeats=s['repeats'], warmup=s['warmup'], gemm_size=s['gemm_size'],
                  logger=logger)
    if args.mode == 'cls':
        return bench.classification_benchmark(
            s['archs'], s['resnets'], s['size'][0], s['batch'], args.threads,
            optimize=args.optimize, onnxruntime=args.onnxruntime, **common)
    if args.mode == 'seg':
        size = s['size'] if len(s['size']) == 2 else s['size'] * 2
        return bench.segmentation_benchmark(
            s['archs'], size, s['batch'], args.threads, optimize=args.optimize,
            with_r50=not args.no_r50, head_channels=32 if args.quick else None, **common)
    if args.mode == 'variants':
        variants = [v for v in args.variants if not (args.quick and v == 'compile')]
        counts = args.thread_counts or [args.threads or torch.get_num_threads()]
        return bench.variants_benchmark(s['archs'][0], s['size'][0], s['batch'], variants,
                                        counts, **common)
    return bench.targets_benchmark(s['archs'][0], s['size'][0], s['batch'],
                                   args.threads or 2, optimize=args.optimize or DEFAULT_CPU_VARIANT,
                                   **common)


def main(argv=None):
    args = parse_args(argv)
    logger = MMLogger.get_instance('repvgg_mm_benchmark', log_level='INFO')
    if args.onnxruntime and args.mode != 'cls':
        raise UserError('--onnxruntime applies to --mode cls')
    result = run(args, logger)
    stem = os.path.join(args.work_dir, args.name or args.mode)
    print(bench_report.format_table(result.rows))
    print(f'large-GEMM roofline: {result.gemm_gflops:.1f} GFLOP/s; {machine_summary()}; '
          f'OMP_WAIT_POLICY={os.environ.get("OMP_WAIT_POLICY")}')
    bench_report.write_csv(result.rows, stem + '.csv')
    outputs = [stem + '.csv']
    if args.mode == 'cls':
        row = result.rows[0]
        bench_report.plot_speed_accuracy(result.rows, stem + '.png', title=(
            f'CPU, {row.threads} threads, batch {row.batch}, {row.input_size} '
            '(speed measured here, top-1 from the paper)'))
        outputs.append(stem + '.png')
    if result.checks:
        print('\n'.join(bench_report.target_lines(result.checks)))
        write_json_atomic(result.checks, stem + '_targets.json')
        outputs.append(stem + '_targets.json')
    print('wrote ' + ', '.join(outputs))
    return 0


if __name__ == '__main__':
    torch.manual_seed(0)
    sys.exit(run_tool(main))
