"""The pure fuse math: identity kernels, conv-BN folding, kernel padding, unfusable norms."""
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from repvgg_mm.models.blocks import (
    check_fusable_norm,
    fuse_identity_bn,
    fuse_kernel_bn,
    identity_kernel,
    pad_kernel_to,
)
from repvgg_mm.models.utils import randomize_bn_
from repvgg_mm.utils.compare import max_relative_error


@pytest.mark.parametrize('groups', [1, 2, 4])
def test_identity_kernel_is_identity(groups):
    x = torch.randn(2, 8, 5, 7)
    kernel = identity_kernel(8, groups, 3, x.dtype, x.device)
    assert torch.equal(F.conv2d(x, kernel, padding=1, groups=groups), x)


def test_identity_kernel_follows_dtype():
    assert identity_kernel(4, 1, 3, torch.float64, torch.device('cpu')).dtype == torch.float64


def test_fuse_kernel_bn_matches_conv_bn(generator):
    conv = nn.Conv2d(4, 6, 3, padding=1, bias=False)
    bn = randomize_bn_(nn.BatchNorm2d(6), generator).eval()
    x = torch.randn(1, 4, 6, 9)
    kernel, bias = fuse_kernel_bn(conv.weight, bn)
    assert max_relative_error(bn(conv(x)), F.conv2d(x, kernel, bias, padding=1)) < 1e-6


def test_fuse_identity_bn(generator):
    bn = randomize_bn_(nn.BatchNorm2d(8), generator).eval()
    x = torch.randn(1, 8, 4, 4)
    kernel, bias = fuse_identity_bn(bn, groups=2, size=3)
    assert max_relative_error(bn(x), F.conv2d(x, kernel, bias, padding=1, groups=2)) < 1e-6


def test_pad_kernel_to_centres():
    padded = pad_kernel_to(torch.ones(2, 2, 1, 1), 3)
    assert padded.shape == (2, 2, 3, 3) and padded[:, :, 1, 1].eq(1).all() and padded.sum() == 4
    with pytest.raises(ValueError):
        pad_kernel_to(torch.ones(1, 1, 2, 2), 3)


@pytest.mark.parametrize('norm', [nn.GroupNorm(2, 4), nn.LayerNorm(4),
                                  nn.BatchNorm2d(4, track_running_stats=False)])
def test_unfusable_norms_raise(norm):
    with pytest.raises(TypeError, match='cannot fuse'):
        check_fusable_norm(norm)


def test_max_relative_error():
    a = torch.tensor([2.0, -4.0])
    assert max_relative_error(a, a + torch.tensor([0.0, 0.4])) == pytest.approx(0.1)



def test_randomize_bn_keeps_deep_models_input_dependent(generator):
    from repvgg_mm.models import RepVGG
    model = randomize_bn_(RepVGG('A0', out_indices=(1, )), generator).eval()
    bn = model.stage2[3].branch_3x3.bn
    assert not torch.allclose(bn.running_var, torch.ones_like(bn.running_var))
    with torch.no_grad():
        out_a = model(torch.randn(1, 3, 32, 32, generator=generator))[0]
        out_b = model(torch.randn(1, 3, 32, 32, generator=generator))[0]
    assert torch.isfinite(out_a).all() and max_relative_error(out_a, out_b) > 1e-2
