"""Visualization of repvgg_mm; also the import location of its VISUALIZERS/VISBACKENDS registries
(mmengine's own ``Visualizer`` and ``LocalVisBackend`` are used)."""
from .grid import prediction_grid

__all__ = ['prediction_grid']
