"""Linear classification head: one fully connected layer on pooled features."""
from typing import List, Optional, Sequence

import torch
import torch.nn.functional as F
from mmengine.model import BaseModule
from mmengine.structures import BaseDataElement
from torch import Tensor, nn

from repvgg_mm.registry import MODELS


def gt_labels(data_samples: Sequence[BaseDataElement]) -> Tensor:
    """The ``gt_label`` of every sample as one ``(N,)`` long tensor."""
    if not data_samples or any('gt_label' not in s for s in data_samples):
        raise ValueError('every data sample needs a gt_label to compute the loss')
    return torch.stack([torch.as_tensor(s.gt_label).reshape(()) for s in data_samples]).long()


@MODELS.register_module()
class LinearClsHead(BaseModule):
    """``fc(features)`` with cross-entropy (optional label smoothing) as the training loss.

    Args:
        num_classes: number of categories.
        in_channels: feature channels (the classifier fills this from its backbone when omitted).
        label_smoothing: ``label_smoothing`` of :func:`torch.nn.functional.cross_entropy`.
        loss_weight: factor on the cross-entropy term.
    """

    def __init__(self, num_classes: int, in_channels: int, label_smoothing: float = 0.0,
                 loss_weight: float = 1.0, init_cfg=None):
        super().__init__(init_cfg)
        if num_classes <= 0:
            raise ValueError(f'num_classes must be positive, got {num_classes}')
        if not 0.0 <= label_smoothing < 1.0:
            raise ValueError(f'label_smoothing must lie in [0, 1), got {label_smoothing}')
        self.num_classes, self.in_channels = num_classes, in_channels
        self.label_smoothing, self.loss_weight = label_smoothing, loss_weight
        self.fc = nn.Linear(in_channels, num_classes)

    def forward(self, feats: Tensor) -> Tensor:
        """Logits ``(N, num_classes)`` of pooled features ``(N, in_channels)``."""
        return self.fc(feats)

    def loss(self, feats: Tensor, data_samples: Sequence[BaseDataElement]) -> dict:
        logits = self(feats)
        target = gt_labels(data_samples).to(logits.device)
        loss = F.cross_entropy(logits, target, label_smoothing=self.label_smoothing)
        return dict(loss_cls=self.loss_weight * loss)

    def predict(self, feats: Tensor,
                data_samples: Optional[List[BaseDataElement]] = None) -> List[BaseDataElement]:
        """Data samples with ``pred_score`` (softmax) and ``pred_label`` added."""
        return self.predict_by_feat(self(feats), data_samples)

    def predict_by_feat(self, logits: Tensor, data_samples: Optional[List[BaseDataElement]] = None
                        ) -> List[BaseDataElement]:
        """:meth:`predict` from the logits (e.g. those of an ONNX Runtime session)."""
        scores = F.softmax(logits, dim=1)
        if data_samples is None:
            data_samples = [BaseDataElement() for _ in range(scores.shape[0])]
        for sample, score in zip(data_samples, scores):
            sample.pred_score = score.detach()
            sample.pred_label = score.argmax()
        return data_samples
