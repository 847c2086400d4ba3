"""The command-line policy's runner: `error: <one line>` on stderr, exit status 2, --debug shows
the traceback, bugs keep theirs (every tool: tests/test_tools/test_command_line_policy.py)."""
import pytest

from repvgg_mm.utils.cli import run_tool
from repvgg_mm.utils.errors import UserError


def test_debug_shows_the_traceback():
    def main(argv):
        raise UserError('bad input')
    with pytest.raises(UserError, match='bad input'):
        run_tool(main, ['--debug'])


def test_bugs_keep_their_traceback():
    def main(argv):
        raise KeyError('a bug, not bad input')
    with pytest.raises(KeyError):
        run_tool(main, [])
