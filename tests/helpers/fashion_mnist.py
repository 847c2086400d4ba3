"""Tiny Fashion-MNIST stand-ins: real IDX files of a few drawn items (no package needed)."""
import gzip
import os
import struct
from typing import Sequence

import numpy as np

SPLIT_PREFIXES = {'train': 'train', 'test': 't10k'}


def idx_bytes(array: np.ndarray) -> bytes:
    """``array`` (unsigned bytes) as an IDX file."""
    header = struct.pack('>BBBB', 0, 0, 0x08, array.ndim)
    header += b''.join(struct.pack('>I', n) for n in array.shape)
    return header + array.astype(np.uint8).tobytes()


def write_fake_fashion_mnist(root: str, num_train: int = 16, num_test: int = 8,
                             train_classes: Sequence[int] = range(10),
                             test_classes: Sequence[int] = range(10), seed: int = 0) -> str:
    """Write gzipped IDX files of ``num_train`` / ``num_test`` 28x28 items into ``root``: a bright
    filled ellipse per item on black (as Fashion-MNIST's items), labels cycling through
    ``train_classes`` / ``test_classes``. Returns ``root``."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:28, 0:28]
    os.makedirs(root, exist_ok=True)
    for split, count, classes in (('train', num_train, train_classes),
                                  ('test', num_test, test_classes)):
        classes = list(classes)
        images = np.zeros((count, 28, 28), np.uint8)
        for image in images:
            ry, rx = rng.uniform(6, 12, 2)
            inside = ((yy - 14) / ry) ** 2 + ((xx - 14) / rx) ** 2 <= 1
            image[inside] = rng.integers(80, 256)
        labels = np.array([classes[i % len(classes)] for i in range(count)], np.uint8)
        for name, array in (('images-idx3-ubyte', images), ('labels-idx1-ubyte', labels)):
            path = os.path.join(root, f'{SPLIT_PREFIXES[split]}-{name}.gz')
            with open(path, 'wb') as handle:
                handle.write(gzip.compress(idx_bytes(array)))
    return root
