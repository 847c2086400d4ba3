import pytest
import torch

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
