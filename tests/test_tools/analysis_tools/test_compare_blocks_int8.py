"""The RepVGG-vs-QARepVGG INT8 comparison (tools/analysis_tools/compare_blocks_int8.py) runs on the
ONNX Runtime path: train, fuse, export, static INT8, score; a tiny run of the whole pipeline, and
the tool end to end on the tiny arch."""
import json

from repvgg_mm.benchmark.int8_blocks import (
    QuantExperiment,
    comparison_table,
    run_quantization_experiment,
)
from repvgg_mm.testing import TINY_ARCH
from tests.helpers.tools import tool_main


def test_both_blocks_go_through_onnxruntime_int8():
    """One epoch on 5 x 40 toy images (32 px), 50 val images: a smoke run, not the comparison.

    Bounds: the fused and the ONNX Runtime FP32 models classify the val images alike (at most one
    image flips on float rounding); INT8 stays within 10 points of FP32 (per-channel weights and
    calibrated activations on a 9-layer net move a few percent of predictions; a broken
    quantization collapses to chance, 20 %).
    """
    results = {}
    for block_type in ('repvgg', 'qarepvgg'):
        cfg = QuantExperiment(arch=TINY_ARCH, block_type=block_type, image_size=32,
                              train_per_class=40, val_per_class=10, epochs=1,
                              calibration_batches=2)
        result = run_quantization_experiment(cfg).as_dict()
        acc = result['accuracy']
        assert result['num_val'] == 50 and result['checks']['fuse max rel err'] < 1e-5
        assert result['int8_convs'] == 1 + sum(TINY_ARCH['num_blocks'])
        assert acc['fp32 fused'] == acc['fp32 train-time'] > 20.0
        assert abs(acc['fp32 onnxruntime'] - acc['fp32 fused']) <= 2.0
        assert abs(acc['int8 ptq'] - acc['fp32 fused']) <= 10.0, acc
        results[block_type] = result
    table = comparison_table(results)
    assert table.count('\n| ') == 2 and "QARepVGG INT8 drop at most half of RepVGG's" in table


def test_tool_compares_both_blocks_on_the_tiny_arch(tmp_path, capsys):
    main = tool_main('analysis_tools/compare_blocks_int8.py')
    assert main(['--arch', 'tiny', '--block-type', 'repvgg', 'qarepvgg', '--image-size', '32',
                 '--train-per-class', '8',
                 '--val-per-class', '4', '--epochs', '1', '--calibration-batches', '1',
                 '--work-dir', str(tmp_path)]) == 0
    results = json.loads((tmp_path / 'compare_blocks_int8.json').read_text())
    assert set(results) == {'repvgg', 'qarepvgg'}
    assert all(r['arch'] == 'tiny' and r['num_val'] == 20 for r in results.values())
    out = capsys.readouterr().out
    assert out.count('top-1 int8 ptq') == 2 and "QARepVGG INT8 drop at most half" in out
