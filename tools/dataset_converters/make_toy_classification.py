"""Generate the toy classification dataset (5 classes of synthetic shapes/stripes, 64x64 PNG).

    python tools/dataset_converters/make_toy_classification.py [OUT_DIR=data/toy_cls]
        [--num-train 200] [--num-val 40]

Deterministic for a given --seed; writes OUT_DIR/{train,val}/<class>/*.png atomically and keeps an
existing folder made with the same settings.
"""
import sys

from mmengine.utils import ProgressBar

from repvgg_mm.datasets import make_toy_classification
from repvgg_mm.utils.argtypes import non_negative_int, positive_int
from repvgg_mm.utils.cli import run_tool, tool_parser


def parse_args(argv=None):
    parser = tool_parser(__doc__.splitlines()[0])
    parser.add_argument('out_dir', nargs='?', default='data/toy_cls', help='output folder')
    parser.add_argument('--num-train', type=positive_int, default=200,
                        help='train images per class')
    parser.add_argument('--num-val', type=positive_int, default=40, help='val images per class')
    parser.add_argument('--size', type=positive_int, default=64, help='image side in pixels')
    parser.add_argument('--seed', type=non_negative_int, default=0)
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    bars = []

    def progress(total):
        bars.append(ProgressBar(total))
        return bars[-1].update

    info = make_toy_classification(args.out_dir, args.num_train, args.num_val, args.size,
                                   args.seed, progress=progress)
    if bars:
        print()
    state = 'wrote' if info['created'] else 'already present:'
    counts = info['images_per_class']
    print(f"{state} {args.out_dir}: {len(info['classes'])} classes, {counts['train']} train + "
          f"{counts['val']} val images per class, {info['size']}x{info['size']}")


if __name__ == '__main__':
    sys.exit(run_tool(main))
