"""The INT8 experiment of tools/deployment/quantize.py: PTQ stays close to FP32 on the toy data."""


def test_ptq_on_the_toy_data_stays_within_five_points(load_tool):
    """Train a small RepVGG briefly on the embedded toy data (5 classes, chance 20%), fuse, PTQ.

    Bound: INT8 top-1 >= FP32 top-1 - 5 points on the 150 val images (about 7 images). On this
    7-layer net per-channel INT8 weights with calibrated activations flip about 1% of predictions;
    a broken quantization (wrong scales, lost ReLU fusion) collapses towards chance and fails.
    """
    tool = load_tool('deployment/quant_experiment.py')
    cfg = tool.QuantExperiment(arch=tool.TINY_ARCH, image_size=32, train_per_class=100,
                               val_per_class=30, epochs=1, calibration_batches=2, mode='ptq')
    result = tool.run_quantization_experiment(cfg)
    acc = result.accuracy
    assert result.num_val == 150
    assert acc['fp32 fused'] == acc['fp32 train-time']
    assert result.checks['fuse max rel err'] < 1e-5
    assert acc['fp32 fused'] >= 50.0, f'FP32 training did not learn the toy data: {acc}'
    assert acc['int8 ptq'] >= acc['fp32 fused'] - 5.0, acc
