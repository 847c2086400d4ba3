"""INT8 quantization of a fused RepVGG classifier on the embedded toy data: PTQ, or insert-BN + QAT.

    python tools/deployment/quantize.py --mode ptq      # train A0 (FP32), fuse, PTQ, accuracies
    python tools/deployment/quantize.py --mode qat      # + insert BN, QAT fine-tune, before/after
    python tools/deployment/quantize.py --mode ptq --speed  # + FP32 vs INT8 speed at 224x224,
                                                            # batch 8
    python tools/deployment/quantize.py --data-root data/toy_cls  # a class-folder dataset instead
    python tools/deployment/quantize.py --compare-blocks --dataset fashion-mnist --image-size 32 \
        --epochs 3 --speed      # RepVGG-A0 vs QARepVGG-A0: FP32, INT8 PTQ, drop, INT8 speed

--dataset fashion-mnist reads Debian's dataset-fashion-mnist IDX files (--fashion-mnist-root).

Writes <work-dir>/quantize_<mode>.json (accuracies, checks, speeds) atomically.
"""
import os
import sys

from mmengine.logging import MMLogger

from quant_experiment import TINY_ARCH, QuantExperiment, int8_speed, run_quantization_experiment
from repvgg_mm.models import ARCH_NAMES
from repvgg_mm.utils.argtypes import (
    input_path,
    non_negative_int,
    output_path,
    positive_float,
    positive_int,
)
from repvgg_mm.utils.cli import run_tool, tool_parser
from repvgg_mm.utils.errors import UserError
from repvgg_mm.utils.fileio import check_output_target, write_json_atomic


def parse_args(argv=None):
    defaults = QuantExperiment()
    parser = tool_parser(__doc__.splitlines()[0])
    parser.add_argument('--mode', choices=('ptq', 'qat'), default='ptq')
    parser.add_argument('--arch', choices=list(ARCH_NAMES) + ['tiny'], default='A0')
    parser.add_argument('--block-type', choices=('repvgg', 'qarepvgg'), default='repvgg')
    parser.add_argument('--compare-blocks', action='store_true',
                        help='run the experiment for RepVGG and QARepVGG with the same recipe and '
                             'seed, and print the INT8 comparison table')
    parser.add_argument('--dataset', choices=('toy', 'fashion-mnist'), default='toy')
    parser.add_argument('--fashion-mnist-root', type=input_path,
                        default=defaults.fashion_mnist_root)
    parser.add_argument('--train-limit', type=positive_int, default=None,
                        help='Fashion-MNIST: use the first N training images')
    parser.add_argument('--val-limit', type=positive_int, default=None,
                        help='Fashion-MNIST: use the first N test images')
    parser.add_argument('--data-root', type=input_path, default=None,
                        help='folder with train/<class>/ and val/<class>/ images (default: the '
                             'embedded toy data rendered in memory)')
    parser.add_argument('--image-size', type=positive_int, default=defaults.image_size)
    parser.add_argument('--train-per-class', type=positive_int,
                        default=defaults.train_per_class)
    parser.add_argument('--val-per-class', type=positive_int, default=defaults.val_per_class)
    parser.add_argument('--epochs', type=positive_int, default=defaults.epochs,
                        help='FP32 training epochs')
    parser.add_argument('--lr', type=positive_float, default=defaults.lr)
    parser.add_argument('--batch-size', type=positive_int, default=defaults.batch_size)
    parser.add_argument('--calibration-batches', type=positive_int,
                        default=defaults.calibration_batches)
    parser.add_argument('--qat-epochs', type=positive_int, default=defaults.qat_epochs)
    parser.add_argument('--qat-lr', type=positive_float, default=defaults.qat_lr)
    parser.add_argument('--backend', choices=('x86', 'fbgemm'), default=defaults.backend,
                        help='quantized engine')
    parser.add_argument('--seed', type=non_negative_int, default=defaults.seed)
    parser.add_argument('--speed', action='store_true',
                        help='also time FP32 vs INT8 of the arch at --speed-size, --speed-batch')
    parser.add_argument('--speed-size', type=positive_int, default=224)
    parser.add_argument('--speed-batch', type=positive_int, default=8)
    parser.add_argument('--threads', type=positive_int, default=2)
    parser.add_argument('--work-dir', type=output_path, default='work_dirs/quantize')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    if args.data_root and not os.path.isdir(os.path.join(args.data_root, 'train')):
        raise UserError(f'{args.data_root}/train not found (make it with '
                        'tools/dataset_converters/make_toy_classification.py, or leave '
                        '--data-root out)')
    name = f'quantize_{args.mode}' + ('_compare_blocks' if args.compare_blocks else '')
    out = os.path.join(args.work_dir, f'{name}.json')
    check_output_target(out)  # before the training, not after it
    logger = MMLogger.get_instance('repvgg_mm_quantize', log_level='INFO')
    arch = TINY_ARCH if args.arch == 'tiny' else args.arch
    block_types = ('repvgg', 'qarepvgg') if args.compare_blocks else (args.block_type, )
    results = {}
    for block_type in block_types:
        cfg = QuantExperiment(
            arch=arch, block_type=block_type, dataset=args.dataset,
            fashion_mnist_root=args.fashion_mnist_root, train_limit=args.train_limit,
            val_limit=args.val_limit, image_size=args.image_size,
            train_per_class=args.train_per_class, val_per_class=args.val_per_class,
            data_root=args.data_root, batch_size=args.batch_size, epochs=args.epochs, lr=args.lr,
            calibration_batches=args.calibration_batches, mode=args.mode,
            qat_epochs=args.qat_epochs, qat_lr=args.qat_lr, backend=args.backend, seed=args.seed)
        result = run_quantization_experiment(cfg, logger).as_dict()
        result.update(arch=args.arch, block_type=block_type)
        if args.speed:
            result['seconds_per_batch'] = int8_speed(
                arch, args.speed_size, args.speed_batch, args.threads, backend=args.backend,
                logger=logger, block_type=block_type)
        results[block_type] = result
        report(result, args)
    if args.compare_blocks:
        print(comparison_table(results, args))
    write_json_atomic(results if args.compare_blocks else results[block_types[0]], out)
    print(f'wrote {out}')
    return 0


