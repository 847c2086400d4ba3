from .image_classifier import ImageClassifier, custom_l2
from .linear_classifier_net import LinearClassifierNet

__all__ = ['ImageClassifier', 'LinearClassifierNet', 'custom_l2']
