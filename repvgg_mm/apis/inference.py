"""Inference entry points in the OpenMMLab 1.x sense: a config and a checkpoint in, a model out."""
import warnings
from typing import Optional, Union

from mmengine.config import Config
from torch import nn

from repvgg_mm.checkpoint import load_state_dict_strict, read_weights
from repvgg_mm.deploy.runtime import ONNXRuntimeModel, is_onnx_model
from repvgg_mm.models import build_analysis_model
from repvgg_mm.utils.config import load_config, replace_sync_bn, setup_codebase
from repvgg_mm.utils.errors import UserError, first_line


def init_model(config: Union[str, Config], checkpoint: Optional[str] = None, device: str = 'cpu',
               cfg_options: Optional[dict] = None) -> nn.Module:
    """Build the model of ``config`` (a path or a Config) in eval mode, with ``checkpoint``'s
    weights loaded strictly through the safe reader (random weights without a checkpoint).

    An ONNX model as ``checkpoint`` (a ``.onnx`` file or a model folder) gives the
    :class:`~repvgg_mm.deploy.ONNXRuntimeModel` of the config: the same ``test_step`` and
    ``forward(..., mode='predict')``, run by ONNX Runtime on the CPU. SyncBN layers are built as
    BN (single-process inference). ``model.cfg`` keeps the config.
    """
    cfg = load_config(config, cfg_options) if isinstance(config, str) else config
    if checkpoint is not None and is_onnx_model(checkpoint):
        cfg.model, _ = replace_sync_bn(cfg.model)
        if device != 'cpu':
            raise UserError(f'an ONNX model runs on the CPU here, not on {device!r}')
        model = ONNXRuntimeModel(model=cfg.model, onnx=checkpoint, scope=setup_codebase(cfg))
        model.cfg = cfg
        return model.eval()
    model = build_analysis_model(cfg)
    if checkpoint is not None:
        load_state_dict_strict(model, read_weights(checkpoint).state, source=f'of {checkpoint}')
    model.cfg = cfg
    return model.to(device).eval()


def init_inferencer(config: str, checkpoint: str, device: str = 'cpu',
                    cfg_options: Optional[dict] = None):
    """mmseg's ``MMSegInferencer`` or mmdet's ``DetInferencer`` (chosen by the config's scope) for
    a training-time or fused config + checkpoint, its weights read by the safe reader and loaded
    strictly (the inferencers' own loading is neither).

    Class names and palette come from the checkpoint's ``meta['dataset_meta']`` when it has them,
    else from the config's test dataset. An ONNX model (a ``.onnx`` file or a model folder) runs
    in the inferencer as :class:`~repvgg_mm.deploy.ONNXRuntimeModel` (classes and palette from
    its model folder).
    """
    cfg = load_config(config, cfg_options)
    scope = setup_codebase(cfg)
    if scope == 'mmseg':
        from mmseg.apis import MMSegInferencer as Inferencer
    elif scope == 'mmdet':
        from mmdet.apis import DetInferencer as Inferencer
    else:
        raise UserError(f'{config}: image inference is for mmseg and mmdet configs (scope '
                        f'{scope!r}); use init_model for classifiers')
    onnx_model = init_model(cfg, checkpoint, device) if is_onnx_model(checkpoint) else None
    weights = None if onnx_model else read_weights(checkpoint)
    with warnings.catch_warnings():  # the weights are loaded below, strictly: not "random"
        for message in ('Checkpoint is not loaded', 'weights is None'):
            warnings.filterwarnings('ignore', message=message, category=UserWarning)
        try:
            inferencer = Inferencer(model=cfg, weights=None, device=device)
        except (UserError, OSError):
            raise
        except Exception as exc:  # the inferencer builds the model itself: config mistakes
            raise UserError(f'cannot build the model of {config}: {first_line(exc)}') from exc
    if onnx_model is not None:
        onnx_model.dataset_meta = inferencer.model.dataset_meta
        inferencer.model = onnx_model
        dataset_meta = onnx_model.info.dataset_meta if onnx_model.info is not None else {}
    else:
        load_state_dict_strict(inferencer.model, weights.state, source=f'of {checkpoint}')
        dataset_meta = weights.meta.get('dataset_meta') or {}
    meta = {k.lower(): v for k, v in dataset_meta.items() if k.lower() in ('classes', 'palette')}
    if 'classes' in meta:
        inferencer.model.dataset_meta = dict(inferencer.model.dataset_meta or {}, **meta)
        inferencer.visualizer.dataset_meta = inferencer.model.dataset_meta
    return inferencer
