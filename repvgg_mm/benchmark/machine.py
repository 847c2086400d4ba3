"""The machine a measurement ran on, named in every report."""
import os
import platform

import torch


def cpu_name() -> str:
    """The CPU model (``/proc/cpuinfo``), else what ``platform`` knows."""
    try:
        with open('/proc/cpuinfo') as handle:
            for line in handle:
                if line.startswith('model name'):
                    return line.split(':', 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info() -> dict:
    """CPU, cores, torch threads and version, OpenMP wait policy, load average, and the one-line
    :func:`machine_summary`."""
    return dict(cpu=cpu_name(), cores=os.cpu_count(), threads=torch.get_num_threads(),
                torch=torch.__version__, omp_wait_policy=os.environ.get('OMP_WAIT_POLICY'),
                load_average=list(os.getloadavg()), summary=machine_summary())


def machine_line(info: dict) -> str:
    """``info`` (:func:`machine_info`) in one line, with the OpenMP wait policy."""
    return (f'{info["cpu"]} ({info["cores"]} cores), {info["threads"]} torch threads, torch '
            f'{info["torch"]}, OMP_WAIT_POLICY={info["omp_wait_policy"]}')


def machine_summary() -> str:
    """CPU, cores, torch version, threads and oneDNN in one line (as the model-zoo table says)."""
    return (f'{cpu_name()} ({os.cpu_count()} cores), torch {torch.__version__}, '
            f'{torch.get_num_threads()} threads, oneDNN '
            f'{"on" if torch.backends.mkldnn.is_available() else "off"}')


def has_vnni() -> bool:
    """Whether this CPU has AVX-512 VNNI or AVX-VNNI (INT8 dot products), from ``/proc/cpuinfo``."""
    try:
        with open('/proc/cpuinfo') as handle:
            flags = next((line for line in handle if line.startswith('flags')), '')
    except OSError:
        return False
    return any(flag in flags.split() for flag in ('avx512_vnni', 'avx_vnni'))
