"""Memory probes: saved-for-backward bytes count each storage once and leave parameters and inputs
out; worker processes return their result or fail in one line."""
import os

import pytest
import torch

from repvgg_mm.benchmark.memory import SavedTensors, persistent_tensors, run_workers
from repvgg_mm.utils.errors import UserError


def test_saved_tensors_count_activations_not_parameters_or_inputs():
    model = torch.nn.Sequential(torch.nn.Linear(64, 32), torch.nn.ReLU(), torch.nn.Linear(32, 8))
    inputs = torch.randn(4, 64)
    with SavedTensors(persistent_tensors(model, inputs)) as saved:
        model(inputs).sum().backward()
    # the first Linear saves its input (persistent: left out); ReLU saves its output (4 x 32
    # floats), which the second Linear saves too (the same storage, counted once)
    assert saved.nbytes == 4 * 32 * 4
    with SavedTensors() as everything:
        model(inputs)
    assert everything.nbytes > saved.nbytes  # inputs and weights count when not persistent


def test_workers_return_results_and_fail_in_one_line():
    assert run_workers({'cores': ('os:cpu_count', {})}) == {'cores': os.cpu_count()}
    with pytest.raises(UserError, match="the worker of broken failed with status 1: "
                                        "AttributeError: module 'os' has no attribute"):
        run_workers({'broken': ('os:no_such_function', {})})
