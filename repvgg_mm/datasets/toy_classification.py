"""A small synthetic classification dataset in the ImageNet class-folder layout, made on the fly.

Shapes and stripe textures on flat grey-ish noisy backgrounds, each class drawn in colours around
its own hue, generated deterministically from a seed::

    OUT_DIR/train/<class>/00000.png ...
    OUT_DIR/val/<class>/00000.png ...
    OUT_DIR/toy_cls.json          manifest (generation parameters and counts)
"""
import math
import os
from typing import Callable, Dict, Optional

import numpy as np
from PIL import Image, ImageDraw

from repvgg_mm.utils.errors import UserError

from .toy_common import hsv_to_rgb8, publish_dataset, regular_polygon

TOY_CLASSES = ('circle', 'square', 'triangle', 'cross', 'stripes')
SPLITS = ('train', 'val')
MANIFEST = 'toy_cls.json'
FORMAT_VERSION = 2
_SUPERSAMPLE = 2


def _cross(centre, radius, angle, width):
    """The 12 corners of a plus sign rotated by ``angle``."""
    w, r = width / 2, radius
    outline = [(-w, -r), (w, -r), (w, -w), (r, -w), (r, w), (w, w), (w, r), (-w, r), (-w, w),
               (-r, w), (-r, -w), (-w, -w)]
    cos, sin = math.cos(angle), math.sin(angle)
    return [(centre[0] + x * cos - y * sin, centre[1] + x * sin + y * cos) for x, y in outline]


def _background(rng, size):
    """A flat, desaturated random colour with mild pixel noise (uint8 HxWx3)."""
    grey = rng.uniform(40, 215)
    colour = grey + rng.uniform(-20, 20, size=3)
    image = colour + rng.normal(0, 6, size=(size, size, 3))
    return Image.fromarray(np.clip(image, 0, 255).astype(np.uint8))


def _class_colour(rng, class_id):
    """A saturated colour near the class's own hue; neighbouring classes overlap (a partial cue)."""
    hue = class_id / len(TOY_CLASSES) + rng.uniform(-0.12, 0.12)
    return hsv_to_rgb8(hue, rng.uniform(0.6, 1.0), rng.uniform(0.55, 1.0))


def render_toy_image(class_name: str, rng: np.random.Generator, size: int = 64) -> Image.Image:
    """One RGB image of ``class_name`` (see :data:`TOY_CLASSES`) drawn with ``rng``."""
    big = size * _SUPERSAMPLE
    if class_name not in TOY_CLASSES:
        raise ValueError(f'unknown toy class {class_name!r}; choose from {TOY_CLASSES}')
    image = _background(rng, big)
    draw = ImageDraw.Draw(image)
    fill = _class_colour(rng, TOY_CLASSES.index(class_name))
    radius = big * rng.uniform(0.22, 0.36)
    centre = tuple(big / 2 + rng.uniform(-0.12, 0.12, size=2) * big)
    angle = rng.uniform(0, 2 * math.pi)
    if class_name == 'circle':
        draw.ellipse([centre[0] - radius, centre[1] - radius, centre[0] + radius,
                      centre[1] + radius], fill=fill)
    elif class_name == 'square':
        draw.polygon(regular_polygon(*centre, radius * 1.2, angle, 4), fill=fill)
    elif class_name == 'triangle':
        draw.polygon(regular_polygon(*centre, radius * 1.3, angle, 3), fill=fill)
    elif class_name == 'cross':
        draw.polygon(_cross(centre, radius * 1.2, angle, radius * 0.7), fill=fill)
    else:  # stripes
        period = big * rng.uniform(0.1, 0.2)
        direction = (math.cos(angle), math.sin(angle))
        for offset in np.arange(-big, big, period):
            x0, y0 = big / 2 + offset * direction[1], big / 2 - offset * direction[0]
            draw.line([(x0 - big * direction[0], y0 - big * direction[1]),
                       (x0 + big * direction[0], y0 + big * direction[1])], fill=fill,
                      width=max(1, int(period / 2.5)))
    return image.resize((size, size), Image.Resampling.LANCZOS)


def _manifest(num_train: int, num_val: int, size: int, seed: int) -> dict:
    return dict(format_version=FORMAT_VERSION, classes=list(TOY_CLASSES), size=size, seed=seed,
                images_per_class=dict(train=num_train, val=num_val))


def make_toy_classification(out_dir: str, num_train: int = 200, num_val: int = 40, size: int = 64,
                            seed: int = 0, progress: Optional[Callable[[int], Callable]] = None
                            ) -> Dict[str, object]:
    """Write the toy dataset to ``out_dir`` (``num_train``/``num_val`` images per class).

    The folder appears atomically (built next to it, then renamed). An existing folder made with
    the same settings is kept as it is; any other existing non-empty folder is an error.
    ``progress(total)`` may return a callable invoked once per image (e.g. a ProgressBar's update).
    Returns the manifest plus ``created`` (False when the data was already there).
    """
    if min(num_train, num_val) < 1 or size < 8:
        raise UserError('need at least 1 image per class and split, and size >= 8')
    manifest = _manifest(num_train, num_val, size, seed)
    counts = dict(train=num_train, val=num_val)
    step = progress(len(TOY_CLASSES) * (num_train + num_val)) if progress else None

    def fill(staging: str) -> None:
        for split_id, split in enumerate(SPLITS):
            for class_id, name in enumerate(TOY_CLASSES):
                class_dir = os.path.join(staging, split, name)
                os.makedirs(class_dir)
                for index in range(counts[split]):
                    rng = np.random.default_rng([seed, split_id, class_id, index])
                    render_toy_image(name, rng, size).save(
                        os.path.join(class_dir, f'{index:05d}.png'))
                    if step:
                        step()

    return dict(manifest, created=publish_dataset(out_dir, MANIFEST, manifest, fill))
