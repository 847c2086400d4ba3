"""Accuracy of the three fine-tuning forms: Fashion-MNIST from scratch, then PSPNet transfer.

    python tools/analysis_tools/benchmark_block_forms_accuracy.py          # the full experiment
    python tools/analysis_tools/benchmark_block_forms_accuracy.py --quick  # tiny smoke run
    python tools/analysis_tools/benchmark_block_forms_accuracy.py --sections transfer \
        --pretrained work_dirs/block_forms_accuracy/scratch_repvgg/epoch_3.pth

One recipe and one seed for the RepVGG block, the linear-scaling block and fused+BN (see
:mod:`repvgg_mm.benchmark.form_accuracy`): top-1 from scratch on Fashion-MNIST (Debian's
``dataset-fashion-mnist``), then mIoU and wall time of a toy PSPNet fine-tuned in each form from
the RepVGG classifier (and from scratch) on a segmentation set composed from Fashion-MNIST items.
Writes ``<work-dir>/block_forms_accuracy.json`` and prints markdown tables. Run it alone on the
machine (the wall times are not interleaved).
"""
import os

os.environ.setdefault('OMP_WAIT_POLICY', 'PASSIVE')  # before torch starts its OpenMP runtime

import sys
import time
from pathlib import Path

from mmengine.logging import MMLogger

from repvgg_mm.benchmark.form_accuracy import (
    FormAccuracySettings,
    run_form_accuracy,
    table_lines,
)
from repvgg_mm.checkpoint import check_checkpoint_file
from repvgg_mm.datasets.fashion_mnist import DEBIAN_ROOT
from repvgg_mm.models import ARCH_NAMES
from repvgg_mm.utils.argtypes import non_negative_int, positive_float, positive_int
from repvgg_mm.utils.cli import run_tool, tool_parser
from repvgg_mm.utils.fileio import check_output_target, write_json_atomic

REPO = Path(__file__).resolve().parents[2]
SEG_CONFIG = 'configs/toy/pspnet_repvgg_a0_toy.py'
# option -> settings field (None: keep the default of the mode)
OPTIONS = ('arch', 'train_limit', 'test_limit', 'image_size', 'batch_size', 'epochs', 'lr',
           'seg_train', 'seg_val', 'seg_image_size', 'seg_iters', 'seg_batch_size', 'seed',
           'threads', 'seg_data_root')


def parse_args(argv=None):
    parser = tool_parser(__doc__.splitlines()[0])
    parser.add_argument('--quick', action='store_true',
                        help='tiny arch, a few images and iterations (a smoke test)')
    parser.add_argument('--sections', nargs='+', choices=('scratch', 'transfer'),
                        default=['scratch', 'transfer'])
    parser.add_argument('--pretrained', default=None,
                        help='classifier checkpoint for the transfer section (default: the '
                             'RepVGG run of the scratch section)')
    parser.add_argument('--work-dir', default='work_dirs/block_forms_accuracy')
    parser.add_argument('--fashion-mnist-root', default=DEBIAN_ROOT)
    parser.add_argument('--seg-config', default=str(REPO / SEG_CONFIG),
                        help='the PSPNet config fine-tuned in the transfer section')
    parser.add_argument('--arch', choices=ARCH_NAMES, default=None, help='default A0')
    for name, kind, default in (
            ('train-limit', positive_int, 15000), ('test-limit', positive_int, 'all (10000)'),
            ('image-size', positive_int, 32), ('batch-size', positive_int, 64),
            ('epochs', positive_int, 3), ('lr', positive_float, 0.05),
            ('seg-train', positive_int, 2000), ('seg-val', positive_int, 400),
            ('seg-image-size', positive_int, 96), ('seg-iters', positive_int, 1000),
            ('seg-batch-size', positive_int, 8), ('seed', non_negative_int, 0),
            ('threads', positive_int, 2)):
        parser.add_argument(f'--{name}', type=kind, default=None, help=f'default {default}')
    parser.add_argument('--seg-data-root', default=None,
                        help='the composed segmentation set (default WORK_DIR/fashion_mnist_seg)')
    return parser.parse_args(argv)


def settings(args) -> FormAccuracySettings:
    common = dict(work_dir=args.work_dir, seg_config=args.seg_config,
                  fashion_mnist_root=args.fashion_mnist_root, sections=tuple(args.sections))
    s = FormAccuracySettings.quick(**common) if args.quick else FormAccuracySettings(**common)
    for name in OPTIONS:
        value = getattr(args, name)
        if value is not None:
            setattr(s, name, value)
    s.check()
    return s


def main(argv=None):
    args = parse_args(argv)
    s = settings(args)
    if args.pretrained is not None:
        check_checkpoint_file(args.pretrained)
    path = os.path.join(args.work_dir, 'block_forms_accuracy.json')
    check_output_target(path)  # before the runs
    logger = MMLogger.get_instance('repvgg_mm_block_forms_accuracy', log_level='INFO')
    started = time.perf_counter()
    report = run_form_accuracy(s, logger, pretrained=args.pretrained)
    report['seconds'] = time.perf_counter() - started
    write_json_atomic(report, path)
    print('\n'.join(table_lines(report)))
    print(f'wrote {path} ({report["seconds"]:.0f} s)')
    return 0


if __name__ == '__main__':
    sys.exit(run_tool(main))
