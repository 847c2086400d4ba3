"""Wall-clock timing on a shared CPU: warm-up, interleaved repeats, medians."""
import gc
import statistics
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Callable, Dict, Iterator, List, Optional

import torch


@dataclass
class Timing:
    """Seconds per call of one workload over interleaved repeats."""

    name: str
    samples: List[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    @property
    def best(self) -> float:
        return min(self.samples)

    @property
    def spread(self) -> float:
        """(max - min) / median: how noisy the machine was while this ran."""
        return (max(self.samples) - min(self.samples)) / self.median


@contextmanager
def torch_threads(num_threads: Optional[int]) -> Iterator[None]:
    """Run the block with ``torch.set_num_threads(num_threads)`` (None leaves the setting alone)."""
    previous = torch.get_num_threads()
    if num_threads:
        torch.set_num_threads(num_threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def time_interleaved(workloads: Dict[str, Callable[[], object]], repeats: int = 5,
                     warmup: int = 1, on_round: Optional[Callable[[int], None]] = None
                     ) -> Dict[str, Timing]:
    """Time every workload ``repeats`` times in rounds A B C, A B C, ... after ``warmup`` rounds.

    Interleaving spreads the drift of a shared machine (other jobs starting and stopping) evenly
    over all workloads, so ratios of medians stay meaningful even when absolute times wander.
    """
    if repeats < 1:
        raise ValueError(f'repeats must be >= 1, got {repeats}')
    for _ in range(warmup):
        for fn in workloads.values():
            fn()
    timings = {name: Timing(name) for name in workloads}
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        for round_index in range(repeats):
            # Alternate the order (ABC, CBA, ...) so no workload always follows the same neighbour.
            names = list(workloads) if round_index % 2 == 0 else list(reversed(workloads))
            for name in names:
                timings[name].samples.append(_timed(workloads[name]))
            if on_round is not None:
                on_round(round_index)
    finally:
        if gc_was_enabled:
            gc.enable()
    return timings
