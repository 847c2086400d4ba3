"""A semantic segmentation set composed from real Fashion-MNIST items on textured backgrounds.

Each image holds 1 to ``max_items`` Fashion-MNIST items, enlarged 1.5-3x, tinted with a random
colour, at random non-overlapping places on a synthetic background (the smooth striped texture of
the toy dense dataset: no photo needs a download or a licence). The label map comes from the item
pixels themselves: a pixel is the item's class (1..10, Fashion-MNIST's class + 1) where the resized
item's grey level is at least ``threshold``, background (0) elsewhere; only those pixels are
painted, so every labelled pixel shows its item. Training images use items of Fashion-MNIST's
train split, val images items of its test split: no val item was ever seen in training.

Written in mmseg's ``BaseSegDataset`` layout, as the toy dense dataset::

    OUT_DIR/img_dir/{train,val}/00000.png     RGB images
    OUT_DIR/ann_dir/{train,val}/00000.png     label maps (0 background, 1..10 items)
    OUT_DIR/fashion_mnist_seg.json            manifest (generation parameters)
"""
import os
from typing import Dict, Tuple

import numpy as np
from PIL import Image

from repvgg_mm.utils.errors import UserError

from .fashion_mnist import CLASSES, DEBIAN_ROOT, load_fashion_mnist
from .toy_common import publish_dataset
from .toy_dense import textured_background

SEG_CLASSES = ('background', ) + CLASSES
MANIFEST = 'fashion_mnist_seg.json'
FORMAT_VERSION = 1
SPLITS = {'train': 'train', 'val': 'test'}  # our split: the Fashion-MNIST split of its items
ITEM_SCALES = (1.5, 3.0)


def seg_palette() -> Tuple[Tuple[int, int, int], ...]:
    """A colour per class for drawings (black background)."""
    rng = np.random.default_rng(7)
    return ((0, 0, 0), ) + tuple(tuple(int(c) for c in rng.integers(40, 256, 3))
                                 for _ in CLASSES)


def compose_sample(rng: np.random.Generator, items: np.ndarray, labels: np.ndarray,
                   size: int = 96, max_items: int = 3, threshold: int = 24,
                   max_tries: int = 30) -> Tuple[np.ndarray, np.ndarray]:
    """One image (uint8 HxWx3) and its label map (uint8 HxW) from the 28x28 ``items``."""
    image = textured_background(rng, size)
    label_map = np.zeros((size, size), np.uint8)
    for _ in range(int(rng.integers(1, max_items + 1))):
        index = int(rng.integers(len(items)))
        side = min(int(round(28 * rng.uniform(*ITEM_SCALES))), size)
        grey = np.asarray(Image.fromarray(items[index]).resize((side, side), Image.BILINEAR),
                          np.float32)
        mask = grey >= threshold
        for _ in range(max_tries):
            top, left = (int(v) for v in rng.integers(0, size - side + 1, 2))
            window = label_map[top:top + side, left:left + side]
            if mask.any() and not (window[mask] > 0).any():
                break
        else:
            continue  # no free place left for this item
        tint = rng.uniform(0.55, 1.0, 3).astype(np.float32)
        region = image[top:top + side, left:left + side]
        region[mask] = grey[mask, None] * tint
        window[mask] = labels[index] + 1
    pixels = image + rng.normal(0, 4, size=image.shape)
    return np.clip(pixels, 0, 255).astype(np.uint8), label_map


def _manifest(num_train: int, num_val: int, size: int, max_items: int, threshold: int,
              seed: int) -> dict:
    return dict(format_version=FORMAT_VERSION, num_train=num_train, num_val=num_val, size=size,
                max_items=max_items, threshold=threshold, seed=seed,
                item_splits=dict(SPLITS), classes=list(SEG_CLASSES))


def make_fashion_mnist_seg(out_dir: str, fashion_mnist_root: str = DEBIAN_ROOT,
                           num_train: int = 2000, num_val: int = 400, size: int = 96,
                           max_items: int = 3, threshold: int = 24, seed: int = 0,
                           overwrite: bool = False) -> Dict:
    """Compose the dataset into ``out_dir``; return its manifest (with ``'created'``).

    The same arguments and Fashion-MNIST files give the same images. An ``out_dir`` that holds
    this dataset with the same parameters is kept (``created=False``); any other non-empty one
    raises :class:`~repvgg_mm.datasets.ToyDataExistsError` unless ``overwrite``. Written in a
    temporary sibling and moved into place: never half written.
    """
    if num_train < 1 or num_val < 1:
        raise UserError(f'need at least one image per split, got {num_train} train / '
                        f'{num_val} val')
    if size < 42:
        raise UserError(f'images must be at least 42 pixels wide (items are enlarged to 42-84 '
                        f'pixels), got {size}')
    if max_items < 1:
        raise UserError(f'max_items must be at least 1, got {max_items}')
    if not 1 <= threshold <= 255:
        raise UserError(f'threshold must lie in [1, 255], got {threshold}')
    manifest = _manifest(num_train, num_val, size, max_items, threshold, seed)
    sources = {split: load_fashion_mnist(fashion_mnist_root, item_split)
               for split, item_split in SPLITS.items()}

    def fill(staging: str) -> None:
        for split_id, (split, count) in enumerate(zip(SPLITS, (num_train, num_val))):
            rng = np.random.default_rng([seed, split_id])
            img_dir = os.path.join(staging, 'img_dir', split)
            ann_dir = os.path.join(staging, 'ann_dir', split)
            os.makedirs(img_dir)
            os.makedirs(ann_dir)
            for index in range(count):
                image, label_map = compose_sample(rng, *sources[split], size, max_items,
                                                  threshold)
                Image.fromarray(image).save(os.path.join(img_dir, f'{index:05d}.png'))
                Image.fromarray(label_map).save(os.path.join(ann_dir, f'{index:05d}.png'))

    created = publish_dataset(out_dir, MANIFEST, manifest, fill, overwrite)
    return dict(manifest, created=created)
