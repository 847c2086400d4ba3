"""The plain classifier network of the paper's tables: backbone, global pooling, linear layer."""
import torch
from torch import nn


class LinearClassifierNet(nn.Module):
    """Backbone + global average pooling + linear layer: the network the paper's table counts
    (one tensor in, logits out; no data preprocessor or loss, unlike :class:`ImageClassifier`)."""

    def __init__(self, backbone: nn.Module, num_classes: int = 1000):
        super().__init__()
        self.backbone = backbone
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(backbone.out_channels[-1], num_classes)

    def forward(self, x):
        return self.fc(torch.flatten(self.pool(self.backbone(x)[-1]), 1))
