from .image_classifier import ImageClassifier, custom_l2

__all__ = ['ImageClassifier', 'custom_l2']
