"""Output files: atomic writes, and no write over an input of the run.

Every file is written to a temporary file beside its target, then moved onto it with
``os.replace``. Temporary names carry a marker only this project writes:
``.<target name>.repvgg_mm-tmp.<pid>.<random><ext>``. A process killed while writing (SIGKILL,
power loss) leaves such a file behind; the next write of the same target deletes those of its
temporaries whose writing process is gone (:func:`remove_stale_temps`), and nothing else.

A failed write (full disk, read-only folder, file size limit) is a one-line
:class:`~repvgg_mm.utils.errors.UserError` naming the target, and leaves neither the temporary
file, nor a folder made for it, nor a changed target.

The inputs of a run (registered with :func:`protect_inputs`, e.g. by the argument types of
:mod:`repvgg_mm.utils.argtypes`) are never written over: every write compares its target with them
by resolved path and by inode, so links are caught too (:func:`check_output_target`).
"""
import json
import os
import re
import shutil
import tempfile
from contextlib import contextmanager
from typing import Any, Callable, Dict, Iterator, List, Sequence

import torch

from .errors import UserError, first_line

TEMP_MARKER = 'repvgg_mm-tmp'
# What a full disk or a file size limit looks like in the errors of open/write and torch.save's
# zip writer.
_DISK_FULL_SIGNS = ('No space left', 'File too large', 'file write failed', 'unexpected pos',
                    'Disk quota exceeded')
_protected_inputs: Dict[str, str] = {}  # resolved path -> path as the user gave it


def protect_inputs(*paths: str) -> None:
    """Register input paths of this run: no later write may target them."""
    for path in paths:
        if path:
            _protected_inputs[os.path.realpath(path)] = path


def clear_protected_inputs() -> None:
    """Forget the registered inputs (at the start and end of every tool run)."""
    _protected_inputs.clear()


def same_file(a: str, b: str) -> bool:
    """Whether ``a`` and ``b`` name one file: the same resolved path, or hard links."""
    a, b = os.path.realpath(a), os.path.realpath(b)
    if a == b:
        return True
    try:
        return os.path.samefile(a, b)  # hard links
    except OSError:  # one of them does not exist
        return False


def check_output_target(path: str, inputs: Sequence[str] = ()) -> None:
    """Refuse an output ``path`` that is empty, a folder, an input of this run (registered or in
    ``inputs``), or lies in a folder that cannot be written; creates nothing."""
    if not path or not str(path).strip():
        raise UserError('the output path is empty; give a file name')
    path = os.fspath(path)
    if os.path.isdir(path):
        raise UserError(f'the output {path} is a folder; give a file name')
    for given in list(inputs) + list(_protected_inputs.values()):
        if same_file(path, given):
            raise UserError(f'refusing to write {path}: it is an input of this run ({given}); '
                            'choose another output')
    existing = os.path.dirname(os.path.abspath(path))
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        raise UserError(f'cannot write {path}: {existing} is a file, not a folder')
    if not os.access(existing, os.W_OK | os.X_OK):
        raise UserError(f'cannot write {path}: the folder {existing} is not writable')


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


def _temp_pattern(name: str) -> 're.Pattern':
    return re.compile(rf'^\.{re.escape(name)}\.{re.escape(TEMP_MARKER)}\.(?P<pid>\d+)\.'
                      rf'[A-Za-z0-9_]+{re.escape(os.path.splitext(name)[1])}$')


def remove_stale_temps(target: str) -> List[str]:
    """Delete the temporary files of ``target`` whose writer has died; return them."""
    folder, name = os.path.split(os.path.abspath(target))
    removed = []
    if not os.path.isdir(folder):
        return removed
    pattern = _temp_pattern(name)
    for entry in os.listdir(folder):
        match = pattern.match(entry)
        if match and int(match['pid']) != os.getpid() and not _pid_alive(int(match['pid'])):
            path = os.path.join(folder, entry)
            try:
                if os.path.isdir(path) and not os.path.islink(path):  # atomic_output_dir's
                    shutil.rmtree(path)
                else:
                    os.remove(path)
                removed.append(path)
            except FileNotFoundError:  # another run cleaned it first
                pass
    return removed


def _make_folders(folder: str) -> List[str]:
    """``os.makedirs(folder)``; return the folders it created, deepest first."""
    created = []
    current = folder
    while not os.path.exists(current):
        created.append(current)
        current = os.path.dirname(current)
    os.makedirs(folder, exist_ok=True)
    return created


