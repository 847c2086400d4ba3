"""The one builder of "the model of this config, for analysis": inference, export, conversion
checks, benchmarks and tests build their models here.

SyncBN layers are built as BN (one process, any device); the weights are the model's own
initialisation, or random ones with random BN statistics (``seed``: the fused model then differs
from an identity-BN model, which makes fusion checks meaningful); optionally with the fused twin.
"""
import logging
from typing import Optional, Tuple, Union

import torch
from mmengine.config import Config
from mmengine.logging import MMLogger
from torch import nn

from repvgg_mm.utils.config import build_model, load_config, replace_sync_bn

from .utils import fuse_repvgg_blocks, randomize_bn_


def _init_weights_quietly(model: nn.Module) -> None:
    """``model.init_weights()`` without mmengine's INFO dump of every initialised parameter."""
    logger = MMLogger.get_current_instance()
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        model.init_weights()
    finally:
        logger.setLevel(level)


def build_analysis_model(config: Union[str, Config], cfg_options: Optional[dict] = None, *,
                         seed: Optional[int] = None, init_weights: bool = False,
                         fused_twin: bool = False
                         ) -> Union[nn.Module, Tuple[nn.Module, nn.Module]]:
    """The model of ``config`` (a path, or a Config whose ``model`` becomes the BN version in
    place) in eval mode, SyncBN built as BN.

    Args:
        seed: random weights: ``torch.manual_seed(seed)`` before the build and random BN
            statistics and affine parameters (:func:`~repvgg_mm.models.utils.randomize_bn_`)
            after it. None: the weights the build gives (load a checkpoint next).
        init_weights: run the model's ``init_weights()`` (as the Runner does) before randomising.
        fused_twin: return ``(model, fused copy)`` (every RepVGG block fused) instead.
    """
    cfg = load_config(config, cfg_options) if isinstance(config, str) else config
    cfg.model, _ = replace_sync_bn(cfg.model)
    if seed is not None:
        torch.manual_seed(seed)
    model = build_model(cfg)
    if init_weights:
        _init_weights_quietly(model)
    if seed is not None:
        randomize_bn_(model, torch.Generator().manual_seed(seed))
    model.eval()
    return (model, fuse_repvgg_blocks(model).eval()) if fused_twin else model
