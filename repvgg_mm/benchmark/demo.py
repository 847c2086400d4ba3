"""The end-to-end demos: a model trained, fused, tested and timed against its training-time twin.

:func:`run_demo` (``tools/demo.py``, ``make demo``): the toy dense dataset, PSPNet + RepVGG-A0
trained on it with ``tools/train.py``, fused with ``tools/convert_whole_model.py``, both scored by
mmseg's own ``tools/test.py`` and timed side by side. :func:`run_toy_classification`
(``tools/misc/run_toy_classification.py``): the same for a RepVGG-A0 classifier on the toy
classification data. Every step runs as a subprocess whose whole output goes to a log file; the
terminal (``echo``) gets the command, its progress and its results (everything with ``verbose``).
"""
import glob
import json
import logging
import os
import os.path as osp
import re
import shlex
import subprocess
import sys
import time
from typing import Callable, Dict, List, Optional

import mmcv
import torch
from mmengine.logging import MMLogger

from repvgg_mm.apis import init_model
from repvgg_mm.datasets.toy_classification import make_toy_classification
from repvgg_mm.datasets.toy_dense import make_toy_dense
from repvgg_mm.engine.runner import quiet_console
from repvgg_mm.utils.console import WarningRouter
from repvgg_mm.utils.errors import UserError
from repvgg_mm.utils.timing import time_interleaved
from repvgg_mm.visualization import prediction_grid

Echo = Callable[[str], None]
DEMO_CONFIG = 'configs/toy/pspnet_repvgg_a0_toy.py'
TOY_CLS_CONFIG = 'configs/toy/repvgg_a0_toy_cls.py'
DEFAULT_DATA_ROOT = 'data/toy_dense'

_PROGRESS = re.compile(r'(Iter|Epoch)\((train|val|test)\) +(?:\[(\d+)\])?\[ *(\d+)/(\d+)\]\s+(.*)')
_METRIC = re.compile(r'([\w/.]+): (-?\d+(?:\.\d+)?(?:e-?\d+)?)(?=\s|$)')
_NOT_RESULTS = ('lr', 'eta', 'time', 'data_time', 'memory')
# the lines of tools/convert_whole_model.py's summary the demo shows
_CONVERSION_LINES = ('  blocks fused', '  params', '  max rel diff')


def progress_line(line: str) -> Optional[str]:
    """mmengine's log line as one short progress line, or None: training every fifth of the run
    (iteration-based loops), validation and test results."""
    match = _PROGRESS.search(line)
    if match is None:
        return None
    kind, phase, epoch, current, total, rest = match.groups()
    values = [(k, v) for k, v in _METRIC.findall(rest) if k not in _NOT_RESULTS]
    if phase == 'train':
        step = max(int(total) // 5, 1)
        if kind == 'Epoch' or (int(current) % step and current != total):
            return None
        return f'  train {current}/{total}  ' + '  '.join(f'{k} {v}' for k, v in values
                                                       if k == 'loss')
    if not values:
        return None  # a progress line of the loop, before its metrics
    where = f' epoch {epoch}' if epoch else ''
    return f'  {phase}{where}  ' + '  '.join(f'{k} {float(v):.2f}' for k, v in values)


def conversion_line(line: str) -> Optional[str]:
    return line.rstrip() if line.startswith(_CONVERSION_LINES) else None


def _shown(arg: str) -> str:
    """A command argument as the user would type it: paths under the current folder relative."""
    if osp.isabs(arg) and arg.startswith(os.getcwd() + os.sep):
        arg = osp.relpath(arg)
    return shlex.quote(arg)


def run_step(title: str, cmd: List[str], log_path: str, echo: Echo, verbose: bool = False,
             show: Callable[[str], Optional[str]] = progress_line) -> None:
    """Run ``cmd``: its whole output into ``log_path``; on the terminal the command and the lines
    ``show`` makes of its output (every line with ``verbose``). A failure raises, naming the log."""
    echo(f'\n=== {title}\n$ {" ".join(_shown(c) for c in cmd)}')
    os.makedirs(osp.dirname(log_path), exist_ok=True)
    start = time.perf_counter()
    with open(log_path, 'w') as log:
        process = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                   text=True, bufsize=1)
        for line in process.stdout:
            log.write(line)
            shown = line.rstrip('\n') if verbose else show(line)
            if shown is not None:
                echo(shown)
        process.wait()
    if process.returncode != 0:
        with open(log_path) as log:
            tail = [line.rstrip() for line in log][-5:]
        echo('\n'.join(tail))
        raise UserError(f'step "{title}" failed (exit {process.returncode}); log: {log_path}')
    echo(f'=== {title}: done in {time.perf_counter() - start:.0f} s')


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


