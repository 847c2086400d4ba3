"""Build every RepVGG arch, fuse it, verify the fused model and print params / FLOPs / error.

    python tools/analysis_tools/verify_archs.py [--archs A0 B1g2] [--input-size 224]
        [--tolerance 1e-5]

Exits non-zero if any fused model deviates from its training-time twin by more than the tolerance.
"""
import sys

from mmengine.logging import MMLogger

from repvgg_mm.benchmark.verify_archs import table_lines, verify_arch
from repvgg_mm.models import ARCH_NAMES
from repvgg_mm.utils.argtypes import non_negative_float, non_negative_int, positive_int
from repvgg_mm.utils.cli import run_tool, tool_parser
from repvgg_mm.utils.errors import UserError


def parse_args(argv=None):
    parser = tool_parser(__doc__.splitlines()[0])
    parser.add_argument('--archs', nargs='+', default=list(ARCH_NAMES), choices=ARCH_NAMES)
    parser.add_argument('--input-size', type=positive_int, default=224,
                        help='square size for params/FLOPs')
    parser.add_argument('--check-shape', type=positive_int, nargs=2,
                        default=(96, 128), metavar=('H', 'W'),
                        help='non-square input of the equivalence check')
    parser.add_argument('--tolerance', type=non_negative_float, default=1e-5,
                        help='max relative error allowed')
    parser.add_argument('--seed', type=non_negative_int, default=0)
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    logger = MMLogger.get_instance('repvgg_mm', log_level='INFO')
    rows = []
    for arch in args.archs:
        logger.info(f'building, fusing and verifying RepVGG-{arch}')
        rows.append(verify_arch(arch, args.input_size, args.check_shape, args.tolerance,
                                args.seed))
    print('\n'.join(table_lines(rows, args.input_size, args.check_shape)))
    failures = [row['arch'] for row in rows if not row['ok']]
    if failures:
        raise UserError(f'fused model deviates beyond {args.tolerance:g} for {", ".join(failures)}')
    return 0


if __name__ == '__main__':
    sys.exit(run_tool(main))
