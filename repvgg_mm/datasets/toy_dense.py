"""A small synthetic dense-prediction dataset that needs no download.

Coloured circles, squares and triangles on textured backgrounds, generated deterministically from a
seed, in two standard layouts over the same images::

    OUT_DIR/img_dir/{train,val}/00000.png          RGB images
    OUT_DIR/ann_dir/{train,val}/00000.png          label maps (0 background, 1..3 shapes)
    OUT_DIR/annotations/instances_{train,val}.json COCO boxes + instance masks (category ids 1..3)
    OUT_DIR/toy_dense.json                         manifest (generation parameters)

mmseg reads it with ``BaseSegDataset`` (img_dir/ann_dir), mmdet with ``CocoDataset``. Each COCO
object's ``segmentation`` is the uncompressed RLE of its pixels in the label map, exactly.
"""
import json
import math
import os
from typing import Dict, List, Optional, Tuple

import numpy as np
from PIL import Image, ImageDraw

from repvgg_mm.utils.errors import UserError

from .toy_common import hsv_to_rgb8, publish_dataset, regular_polygon
from .toy_common import read_manifest as _read_manifest

SEG_CLASSES = ('background', 'circle', 'square', 'triangle')
SEG_PALETTE = ((0, 0, 0), (220, 20, 60), (0, 170, 0), (30, 80, 230))
DET_CLASSES = SEG_CLASSES[1:]
SPLITS = ('train', 'val')
MANIFEST = 'toy_dense.json'
FORMAT_VERSION = 2  # 2: instance masks (RLE) in the COCO files

# Hue centre (degrees) of each shape class; objects jitter around it, backgrounds stay desaturated.
_CLASS_HUES = {1: 0.0, 2: 120.0, 3: 240.0}
_HUE_JITTER = 25.0


def textured_background(rng: np.random.Generator, size: int) -> np.ndarray:
    """A smooth, muted colour field with soft stripes (float32, HxWx3)."""
    coarse = rng.uniform(70, 170, size=(4, 4, 3)).astype(np.uint8)
    grey = coarse.mean(axis=2, keepdims=True)
    coarse = (0.35 * coarse + 0.65 * grey).astype(np.uint8)  # desaturate: shapes carry the colour
    field = np.asarray(Image.fromarray(coarse).resize((size, size), Image.BILINEAR), np.float32)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    angle = rng.uniform(0, math.pi)
    period = rng.uniform(6, 16)
    stripes = np.sin((xx * math.cos(angle) + yy * math.sin(angle)) * 2 * math.pi / period)
    return field + rng.uniform(5, 15) * stripes[..., None]


def _shape_polygon(label: int, cx: float, cy: float, radius: float, angle: float):
    """Vertices of a square (4) or triangle (3) with circumradius ``radius``; None for a circle."""
    if label == 1:
        return None
    return regular_polygon(cx, cy, radius, angle, 4 if label == 2 else 3)


def _draw(draw: ImageDraw.ImageDraw, label: int, cx, cy, radius, angle, fill) -> None:
    polygon = _shape_polygon(label, cx, cy, radius, angle)
    if polygon is None:
        draw.ellipse([cx - radius, cy - radius, cx + radius, cy + radius], fill=fill)
    else:
        draw.polygon(polygon, fill=fill)


def _shape_mask(size: int, label: int, cx, cy, radius, angle) -> np.ndarray:
    canvas = Image.new('L', (size, size), 0)
    _draw(ImageDraw.Draw(canvas), label, cx, cy, radius, angle, fill=1)
    return np.asarray(canvas, dtype=bool)


def render_sample(rng: np.random.Generator, size: int = 96, max_objects: int = 4,
                max_tries: int = 50) -> Tuple[np.ndarray, np.ndarray, List[dict]]:
    """One image (uint8 HxWx3), its label map (uint8 HxW) and its objects.

    Objects do not overlap, so every box and mask matches its region of the label map. Each object
    is ``dict(label, bbox=[x, y, w, h], area, mask)`` with ``area`` the object's pixel count and
    ``mask`` its boolean HxW mask.
    """
    label_map = Image.new('L', (size, size), 0)
    occupied = np.zeros((size, size), dtype=bool)
    objects = []
    num_objects = int(rng.integers(1, max_objects + 1))
    for _ in range(num_objects):
        label = int(rng.integers(1, len(SEG_CLASSES)))
        for _ in range(max_tries):
            radius = rng.uniform(0.09, 0.22) * size
            cx, cy = rng.uniform(radius + 1, size - radius - 1, size=2)
            angle = rng.uniform(0, 2 * math.pi)
            mask = _shape_mask(size, label, cx, cy, radius, angle)
            halo = _shape_mask(size, label, cx, cy, radius + 2, angle)
            if mask.sum() >= 16 and not (halo & occupied).any():
                break
        else:
            continue  # no free spot left for this object
        occupied |= halo
        ys, xs = np.nonzero(mask)
        objects.append(dict(label=label, geometry=(cx, cy, radius, angle),
                            bbox=[float(xs.min()), float(ys.min()),
                                  float(xs.max() - xs.min() + 1), float(ys.max() - ys.min() + 1)],
                            area=float(mask.sum()), mask=mask))
    image = Image.fromarray(np.clip(textured_background(rng, size), 0, 255).astype(np.uint8))
    draw, draw_label = ImageDraw.Draw(image), ImageDraw.Draw(label_map)
    for obj in objects:
        hue = _CLASS_HUES[obj['label']] + rng.uniform(-_HUE_JITTER, _HUE_JITTER)
        colour = hsv_to_rgb8(hue / 360.0, rng.uniform(0.55, 1.0), rng.uniform(0.6, 1.0))
        geometry = obj.pop('geometry')
        _draw(draw, obj['label'], *geometry, fill=colour)
        _draw(draw_label, obj['label'], *geometry, fill=obj['label'])
    pixels = np.asarray(image, np.float32) + rng.normal(0, 6, size=(size, size, 3))
    return np.clip(pixels, 0, 255).astype(np.uint8), np.asarray(label_map, np.uint8), objects


