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
from repvgg_mm.utils.cli import add_cfg_options, run_tool, tool_parser
from repvgg_mm.utils.errors import UserError, first_line
from repvgg_mm.utils.fileio import atomic_output


def parse_args(argv=None):
    parser = tool_parser(__doc__.splitlines()[0])
    parser.add_argument('img', help='image file')
    parser.add_argument('config', help='config (training-time or deploy) of mmseg or mmdet')
    parser.add_argument('checkpoint', help='weights (training-time or fused), or an ONNX model '
                        '(.onnx file or model folder)')
    parser.add_argument('--out-file', default='result.png', help='where to write the drawing')
    parser.add_argument('--device', default='cpu', help='e.g. cpu or cuda:0')
    parser.add_argument('--score-thr', type=float, default=0.3, help='detection: box score bound')
    parser.add_argument('--opacity', type=float, default=0.5, help='segmentation: mask opacity')
    add_cfg_options(parser, 'model.test_cfg.mode=whole')
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    if not os.path.isfile(args.img):
        raise UserError(f'image not found: {args.img}')
    try:
        image = mmcv.imread(args.img)  # BGR, as the inferencers' pipelines expect
    except Exception as exc:  # cv2 raises on some undecodable files
        raise UserError(f'cannot read image {args.img}: {first_line(exc)}') from exc
    if image is None:
        raise UserError(f'cannot read image {args.img} (not an image file or corrupt)')
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
