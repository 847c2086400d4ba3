"""Top-k accuracy on hand-made predictions."""
import pytest
import torch

from repvgg_mm.evaluation import Accuracy, topk_accuracy, topk_hits

SCORES = torch.tensor([[0.1, 0.6, 0.3],   # ranks: 1, 2, 0
                       [0.5, 0.2, 0.3],   # ranks: 0, 2, 1
                       [0.2, 0.3, 0.5],   # ranks: 2, 1, 0
                       [0.4, 0.35, 0.25]])  # ranks: 0, 1, 2
LABELS = torch.tensor([1, 2, 0, 2])


def test_topk_hits_by_hand():
    hits = topk_hits(SCORES, LABELS, (1, 2, 3))
    assert hits.tolist() == [[True, True, True], [False, True, True], [False, False, True],
                             [False, False, True]]
    assert topk_accuracy(SCORES, LABELS, (1, 2, 5)) == {'top1': 25.0, 'top2': 50.0, 'top5': 100.0}


def test_topk_hits_shape_checked():
    with pytest.raises(ValueError, match='labels'):
        topk_hits(SCORES, LABELS[:3], (1, ))


def test_metric_over_batches():
    metric = Accuracy(topk=(1, 2))
    samples = [dict(pred_score=s, gt_label=torch.tensor(lbl)) for s, lbl in zip(SCORES, LABELS)]
    metric.process(None, samples[:3])
    metric.process(None, samples[3:])
    assert metric.evaluate(size=4) == {'accuracy/top1': 25.0, 'accuracy/top2': 50.0}


def test_metric_arguments_checked():
    with pytest.raises(ValueError, match='topk'):
        Accuracy(topk=(0, 1))
    assert Accuracy(topk=3).topk == (3, )
