"""Multi-process training on CPU through tools/dist_train.sh (torchrun, gloo, MMEngine DDP):
checkpoints that load into plain models, SyncBN configs, and a SIGKILLed run that resumes to
exactly the state of an uninterrupted one.

Tiny settings: 5 classes x 4 images of 32x32, 2 processes x batch 2 (5 iterations per epoch), 3
epochs; the three independent jobs run side by side, the resume after them.
"""
import copy
import json
import os
import runpy
import socket
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmengine.utils import import_modules_from_strings

from repvgg_mm.checkpoint import load_pretrained, load_state_dict_strict, safe_load
from repvgg_mm.datasets import make_toy_classification
from repvgg_mm.datasets.toy_dense import make_toy_dense

pytestmark = pytest.mark.slow  # subprocess end-to-end runs

ROOT = Path(__file__).resolve().parents[2]
CLS_CONFIG = ROOT / 'configs' / 'toy' / 'repvgg_a0_toy_cls.py'
SEG_CONFIG = ROOT / 'configs' / 'toy' / 'pspnet_repvgg_a0_toy.py'
ITERS_PER_EPOCH = 5  # 20 images / (2 processes x batch 2); one process would take 10
EPOCHS = 3
KILL_AT = 7  # epoch 2, iteration 2: after epoch_1.pth (iteration 5), before epoch_2.pth

# The resumed run must repeat the uninterrupted one bit for bit, random augmentation included: the
# config's own random crops and flips (at 32x32), drawn in the main process of each rank from the
# random states that RepVGGCheckpointHook saves per rank and --resume restores.
CLS_TEMPLATE = '''
_base_ = {base!r}
data_root = {data!r}
train_transforms = [dict(type='RandomResizedCrop', size=32, scale=(0.35, 1.0)),
                    dict(type='RandomHorizontalFlip')]
train_dataloader = dict(batch_size=2, num_workers=0, persistent_workers=False,
                        dataset=dict(data_root=data_root, transforms=train_transforms))
val_dataloader = dict(batch_size=5, num_workers=0, persistent_workers=False,
                      dataset=dict(data_root=data_root, transforms=[dict(type='Resize', size=32)]))
test_dataloader = val_dataloader
max_epochs = {epochs}
optim_wrapper = dict(optimizer=dict(lr=0.01))
param_scheduler = dict(T_max=max_epochs, end=max_epochs)
train_cfg = dict(max_epochs=max_epochs)
default_hooks = dict(logger=dict(interval=1), checkpoint=dict(max_keep_ckpts=3, save_best=None))
randomness = dict(seed=0, deterministic=True)
'''
KILL_TEMPLATE = '''
_base_ = {base!r}
custom_imports = dict(imports=['tests.test_engine.kill_hook'], allow_failed_imports=False)
custom_hooks = [dict(type='SigkillAfterIterHook', iteration={kill_at})]
'''


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def dist_train(config, work_dir, *args) -> subprocess.Popen:
    """``tools/dist_train.sh CONFIG 2`` with a free port, one thread per process."""
    env = dict(os.environ, OMP_NUM_THREADS='1', PYTHON=sys.executable, PORT=str(free_port()),
               PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get('PYTHONPATH', '')]))
    cmd = ['bash', str(ROOT / 'tools' / 'dist_train.sh'), str(config), '2', '--work-dir',
           str(work_dir), *map(str, args)]
    return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def finish(job: subprocess.Popen) -> SimpleNamespace:
    log = job.communicate(timeout=600)[0]
    return SimpleNamespace(returncode=job.returncode, log=log)


def logged_scalars(work_dir: Path):
    """Per run in ``work_dir`` (oldest first): ``({step: loss}, {epoch: accuracy})`` from its
    vis_data/scalars.json."""
    runs = []
    for path in sorted(work_dir.glob('*/vis_data/scalars.json')):
        losses, accuracies = {}, {}
        for line in path.read_text().splitlines():
            entry = json.loads(line)
            if 'loss' in entry:
                losses[entry['step']] = entry['loss']
            if 'accuracy/top1' in entry:
                accuracies[entry['step']] = entry['accuracy/top1']
        runs.append((losses, accuracies))
    return runs


