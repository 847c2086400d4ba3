"""Metrics of repvgg_mm; importing this registers them in the ``repvgg_mm`` scope."""
from .accuracy import Accuracy, topk_accuracy, topk_hits

__all__ = ['Accuracy', 'topk_accuracy', 'topk_hits']
