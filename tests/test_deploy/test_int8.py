"""Static INT8 with onnxruntime.quantization: the recipe, convs kept in FP32, the per-conv
sensitivity, the search for the smallest K, and no torch.ao.quantization anywhere."""
import re
import warnings
from pathlib import Path

import numpy as np
import onnx
import onnxruntime
import pytest
import torch
from torch import nn
from torch.ao.quantization.utils import DEPRECATION_WARNING

from repvgg_mm.deploy.int8 import (
    conv_sensitivity,
    quantize_onnx,
    quantized_convs,
    search_keep_fp32,
)
from repvgg_mm.deploy.onnx_export import export_onnx
from repvgg_mm.models import LinearClassifierNet, RepVGG
from repvgg_mm.models.utils import fuse_repvgg_blocks, randomize_bn_
from repvgg_mm.testing import TINY_ARCH
from repvgg_mm.utils.errors import UserError

ROOT = Path(__file__).resolve().parents[2]


def run(path, x):
    session = onnxruntime.InferenceSession(str(path), providers=['CPUExecutionProvider'])
    return session.run(None, {session.get_inputs()[0].name: x})[0]


def producers(path):
    graph = onnx.load(str(path)).graph
    return graph, {out: node for node in graph.node for out in node.output}


@pytest.fixture(scope='module')
def tiny(tmp_path_factory):
    """A fused tiny RepVGG classifier (random BN statistics) as ONNX, its INT8 model and data."""
    tmp = tmp_path_factory.mktemp('int8')
    generator = torch.Generator().manual_seed(0)
    model = fuse_repvgg_blocks(randomize_bn_(LinearClassifierNet(RepVGG(TINY_ARCH), 5),
                                             generator)).eval()
    calib = [torch.randn(2, 3, 32, 32, generator=generator).numpy() for _ in range(3)]
    fp32, int8 = tmp / 'fp32.onnx', tmp / 'int8.onnx'
    export_onnx(model, torch.from_numpy(calib[0][:1]), str(fp32))
    quantize_onnx(str(fp32), str(int8), calib)
    return fp32, int8, calib, tmp


def test_int8_recipe(tiny):
    fp32, int8, calib, _ = tiny
    blocks = 1 + sum(TINY_ARCH['num_blocks'])
    assert len(quantized_convs(str(int8))) == blocks and quantized_convs(str(fp32)) == []
    graph, made_by = producers(int8)
    for node in graph.node:
        if node.op_type == 'DequantizeLinear' and node.input[0].endswith('weight_quantized'):
            weights = onnx.numpy_helper.to_array(
                next(i for i in graph.initializer if i.name == node.input[0]))
            zero = next(i for i in graph.initializer if i.name == node.input[2])
            assert weights.dtype == np.int8 and not onnx.numpy_helper.to_array(zero).any()
            assert onnx.numpy_helper.to_array(
                next(i for i in graph.initializer if i.name == node.input[1])).ndim == 1
        if node.op_type == 'QuantizeLinear':  # activations: UINT8
            zero = next(i for i in graph.initializer if i.name == node.input[2])
            assert onnx.numpy_helper.to_array(zero).dtype == np.uint8
    # the logits stay float: the graph output is not a dequantized INT8 tensor
    assert made_by[graph.output[0].name].op_type != 'DequantizeLinear'
    x = np.random.default_rng(1).standard_normal((4, 3, 32, 32)).astype(np.float32)
    reference, quantized = run(fp32, x), run(int8, x)
    error = np.abs(quantized - reference).max() / np.abs(reference).max()
    assert np.isfinite(quantized).all() and 1e-5 < error < 0.1, error  # quantized, not broken


