"""The segmentation set composed from Fashion-MNIST items: labels from the item pixels, train and
val items from different splits, deterministic, published atomically, bad input refused."""
import os

import numpy as np
import pytest
from PIL import Image

from repvgg_mm.datasets import ToyDataExistsError, make_fashion_mnist_seg
from repvgg_mm.datasets.fashion_mnist_seg import MANIFEST, compose_sample
from repvgg_mm.utils.errors import MissingInputError, UserError
from tests.helpers import write_fake_fashion_mnist


@pytest.fixture
def items_root(tmp_path):
    """Train items all of class 3, test items all of class 7."""
    return write_fake_fashion_mnist(str(tmp_path / 'fmnist'), num_train=12, num_test=6,
                                    train_classes=[3], test_classes=[7])


def read_split(root, split):
    names = sorted(os.listdir(os.path.join(root, 'img_dir', split)))
    return [(np.asarray(Image.open(os.path.join(root, 'img_dir', split, n))),
             np.asarray(Image.open(os.path.join(root, 'ann_dir', split, n)))) for n in names]


def test_labels_come_from_items_of_the_split(tmp_path, items_root):
    out = str(tmp_path / 'seg')
    manifest = make_fashion_mnist_seg(out, items_root, num_train=6, num_val=4, size=64)
    assert manifest['created'] and manifest['classes'][0] == 'background'
    assert manifest['classes'][4] == 'Dress' and len(manifest['classes']) == 11
    for split, item_label in (('train', 3 + 1), ('val', 7 + 1)):
        samples = read_split(out, split)
        assert len(samples) == (6 if split == 'train' else 4)
        for image, label in samples:
            assert image.shape == (64, 64, 3) and image.dtype == np.uint8
            assert label.shape == (64, 64) and set(np.unique(label)) <= {0, item_label}
        assert any((label > 0).sum() > 100 for _, label in samples)


def test_only_item_pixels_are_painted_and_labelled():
    items = np.zeros((2, 28, 28), np.uint8)
    items[0, 8:20, 10:18] = 200  # a bright rectangle: its pixels and nothing else are the item
    items[1, 8:20, 10:18] = 100  # the same item, half as bright
    (image, label), (dim_image, dim_label) = (
        compose_sample(np.random.default_rng(0), items[i:i + 1], np.array([5]), size=84,
                       max_items=1) for i in (0, 1))
    item = label > 0
    assert set(np.unique(label)) == {0, 6} and set(np.unique(dim_label)) == {0, 6}
    assert (dim_label <= label).all()  # the dimmer item's border crosses the threshold inside
    rows, cols = np.nonzero(item)
    box = label[rows.min():rows.max() + 1, cols.min():cols.max() + 1]
    assert (box == 6).all()  # a solid (resized) rectangle: threshold cuts its blurred border only
    assert np.array_equal(image[~item], dim_image[~item])  # only item pixels are painted
    inner = (slice(rows.min() + 2, rows.max() - 1), slice(cols.min() + 2, cols.max() - 1))
    difference = image[inner].astype(int) - dim_image[inner].astype(int)
    assert ((difference >= 54) & (difference <= 101)).all()  # (200 - 100) * tint in [0.55, 1]


def test_deterministic_and_kept(tmp_path, items_root):
    first, second = str(tmp_path / 'a'), str(tmp_path / 'b')
    make_fashion_mnist_seg(first, items_root, num_train=3, num_val=2, size=48, seed=5)
    make_fashion_mnist_seg(second, items_root, num_train=3, num_val=2, size=48, seed=5)
    for split in ('train', 'val'):
        for (image_a, label_a), (image_b, label_b) in zip(read_split(first, split),
                                                          read_split(second, split)):
            assert np.array_equal(image_a, image_b) and np.array_equal(label_a, label_b)
    again = make_fashion_mnist_seg(first, items_root, num_train=3, num_val=2, size=48, seed=5)
    assert not again['created']
    with pytest.raises(ToyDataExistsError, match='exists'):
        make_fashion_mnist_seg(first, items_root, num_train=4, num_val=2, size=48, seed=5)
    assert not [p for p in os.listdir(tmp_path) if p.startswith('.')]  # no staging left
    assert os.path.isfile(os.path.join(first, MANIFEST))


@pytest.mark.parametrize('kwargs, message', [
    (dict(num_train=0), 'at least one image'), (dict(size=32), 'at least 42 pixels'),
    (dict(max_items=0), 'max_items'), (dict(threshold=0), 'threshold'),
])
def test_bad_arguments(tmp_path, items_root, kwargs, message):
    with pytest.raises(UserError, match=message):
        make_fashion_mnist_seg(str(tmp_path / 'seg'), items_root, **kwargs)
    assert not (tmp_path / 'seg').exists()


def test_missing_fashion_mnist_names_the_package(tmp_path):
    with pytest.raises(MissingInputError, match='dataset-fashion-mnist'):
        make_fashion_mnist_seg(str(tmp_path / 'seg'), str(tmp_path / 'nowhere'))
    assert not (tmp_path / 'seg').exists()
