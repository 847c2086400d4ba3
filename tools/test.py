"""Test a checkpoint: classification (repvgg_mm), segmentation (mmseg) or detection (mmdet).

    python tools/test.py CONFIG CHECKPOINT|MODEL.onnx|MODEL_DIR [--fuse] [--work-dir DIR]
        [--out FILE|DIR] [--backend {pytorch,onnxruntime}]
        [--out-item {pred,metrics}] [--show] [--show-dir DIR] [--tta] [--cfg-options KEY=VALUE ...]
        [--launcher {none,pytorch,slurm,mpi}]

The checkpoint must fit the model exactly (a clear key list otherwise). ``--fuse`` fuses every
RepVGG block after loading, so a training-time checkpoint is tested as the deployed plain model;
a deploy config (``*_deploy.py``) tests an already fused checkpoint. An ONNX model (FP32 or INT8)
runs on ONNX Runtime inside the config's own model, scored by the config's evaluator.
"""
import os
import sys

from repvgg_mm.engine import test
from repvgg_mm.utils.argtypes import input_path, non_negative_float, non_negative_int, output_path
from repvgg_mm.utils.cli import add_cfg_options, add_verbose, run_tool, tool_parser


def parse_args(argv=None):
    parser = tool_parser('Test (and evaluate) a checkpoint')
    parser.add_argument('config', type=input_path, help='test config file path')
    parser.add_argument('checkpoint', type=input_path,
                        help='checkpoint file, or an ONNX model: a .onnx file or the model folder '
                             'tools/deployment/export_onnx.py or quantize.py wrote')
    parser.add_argument('--backend', choices=['pytorch', 'onnxruntime'], default=None,
                        help='runtime (default: onnxruntime for a .onnx file or a model folder, '
                             'else pytorch)')
    parser.add_argument('--work-dir', help='the dir to save logs and evaluation results')
    parser.add_argument(
        '--out', type=output_path,
        help='predictions: a .pkl file (classification, detection) or a folder of label maps '
             '(segmentation); with --out-item metrics: a .json file of the metrics')
    parser.add_argument('--out-item', choices=['pred', 'metrics'], default='pred',
                        help='what --out receives (default: pred)')
    parser.add_argument('--fuse', action='store_true',
                        help='fuse every RepVGG block after loading (test the deployed structure)')
    parser.add_argument('--show', action='store_true', help='show predictions (seg/det)')
    parser.add_argument('--show-dir', help='save painted predictions to this dir (seg/det)')
    parser.add_argument('--wait-time', type=non_negative_float, default=2,
                        help='the interval of show (s)')
    parser.add_argument('--tta', action='store_true', help='test-time augmentation (seg/det)')
    add_cfg_options(parser, 'test_dataloader.dataset.data_root=/data/imagenet')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'], default='none',
                        help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=non_negative_int, default=0)
    add_verbose(parser)
    args = parser.parse_args(argv)
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args


def main(argv=None):
    args = parse_args(argv)
    test(args.config, args.checkpoint, work_dir=args.work_dir, out=args.out,
         out_item=args.out_item, show=args.show, show_dir=args.show_dir,
         wait_time=args.wait_time, cfg_options=args.cfg_options, launcher=args.launcher,
         tta=args.tta, fuse=args.fuse, backend=args.backend, verbose=args.verbose)


if __name__ == '__main__':
    sys.exit(run_tool(main))
