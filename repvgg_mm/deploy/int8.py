"""Static INT8 ONNX models with ``onnxruntime.quantization``, and the sensitivity of each conv.

Recipe (:func:`quantize_onnx`): ``quant_pre_process`` (shape inference, graph clean-up), then
``quantize_static`` in QDQ format with per-channel symmetric QInt8 weights and asymmetric QUInt8
activations calibrated (MinMax) on the given inputs. A conv (or Gemm/MatMul) quantizes what it
consumes (its input activation and its weights), not its output: the next quantized op quantizes
its own input (``OpTypesToExcludeOutputQuantization``, ReLUs kept in the graph); ONNX Runtime still
fuses the chains into QLinearConv, and the model's final logits stay in floating point. The convs
named in ``keep_fp32`` run in floating point on the float activation (not its quantized copy).

Sensitivity (:func:`conv_sensitivity`): for each quantized conv, the noise-to-signal power ratio
of its output when only that conv's input and weights are quantized, exactly as the INT8 model
quantizes them, with the FP32 model's activations as inputs, summed over the calibration inputs:
``sum ||conv(Q(x), Q(W)) - conv(x, W)||^2 / sum ||conv(x, W)||^2``. It is the error that keeping
that one conv in floating point removes, free of the errors of the layers before it.
"""
import copy
import os
import tempfile
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from mmengine.config import Config
from mmengine.registry import DefaultScope
from mmengine.runner import Runner
from torch import nn

from repvgg_mm.datasets.checks import check_data_root
from repvgg_mm.utils.config import setup_codebase
from repvgg_mm.utils.errors import UserError, first_line
from repvgg_mm.utils.fileio import atomic_output

WEIGHT_TYPE = 'QInt8'  # per-channel, symmetric
ACTIVATION_TYPE = 'QUInt8'  # per-tensor, asymmetric
QUANT_OPTIONS = dict(WeightSymmetric=True, ActivationSymmetric=False,
                     OpTypesToExcludeOutputQuantization=['Conv', 'Gemm', 'MatMul'],
                     QDQKeepRemovableActivations=True)


class InputReader:
    """An ``onnxruntime.quantization`` calibration data reader over preprocessed input arrays."""

    def __init__(self, input_name: str, inputs: Sequence[np.ndarray]):
        self.input_name, self.inputs, self.index = input_name, list(inputs), 0

    def get_next(self) -> Optional[Dict[str, np.ndarray]]:
        if self.index >= len(self.inputs):
            return None
        self.index += 1
        return {self.input_name: self.inputs[self.index - 1]}

    def rewind(self) -> None:
        self.index = 0


def _leaf_dataset(dataset_cfg: dict) -> dict:
    while isinstance(dataset_cfg.get('dataset'), dict):  # RepeatDataset and other wrappers
        dataset_cfg = dataset_cfg['dataset']
    return dataset_cfg


def preprocessed_inputs(cfg: Config, data_preprocessor: nn.Module, split: str, count: int
                        ) -> List[np.ndarray]:
    """The first ``count`` images of the config's ``split`` dataloader, one per batch, through
    ``data_preprocessor`` in test mode: what the model gets at test time. The ``train`` split is
    read with the test pipeline (no augmentation). Fewer images than ``count``: one-line error."""
    key = f'{split}_dataloader'
    if count < 1:
        raise UserError(f'the number of images must be >= 1, got {count}')
    if not isinstance(cfg.get(key), dict):
        raise UserError(f'the config has no {key} to read images from')
    check_data_root(cfg, (split, ))
    loader_cfg = copy.deepcopy(cfg[key].to_dict() if hasattr(cfg[key], 'to_dict') else cfg[key])
    if split != 'test' and isinstance(cfg.get('test_dataloader'), dict):
        test_leaf = _leaf_dataset(cfg.test_dataloader.dataset)
        leaf = _leaf_dataset(loader_cfg['dataset'])
        for name in ('pipeline', 'transforms'):  # mmseg/mmdet pipelines, our torchvision ones
            if name in test_leaf:
                leaf[name] = copy.deepcopy(test_leaf[name])
    loader_cfg.update(batch_size=1, num_workers=0, persistent_workers=False,
                      sampler=dict(type='DefaultSampler', shuffle=False))
    loader_cfg.pop('batch_sampler', None)
    scope = setup_codebase(cfg)
    try:
        with DefaultScope.overwrite_default_scope(scope):
            loader = Runner.build_dataloader(loader_cfg)
            size = len(loader.dataset)
    except UserError:
        raise
    except Exception as exc:  # dataset classes raise anything on bad files
        raise UserError(f'cannot read the {split} data of the config (empty or unreadable?): '
                        f'{first_line(exc)}') from exc
    if size < count:
        raise UserError(f'the {split} split has {size} images, fewer than the {count} asked for'
                        + (' (it is empty)' if size == 0 else ''))
    arrays = []
    with torch.no_grad():
        for data in loader:
            arrays.append(data_preprocessor(data, False)['inputs'].float().numpy())
            if len(arrays) == count:
                break
    return arrays


