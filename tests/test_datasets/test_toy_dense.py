"""The embedded toy dataset: deterministic, consistent between its seg and COCO layouts."""
import hashlib
import json
import os

import numpy as np
import pytest
from mmengine.config import Config
from PIL import Image

from repvgg_mm.datasets import ToyDataExistsError
from repvgg_mm.datasets.toy_dense import (
    DET_CLASSES,
    FORMAT_VERSION,
    MANIFEST,
    SEG_CLASSES,
    SEG_PALETTE,
    make_toy_dense,
    mask_to_rle,
)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _digest(folder):
    digest = hashlib.sha256()
    for dirpath, dirnames, filenames in sorted(os.walk(folder)):
        dirnames.sort()
        for name in sorted(filenames):
            path = os.path.join(dirpath, name)
            digest.update(os.path.relpath(path, folder).encode())
            with open(path, 'rb') as f:
                digest.update(f.read())
    return digest.hexdigest()


def test_generation_is_deterministic_and_idempotent(tmp_path):
    first = make_toy_dense(tmp_path / 'a', num_train=4, num_val=2, progress=False)
    make_toy_dense(tmp_path / 'b', num_train=4, num_val=2, progress=False)
    assert first['created'] and _digest(tmp_path / 'a') == _digest(tmp_path / 'b')
    again = make_toy_dense(tmp_path / 'a', num_train=4, num_val=2, progress=False)
    assert not again['created']
    other_seed = make_toy_dense(tmp_path / 'c', num_train=4, num_val=2, seed=1, progress=False)
    assert other_seed['created'] and _digest(tmp_path / 'c') != _digest(tmp_path / 'a')


def test_existing_folder_is_not_overwritten_silently(tmp_path):
    make_toy_dense(tmp_path, num_train=2, num_val=1, progress=False)
    before = _digest(tmp_path)
    with pytest.raises(ToyDataExistsError):
        make_toy_dense(tmp_path, num_train=3, num_val=1, progress=False)
    assert _digest(tmp_path) == before
    make_toy_dense(tmp_path, num_train=3, num_val=1, overwrite=True, progress=False)
    assert len(os.listdir(tmp_path / 'img_dir' / 'train')) == 3
    assert not [n for n in os.listdir(tmp_path.parent) if n.startswith('.toy_dense-')]


def test_boxes_match_label_maps(tmp_path):
    make_toy_dense(tmp_path, num_train=6, num_val=2, size=64, progress=False)
    coco = json.loads((tmp_path / 'annotations' / 'instances_train.json').read_text())
    assert [c['name'] for c in coco['categories']] == list(DET_CLASSES)
    assert len(coco['images']) == 6 and coco['annotations']
    for image in coco['images']:
        labels = np.asarray(Image.open(tmp_path / 'ann_dir' / 'train' / image['file_name']))
        rgb = np.asarray(Image.open(tmp_path / 'img_dir' / 'train' / image['file_name']))
        assert labels.shape == rgb.shape[:2] == (64, 64) and rgb.shape[2] == 3
        anns = [a for a in coco['annotations'] if a['image_id'] == image['id']]
        assert anns and set(np.unique(labels)) <= set(range(len(SEG_CLASSES)))
        covered = np.zeros_like(labels, dtype=bool)
        for ann in anns:
            x, y, w, h = (int(v) for v in ann['bbox'])
            inside = labels[y:y + h, x:x + w] == ann['category_id']
            # the box is tight around pixels of its class: every border row/column touches one
            assert inside[0].any() and inside[-1].any()
            assert inside[:, 0].any() and inside[:, -1].any()
            assert ann['area'] <= w * h
            covered[y:y + h, x:x + w] |= inside
        assert covered.sum() == (labels > 0).sum()  # every shape pixel lies in its object's box


def test_instance_masks_are_the_label_map_objects(tmp_path):
    from pycocotools import mask as coco_mask
    from pycocotools.coco import COCO
    make_toy_dense(tmp_path, num_train=6, num_val=2, size=64, progress=False)
    coco = COCO(str(tmp_path / 'annotations' / 'instances_train.json'))  # the evaluator's reader
    for image in coco.dataset['images']:
        labels = np.asarray(Image.open(tmp_path / 'ann_dir' / 'train' / image['file_name']))
        drawn = np.zeros_like(labels)
        for ann in coco.loadAnns(coco.getAnnIds(imgIds=image['id'])):
            mask = coco.annToMask(ann).astype(bool)
            assert mask.sum() == ann['area'] == coco_mask.area(coco.annToRLE(ann))
            x, y, w, h = coco_mask.toBbox(coco.annToRLE(ann))
            assert [x, y, w, h] == ann['bbox']  # the box is the mask's box
            assert not drawn[mask].any()  # objects do not overlap
            drawn[mask] = ann['category_id']
        assert np.array_equal(drawn, labels)  # masks and label map agree pixel for pixel


@pytest.mark.parametrize('mask', [
    np.zeros((3, 4), bool), np.ones((3, 4), bool), np.eye(4, dtype=bool),
    np.random.default_rng(0).random((7, 5)) > 0.5])
def test_mask_to_rle_matches_pycocotools(mask):
    from pycocotools import mask as coco_mask
    rle = mask_to_rle(mask)
    assert sum(rle['counts']) == mask.size and rle['size'] == list(mask.shape)
    decoded = coco_mask.decode(coco_mask.frPyObjects(rle, *mask.shape))
    assert np.array_equal(decoded.astype(bool), mask)


def test_dataset_of_an_older_format_is_regenerated(tmp_path):
    make_toy_dense(tmp_path, num_train=2, num_val=1, size=48, progress=False)
    expected = _digest(tmp_path)
    manifest = json.loads((tmp_path / MANIFEST).read_text())
    (tmp_path / MANIFEST).write_text(json.dumps(dict(manifest, format_version=FORMAT_VERSION - 1)))
    coco_file = tmp_path / 'annotations' / 'instances_train.json'
    coco_file.write_text('{"images": [], "annotations": []}')  # what an old version wrote
    assert make_toy_dense(tmp_path, num_train=2, num_val=1, size=48, progress=False)['created']
    assert _digest(tmp_path) == expected
    # a different dataset (not only an older format) is still refused
    (tmp_path / MANIFEST).write_text(json.dumps(dict(manifest, format_version=1, seed=5)))
    with pytest.raises(ToyDataExistsError):
        make_toy_dense(tmp_path, num_train=2, num_val=1, size=48, progress=False)


def test_configs_match_the_generator():
    seg = Config.fromfile(os.path.join(ROOT, 'configs/_base_/datasets/toy_dense_seg.py'))
    det = Config.fromfile(os.path.join(ROOT, 'configs/_base_/datasets/toy_dense_det.py'))
    assert tuple(seg.metainfo.classes) == SEG_CLASSES
    assert [tuple(c) for c in seg.metainfo.palette] == list(SEG_PALETTE)
    assert tuple(det.metainfo.classes) == DET_CLASSES
