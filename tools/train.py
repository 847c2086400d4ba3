"""Train from a config: classification (repvgg_mm), segmentation (mmseg) or detection (mmdet).

    python tools/train.py configs/imagenet/repvgg_a0.py [--work-dir DIR] [--resume [CKPT]] [--amp]
        [--auto-scale-lr] [--cfg-options KEY=VALUE ...] [--launcher {none,pytorch,slurm,mpi}]

The codebase follows the config's ``default_scope``; mmseg/mmdet configs train as with those
codebases' own tools/train.py. Distributed: ``torchrun --nproc_per_node=8 tools/train.py CONFIG
--launcher pytorch``.
"""
import os
import sys

from repvgg_mm.engine import train
from repvgg_mm.utils.argtypes import input_path, non_negative_int
from repvgg_mm.utils.cli import add_cfg_options, add_verbose, run_tool, tool_parser


def parse_args(argv=None):
    parser = tool_parser('Train a classifier, segmentor or detector')
    parser.add_argument('config', type=input_path, help='train config file path')
    parser.add_argument('--work-dir', help='the dir to save logs and models')
    parser.add_argument(
        '--resume', nargs='?', type=str, const='auto',
        help='resume from this checkpoint, or (no value) from the latest one in the work dir')
    parser.add_argument('--amp', action='store_true', help='automatic mixed precision (GPU)')
    parser.add_argument('--auto-scale-lr', action='store_true',
                        help='scale the lr by the real batch size / auto_scale_lr.base_batch_size')
    add_cfg_options(parser, 'train_dataloader.dataset.data_root=/data/imagenet '
                            'train_cfg.max_epochs=10')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'], default='none',
                        help='job launcher')
    # torch.distributed.launch passes --local-rank (torch >= 2.0) or --local_rank
    parser.add_argument('--local_rank', '--local-rank', type=non_negative_int, default=0)
    add_verbose(parser)
    args = parser.parse_args(argv)
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args


def main(argv=None):
    args = parse_args(argv)
    train(args.config, work_dir=args.work_dir, resume=args.resume, amp=args.amp,
          auto_scale_lr=args.auto_scale_lr, cfg_options=args.cfg_options, launcher=args.launcher,
          verbose=args.verbose)


if __name__ == '__main__':
    sys.exit(run_tool(main))
