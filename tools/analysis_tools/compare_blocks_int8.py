"""RepVGG vs QARepVGG (vs linear-scaling) under ONNX Runtime static INT8: same recipe and seed.

    python tools/analysis_tools/compare_blocks_int8.py --dataset fashion-mnist --arch A0 \
        --image-size 32 --epochs 3 --train-limit 15000 --batch-size 64 --calibration-batches 8 \
        --speed
    python tools/analysis_tools/compare_blocks_int8.py --block-type repvgg qarepvgg  # these only
    python tools/analysis_tools/compare_blocks_int8.py --data-root data/toy_cls  # class folders

Each block type is trained in FP32, fused, exported to ONNX and quantized with
onnxruntime.quantization (QDQ, per-channel INT8 weights, UINT8 activations calibrated on
--calibration-batches training batches); the accuracies of the fused PyTorch model, the ONNX
Runtime FP32 model and the INT8 model are printed with the comparison table (target: QARepVGG's
INT8 drop at most half of RepVGG's). --dataset fashion-mnist reads Debian's dataset-fashion-mnist
IDX files (--fashion-mnist-root). Writes <work-dir>/compare_blocks_int8.json atomically.
"""
import os
import sys

from mmengine.logging import MMLogger

from repvgg_mm.benchmark.int8_blocks import (
    BLOCK_TYPES,
    QuantExperiment,
    comparison_table,
    int8_speed,
    report_lines,
    run_quantization_experiment,
)
from repvgg_mm.models import ARCH_NAMES
from repvgg_mm.testing import TINY_NAME, named_arch
from repvgg_mm.utils.argtypes import non_negative_int, positive_float, positive_int
from repvgg_mm.utils.cli import run_tool, tool_parser
from repvgg_mm.utils.errors import UserError
from repvgg_mm.utils.fileio import write_json_atomic


def parse_args(argv=None):
    defaults = QuantExperiment()
    parser = tool_parser(__doc__.splitlines()[0])
    parser.add_argument('--arch', choices=list(ARCH_NAMES) + [TINY_NAME], default='A0')
    parser.add_argument('--block-type', nargs='+', choices=BLOCK_TYPES, default=list(BLOCK_TYPES),
                        help='block types to run (default: all; the comparison needs repvgg and '
                             'qarepvgg)')
    parser.add_argument('--dataset', choices=('toy', 'fashion-mnist'), default='toy')
    parser.add_argument('--fashion-mnist-root', default=defaults.fashion_mnist_root)
    parser.add_argument('--train-limit', type=positive_int, default=None,
                        help='Fashion-MNIST: use the first N training images')
    parser.add_argument('--val-limit', type=positive_int, default=None,
                        help='Fashion-MNIST: use the first N test images')
    parser.add_argument('--data-root', default=None,
                        help='folder with train/<class>/ and val/<class>/ images (default: the '
                             'embedded toy data rendered in memory)')
    parser.add_argument('--image-size', type=positive_int, default=defaults.image_size)
    parser.add_argument('--train-per-class', type=positive_int, default=defaults.train_per_class)
    parser.add_argument('--val-per-class', type=positive_int, default=defaults.val_per_class)
    parser.add_argument('--epochs', type=positive_int, default=defaults.epochs,
                        help='FP32 training epochs')
    parser.add_argument('--lr', type=positive_float, default=defaults.lr)
    parser.add_argument('--batch-size', type=positive_int, default=defaults.batch_size)
    parser.add_argument('--calibration-batches', type=positive_int,
                        default=defaults.calibration_batches)
    parser.add_argument('--seed', type=non_negative_int, default=defaults.seed)
    parser.add_argument('--speed', action='store_true',
                        help='also time FP32 vs INT8 of the arch at --speed-size, --speed-batch')
    parser.add_argument('--speed-size', type=positive_int, default=224)
    parser.add_argument('--speed-batch', type=positive_int, default=8)
    parser.add_argument('--threads', type=positive_int, default=2)
    parser.add_argument('--work-dir', default='work_dirs/compare_blocks_int8')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    if args.data_root and not os.path.isdir(os.path.join(args.data_root, 'train')):
        raise UserError(f'{args.data_root}/train not found (make it with '
                        'tools/dataset_converters/make_toy_classification.py, or leave '
                        '--data-root out)')
    logger = MMLogger.get_instance('repvgg_mm_compare_blocks_int8', log_level='INFO')
    arch = named_arch(args.arch)
    block_types = list(dict.fromkeys(args.block_type))
    results = {}
    for block_type in block_types:
        cfg = QuantExperiment(
            arch=arch, block_type=block_type, dataset=args.dataset,
            fashion_mnist_root=args.fashion_mnist_root, train_limit=args.train_limit,
            val_limit=args.val_limit, image_size=args.image_size,
            train_per_class=args.train_per_class, val_per_class=args.val_per_class,
            data_root=args.data_root, batch_size=args.batch_size, epochs=args.epochs, lr=args.lr,
            calibration_batches=args.calibration_batches, seed=args.seed)
        result = run_quantization_experiment(cfg, logger).as_dict()
        result.update(arch=args.arch, block_type=block_type)
        if args.speed:
            result['seconds_per_batch'] = int8_speed(
                arch, args.speed_size, args.speed_batch, args.threads, logger=logger,
                block_type=block_type)
        results[block_type] = result
        print('\n'.join(report_lines(result, args.speed_size, args.speed_batch, args.threads)))
    if {'repvgg', 'qarepvgg'} <= set(results):
        print(comparison_table(results))
    out = os.path.join(args.work_dir, 'compare_blocks_int8.json')
    write_json_atomic(results, out)
    print(f'wrote {out}')
    return 0


if __name__ == '__main__':
    sys.exit(run_tool(main))
