"""Atomic output files: write to a temporary file beside the target, then ``os.replace`` it."""
import json
import os
import tempfile
from contextlib import contextmanager
from typing import Any, Callable, Dict, Iterator

import torch


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _temp_beside(path: str, suffix: str) -> str:
    folder, name = os.path.split(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f'.{name}.', suffix=f'.tmp{suffix}', dir=folder)
    os.close(fd)
    return tmp


def atomic_write_all(writers: Dict[str, Callable[[str], None]]) -> None:
    """Write several files all-or-nothing: each ``writer(tmp)`` fills a temporary file beside its
    target (same extension); only when all succeeded are they renamed onto the targets."""
    temps = {}
    try:
        for path, write in writers.items():
            temps[path] = _temp_beside(path, os.path.splitext(path)[1])
            write(temps[path])
            os.chmod(temps[path], 0o666 & ~_umask())  # mkstemp creates 0600; use the usual mode
        for path, tmp in temps.items():
            os.replace(tmp, path)
    except BaseException:
        for tmp in temps.values():
            if os.path.exists(tmp):
                os.remove(tmp)
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
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
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
