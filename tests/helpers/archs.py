"""Variants of the tiny arch (:data:`repvgg_mm.testing.TINY_ARCH`) and blocks of every kind."""
from repvgg_mm.testing import TINY_ARCH

TINY_ARCHS = {
    'plain': dict(TINY_ARCH),
    'grouped': dict(TINY_ARCH, group_layer_map={2: 2, 4: 2, 6: 2}),
    'se': dict(TINY_ARCH, use_se=True),
    'grouped-se': dict(TINY_ARCH, group_layer_map={2: 2, 4: 2, 6: 2}, use_se=True),
}
NUM_CLASSES = 10

# Block arguments covering every kind of branch: no identity, identity, stride, groups, SE,
# dilation.
BLOCK_KINDS = {
    'plain': dict(in_channels=4, out_channels=8),
    'identity': dict(in_channels=8, out_channels=8),
    'strided': dict(in_channels=8, out_channels=8, stride=2),
    'grouped': dict(in_channels=8, out_channels=8, groups=4),
    'se': dict(in_channels=8, out_channels=8, use_se=True, se_ratio=4),
    'dilated': dict(in_channels=8, out_channels=8, dilation=2),
}


def arch_of(arch):
    """A tiny arch by its name in :data:`TINY_ARCHS`; anything else as is."""
    return TINY_ARCHS.get(arch, arch) if isinstance(arch, str) else arch
