"""MTSPPF: the spatial-pyramid pooling block YOLOX-PAI puts after RepVGG's last stage."""
import torch
from mmcv.cnn import ConvModule
from mmengine.model import BaseModule
from torch import Tensor, nn

from repvgg_mm.registry import MODELS

from ..utils.weight_init import init_weights_cfg_last


@MODELS.register_module()
class MTSPPF(BaseModule):
    """1x1 conv to ``in_channels // 2``, three chained ``kernel_size`` max-pools (stride 1, same
    size), the four maps concatenated, 1x1 conv to ``out_channels`` (convs with norm and act).

    Key names (``conv1``, ``conv2``) are those of mmpretrain's ``RepVGG(add_ppf=True)``.
    Default init: Kaiming-normal convs and unit norms (as in RepVGGBlock); a given ``init_cfg`` is
    applied after it.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 5, conv_cfg=None,
                 norm_cfg=dict(type='BN'), act_cfg=dict(type='ReLU'), init_cfg=None):
        super().__init__(init_cfg)
        if kernel_size % 2 != 1:
            raise ValueError(f'kernel_size must be odd to keep the size, got {kernel_size}')
        hidden = in_channels // 2
        layer_cfg = dict(conv_cfg=conv_cfg, norm_cfg=norm_cfg, act_cfg=act_cfg)
        self.conv1 = ConvModule(in_channels, hidden, 1, **layer_cfg)
        self.pool = nn.MaxPool2d(kernel_size, stride=1, padding=kernel_size // 2)
        self.conv2 = ConvModule(4 * hidden, out_channels, 1, **layer_cfg)

    def forward(self, x: Tensor) -> Tensor:
        pyramid = [self.conv1(x)]
        for _ in range(3):
            pyramid.append(self.pool(pyramid[-1]))
        return self.conv2(torch.cat(pyramid, dim=1))

    def init_weights(self) -> None:
        init_weights_cfg_last(self)
