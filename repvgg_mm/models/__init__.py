"""Models of repvgg_mm; importing this registers them in the ``repvgg_mm`` scope."""
from .backbones import ARCH_NAMES, ARCH_SETTINGS, RepVGG, arch_channels, resolve_arch
from .blocks import RepVGGBlock, SqueezeExcitation
from .classifiers import ImageClassifier, custom_l2
from .heads import LinearClsHead

__all__ = ['ARCH_NAMES', 'ARCH_SETTINGS', 'ImageClassifier', 'LinearClsHead', 'RepVGG',
           'RepVGGBlock', 'SqueezeExcitation', 'arch_channels', 'custom_l2', 'resolve_arch']
