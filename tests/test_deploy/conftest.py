"""Toy configs shrunk to the tiny arch with random 'trained' weights, exported once per session
(test_runtime.py, test_quantize.py)."""
import pytest

from repvgg_mm.apis.deployment import export_model
from repvgg_mm.datasets.toy_dense import make_toy_dense
from repvgg_mm.testing.toy_cases import TINY_TOY_OPTIONS, write_toy_case


@pytest.fixture(scope='session')
def cases(repo_root, tmp_path_factory):
    """``{name: (config, checkpoint, model folder)}`` on 3 toy val images of 96x96 (2 train)."""
    tmp = tmp_path_factory.mktemp('onnx_runtime')
    root = str(tmp / 'toy_dense')
    make_toy_dense(root, num_train=2, num_val=3, size=96, progress=False)
    result = {}
    for name in TINY_TOY_OPTIONS:
        config, checkpoint = write_toy_case(repo_root, tmp, name, root)
        folder = str(tmp / f'{name}_onnx')
        export_model(config, checkpoint, folder)
        result[name] = (config, checkpoint, folder)
    return result
