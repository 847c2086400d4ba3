"""Atomic output files: write next to the target, then ``os.replace`` (no half-written outputs)."""
import os
import tempfile
from contextlib import contextmanager
from typing import Iterator


@contextmanager
def atomic_output(path: str, suffix: str = '') -> Iterator[str]:
    """Yield a temporary path in ``path``'s folder; on success move it onto ``path``.

    ``suffix`` keeps the extension for writers that infer the format from it (matplotlib, ONNX).
    On an exception the temporary file is removed and ``path`` is left as it was.
    """
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp_path = tempfile.mkstemp(prefix='.' + os.path.basename(path) + '.', suffix=suffix,
                                    dir=folder)
    os.close(fd)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    except BaseException:
        if os.path.exists(tmp_path):
            os.remove(tmp_path)
        raise


def write_text_atomic(path: str, text: str) -> None:
    with atomic_output(path) as tmp_path, open(tmp_path, 'w', encoding='utf-8') as handle:
        handle.write(text)
