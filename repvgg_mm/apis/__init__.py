"""Train/test entry points shared by tools/train.py and tools/test.py."""
from .launch import (SCOPES, USER_ERRORS, UserError, build_runner, error_line, load_config,
                     setup_codebase, test, train, write_json_atomic)

__all__ = ['SCOPES', 'USER_ERRORS', 'UserError', 'build_runner', 'error_line', 'load_config',
           'setup_codebase', 'test', 'train', 'write_json_atomic']