def mask_to_rle(mask: np.ndarray) -> dict:
    """COCO's uncompressed RLE of a boolean HxW mask: run lengths in column-major order, starting
    with a (possibly empty) run of zeros."""
    flat = np.asarray(mask, dtype=bool).flatten(order='F')
    changes = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    bounds = np.concatenate(([0], changes, [flat.size]))
    counts = np.diff(bounds).tolist()
    if flat.size and flat[0]:
        counts = [0] + counts
    return dict(size=list(mask.shape), counts=counts)


def coco_categories() -> List[dict]:
    return [dict(id=i + 1, name=name) for i, name in enumerate(DET_CLASSES)]


def _write_split(root: str, split: str, count: int, rng: np.random.Generator, size: int,
                 progress) -> dict:
    img_dir = os.path.join(root, 'img_dir', split)
    ann_dir = os.path.join(root, 'ann_dir', split)
    os.makedirs(img_dir)
    os.makedirs(ann_dir)
    images, annotations = [], []
    for index in range(count):
        image, label_map, objects = render_sample(rng, size)
        file_name = f'{index:05d}.png'
        Image.fromarray(image).save(os.path.join(img_dir, file_name))
        Image.fromarray(label_map).save(os.path.join(ann_dir, file_name))
        images.append(dict(id=index + 1, file_name=file_name, width=size, height=size))
        for obj in objects:
            annotations.append(dict(id=len(annotations) + 1, image_id=index + 1,
                                    category_id=obj['label'], bbox=obj['bbox'], area=obj['area'],
                                    segmentation=mask_to_rle(obj['mask']), iscrowd=0))
        if progress is not None:
            progress.update()
    coco = dict(info=dict(description=f'repvgg_mm toy dense dataset ({split})'), licenses=[],
                images=images, annotations=annotations, categories=coco_categories())
    with open(os.path.join(root, 'annotations', f'instances_{split}.json'), 'w') as f:
        json.dump(coco, f)
    return dict(images=count, objects=len(annotations))


def _manifest(num_train: int, num_val: int, size: int, seed: int) -> dict:
    return dict(format_version=FORMAT_VERSION, num_train=num_train, num_val=num_val, size=size,
                seed=seed, seg_classes=list(SEG_CLASSES), det_classes=list(DET_CLASSES))


def read_manifest(out_dir: str) -> Optional[dict]:
    """The manifest of a toy dataset in ``out_dir`` (None if there is none)."""
    return _read_manifest(out_dir, MANIFEST)


def make_toy_dense(out_dir: str, num_train: int = 200, num_val: int = 40, size: int = 96,
                   seed: int = 0, overwrite: bool = False, progress: bool = True) -> Dict:
    """Generate the toy dataset into ``out_dir``; return its manifest (with ``'created'``).

    The same arguments always give byte-identical files. An ``out_dir`` that already holds a toy
    dataset with the same parameters is kept as it is (``created=False``); any other existing
    non-empty ``out_dir`` raises :class:`ToyDataExistsError` unless ``overwrite``. The dataset is
    built in a temporary sibling folder and moved into place at the end, so ``out_dir`` is never
    half written.
    """
    if num_train < 1 or num_val < 1:
        raise UserError(f'need at least one image per split, got {num_train} train / '
                         f'{num_val} val')
    if size < 32:
        raise UserError(f'images must be at least 32 pixels wide, got {size}')
    manifest = _manifest(num_train, num_val, size, seed)
    stats = {}

    def fill(staging: str) -> None:
        os.makedirs(os.path.join(staging, 'annotations'))
        bar = None
        if progress:
            from mmengine.utils import ProgressBar
            bar = ProgressBar(num_train + num_val)
        rng = np.random.default_rng(seed)
        stats.update({split: _write_split(staging, split, count, rng, size, bar)
                      for split, count in zip(SPLITS, (num_train, num_val))})

    if not publish_dataset(out_dir, MANIFEST, manifest, fill, overwrite):
        return dict(manifest, created=False)
    return dict(manifest, created=True, objects={s: v['objects'] for s, v in stats.items()})
