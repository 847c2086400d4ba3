"""Memory probes: bytes autograd saves for backward, and the peak RSS of a workload measured in a
process of its own.

``ru_maxrss`` is a process's peak, imports included, so a peak of one workload needs a fresh
process: :func:`run_workers` starts ``python -m repvgg_mm.benchmark.memory FUNCTION KWARGS OUT``
for each job (a few at a time); the function (``module:name``) runs there, resets the peak mark
with :func:`reset_peak_rss` once its model is built, and returns a dict that lands in OUT.
"""
import json
import os
import resource
import signal
import subprocess
import sys
import tempfile
from importlib import import_module
from typing import Callable, Dict, Hashable, Iterable, List, Optional, Tuple

import torch
from torch import Tensor, nn

from repvgg_mm.utils.errors import UserError
from repvgg_mm.utils.fileio import write_json_atomic


def mib(nbytes: float) -> float:
    return nbytes / 2 ** 20


def storage_key(tensor: Tensor) -> Tuple[int, int]:
    """``(data_ptr, nbytes)`` of the storage behind ``tensor``."""
    storage = tensor.untyped_storage()
    return storage.data_ptr(), storage.nbytes()


class SavedTensors:
    """Bytes of the tensors autograd saves for backward while active: each storage counted once
    (by its address), storages of ``persistent`` tensors (parameters, buffers, inputs) left out.

        with SavedTensors(persistent_tensors(model, x)) as saved:
            out = model(x)
        saved.nbytes
    """

    def __init__(self, persistent: Iterable[Tensor] = ()):
        self.persistent = {storage_key(t)[0] for t in persistent}
        self.storages: Dict[int, int] = {}
        self._hooks = torch.autograd.graph.saved_tensors_hooks(self._pack, lambda t: t)

    def _pack(self, tensor: Tensor) -> Tensor:
        if tensor.layout == torch.strided and tensor.device.type != 'meta':
            ptr, nbytes = storage_key(tensor)
            if ptr and ptr not in self.persistent:
                self.storages[ptr] = max(self.storages.get(ptr, 0), nbytes)
        return tensor

    @property
    def nbytes(self) -> int:
        return sum(self.storages.values())

    def __enter__(self) -> 'SavedTensors':
        self._hooks.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self._hooks.__exit__(*exc)


def persistent_tensors(model: nn.Module, *inputs: Tensor) -> List[Tensor]:
    """The tensors that outlive a step: ``model``'s parameters and buffers, and ``inputs``."""
    return [*model.parameters(), *model.buffers(), *inputs]


def rss_bytes() -> int:
    """Current resident set size of this process."""
    with open('/proc/self/statm') as handle:
        return int(handle.read().split()[1]) * os.sysconf('SC_PAGE_SIZE')


def peak_rss_bytes() -> int:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == 'darwin' else peak * 1024  # Linux reports KiB


def reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS mark of this process (Linux >= 4.0); False if not possible."""
    try:
        with open('/proc/self/clear_refs', 'w') as handle:
            handle.write('5')
        return True
    except OSError:
        return False


# A child exec'd straight from a large process inherits its peak RSS: exec keeps the old address
# space's high-water mark in the process's ru_maxrss (Linux signal->maxrss; Python spawns with
# vfork, so the old address space is the parent's). A small launcher in between forks the worker
# from its own tiny address space, so the worker's ru_maxrss is its own.
LAUNCHER = 'import subprocess, sys; sys.exit(subprocess.call(sys.argv[1:]))'


def worker_command(function: str, kwargs: dict, out: str) -> List[str]:
    """The command that runs ``function`` (``'module:name'``) with ``kwargs`` in a fresh process
    and writes its result to ``out``."""
    return [sys.executable, '-c', LAUNCHER, sys.executable, '-m', __name__, function,
            json.dumps(kwargs), out]


def run_workers(jobs: Dict[Hashable, Tuple[str, dict]], parallel: int = 1,
                on_start: Optional[Callable[[Hashable], None]] = None) -> Dict[Hashable, dict]:
    """``{key: result}`` of ``{key: (function, kwargs)}``, each job in its own process,
    ``parallel`` at a time. Each runs in its own process group, ended with it if anything fails
    here; a failed job is a :class:`UserError` with the last line of its output."""
    pending, running, results = list(jobs.items()), [], {}
    with tempfile.TemporaryDirectory(prefix='repvgg_mm_workers_') as folder:
        try:
            while pending or running:
                while pending and len(running) < parallel:
                    key, (function, kwargs) = pending.pop(0)
                    out = os.path.join(folder, f'{len(results) + len(running)}.json')
                    if on_start is not None:
                        on_start(key)
                    with open(out + '.log', 'w') as log:
                        proc = subprocess.Popen(worker_command(function, kwargs, out),
                                                stdout=subprocess.DEVNULL, stderr=log,
                                                start_new_session=True)
                    running.append((key, out, proc))
                key, out, proc = running.pop(0)
                proc.wait()
                if proc.returncode != 0 or not os.path.exists(out):
                    with open(out + '.log') as log:
                        tail = log.read().strip().splitlines()[-1:]
                    raise UserError(f'the worker of {key} failed with status {proc.returncode}: '
                                    f'{" ".join(tail) or "no output"}')
                with open(out) as handle:
                    results[key] = json.load(handle)
        finally:
            for *_, proc in running:  # only after a failure or an interrupt
                if proc.poll() is None:
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
    return results


def _worker_main(function: str, kwargs: str, out: str) -> None:
    module, _, name = function.partition(':')
    result = getattr(import_module(module), name)(**json.loads(kwargs))
    write_json_atomic(result, out)


if __name__ == '__main__':
    _worker_main(*sys.argv[1:])
