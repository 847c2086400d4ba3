"""Image classifier: backbone, global average pooling and a classification head."""
from typing import List, Optional, Union

import torch
from mmengine.model import BaseModel
from mmengine.structures import BaseDataElement
from torch import Tensor, nn

from repvgg_mm.registry import MODELS

from ..blocks import RepVGGBlock

DEFAULT_PREPROCESSOR = dict(type='ImgDataPreprocessor')


def custom_l2(model: nn.Module) -> Tensor:
    """Sum of :meth:`RepVGGBlock.get_custom_L2` over the training-time blocks of ``model``."""
    terms = [m.get_custom_L2() for m in model.modules()
             if isinstance(m, RepVGGBlock) and not m.deploy]
    if not terms:
        raise ValueError('custom L2 needs training-time RepVGG blocks; the model has none')
    return torch.stack(terms).sum()


@MODELS.register_module()
class ImageClassifier(BaseModel):
    """``head(global_avg_pool(backbone(x)[-1]))``.

    Args:
        backbone: config of the backbone (e.g. ``dict(type='RepVGG', arch='A0')``); it returns a
            tuple of feature maps whose last one is classified.
        head: config of the head (e.g. ``dict(type='LinearClsHead', num_classes=1000)``);
            ``in_channels`` defaults to the backbone's last ``out_channels``.
        data_preprocessor: batches and normalises the inputs (mmengine's ``ImgDataPreprocessor``
            by default).
        custom_l2_decay: when > 0, adds the RepVGG paper's custom L2
            ``0.5 * custom_l2_decay * sum(block.get_custom_L2())`` to the training loss
            (``loss_custom_l2``); switch weight decay off for the branch kernels then.
        init_cfg: mmengine initialisation config.
    """

    def __init__(self, backbone: dict, head: dict, data_preprocessor: Optional[dict] = None,
                 custom_l2_decay: float = 0.0, init_cfg=None):
        super().__init__(data_preprocessor=data_preprocessor or DEFAULT_PREPROCESSOR,
                         init_cfg=init_cfg)
        if custom_l2_decay < 0:
            raise ValueError(f'custom_l2_decay must be >= 0, got {custom_l2_decay}')
        self.backbone = MODELS.build(backbone)
        self.head = MODELS.build(self._head_cfg(head, self.backbone))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.custom_l2_decay = custom_l2_decay

    @staticmethod
    def _head_cfg(head: dict, backbone: nn.Module) -> dict:
        head = dict(head)
        channels = getattr(backbone, 'out_channels', None)
        feat_channels = channels[-1] if isinstance(channels, (tuple, list)) else channels
        if head.get('in_channels') is None:
            if feat_channels is None:
                raise ValueError('set head.in_channels: the backbone does not report out_channels')
            head['in_channels'] = feat_channels
        elif feat_channels is not None and head['in_channels'] != feat_channels:
            raise ValueError(f"head.in_channels={head['in_channels']} but the backbone's last "
                             f'feature map has {feat_channels} channels')
        return head

    def extract_feat(self, inputs: Tensor) -> Tensor:
        """Globally pooled features ``(N, C)`` of the backbone's last output."""
        feats = self.backbone(inputs)
        last = feats[-1] if isinstance(feats, (tuple, list)) else feats
        return torch.flatten(self.pool(last), 1)

    def forward(self, inputs: Tensor, data_samples: Optional[List[BaseDataElement]] = None,
                mode: str = 'tensor') -> Union[Tensor, dict, List[BaseDataElement]]:
        """``mode='tensor'``: logits; ``'loss'``: dict of losses; ``'predict'``: data samples."""
        if mode == 'tensor':
            return self.head(self.extract_feat(inputs))
        if mode == 'loss':
            return self.loss(inputs, data_samples)
        if mode == 'predict':
            return self.head.predict(self.extract_feat(inputs), data_samples)
        raise ValueError(f"mode must be 'tensor', 'loss' or 'predict', got {mode!r}")

    def loss(self, inputs: Tensor, data_samples: List[BaseDataElement]) -> dict:
        losses = self.head.loss(self.extract_feat(inputs), data_samples)
        if self.custom_l2_decay > 0:
            losses['loss_custom_l2'] = 0.5 * self.custom_l2_decay * custom_l2(self.backbone)
        return losses
