"""Atomic output files: write to a temporary file beside the target, then ``os.replace`` it.

Temporary files are named ``.<target name>.<pid>.<random>.tmp<ext>``: a process killed while
writing (SIGKILL, power loss) leaves such a file behind, and :func:`remove_stale_temps` (run before
every write) deletes those whose writing process is gone. A failed write (full disk, read-only
folder, file size limit) is a one-line :class:`~repvgg_mm.utils.errors.UserError` naming the
target, and leaves neither the temporary file nor a changed target.
"""
import json
import os
import re
import shutil
import tempfile
from contextlib import contextmanager
from typing import Any, Callable, Dict, Iterator, List

import torch

from .errors import UserError, first_line

_TEMP_NAME = re.compile(r'^\.(?P<target>.+)\.(?P<pid>\d+)\.[^.]+\.tmp[^/]*$')


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by someone else
        return True
    return True


def remove_stale_temps(folder: str) -> List[str]:
    """Delete the temporary files of our naming in ``folder`` whose writer has died; return them."""
    removed = []
    if not os.path.isdir(folder):
        return removed
    for name in os.listdir(folder):
        match = _TEMP_NAME.match(name)
        if match and int(match['pid']) != os.getpid() and not _pid_alive(int(match['pid'])):
            path = os.path.join(folder, name)
            try:
                if os.path.isdir(path) and not os.path.islink(path):  # atomic_output_dir's
                    shutil.rmtree(path)
                else:
                    os.remove(path)
                removed.append(path)
            except FileNotFoundError:  # another run cleaned it first
                pass
    return removed


def _temp_beside(path: str, suffix: str) -> str:
    folder, name = os.path.split(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    remove_stale_temps(folder)
    fd, tmp = tempfile.mkstemp(prefix=f'.{name}.{os.getpid()}.', suffix=f'.tmp{suffix}',
                               dir=folder)
    os.close(fd)
    return tmp


def _write_error(path: str, exc: BaseException) -> UserError:
    reason = first_line(exc)
    if 'file write failed' in reason or 'No space left' in reason or 'File too large' in reason:
        reason += ' (disk full or file size limit?)'
    return UserError(f'cannot write {path}: {reason}')


def atomic_write_all(writers: Dict[str, Callable[[str], None]]) -> None:
    """Write several files all-or-nothing: each ``writer(tmp)`` fills a temporary file beside its
    target (same extension); only when all succeeded are they renamed onto the targets."""
    temps = {}
    current = None
    try:
        for path, write in writers.items():
            current = path
            temps[path] = _temp_beside(path, os.path.splitext(path)[1])
            write(temps[path])
            os.chmod(temps[path], 0o666 & ~_umask())  # mkstemp creates 0600; use the usual mode
        for path, tmp in temps.items():
            current = path
            os.replace(tmp, path)
    except BaseException as exc:
        for tmp in temps.values():
            if os.path.exists(tmp):
                os.remove(tmp)
        # torch.save reports a full disk as a RuntimeError from its zip writer
        if isinstance(exc, (OSError, RuntimeError)) and not isinstance(exc, UserError):
            raise _write_error(current, exc) from exc
        raise


@contextmanager
def atomic_output(path: str) -> Iterator[str]:
    """Yield a temporary path (same extension) beside ``path``; on success move it onto ``path``.

    On an exception the temporary file is removed and ``path`` is left as it was.
    """
    tmp = _temp_beside(path, os.path.splitext(path)[1])
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException as exc:
        if os.path.exists(tmp):
            os.remove(tmp)
        if isinstance(exc, OSError):
            raise _write_error(path, exc) from exc
        raise


@contextmanager
def atomic_output_dir(path: str, replace: bool = False) -> Iterator[str]:
    """Yield a new empty temporary folder beside ``path``; on success it becomes ``path``.

    All or nothing: on an exception the temporary folder is removed and ``path`` is left as it
    was. An existing ``path`` is an error unless ``replace``: then it is moved aside, the new
    folder takes its name, and only then is the old one deleted (restored if the rename fails).
    The caller decides whether replacing is safe (no input inside it).
    """
    if os.path.exists(path) and not (replace and os.path.isdir(path)):
        raise UserError(f'{path} exists' + ('' if os.path.isdir(path) else ' and is not a folder'))
    parent, name = os.path.split(os.path.abspath(path))
    os.makedirs(parent, exist_ok=True)
    remove_stale_temps(parent)
    tmp = tempfile.mkdtemp(prefix=f'.{name}.{os.getpid()}.', suffix='.tmp', dir=parent)
    try:
        yield tmp
        os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp creates 0700; use the usual mode
        if not os.path.exists(path):
            os.rename(tmp, path)
            return
        old = tempfile.mkdtemp(prefix=f'.{name}.{os.getpid()}.', suffix='.tmp', dir=parent)
        os.rename(path, old)  # onto the empty folder just made: POSIX replaces it
        try:
            os.rename(tmp, path)
        except BaseException:
            os.rename(old, path)
            raise
        shutil.rmtree(old, ignore_errors=True)
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(exc, OSError) and not isinstance(exc, UserError):
            raise _write_error(path, exc) from exc
        raise


def atomic_torch_save(obj: Any, path: str) -> None:
    """``torch.save`` through a temporary file and ``os.replace``."""
    atomic_write_all({path: lambda tmp: torch.save(obj, tmp)})


def write_text_atomic(path: str, text: str) -> None:
    with atomic_output(path) as tmp, open(tmp, 'w', encoding='utf-8') as handle:
        handle.write(text)


def jsonable(value: Any) -> Any:
    """``value`` with numpy/torch scalars and arrays turned into plain Python numbers/lists."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if hasattr(value, 'tolist'):
        return value.tolist()
    return value


def write_json_atomic(data: Any, path: str) -> None:
    """Write ``data`` (numpy/torch values allowed) as indented JSON, atomically."""
    write_text_atomic(path, json.dumps(jsonable(data), indent=2))
