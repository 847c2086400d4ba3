"""Multi-process runs without CUDA: what MMEngine's ``--launcher pytorch`` path needs on CPU.

MMEngine's launcher assumes one GPU per process: ``init_dist`` pins ``torch.cuda.set_device`` and
the Runner wraps the model in ``MMDistributedDataParallel(device_ids=[LOCAL_RANK])``; torch's
``SyncBatchNorm`` rejects CPU tensors once a process group exists. :func:`adapt_to_cpu` changes
the config so the same torchrun launch (``tools/dist_train.sh``) runs on CPU processes:

* the process group uses ``gloo`` (the config's ``env_cfg.dist_cfg.backend`` is usually nccl),
  initialised from torchrun's environment exactly as ``init_dist`` does, minus the CUDA pinning;
* MMEngine's DDP wrapper gets ``device_ids=None`` (the form DDP requires for CPU modules);
* ``SyncBN`` / ``MMSyncBN`` norm layers of the model become ``BN`` (statistics per process).

With CUDA available nothing changes.
"""
import atexit
import ctypes
import datetime
import logging
import os
import signal
import sys
import time

import torch
from mmengine.config import Config
from mmengine.logging import print_log

from repvgg_mm.utils.config import replace_sync_bn
from repvgg_mm.utils.errors import UserError

DDP_WRAPPER = 'MMDistributedDataParallel'


def is_main_rank() -> bool:
    """Rank 0 of a torchrun job (or a single process); valid before mmengine knows the rank
    (torchrun sets RANK)."""
    return int(os.environ.get('RANK', '0')) == 0


def _log(message: str, level: int = logging.INFO) -> None:
    """Log once per job (rank 0)."""
    if is_main_rank():
        print_log(message, logger='current', level=level)


def revert_sync_bn(cfg: Config) -> int:
    """Turn the model's SyncBN norm configs into BN (SyncBatchNorm needs CUDA); return how many."""
    model, count = replace_sync_bn(cfg.model)
    if count:
        cfg.model = model
        several = cfg.get('launcher', 'none') != 'none'
        _log(f'no CUDA device: {count} SyncBN norm configs of the model built as BN instead '
             '(torch SyncBatchNorm only runs on GPU tensors)'
             + ('; each process normalises with its own batch statistics' if several else ''),
             logging.WARNING)
    if cfg.get('sync_bn') is not None:
        _log(f"no CUDA device: sync_bn={cfg.sync_bn!r} ignored (SyncBatchNorm needs CUDA)",
             logging.WARNING)
        cfg.sync_bn = None
    return count


def use_gloo(cfg: Config) -> None:
    """Set ``env_cfg.dist_cfg.backend='gloo'`` (nccl needs CUDA)."""
    env_cfg = cfg.get('env_cfg') or {}
    dist_cfg = dict(env_cfg.get('dist_cfg') or {})
    backend = dist_cfg.get('backend', 'nccl')
    if backend != 'gloo':
        _log(f"no CUDA device: distributed backend 'gloo' instead of {backend!r}")
    dist_cfg['backend'] = 'gloo'
    env_cfg = dict(env_cfg, dist_cfg=dist_cfg)
    cfg.env_cfg = env_cfg


def init_process_group(dist_cfg: dict) -> None:
    """``torch.distributed.init_process_group`` from torchrun's environment (RANK, WORLD_SIZE,
    MASTER_ADDR, MASTER_PORT), as MMEngine's ``init_dist`` does but without
    ``torch.cuda.set_device``; MMEngine's Runner then finds the group ready and uses it."""
    from torch import distributed as dist
    if dist.is_initialized():
        return
    kwargs = dict(dist_cfg)
    backend = kwargs.pop('backend')
    kwargs.pop('init_backend', None)
    if kwargs.get('timeout') is not None:
        kwargs['timeout'] = datetime.timedelta(seconds=kwargs['timeout'])
    dist.init_process_group(backend=backend, rank=int(os.environ['RANK']),
                            world_size=int(os.environ['WORLD_SIZE']), **kwargs)
    atexit.register(_let_gloo_threads_finish)


def _let_gloo_threads_finish(seconds: float = 0.2) -> None:
    """Release the GIL briefly at exit (torch 2.14 gloo race).

    gloo frees a finished collective on its worker thread, which takes the GIL for that; when the
    process exits right after its last collective, the thread can still be waiting for the GIL
    once Python finalises, and it then aborts the process (``terminate called without an active
    exception``, SIGABRT: torch issue/PR 179291). Sleeping hands the GIL over first. No
    collective here, so a failing run cannot hang on exit.
    """
    time.sleep(seconds)


def cpu_ddp_wrapper(cfg: Config) -> None:
    """Give MMEngine's DDP wrapper ``device_ids=None``; its default ``[LOCAL_RANK]`` is for GPUs."""
    wrapper = cfg.get('model_wrapper_cfg')
    if wrapper is None:  # MMEngine's default wrapper, spelt out
        cfg.model_wrapper_cfg = dict(
            type=DDP_WRAPPER, device_ids=None, broadcast_buffers=False,
            find_unused_parameters=cfg.get('find_unused_parameters', False))
    elif wrapper.get('type', DDP_WRAPPER) == DDP_WRAPPER:
        wrapper['device_ids'] = None


def adapt_to_cpu(cfg: Config) -> None:
    """Without CUDA: SyncBN -> BN, and for ``cfg.launcher='pytorch'`` a gloo process group and a
    CPU DDP wrapper. Call before building the Runner; with CUDA it does nothing."""
    if torch.cuda.is_available():
        return
    revert_sync_bn(cfg)
    launcher = cfg.get('launcher', 'none')
    if launcher == 'none':
        return
    if launcher != 'pytorch':
        raise UserError(f'--launcher {launcher} needs CUDA; for CPU processes use torchrun '
                        '(tools/dist_train.sh, --launcher pytorch)')
    use_gloo(cfg)
    init_process_group(cfg.env_cfg['dist_cfg'])
    cpu_ddp_wrapper(cfg)
    _log(f"CPU distributed run: {os.environ['WORLD_SIZE']} processes, gloo, "
         'MMDistributedDataParallel(device_ids=None)')


def stop_with_launcher() -> None:
    """In a torchrun worker: end this process when the launcher dies (Linux ``PR_SET_PDEATHSIG``),
    so killing the launcher, even with SIGKILL, stops the whole job."""
    if not sys.platform.startswith('linux'):
        return
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM, 0, 0, 0)  # PR_SET_PDEATHSIG = 1
    except (OSError, AttributeError):
        return
    if os.getppid() == 1:  # the launcher died before the call
        os.kill(os.getpid(), signal.SIGTERM)
