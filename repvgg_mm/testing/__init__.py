"""The tiny RepVGG arch that tests, quick benchmark runs and smoke tests build (as
``mmengine.testing`` serves mmengine's tests); the test suite's own helpers live in
``tests/helpers``."""
from typing import Union

# Stem 16, stages 16/32/64/256 channels, 8 blocks (stage 1 has a block with an identity branch).
# The grouped layers (even, as in the paper) are never the first block of a stage, as in all
# published archs (timm counts groups differently there).
TINY_ARCH = dict(num_blocks=(2, 2, 2, 1), width_factor=(0.25, 0.25, 0.25, 0.5))
#: how tools and reports name :data:`TINY_ARCH` (``--arch tiny``, ``--quick`` runs)
TINY_NAME = 'tiny'


def named_arch(name: Union[str, dict]) -> Union[str, dict]:
    """An arch by name: :data:`TINY_NAME` gives a copy of :data:`TINY_ARCH`, anything else is
    returned as it is."""
    return dict(TINY_ARCH) if name == TINY_NAME else name


__all__ = ['TINY_ARCH', 'TINY_NAME', 'named_arch']