def history(checkpoint, key):
    return checkpoint['message_hub']['log_scalars'][key].data[0]


@pytest.fixture(scope='module')
def jobs(tmp_path_factory):
    """The uninterrupted and the killed 2-process classification runs, and a 2-process SyncBN
    segmentation run, side by side."""
    base = tmp_path_factory.mktemp('dist')
    make_toy_classification(str(base / 'cls'), num_train=4, num_val=1, size=32)
    make_toy_dense(str(base / 'dense'), num_train=8, num_val=2, size=64, progress=False)
    cls_config = base / 'toy_cls_2proc.py'
    cls_config.write_text(CLS_TEMPLATE.format(base=str(CLS_CONFIG), data=str(base / 'cls'),
                                              epochs=EPOCHS))
    kill_config = base / 'toy_cls_2proc_killed.py'
    kill_config.write_text(KILL_TEMPLATE.format(base=str(cls_config), kill_at=KILL_AT))
    seg_data = str(base / 'dense')
    seg_options = [f'{loader}.dataset.data_root={seg_data}' for loader in ('train_dataloader',
                                                                           'val_dataloader')]
    seg_options += ['train_dataloader.batch_size=2', 'train_cfg.max_iters=2',
                    'train_cfg.val_interval=2', 'default_hooks.checkpoint.interval=2',
                    'default_hooks.logger.interval=1']
    # the shipped seg configs' norm: SyncBN everywhere
    seg_options += [f'model.{part}.norm_cfg.type=SyncBN'
                    for part in ('backbone', 'decode_head', 'auxiliary_head')]
    started = {'reference': dist_train(cls_config, base / 'reference'),
               'killed': dist_train(kill_config, base / 'killed'),
               'seg': dist_train(SEG_CONFIG, base / 'seg', '--cfg-options', *seg_options)}
    runs = {name: finish(job) for name, job in started.items()}
    return SimpleNamespace(base=base, cls_config=cls_config, **runs)


def build_cls_model(config):
    import repvgg_mm.models  # noqa: F401 - registers the classifier
    from repvgg_mm.registry import MODELS
    init_default_scope('repvgg_mm')
    return MODELS.build(Config.fromfile(str(config)).model)


def test_two_cpu_processes_train_with_gloo_and_save_plain_keys(jobs):
    assert jobs.reference.returncode == 0, jobs.reference.log[-3000:]
    assert "distributed backend 'gloo' instead of 'nccl'" in jobs.reference.log
    assert 'CPU distributed run: 2 processes' in jobs.reference.log
    checkpoint = safe_load(jobs.base / 'reference' / f'epoch_{EPOCHS}.pth')
    # each process saw half of every epoch
    assert checkpoint['meta']['iter'] == EPOCHS * ITERS_PER_EPOCH
    state = checkpoint['state_dict']
    assert not any(key.startswith('module.') for key in state)
    model = build_cls_model(jobs.cls_config)
    load_state_dict_strict(model, state, source='of the 2-process run')  # no edits


def test_ddp_prefixed_copy_loads_and_converts(jobs, tmp_path, capsys):
    """A checkpoint with DDP's ``module.`` keys: the loader and the whole-model converter."""
    state = safe_load(jobs.base / 'reference' / f'epoch_{EPOCHS}.pth')['state_dict']
    prefixed = tmp_path / 'ddp_keys.pth'
    torch.save({'state_dict': {f'module.{key}': value for key, value in state.items()}}, prefixed)

    backbone = build_cls_model(jobs.cls_config).backbone
    load_pretrained(backbone, str(prefixed), prefix='backbone')
    assert torch.equal(backbone.stem.branch_3x3.conv.weight,
                       state['backbone.stem.branch_3x3.conv.weight'])

    convert = runpy.run_path(str(ROOT / 'tools' / 'convert_whole_model.py'))['main']
    out_dir = tmp_path / 'deploy'
    assert convert([str(jobs.cls_config), str(prefixed), str(out_dir),
                    '--sample-shape', '32', '32']) == 0, capsys.readouterr().err
    assert (out_dir / 'ddp_keys_deploy.pth').is_file()


