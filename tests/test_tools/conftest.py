"""Fixtures of the tool tests: one tiny training run of tools/train.py that several tests read."""
import pytest

from tests.helpers.tools import A0, run_tool_process, small_data_options


@pytest.fixture(scope='session')
def trained(toy_root, tmp_path_factory):
    """One epoch (3 iterations) of configs/imagenet/repvgg_a0.py on the tiny folder."""
    work_dir = tmp_path_factory.mktemp('train_a0')
    options = small_data_options(toy_root) + ['train_cfg.max_epochs=1']
    result = run_tool_process('train.py', A0, '--work-dir', work_dir, '--cfg-options', *options)
    assert result.returncode == 0, result.stderr[-3000:]
    return work_dir, options
