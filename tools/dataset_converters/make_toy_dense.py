"""Generate the embedded toy dense-prediction dataset (deterministic, no download).

    python tools/dataset_converters/make_toy_dense.py [OUT_DIR] [--num-train 200] [--num-val 40]
        [--size 96] [--seed 0]

Writes OUT_DIR (default data/toy_dense) in mmseg's img_dir/ann_dir layout plus COCO box json files
(annotations/instances_{train,val}.json) over the same images. An OUT_DIR that already holds the
same dataset is left as it is.
"""
import sys

from repvgg_mm.datasets.toy_dense import make_toy_dense
from repvgg_mm.utils.argtypes import non_negative_int, positive_int
from repvgg_mm.utils.cli import run_tool, tool_parser


def parse_args(argv=None):
    parser = tool_parser(__doc__.splitlines()[0])
    parser.add_argument('out_dir', nargs='?', default='data/toy_dense')
    parser.add_argument('--num-train', type=positive_int, default=200, help='training images')
    parser.add_argument('--num-val', type=positive_int, default=40, help='validation images')
    parser.add_argument('--size', type=positive_int, default=96, help='image width and height')
    parser.add_argument('--seed', type=non_negative_int, default=0)
    parser.add_argument('--overwrite', action='store_true',
                        help='replace an existing OUT_DIR that holds something else')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    info = make_toy_dense(args.out_dir, num_train=args.num_train, num_val=args.num_val,
                          size=args.size, seed=args.seed, overwrite=args.overwrite)
    if info['created']:
        print(f'\nwrote {args.out_dir}: {info["num_train"]} train / {info["num_val"]} val images '
              f'of {info["size"]}x{info["size"]}, {info["objects"]["train"]} / '
              f'{info["objects"]["val"]} objects, classes {", ".join(info["seg_classes"])}')
    else:
        print(f'{args.out_dir} already holds this toy dataset; nothing to do')
    return 0


if __name__ == '__main__':
    sys.exit(run_tool(main))
