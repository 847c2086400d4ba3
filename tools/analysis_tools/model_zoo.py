"""Model zoo table of every shipped config: params and FLOPs training-time vs fused, CPU latency.

    python tools/analysis_tools/model_zoo.py                      # print the table
    python tools/analysis_tools/model_zoo.py --page               # and write docs/model_zoo.md
    python tools/analysis_tools/model_zoo.py --configs configs/toy/*.py --repeats 3

For each config (configs/**/*.py without _base_/ and *_deploy.py): task, head, arch, dataset and
schedule read from the config; parameters and FLOPs of the training-time model and of its fused
twin at the config's test size; the median CPU latency of both at one fixed size (--dense-size for
segmentors/detectors, --cls-size for classifiers), timed interleaved in one process (see
:mod:`repvgg_mm.benchmark.model_zoo`). With --page, the table replaces the lines between the
markers ``<!-- model-zoo:start -->`` and ``<!-- model-zoo:end -->`` of docs/model_zoo.md (or the
page given; written atomically); a page without them is refused.
"""
import sys
from dataclasses import asdict
from pathlib import Path

from mmengine.logging import MMLogger

from repvgg_mm.benchmark.model_zoo import (
    PAGE,
    describe,
    measure,
    read_text,
    render_table,
    repo_relative,
    shipped_configs,
    splice_table,
    table_row,
)
from repvgg_mm.utils.argtypes import non_negative_int, output_path, positive_int
from repvgg_mm.utils.cli import run_tool, tool_parser
from repvgg_mm.utils.fileio import check_output_target, write_json_atomic, write_text_atomic

ROOT = str(Path(__file__).resolve().parents[2])


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
    parser.add_argument('--page', '--readme', nargs='?', const=str(Path(ROOT) / PAGE),
                        default=None, metavar='MARKDOWN',
                        help=f'write the table into this page (default {PAGE}), between its '
                             'model-zoo markers (updated in place, atomically)')
    parser.add_argument('--json', type=output_path, default=None,
                        help='also write the measurements as JSON')
    parser.add_argument('--seed', type=non_negative_int, default=0)
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    if args.page:
        splice_table(read_text(args.page), '', args.page)  # refuse it before measuring
    if args.json:
        check_output_target(args.json)
    configs = [repo_relative(c, ROOT) for c in args.configs or []] or shipped_configs(ROOT)
    for config in configs:  # every config loads before the first is measured
        describe(config, ROOT)
    logger = MMLogger.get_instance('repvgg_mm_model_zoo', log_level='INFO')
    rows = []
    for index, config in enumerate(configs, 1):
        info, m = measure(config, ROOT, args.dense_size, args.cls_size, args.repeats, args.seed)
        logger.info(f'[{index}/{len(configs)}] {table_row(info, m)}')
        rows.append((info, m))
    table = render_table(rows, args.dense_size, args.cls_size, args.repeats)
    print(table)
    if args.json:
        write_json_atomic([dict(asdict(info), **asdict(m)) for info, m in rows], args.json)
    if args.page:  # read again: edits made while the table was measured are kept
        write_text_atomic(args.page, splice_table(read_text(args.page), table, args.page))
        logger.info(f'wrote the table ({len(rows)} configs) into {args.page}')
    return 0


if __name__ == '__main__':
    sys.exit(run_tool(main))
