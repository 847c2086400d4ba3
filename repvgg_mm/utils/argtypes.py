"""The argument types of every tool: a value out of range is refused with one line, never
replaced by a default.

Each type is a callable for ``argparse``'s ``type=``; it raises ``argparse.ArgumentTypeError``,
which :func:`repvgg_mm.utils.cli.tool_parser` reports as ``error: argument --x: ...`` (exit 2).
"""
import argparse
import math
from typing import Callable, Optional, Sequence

import torch

from .fileio import protect_inputs


def _number(text: str, kind: type):
    try:
        value = kind(text)
    except (TypeError, ValueError):
        raise argparse.ArgumentTypeError(
            f'expected {"an integer" if kind is int else "a number"}, got {text!r}') from None
    if isinstance(value, float) and not math.isfinite(value):
        raise argparse.ArgumentTypeError(f'expected a finite number, got {text!r}')
    return value


def int_range(low: Optional[int] = None, high: Optional[int] = None) -> Callable[[str], int]:
    """An integer within ``[low, high]`` (either bound may be open)."""
    def parse(text: str) -> int:
        value = _number(text, int)
        if (low is not None and value < low) or (high is not None and value > high):
            raise argparse.ArgumentTypeError(f'must be {_bounds(low, high)}, got {value}')
        return value
    parse.__name__ = f'integer {_bounds(low, high)}'
    parse.minimum = low
    return parse


def float_range(low: Optional[float] = None, high: Optional[float] = None,
                low_open: bool = False) -> Callable[[str], float]:
    """A finite float within ``[low, high]`` (``(low, high]`` with ``low_open``)."""
    def parse(text: str) -> float:
        value = _number(text, float)
        below = low is not None and (value <= low if low_open else value < low)
        if below or (high is not None and value > high):
            raise argparse.ArgumentTypeError(
                f'must be {_bounds(low, high, low_open)}, got {text}')
        return value
    parse.__name__ = f'number {_bounds(low, high, low_open)}'
    parse.minimum = low
    parse.low_open = low_open
    return parse


def _bounds(low, high, low_open: bool = False) -> str:
    if low is not None and high is not None:
        return f'in {"(" if low_open else "["}{low}, {high}]'
    if low is not None:
        return f'> {low}' if low_open else f'>= {low}'
    return f'<= {high}' if high is not None else 'any value'


#: a count or size that must be at least 1 (batch sizes, image sizes, repeats, images, threads)
positive_int = int_range(1)
#: a count, index or seed that may be 0
non_negative_int = int_range(0)
#: a tolerance or a wait: 0 allowed
non_negative_float = float_range(0.0)
#: a learning rate, a scale: strictly positive
positive_float = float_range(0.0, low_open=True)
#: a probability, a score threshold, an opacity
unit_float = float_range(0.0, 1.0)


def check_size(values: Optional[Sequence[int]], option: str,
               lengths: Sequence[int] = (1, 2)) -> None:
    """Refuse a ``nargs='+'`` size given with a wrong number of values."""
    if values is not None and len(values) not in lengths:
        counts = ' or '.join(str(n) for n in lengths)
        what = '1 value' if tuple(lengths) == (1, ) else f'{counts} values (H W)'
        raise argparse.ArgumentTypeError(f'{option} takes {what}, got {len(values)}')


def input_path(text: str) -> str:
    """A path the run reads (config, checkpoint, image): registered so that no output of the run
    may be written over it (:func:`repvgg_mm.utils.fileio.protect_inputs`)."""
    if not text:
        raise argparse.ArgumentTypeError('empty path')
    protect_inputs(text)
    return text


def output_path(text: str) -> str:
    """A file the run writes: not empty (the remaining checks happen before the long work)."""
    if not text or not text.strip():
        raise argparse.ArgumentTypeError('empty path')
    return text


def device(text: str) -> str:
    """``cpu``, ``cuda`` or ``cuda:N`` for a GPU that exists here."""
    kind, _, index = text.partition(':')
    if kind == 'cpu' and not index:
        return text
    if kind != 'cuda' or (index and not index.isdigit()):
        raise argparse.ArgumentTypeError(f"expected 'cpu', 'cuda' or 'cuda:N', got {text!r}")
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if count == 0:
        raise argparse.ArgumentTypeError(f'{text}: no CUDA device on this machine; use cpu')
    if index and int(index) >= count:
        raise argparse.ArgumentTypeError(f'{text}: this machine has {count} CUDA device(s)')
    return text
