"""Fuse every RepVGG block of a classifier, segmentor or detector into one 3x3 conv, with proof.

    python tools/convert_whole_model.py CONFIG CHECKPOINT OUT_DIR [--cfg-options KEY=VALUE ...]
        [--force] [--tolerance T] [--ema | --raw-weights] [--add-module-prefix]
        [--sample-shape H W] [--seed S] [--no-verify] [--debug]

Writes OUT_DIR/<config>_deploy.py (the config with deploy=True on every RepVGG module) and
OUT_DIR/<checkpoint>_deploy.pth (meta kept, plus a 'repvgg_mm_fusion' record), atomically and
only after every check passed: strict loading, bit-identical non-RepVGG tensors, and equal outputs
of
the training-time and fused model on a deterministic sample (relative tolerance, default 1e-4).
Any bad input ends with a one-line error on stderr and exit status 2, writing nothing.
"""
import sys
import time
import warnings

from mmengine.logging import MMLogger

from repvgg_mm.conversion.equivalence import DEFAULT_TOLERANCE
from repvgg_mm.conversion.whole_model import (
    DEFAULT_SAMPLE_SHAPE,
    check_output_location,
    convert_whole_model,
    output_paths,
    summary_lines,
    write_conversion,
)
from repvgg_mm.utils.argtypes import input_path, non_negative_float, non_negative_int, positive_int
from repvgg_mm.utils.cli import add_cfg_options, run_tool, tool_parser


def parse_args(argv=None):
    parser = tool_parser(__doc__.splitlines()[0])
    parser.add_argument('config', type=input_path,
                        help='training config (classification, mmseg or mmdet)')
    parser.add_argument('checkpoint', type=input_path,
                        help='training checkpoint (flat, DDP or Runner file)')
    parser.add_argument('out_dir', help='folder for the deploy config and checkpoint')
    add_cfg_options(parser, 'model.backbone.arch=B2')
    parser.add_argument('--force', action='store_true', help='write into a non-empty OUT_DIR')
    parser.add_argument('--tolerance', type=non_negative_float, default=DEFAULT_TOLERANCE,
                        help='max relative output difference allowed (default 1e-4)')
    which = parser.add_mutually_exclusive_group()
    which.add_argument('--ema', dest='weights', action='store_const', const='ema', default='auto',
                       help='convert the EMA (averaged) weights; error if the file has none')
    which.add_argument('--raw-weights', dest='weights', action='store_const', const='raw',
                       help='convert the non-averaged weights of an EMA-trained file')
    parser.add_argument('--add-module-prefix', action='store_true',
                        help="save keys with 'module.' (for loading into a DDP-wrapped model)")
    parser.add_argument('--sample-shape', type=positive_int, nargs=2, default=DEFAULT_SAMPLE_SHAPE,
                        metavar=('H', 'W'),
                        help='spatial size of the verification sample (default 128 128)')
    parser.add_argument('--seed', type=non_negative_int, default=0,
                        help='seed of the verification sample')
    parser.add_argument('--no-verify', action='store_true',
                        help='skip the output comparison (key and bit-identity checks still run)')
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    # A fresh logger per call: its handler writes to the sys.stdout of this call.
    logger = MMLogger.get_instance(f'convert_whole_model_{time.time_ns()}', log_level='INFO')

    def log_warning(message, category, filename, lineno, file=None, line=None):
        logger.warning(f'{category.__name__}: {message}')  # stderr is kept for the error line

    show_warning, warnings.showwarning = warnings.showwarning, log_warning
    try:
        # Cheap checks first, so that a wrong OUT_DIR fails before any model is built.
        check_output_location([args.config, args.checkpoint], args.out_dir,
                              output_paths(args.config, args.checkpoint, args.out_dir), args.force)
        result = convert_whole_model(
            args.config, args.checkpoint, cfg_options=args.cfg_options, weights=args.weights,
            tolerance=args.tolerance, sample_shape=args.sample_shape, seed=args.seed,
            verify=not args.no_verify, module_prefix=args.add_module_prefix, logger=logger)
        cfg_path, ckpt_path = write_conversion(result, args.config, args.checkpoint, args.out_dir,
                                               force=args.force)
    finally:
        warnings.showwarning = show_warning
    print('RepVGG whole-model conversion')
    for line in summary_lines(result):
        print(f'  {line}')
    print(f'  deploy config     : {cfg_path}')
    print(f'  deploy checkpoint : {ckpt_path}')
    return 0


if __name__ == '__main__':
    sys.exit(run_tool(main))
