"""The deployment table (repvgg_mm.benchmark.deployment): rows, ratios and the speed target as
the docs print them."""
from repvgg_mm.benchmark.deployment import INT8_SPEEDUP, TOY_CASES, markdown_table, speed_table


def row(name, metric, values, extra=None):
    shown = {metric: values[0], **(extra or {})}
    return dict(name=name, metric=metric, fused_pytorch=dict(shown),
                onnxruntime_fp32=dict(shown, **{metric: values[1]}),
                int8_full=dict(shown, **{metric: values[2]}),
                int8_partial=dict(shown, **{metric: values[3]}), kept_fp32=2,
                quantized_convs=28, latency_ms={'pytorch fp32': 500.0, 'onnxruntime fp32': 350.0,
                                                'int8 full': 180.0, 'int8 partial': 200.0},
                latency_input=[1, 3, 512, 512])


def test_table_rows_show_every_path_and_the_ratio():
    table = markdown_table([row('PSPNet-A0', 'mIoU', (85.92, 85.92, 85.1, 85.7)),
                            row('Mask R-CNN-A0', 'coco/bbox_mAP', (0.77, 0.77, 0.75, 0.769),
                                {'coco/segm_mAP': 0.742})])
    lines = table.splitlines()
    assert len(lines) == 4 and 'latency ms at 512x512' in lines[0]
    assert lines[2] == ('| PSPNet-A0 | mIoU | 85.92 | 85.92 | 85.10 | 85.70 (2 of 28) | '
                        '500.0 / 350.0 / 180.0 / 200.0 | 2.50x |')
    assert '| bbox mAP / segm mAP | 0.770 / 0.742 |' in lines[3]


def test_speed_table_gives_the_int8_verdict():
    speed = dict(config='configs/pspnet_repvgg_a0.py', input=[1, 3, 512, 512],
                 latency_ms={'pytorch fp32': 600.0, 'onnxruntime fp32': 420.0,
                             'onnxruntime int8': 250.0},
                 speedup={'pytorch fp32': 1.0, 'onnxruntime fp32': 600 / 420,
                          'onnxruntime int8': 2.4}, target=str(INT8_SPEEDUP), verdict='pass')
    table = speed_table(speed)
    assert '| onnxruntime int8 | 250.0 | 2.40x | >= 2x: pass |' in table
    assert INT8_SPEEDUP.verdict(1.9) == 'miss' and INT8_SPEEDUP.verdict(2.0) == 'pass'


def test_toy_cases_are_the_issue_rows():
    names = [case.name for case in TOY_CASES]
    assert names == ['PSPNet-A0', 'DeepLabV3+-A0', 'UPerNet-A0', 'PSPNet-QARepVGG-A0',
                     'RetinaNet-A0', 'Mask R-CNN-A0', 'A0 classifier']
    assert TOY_CASES[3].options == {'model.backbone.block_type': 'qarepvgg'}
