"""The deployment table: toy configs trained, then fused PyTorch, ONNX Runtime FP32, full and
partial INT8 scored by their own evaluators and timed side by side (repvgg_mm.benchmark.deployment).

    python tools/analysis_tools/benchmark_deployment.py            # trains what is missing first
    python tools/analysis_tools/benchmark_deployment.py --cases PSPNet-A0 RetinaNet-A0 \
        --checkpoint PSPNet-A0=work_dirs/pspnet/iter_500.pth --doc docs/deployment.md

Writes <work-dir>/deployment.json and prints the table (and, with --doc, puts it between the
deployment-table markers of that markdown file). Latency rows: batch 1 at --latency-size,
--threads threads, interleaved medians of --repeats rounds; the speed row is a fused PSPNet-A0 with
random weights at 512x512 (INT8 vs PyTorch FP32 eager).
"""
import os
import sys

from mmengine.logging import MMLogger

from repvgg_mm.benchmark.deployment import (
    TOY_CASES,
    check_cases,
    markdown_table,
    measure_case,
    speed_row,
    speed_table,
    trained_checkpoint,
)
from repvgg_mm.benchmark.machine import cpu_name, has_vnni
from repvgg_mm.checkpoint import check_checkpoint_file
from repvgg_mm.utils.argtypes import input_path, non_negative_float, output_path, positive_int
from repvgg_mm.utils.cli import run_tool, tool_parser
from repvgg_mm.utils.errors import UserError
from repvgg_mm.utils.fileio import check_output_target, write_json_atomic, write_text_atomic

START, END = '<!-- deployment-table:start -->', '<!-- deployment-table:end -->'


def parse_args(argv=None):
    parser = tool_parser(__doc__.splitlines()[0])
    parser.add_argument('--cases', nargs='+', choices=[c.name for c in TOY_CASES],
                        default=[c.name for c in TOY_CASES], help='rows to measure')
    parser.add_argument('--checkpoint', nargs='+', default=[], metavar='NAME=PATH',
                        help='a trained checkpoint for a case (else trained into --work-dir)')
    parser.add_argument('--max-drop', type=non_negative_float, default=1.0,
                        help='partial INT8: the largest metric drop (mIoU/top-1 points; mAP '
                             'fraction for detectors is scaled by 1/100)')
    parser.add_argument('--calib', type=positive_int, default=32, help='calibration images')
    parser.add_argument('--latency-size', type=positive_int, nargs=2, default=(512, 512),
                        metavar=('H', 'W'))
    parser.add_argument('--threads', type=positive_int, default=2)
    parser.add_argument('--repeats', type=positive_int, default=7)
    parser.add_argument('--no-speed-row', action='store_true', help='skip the PSPNet-A0 row')
    parser.add_argument('--work-dir', type=output_path, default='work_dirs/deployment')
    parser.add_argument('--doc', type=output_path, default=None,
                        help='markdown file whose deployment-table markers get the table')
    return parser.parse_args(argv)


def checkpoints(args) -> dict:
    given = {}
    for item in args.checkpoint:
        name, sep, path = item.partition('=')
        if not sep or name not in args.cases:
            raise UserError(f'--checkpoint takes NAME=PATH with NAME one of --cases, got {item!r}')
        check_checkpoint_file(path)  # before any row is measured
        given[name] = input_path(path)
    return given


def splice(path: str, table: str) -> None:
    with open(path, encoding='utf-8') as handle:
        text = handle.read()
    if text.count(START) != 1 or text.count(END) != 1 or text.index(START) > text.index(END):
        raise UserError(f'{path} needs one {START} line and, after it, one {END} line')
    head, rest = text.split(START)
    write_text_atomic(path, f'{head}{START}\n{table}\n{END}{rest.split(END)[1]}')


def main(argv=None):
    args = parse_args(argv)
    cases = [c for c in TOY_CASES if c.name in args.cases]
    given = checkpoints(args)
    check_cases(cases)
    out = os.path.join(args.work_dir, 'deployment.json')
    check_output_target(out)
    if args.doc:
        splice(args.doc, '')  # refuse a file without markers before measuring (nothing written)
    logger = MMLogger.get_instance('repvgg_mm_deployment', log_level='INFO')
    rows = []
    for index, case in enumerate(cases, 1):
        work_dir = os.path.join(args.work_dir, case.name.replace(' ', '_'))
        checkpoint = given.get(case.name) or trained_checkpoint(case, work_dir, logger)
        # detectors report mAP as a fraction: the drop bound follows the metric's unit
        scale = 0.01 if 'rcnn' in case.config or 'retinanet' in case.config else 1.0
        logger.info(f'[{index}/{len(cases)}] {case.name}')
        rows.append(measure_case(case, checkpoint, work_dir, max_drop=args.max_drop * scale,
                                 calib=args.calib, latency_size=args.latency_size,
                                 threads=args.threads, repeats=args.repeats, logger=logger))
    speed = None if args.no_speed_row else speed_row(
        threads=args.threads, repeats=args.repeats, work_dir=os.path.join(args.work_dir, 'speed'),
        logger=logger)
    machine = (f'{cpu_name()}, {"with" if has_vnni() else "without"} VNNI, {args.threads} '
               'threads, OMP_WAIT_POLICY=' + os.environ.get('OMP_WAIT_POLICY', 'unset'))
    table = markdown_table(rows) + (f'\n\n{speed_table(speed)}' if speed else '') + (
        f'\n\nGenerated by `python tools/analysis_tools/benchmark_deployment.py` on {machine}; '
        f'partial INT8: --max-drop {args.max_drop:g} (mIoU/top-1 points, 0.01 x that in '
        f'mAP), calibration: {args.calib} training images (test pipeline).')
    write_json_atomic(dict(rows=rows, speed=speed, machine=machine, max_drop=args.max_drop,
                           calib=args.calib), out)
    if args.doc:
        splice(args.doc, table)
    print(table)
    print(f'wrote {out}' + (f' and the table in {args.doc}' if args.doc else ''))
    return 0


if __name__ == '__main__':
    sys.exit(run_tool(main))
