"""The command-line policy shared by every tool in tools/.

* bad input or a refused result: ``error: <one line>`` on stderr and exit status 2
  (:data:`~repvgg_mm.utils.errors.EXIT_ERROR`, the status argparse uses for usage errors);
* ``--debug``: the full traceback instead;
* success: exit status 0.

Errors reported in one line: :class:`~repvgg_mm.utils.errors.UserError` and ``OSError`` (missing,
unreadable or unwritable files, a full disk: the message names the path). Anything else is a bug
and keeps its traceback.
"""
import argparse
import sys
from typing import Callable, List, Optional

from .errors import EXIT_ERROR, UserError, error_line

ONE_LINE_ERRORS = (UserError, OSError)


def tool_parser(description: str, **kwargs) -> argparse.ArgumentParser:
    """An ``ArgumentParser`` with the shared ``--debug`` flag."""
    parser = argparse.ArgumentParser(description=description, **kwargs)
    parser.add_argument('--debug', action='store_true',
                        help='show the full traceback of an error instead of one line')
    return parser


def run_tool(main: Callable[[Optional[List[str]]], Optional[int]],
             argv: Optional[List[str]] = None) -> int:
    """Run ``main(argv)`` under the policy above; return the exit status (for ``sys.exit``)."""
    args = sys.argv[1:] if argv is None else argv
    try:
        return int(main(argv) or 0)
    except ONE_LINE_ERRORS as exc:
        if '--debug' in args:
            raise
        print(error_line(exc), file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print('error: interrupted', file=sys.stderr)
        return 130
