"""ONNX round trips of fused models: dynamic batch, onnxruntime == PyTorch, single-branch graph."""
import pytest
import torch

from repvgg_mm.deploy import onnx_export
from repvgg_mm.deploy.export_targets import (
    build_export_target,
    classifier_config,
    detector_config,
    model_config,
    pspnet_config,
)
from repvgg_mm.deploy.onnx_export import (
    ExportAdapter,
    check_single_branch_graph,
    export_and_check,
    export_onnx,
)
from repvgg_mm.models import build_analysis_model
from repvgg_mm.models.utils import fuse_repvgg_blocks, randomize_bn_
from repvgg_mm.testing import TINY_ARCH
from repvgg_mm.utils.compare import NonFiniteError

NUM_TINY_BLOCKS = 1 + sum(TINY_ARCH['num_blocks'])  # stem + stages


def _tiny_classifier(generator):
    model = build_analysis_model(model_config(classifier_config(TINY_ARCH, num_classes=7),
                                              'repvgg_mm'))
    return randomize_bn_(model, generator).eval()


def test_classifier_round_trip(tmp_path, generator):
    fused = ExportAdapter(fuse_repvgg_blocks(_tiny_classifier(generator)), 'tensor')
    report = export_and_check('cls', fused, (3, 32, 32), str(tmp_path / 'cls.onnx'),
                              export_batch=1, check_batch=3, exporter='torchscript')
    assert report.within_tolerance, report.describe()
    assert report.graph.conv_nodes == NUM_TINY_BLOCKS  # one conv per block, nothing else
    assert report.graph.op_counts.get('BatchNormalization', 0) == 0
    assert report.ok


def test_segmentor_round_trip(tmp_path, generator):
    cfg = pspnet_config('repvgg', TINY_ARCH, num_classes=4, channels=8, aux_channels=8)
    segmentor = randomize_bn_(build_analysis_model(model_config(cfg, 'mmseg')), generator).eval()
    fused = ExportAdapter(fuse_repvgg_blocks(segmentor), 'tensor')
    # 48x48 -> 6x6 features at output stride 8: the PSP pool scales 1, 2, 3, 6 divide it.
    report = export_and_check('seg', fused, (3, 48, 48), str(tmp_path / 'seg.onnx'),
                              export_batch=2, check_batch=1, exporter='auto')
    assert report.ok, report.describe()
    # PSP head: 4 pooling-branch convs + bottleneck + classifier conv (aux head is training-only).
    assert report.graph.other_convs == 6
    assert report.graph.conv_nodes == NUM_TINY_BLOCKS + 6


def test_detector_backbone_neck_round_trip(tmp_path, generator):
    cfg = detector_config('retinanet', TINY_ARCH, num_classes=3, neck_channels=8)
    detector = randomize_bn_(build_analysis_model(model_config(cfg, 'mmdet')), generator).eval()
    fused = ExportAdapter(fuse_repvgg_blocks(detector), 'extract_feat')
    report = export_and_check('det', fused, (3, 64, 96), str(tmp_path / 'det.onnx'),
                              exporter='torchscript')
    assert report.ok, report.describe()


def test_training_time_graph_fails_the_single_branch_check(tmp_path, generator):
    model = _tiny_classifier(generator)
    example = torch.randn(1, 3, 32, 32, generator=generator)
    path = str(tmp_path / 'unfused.onnx')
    export_onnx(ExportAdapter(model, 'tensor'), example, path, exporter='torchscript')
    fused = ExportAdapter(fuse_repvgg_blocks(model), 'tensor')
    check = check_single_branch_graph(path, fused, example)
    assert not check.ok and check.conv_nodes == 2 * NUM_TINY_BLOCKS  # 3x3 + 1x1 per block
    with pytest.raises(ValueError, match='not|only'):
        check_single_branch_graph(path, ExportAdapter(model, 'tensor'), example)


def test_failed_export_keeps_existing_file(tmp_path, monkeypatch):
    path = tmp_path / 'keep.onnx'
    path.write_bytes(b'previous')

    def half_written_export(model, example, out_path, *args):
        with open(out_path, 'wb') as handle:
            handle.write(b'partial')
        raise RuntimeError('exporter crashed')

    monkeypatch.setattr(onnx_export, '_export_torchscript', half_written_export)
    with pytest.raises(RuntimeError, match='ONNX export failed.*exporter crashed'):
        onnx_export.export_onnx(torch.nn.Conv2d(3, 4, 3), torch.randn(1, 3, 8, 8), str(path),
                                exporter='torchscript')
    assert path.read_bytes() == b'previous'
    assert [p.name for p in tmp_path.iterdir()] == ['keep.onnx']


@pytest.mark.parametrize('key, value, message', [
    ('backbone.stage1.0.branch_3x3.conv.weight', float('nan'),
     "broken.pth: 'backbone.stage1.0.branch_3x3.conv.weight' holds NaN"),
    ('backbone.stem.branch_1x1.bn.running_var', -3.0,
     "the fused model: 'backbone.stem.branch_fused.weight' holds NaN"),
])
def test_non_finite_weights_are_refused_before_export(tmp_path, key, value, message):
    state = build_analysis_model(model_config(classifier_config(TINY_ARCH),
                                              'repvgg_mm')).state_dict()
    state[key].view(-1)[0] = value
    path = tmp_path / 'broken.pth'
    torch.save(state, path)
    with pytest.raises(NonFiniteError, match=message):
        build_export_target('classifier', arch=TINY_ARCH, checkpoint=str(path))


def test_onnx_check_refuses_nan_outputs(tmp_path):
    conv = torch.nn.Conv2d(3, 4, 3).eval()
    with torch.no_grad():
        conv.bias[0] = float('nan')
    path = str(tmp_path / 'nan.onnx')
    onnx_export.export_onnx(conv, torch.randn(1, 3, 8, 8), path, exporter='torchscript')
    with pytest.raises(NonFiniteError, match='holds NaN or infinity'):
        onnx_export.compare_with_onnxruntime(path, conv, torch.randn(2, 3, 8, 8))
