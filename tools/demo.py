"""End-to-end demo: train a RepVGG segmentor, fuse the whole model, show that only speed changed.

    python tools/demo.py [--work-dir work_dirs/demo] [--data-root data/toy_dense] [--verbose]

1. generates the toy dense dataset (tools/dataset_converters/make_toy_dense.py) unless it is there;
2. trains PSPNet + RepVGG-A0 on it (tools/train.py configs/toy/pspnet_repvgg_a0_toy.py);
3. fuses every RepVGG block (tools/convert_whole_model.py -> deploy config + checkpoint);
4. tests the training checkpoint and the fused one with mmseg's own tools/test.py, drawing the
   fused model's predictions with mmseg's SegLocalVisualizer into WORK_DIR/predictions/;
5. times both models on the same batch of validation images and prints mIoU and speed side by side.

Each step prints the command it runs, so any of them can be repeated by hand, and its progress;
the whole output of each step is in WORK_DIR/logs/ (--verbose prints it too).
"""
import sys
from pathlib import Path

from repvgg_mm.benchmark.demo import DEFAULT_DATA_ROOT, run_demo
from repvgg_mm.utils.argtypes import positive_int
from repvgg_mm.utils.cli import add_verbose, run_tool, tool_parser

ROOT = str(Path(__file__).resolve().parents[1])


def parse_args(argv=None):
    parser = tool_parser(__doc__.splitlines()[0])
    parser.add_argument('--work-dir', default='work_dirs/demo', help='where every output goes')
    parser.add_argument('--data-root', default=DEFAULT_DATA_ROOT,
                        help='toy dataset folder (generated if absent)')
    parser.add_argument('--speed-batch', type=positive_int, default=8,
                        help='images per timed forward')
    parser.add_argument('--speed-repeats', type=positive_int, default=7,
                        help='timed rounds (median)')
    add_verbose(parser)
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    run_demo(ROOT, args.work_dir, args.data_root, args.speed_batch, args.speed_repeats,
             echo=lambda text: print(text, flush=True), verbose=args.verbose)
    return 0


if __name__ == '__main__':
    sys.exit(run_tool(main))
