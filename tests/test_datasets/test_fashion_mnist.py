"""The Fashion-MNIST IDX loader on tiny files the test writes itself, and bad IDX input."""
import gzip
import struct

import numpy as np
import pytest
import torch

from repvgg_mm.datasets import FashionMNISTDataset, load_fashion_mnist, read_idx
from repvgg_mm.utils.errors import MissingInputError, UserError


def idx_bytes(array: np.ndarray) -> bytes:
    header = struct.pack('>BBBB', 0, 0, 0x08, array.ndim)
    header += b''.join(struct.pack('>I', n) for n in array.shape)
    return header + array.astype(np.uint8).tobytes()


def write_split(root, prefix, images, labels, gz):
    for name, array in (('images-idx3-ubyte', images), ('labels-idx1-ubyte', labels)):
        data = idx_bytes(array)
        path = root / f'{prefix}-{name}' if not gz else root / f'{prefix}-{name}.gz'
        path.write_bytes(gzip.compress(data) if gz else data)


@pytest.fixture
def tiny_root(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(6, 28, 28), dtype=np.uint8)
    labels = np.array([0, 3, 9, 1, 1, 7], dtype=np.uint8)
    write_split(tmp_path, 'train', images, labels, gz=True)
    write_split(tmp_path, 't10k', images[:2], labels[:2], gz=False)
    return tmp_path, images, labels


def test_reads_gzipped_and_plain_idx(tiny_root):
    root, images, labels = tiny_root
    train_images, train_labels = load_fashion_mnist(str(root), 'train')
    assert np.array_equal(train_images, images) and train_labels.tolist() == labels.tolist()
    test_images, test_labels = load_fashion_mnist(str(root), 'test')
    assert test_images.shape == (2, 28, 28) and test_labels.dtype == np.int64


def test_dataset_items_like_image_folder(tiny_root):
    root, images, labels = tiny_root
    dataset = FashionMNISTDataset(str(root), 'train', size=32)
    item = dataset[2]
    assert len(dataset) == 6 and item['inputs'].shape == (3, 32, 32)
    assert item['inputs'].dtype == torch.uint8 and int(item['data_samples'].gt_label) == 9
    assert torch.equal(item['inputs'][0], item['inputs'][2])  # grey repeated into RGB
    native = FashionMNISTDataset(str(root), 'train', size=28)[0]['inputs'][0]
    assert torch.equal(native, torch.from_numpy(images[0]))
    assert dataset.metainfo['classes'][9] == 'Ankle boot'


@pytest.mark.parametrize('damage, message', [
    (lambda data: data[:-5], 'truncated or corrupt'),
    (lambda data: data[:10], 'truncated'),
    (lambda data: b'\x12\x34' + data[2:], 'wrong magic number'),
    (lambda data: data[:2] + b'\x0d' + data[3:], 'not supported'),
    (lambda data: b'', 'wrong magic number'),
])
def test_bad_idx_is_a_one_line_error(tmp_path, damage, message):
    path = tmp_path / 'bad-idx'
    path.write_bytes(damage(idx_bytes(np.zeros((2, 28, 28), np.uint8))))
    with pytest.raises(UserError, match=message) as info:
        read_idx(str(path))
    assert '\n' not in str(info.value)


def test_broken_gzip_and_missing_files(tmp_path):
    path = tmp_path / 'x.gz'
    path.write_bytes(gzip.compress(idx_bytes(np.zeros((2, 4), np.uint8)))[:-8])
    with pytest.raises(UserError, match='cannot read IDX file'):
        read_idx(str(path))
    with pytest.raises(MissingInputError, match='apt-get install dataset-fashion-mnist'):
        load_fashion_mnist(str(tmp_path), 'train')
    with pytest.raises(UserError, match='split'):
        load_fashion_mnist(str(tmp_path), 'val')
