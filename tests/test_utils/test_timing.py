"""Interleaved timing: rounds alternate the order of the workloads and count what they should."""
import pytest

from repvgg_mm.utils.timing import time_interleaved


def test_time_interleaved_alternates_and_counts():
    calls = []
    timings = time_interleaved({'a': lambda: calls.append('a'), 'b': lambda: calls.append('b')},
                               repeats=3, warmup=1)
    assert calls == ['a', 'b', 'a', 'b', 'b', 'a', 'a', 'b']
    assert [len(t.samples) for t in timings.values()] == [3, 3]
    with pytest.raises(ValueError):
        time_interleaved({'a': lambda: None}, repeats=0)
