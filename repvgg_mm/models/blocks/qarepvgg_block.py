"""QARepVGG block (Chu et al., "Make RepVGG Greater Again: A Quantization-aware Approach", AAAI
2024): a training-time block that quantizes well once fused, fused into the same single conv."""
from typing import Iterator

from mmcv.cnn import build_norm_layer
from torch import Tensor, nn

from repvgg_mm.registry import MODELS

from .fuse import KernelBias, fuse_kernel_bn, identity_kernel, pad_kernel_to
from .repvgg_block import RepVGGBlock


@MODELS.register_module()
class QARepVGGBlock(RepVGGBlock):
    """``act(se(bn_post(bn(conv3x3(x)) + conv1x1(x) + x)))`` at training time; after fusing, the
    same ``act(se(branch_fused(x)))`` as :class:`RepVGGBlock` (identical keys and shapes), so a
    fused QARepVGG checkpoint loads into a ``deploy=True`` RepVGG of the same arch.

    The choices, following the paper's analysis of what makes a fused RepVGG hard to quantize (an
    enlarged variance of the branch sum, outlier weights):

    * the 3x3 branch keeps its BN (the paper's QARepVGG does): it normalises the main branch;
    * the 1x1 branch has no BN and no bias, and the identity branch no BN: a per-branch BN lets
      each branch's scale drift apart, which widens the fused kernel's weight distribution; a bias
      on the 1x1 conv would only duplicate the post-BN's shift;
    * one BN after the branch sum (``post_norm``) keeps the block output's variance in check; it
      sits before the SE layer (YOLOv6 applies SE first), so that it folds into the fused conv for
      SE archs too and the deploy layout stays RepVGG's;
    * the paper's custom L2 is not defined for this block (it uses ordinary weight decay).

    Arguments as :class:`RepVGGBlock`.
    """

    branch_names = ('branch_3x3', 'branch_1x1', 'post_norm')

    def _build_branches(self) -> None:
        self.branch_3x3 = self._conv_branch(self.kernel_size, self.norm_cfg)
        self.branch_1x1 = self._conv_branch(1, None)
        self.post_norm = build_norm_layer(self.norm_cfg, self.out_channels)[1]

    def _train_branches(self, x: Tensor) -> Tensor:
        out = self.branch_3x3(x) + self.branch_1x1(x)
        if self.has_identity:
            out = out + x
        return self.post_norm(out)

    def norm_layers(self) -> Iterator[nn.Module]:
        if not self.deploy:
            yield from (self.branch_3x3.norm, self.post_norm)

    def get_equivalent_kernel_bias(self) -> KernelBias:
        """Kernel and bias of one 3x3 conv equal to the block before SE (eval-mode BN);
        differentiable."""
        if self.deploy:
            return self.branch_fused.weight, self.branch_fused.bias
        kernel, bias = fuse_kernel_bn(self.branch_3x3.conv.weight, self.branch_3x3.norm)
        centre = self.branch_1x1.conv.weight  # summed at 1x1, padded once
        if self.has_identity:
            centre = centre + identity_kernel(self.in_channels, self.groups, 1, centre.dtype,
                                              centre.device)
        kernel = kernel + pad_kernel_to(centre, self.kernel_size)
        return fuse_kernel_bn(kernel, self.post_norm, conv_bias=bias)

    def get_custom_L2(self) -> Tensor:  # noqa: N802 (name of the original RepVGG API)
        raise NotImplementedError('the custom L2 of the RepVGG paper is defined for RepVGGBlock; '
                                  'train QARepVGG with ordinary weight decay')
