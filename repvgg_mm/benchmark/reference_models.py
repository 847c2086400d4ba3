"""Models the benchmarks measure beside ours: torchvision ResNets and timm's RepVGG (random
weights, nothing downloads)."""
from typing import Union

from torch import nn

from repvgg_mm.models import LinearClassifierNet, RepVGG

ArchSpec = Union[str, dict]


def repvgg_classifier(arch: ArchSpec = 'A0', num_classes: int = 1000,
                      block_type: str = 'repvgg') -> nn.Module:
    """Training-time RepVGG + global pooling + linear layer (the network of the paper's table)."""
    return LinearClassifierNet(RepVGG(arch, block_type=block_type), num_classes)


def torchvision_resnet(depth: int, num_classes: int = 1000) -> nn.Module:
    """torchvision's ResNet-``depth`` with random weights (nothing downloads)."""
    import torchvision
    builders = {18: torchvision.models.resnet18, 34: torchvision.models.resnet34,
                50: torchvision.models.resnet50, 101: torchvision.models.resnet101}
    if depth not in builders:
        raise KeyError(f'no torchvision ResNet-{depth}; choose one of {sorted(builders)}')
    return builders[depth](weights=None, num_classes=num_classes)


def timm_repvgg(arch: str) -> nn.Module:
    """timm's training-time RepVGG of the same arch (an optional benchmark reference: needs
    timm)."""
    try:
        import timm
    except ImportError as error:
        raise ImportError('the timm comparison needs timm (pip install timm)') from error
    return timm.create_model(f'repvgg_{arch.lower()}', pretrained=False)


def timm_reparameterize(model: nn.Module) -> nn.Module:
    """timm's own fusion (``timm.utils.reparameterize_model``) of a copy of ``model``."""
    from timm.utils import reparameterize_model
    return reparameterize_model(model.eval(), inplace=False)
