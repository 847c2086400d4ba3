"""The CPU variants of a fused model compute what the model computes; an unknown one is refused."""
import pytest
import torch

from repvgg_mm.deploy.cpu_optimize import optimize_for_cpu
from repvgg_mm.models import LinearClassifierNet, RepVGG
from repvgg_mm.models.utils import fuse_repvgg_blocks, randomize_bn_
from repvgg_mm.testing import TINY_ARCH
from repvgg_mm.utils.compare import max_relative_error


@pytest.mark.parametrize('variant', ['eager', 'channels_last', 'jit_freeze', 'fx_mkldnn'])
def test_cpu_variants_compute_the_same(variant, generator):
    model = fuse_repvgg_blocks(randomize_bn_(LinearClassifierNet(RepVGG(TINY_ARCH), 5),
                                             generator)).eval()
    x = torch.randn(2, 3, 32, 32, generator=generator)
    runner = optimize_for_cpu(model, x, variant)
    with torch.inference_mode():
        reference = model(x)
        assert max_relative_error(reference, runner(x)) < 1e-5
        assert runner(x[:1]).shape == (1, 5)  # other batch sizes work


def test_unknown_cpu_variant_is_rejected():
    with pytest.raises(KeyError, match='unknown CPU variant'):
        optimize_for_cpu(torch.nn.Identity(), torch.zeros(1), 'tensorrt')
