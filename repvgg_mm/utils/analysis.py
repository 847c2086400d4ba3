"""Parameter and FLOP counts with mmengine's analysis tools."""
from typing import Dict, Sequence

import torch
from mmengine.analysis import FlopAnalyzer, parameter_count
from torch import nn


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
