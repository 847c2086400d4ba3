"""An ONNX Runtime session as an mmengine model, so a config's own data preprocessor, test
dataloader, evaluator and visualisation hooks run on an exported model unchanged.

:class:`ONNXRuntimeModel` builds the config's own PyTorch model for its pre- and post-processing
and replaces only the exported part (:data:`~repvgg_mm.deploy.model_folder.KINDS`) by the session:

- classifiers: logits from ONNX, softmax and label by the head's ``predict_by_feat``;
- segmentors: ``encode_decode`` from ONNX (logits, resized by the decode head's
  ``predict_by_feat``), so mmseg's whole/slide inference and argmax run unchanged;
- single-stage detectors: raw head outputs from ONNX, decoding and NMS by the head's own
  ``predict_by_feat``;
- two-stage detectors: backbone + neck from ONNX, RPN and RoI heads in PyTorch with their weights
  from the model folder (read by the safe reader, loaded strictly).

The PyTorch modules that ONNX replaces are dropped after the ONNX model has been checked against
them (same number of outputs and the same shapes on one input), so they need no weights.
"""
import os
from typing import List, Optional, Sequence, Union

import numpy as np
import torch
from mmengine.config import Config
from mmengine.logging import MMLogger
from mmengine.model import BaseModel
from torch import Tensor, nn

from repvgg_mm.checkpoint import load_state_dict_strict, read_weights
from repvgg_mm.models import build_analysis_model
from repvgg_mm.registry import MODELS
from repvgg_mm.utils.compare import flatten_tensors
from repvgg_mm.utils.errors import UserError, first_line

from .model_folder import (
    EXPORTED_MODULES,
    TWO_STAGE_HEADS,
    exported_part,
    find_model_info,
    group_outputs,
    model_kind,
    output_groups,
    read_model_info,
)

CHECK_SIZE = 64  # H and W of the input that proves a dynamic-size graph fits the config


def is_onnx_model(path: str) -> bool:
    """Whether ``path`` names an ONNX model for the runtime wrapper: a ``.onnx`` file or a
    folder (a model folder, see :mod:`repvgg_mm.deploy.model_folder`)."""
    return path.lower().endswith('.onnx') or os.path.isdir(path)


def resolve_onnx(path: str):
    """``(onnx file, ModelInfo or None)`` for a ``.onnx`` file or a model folder (its FP32
    model)."""
    if not os.path.exists(path):
        raise UserError(f'ONNX model not found: {path}')
    if os.path.isdir(path):
        info = read_model_info(path)
        return os.path.join(path, info.onnx['fp32']), info
    return path, find_model_info(path)


def create_session(path: str, num_threads: Optional[int] = None,
                   providers: Sequence[str] = ('CPUExecutionProvider', )):
    """An ``onnxruntime.InferenceSession`` of ``path``; a file ONNX Runtime cannot load (corrupt,
    truncated, not ONNX) or whose weights hold NaN/inf is a one-line error."""
    import onnx
    import onnxruntime
    from onnx import numpy_helper
    if not os.path.isfile(path):
        raise UserError(f'ONNX model not found: {path}')
    try:
        proto = onnx.load(path)
    except Exception as exc:  # protobuf DecodeError, OSError, ...
        raise UserError(f'{path} is not an ONNX model: {first_line(exc)}') from exc
    if not proto.graph.node:
        raise UserError(f'{path} is not an ONNX model: its graph is empty')
    for init in proto.graph.initializer:
        array = numpy_helper.to_array(init)
        if array.dtype.kind == 'f' and not np.isfinite(array).all():
            raise UserError(f'{path}: the weight {init.name!r} holds NaN or infinity; refusing '
                            'to use it')
    options = onnxruntime.SessionOptions()
    if num_threads:
        options.intra_op_num_threads = num_threads
    try:
        return onnxruntime.InferenceSession(path, options, providers=list(providers))
    except Exception as exc:  # onnxruntime's own exception types
        raise UserError(f'ONNX Runtime cannot load {path}: {first_line(exc)}') from exc


