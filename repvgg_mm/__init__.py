"""repvgg_mm: RepVGG backbones, re-parameterisation and dense-prediction configs for OpenMMLab 2.x.

Layers (each imports only the ones listed before it; see README "Architecture"):
``registry``/``arch_settings``/``utils`` -> ``checkpoint`` -> ``models``/``datasets``/``evaluation``
-> ``engine``/``conversion``/``deploy``/``visualization`` -> ``apis``/``testing`` -> ``benchmark``.
"""
from .utils.safe_globals import register_safe_globals
from .version import __version__

# mmengine's Runner (and mmseg's/mmdet's stock scripts) load Runner checkpoints with torch.load;
# under torch>=2.6 that is weights-only loading, which needs mmengine's HistoryBuffer and numpy
# types allow-listed.
register_safe_globals()

__all__ = ['__version__']
