from .loading import extract_state_dict, load_pretrained, load_state_dict_strict, strip_prefix
from .safe_load import CheckpointError, register_safe_globals, safe_load

__all__ = ['CheckpointError', 'extract_state_dict', 'load_pretrained', 'load_state_dict_strict',
           'register_safe_globals', 'safe_load', 'strip_prefix']
