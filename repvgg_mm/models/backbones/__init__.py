from repvgg_mm.arch_settings import (
           ARCH_NAMES,
           ARCH_SETTINGS,
           PAPER_TABLE,
           arch_channels,
           resolve_arch,
)

from .mtsppf import MTSPPF
from .repvgg import RepVGG

__all__ = ['ARCH_NAMES', 'ARCH_SETTINGS', 'MTSPPF', 'PAPER_TABLE', 'RepVGG', 'arch_channels',
           'resolve_arch']