def data_options(data_root: str, splits=('train', 'val', 'test')) -> list:
    """``--cfg-options`` that point the toy config's dataloaders at ``data_root``."""
    if osp.normpath(data_root) == osp.normpath(DEFAULT_DATA_ROOT):
        return []
    return ['--cfg-options'] + [f'{p}_dataloader.dataset.data_root={data_root}' for p in splits]


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


def train_convert_test(root: str, work_dir: str, data_opts: list, echo: Echo,
                       verbose: bool) -> dict:
    """Steps 2-4; returns the paths of both models and their mmseg test metrics."""
    python, config, logs = sys.executable, osp.join(root, DEMO_CONFIG), osp.join(work_dir, 'logs')
    train_dir = osp.join(work_dir, 'train')
    run_step('2/5 train PSPNet + RepVGG-A0 (training-time blocks)',
             [python, osp.join(root, 'tools', 'train.py'), config, '--work-dir', train_dir]
             + data_opts + (['--verbose'] if verbose else []), osp.join(logs, 'train.log'),
             echo, verbose)
    checkpoint = latest_checkpoint(train_dir)
    fused_dir = osp.join(work_dir, 'fused')
    run_step('3/5 fuse every RepVGG block of the trained model',
             [python, osp.join(root, 'tools', 'convert_whole_model.py'), config, checkpoint,
              fused_dir, '--force'], osp.join(logs, 'convert.log'), echo, verbose,
             conversion_line)
    models = {'training-time': (config, checkpoint),
              'fused': (single_file(fused_dir, '*.py'), single_file(fused_dir, '*.pth'))}
    metrics = {}
    for name, (model_config, weights) in models.items():
        test_dir = osp.join(work_dir, f'test_{name}')
        # the fused model's predictions are drawn by mmseg's SegLocalVisualizer
        show = ['--show-dir', osp.join(work_dir, 'predictions')] if name == 'fused' else []
        run_step(f"4/5 test the {name} checkpoint with mmseg's tools/test.py",
                 [python, mmseg_test_script(), model_config, weights, '--work-dir', test_dir]
                 + show + data_opts, osp.join(logs, f'test_{name}.log'), echo, verbose)
        metrics[name] = test_metrics(test_dir)
    return dict(models=models, metrics=metrics)


def report_lines(metrics: dict, models: dict, speed: dict, inputs, repeats: int) -> List[str]:
    """mIoU, speed and size of both models side by side."""
    reference = speed['training-time']['output']
    difference = (speed['fused']['output'] - reference).abs().max().item()
    params = {name: sum(p.numel() for p in m.parameters()) / 1e6 for name, m in models.items()}
    lines = [f'\n{"model":<15}{"mIoU":>8}{"mAcc":>8}{"aAcc":>8}{"img/s":>9}{"params(M)":>11}']
    for name in models:
        m = metrics[name]
        lines.append(f'{name:<15}{m["mIoU"]:>8.2f}{m["mAcc"]:>8.2f}{m["aAcc"]:>8.2f}'
                     f'{speed[name]["img_per_s"]:>9.1f}{params[name]:>11.2f}')
    speed_up = speed['fused']['img_per_s'] / speed['training-time']['img_per_s']
    lines.append(f'fused speed-up {speed_up:.2f}x (batch {"x".join(map(str, inputs.shape))}, '
                 f'{torch.get_num_threads()} threads, median of {repeats}, timing spread '
                 f'{max(v["spread"] for v in speed.values()):.0%}); max logit difference '
                 f'{difference:.2e} (relative {difference / reference.abs().max().item():.1e})')
    return lines


def _speed_step(runs: dict, data_root: str, batch: int, repeats: int, log_path: str,
                verbose: bool) -> List[str]:
    """Step 5 in this process; its log and warnings go to ``log_path`` (and the terminal if
    verbose; warnings and errors always)."""
    logger = MMLogger.get_instance(f'repvgg_mm_demo_{time.time_ns()}', log_file=log_path,
                                   log_level='INFO')
    if not verbose:
        quiet_console(logger)
        for handler in logger.handlers:
            if not isinstance(handler, logging.FileHandler):
                handler.setLevel(logging.WARNING)
    with WarningRouter(verbose) as router:
        router.attach(lambda text: logger.warning(text, extra=dict(console=False)))
        models = {name: init_model(*paths) for name, paths in runs['models'].items()}
        inputs = validation_batch(models['fused'], data_root, batch)
        speed = compare_speed(models, inputs, repeats)
    return report_lines(runs['metrics'], models, speed, inputs, repeats)


