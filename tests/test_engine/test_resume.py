"""Runs that resume exactly and lose nothing: random states in every checkpoint, atomic checkpoint
files, one training run per work dir, nothing left by a run that failed before its first
checkpoint, and ``--resume`` that refuses to start from scratch."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from mmengine.hooks import Hook
from mmengine.registry import HOOKS

from repvgg_mm.checkpoint import safe_load
from repvgg_mm.datasets.toy_dense import make_toy_dense
from repvgg_mm.engine import test as run_test
from repvgg_mm.engine import train
from repvgg_mm.engine.work_dir import LOCK_NAME, WorkDirLock
from repvgg_mm.testing import TINY_ARCH
from repvgg_mm.utils.errors import UserError

ROOT = Path(__file__).resolve().parents[2]
SEG_CONFIG = str(ROOT / 'configs' / 'toy' / 'pspnet_repvgg_a0_toy.py')


@HOOKS.register_module(force=True)
class StopAfterIterHook(Hook):
    """Interrupt training (an exception) once ``iteration`` iterations are done."""

    priority = 'LOWEST'  # after the checkpoint of that iteration

    def __init__(self, iteration: int):
        self.iteration = iteration

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        if runner.iter + 1 == self.iteration:
            raise KeyboardInterrupt('stopped by the test')


@pytest.fixture(scope='module')
def seg_options(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('dense') / 'data')
    make_toy_dense(root, num_train=6, num_val=2, size=48, progress=False)
    options = {f'{p}_dataloader.dataset.data_root': root for p in ('train', 'val', 'test')}
    options.update({
        'model.backbone.arch': dict(TINY_ARCH, _delete_=True),
        'model.data_preprocessor.size': (32, 32),
        'train_dataloader.dataset.pipeline.2.crop_size': (32, 32), 'train_dataloader.batch_size': 2,
        'train_cfg.max_iters': 4, 'train_cfg.val_interval': 2,
        'default_hooks.checkpoint.interval': 2, 'default_hooks.checkpoint.max_keep_ckpts': 3,
        'default_hooks.logger.interval': 1,
        'model.decode_head.in_channels': 256, 'model.auxiliary_head.in_channels': 64})
    return options


def test_interrupted_run_resumes_bit_identical_with_dropout_and_augmentation(seg_options,
                                                                             tmp_path):
    """The toy PSPNet draws random crops, flips and dropout (0.1): after an interruption at
    iteration 3 and ``--resume`` from iteration 2 the weights equal an uninterrupted run's."""
    train(SEG_CONFIG, work_dir=str(tmp_path / 'reference'), cfg_options=dict(seg_options))
    stop = dict(seg_options, custom_hooks=[dict(type='StopAfterIterHook', iteration=3)])
    with pytest.raises(KeyboardInterrupt):
        train(SEG_CONFIG, work_dir=str(tmp_path / 'resumed'), cfg_options=stop)
    assert (tmp_path / 'resumed' / 'last_checkpoint').read_text().endswith('iter_2.pth')
    train(SEG_CONFIG, work_dir=str(tmp_path / 'resumed'), resume='auto',
          cfg_options=dict(seg_options))
    expected = safe_load(tmp_path / 'reference' / 'iter_4.pth')
    got = safe_load(tmp_path / 'resumed' / 'iter_4.pth')
    assert len(got['meta']['random_states']) == 1
    different = [k for k, v in expected['state_dict'].items()
                 if not torch.equal(v, got['state_dict'][k])]
    assert not different, f'{len(different)} tensors differ, e.g. {different[:3]}'
    assert not (tmp_path / 'resumed' / LOCK_NAME).exists()


def test_resume_with_nothing_to_resume_stops(seg_options, tmp_path):
    for work_dir in (tmp_path / 'empty', tmp_path / 'mistyped'):
        (tmp_path / 'empty').mkdir(exist_ok=True)
        with pytest.raises(UserError, match=f'nothing to resume in {work_dir}'):
            train(SEG_CONFIG, work_dir=str(work_dir), resume='auto',
                  cfg_options=dict(seg_options))
    assert os.listdir(tmp_path) == ['empty'] and not os.listdir(tmp_path / 'empty')


def test_failed_runs_leave_nothing(seg_options, tmp_path):
    bad = dict(seg_options, **{'model.type': 'NoSuchSegmentor'})
    with pytest.raises(UserError, match='cannot build the runner'):
        train(SEG_CONFIG, work_dir=str(tmp_path / 'train'), cfg_options=bad)
    with pytest.raises(UserError):
        run_test(SEG_CONFIG, str(tmp_path / 'missing.pth'), work_dir=str(tmp_path / 'test'),
                 cfg_options=dict(seg_options))
    (tmp_path / 'existing').mkdir()
    (tmp_path / 'existing' / 'notes.txt').write_text('mine')
    with pytest.raises(UserError):
        train(SEG_CONFIG, work_dir=str(tmp_path / 'existing'), cfg_options=bad)
    assert sorted(os.listdir(tmp_path)) == ['existing']
    assert os.listdir(tmp_path / 'existing') == ['notes.txt']


