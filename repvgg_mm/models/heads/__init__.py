from .linear_head import LinearClsHead, gt_labels

__all__ = ['LinearClsHead', 'gt_labels']