def _input_name(path: str) -> str:
    import onnx
    graph = onnx.load(path, load_external_data=False).graph
    initializers = {init.name for init in graph.initializer}
    names = [value.name for value in graph.input if value.name not in initializers]
    if len(names) != 1:
        raise UserError(f'{path}: INT8 calibration needs a graph with one input, it has {names}')
    return names[0]


def _check_inputs(inputs: Sequence[np.ndarray]) -> List[np.ndarray]:
    inputs = [np.ascontiguousarray(x, np.float32) for x in inputs]
    if not inputs:
        raise UserError('INT8 calibration needs at least one input image; the calibration set is '
                        'empty')
    for index, array in enumerate(inputs):
        if not np.isfinite(array).all():
            raise UserError(f'calibration input {index} holds NaN or infinity')
    return inputs


def _producers(graph) -> Dict[str, object]:
    return {output: node for node in graph.node for output in node.output}


def _float_inputs_for(model, names: Sequence[str]) -> None:
    """Feed the convs ``names`` (left unquantized by ``nodes_to_exclude``) the float activation
    instead of the dequantized copy that a quantized sibling consumer shares, then drop the Q/DQ
    nodes and constants nobody reads any more."""
    graph = model.graph
    producers = _producers(graph)
    wanted = set(names)
    for node in graph.node:
        if node.op_type != 'Conv' or node.name not in wanted:
            continue
        dequant = producers.get(node.input[0])
        if dequant is None or dequant.op_type != 'DequantizeLinear':
            continue
        quant = producers.get(dequant.input[0])
        if quant is not None and quant.op_type == 'QuantizeLinear':
            node.input[0] = quant.input[0]
    while True:  # prune Q/DQ nodes without consumers
        consumed = {name for node in graph.node for name in node.input}
        consumed |= {value.name for value in graph.output}
        dead = [node for node in graph.node
                if node.op_type in ('QuantizeLinear', 'DequantizeLinear')
                and not any(out in consumed for out in node.output)]
        if not dead:
            break
        for node in dead:
            graph.node.remove(node)
    consumed = {name for node in graph.node for name in node.input}
    for init in [i for i in graph.initializer if i.name not in consumed]:
        graph.initializer.remove(init)


def quantize_onnx(fp32_path: str, int8_path: str, inputs: Sequence[np.ndarray],
                  keep_fp32: Sequence[str] = ()) -> None:
    """Write the static INT8 version of the FP32 ONNX model ``fp32_path`` to ``int8_path``
    (atomically), calibrated on ``inputs`` (preprocessed arrays of the graph's input), with the
    convs named in ``keep_fp32`` left in floating point. See the module docstring."""
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process
    inputs = _check_inputs(inputs)
    input_name = _input_name(fp32_path)
    convs = {node.name for node in onnx.load(fp32_path, load_external_data=False).graph.node
             if node.op_type == 'Conv'}
    unknown = sorted(set(keep_fp32) - convs)
    if unknown:
        raise UserError(f'keep_fp32 names convs the model does not have: {unknown[:3]}')
    with tempfile.TemporaryDirectory() as tmp:
        prepared, quantized = os.path.join(tmp, 'pre.onnx'), os.path.join(tmp, 'int8.onnx')
        try:
            quant_pre_process(fp32_path, prepared, skip_symbolic_shape=True)
            quantize_static(prepared, quantized, InputReader(input_name, inputs),
                            quant_format=QuantFormat.QDQ, per_channel=True,
                            weight_type=getattr(QuantType, WEIGHT_TYPE),
                            activation_type=getattr(QuantType, ACTIVATION_TYPE),
                            calibrate_method=CalibrationMethod.MinMax,
                            nodes_to_exclude=list(keep_fp32), extra_options=dict(QUANT_OPTIONS))
        except UserError:
            raise
        except Exception as exc:  # onnxruntime's own exception types
            raise UserError(f'onnxruntime.quantization failed on {fp32_path}: '
                            f'{first_line(exc)}') from exc
        model = onnx.load(quantized)
        _float_inputs_for(model, keep_fp32)
        with atomic_output(int8_path) as out:
            onnx.save(model, out)


