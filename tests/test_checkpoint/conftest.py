"""Fixtures of the checkpoint tests (helpers live in helpers.py)."""
import pytest
import torch

from repvgg_mm.models import RepVGG
from .helpers import NUM_CLASSES, arch_of, randomize_


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny models: a second intra-op thread only adds contention on a busy 2-core machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


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
