"""Models of repvgg_mm; importing this registers them in the ``repvgg_mm`` scope."""
from .backbones import ARCH_NAMES, ARCH_SETTINGS, PAPER_TABLE, RepVGG, arch_channels, resolve_arch
from .blocks import (
    FusedBNBlock,
    LinearRepVGGBlock,
    QARepVGGBlock,
    RepVGGBlock,
    SqueezeExcitation,
)
from .builder import build_analysis_model
from .classifiers import ImageClassifier, LinearClassifierNet, custom_l2
from .heads import LinearClsHead
from .utils import fuse_repvgg_blocks, fused_state_dict, iter_repvgg_blocks, randomize_bn_

__all__ = ['ARCH_NAMES', 'ARCH_SETTINGS', 'FusedBNBlock', 'PAPER_TABLE', 'ImageClassifier',
           'LinearClassifierNet', 'LinearClsHead', 'LinearRepVGGBlock', 'QARepVGGBlock', 'RepVGG',
           'RepVGGBlock', 'SqueezeExcitation', 'arch_channels', 'build_analysis_model', 'custom_l2',
           'fuse_repvgg_blocks', 'fused_state_dict', 'iter_repvgg_blocks', 'randomize_bn_',
           'resolve_arch']
