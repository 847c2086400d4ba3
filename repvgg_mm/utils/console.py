"""What the terminal shows: progress and results; the rest goes to the run's log file.

OpenMMLab prints warnings on every run that a user can do nothing about (mmseg's ``build_loss``
deprecation, ``avg_non_ignore``, ...). :class:`WarningRouter` writes every warning to the run's log
file (:meth:`WarningRouter.attach` names it; until then they wait) and shows on the terminal all
but those known ones, unless ``verbose``. Nothing is filtered away: a warning that never reaches a
log file is shown when the router closes, and unknown warnings (a deprecation in torch, say)
always reach the terminal.
"""
import sys
import warnings
from typing import Callable, List, Optional, Tuple

#: ``(category, start of the message)`` of the warnings OpenMMLab raises on every normal run
KNOWN_UPSTREAM_WARNINGS = (
    (UserWarning, '``build_loss`` would be deprecated soon'),
    (UserWarning, 'Default ``avg_non_ignore`` is False'),
    (UserWarning, 'The draw is False'),
    (UserWarning, 'The "weights" and "init_cfg" are both None'),
)

#: starts of the log messages OpenMMLab writes on every normal run and a user can do nothing about
KNOWN_UPSTREAM_LOG_LINES = (
    'The prefix is not set in metric class',
    '"FileClient" will be deprecated in future',
    '"HardDiskBackend" is the alias of "LocalBackend"',
)

_current: List['WarningRouter'] = []


def is_known_upstream(message, category: type) -> bool:
    text = str(message)
    return any(issubclass(category, kind) and text.startswith(start)
               for kind, start in KNOWN_UPSTREAM_WARNINGS)


class WarningRouter:
    """While active (a context manager): every warning shown goes to the log sink, known upstream
    ones only there (unless ``verbose``)."""

    def __init__(self, verbose: bool = False):
        self.verbose = verbose
        self.sink: Optional[Callable[[str], None]] = None
        self.pending: List[Tuple[str, bool]] = []  # (text, shown on the terminal)
        self._show = None

    def attach(self, sink: Callable[[str], None]) -> None:
        """Write to ``sink`` (e.g. the run's log file) from now on, the waiting warnings first."""
        self.sink = sink
        for text, _ in self.pending:
            sink(text)
        self.pending = []

    def _showwarning(self, message, category, filename, lineno, file=None, line=None):
        text = warnings.formatwarning(message, category, filename, lineno, line).rstrip('\n')
        shown = self.verbose or not is_known_upstream(message, category)
        if self.sink is not None:
            self.sink(text)
        else:
            self.pending.append((text, shown))
        if shown:
            self._show(message, category, filename, lineno, file, line)

    def __enter__(self) -> 'WarningRouter':
        self._show, warnings.showwarning = warnings.showwarning, self._showwarning
        _current.append(self)
        return self

    def __exit__(self, *exc) -> None:
        warnings.showwarning = self._show
        _current.remove(self)
        for text, shown in self.pending:  # no log file came: the terminal gets them after all
            if not shown:
                print(text, file=sys.stderr)
        self.pending = []


def current_router() -> Optional[WarningRouter]:
    """The innermost active :class:`WarningRouter`, if any."""
    return _current[-1] if _current else None
