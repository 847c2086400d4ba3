"""What the two embedded toy datasets share: colours, polygons, and publishing a generated folder.

A dataset folder is built in a hidden staging sibling and renamed into place at the end, next to a
JSON manifest of its generation parameters: an interrupted run never leaves a half-written folder,
and a folder already holding the same manifest is reused as it is.
"""
import colorsys
import json
import math
import os
import shutil
import tempfile
from typing import Callable, List, Optional, Tuple

from repvgg_mm.utils.errors import UserError


class ToyDataExistsError(UserError, FileExistsError):
    """OUT_DIR exists and does not hold a toy dataset made with the same parameters."""


def hsv_to_rgb8(hue: float, saturation: float, value: float) -> Tuple[int, int, int]:
    """An 8-bit RGB colour from hue (turns, wraps around), saturation and value in [0, 1]."""
    rgb = colorsys.hsv_to_rgb(hue % 1.0, saturation, value)
    return tuple(int(round(255 * c)) for c in rgb)


def regular_polygon(cx: float, cy: float, radius: float, angle: float,
                    corners: int) -> List[Tuple[float, float]]:
    """Vertices of a regular polygon with circumradius ``radius``, rotated by ``angle``."""
    return [(cx + radius * math.cos(angle + 2 * math.pi * k / corners),
             cy + radius * math.sin(angle + 2 * math.pi * k / corners)) for k in range(corners)]


def read_manifest(out_dir: str, name: str) -> Optional[dict]:
    """The manifest ``name`` in ``out_dir`` (None if absent or unreadable)."""
    try:
        with open(os.path.join(out_dir, name)) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def _older_version_of(previous: Optional[dict], manifest: dict) -> bool:
    """Whether ``previous`` is the manifest of the same dataset from an older generator version."""
    if not isinstance(previous, dict) or set(previous) != set(manifest):
        return False
    same = all(previous[k] == v for k, v in manifest.items() if k != 'format_version')
    older = previous.get('format_version')
    return same and isinstance(older, int) and older < manifest['format_version']


def publish_dataset(out_dir: str, manifest_name: str, manifest: dict,
                    fill: Callable[[str], None], overwrite: bool = False) -> bool:
    """Generate a dataset into ``out_dir`` with ``fill(staging_dir)``; return whether it was made.

    An ``out_dir`` holding the same manifest is kept (False); one holding the same dataset from an
    older generator version is regenerated. Any other non-empty ``out_dir`` (or a file there)
    raises :class:`ToyDataExistsError` unless ``overwrite``. When another process publishes
    identical data meanwhile, its folder is kept.
    """
    out_dir = os.path.abspath(out_dir)
    if os.path.exists(out_dir) and not (os.path.isdir(out_dir) and not os.listdir(out_dir)):
        previous = read_manifest(out_dir, manifest_name)
        if previous == manifest:
            return False
        overwrite = overwrite or _older_version_of(previous, manifest)
        if not overwrite or not os.path.isdir(out_dir):
            raise ToyDataExistsError(f'{out_dir} exists and is not a toy dataset made with these '
                                     'parameters; choose another folder or overwrite it '
                                     '(--overwrite)')
    parent = os.path.dirname(out_dir)
    os.makedirs(parent, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=f'.{os.path.basename(out_dir)}.tmp-', dir=parent)
    try:
        fill(staging)
        with open(os.path.join(staging, manifest_name), 'w') as f:
            json.dump(manifest, f, indent=1)
        if os.path.isdir(out_dir) and (overwrite or not os.listdir(out_dir)):
            shutil.rmtree(out_dir)
        os.replace(staging, out_dir)
    except OSError:
        shutil.rmtree(staging, ignore_errors=True)
        if read_manifest(out_dir, manifest_name) == manifest:
            return False  # another process published the same data first
        raise
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return True
