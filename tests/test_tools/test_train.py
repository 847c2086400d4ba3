"""tools/train.py end to end on a tiny ImageNet-layout folder (subprocesses): one-line errors,
safe-loadable checkpoints, resume."""
import pytest
from mmengine.logging import HistoryBuffer

from repvgg_mm.checkpoint import safe_load
from tests.helpers.tools import A0, assert_one_line_error, run_tool_process


@pytest.mark.slow
def test_missing_imagenet_is_a_one_line_error(tmp_path):
    missing = tmp_path / 'no_imagenet'
    result = run_tool_process('train.py', A0, '--work-dir', tmp_path,
                      '--cfg-options', f'train_dataloader.dataset.data_root={missing}',
                      f'val_dataloader.dataset.data_root={missing}')
    assert_one_line_error(result, str(missing), '--cfg-options',
                          'train_dataloader.dataset.data_root=')


@pytest.mark.slow
def test_train_writes_safe_loadable_checkpoints(trained):
    work_dir, _ = trained
    checkpoint = safe_load(work_dir / 'epoch_1.pth')  # weights_only loading, no extra globals
    assert checkpoint['meta']['epoch'] == 1 and checkpoint['meta']['iter'] == 3
    log_scalars = checkpoint['message_hub']['log_scalars']
    assert isinstance(log_scalars['train/loss'], HistoryBuffer)
    assert {'backbone.stem.branch_3x3.conv.weight', 'head.fc.weight'} <= set(
        checkpoint['state_dict'])
    assert (work_dir / 'last_checkpoint').read_text().strip().endswith('epoch_1.pth')


@pytest.mark.slow
def test_resume_continues_training(trained):
    work_dir, options = trained
    result = run_tool_process('train.py', A0, '--work-dir', work_dir, '--resume', '--cfg-options',
                      *options[:-1], 'train_cfg.max_epochs=2')
    assert result.returncode == 0, result.stderr[-3000:]
    assert 'resumed epoch: 1, iter: 3' in result.stdout + result.stderr
    assert safe_load(work_dir / 'epoch_2.pth')['meta']['iter'] == 6
