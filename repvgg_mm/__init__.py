"""repvgg_mm: RepVGG backbones, re-parameterisation and dense-prediction configs for OpenMMLab 2.x."""
from .checkpoint.safe_load import register_safe_globals

__version__ = '0.1.0'

# mmengine's Runner loads its own checkpoints with torch.load; under torch>=2.6 that is weights_only
# loading, which needs mmengine's HistoryBuffer and numpy types allow-listed.
register_safe_globals()
