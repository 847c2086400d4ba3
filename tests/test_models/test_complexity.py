"""Deployed params and FLOPs of every paper arch match the paper's table."""
import pytest

from repvgg_mm.models import LinearClassifierNet, RepVGG
from repvgg_mm.utils.analysis import complexity

# Paper, Table 4: deployed params (M) and FLOPs (G multiply-adds) at 224x224 with a 1000-way head.
PAPER = {'A0': (8.31, 1.36), 'A1': (12.79, 2.37), 'A2': (25.50, 5.12), 'B0': (14.34, 3.06),
         'B1': (51.83, 11.82), 'B1g2': (41.36, 8.82), 'B1g4': (36.13, 7.32), 'B2': (80.31, 18.4),
         'B2g4': (55.77, 11.3), 'B3': (110.96, 26.22), 'B3g4': (75.63, 16.08)}


@pytest.mark.parametrize('arch', sorted(PAPER))
def test_deploy_params_and_flops_match_paper(arch):
    net = LinearClassifierNet(RepVGG(arch, deploy=True))
    stats = complexity(net, (3, 224, 224))
    params, flops = PAPER[arch]
    assert stats['params'] / 1e6 == pytest.approx(params, rel=0.01)
    assert stats['flops'] / 1e9 == pytest.approx(flops, rel=0.01)
