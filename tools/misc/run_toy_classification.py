"""The embedded classification demo: toy data -> train RepVGG-A0 -> test -> test fused.

    python tools/misc/run_toy_classification.py [--data data/toy_cls] [--work-dir work_dirs/...]

Runs tools/dataset_converters/make_toy_classification.py, tools/train.py and tools/test.py (plain
and --fuse) as
subprocesses, then prints the training-time and fused top-1 accuracy side by side. Exits non-zero
if a step fails or the two accuracies differ.
"""
import json
import os
import subprocess
import sys
import time

from repvgg_mm.utils.cli import run_tool, tool_parser
from repvgg_mm.utils.errors import UserError

TOOLS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG = os.path.join(os.path.dirname(TOOLS), 'configs', 'toy', 'repvgg_a0_toy_cls.py')


def parse_args(argv=None):
    parser = tool_parser(__doc__.splitlines()[0])
    parser.add_argument('--data', default='data/toy_cls', help='toy dataset folder')
    parser.add_argument('--work-dir', default='work_dirs/repvgg_a0_toy_cls')
    return parser.parse_args(argv)


def run(step, *args):
    print(f'==> {step}: {" ".join(args)}', flush=True)
    start = time.time()
    if subprocess.run([sys.executable, *args]).returncode != 0:
        raise UserError(f'{step} failed')
    return time.time() - start


def main(argv=None):
    args = parse_args(argv)
    options = ['--cfg-options'] + [f'{loader}.dataset.data_root={args.data}' for loader in (
        'train_dataloader', 'val_dataloader', 'test_dataloader')]
    run('data', os.path.join(TOOLS, 'dataset_converters', 'make_toy_classification.py'), args.data)
    train_s = run('train', os.path.join(TOOLS, 'train.py'), CONFIG, '--work-dir', args.work_dir,
                  *options)
    with open(os.path.join(args.work_dir, 'last_checkpoint')) as f:
        checkpoint = f.read().strip()
    results = {}
    for name, extra in (('training-time', []), ('fused', ['--fuse'])):
        out = os.path.join(args.work_dir, f'test_{name}.json')
        run(f'test {name}', os.path.join(TOOLS, 'test.py'), CONFIG, checkpoint, '--work-dir',
            args.work_dir, '--out', out, '--out-item', 'metrics', *extra, *options)
        with open(out) as f:
            results[name] = json.load(f)['accuracy/top1']
    chance = 100 / 5
    print(f'\nRepVGG-A0 on the toy data ({checkpoint}, trained in {train_s:.0f} s; chance '
          f'{chance:.0f}%)')
    print(f"{'model':<15}{'top-1 (%)':>10}")
    for name, top1 in results.items():
        print(f'{name:<15}{top1:>10.2f}')
    if results['fused'] != results['training-time']:
        raise UserError('the fused model scores differently from the training-time model')


if __name__ == '__main__':
    sys.exit(run_tool(main))
