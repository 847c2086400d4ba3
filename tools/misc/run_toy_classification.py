"""The embedded classification demo: toy data -> train RepVGG-A0 -> test -> test fused.

    python tools/misc/run_toy_classification.py [--data data/toy_cls] [--work-dir work_dirs/...]

Generates the toy classification data (as tools/dataset_converters/make_toy_classification.py),
runs tools/train.py and tools/test.py (plain and --fuse) as subprocesses, then prints the
training-time and fused top-1 accuracy side by side (each step's whole output in WORK_DIR/logs/,
--verbose prints it too). Exits non-zero if a step fails or the two accuracies differ.
"""
import sys
from pathlib import Path

from repvgg_mm.benchmark.demo import run_toy_classification
from repvgg_mm.utils.cli import add_verbose, run_tool, tool_parser

ROOT = str(Path(__file__).resolve().parents[2])


def parse_args(argv=None):
    parser = tool_parser(__doc__.splitlines()[0])
    parser.add_argument('--data', default='data/toy_cls', help='toy dataset folder')
    parser.add_argument('--work-dir', default='work_dirs/repvgg_a0_toy_cls')
    add_verbose(parser)
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    run_toy_classification(ROOT, args.data, args.work_dir,
                           echo=lambda text: print(text, flush=True), verbose=args.verbose)
    return 0


if __name__ == '__main__':
    sys.exit(run_tool(main))
