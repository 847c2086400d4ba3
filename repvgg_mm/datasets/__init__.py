"""Datasets of repvgg_mm; importing this registers them in the ``repvgg_mm`` scope."""
from .fashion_mnist import FashionMNISTDataset, load_fashion_mnist, read_idx
from .fashion_mnist_seg import make_fashion_mnist_seg
from .image_folder import (
    IMG_EXTENSIONS,
    DatasetNotFoundError,
    ImageFolderDataset,
    find_classes,
    list_images,
    to_uint8_chw,
)
from .toy_classification import TOY_CLASSES, make_toy_classification, render_toy_image
from .toy_common import ToyDataExistsError
from .transforms import build_transform, build_transforms

__all__ = ['DatasetNotFoundError', 'FashionMNISTDataset', 'IMG_EXTENSIONS', 'ImageFolderDataset',
           'TOY_CLASSES', 'ToyDataExistsError', 'build_transform', 'build_transforms',
           'find_classes', 'list_images', 'load_fashion_mnist', 'make_fashion_mnist_seg',
           'make_toy_classification',
           'read_idx', 'render_toy_image', 'to_uint8_chw']
