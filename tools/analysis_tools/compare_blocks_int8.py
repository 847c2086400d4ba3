"""RepVGG vs QARepVGG under ONNX Runtime static INT8: same recipe and seed, FP32 vs INT8 top-1.

    python tools/analysis_tools/compare_blocks_int8.py --dataset fashion-mnist --arch A0 \
        --image-size 32 --epochs 3 --train-limit 15000 --batch-size 64 --calibration-batches 8 \
        --speed
    python tools/analysis_tools/compare_blocks_int8.py --block-type repvgg   # one block only
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
    int8_speed,
    run_quantization_experiment,
)
from repvgg_mm.models import ARCH_NAMES
from repvgg_mm.testing import TINY_ARCH
from repvgg_mm.utils.cli import run_tool, tool_parser
from repvgg_mm.utils.errors import UserError
from repvgg_mm.utils.fileio import write_json_atomic


def parse_args(argv=None):
    defaults = QuantExperiment()
    parser = tool_parser(__doc__.splitlines()[0])
    parser.add_argument('--arch', choices=list(ARCH_NAMES) + ['tiny'], default='A0')
    parser.add_argument('--block-type', choices=BLOCK_TYPES, default=None,
                        help='run one block type only (default: both, with the comparison)')
    parser.add_argument('--dataset', choices=('toy', 'fashion-mnist'), default='toy')
    parser.add_argument('--fashion-mnist-root', default=defaults.fashion_mnist_root)
    parser.add_argument('--train-limit', type=int, default=None,
                        help='Fashion-MNIST: use the first N training images')
    parser.add_argument('--val-limit', type=int, default=None,
                        help='Fashion-MNIST: use the first N test images')
    parser.add_argument('--data-root', default=None,
                        help='folder with train/<class>/ and val/<class>/ images (default: the '
                             'embedded toy data rendered in memory)')
    parser.add_argument('--image-size', type=int, default=defaults.image_size)
    parser.add_argument('--train-per-class', type=int, default=defaults.train_per_class)
    parser.add_argument('--val-per-class', type=int, default=defaults.val_per_class)
    parser.add_argument('--epochs', type=int, default=defaults.epochs, help='FP32 training epochs')
    parser.add_argument('--lr', type=float, default=defaults.lr)
    parser.add_argument('--batch-size', type=int, default=defaults.batch_size)
    parser.add_argument('--calibration-batches', type=int, default=defaults.calibration_batches)
    parser.add_argument('--seed', type=int, default=defaults.seed)
    parser.add_argument('--speed', action='store_true',
                        help='also time FP32 vs INT8 of the arch at --speed-size, --speed-batch')
    parser.add_argument('--speed-size', type=int, default=224)
    parser.add_argument('--speed-batch', type=int, default=8)
    parser.add_argument('--threads', type=int, default=2)
    parser.add_argument('--work-dir', default='work_dirs/compare_blocks_int8')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    if args.data_root and not os.path.isdir(os.path.join(args.data_root, 'train')):
        raise UserError(f'{args.data_root}/train not found (make it with '
                        'tools/dataset_converters/make_toy_classification.py, or leave '
                        '--data-root out)')
    logger = MMLogger.get_instance('repvgg_mm_compare_blocks_int8', log_level='INFO')
    arch = TINY_ARCH if args.arch == 'tiny' else args.arch
    block_types = (args.block_type, ) if args.block_type else BLOCK_TYPES
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
        report(result, args)
    if len(results) == 2:
        print(comparison_table(results))
    out = os.path.join(args.work_dir, 'compare_blocks_int8.json')
    write_json_atomic(results, out)
    print(f'wrote {out}')
    return 0


def report(result: dict, args) -> None:
    print(f'{result["block_type"]}: data: {result["data"]} ({result["num_val"]} val images)')
    acc = result['accuracy']
    for name, value in acc.items():
        print(f'  top-1 {name:<18} {value:6.2f}%')
    print(f'  INT8 vs FP32 fused: {acc["int8 ptq"] - acc["fp32 fused"]:+.2f} points '
          f'({result["int8_convs"]} INT8 convs)')
    for name, value in result['checks'].items():
        print(f'  {name}: {value:.2e}')
    speeds = result.get('seconds_per_batch')
    if speeds:
        base = speeds['fp32 fused']
        print(f'  speed, batch {args.speed_batch}, {args.speed_size}x{args.speed_size}, '
              f'{args.threads} threads (median s/batch):')
        for name, seconds in speeds.items():
            print(f'    {name:<24} {seconds:.4f} s  ({base / seconds:.2f}x vs fp32 fused)')


def comparison_table(results: dict) -> str:
    """The README table: FP32 and INT8 top-1, the drop, INT8 speed, per block type."""
    rows = ['| block | FP32 top-1 (fused) | INT8 top-1 (onnxruntime) | drop | INT8 s/batch |',
            '|---|---|---|---|---|']
    for block_type, result in results.items():
        acc = result['accuracy']
        speed = result.get('seconds_per_batch', {}).get('int8')
        rows.append(f'| {block_type} | {acc["fp32 fused"]:.2f} | {acc["int8 ptq"]:.2f} | '
                    f'{acc["fp32 fused"] - acc["int8 ptq"]:.2f} | '
                    f'{f"{speed:.4f}" if speed else "-"} |')
    drops = {k: r['accuracy']['fp32 fused'] - r['accuracy']['int8 ptq'] for k, r in results.items()}
    verdict = 'met' if drops['qarepvgg'] <= max(drops['repvgg'], 0) / 2 else 'not met'
    rows.append(f'\nQARepVGG INT8 drop at most half of RepVGG\'s: {verdict} '
                f'({drops["qarepvgg"]:.2f} vs {drops["repvgg"]:.2f} points)')
    return '\n'.join(rows)


if __name__ == '__main__':
    sys.exit(run_tool(main))
