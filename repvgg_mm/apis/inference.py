"""Inference entry points in the OpenMMLab 1.x sense: a config and a checkpoint in, a model out."""
from typing import Optional, Union

from mmengine.config import Config
from torch import nn

from repvgg_mm.checkpoint import load_state_dict_strict, read_weights
from repvgg_mm.utils.config import build_model, load_config, replace_sync_bn


def init_model(config: Union[str, Config], checkpoint: Optional[str] = None, device: str = 'cpu',
               cfg_options: Optional[dict] = None) -> nn.Module:
    """Build the model of ``config`` (a path or a Config) in eval mode, with ``checkpoint``'s
    weights loaded strictly through the safe reader (random weights without a checkpoint).

    SyncBN layers are built as BN (single-process inference). ``model.cfg`` keeps the config.
    """
    cfg = load_config(config, cfg_options) if isinstance(config, str) else config
    cfg.model, _ = replace_sync_bn(cfg.model)
    model = build_model(cfg)
    if checkpoint is not None:
        load_state_dict_strict(model, read_weights(checkpoint).state, source=f'of {checkpoint}')
    model.cfg = cfg
    return model.to(device).eval()