def _remove_empty(folders: Sequence[str]) -> None:
    for folder in folders:  # deepest first
        try:
            os.rmdir(folder)
        except OSError:  # not empty (another writer), or already gone
            return


def _temp_beside(path: str, created: List[str]) -> str:
    check_output_target(path)
    folder, name = os.path.split(os.path.abspath(path))
    created.extend(_make_folders(folder))
    remove_stale_temps(path)
    fd, tmp = tempfile.mkstemp(prefix=f'.{name}.{TEMP_MARKER}.{os.getpid()}.',
                               suffix=os.path.splitext(name)[1], dir=folder)
    os.close(fd)
    return tmp


def write_error(path: str, exc: BaseException) -> UserError:
    """A one-line error for a failed write of ``path`` (with a hint when the disk looks full)."""
    reason = first_line(exc)
    if any(sign in reason for sign in _DISK_FULL_SIGNS):
        reason += ' (disk full or file size limit?)'
    return UserError(f'cannot write {path}: {reason}')


def _is_write_failure(exc: BaseException) -> bool:
    """An ``OSError``, or the ``RuntimeError`` of torch.save's zip writer on a full disk."""
    if isinstance(exc, UserError):
        return False
    if isinstance(exc, OSError):
        return True
    return isinstance(exc, RuntimeError) and (
        'PytorchStreamWriter' in str(exc) or any(sign in str(exc) for sign in _DISK_FULL_SIGNS))


def atomic_write_all(writers: Dict[str, Callable[[str], None]]) -> None:
    """Write several files all-or-nothing: each ``writer(tmp)`` fills a temporary file beside its
    target (same extension); only when all succeeded are they renamed onto the targets."""
    temps, created = {}, []
    current = None
    try:
        for path in writers:
            check_output_target(path)
        for path, write in writers.items():
            current = path
            temps[path] = _temp_beside(path, created)
            write(temps[path])
            os.chmod(temps[path], 0o666 & ~_umask())  # mkstemp creates 0600; use the usual mode
        for path, tmp in temps.items():
            current = path
            os.replace(tmp, path)
    except BaseException as exc:
        for tmp in temps.values():
            if os.path.exists(tmp):
                os.remove(tmp)
        _remove_empty(created)
        if _is_write_failure(exc):
            raise write_error(current, exc) from exc
        raise


@contextmanager
def atomic_output(path: str) -> Iterator[str]:
    """Yield a temporary path (same extension) beside ``path``; on success move it onto ``path``.

    On an exception the temporary file (and any folder made for it) is removed and ``path`` is
    left as it was.
    """
    created: List[str] = []
    tmp = _temp_beside(path, created)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException as exc:
        if os.path.exists(tmp):
            os.remove(tmp)
        _remove_empty(created)
        if _is_write_failure(exc):
            raise write_error(path, exc) from exc
        raise


@contextmanager
def atomic_output_dir(path: str, replace: bool = False) -> Iterator[str]:
    """Yield a new empty temporary folder beside ``path``; on success it becomes ``path``.

    All or nothing: on an exception the temporary folder (and any parent folder made for it) is
    removed and ``path`` is left as it was. An existing ``path`` is an error unless ``replace``:
    then it is moved aside, the new folder takes its name, and only then is the old one deleted
    (restored if the rename fails). The caller decides whether replacing is safe (no input inside
    it).
    """
    if os.path.exists(path) and not (replace and os.path.isdir(path)):
        raise UserError(f'{path} exists' + ('' if os.path.isdir(path) else ' and is not a folder'))
    for given in _protected_inputs.values():
        if same_file(path, given) or os.path.realpath(given).startswith(
                os.path.realpath(path) + os.sep):
            raise UserError(f'refusing to write {path}: it is or holds an input of this run '
                            f'({given}); choose another output')
    parent, name = os.path.split(os.path.abspath(path))
    created = _make_folders(parent)
    remove_stale_temps(path)
    prefix = f'.{name}.{TEMP_MARKER}.{os.getpid()}.'
    tmp = tempfile.mkdtemp(prefix=prefix, dir=parent)
    try:
        yield tmp
        os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp creates 0700; use the usual mode
        if not os.path.exists(path):
            os.rename(tmp, path)
            return
        old = tempfile.mkdtemp(prefix=prefix, dir=parent)
        os.rename(path, old)  # onto the empty folder just made: POSIX replaces it
        try:
            os.rename(tmp, path)
        except BaseException:
            os.rename(old, path)
            raise
        shutil.rmtree(old, ignore_errors=True)
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        _remove_empty(created)
        if _is_write_failure(exc):
            raise write_error(path, exc) from exc
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
