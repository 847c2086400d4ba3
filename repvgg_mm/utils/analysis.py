"""Parameter and FLOP counts with mmengine's analysis tools."""
from typing import Dict, Sequence

import torch
from mmengine.analysis import FlopAnalyzer, parameter_count
from torch import nn


class LinearClassifierNet(nn.Module):
    """Backbone + global average pooling + linear layer: the network the paper's table counts."""

    def __init__(self, backbone: nn.Module, num_classes: int = 1000):
        super().__init__()
        self.backbone = backbone
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(backbone.out_channels[-1], num_classes)

    def forward(self, x):
        return self.fc(torch.flatten(self.pool(self.backbone(x)[-1]), 1))


def complexity(model: nn.Module, input_shape: Sequence[int] = (3, 224, 224)) -> Dict[str, float]:
    """``{'params': count, 'flops': multiply-adds}`` of ``model`` for one input of
    ``input_shape``."""
    param = next(model.parameters())
    inputs = torch.zeros((1, *input_shape), dtype=param.dtype, device=param.device)
    was_training = model.training
    model.eval()
    try:
        analyzer = FlopAnalyzer(model, inputs)
        analyzer.unsupported_ops_warnings(False)
        analyzer.uncalled_modules_warnings(False)
        flops = analyzer.total()
    finally:
        model.train(was_training)
    return dict(params=parameter_count(model)[''], flops=flops)