def test_sync_bn_seg_config_trains_on_two_cpu_processes(jobs):
    assert jobs.seg.returncode == 0, jobs.seg.log[-3000:]
    assert 'no CUDA device: 3 SyncBN norm configs of the model built as BN' in jobs.seg.log
    assert 'CPU distributed run: 2 processes' in jobs.seg.log
    state = safe_load(jobs.base / 'seg' / 'iter_2.pth')['state_dict']
    cfg = Config.fromfile(str(SEG_CONFIG))
    import_modules_from_strings(**cfg.custom_imports)
    from mmseg.registry import MODELS
    from mmseg.utils import register_all_modules
    register_all_modules(init_default_scope=False)
    init_default_scope('mmseg')
    load_state_dict_strict(MODELS.build(copy.deepcopy(cfg.model)), state, source='of the seg run')


def test_killed_run_resumes_to_the_uninterrupted_state(jobs):
    reference_dir, killed_dir = jobs.base / 'reference', jobs.base / 'killed'
    assert jobs.reference.returncode == 0, jobs.reference.log[-3000:]
    assert jobs.killed.returncode != 0 and 'SIGKILL' in jobs.killed.log, jobs.killed.log[-3000:]
    assert (killed_dir / 'last_checkpoint').read_text().strip().endswith('epoch_1.pth')
    assert not (killed_dir / 'epoch_2.pth').exists()

    resumed = finish(dist_train(jobs.cls_config, killed_dir, '--resume'))
    assert resumed.returncode == 0, resumed.log[-3000:]
    assert f'resumed epoch: 1, iter: {ITERS_PER_EPOCH}' in resumed.log

    final = f'epoch_{EPOCHS}.pth'
    expected, got = safe_load(reference_dir / final), safe_load(killed_dir / final)
    assert len(got['meta']['random_states']) == 2  # one per process
    assert got['meta']['epoch'] == EPOCHS and got['meta']['iter'] == expected['meta']['iter']
    # same lr schedule (to the last value) and the same loss at every iteration
    for key in ('train/lr', 'train/loss'):
        assert len(history(got, key)) == EPOCHS * ITERS_PER_EPOCH
        torch.testing.assert_close(history(got, key), history(expected, key), rtol=1e-6, atol=0)
    assert got['optimizer']['param_groups'][0]['lr'] == expected['optimizer']['param_groups'][0][
        'lr']
    for key, value in expected['state_dict'].items():
        assert torch.equal(got['state_dict'][key], value), key
    # validation results: the resumed history ends like the uninterrupted one (epoch_1.pth is
    # written before epoch 1's validation, so that one value lives in the killed run's log)
    resumed_accuracy = history(got, 'val/accuracy/top1')
    assert len(resumed_accuracy) >= 1
    torch.testing.assert_close(resumed_accuracy,
                               history(expected, 'val/accuracy/top1')[-len(resumed_accuracy):])

    # the logs of the killed and the resumed run agree with the uninterrupted one where they
    # overlap, and together hold every value it logged
    [(expected_losses, expected_accuracies)] = logged_scalars(reference_dir)
    (killed_losses, killed_accuracies), (resumed_losses, resumed_accuracies) = logged_scalars(
        killed_dir)
    assert min(killed_losses) == 1 and max(killed_losses) >= KILL_AT - 1
    assert min(resumed_losses) == ITERS_PER_EPOCH + 1
    for losses, accuracies in ((killed_losses, killed_accuracies),
                               (resumed_losses, resumed_accuracies)):
        assert losses == pytest.approx({step: expected_losses[step] for step in losses}, rel=1e-6)
        assert accuracies == {step: expected_accuracies[step] for step in accuracies}
    assert set(killed_losses) | set(resumed_losses) == set(expected_losses)
    assert set(killed_accuracies) | set(resumed_accuracies) == set(expected_accuracies) == {1, 2, 3}
