"""End-to-end demo: train a RepVGG segmentor, fuse the whole model, show that only speed changed.

    python tools/demo.py [--work-dir work_dirs/demo] [--data-root data/toy_dense]

1. generates the toy dense dataset (tools/dataset_converters/make_toy_dense.py) unless it is there;
2. trains PSPNet + RepVGG-A0 on it (tools/train.py configs/toy/pspnet_repvgg_a0_toy.py);
3. fuses every RepVGG block (tools/convert_whole_model.py -> deploy config + checkpoint);
4. tests the training checkpoint and the fused one with mmseg's own tools/test.py, drawing the
   fused model's predictions with mmseg's SegLocalVisualizer into WORK_DIR/predictions/;
5. times both models on the same batch of validation images and prints mIoU and speed side by side.

Each step prints the command it runs, so any of them can be repeated by hand.
"""
import glob
import json
import os
import os.path as osp
import shlex
import subprocess
import sys
import time

import mmcv
import torch

from repvgg_mm.apis import init_model
from repvgg_mm.datasets.toy_dense import make_toy_dense
from repvgg_mm.utils.argtypes import positive_int
from repvgg_mm.utils.cli import run_tool, tool_parser
from repvgg_mm.utils.errors import UserError
from repvgg_mm.utils.timing import time_interleaved
from repvgg_mm.visualization import prediction_grid

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
CONFIG = osp.join(ROOT, 'configs', 'toy', 'pspnet_repvgg_a0_toy.py')
DEFAULT_DATA_ROOT = 'data/toy_dense'


def parse_args(argv=None):
    parser = tool_parser(__doc__.splitlines()[0])
    parser.add_argument('--work-dir', default='work_dirs/demo', help='where every output goes')
    parser.add_argument('--data-root', default=DEFAULT_DATA_ROOT,
                        help='toy dataset folder (generated if absent)')
    parser.add_argument('--speed-batch', type=positive_int, default=8,
                        help='images per timed forward')
    parser.add_argument('--speed-repeats', type=positive_int, default=7,
                        help='timed rounds (median)')
    return parser.parse_args(argv)


def data_options(data_root: str) -> list:
    """``--cfg-options`` that point the toy config's dataloaders at ``data_root``."""
    if osp.normpath(data_root) == osp.normpath(DEFAULT_DATA_ROOT):
        return []
    return ['--cfg-options'] + [f'{p}_dataloader.dataset.data_root={data_root}'
                                for p in ('train', 'val', 'test')]


def run_step(title: str, cmd: list, log_path: str) -> None:
    """Run ``cmd`` with its output on the console and in ``log_path``; raise on failure."""
    print(f'\n=== {title}\n$ {" ".join(shlex.quote(c) for c in cmd)}', flush=True)
    os.makedirs(osp.dirname(log_path), exist_ok=True)
    start = time.perf_counter()
    with open(log_path, 'w') as log:
        process = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                   bufsize=1)
        for line in process.stdout:
            sys.stdout.write(line)
            log.write(line)
        process.wait()
    if process.returncode != 0:
        raise UserError(f'step "{title}" failed (exit {process.returncode}); log: {log_path}')
    print(f'=== {title}: done in {time.perf_counter() - start:.0f} s', flush=True)


def latest_checkpoint(work_dir: str) -> str:
    """The checkpoint Runner recorded in ``work_dir/last_checkpoint``."""
    with open(osp.join(work_dir, 'last_checkpoint')) as f:
        return f.read().strip()


def single_file(folder: str, pattern: str) -> str:
    found = glob.glob(osp.join(folder, pattern))
    if len(found) != 1:
        raise UserError(f'expected one {pattern} in {folder}, found {len(found)}')
    return found[0]


def test_metrics(work_dir: str) -> dict:
    """The metrics mmengine's LoggerHook wrote for the newest test run in ``work_dir``."""
    runs = sorted(glob.glob(osp.join(work_dir, '*', '*.json')))
    if not runs:
        raise UserError(f'no test metrics (*/*.json) in {work_dir}')
    with open(runs[-1]) as f:
        return json.loads(f.read().strip().splitlines()[-1])


def mmseg_test_script() -> str:
    import mmseg
    return osp.join(osp.dirname(mmseg.__file__), '.mim', 'tools', 'test.py')


def validation_batch(model, data_root: str, count: int):
    """``count`` validation images, normalised by the model's own data preprocessor."""
    paths = sorted(glob.glob(osp.join(data_root, 'img_dir', 'val', '*.png')))[:count]
    images = [torch.from_numpy(mmcv.imread(p)).permute(2, 0, 1).contiguous() for p in paths]
    return model.data_preprocessor(dict(inputs=images), False)['inputs']


def compare_speed(models: dict, inputs, repeats: int) -> dict:
    """Images per second (median of ``repeats`` interleaved rounds) and outputs of each model."""
    def forward(model):
        def run():
            with torch.inference_mode():
                return model(inputs, mode='tensor')
        return run

    workloads = {name: forward(model) for name, model in models.items()}
    timings = time_interleaved(workloads, repeats=repeats, warmup=1)
    return {name: dict(img_per_s=inputs.shape[0] / timings[name].median,
                       spread=timings[name].spread, output=workloads[name]())
            for name in models}


