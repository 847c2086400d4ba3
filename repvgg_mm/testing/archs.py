"""The one tiny RepVGG arch of the test suite and its variants."""

# Stem 16, stages 16/32/64/256 channels, 8 blocks (stage 1 has a block with an identity branch).
# The grouped layers (even, as in the paper) are never the first block of a stage, as in all
# published archs (timm counts groups differently there).
TINY_ARCH = dict(num_blocks=(2, 2, 2, 1), width_factor=(0.25, 0.25, 0.25, 0.5))
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
