"""The one pass/miss system: targets give verdicts, write themselves into the tables, and speed
ratios are medians of per-round ratios."""
import pytest

from repvgg_mm.benchmark.targets import (
    BLOCK_FORM_TARGETS,
    ONLINE_FUSION_TARGETS,
    Target,
    number,
    off_auto_ratio,
    paired_ratio,
)
from repvgg_mm.utils.timing import Timing


def test_verdicts_at_and_around_the_bounds():
    assert Target('min', 1.2).verdict(1.2) == 'pass' and Target('min', 1.2).verdict(1.19) == 'miss'
    small = Target('max', 1e-5)
    assert small.verdict(1e-5) == 'pass' and small.verdict(2e-5) == 'miss'
    band = Target('band', (0.9, 1.1))
    assert [band.verdict(v) for v in (0.89, 0.9, 1.1, 1.11)] == ['miss', 'pass', 'pass', 'miss']
    assert Target('max', 1e-3).verdict(float('nan')) == 'miss'
    with pytest.raises(ValueError, match='kind must be'):
        Target('atleast', 1)


def test_tables_read_what_the_targets_say():
    targets = ONLINE_FUSION_TARGETS
    assert [str(targets[k]) for k in ('backbone_speedup', 'saved_ratio', 'output_error',
                                      'grad_error', 'seg_online', 'seg_ratio')] == [
        '>= 1.2x', '<= 0.65', '<= 1e-5', '<= 1e-3', '0 online', '~1.0 (0.9-1.1)']
    assert [str(t) for t in BLOCK_FORM_TARGETS.values()] == ['>= 1.3x', '<= 0.75']
    assert targets['seg_ratio'].value == [0.9, 1.1] and targets['saved_ratio'].value == 0.65
    assert [number(v) for v in (0.65, 1e-5, 3e-4, 0, 3)] == ['0.65', '1e-5', '3e-4', '0', '3']


def test_spread_verdict_calls_a_target_inside_the_quartiles_parity():
    target = Target('min', 1.0)
    assert target.spread_verdict(dict(value=1.01, q25=0.9, q75=1.1)) == 'pass'
    assert target.spread_verdict(dict(value=0.98, q25=0.95, q75=1.02)) == 'parity'
    assert target.spread_verdict(dict(value=0.9, q25=0.85, q75=0.95)) == 'miss'


def test_ratios_are_per_round():
    ratio = paired_ratio([2.0, 4.0, 3.0], [1.0, 1.0, 2.0])  # per round: 2, 4, 1.5
    assert ratio['value'] == 2.0 and ratio['q25'] <= 2.0 <= ratio['q75']
    timings = {'off': Timing('off', [2.0, 4.0]), 'auto': Timing('auto', [1.0, 2.0])}
    result = off_auto_ratio(timings)
    assert result['round_ratios'] == [2.0, 2.0] and result['round_ratio_median'] == 2.0
    assert result['ratio'] == pytest.approx(timings['off'].median / timings['auto'].median)
