"""The tools of ``tools/`` (and ``demo/image_demo.py``) loaded as their scripts run: a tool's
namespace (``runpy``), its ``main``, and the list of every tool."""
import os
import runpy
import subprocess
import sys
from pathlib import Path
from typing import Callable, List

REPO = Path(__file__).resolve().parents[2]
TOOLS = REPO / 'tools'
# the ImageNet A0 config pair the train/test tool tests run on a tiny folder
A0 = str(REPO / 'configs' / 'imagenet' / 'repvgg_a0.py')
A0_DEPLOY = str(REPO / 'configs' / 'imagenet' / 'repvgg_a0_deploy.py')


def tool_namespace(relative: str) -> dict:
    """The globals of ``tools/<relative>`` run as a module (not as ``__main__``)."""
    return runpy.run_path(str(TOOLS / relative))


def tool_main(relative: str) -> Callable:
    """``main(argv)`` of ``tools/<relative>``."""
    return tool_namespace(relative)['main']


def every_tool() -> List[str]:
    """Every Python tool, relative to ``tools/`` (``../demo/image_demo.py`` included)."""
    return sorted(str(p.relative_to(TOOLS)) for p in TOOLS.rglob('*.py')) + [
        '../demo/image_demo.py']


def run_tool_process(tool, *args):
    """``python tools/<tool> ARGS`` in a subprocess (one thread), from the repository root."""
    # one thread: tiny runs gain nothing from more, and a shared CPU stalls oversubscribed OpenMP
    env = dict(os.environ, OMP_NUM_THREADS='1')
    return subprocess.run([sys.executable, str(TOOLS / tool), *map(str, args)],
                          cwd=REPO, capture_output=True, text=True, timeout=600, env=env)


def small_data_options(root):
    """--cfg-options that point the A0 ImageNet config at ``root`` with small, fast inputs."""
    options = [f'{loader}.dataset.data_root={root}' for loader in ('train_dataloader',
                                                                   'val_dataloader',
                                                                   'test_dataloader')]
    options += ['train_dataloader.dataset.transforms.0.size=32',
                'val_dataloader.dataset.transforms.0.size=36',
                'val_dataloader.dataset.transforms.1.size=32',
                'test_dataloader.dataset.transforms.0.size=36',
                'test_dataloader.dataset.transforms.1.size=32',
                'train_dataloader.batch_size=8', 'val_dataloader.batch_size=10',
                'test_dataloader.batch_size=10', 'train_dataloader.num_workers=0',
                'val_dataloader.num_workers=0', 'test_dataloader.num_workers=0',
                'optim_wrapper.optimizer.lr=0.01',  # batch 8: keep the short runs stable
                'randomness.seed=0', 'default_hooks.logger.interval=1']
    return options


def assert_one_line_error(result, *fragments):
    assert result.returncode == 2, result.stderr[-2000:]
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith('error: '), result.stderr[-2000:]
    for fragment in fragments:
        assert fragment in lines[0]
