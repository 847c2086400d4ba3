"""Fixtures shared by the whole suite (test helpers that are not fixtures live in
repvgg_mm.testing)."""
import importlib.util
import sys
from pathlib import Path

import pytest
import torch

from repvgg_mm.datasets import make_toy_classification
from repvgg_mm.models import RepVGG
from repvgg_mm.testing import NUM_CLASSES, arch_of, randomize_

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
def load_tool(repo_root):
    """``load_tool('analysis_tools/benchmark.py')``: a tool script imported as a module (its folder
    on ``sys.path``, as when the script runs, so it finds the modules beside it)."""
    def load(relative_path: str):
        path = repo_root / 'tools' / relative_path
        if str(path.parent) not in sys.path:
            sys.path.insert(0, str(path.parent))
        name = 'tool_' + relative_path.replace('/', '_')[:-3]
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    return load
