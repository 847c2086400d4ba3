"""Export fused RepVGG models to ONNX (dynamic batch) and check them with onnxruntime.

    python tools/deployment/export_onnx.py CONFIG CHECKPOINT OUT_DIR [--input-size H W] [--force]
    python tools/deployment/export_onnx.py  # classifier, segmentor, detector (A0)
    python tools/deployment/export_onnx.py --what classifier --arch B1g2
    python tools/deployment/export_onnx.py --what segmentor --config configs/pspnet_repvgg_a0.py \
        --checkpoint work_dirs/pspnet/iter_80000.pth --input-size 512 1024

CONFIG CHECKPOINT OUT_DIR writes a deployable ONNX model folder (a training-time checkpoint is
fused first; a fused one goes with its deploy config): end2end.onnx, the deploy config, deploy.json
(model kind, exported part, inputs/outputs, normalisation, classes) and, for two-stage detectors,
the RPN/RoI head weights. Classifiers and segmentors export whole, single-stage detectors up to
the raw head outputs, two-stage detectors backbone + neck. Score it with
``python tools/test.py CONFIG OUT_DIR``; quantize it with tools/deployment/quantize.py.

The other form checks the export of models built in code (or from --config). Without
--checkpoint the weights are random with random BN statistics (a meaningful fuse check).
The exported graph is the fused one (one Conv per RepVGG block plus the head/neck convs); the
onnxruntime outputs at --check-batch (not the export batch) must match PyTorch's within
--atol + --rtol * max|output|, else the tool fails (exit status 2) and writes nothing.
"""
import os
import sys

from mmengine.logging import MMLogger

from repvgg_mm.apis.deployment import export_model
from repvgg_mm.deploy import onnx_export
from repvgg_mm.deploy.export_targets import EXPORT_TARGETS, build_export_target
from repvgg_mm.models import ARCH_NAMES
from repvgg_mm.utils.argtypes import (
    input_path,
    int_range,
    non_negative_float,
    non_negative_int,
    output_path,
    positive_int,
)
from repvgg_mm.utils.cli import add_cfg_options, run_tool, tool_parser
from repvgg_mm.utils.errors import ExportError
from repvgg_mm.utils.fileio import atomic_write_all, check_output_target, protect_inputs


def parse_args(argv=None):
    parser = tool_parser(__doc__.splitlines()[0])
    parser.add_argument('model', nargs='*', metavar='CONFIG CHECKPOINT OUT_DIR',
                        help='write the ONNX model folder of CONFIG + CHECKPOINT to OUT_DIR')
    parser.add_argument('--force', action='store_true',
                        help='replace an existing model folder OUT_DIR')
    add_cfg_options(parser, 'test_dataloader.dataset.data_root=data/toy_dense')
    parser.add_argument('--what', nargs='+', choices=EXPORT_TARGETS, default=list(EXPORT_TARGETS),
                        help='what to export (detector = backbone + neck)')
    parser.add_argument('--arch', choices=ARCH_NAMES, default='A0',
                        help='RepVGG arch of the models built in code')
    parser.add_argument('--detector', choices=('retinanet', 'faster_rcnn'), default='retinanet')
    parser.add_argument('--config', type=input_path, default=None,
                        help='build the model from this config instead (one --what only)')
    parser.add_argument('--checkpoint', type=input_path, default=None,
                        help='weights (training-time or fused)')
    parser.add_argument('--input-size', type=positive_int, nargs='+', default=None,
                        help='H W (or one size); default 224 classifier, 512 segmentor, 320 '
                             'detector')
    parser.add_argument('--export-batch', type=positive_int, default=1)
    parser.add_argument('--check-batch', type=positive_int, default=2,
                        help='batch of the onnxruntime check; must differ from --export-batch '
                             '(proves the dynamic batch axis)')
    parser.add_argument('--exporter', choices=onnx_export.EXPORTERS, default='auto')
    parser.add_argument('--opset', type=int_range(*onnx_export.SUPPORTED_OPSETS),
                        default=onnx_export.DEFAULT_OPSET)
    parser.add_argument('--atol', type=non_negative_float, default=1e-4)
    parser.add_argument('--rtol', type=non_negative_float, default=1e-4)
    parser.add_argument('--work-dir', type=output_path, default='work_dirs/onnx')
    parser.add_argument('--seed', type=non_negative_int, default=0)
    args = parser.parse_args(argv)
    parser.check_size(args.input_size, '--input-size')
    if args.check_batch == args.export_batch:
        parser.error(f'--check-batch ({args.check_batch}) must differ from --export-batch: the '
                     'check proves the dynamic batch axis')
    if args.config and len(args.what) != 1:
        parser.error('with --config, name exactly one --what')
    if args.model and len(args.model) != 3:
        parser.error(f'the model folder form takes CONFIG CHECKPOINT OUT_DIR, got '
                     f'{len(args.model)} arguments')
    if args.model and (args.config or args.checkpoint):
        parser.error('CONFIG CHECKPOINT OUT_DIR replaces --config/--checkpoint')
    return args


def export_folder(args, logger) -> int:
    config, checkpoint, out_dir = args.model
    protect_inputs(config, checkpoint)
    info = export_model(config, checkpoint, out_dir, input_size=args.input_size,
                        force=args.force, cfg_options=args.cfg_options, exporter=args.exporter,
                        opset=args.opset, logger=logger)
    print(f'OK: {info.kind} ({info.exported}), input {info.input["shape"]}, '
          f'{len(info.outputs)} outputs; wrote {out_dir}')
    return 0


def export_checked(args, logger) -> int:
    targets = [build_export_target(what, arch=args.arch, config=args.config,
                                   checkpoint=args.checkpoint, detector=args.detector,
                                   input_size=args.input_size, seed=args.seed, logger=logger)
               for what in args.what]
    paths = [os.path.join(args.work_dir, f'{target.name}.onnx') for target in targets]
    for path in paths:
        check_output_target(path)
    reports = []

    def writer(target, path):
        def write(tmp):
            report = onnx_export.export_and_check(
                target.name, target.model, target.input_shape, tmp, args.export_batch,
                args.check_batch, args.atol, args.rtol, args.exporter, args.opset, args.seed,
                logger)
            report.path = path
            if not report.ok:
                raise ExportError(f'the ONNX check failed, nothing written: {report.describe()}')
            reports.append(report)
        return write

    # all or nothing: a file is kept only when every model passed its check
    atomic_write_all({path: writer(target, path) for path, target in zip(paths, targets)})
    for report in reports:
        print(f'OK: {report.describe()}')
    return 0


def main(argv=None):
    args = parse_args(argv)
    logger = MMLogger.get_instance('repvgg_mm_export', log_level='INFO')
    return export_folder(args, logger) if args.model else export_checked(args, logger)


if __name__ == '__main__':
    sys.exit(run_tool(main))