def _shape_text(shape) -> str:
    return 'x'.join(str(d) if isinstance(d, int) else '?' for d in shape)


@MODELS.register_module()
class ONNXRuntimeModel(BaseModel):
    """The model of a config with its exported part run by ONNX Runtime (inference only).

    Args:
        model: the config's model (the deploy or the training-time one: only the parts that
            run in PyTorch are used, and two-stage heads get their weights from the folder).
        onnx: a ``.onnx`` file (FP32 or INT8) or a model folder (its FP32 model). A two-stage
            detector needs its model folder (the ``.onnx`` inside one, or the folder).
        scope: the registry scope the model builds in (``mmseg``, ``mmdet``, ``repvgg_mm``).
        num_threads: ONNX Runtime intra-op threads (its default: one per core).
    """

    def __init__(self, model: dict, onnx: str, scope: Optional[str] = None,
                 num_threads: Optional[int] = None,
                 providers: Sequence[str] = ('CPUExecutionProvider', ),
                 data_preprocessor=None, init_cfg=None):
        logger = MMLogger.get_current_instance()
        path, info = resolve_onnx(onnx)
        session = create_session(path, num_threads, providers)
        model_cfg = dict(model)
        if data_preprocessor is not None:  # a Runner passes a config-level data_preprocessor
            model_cfg.setdefault('data_preprocessor', data_preprocessor)
        torch_model = build_analysis_model(Config(dict(model=model_cfg, default_scope=scope)))
        kind = model_kind(torch_model)
        if info is not None and info.kind != kind:
            raise UserError(f'{onnx} holds a {info.kind} but the config builds a {kind} '
                            f'({type(torch_model).__name__})')
        super().__init__(data_preprocessor=torch_model.data_preprocessor, init_cfg=init_cfg)
        self.onnx_path, self.info, self.kind = path, info, kind
        self.session = session
        self.input_name = self.session.get_inputs()[0].name
        self.input_shape = list(self.session.get_inputs()[0].shape)
        self.model = torch_model.eval()
        self.groups = self._check_fits(torch_model)
        if kind == 'two_stage_detector':
            self._load_heads(onnx)
        for name in EXPORTED_MODULES[kind]:  # run by ONNX Runtime from now on
            if getattr(torch_model, name, None) is not None:
                setattr(torch_model, name, None)
        if kind == 'segmentor':
            torch_model.encode_decode = self._encode_decode
        elif kind == 'two_stage_detector':
            torch_model.extract_feat = self._features
        logger.info(f'ONNX Runtime {kind}: {path} ({self.session.get_providers()[0]}); '
                    f'input {_shape_text(self.input_shape)}')

    # -- checks -------------------------------------------------------------------------------
    def _check_fits(self, torch_model: nn.Module) -> Optional[List[int]]:
        """Prove the graph fits the config's model: one 4-D input of its channels, and the same
        outputs (count and shapes) as the PyTorch part it replaces on one input. Returns how the
        outputs group (single-stage heads)."""
        inputs = self.session.get_inputs()
        channels = 3
        if len(inputs) != 1 or len(inputs[0].shape) != 4 or \
                isinstance(inputs[0].shape[1], int) and inputs[0].shape[1] != channels:
            raise UserError(f'{self.onnx_path} does not fit the config: it takes '
                            f'{[_shape_text(i.shape) for i in inputs]}, the config\'s model one '
                            f'Nx{channels}xHxW image batch')
        height, width = (d if isinstance(d, int) and d > 0 else CHECK_SIZE
                         for d in self.input_shape[2:])
        probe = torch.randn(1, channels, height, width, generator=torch.Generator().manual_seed(0))
        with torch.no_grad():
            expected = exported_part(torch_model, self.kind)(probe)
        groups = output_groups(expected) if self.kind == 'single_stage_detector' else None
        expected = [tuple(t.shape) for t in flatten_tensors(expected)]
        try:
            actual = [tuple(o.shape) for o in self._run_numpy(probe.numpy())]
        except UserError:
            raise
        except Exception as exc:  # onnxruntime's own exception types
            raise UserError(f'{self.onnx_path} does not fit the config: ONNX Runtime cannot run '
                            f'a {_shape_text(probe.shape)} input ({first_line(exc)})') from exc
        if actual != expected:
            raise UserError(
                f'{self.onnx_path} does not fit the config: for a {_shape_text(probe.shape)} '
                f'input it returns {len(actual)} outputs {[_shape_text(s) for s in actual]}, '
                f'the config\'s {self.kind} {len(expected)} '
                f'{[_shape_text(s) for s in expected]} (an ONNX model of another config?)')
        return groups

    def _load_heads(self, onnx: str) -> None:
        if self.info is None or not self.info.head_weights:
            raise UserError(f'{onnx}: a two-stage detector\'s ONNX model holds the backbone and '
                            'neck only; pass the model folder export wrote (its RPN and RoI '
                            'head weights run in PyTorch)')
        path = os.path.join(os.path.dirname(self.onnx_path), self.info.head_weights)
        state = read_weights(path).state  # refuses NaN/inf weights
        heads = nn.Module()
        for name in TWO_STAGE_HEADS:
            heads.add_module(name, getattr(self.model, name))
        load_state_dict_strict(heads, state, source=f'of {path}')

    # -- running ------------------------------------------------------------------------------
    def _run_numpy(self, array: np.ndarray) -> List[np.ndarray]:
        for axis, (want, got) in enumerate(zip(self.input_shape, array.shape)):
            if axis > 0 and isinstance(want, int) and want > 0 and want != got:
                raise UserError(f'{self.onnx_path} takes {_shape_text(self.input_shape)} inputs '
                                f'only (exported for a fixed size), got {_shape_text(array.shape)}')
        return self.session.run(None, {self.input_name: np.ascontiguousarray(array, np.float32)})

    def run(self, inputs: Tensor) -> tuple:
        """The session's outputs for a preprocessed batch, as tensors (grouped like the PyTorch
        outputs for single-stage heads)."""
        outputs = self._run_numpy(inputs.detach().cpu().float().numpy())
        return group_outputs([torch.from_numpy(o) for o in outputs], self.groups)

    def _encode_decode(self, inputs: Tensor, batch_img_metas: List[dict]) -> Tensor:
        (logits, ) = self.run(inputs)
        head = self.model.decode_head
        head = head[-1] if isinstance(head, nn.ModuleList) else head
        return head.predict_by_feat(logits, batch_img_metas)

    def _features(self, inputs: Tensor) -> tuple:
        return self.run(inputs)

    def forward(self, inputs: Tensor, data_samples: Optional[list] = None,
                mode: str = 'tensor') -> Union[tuple, list]:
        """``mode='predict'``: data samples with predictions, as the PyTorch model returns them;
        ``'tensor'``: the session's outputs."""
        if mode == 'tensor':
            return self.run(inputs)
        if mode == 'loss':
            raise UserError('an ONNX Runtime model is for inference only: it has no loss')
        if mode != 'predict':
            raise ValueError(f"mode must be 'tensor', 'loss' or 'predict', got {mode!r}")
        if self.kind == 'classifier':
            (logits, ) = self.run(inputs)
            return self.model.head.predict_by_feat(logits, data_samples)
        if self.kind == 'single_stage_detector':
            head_outputs = self.run(inputs)
            results = self.model.bbox_head.predict_by_feat(
                *head_outputs, batch_img_metas=[s.metainfo for s in data_samples], rescale=True)
            return self.model.add_pred_to_datasample(data_samples, results)
        return self.model.predict(inputs, data_samples)  # segmentors, two-stage detectors