def run_demo(root: str, work_dir: str, data_root: str = DEFAULT_DATA_ROOT, speed_batch: int = 8,
             speed_repeats: int = 7, *, echo: Echo, verbose: bool = False) -> Dict[str, dict]:
    """The main demo (steps 1-5, see the module); ``root``: the repository. Returns the test
    metrics of both models; refuses a fused model that scores differently."""
    work_dir, start = osp.abspath(work_dir), time.perf_counter()
    echo('=== 1/5 toy dense dataset')
    info = make_toy_dense(data_root)
    echo(f'{data_root}: {info["num_train"]} train / {info["num_val"]} val images '
         f'({"generated" if info["created"] else "already there"})')
    runs = train_convert_test(root, work_dir, data_options(data_root), echo, verbose)
    echo('\n=== 5/5 speed of both models on the same validation batch')
    for line in _speed_step(runs, osp.abspath(data_root), speed_batch, speed_repeats,
                            osp.join(work_dir, 'logs', 'speed.log'), verbose):
        echo(line)
    predictions = osp.join(work_dir, 'predictions')
    pngs = sorted(glob.glob(osp.join(predictions, '**', '*.png'), recursive=True))
    if not pngs:
        raise UserError(f'mmseg drew no prediction images into {predictions}')
    grid = osp.join(work_dir, 'predictions.png')
    prediction_grid(pngs[:8], grid)
    deploy_config, deploy_checkpoint = runs['models']['fused']
    echo(f'predictions (ground truth | prediction): {_shown(grid)} (all {len(pngs)} in '
         f'{_shown(predictions)})\ndeploy config:     {_shown(deploy_config)}\n'
         f'deploy checkpoint: {_shown(deploy_checkpoint)}\nlogs: '
         f'{_shown(osp.join(work_dir, "logs"))}\ndemo finished in '
         f'{time.perf_counter() - start:.0f} s')
    miou = [runs['metrics'][name]['mIoU'] for name in ('training-time', 'fused')]
    if abs(miou[0] - miou[1]) > 0.01:
        raise UserError(f'the fused model scores {miou[1]} mIoU, the training-time model {miou[0]}')
    return runs['metrics']


def run_toy_classification(root: str, data: str, work_dir: str, *, echo: Echo,
                           verbose: bool = False) -> Dict[str, float]:
    """The classification demo: toy data -> train RepVGG-A0 -> test -> test fused (``root``: the
    repository). Returns the top-1 of both; refuses a fused model that scores differently."""
    config, python = osp.join(root, TOY_CLS_CONFIG), sys.executable
    tools, logs = osp.join(root, 'tools'), osp.join(work_dir, 'logs')
    options = ['--cfg-options'] + [f'{loader}.dataset.data_root={data}' for loader in (
        'train_dataloader', 'val_dataloader', 'test_dataloader')]
    info = make_toy_classification(data)
    echo(f'{data}: {len(info["classes"])} classes '
         f'({"generated" if info["created"] else "already there"})')
    start = time.perf_counter()
    run_step('train', [python, osp.join(tools, 'train.py'), config, '--work-dir', work_dir,
                       *options], osp.join(logs, 'train.log'), echo, verbose)
    train_s = time.perf_counter() - start
    checkpoint = latest_checkpoint(work_dir)
    results = {}
    for name, extra in (('training-time', []), ('fused', ['--fuse'])):
        out = osp.join(work_dir, f'test_{name}.json')
        run_step(f'test {name}', [python, osp.join(tools, 'test.py'), config, checkpoint,
                                  '--work-dir', work_dir, '--out', out, '--out-item', 'metrics',
                                  *extra, *options], osp.join(logs, f'test_{name}.log'), echo,
                 verbose)
        with open(out) as f:
            results[name] = json.load(f)['accuracy/top1']
    echo(f'\nRepVGG-A0 on the toy data ({checkpoint}, trained in {train_s:.0f} s; chance '
         f'{100 / len(info["classes"]):.0f}%)\n{"model":<15}{"top-1 (%)":>10}')
    for name, top1 in results.items():
        echo(f'{name:<15}{top1:>10.2f}')
    if results['fused'] != results['training-time']:
        raise UserError('the fused model scores differently from the training-time model')
    return results