def quantized_convs(path: str) -> List[str]:
    """Names of the convs of an ONNX model whose weights are INT8 (dequantized in the graph)."""
    import onnx
    graph = onnx.load(path, load_external_data=False).graph
    producers = _producers(graph)
    return [node.name for node in graph.node if node.op_type == 'Conv' and len(node.input) > 1
            and getattr(producers.get(node.input[1]), 'op_type', None) == 'DequantizeLinear']


@dataclass
class ConvSensitivity:
    """Quantization error of one conv (see the module docstring)."""

    name: str
    noise_to_signal: float

    @property
    def sqnr_db(self) -> float:
        """Signal-to-quantization-noise ratio of the conv's output in dB."""
        return float('inf') if self.noise_to_signal <= 0 else \
            -10.0 * float(np.log10(self.noise_to_signal))


@dataclass
class _ConvQuant:
    input_name: str
    weight: torch.Tensor  # FP32
    bias: Optional[torch.Tensor]
    qweight: torch.Tensor  # dequantized INT8
    scale: float
    zero_point: int
    qmin: int
    qmax: int
    attrs: dict


def _constants(graph) -> Dict[str, object]:
    """Initializers by name, also under the outputs of ``Identity`` nodes that forward one (the
    TorchScript exporter shares identical tensors that way) and of ``Constant`` nodes."""
    from onnx import numpy_helper
    values = {init.name: init for init in graph.initializer}
    for node in graph.node:
        if node.op_type == 'Identity' and node.input[0] in values:
            values[node.output[0]] = values[node.input[0]]
        elif node.op_type == 'Constant' and node.attribute and node.attribute[0].name == 'value':
            values[node.output[0]] = numpy_helper.from_array(
                numpy_helper.to_array(node.attribute[0].t), node.output[0])
    return values


def _array(initializers: dict, name: str) -> np.ndarray:
    from onnx import numpy_helper
    if name not in initializers:
        raise KeyError(name)
    return numpy_helper.to_array(initializers[name])


def _conv_quantization(fp32_model, int8_model) -> Dict[str, _ConvQuant]:
    """How the INT8 model quantizes each conv: input scale/zero point, dequantized weights."""
    from onnx import helper
    inits32, inits8 = _constants(fp32_model.graph), _constants(int8_model.graph)
    producers = _producers(int8_model.graph)
    fp32_convs = {n.name: n for n in fp32_model.graph.node if n.op_type == 'Conv'}
    result = {}
    for node in int8_model.graph.node:
        if node.op_type != 'Conv' or node.name not in fp32_convs:
            continue
        source = fp32_convs[node.name]
        act_dq, w_dq = (producers.get(name) for name in node.input[:2])
        if getattr(act_dq, 'op_type', None) != 'DequantizeLinear' or \
                getattr(w_dq, 'op_type', None) != 'DequantizeLinear':
            continue
        try:
            weight = _array(inits32, source.input[1])
            bias = _array(inits32, source.input[2]) if len(source.input) > 2 else None
            w_q = _array(inits8, w_dq.input[0]).astype(np.float64)
            w_scale = _array(inits8, w_dq.input[1]).astype(np.float64)
            w_zero = _array(inits8, w_dq.input[2]).astype(np.float64) \
                if len(w_dq.input) > 2 else np.zeros_like(w_scale)
            scale = float(_array(inits8, act_dq.input[1]))
            zero = _array(inits8, act_dq.input[2])
        except KeyError as exc:  # weights computed in the graph
            raise UserError(f'cannot measure the INT8 error of {node.name}: its tensor '
                            f'{exc.args[0]!r} is not a constant') from exc
        if weight.ndim != 4:
            raise UserError(f'cannot measure the INT8 error of {node.name}: a '
                            f'{weight.ndim - 2}-D conv (2-D convs only)')
        shape = (-1, ) + (1, ) * (weight.ndim - 1)
        qweight = (w_q - w_zero.reshape(shape)) * w_scale.reshape(shape)
        info = np.iinfo(zero.dtype)
        attrs = {a.name: helper.get_attribute_value(a) for a in source.attribute}
        result[node.name] = _ConvQuant(
            source.input[0], torch.from_numpy(weight.astype(np.float32)),
            None if bias is None else torch.from_numpy(bias.astype(np.float32)),
            torch.from_numpy(qweight.astype(np.float32)), scale, int(zero), int(info.min),
            int(info.max), attrs)
    return result


