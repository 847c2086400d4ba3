"""tools/train.py and tools/test.py against hostile input: each run ends with one line on stderr,
exit status 2, no code from a checkpoint runs, and nothing is written: the work dir a failed run
made is gone (subprocesses, run at once)."""
import os
import sys
from pathlib import Path

import pytest
import torch

from repvgg_mm.utils.config import build_model, load_config
from tests.helpers import run_concurrently

pytestmark = pytest.mark.slow  # subprocess end-to-end runs

REPO_ROOT = Path(__file__).resolve().parents[2]
A0 = str(REPO_ROOT / 'configs' / 'imagenet' / 'repvgg_a0.py')
TOOLS = REPO_ROOT / 'tools'


class Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f'touch {self.marker}', )


def data_options(root):
    options = [f'{loader}.dataset.data_root={root}' for loader in (
        'train_dataloader', 'val_dataloader', 'test_dataloader')]
    return options + ['test_dataloader.dataset.transforms.0.size=36',
                      'test_dataloader.dataset.transforms.1.size=32',
                      'test_dataloader.num_workers=0', 'train_dataloader.num_workers=0',
                      'val_dataloader.num_workers=0']


@pytest.fixture(scope='module')
def runs(toy_root, tmp_path_factory):
    tmp = tmp_path_factory.mktemp('hostile')
    options = data_options(toy_root)
    marker = tmp / 'pwned'
    weights = build_model(load_config(A0)).state_dict()
    evil = tmp / 'evil.pth'
    torch.save({'state_dict': weights, 'meta': {}, 'payload': Payload(marker)}, evil)
    good = tmp / 'good.pth'
    torch.save({'state_dict': weights, 'meta': {}}, good)
    truncated = tmp / 'truncated.pth'
    truncated.write_bytes(good.read_bytes()[:4096])
    gn_options = ['model.backbone.norm_cfg.type=GN', 'model.backbone.norm_cfg.num_groups=4']
    gn = tmp / 'gn.pth'
    torch.save(build_model(load_config(A0, {'model.backbone.norm_cfg.type': 'GN',
                                            'model.backbone.norm_cfg.num_groups': 4})
                           ).state_dict(), gn)
    corrupt_root = tmp / 'corrupt_data'
    os.system(f'cp -r {toy_root} {corrupt_root}')
    bad_image = sorted((corrupt_root / 'val').rglob('*.png'))[0]
    bad_image.write_bytes(b'\x89PNG\r\n\x1a\n' + os.urandom(64))
    (tmp / 'file.txt').write_text('a file\n')

    nan = tmp / 'nan.pth'
    nan_weights = dict(weights)
    nan_weights['head.fc.weight'] = weights['head.fc.weight'].clone()
    nan_weights['head.fc.weight'][0, 0] = float('nan')
    torch.save({'state_dict': nan_weights, 'meta': {}}, nan)
    counter = iter(range(100))

    def test(checkpoint, *extra, work_dir=None):
        work_dir = work_dir or f'wd{next(counter)}'
        return [sys.executable, str(TOOLS / 'test.py'), A0, str(checkpoint), '--work-dir',
                str(tmp / work_dir), *extra]

    cases = {
        'malicious test checkpoint': (test(evil, '--cfg-options', *options), 'untrusted'),
        'malicious resume checkpoint': ([sys.executable, str(TOOLS / 'train.py'), A0,
                                         '--work-dir', str(tmp / 'wd_resume'), '--resume',
                                         str(evil), '--cfg-options', *options], 'untrusted'),
        'truncated checkpoint': (test(truncated, '--cfg-options', *options),
                                 'truncated or corrupt'),
        'unknown model type': (test(good, '--cfg-options', *options, 'model.type=NoSuchModel'),
                               'cannot build the runner from the config'),
        'fuse a GroupNorm model': (test(gn, '--fuse', '--cfg-options', *options, *gn_options),
                                   "RepVGG block 'backbone.stem': cannot fuse GroupNorm"),
        'corrupt image': (test(good, '--cfg-options', *data_options(corrupt_root)),
                          f'cannot read image {bad_image}'),
        'work dir under a file': (test(good, '--cfg-options', *options,
                                       work_dir='file.txt/wd'), 'is not a writable folder'),
        'NaN checkpoint': (test(nan, '--cfg-options', *options),
                           "'head.fc.weight' holds NaN or infinity"),
        'resume with nothing to resume': ([sys.executable, str(TOOLS / 'train.py'), A0,
                                           '--work-dir', str(tmp / 'wd_mistyped'), '--resume',
                                           '--cfg-options', *options],
                                          f'nothing to resume in {tmp / "wd_mistyped"}'),
    }
    env_cmds = [cmd for cmd, _ in cases.values()]
    os.environ['TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD'] = '1'  # must not switch safe loading off
    try:
        results = run_concurrently(env_cmds, cwd=tmp, timeout=600)
    finally:
        del os.environ['TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD']
    return {name: (result, message) for (name, (_, message)), result in
            zip(cases.items(), results)}, marker, tmp


@pytest.mark.parametrize('case', ['malicious test checkpoint', 'malicious resume checkpoint',
                                  'truncated checkpoint', 'unknown model type',
                                  'fuse a GroupNorm model', 'corrupt image',
                                  'work dir under a file', 'NaN checkpoint',
                                  'resume with nothing to resume'])
def test_hostile_input_is_one_line_and_runs_no_code(runs, case):
    results, marker, tmp = runs
    (code, _, err), message = results[case]
    assert code == 2, err[-3000:]
    assert err.startswith('error: ') and err.count('\n') == 1, err[-3000:]
    assert message in err, err
    assert not marker.exists()  # the payload of the malicious file never ran


def test_failed_runs_leave_no_work_dir(runs):
    _, _, tmp = runs
    assert sorted(p.name for p in tmp.iterdir() if p.name.startswith('wd')) == []