def test_kept_convs_run_in_floating_point_on_float_inputs(tiny):
    fp32, _, calib, tmp = tiny
    ranked = [s.name for s in conv_sensitivity(str(fp32), str(tiny[1]), calib)]
    partial = tmp / 'partial.onnx'
    quantize_onnx(str(fp32), str(partial), calib, keep_fp32=ranked[:2])
    assert sorted(set(quantized_convs(str(partial))) | set(ranked[:2])) == sorted(ranked)
    assert not set(quantized_convs(str(partial))) & set(ranked[:2])
    graph, made_by = producers(partial)
    for node in graph.node:
        if node.name in ranked[:2]:  # float weights and the float activation, no Q/DQ on either
            assert all(getattr(made_by.get(i), 'op_type', None) != 'DequantizeLinear'
                       for i in node.input)
    with pytest.raises(UserError, match='does not have'):
        quantize_onnx(str(fp32), str(tmp / 'x.onnx'), calib, keep_fp32=['/no/Conv'])
    with pytest.raises(UserError, match='empty'):
        quantize_onnx(str(fp32), str(tmp / 'x.onnx'), [])
    with pytest.raises(UserError, match='NaN'):
        quantize_onnx(str(fp32), str(tmp / 'x.onnx'), [np.full((1, 3, 32, 32), np.nan,
                                                               np.float32)])
    assert not (tmp / 'x.onnx').exists()


def _chain_sensitivity(tmp_path, outlier: float):
    torch.manual_seed(0)
    layers = [nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(),
              nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 4, 1)]
    model = nn.Sequential(*layers).eval()
    with torch.no_grad():
        model[2].weight[0] *= outlier
        model[2].bias[0] = outlier * model[2].bias[0].abs()
    x = [torch.randn(2, 3, 16, 16).numpy() for _ in range(2)]
    fp32, int8 = tmp_path / f'fp32_{outlier}.onnx', tmp_path / f'int8_{outlier}.onnx'
    export_onnx(model, torch.from_numpy(x[0]), str(fp32))
    quantize_onnx(str(fp32), str(int8), x)
    return conv_sensitivity(str(fp32), str(int8), x)


def test_sensitivity_finds_the_conv_behind_an_outlier_channel(tmp_path):
    """Scaling one output channel of conv 2 by 300 widens the range of the activation conv 3
    quantizes: its other channels lose their resolution, so conv 3 ranks first and its error
    grows by far more than 10x against the same network without the outlier."""
    control = {s.name: s for s in _chain_sensitivity(tmp_path, 1.0)}
    ranking = _chain_sensitivity(tmp_path, 300.0)
    assert sorted(s.name for s in ranking) == sorted(control) == [
        '/0/Conv', '/2/Conv', '/4/Conv', '/6/Conv']
    assert ranking[0].name == '/4/Conv'
    assert ranking[0].noise_to_signal > 10 * control['/4/Conv'].noise_to_signal
    assert all(0 < s.noise_to_signal < 1 and np.isfinite(s.sqnr_db) for s in ranking)
    assert ranking == sorted(ranking, key=lambda s: -s.noise_to_signal)
    assert ranking[0].sqnr_db == pytest.approx(-10 * np.log10(ranking[0].noise_to_signal))


def test_search_finds_the_smallest_k():
    calls = []

    def score(k):  # the metric recovers once 5 convs stay in FP32
        calls.append(k)
        return 40.0 if k >= 5 else 30.0 + k

    assert search_keep_fp32(score, 22, 40.5, 1.0) == (5, {0: 30.0, 1: 31.0, 2: 32.0, 4: 34.0,
                                                          8: 40.0, 6: 40.0, 5: 40.0})
    assert len(calls) == len(set(calls)) == 7  # each K scored once, not 23 times
    assert search_keep_fp32(lambda k: 40.0, 22, 40.0, 0.0) == (0, {0: 40.0})
    keep, scores = search_keep_fp32(lambda k: 0.0, 3, 40.0, 1.0)  # nothing fits: all FP32
    assert keep == 3 and scores[3] == 0.0
    with pytest.raises(UserError, match='>= 0'):
        search_keep_fp32(score, 22, 40.0, -1.0)


def test_no_torch_ao_quantization_in_the_product():
    """torch.ao.quantization's FX mode is deprecated in this torch: nothing uses it, and
    pytest.ini turns its deprecation warning into an error for the whole suite."""
    pattern = re.compile(r'torch\.ao|torch\.quantization|quantize_fx')
    sources = [path for folder in ('repvgg_mm', 'tools', 'demo')
               for path in (ROOT / folder).rglob('*.py')]
    assert len(sources) > 50
    assert not [str(p) for p in sources if pattern.search(p.read_text())]
    with pytest.raises(DeprecationWarning):  # the text torch warns with
        warnings.warn(DEPRECATION_WARNING, DeprecationWarning, stacklevel=1)
