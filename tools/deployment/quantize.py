"""Static INT8 ONNX model of a config + checkpoint with onnxruntime.quantization (QDQ).

    python tools/deployment/quantize.py CONFIG CHECKPOINT OUT_DIR [--calib 32]
        [--calib-split {train,val,test}] [--keep-fp32 K | --max-drop D --val] [--val]
        [--metric KEY] [--input-size H [W]] [--threads N] [--force] [--cfg-options ...]

A training-time CHECKPOINT is fused first (tools/convert_whole_model.py's converter, with its
proof); a fused one goes with its deploy config. OUT_DIR becomes an ONNX model folder (see
tools/deployment/export_onnx.py) with end2end_int8.onnx beside the FP32 end2end.onnx and
quantize_report.json. Weights: per-channel symmetric INT8; activations: asymmetric UINT8
calibrated on the first --calib images of the config's --calib-split dataloader (test pipeline).

Sensitivity: each conv's output error when only its input and weights are quantized (noise to
signal, over the calibration images). --keep-fp32 K keeps the K most sensitive convs in floating
point; --max-drop D --val finds the smallest K whose metric drop on the test split stays within
D (the metric's own units: mIoU points, COCO mAP fraction, top-1 points). --val scores FP32 and
INT8 with the config's evaluator. Score the result with
``python tools/test.py CONFIG OUT_DIR/end2end_int8.onnx``.
"""
import sys

from mmengine.logging import MMLogger

from repvgg_mm.apis.deployment import quantize_model, report_table
from repvgg_mm.utils.argtypes import (
    input_path,
    non_negative_float,
    non_negative_int,
    output_path,
    positive_int,
)
from repvgg_mm.utils.cli import add_cfg_options, run_tool, tool_parser


def parse_args(argv=None):
    parser = tool_parser(__doc__.splitlines()[0])
    parser.add_argument('config', type=input_path,
                        help='config (training-time, or the deploy config of a fused checkpoint)')
    parser.add_argument('checkpoint', type=input_path, help='weights (training-time or fused)')
    parser.add_argument('out_dir', type=output_path,
                        help='the model folder to write (must not exist, see --force)')
    parser.add_argument('--calib', type=positive_int, default=32,
                        help='number of calibration images (default 32)')
    parser.add_argument('--calib-split', choices=('train', 'val', 'test'), default='train',
                        help='dataloader the calibration images come from (default train, read '
                             'with the test pipeline)')
    parser.add_argument('--keep-fp32', type=non_negative_int, default=None, metavar='K',
                        help='keep the K most sensitive convs in floating point')
    parser.add_argument('--max-drop', type=non_negative_float, default=None, metavar='D',
                        help='with --val: the smallest K whose metric drop is at most D')
    parser.add_argument('--val', action='store_true',
                        help="score FP32 and INT8 with the config's test dataloader and evaluator")
    parser.add_argument('--metric', default=None,
                        help='metric of --max-drop (default: mIoU, coco/bbox_mAP or accuracy/top1)')
    parser.add_argument('--input-size', type=positive_int, nargs='+', default=None,
                        help='H W (or one size) to export at instead of the first test image')
    parser.add_argument('--threads', type=positive_int, default=None,
                        help='threads of the latency measurement (default: all cores)')
    parser.add_argument('--latency-repeats', type=positive_int, default=7)
    parser.add_argument('--force', action='store_true', help='replace an existing model folder')
    add_cfg_options(parser, 'test_dataloader.dataset.data_root=data/toy_dense')
    args = parser.parse_args(argv)
    parser.check_size(args.input_size, '--input-size')
    return args


def main(argv=None):
    args = parse_args(argv)
    MMLogger.get_instance('repvgg_mm_quantize', log_level='INFO')
    report = quantize_model(
        args.config, args.checkpoint, args.out_dir, calib=args.calib,
        calib_split=args.calib_split, keep_fp32=args.keep_fp32, max_drop=args.max_drop,
        val=args.val, metric=args.metric, input_size=args.input_size, threads=args.threads,
        latency_repeats=args.latency_repeats, force=args.force, cfg_options=args.cfg_options)
    print(report_table(report))
    print(f'wrote {args.out_dir}')
    return 0


if __name__ == '__main__':
    sys.exit(run_tool(main))
