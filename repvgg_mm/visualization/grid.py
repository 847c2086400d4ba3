"""Tile drawings (e.g. mmseg's/mmdet's visualizer outputs) into one PNG."""
from typing import Sequence

import numpy as np
from PIL import Image

from repvgg_mm.utils.fileio import atomic_output


def prediction_grid(png_paths: Sequence[str], out_path: str, columns: int = 2,
                    scale: int = 2) -> None:
    """Tile the images of ``png_paths`` row by row into ``out_path`` (written atomically)."""
    if not png_paths:
        raise ValueError('no images to tile')
    tiles = [np.asarray(Image.open(p).convert('RGB')) for p in png_paths]
    height, width = tiles[0].shape[:2]
    rows = -(-len(tiles) // columns)
    grid = np.full((rows * height, columns * width, 3), 255, np.uint8)
    for i, tile in enumerate(tiles):
        r, c = divmod(i, columns)
        grid[r * height:(r + 1) * height, c * width:(c + 1) * width] = tile[:height, :width]
    image = Image.fromarray(grid).resize((grid.shape[1] * scale, grid.shape[0] * scale),
                                         Image.NEAREST)
    with atomic_output(out_path) as tmp:
        image.save(tmp, format='PNG')
