"""Safe loading: only weights and allow-listed types, one clear line for every bad file."""
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.logging import HistoryBuffer

from repvgg_mm.checkpoint import check_checkpoints, load_pretrained, safe_load
from repvgg_mm.models import RepVGG
from repvgg_mm.utils.errors import CheckpointError, MissingInputError


def test_pretrained_init_cfg_with_prefix_and_ddp_keys(tmp_path):
    source = RepVGG('A0')
    path = tmp_path / 'ddp.pth'
    torch.save({'state_dict': {f'module.backbone.{k}': v for k, v in source.state_dict().items()},
                'meta': {'epoch': 3}}, path)
    model = RepVGG('A0', init_cfg=dict(type='Pretrained', checkpoint=str(path), prefix='backbone.'))
    model.init_weights()
    for key, value in source.state_dict().items():
        assert torch.equal(model.state_dict()[key], value)


def test_pretrained_never_loads_partially(tmp_path):
    path = tmp_path / 'a1.pth'
    torch.save(RepVGG('A1').state_dict(), path)
    with pytest.raises(CheckpointError, match='with another shape'):
        load_pretrained(RepVGG('A0'), str(path))
    torch.save({'stem.branch_3x3.conv.weight': torch.zeros(1)}, path)
    with pytest.raises(CheckpointError, match='missing'):
        load_pretrained(RepVGG('A0'), str(path))


class Payload:
    def __init__(self, reducer):
        self.reducer = reducer

    def __reduce__(self):
        return self.reducer


@pytest.mark.parametrize('reducer', [
    (print, ('code execution', )),
    (getattr, (np.ndarray, 'tofile')),  # allowed globals must not become gadgets
    (getattr, (HistoryBuffer, '__init__')),
])
def test_safe_load_refuses_arbitrary_objects(tmp_path, reducer):
    path = tmp_path / 'evil.pth'
    torch.save({'state_dict': {}, 'payload': Payload(reducer)}, path)
    with pytest.raises(CheckpointError, match='refusing .*evil.pth as untrusted'):
        safe_load(str(path))
    with pytest.raises(CheckpointError, match='not found'):
        safe_load(str(tmp_path / 'missing.pth'))


def test_runner_style_meta_loads_safely(tmp_path):
    buffer = HistoryBuffer()
    buffer.update(0.5)
    path = tmp_path / 'runner.pth'
    torch.save({'meta': {'message_hub': {'log_scalars': {'loss': buffer}},
                         'arr': np.arange(3, dtype=np.float64), 'seed': np.int64(4)},
                'state_dict': {'w': torch.ones(1)}}, path)
    loaded = safe_load(str(path))
    restored = loaded['meta']['message_hub']['log_scalars']['loss']
    assert restored.current() == 0.5 and restored.statistics('mean') == 0.5
    # torch.load's default (weights_only under torch>=2.6) works too once repvgg_mm is imported.
    assert torch.load(path)['state_dict']['w'].item() == 1


def _system_payload(marker):
    return Payload((os.system, (f'touch {marker}', )))


def test_refusal_names_what_was_blocked_and_not_the_unsafe_fix(tmp_path):
    path = tmp_path / 'evil.pth'
    torch.save({'state_dict': {}, 'payload': _system_payload(tmp_path / 'pwned')}, path)
    with pytest.raises(CheckpointError) as info:
        safe_load(str(path))
    message = str(info.value)
    assert 'untrusted' in message and 'system' in message and 'blocked' in message
    assert 'weights_only' not in message and 'will likely succeed' not in message
    assert '\n' not in message and not (tmp_path / 'pwned').exists()


def test_environment_variable_does_not_switch_safe_loading_off(tmp_path):
    """TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1 flips torch's default, never our explicit safe mode."""
    path, marker = tmp_path / 'evil.pth', tmp_path / 'pwned'
    torch.save({'state_dict': {}, 'payload': _system_payload(marker)}, path)
    code = ('import sys; from repvgg_mm.checkpoint import safe_load\n'
            'try:\n    safe_load(sys.argv[1])\nexcept Exception as exc:\n    print(exc)')
    result = subprocess.run([sys.executable, '-c', code, str(path)], capture_output=True,
                            text=True, env=dict(os.environ, TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD='1'))
    assert 'untrusted' in result.stdout, result.stdout + result.stderr
    assert not marker.exists()


def test_bad_files_give_one_clear_line(tmp_path):
    good = tmp_path / 'good.pth'
    torch.save({'w': torch.ones(64)}, good)
    data = good.read_bytes()
    (tmp_path / 'truncated.pth').write_bytes(data[:len(data) // 2])
    (tmp_path / 'empty.pth').write_bytes(b'')
    (tmp_path / 'text.pth').write_text('hello\n')
    (tmp_path / 'folder.pth').mkdir()
    cases = {'truncated.pth': 'truncated or corrupt', 'empty.pth': 'is empty',
             'text.pth': 'is not a PyTorch checkpoint', 'folder.pth': 'is a folder',
             'missing.pth': 'checkpoint not found'}
    for name, message in cases.items():
        with pytest.raises(CheckpointError, match=message) as info:
            safe_load(str(tmp_path / name))
        assert '\n' not in str(info.value)
    assert torch.equal(safe_load(str(good))['w'], torch.ones(64))


def test_remote_and_absent_checkpoints_are_not_checked():
    cfg = Config(dict(model=dict(backbone=dict(init_cfg=dict(
        type='Pretrained', checkpoint='https://example.org/repvgg.pth')),
        neck=dict(init_cfg=[dict(type='Xavier')])), load_from=None))
    check_checkpoints(cfg)
    cfg.load_from = 'nowhere/iter_10.pth'
    with pytest.raises(MissingInputError,
                       match='checkpoint not found: nowhere/iter_10.pth .from load_from.'):
        check_checkpoints(cfg)