def report(result: dict, args) -> None:
    print(f'{result["block_type"]}: data: {result["data"]} ({result["num_val"]} val images)')
    acc = result['accuracy']
    for name, value in acc.items():
        print(f'  top-1 {name:<18} {value:6.2f}%')
    print(f'  INT8 PTQ vs FP32 fused: {acc["int8 ptq"] - acc["fp32 fused"]:+.2f} points')
    if args.mode == 'qat':
        print(f'  QAT: {acc["int8 qat before"]:.2f}% before -> {acc["int8 qat after"]:.2f}% after '
              f'fine-tuning (FP32 fused {acc["fp32 fused"]:.2f}%)')
    for name, value in result['checks'].items():
        print(f'  {name}: {value:.2e}')
    speeds = result.get('seconds_per_batch')
    if speeds:
        base = speeds['fp32 fused']
        print(f'  speed, batch {args.speed_batch}, {args.speed_size}x{args.speed_size}, '
              f'{args.threads} threads (median s/batch):')
        for name, seconds in speeds.items():
            print(f'    {name:<24} {seconds:.4f} s  ({base / seconds:.2f}x vs fp32 fused)')


def comparison_table(results: dict, args) -> str:
    """The README table: FP32 and INT8 top-1, the drop, INT8 speed, per block type."""
    rows = ['| block | FP32 top-1 (fused) | INT8 PTQ top-1 | drop | INT8 s/batch |',
            '|---|---|---|---|---|']
    for block_type, result in results.items():
        acc = result['accuracy']
        speed = result.get('seconds_per_batch', {}).get('int8 jit')
        rows.append(f'| {block_type} | {acc["fp32 fused"]:.2f} | {acc["int8 ptq"]:.2f} | '
                    f'{acc["fp32 fused"] - acc["int8 ptq"]:.2f} | '
                    f'{f"{speed:.4f}" if speed else "-"} |')
    drops = {k: r['accuracy']['fp32 fused'] - r['accuracy']['int8 ptq'] for k, r in results.items()}
    verdict = ('met' if drops['qarepvgg'] <= max(drops['repvgg'], 0) / 2 else 'not met')
    rows.append(f'\nQARepVGG INT8 drop at most half of RepVGG\'s: {verdict} '
                f'({drops["qarepvgg"]:.2f} vs {drops["repvgg"]:.2f} points)')
    return '\n'.join(rows)


if __name__ == '__main__':
    sys.exit(run_tool(main))
