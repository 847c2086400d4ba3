from pathlib import Path

import pytest

from repvgg_mm.datasets import make_toy_classification

REPO_ROOT = Path(__file__).resolve().parents[2]
CONFIGS = REPO_ROOT / 'configs'

# Four narrow stages (stage1 has a block with an identity branch): fast in every test.
TINY_ARCH = dict(num_blocks=(2, 1, 1, 1), width_factor=(0.25, 0.25, 0.25, 0.25))


@pytest.fixture(scope='session')
def toy_root(tmp_path_factory):
    """A tiny class-folder dataset: 5 classes x (4 train, 2 val) images of 32x32."""
    root = tmp_path_factory.mktemp('toy_cls') / 'data'
    make_toy_classification(str(root), num_train=4, num_val=2, size=32)
    return root
