"""Fixtures shared by the whole suite (helpers that are not fixtures live in tests/helpers)."""
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from repvgg_mm.apis.deployment import export_model
from repvgg_mm.datasets import make_toy_classification
from repvgg_mm.datasets.toy_dense import make_toy_dense
from repvgg_mm.models import RepVGG
from tests.helpers import NUM_CLASSES, arch_of, randomize_
from tests.helpers.toy_cases import TINY_TOY_OPTIONS, write_toy_case

# Tests use tiny tensors: one intra-op thread per test process avoids oversubscribing the cores
# (pytest-xdist runs one process per core).
torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _deterministic():
    torch.manual_seed(0)
    yield


@pytest.fixture
def generator():
    return torch.Generator().manual_seed(0)


@pytest.fixture(scope='session')
def repo_root() -> Path:
    return Path(__file__).resolve().parents[1]


@pytest.fixture(scope='session')
def toy_root(tmp_path_factory):
    """A tiny class-folder dataset: 5 classes x (4 train, 2 val) images of 32x32."""
    root = tmp_path_factory.mktemp('toy_cls') / 'data'
    make_toy_classification(str(root), num_train=4, num_val=2, size=32)
    return root


@pytest.fixture
def random_classifier(generator):
    """``(backbone, head)``: a randomised RepVGG (fused if ``deploy``) and a random Linear head."""
    def build(arch, deploy=False):
        backbone = randomize_(RepVGG(arch_of(arch)), generator)
        if deploy:
            backbone.switch_to_deploy()
        head = randomize_(torch.nn.Linear(backbone.stage_channels[-1], NUM_CLASSES), generator)
        return backbone, head
    return build


@pytest.fixture
def images(generator):
    return torch.randn(2, 3, 32, 32, generator=generator)


@pytest.fixture(scope='session')
def cases(repo_root, tmp_path_factory):
    """``{name: (config, checkpoint, model folder)}``: the toy configs shrunk to the tiny arch with
    random 'trained' weights, exported once per session, on 3 toy val images of 96x96 (2 train)."""
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


@pytest.fixture(scope='session')
def image(tmp_path_factory):
    """A random 96x96 RGB PNG file."""
    rng = np.random.default_rng(0)
    path = tmp_path_factory.mktemp('img') / 'image.png'
    Image.fromarray(rng.integers(0, 256, size=(96, 96, 3), dtype=np.uint8)).save(path)
    return str(path)
