"""``compile=`` in a config: our Runner compiles the backbone and neck, with inductor's layout
optimization off on the CPU (oneDNN corrupts the heap in the weight gradient of the stem's
channels-last stride-2 1x1 conv: repvgg_mm/engine/compile.py)."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from repvgg_mm.engine import train
from repvgg_mm.engine.compile import LAYOUT_OPTION, compile_kwargs
from repvgg_mm.utils.errors import UserError

ROOT = Path(__file__).resolve().parents[2]
TOY_CONFIG = ROOT / 'configs' / 'toy' / 'repvgg_a0_toy_cls.py'
OFF = {LAYOUT_OPTION: False}


@pytest.mark.parametrize('value', [None, False])
def test_no_compile(value):
    assert compile_kwargs(value, 'cpu') is None


@pytest.mark.parametrize('value, expected', [
    (True, dict(options=OFF)),
    (dict(backend='inductor', dynamic=False), dict(backend='inductor', dynamic=False,
                                                   options=OFF)),
    (dict(options={'max_autotune': True}), dict(options=dict(max_autotune=True, **OFF))),
    (dict(mode='max-autotune-no-cudagraphs'),
     dict(options=dict(max_autotune=True, coordinate_descent_tuning=True, **OFF))),
    (dict(mode='default'), dict(options=OFF)),
])
def test_inductor_on_the_cpu_keeps_torch_default_conv_layout(value, expected):
    assert compile_kwargs(value, 'cpu') == expected


@pytest.mark.parametrize('value, device', [
    (dict(backend='aot_eager'), 'cpu'),  # no inductor: eager layouts
    (dict(mode='max-autotune'), 'cuda'),  # not oneDNN
])
def test_other_backends_and_devices_are_passed_as_given(value, device):
    assert compile_kwargs(value, device) == value


@pytest.mark.parametrize('value, message', [
    ('yes', 'compile must be True, False or a dict'),
    (1, 'compile must be True, False or a dict'),
    (dict(mode='default', options={}), 'give mode or options, not both'),
    (dict(options=[1]), 'compile.options must be a dict'),
    (dict(mode='fastest'), 'compile.mode: Unrecognized mode=fastest'),
    (dict(options={LAYOUT_OPTION: True}), 'uxlfoundation/oneDNN#6035'),
])
def test_bad_compile_values_are_one_line(value, message):
    with pytest.raises(UserError, match=message.replace('.', r'\.').replace('(', r'\(')):
        compile_kwargs(value, 'cpu')


def _options(toy_root):
    return {**{f'{loader}.dataset.data_root': str(toy_root)
               for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader')},
            'train_dataloader.num_workers': 0, 'val_dataloader.num_workers': 0}


@pytest.mark.parametrize('value, message', [
    (dict(backend='banana'), "compile=.*'backend': 'banana'.*InvalidBackend"),
    (dict(fullgraph=True, banana=1), "compile=.*TypeError: .*banana"),
])
def test_runner_refuses_what_torch_compile_refuses_before_training(toy_root, tmp_path, value,
                                                                   message):
    with pytest.raises(UserError, match=message):
        train(str(TOY_CONFIG), work_dir=str(tmp_path / 'wd'),
              cfg_options=dict(_options(toy_root), compile=value))


@pytest.mark.slow  # a subprocess: before the fix oneDNN aborts it (SIGSEGV/SIGABRT)
def test_compile_true_trains_like_eager_on_the_cpu(toy_root, tmp_path):
    """One epoch (2 iterations, batch 10, 128x128) of the toy config on the smallest RepVGG,
    eager then ``compile=True``: the compiled run finishes and ends with the same weights."""
    env = dict(os.environ, OMP_NUM_THREADS='1')
    run = subprocess.run(
        [sys.executable, str(Path(__file__).with_name('train_compiled.py')), str(TOY_CONFIG),
         str(toy_root), str(tmp_path / 'wd'), '128'],
        cwd=ROOT, capture_output=True, text=True, timeout=600, env=env)
    assert run.returncode == 0, (run.returncode, run.stderr[-3000:])
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert result['backbone_compiled'] == [False, True]
    assert result['max_rel_error'] < 1e-4, result