def test_a_second_training_run_in_a_live_work_dir_is_refused(seg_options, tmp_path):
    work_dir = tmp_path / 'wd'
    work_dir.mkdir()
    holder = WorkDirLock(str(work_dir))
    holder.acquire()
    try:
        with pytest.raises(UserError, match=f'in use by a live training run \\(PID {os.getpid()}'):
            train(SEG_CONFIG, work_dir=str(work_dir), cfg_options=dict(seg_options))
    finally:
        holder.release()
    assert os.listdir(work_dir) == []
    # a lock left by a killed process (the file, no holder) is taken over
    (work_dir / LOCK_NAME).write_text('{"pid": 999999}')
    stale = WorkDirLock(str(work_dir))
    stale.acquire()
    stale.release()
    assert os.listdir(work_dir) == []


def test_workers_stop_when_the_launcher_is_killed(tmp_path):
    """tools/dist_train.sh workers: SIGKILL of the torchrun launcher ends them too."""
    pid_file = tmp_path / 'worker.pid'
    worker = ('import os, sys, time\n'
              'from repvgg_mm.engine.distributed import stop_with_launcher\n'
              'stop_with_launcher()\n'
              f'open({str(pid_file)!r}, "w").write(str(os.getpid()))\n'
              'time.sleep(60)\n')
    launcher = subprocess.Popen([sys.executable, '-c',
                                 'import subprocess, sys; subprocess.call(sys.argv[1:])',
                                 sys.executable, '-c', worker])
    deadline = time.time() + 60
    while not pid_file.exists() or not pid_file.read_text():
        assert time.time() < deadline and launcher.poll() is None
        time.sleep(0.1)
    worker_pid = int(pid_file.read_text())
    os.kill(launcher.pid, signal.SIGKILL)
    launcher.wait()
    deadline = time.time() + 10
    while alive(worker_pid) and time.time() < deadline:
        time.sleep(0.1)
    assert not alive(worker_pid)


def alive(pid: int) -> bool:
    """Running (a zombie nobody reaps yet is dead)."""
    try:
        with open(f'/proc/{pid}/stat') as handle:
            return handle.read().rsplit(')', 1)[1].split()[0] != 'Z'
    except FileNotFoundError:
        return False


def _file_size_limit(limit: int):
    def apply():  # in the child: a full disk for files above `limit` bytes (EFBIG, not SIGXFSZ)
        import resource
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return apply


@pytest.mark.slow
def test_a_full_disk_leaves_no_truncated_checkpoint(seg_options, tmp_path):
    """tools/train.py with a 2 MB file-size limit: logs fit, the first checkpoint does not. One
    line naming the checkpoint, no partial .pth, no temporary file, no last_checkpoint (the run
    failed before its first checkpoint: its work dir is gone); a resume after it says there is
    nothing to resume (no logging tracebacks)."""
    work_dir = tmp_path / 'wd'
    options = []
    for key, value in seg_options.items():
        if isinstance(value, dict):  # the tiny arch: its fields one by one
            options += [f'{key}.{k}={v}' for k, v in value.items() if k != '_delete_']
            continue
        if isinstance(value, tuple):
            value = '(' + ','.join(map(str, value)) + ')'
        options.append(f'{key}={value}')
    options = [o for o in options if not o.startswith('model.backbone.arch')]
    options += ['model.backbone.arch=A0', 'model.decode_head.in_channels=1280',
                'model.auxiliary_head.in_channels=192']
    cmd = [sys.executable, str(ROOT / 'tools' / 'train.py'), SEG_CONFIG, '--work-dir',
           str(work_dir), '--cfg-options', *options]
    env = dict(os.environ, OMP_NUM_THREADS='1')
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env,
                          preexec_fn=_file_size_limit(2 << 20))
    assert done.returncode == 2, done.stderr[-3000:]
    errors = [line for line in done.stderr.splitlines() if line.startswith('error: ')]
    assert len(errors) == 1 and 'iter_2.pth' in errors[0] and 'disk full' in errors[0], \
        done.stderr[-3000:]
    assert 'Logging error' not in done.stderr and 'Traceback' not in done.stderr
    assert not work_dir.exists()  # it failed before its first checkpoint: nothing left at all
    resumed = subprocess.run(cmd + ['--resume'], capture_output=True, text=True, timeout=600,
                             env=env, preexec_fn=_file_size_limit(2 << 20))
    assert resumed.returncode == 2 and 'nothing to resume' in resumed.stderr
    assert 'Logging error' not in resumed.stderr
