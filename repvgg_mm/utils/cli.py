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
from typing import Callable, List, Optional, Sequence

from mmengine.config import DictAction

from .argtypes import check_size
from .errors import EXIT_ERROR, UserError, error_line, first_line
from .fileio import clear_protected_inputs

ONE_LINE_ERRORS = (UserError, OSError)


class ConfigOptions(DictAction):
    """mmengine's ``--cfg-options KEY=VALUE ...`` parser with one-line errors.

    mmengine's own action asserts on unbalanced brackets and keeps ``dict(...)`` or ``{...}`` values
    as strings (a config then fails much later, or silently does the wrong thing); here any value it
    cannot parse into a number, string, list or tuple is refused.
    """

    def __call__(self, parser, namespace, values, option_string=None):
        for item in values:
            key, sep, value = item.partition('=')
            if not sep or not key:
                raise UserError(f'--cfg-options takes KEY=VALUE pairs, got {item!r}')
            if value.lstrip().startswith(('dict(', '{')):
                raise UserError(f'--cfg-options {item!r}: dict values are not parsed; set each '
                                f'field with its own key, e.g. {key}.type=...')
            try:
                super().__call__(parser, namespace, [item], option_string)
            except Exception as exc:  # mmengine asserts on unbalanced brackets
                raise UserError(f'cannot parse --cfg-options {item!r}: {first_line(exc)}') from exc


def add_cfg_options(parser: argparse.ArgumentParser, example: str) -> None:
    """The shared ``--cfg-options`` argument (``example``: a KEY=VALUE to show in the help)."""
    parser.add_argument('--cfg-options', nargs='+', action=ConfigOptions, default={},
                        help=f'override config settings, e.g. {example} (lists: key="[a,b]" or '
                             'key=a,b; nested keys with dots)')


def add_verbose(parser: argparse.ArgumentParser) -> None:
    """The shared ``--verbose`` flag of the tools that run mmengine's Runner."""
    parser.add_argument('--verbose', action='store_true',
                        help='also print what goes to the log file only: the environment, the '
                             'config, the hook table and known upstream warnings')


class ToolArgumentParser(argparse.ArgumentParser):
    """argparse with the policy's one-line usage errors (``error: ...``, exit 2, no usage
    block)."""

    def error(self, message: str):
        print(f'error: {" ".join(message.split())} (see {self.prog} --help)', file=sys.stderr)
        sys.exit(EXIT_ERROR)

    def check_size(self, values: Optional[Sequence[int]], option: str,
                   lengths: Sequence[int] = (1, 2)) -> None:
        """A usage error unless the ``nargs='+'`` size ``values`` has one of ``lengths``."""
        try:
            check_size(values, option, lengths)
        except argparse.ArgumentTypeError as exc:
            self.error(str(exc))


def tool_parser(description: str, **kwargs) -> argparse.ArgumentParser:
    """An argument parser with the shared ``--debug`` flag and one-line usage errors."""
    parser = ToolArgumentParser(description=description, **kwargs)
    parser.add_argument('--debug', action='store_true',
                        help='show the full traceback of an error instead of one line')
    return parser


def run_tool(main: Callable[[Optional[List[str]]], Optional[int]],
             argv: Optional[List[str]] = None) -> int:
    """Run ``main(argv)`` under the policy above; return the exit status (for ``sys.exit``)."""
    args = sys.argv[1:] if argv is None else argv
    clear_protected_inputs()
    try:
        return int(main(argv) or 0)
    except ONE_LINE_ERRORS as exc:
        if '--debug' in args:
            raise
        print(error_line(exc), file=sys.stderr)
        return EXIT_ERROR
    except SystemExit as exc:  # argparse: --help (0) or a usage error already printed (2)
        return exc.code if isinstance(exc.code, int) else int(exc.code is not None)
    except KeyboardInterrupt:
        print('error: interrupted', file=sys.stderr)
        return 130
    finally:
        clear_protected_inputs()