def _conv2d(x: torch.Tensor, weight: torch.Tensor, bias, attrs: dict) -> torch.Tensor:
    if attrs.get('auto_pad', b'NOTSET') not in (b'NOTSET', 'NOTSET'):
        raise UserError('conv sensitivity supports explicit padding only (auto_pad=NOTSET)')
    top, left, bottom, right = attrs.get('pads', [0, 0, 0, 0])
    x = F.pad(x, (left, right, top, bottom))
    return F.conv2d(x, weight, bias, stride=tuple(attrs.get('strides', [1, 1])),
                    dilation=tuple(attrs.get('dilations', [1, 1])), groups=attrs.get('group', 1))


@torch.no_grad()
def conv_sensitivity(fp32_path: str, int8_path: str, inputs: Sequence[np.ndarray]
                     ) -> List[ConvSensitivity]:
    """The quantization error of every INT8 conv of ``int8_path`` on ``inputs``, most sensitive
    first (see the module docstring)."""
    import onnx
    import onnxruntime
    inputs = _check_inputs(inputs)
    fp32_model, int8_model = onnx.load(fp32_path), onnx.load(int8_path)
    convs = _conv_quantization(fp32_model, int8_model)
    if not convs:
        raise UserError(f'{int8_path} has no INT8 conv whose error could be measured')
    graph_outputs = {value.name for value in fp32_model.graph.output}
    graph_input = _input_name(fp32_path)
    wanted = sorted({c.input_name for c in convs.values()} - graph_outputs - {graph_input})
    for name in wanted:
        fp32_model.graph.output.append(
            onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
    session = onnxruntime.InferenceSession(fp32_model.SerializeToString(),
                                           providers=['CPUExecutionProvider'])
    noise = dict.fromkeys(convs, 0.0)
    signal = dict.fromkeys(convs, 0.0)
    for array in inputs:
        values = dict(zip(wanted, session.run(wanted, {graph_input: array}) if wanted else []))
        values[graph_input] = array
        for name, conv in convs.items():
            x = torch.from_numpy(np.asarray(values[conv.input_name], np.float32))
            reference = _conv2d(x, conv.weight, conv.bias, conv.attrs).double()
            xq = torch.fake_quantize_per_tensor_affine(x, conv.scale, conv.zero_point, conv.qmin,
                                                       conv.qmax)
            quantized = _conv2d(xq, conv.qweight, conv.bias, conv.attrs).double()
            noise[name] += float(((quantized - reference) ** 2).sum())
            signal[name] += float((reference ** 2).sum())
    result = [ConvSensitivity(name, noise[name] / signal[name] if signal[name] > 0 else
                              (float('inf') if noise[name] > 0 else 0.0)) for name in convs]
    return sorted(result, key=lambda s: s.noise_to_signal, reverse=True)


def search_keep_fp32(score: Callable[[int], float], num_convs: int, reference: float,
                     max_drop: float) -> Tuple[int, Dict[int, float]]:
    """The smallest number K of most sensitive convs to keep in floating point whose metric
    ``score(K)`` stays within ``max_drop`` of ``reference`` (higher is better); also every score
    computed. Doubles K from 0 until the drop is small enough, then bisects, assuming the drop
    shrinks as K grows (each K tried is reported). ``K = num_convs`` (no INT8 conv) is the last
    resort and is returned even when it misses the bound."""
    if max_drop < 0:
        raise UserError(f'the allowed metric drop must be >= 0, got {max_drop}')
    scores: Dict[int, float] = {}

    def fits(k: int) -> bool:
        if k not in scores:
            scores[k] = score(k)
        return reference - scores[k] <= max_drop

    if fits(0):
        return 0, scores
    low, high = 0, 1  # low misses the bound
    while high < num_convs and not fits(high):
        low, high = high, min(2 * high, num_convs)
    if high >= num_convs:
        high = num_convs
        if not fits(high):
            return high, scores
    while high - low > 1:
        middle = (low + high) // 2
        if fits(middle):
            high = middle
        else:
            low = middle
    return high, scores
