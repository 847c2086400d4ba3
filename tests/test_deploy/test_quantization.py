"""INT8: insert-BN keeps outputs, PTQ needs the fused model, QAT runs end to end."""
import pytest
import torch
from torch import nn

from repvgg_mm.deploy import quantization as quant
from repvgg_mm.models import RepVGG
from repvgg_mm.models.utils import fuse_repvgg_blocks, iter_repvgg_blocks, randomize_bn_
from repvgg_mm.testing import TINY_ARCH
from repvgg_mm.utils.analysis import LinearClassifierNet
from repvgg_mm.utils.compare import max_relative_error


def _fused_tiny(generator, num_classes=5):
    model = randomize_bn_(LinearClassifierNet(RepVGG(TINY_ARCH), num_classes), generator).eval()
    return fuse_repvgg_blocks(model).eval()


def test_insert_bn_preserves_outputs_and_folds_back(generator):
    fused = _fused_tiny(generator)
    batches = [torch.randn(4, 3, 32, 32, generator=generator) for _ in range(2)]
    with_bn = quant.insert_bn_after_fused_convs(fused, batches).eval()
    blocks = [block for _, block in iter_repvgg_blocks(with_bn)]
    assert all(isinstance(block.branch_fused.bn, nn.BatchNorm2d) for block in blocks)
    # the BN was initialised from real statistics, not left as an identity-initialised layer
    stem_bn = blocks[0].branch_fused.bn
    assert not torch.allclose(stem_bn.running_var, torch.ones_like(stem_bn.running_var))
    x = torch.randn(3, 3, 40, 48, generator=generator)
    with torch.no_grad():
        reference = fused(x)
        assert max_relative_error(reference, with_bn(x)) < 1e-5
        folded = quant.fold_inserted_bn(with_bn).eval()
        assert all(isinstance(b.branch_fused, nn.Conv2d) for _, b in iter_repvgg_blocks(folded))
        assert max_relative_error(reference, folded(x)) < 1e-5
    # the input model is left untouched
    assert all(isinstance(b.branch_fused, nn.Conv2d) for _, b in iter_repvgg_blocks(fused))


def test_quantization_needs_the_fused_model(generator):
    model = LinearClassifierNet(RepVGG(TINY_ARCH), 5).eval()
    with pytest.raises(ValueError, match='not fused'):
        quant.quantize_ptq(model, [torch.randn(2, 3, 32, 32)])
    with pytest.raises(ValueError, match='not fused'):
        quant.insert_bn_after_fused_convs(model, [torch.randn(2, 3, 32, 32)])


def test_qat_prepares_trains_and_converts(generator):
    fused = _fused_tiny(generator)
    batches = [torch.randn(4, 3, 32, 32, generator=generator) for _ in range(2)]
    prepared = quant.prepare_qat(quant.insert_bn_after_fused_convs(fused, batches), batches[0])
    optimizer = torch.optim.SGD(prepared.parameters(), lr=1e-3)
    prepared.train()
    loss = prepared(batches[0]).logsumexp(1).mean()
    loss.backward()
    optimizer.step()
    int8 = quant.convert_qat(prepared)
    assert quant.count_quantized_convs(int8) == len(list(iter_repvgg_blocks(fused)))
    with torch.no_grad():
        assert int8(torch.randn(2, 3, 32, 32)).shape == (2, 5)
