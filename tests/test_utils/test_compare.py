"""Comparisons refuse NaN and infinity instead of calling them a small difference."""
import pytest
import torch

from repvgg_mm.utils.compare import (
    NonFiniteError,
    check_finite,
    first_non_finite,
    outputs_difference,
    tensor_difference,
)


def test_difference_is_relative_to_the_reference():
    diff = tensor_difference(torch.tensor([2.0, -4.0]), torch.tensor([2.0, -3.0]))
    assert diff.max_abs == 1.0 and diff.max_rel == 0.25


@pytest.mark.parametrize('bad', [float('nan'), float('inf'), -float('inf')])
@pytest.mark.parametrize('side', ['reference', 'compared'])
def test_non_finite_values_are_refused(bad, side):
    good, broken = torch.ones(3), torch.tensor([1.0, bad, 1.0])
    pair = (broken, good) if side == 'reference' else (good, broken)
    with pytest.raises(NonFiniteError, match=f'{side} block x holds NaN or infinity'):
        tensor_difference(*pair, name='block x')
    with pytest.raises(NonFiniteError, match='output 1'):
        outputs_difference((good, pair[0]), (good, pair[1]))


def test_first_non_finite_names_the_tensor():
    state = {'a': torch.ones(2), 'counter': torch.tensor(3), 'b': torch.tensor([0.0, float('nan')]),
             'c': torch.tensor([float('inf')])}
    assert first_non_finite(state) == 'b'
    with pytest.raises(NonFiniteError, match="weights.pth: 'b' holds NaN or infinity"):
        check_finite(state, 'weights.pth')
    check_finite({'a': torch.ones(2)}, 'fine')
