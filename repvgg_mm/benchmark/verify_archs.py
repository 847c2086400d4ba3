"""Every RepVGG arch built, fused and verified: params and FLOPs against the paper's table, the
fused model's error (``tools/analysis_tools/verify_archs.py``)."""
from typing import Dict, List, Sequence

import torch

from repvgg_mm.conversion import check_equivalence
from repvgg_mm.models import PAPER_TABLE
from repvgg_mm.models.utils import fuse_repvgg_blocks, randomize_bn_
from repvgg_mm.utils.analysis import complexity

from .reference_models import repvgg_classifier


def verify_arch(arch: str, input_size: int = 224, check_shape: Sequence[int] = (96, 128),
                tolerance: float = 1e-5, seed: int = 0) -> Dict[str, object]:
    """Build RepVGG-``arch`` with a 1000-class linear head and random BN statistics, fuse it,
    check the fused model on a random ``check_shape`` input; params/FLOPs (multiply-adds) of the
    deployed network at ``input_size``."""
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    train_net = repvgg_classifier(arch).eval()
    randomize_bn_(train_net, generator)
    fused_net = fuse_repvgg_blocks(train_net)
    sample = torch.randn(2, 3, *check_shape, generator=generator)
    report = check_equivalence(train_net, fused_net, sample, tolerance=tolerance)
    stats = complexity(fused_net, (3, input_size, input_size))
    return dict(arch=arch, params=stats['params'] / 1e6, flops=stats['flops'] / 1e9,
                error=report.outputs.max_rel, block_error=report.worst_block().diff.max_rel,
                ok=report.ok, train_params=sum(p.numel() for p in train_net.parameters()) / 1e6)


def table_lines(rows: List[dict], input_size: int, check_shape: Sequence[int]) -> List[str]:
    """The rows of :func:`verify_arch` beside the paper's numbers, with what they mean."""
    header = (f'{"arch":<6} {"train params(M)":>15} {"deploy params(M)":>16} {"paper":>7} '
              f'{"FLOPs(G)":>9} {"paper":>6} {"output err":>11} {"worst block":>12}  ok')
    lines = [header, '-' * len(header)]
    for row in rows:
        paper = PAPER_TABLE.get(f"RepVGG-{row['arch']}")
        paper_params, paper_flops = ((f"{paper['params']:.2f}", f"{paper['flops']:.2f}") if paper
                                     else ('-', '-'))
        lines.append(f'{row["arch"]:<6} {row["train_params"]:>15.2f} {row["params"]:>16.2f} '
                     f'{paper_params:>7} {row["flops"]:>9.2f} {paper_flops:>6} '
                     f'{row["error"]:>11.2e} {row["block_error"]:>12.2e}  '
                     f'{"yes" if row["ok"] else "NO"}')
    lines.append(f'params/FLOPs: deployed model with a 1000-class linear head at {input_size}x'
                 f'{input_size} (mmengine.analysis; FLOPs = multiply-adds). Errors: max relative '
                 f'difference, fused vs training-time, eval mode, random BN stats, input '
                 f'{check_shape[0]}x{check_shape[1]}: network output, and the worst single '
                 f'block on the input its training-time twin saw.')
    return lines
