"""Squeeze-and-excitation with global pooling (works on any input size)."""
from mmcv.cnn import ConvModule
from mmengine.model import BaseModule
from torch import nn

from ..utils.weight_init import init_weights_cfg_last


class SqueezeExcitation(BaseModule):
    """``x * sigmoid(up(relu(down(avgpool(x)))))``, as in RepVGG-D2se (hidden = channels // ratio).

    Default init: :func:`default_init_`; a given ``init_cfg`` is applied after it.
    """

    def __init__(self, channels: int, ratio: int = 16, conv_cfg=None, init_cfg=None):
        super().__init__(init_cfg)
        hidden = max(channels // ratio, 1)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.down = ConvModule(channels, hidden, 1, bias=True, conv_cfg=conv_cfg,
                               act_cfg=dict(type='ReLU'))
        self.up = ConvModule(hidden, channels, 1, bias=True, conv_cfg=conv_cfg,
                             act_cfg=dict(type='Sigmoid'))

    def forward(self, x):
        return x * self.up(self.down(self.pool(x)))

    def init_weights(self) -> None:
        init_weights_cfg_last(self)