def train_convert_test(python: str, work_dir: str, data_opts: list) -> dict:
    """Steps 2-4; returns the paths of both models and their mmseg test metrics."""
    train_dir = osp.join(work_dir, 'train')
    run_step('2/5 train PSPNet + RepVGG-A0 (training-time blocks)',
             [python, osp.join(ROOT, 'tools', 'train.py'), CONFIG, '--work-dir', train_dir]
             + data_opts, osp.join(work_dir, 'logs', 'train.log'))
    checkpoint = latest_checkpoint(train_dir)

    fused_dir = osp.join(work_dir, 'fused')
    run_step('3/5 fuse every RepVGG block of the trained model',
             [python, osp.join(ROOT, 'tools', 'convert_whole_model.py'), CONFIG, checkpoint,
              fused_dir, '--force'], osp.join(work_dir, 'logs', 'convert.log'))
    models = {'training-time': (CONFIG, checkpoint),
              'fused': (single_file(fused_dir, '*.py'), single_file(fused_dir, '*.pth'))}

    test_script = mmseg_test_script()
    metrics = {}
    for name, (config, weights) in models.items():
        test_dir = osp.join(work_dir, f'test_{name}')
        # the fused model's predictions are drawn by mmseg's SegLocalVisualizer
        show = ['--show-dir', osp.join(work_dir, 'predictions')] if name == 'fused' else []
        run_step(f"4/5 test the {name} checkpoint with mmseg's tools/test.py",
                 [python, test_script, config, weights, '--work-dir', test_dir] + show + data_opts,
                 osp.join(work_dir, 'logs', f'test_{name}.log'))
        metrics[name] = test_metrics(test_dir)
    return dict(models=models, metrics=metrics)


def report(metrics: dict, models: dict, speed: dict, inputs, repeats: int) -> None:
    """mIoU, speed and size of both models side by side."""
    reference = speed['training-time']['output']
    difference = (speed['fused']['output'] - reference).abs().max().item()
    params = {name: sum(p.numel() for p in m.parameters()) / 1e6 for name, m in models.items()}
    print(f'\n{"model":<15}{"mIoU":>8}{"mAcc":>8}{"aAcc":>8}{"img/s":>9}{"params(M)":>11}')
    for name in models:
        m = metrics[name]
        print(f'{name:<15}{m["mIoU"]:>8.2f}{m["mAcc"]:>8.2f}{m["aAcc"]:>8.2f}'
              f'{speed[name]["img_per_s"]:>9.1f}{params[name]:>11.2f}')
    speed_up = speed['fused']['img_per_s'] / speed['training-time']['img_per_s']
    print(f'fused speed-up {speed_up:.2f}x '
          f'(batch {"x".join(map(str, inputs.shape))}, {torch.get_num_threads()} threads, median '
          f'of {repeats}, timing spread {max(v["spread"] for v in speed.values()):.0%}); '
          f'max logit difference {difference:.2e} '
          f'(relative {difference / reference.abs().max().item():.1e})')


def main(argv=None) -> int:
    args = parse_args(argv)
    work_dir = osp.abspath(args.work_dir)
    start = time.perf_counter()

    print('=== 1/5 toy dense dataset', flush=True)
    info = make_toy_dense(args.data_root)
    print(f'\n{args.data_root}: {info["num_train"]} train / {info["num_val"]} val images '
          f'({"generated" if info["created"] else "already there"})')
    runs = train_convert_test(sys.executable, work_dir, data_options(args.data_root))

    print('\n=== 5/5 speed of both models on the same validation batch', flush=True)
    models = {name: init_model(*paths) for name, paths in runs['models'].items()}
    inputs = validation_batch(models['fused'], osp.abspath(args.data_root), args.speed_batch)
    speed = compare_speed(models, inputs, args.speed_repeats)
    report(runs['metrics'], models, speed, inputs, args.speed_repeats)

    predictions = osp.join(work_dir, 'predictions')
    pngs = sorted(glob.glob(osp.join(predictions, '**', '*.png'), recursive=True))
    if not pngs:
        raise UserError(f'mmseg drew no prediction images into {predictions}')
    grid = osp.join(work_dir, 'predictions.png')
    prediction_grid(pngs[:8], grid)
    print(f'{len(pngs)} drawings (ground truth | prediction, mmseg SegLocalVisualizer) in '
          f'{predictions}; the first 8 tiled in {grid}')
    deploy_config, deploy_checkpoint = runs['models']['fused']
    print(f'deploy config {deploy_config}\ndeploy checkpoint {deploy_checkpoint}')
    print(f'demo finished in {time.perf_counter() - start:.0f} s')
    miou = [runs['metrics'][name]['mIoU'] for name in ('training-time', 'fused')]
    if abs(miou[0] - miou[1]) > 0.01:
        raise UserError(f'the fused model scores {miou[1]} mIoU, the training-time model {miou[0]}')
    return 0


if __name__ == '__main__':
    sys.exit(run_tool(main))
