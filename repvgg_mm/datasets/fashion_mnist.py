"""Fashion-MNIST (Zalando, MIT licence) from its IDX files, as Debian's ``dataset-fashion-mnist``
package installs them (``apt-get install dataset-fashion-mnist``): no download at run time.

    ROOT/train-images-idx3-ubyte[.gz]  ROOT/train-labels-idx1-ubyte[.gz]   60000 images
    ROOT/t10k-images-idx3-ubyte[.gz]   ROOT/t10k-labels-idx1-ubyte[.gz]    10000 images

28x28 grey images in 10 classes. :func:`load_fashion_mnist` returns the arrays;
:class:`FashionMNISTDataset` serves them to mmengine's Runner like :class:`ImageFolderDataset`
(3-channel uint8 images, by repetition, at ``size``).
"""
import gzip
import math
import os
from typing import Tuple

import numpy as np
import torch
import torch.nn.functional as F
from mmengine.dataset import BaseDataset
from mmengine.structures import BaseDataElement

from repvgg_mm.registry import DATASETS
from repvgg_mm.utils.errors import MissingInputError, UserError

DEBIAN_ROOT = '/usr/share/datasets/fashion-mnist'
CLASSES = ('T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal', 'Shirt', 'Sneaker',
           'Bag', 'Ankle boot')
SPLITS = {'train': 'train', 'test': 't10k'}
_UNSIGNED_BYTE = 0x08


def read_idx(path: str) -> np.ndarray:
    """An IDX file (optionally gzipped) of unsigned bytes as an array; one-line errors for a wrong
    magic number, an unsupported type, or a truncated/oversized payload."""
    opener = gzip.open if path.endswith('.gz') else open
    try:
        with opener(path, 'rb') as handle:
            data = handle.read()
    except (OSError, EOFError) as exc:  # a broken gzip stream raises these
        raise UserError(f'cannot read IDX file {path}: {exc}') from exc
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise UserError(f'{path} is not an IDX file (wrong magic number)')
    if data[2] != _UNSIGNED_BYTE:
        raise UserError(f'{path}: IDX element type {data[2]:#04x} is not supported (unsigned '
                        'bytes only)')
    ndim = data[3]
    header = 4 + 4 * ndim
    if ndim == 0 or len(data) < header:
        raise UserError(f'{path} is truncated (incomplete IDX header)')
    shape = tuple(int.from_bytes(data[4 + 4 * i:8 + 4 * i], 'big') for i in range(ndim))
    if 0 in shape:
        raise UserError(f'{path} holds no data (IDX shape {shape})')
    expected = math.prod(shape)  # Python integers: a crafted header cannot overflow
    if len(data) - header != expected:
        raise UserError(f'{path} is truncated or corrupt: {len(data) - header} bytes of data for '
                        f'shape {shape} ({expected} expected)')
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(shape)


def _find(root: str, stem: str) -> str:
    for name in (stem, stem + '.gz'):
        if os.path.isfile(os.path.join(root, name)):
            return os.path.join(root, name)
    raise MissingInputError(f'Fashion-MNIST file {stem}[.gz] not found in {root}; install it '
                            'with `apt-get install dataset-fashion-mnist` (files in '
                            f'{DEBIAN_ROOT}) or pass the folder that holds the IDX files')


def load_fashion_mnist(root: str = DEBIAN_ROOT, split: str = 'train'
                       ) -> Tuple[np.ndarray, np.ndarray]:
    """``(images uint8 N x 28 x 28, labels int64 N)`` of ``split`` ('train' or 'test')."""
    if split not in SPLITS:
        raise UserError(f"split must be one of {sorted(SPLITS)}, got {split!r}")
    images = read_idx(_find(root, f'{SPLITS[split]}-images-idx3-ubyte'))
    labels = read_idx(_find(root, f'{SPLITS[split]}-labels-idx1-ubyte'))
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise UserError(f'Fashion-MNIST {split} files in {root} do not match: images '
                        f'{images.shape}, labels {labels.shape}')
    if labels.max(initial=0) >= len(CLASSES):
        raise UserError(f'Fashion-MNIST {split} labels in {root} go beyond {len(CLASSES)} classes')
    return images, labels.astype(np.int64)


def to_rgb_batch(images: np.ndarray, size: int) -> torch.Tensor:
    """uint8 ``N x 3 x size x size``: grey repeated into 3 channels, bilinear resize."""
    batch = torch.from_numpy(np.array(images)).unsqueeze(1).float()  # a writable copy
    if batch.shape[-1] != size:
        batch = F.interpolate(batch, size=(size, size), mode='bilinear', align_corners=False)
    return batch.round().clamp(0, 255).to(torch.uint8).expand(-1, 3, -1, -1).contiguous()


@DATASETS.register_module()
class FashionMNISTDataset(BaseDataset):
    """Fashion-MNIST for mmengine's Runner: items as :class:`ImageFolderDataset`'s.

    Args:
        data_root: the folder with the IDX files (default: Debian's package).
        split: ``'train'`` or ``'test'``.
        size: image side the 28x28 images are resized to (e.g. 32).
    """

    METAINFO = dict(classes=CLASSES)

    def __init__(self, data_root: str = DEBIAN_ROOT, split: str = 'train', size: int = 32,
                 indices=None, test_mode: bool = False, lazy_init: bool = False):
        self.split, self.size = split, size
        super().__init__(ann_file='', data_root=data_root, indices=indices, pipeline=[],
                         serialize_data=False, test_mode=test_mode, lazy_init=lazy_init)

    def load_data_list(self):
        images, labels = load_fashion_mnist(self.data_root, self.split)
        self._images = images
        return [dict(index=i, gt_label=int(label)) for i, label in enumerate(labels)]

    def prepare_data(self, idx: int) -> dict:
        info = self.get_data_info(idx)
        inputs = to_rgb_batch(self._images[info['index']][None], self.size)[0]
        sample = BaseDataElement(metainfo=dict(sample_idx=idx, ori_shape=(28, 28),
                                               img_shape=(self.size, self.size)))
        sample.gt_label = torch.tensor(info['gt_label'])
        return dict(inputs=inputs, data_samples=sample)
