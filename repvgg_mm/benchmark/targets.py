"""The project's measured targets, in one place: what each benchmark must reach, and the verdict.

A :class:`Target` is a bound (``min``: at least, ``max``: at most, ``band``: within) that gives a
measurement its verdict and writes itself into the report tables, so no table types a threshold
again. Speed comparisons are ratios of interleaved medians (:func:`paired_ratio`,
:func:`off_auto_ratio`); a speed verdict that takes the rounds' spread into account is
:meth:`Target.spread_verdict`.
"""
import statistics
from dataclasses import dataclass
from typing import Dict, Optional, Sequence, Tuple, Union

from repvgg_mm.utils.timing import Timing

Bound = Union[float, Tuple[float, float]]


def number(value: float) -> str:
    """``value`` as the tables write it: ``0.65``, ``1.2``, ``1e-5``."""
    if value and abs(value) < 1e-2:
        mantissa, _, exponent = f'{value:.0e}'.partition('e')
        return f'{mantissa}e{int(exponent)}'
    return f'{value:g}'


@dataclass(frozen=True)
class Target:
    """``kind`` ``'min'`` (value >= bound), ``'max'`` (value <= bound) or ``'band'`` (lo <= value
    <= hi); ``unit`` follows the number in the tables (``'x'`` for speed ratios); ``label``
    replaces the rule in the tables when it says it better (``'0 online'``)."""

    kind: str
    bound: Bound
    unit: str = ''
    label: Optional[str] = None

    def __post_init__(self):
        if self.kind not in ('min', 'max', 'band'):
            raise ValueError(f"kind must be 'min', 'max' or 'band', got {self.kind!r}")

    def met(self, value: float) -> bool:
        if self.kind == 'min':
            return value >= self.bound
        if self.kind == 'max':
            return value <= self.bound
        low, high = self.bound
        return low <= value <= high

    def verdict(self, value: float) -> str:
        """``'pass'`` or ``'miss'``."""
        return 'pass' if self.met(value) else 'miss'

    def spread_verdict(self, ratio: dict) -> str:
        """``'pass'`` when the median (``ratio['value']``) meets the target, ``'parity'`` when it
        misses but the target lies within the quartiles (``q25``, ``q75``: indistinguishable on
        this machine's noise), ``'miss'`` otherwise."""
        if self.met(ratio['value']):
            return 'pass'
        return 'parity' if ratio['q25'] <= self.bound <= ratio['q75'] else 'miss'

    @property
    def value(self):
        """The bound as a report stores it (a list for a band)."""
        return list(self.bound) if self.kind == 'band' else self.bound

    def __str__(self) -> str:
        if self.label:
            return self.label
        if self.kind == 'band':
            return f'{number(self.bound[0])}-{number(self.bound[1])}{self.unit}'
        return f'{">=" if self.kind == "min" else "<="} {number(self.bound)}{self.unit}'


def paired_ratio(slow: Sequence[float], fast: Sequence[float]) -> Dict[str, float]:
    """Median and quartiles of the per-round ``slow / fast`` time ratios (samples timed in the
    same interleaved rounds: each round's ratio cancels most of the machine's drift)."""
    ratios = sorted(a / b for a, b in zip(slow, fast))
    quartiles = statistics.quantiles(ratios, n=4) if len(ratios) > 1 else ratios * 3
    return dict(value=statistics.median(ratios), q25=quartiles[0], q75=quartiles[-1])


def off_auto_ratio(timings: Dict[str, Timing]) -> dict:
    """``off / auto`` of the medians (> 1: auto faster), and the per-round ratios."""
    per_round = sorted(a / b for a, b in zip(timings['off'].samples, timings['auto'].samples))
    return dict(ratio=timings['off'].median / timings['auto'].median,
                round_ratios=per_round, round_ratio_median=statistics.median(per_round))


#: CPU deployment (``speed.targets_benchmark``): fused vs training-time, ours vs timm's, roofline
SPEED_TARGETS = dict(
    fused_speedup=Target('min', 1.3), timm_fused=Target('min', 1.0),
    timm_train_step=Target('min', 1.0), gemm_fraction=Target('min', 0.8))

#: online fusion with frozen BN, ``auto`` against ``off`` (``online_fusion``)
ONLINE_FUSION_TARGETS = dict(
    backbone_speedup=Target('min', 1.2, 'x'), saved_ratio=Target('max', 0.65),
    output_error=Target('max', 1e-5), grad_error=Target('max', 1e-3),
    detector_speedup=Target('min', 1.1, 'x'), seg_online=Target('max', 0, label='0 online'),
    seg_ratio=Target('band', (0.9, 1.1), label='~1.0 (0.9-1.1)'),
    loss_diff=Target('max', 1e-3))

#: the linear-scaling block against the RepVGG block, BN training (``block_forms``)
BLOCK_FORM_TARGETS = dict(speedup=Target('min', 1.3, 'x'), saved_ratio=Target('max', 0.75))

#: the linear-scaling block's top-1 from scratch: at most this many points below RepVGG's
#: (``form_accuracy``)
SCRATCH_GAP = Target('max', 1.0)

#: QARepVGG's INT8 top-1 drop as a fraction of RepVGG's (``int8_blocks``)
INT8_DROP_FRACTION = Target('max', 0.5, label="at most half of RepVGG's")
