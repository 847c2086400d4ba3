"""What a run writes into its work dir: atomic checkpoint files, the lock of a live training run,
and nothing at all when the run fails before its first checkpoint.

* :class:`AtomicLocalBackend` (mmengine file backend ``repvgg_mm_local``): checkpoints written
  through a temporary file and ``os.replace`` (:mod:`repvgg_mm.utils.fileio`), so a full disk or a
  killed process never leaves a truncated ``.pth``; a failed write is one line naming the file.
* :class:`WorkDirLock`: a training run holds ``<work_dir>/.repvgg_mm_train.lock`` (an exclusive
  ``flock``, released by the operating system when the process is gone, however it ends; the file
  records the owner's PID). A second training run into the same work dir is refused while the
  first lives; a lock left by a dead process is taken over.
* :func:`run_files`: a run that fails before it wrote a checkpoint removes what it created in the
  work dir (its timestamped log folder, the dumped config, the work dir itself if it made it).
"""
import fcntl
import json
import os
import shutil
import socket
import time
from contextlib import contextmanager
from typing import Iterator, Optional, Union

from mmengine.fileio import LocalBackend, register_backend

from repvgg_mm.utils.errors import UserError, first_line
from repvgg_mm.utils.fileio import atomic_output, write_error

from .distributed import is_main_rank

ATOMIC_BACKEND = 'repvgg_mm_local'
LOCK_NAME = '.repvgg_mm_train.lock'
CHECKPOINT_SUFFIXES = ('.pth', '.safetensors')


class AtomicLocalBackend(LocalBackend):
    """mmengine's local file backend with atomic ``put``/``put_text`` (temporary file + rename)."""

    def put(self, obj: bytes, filepath: Union[str, os.PathLike]) -> None:
        with atomic_output(os.fspath(filepath)) as tmp, open(tmp, 'wb') as handle:
            handle.write(obj)

    def put_text(self, obj: str, filepath: Union[str, os.PathLike],
                 encoding: str = 'utf-8') -> None:
        with atomic_output(os.fspath(filepath)) as tmp, open(tmp, 'w',
                                                              encoding=encoding) as handle:
            handle.write(obj)


register_backend(ATOMIC_BACKEND, AtomicLocalBackend, force=True)


class WorkDirLock:
    """The exclusive lock of a live training run on its work dir (see the module docstring)."""

    def __init__(self, work_dir: str):
        self.work_dir = work_dir
        self.path = os.path.join(work_dir, LOCK_NAME)
        self._fd: Optional[int] = None

    def _owner(self, fd: int) -> str:
        try:
            owner = json.loads(os.pread(fd, 4096, 0).decode() or '{}')
        except (OSError, ValueError):
            return 'another process'
        return (f"PID {owner.get('pid', '?')} on {owner.get('host', '?')}, started "
                f"{owner.get('started', '?')}")

    def acquire(self) -> None:
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                owner = self._owner(fd)
                os.close(fd)
                raise UserError(
                    f'{self.work_dir} is in use by a live training run ({owner}); wait for it to '
                    'end or stop it (docs/distributed.md), or choose another --work-dir'
                ) from None
            try:  # the file may have been removed by its previous owner after we opened it
                same = os.stat(self.path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(dict(pid=os.getpid(), host=socket.gethostname(),
                                      started=time.strftime('%Y-%m-%d %H:%M:%S'))).encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is None:
            return
        try:
            os.remove(self.path)
        except FileNotFoundError:
            pass
        os.close(self._fd)  # closing releases the flock
        self._fd = None


def _wrote_checkpoint(new_entries) -> bool:
    return any(name == 'last_checkpoint' or name.endswith(CHECKPOINT_SUFFIXES)
               for name in new_entries)


def _remove(path: str) -> None:
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path, ignore_errors=True)
    else:
        try:
            os.remove(path)
        except FileNotFoundError:
            pass


@contextmanager
def run_files(work_dir: str, lock: bool = False) -> Iterator[None]:
    """Prepare ``work_dir`` for a run (created, writable, locked for training runs); if the run
    fails before it wrote a checkpoint, remove what it created there."""
    created = not os.path.exists(work_dir)
    try:
        os.makedirs(work_dir, exist_ok=True)
        before = set(os.listdir(work_dir))
        probe = os.path.join(work_dir, f'.repvgg_mm-probe.{os.getpid()}')
        with open(probe, 'w'):
            pass
        os.remove(probe)
    except OSError as exc:
        raise UserError(f'work_dir {work_dir} is not a writable folder: {first_line(exc)}') from exc
    holder = WorkDirLock(work_dir) if lock and is_main_rank() else None
    try:
        if holder is not None:
            holder.acquire()
        yield
    except BaseException:
        if is_main_rank():
            new = set(os.listdir(work_dir)) - before - {LOCK_NAME} if os.path.isdir(
                work_dir) else set()
            if not _wrote_checkpoint(new):
                for name in new:
                    _remove(os.path.join(work_dir, name))
        raise
    finally:
        if holder is not None:
            holder.release()
        if created and is_main_rank() and os.path.isdir(work_dir) and not os.listdir(work_dir):
            os.rmdir(work_dir)


def disk_error(work_dir: str, exc: OSError) -> UserError:
    """A one-line error for an ``OSError`` raised while a run writes (a full disk names no file
    in its message: say where the run was writing)."""
    path = getattr(exc, 'filename', None) or work_dir
    return write_error(path, exc)
