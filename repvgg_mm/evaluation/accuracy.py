"""Top-k classification accuracy."""
from typing import Dict, List, Sequence

import torch
from mmengine.evaluator import BaseMetric
from torch import Tensor

from repvgg_mm.registry import METRICS


def topk_hits(scores: Tensor, labels: Tensor, topk: Sequence[int]) -> Tensor:
    """``(N, len(topk))`` bools: is the label among the ``k`` highest scores, for each ``k``.

    ``k`` larger than the number of classes counts every sample as a hit.
    """
    if scores.ndim != 2 or labels.shape != scores.shape[:1]:
        raise ValueError(f'expected scores (N, C) and labels (N,), got {tuple(scores.shape)} '
                         f'and {tuple(labels.shape)}')
    maxk = min(max(topk), scores.shape[1])
    ranked = scores.topk(maxk, dim=1).indices
    correct = ranked == labels.reshape(-1, 1).to(ranked.device)
    return torch.stack([correct[:, :min(k, maxk)].any(dim=1) for k in topk], dim=1)


def topk_accuracy(scores: Tensor, labels: Tensor, topk: Sequence[int] = (1, 5)) -> Dict[str, float]:
    """``{'top1': %, 'top5': %, ...}`` of class scores ``(N, C)`` against labels ``(N,)``."""
    hits = topk_hits(scores, labels, topk).double().mean(dim=0) * 100
    return {f'top{k}': hits[i].item() for i, k in enumerate(topk)}


@METRICS.register_module()
class Accuracy(BaseMetric):
    """Top-k accuracy in percent, reported as ``accuracy/top1``, ``accuracy/top5``, ...

    Reads ``pred_score`` and ``gt_label`` of the predicted data samples; only the per-sample hits
    are kept between batches, so memory does not grow with the number of classes.
    """

    default_prefix = 'accuracy'

    def __init__(self, topk: Sequence[int] = (1, 5), collect_device: str = 'cpu',
                 prefix=None, collect_dir=None):
        super().__init__(collect_device=collect_device, prefix=prefix, collect_dir=collect_dir)
        topk = tuple(topk) if isinstance(topk, (tuple, list)) else (topk, )
        if not topk or any(int(k) != k or k < 1 for k in topk):
            raise ValueError(f'topk must be positive integers, got {topk}')
        self.topk = tuple(int(k) for k in topk)

    def process(self, data_batch, data_samples: Sequence[dict]) -> None:
        if not data_samples:
            return
        scores = torch.stack([torch.as_tensor(s['pred_score']) for s in data_samples])
        labels = torch.stack([torch.as_tensor(s['gt_label']).reshape(()) for s in data_samples])
        for row in topk_hits(scores.float().cpu(), labels.long().cpu(), self.topk):
            self.results.append(row)

    def compute_metrics(self, results: List[Tensor]) -> Dict[str, float]:
        if not results:
            raise ValueError('no predictions to evaluate')
        hits = torch.stack(results).double().mean(dim=0) * 100
        return {f'top{k}': hits[i].item() for i, k in enumerate(self.topk)}
