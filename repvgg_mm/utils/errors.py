"""The one error type of repvgg_mm: a problem the user can fix, told in one line."""


class UserError(Exception):
    """Bad input (file, config, option) or a refused result; ``str()`` is the one-line message.

    Tools print it as ``error: <message>`` on stderr and exit with :data:`EXIT_ERROR`.
    """


class CheckpointError(UserError):
    """A file that cannot be used as a checkpoint (missing, unreadable, untrusted, wrong
    content)."""


class ConversionError(UserError):
    """An input that cannot be converted, or a conversion that failed its checks."""


class ExportError(UserError, RuntimeError):
    """No exporter could write the model (the message has each exporter's first error line)."""


class MissingInputError(UserError, FileNotFoundError):
    """A file or folder a config needs does not exist (the message names the fix)."""


#: exit status of every tool when it reports an error (argparse uses the same for usage errors)
EXIT_ERROR = 2


def first_line(exc: BaseException) -> str:
    """``<Type>: <first line of the message>`` of a third-party exception (``<Type>`` alone if
    empty)."""
    text = str(exc).strip()
    return f'{type(exc).__name__}: {text.splitlines()[0]}' if text else type(exc).__name__


def error_line(exc: BaseException) -> str:
    """``error: <message>`` on one line (whitespace and newlines collapsed)."""
    message = ' '.join((str(exc) if isinstance(exc, UserError) else first_line(exc)).split())
    while message.lower().startswith('error:'):  # a wrapped message that says it already
        message = message[len('error:'):].lstrip()
    return 'error: ' + message
