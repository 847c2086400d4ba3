from .layouts import (LAYOUTS, ParsedState, convert_state_dict, detect_layout, export_state_dict,
                      read_state_dict)
from .loading import (extract_state_dict, load_pretrained, load_state_dict_strict, read_checkpoint,
                      strip_prefix)
from .safe_load import CheckpointError, register_safe_globals, safe_load

__all__ = ['CheckpointError', 'LAYOUTS', 'ParsedState', 'convert_state_dict', 'detect_layout',
           'export_state_dict', 'extract_state_dict', 'load_pretrained', 'load_state_dict_strict',
           'read_checkpoint', 'read_state_dict', 'register_safe_globals', 'safe_load',
           'strip_prefix']
