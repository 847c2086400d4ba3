"""Draw a segmentor's or detector's prediction on one image (training-time or fused checkpoint).

    python demo/image_demo.py IMG CONFIG CHECKPOINT [--out-file result.png] [--device cpu]
        [--score-thr 0.3] [--opacity 0.5]

The codebase comes from the config (mmseg or mmdet); their inferencers do the pre- and
post-processing and the drawing, while the weights are read by repvgg_mm's safe reader and loaded
strictly. A fused checkpoint goes with the deploy config tools/convert_whole_model.py wrote. An
ONNX model (a .onnx file, FP32 or INT8, or the model folder tools/deployment/export_onnx.py wrote)
runs on ONNX Runtime inside the same inferencer.
"""
import os
import sys

import mmcv
from PIL import Image

from repvgg_mm.apis import init_inferencer
from repvgg_mm.utils.argtypes import device, input_path, output_path, unit_float
from repvgg_mm.utils.cli import add_cfg_options, run_tool, tool_parser
from repvgg_mm.utils.errors import UserError, first_line
from repvgg_mm.utils.fileio import atomic_output, check_output_target


def parse_args(argv=None):
    parser = tool_parser(__doc__.splitlines()[0])
    parser.add_argument('img', type=input_path, help='image file')
    parser.add_argument('config', type=input_path,
                        help='config (training-time or deploy) of mmseg or mmdet')
    parser.add_argument('checkpoint', type=input_path,
                        help='weights (training-time or fused), or an ONNX model (.onnx file or '
                             'model folder)')
    parser.add_argument('--out-file', type=output_path, default='result.png',
                        help='where to write the drawing')
    parser.add_argument('--device', type=device, default='cpu', help='e.g. cpu or cuda:0')
    parser.add_argument('--score-thr', type=unit_float, default=0.3,
                        help='detection: box score bound')
    parser.add_argument('--opacity', type=unit_float, default=0.5,
                        help='segmentation: mask opacity')
    add_cfg_options(parser, 'model.test_cfg.mode=whole')
    return parser.parse_args(argv)


# mmseg's visualizer cannot draw a one-pixel prediction (a 1-element mask indexes as a number)
MIN_SIDE = 2


def read_image(path: str):
    """The image as BGR (the inferencers' order); a folder, an empty, truncated or undecodable
    file is a one-line error (OpenCV would draw a truncated JPEG silently)."""
    if os.path.isdir(path):
        raise UserError(f'{path} is a folder; give an image file')
    if os.path.isfile(path) and os.path.getsize(path) == 0:
        raise UserError(f'{path} is empty (0 bytes), not an image')
    try:
        with Image.open(path) as decoded:
            decoded.load()  # refuses truncated files
    except FileNotFoundError:
        raise UserError(f'image not found: {path}') from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise UserError(f'cannot read image {path} (truncated, corrupt or not an image): '
                        f'{first_line(exc)}') from exc
    image = mmcv.imread(path)
    if image is None:
        raise UserError(f'cannot read image {path} (not an image file or corrupt)')
    if min(image.shape[:2]) < MIN_SIDE:
        raise UserError(f'image {path} is {image.shape[1]}x{image.shape[0]} pixels; it needs at '
                        f'least {MIN_SIDE} pixels per side')
    return image


def main(argv=None) -> int:
    args = parse_args(argv)
    check_output_target(args.out_file)
    image = read_image(args.img)
    inferencer = init_inferencer(args.config, args.checkpoint, args.device, args.cfg_options)
    kwargs = (dict(pred_score_thr=args.score_thr) if 'pred_score_thr' in inferencer.visualize_kwargs
              else dict(opacity=args.opacity))
    drawing = inferencer(image, return_vis=True, show=False, **kwargs)['visualization']
    drawing = drawing[0] if isinstance(drawing, list) else drawing  # mmdet: one per image
    with atomic_output(args.out_file) as tmp:
        Image.fromarray(drawing).save(tmp, format='PNG')
    print(f'wrote {args.out_file}')
    return 0


if __name__ == '__main__':
    sys.exit(run_tool(main))
