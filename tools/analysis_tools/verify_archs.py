"""Build every RepVGG arch, fuse it, verify the fused model and print params / FLOPs / error.

    python tools/analysis_tools/verify_archs.py [--archs A0 B1g2] [--input-size 224]
        [--tolerance 1e-5]

Exits non-zero if any fused model deviates from its training-time twin by more than the tolerance.
"""
import sys

import torch
from mmengine.logging import MMLogger

from repvgg_mm.conversion import check_equivalence
from repvgg_mm.models import ARCH_NAMES, PAPER_TABLE, LinearClassifierNet, RepVGG
from repvgg_mm.models.utils import fuse_repvgg_blocks, randomize_bn_
from repvgg_mm.utils.analysis import complexity
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


def verify_arch(arch, args):
    generator = torch.Generator().manual_seed(args.seed)
    torch.manual_seed(args.seed)
    train_net = LinearClassifierNet(RepVGG(arch)).eval()
    randomize_bn_(train_net, generator)
    fused_net = fuse_repvgg_blocks(train_net)
    sample = torch.randn(2, 3, *args.check_shape, generator=generator)
    report = check_equivalence(train_net, fused_net, sample, tolerance=args.tolerance)
    stats = complexity(fused_net, (3, args.input_size, args.input_size))
    return dict(arch=arch, params=stats['params'] / 1e6, flops=stats['flops'] / 1e9,
                error=report.outputs.max_rel, block_error=report.worst_block().diff.max_rel,
                ok=report.ok, train_params=sum(p.numel() for p in train_net.parameters()) / 1e6)


def main(argv=None):
    args = parse_args(argv)
    logger = MMLogger.get_instance('repvgg_mm', log_level='INFO')
    rows = []
    for arch in args.archs:
        logger.info(f'building, fusing and verifying RepVGG-{arch}')
        rows.append(verify_arch(arch, args))
    header = (f'{"arch":<6} {"train params(M)":>15} {"deploy params(M)":>16} {"paper":>7} '
              f'{"FLOPs(G)":>9} {"paper":>6} {"output err":>11} {"worst block":>12}  ok')
    print(header)
    print('-' * len(header))
    failures = []
    for row in rows:
        paper = PAPER_TABLE.get(f"RepVGG-{row['arch']}")
        paper_params, paper_flops = ((f"{paper['params']:.2f}", f"{paper['flops']:.2f}") if paper
                                     else ('-', '-'))
        ok = row['ok']
        failures += [] if ok else [row['arch']]
        print(f'{row["arch"]:<6} {row["train_params"]:>15.2f} {row["params"]:>16.2f} '
              f'{paper_params:>7} {row["flops"]:>9.2f} {paper_flops:>6} {row["error"]:>11.2e} '
              f'{row["block_error"]:>12.2e}  '
              f'{"yes" if ok else "NO"}')
    print(f'params/FLOPs: deployed model with a 1000-class linear head at {args.input_size}x'
          f'{args.input_size} (mmengine.analysis; FLOPs = multiply-adds). Errors: max relative '
          f'difference, fused vs training-time, eval mode, random BN stats, input '
          f'{args.check_shape[0]}x{args.check_shape[1]}: network output, and the worst single '
          f'block on the input its training-time twin saw.')
    if failures:
        raise UserError(f'fused model deviates beyond {args.tolerance:g} for {", ".join(failures)}')
    return 0


if __name__ == '__main__':
    sys.exit(run_tool(main))
