"""Import location of the ``repvgg_mm`` VISUALIZERS/VISBACKENDS registries.

mmengine imports every registry location when it builds from that scope, so this package must
exist for a Runner with ``default_scope='repvgg_mm'`` even though mmengine's own ``Visualizer`` and
``LocalVisBackend`` are used.
"""
