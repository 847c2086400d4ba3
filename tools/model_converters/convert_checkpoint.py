"""Convert a RepVGG checkpoint (original, timm, mmpretrain or ours) into the repvgg_mm layout.

    python tools/model_converters/convert_checkpoint.py SRC DST
        [--layout auto|original|timm|mmpretrain|repvgg_mm]
        [--target auto|backbone|classifier] [--arch A0] [--force]

SRC may hold training-time or fused (deploy) keys, 'module.' prefixes, weights nested under
'state_dict'/'model', or be a .safetensors file. DST gets {'state_dict': ..., 'meta': ...} written
atomically. Exits non-zero with a one-line error on any problem; never overwrites SRC.
"""
import sys

from repvgg_mm.checkpoint import LAYOUTS
from repvgg_mm.conversion.checkpoint_file import convert_checkpoint_file
from repvgg_mm.utils.argtypes import input_path
from repvgg_mm.utils.cli import run_tool, tool_parser


def parse_args(argv=None):
    parser = tool_parser(__doc__.splitlines()[0])
    parser.add_argument('src', type=input_path, help='checkpoint to read')
    parser.add_argument('dst', help='file to write (our layout)')
    parser.add_argument('--layout', default='auto', choices=('auto', ) + tuple(LAYOUTS),
                        help='layout of SRC (default: detected from its keys)')
    parser.add_argument('--target', default='auto', choices=('auto', 'backbone', 'classifier'),
                        help='backbone keys only, or backbone.* + head.fc.* (default: classifier '
                             'when SRC has a classifier head)')
    parser.add_argument('--arch', help='fail unless the weights fit this arch (A0 ... D2se) '
                                       'exactly (default: inferred and printed)')
    parser.add_argument('--force', action='store_true', help='overwrite an existing DST')
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    summary = convert_checkpoint_file(args.src, args.dst, layout=args.layout, target=args.target,
                                      arch=args.arch, force=args.force)
    blocks = 'fused (deploy)' if summary.deploy else 'training-time'
    head = 'with' if summary.had_head else 'without'
    arch = summary.arch or 'custom (not a standard RepVGG arch)'
    print(f'{args.src}: {summary.layout} layout, {blocks} blocks, {head} classifier head, '
          f'arch {arch}')
    print(f'wrote {summary.num_tensors} tensors ({summary.target} keys, repvgg_mm layout) to '
          f'{args.dst}')
    return 0


if __name__ == '__main__':
    sys.exit(run_tool(main))
