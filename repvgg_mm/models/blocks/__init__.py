from .repvgg_block import RepVGGBlock
from .se_layer import SqueezeExcitation

__all__ = ['RepVGGBlock', 'SqueezeExcitation']
