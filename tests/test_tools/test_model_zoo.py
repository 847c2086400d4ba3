"""The README model-zoo table comes from tools/analysis_tools/model_zoo.py: every shipped config is
a row whose descriptive columns match the configs, and the tool measures and splices it."""
import json
import math

import pytest

from repvgg_mm.utils.errors import UserError


@pytest.fixture
def zoo(load_tool):
    return load_tool('analysis_tools/model_zoo.py')


def readme_rows(text):
    """``config: cells`` of the table between the markers."""
    table = text.split('<!-- model-zoo:start -->')[1].split('<!-- model-zoo:end -->')[0]
    rows = {}
    for line in table.splitlines():
        if line.startswith('| `'):
            cells = [c.strip() for c in line.strip('|').split('|')]
            rows[cells[0].strip('`')] = cells
    return rows


def test_readme_table_lists_every_config_as_the_configs_say(zoo, repo_root):
    rows = readme_rows((repo_root / 'README.md').read_text())
    configs = zoo.shipped_configs(str(repo_root))
    assert sorted(rows) == configs  # regenerate with --readme README.md after changing configs
    for config in configs:
        info = zoo.describe(config)
        assert rows[config][:7] == info.cells(), config
        train, fused = (float(v.rstrip('M')) for v in rows[config][7].split(' -> '))
        assert fused < train, config  # every config fuses to fewer parameters


@pytest.mark.parametrize('config, expected', [
    ('configs/pspnet_repvgg_b2.py',
     ['segmentation', 'PSPHead', 'RepVGG-B2', 'Cityscapes', '80k iters', '1024x2048']),
    ('configs/upernet_repvgg_b2.py',
     ['segmentation', 'UPerHead', 'RepVGG-B2', 'ADE20K', '160k iters', '512x512']),
    ('configs/pspnet_qarepvgg_a0.py',
     ['segmentation', 'PSPHead', 'QARepVGG-A0', 'Cityscapes', '80k iters', '1024x2048']),
    ('configs/detection/mask_rcnn_repvgg_b1g2_fpn_1x_coco.py',
     ['instance segmentation', 'MaskRCNN', 'RepVGG-B1g2', 'COCO', '12 epochs', '800x1333']),
    ('configs/detection/fcos_repvgg_a0_fpn_1x_coco.py',
     ['detection', 'FCOS', 'RepVGG-A0', 'COCO', '12 epochs', '800x1333']),
    ('configs/imagenet/repvgg_a0.py',
     ['classification', 'LinearClsHead', 'RepVGG-A0', 'ImageNet', '120 epochs', '224x224']),
    ('configs/toy/deeplabv3plus_repvgg_a0_toy.py',
     ['segmentation', 'DepthwiseSeparableASPPHead', 'RepVGG-A0', 'toy (embedded)', '500 iters',
      '96x96']),
])
def test_describe(zoo, config, expected):
    assert zoo.describe(config).cells()[1:] == expected


def test_tool_measures_and_writes_the_readme(zoo, tmp_path, capsys):
    readme = tmp_path / 'README.md'
    before, after = '# title\n\ntext before\n', '\ntext after\n'
    readme.write_text(f'{before}<!-- model-zoo:start -->\nold table\n<!-- model-zoo:end -->{after}')
    configs = ['configs/toy/upernet_repvgg_a0_toy.py', 'configs/toy/repvgg_a0_toy_cls.py']
    assert zoo.main(['--configs', *configs, '--repeats', '1', '--dense-size', '64', '64',
                     '--cls-size', '32', '32', '--readme', str(readme),
                     '--json', str(tmp_path / 'zoo.json')]) == 0
    text = readme.read_text()
    assert text.startswith(before) and text.endswith(after) and 'old table' not in text
    assert sorted(readme_rows(text)) == sorted(configs)
    assert readme_rows(text) == readme_rows(f'<!-- model-zoo:start -->\n'
                                            f'{capsys.readouterr().out}<!-- model-zoo:end -->')
    records = json.loads((tmp_path / 'zoo.json').read_text())
    for record in records:
        (p_train, p_fused), (f_train, f_fused) = record['params'], record['flops']
        assert 0 < p_fused < p_train and 0 < f_fused < f_train
        assert all(math.isfinite(t) and t > 0 for t in record['latency'])
        assert record['max_rel_diff'] < 1e-4
    assert [r['latency_size'] for r in records] == [[64, 64], [32, 32]]


def test_inputs_are_checked_before_the_first_measurement(zoo, tmp_path, monkeypatch):
    measured = []
    monkeypatch.setattr(zoo, 'measure', lambda *args, **kwargs: measured.append(args))
    with pytest.raises(UserError, match='config file not found: .*missing.py'):
        zoo.main(['--configs', 'configs/toy/repvgg_a0_toy_cls.py', str(tmp_path / 'missing.py')])
    latin = tmp_path / 'README.md'
    latin.write_bytes('# caf\xe9\n<!-- model-zoo:start -->\n<!-- model-zoo:end -->\n'.encode(
        'latin-1'))
    with pytest.raises(UserError, match='is not UTF-8 text'):
        zoo.main(['--configs', 'configs/toy/repvgg_a0_toy_cls.py', '--readme', str(latin)])
    assert not measured


def test_readme_without_markers_is_refused_untouched(zoo, tmp_path):
    readme = tmp_path / 'README.md'
    readme.write_text('# no markers\n')
    with pytest.raises(UserError, match='needs one <!-- model-zoo:start -->'):
        zoo.main(['--configs', 'configs/toy/repvgg_a0_toy_cls.py', '--readme', str(readme)])
    assert readme.read_text() == '# no markers\n'


@pytest.mark.parametrize('extra, pipeline, size', [
    (dict(img_scale=(96, 64)), [], (64, 96)),  # mmdet scale: (W, H)
    (dict(crop_size=(32, 64)), [], (32, 64)),  # mmseg crop: (H, W)
    ({}, [dict(type='Resize', scale=(1333, 800), keep_ratio=True)], (800, 1333)),
    ({}, [dict(type='Resize', scale=(2048, 512), keep_ratio=True)], (512, 512)),
    ({}, [dict(type='Resize', size=256), dict(type='CenterCrop', size=224)], (224, 224)),
])
def test_input_size_of(zoo, extra, pipeline, size):
    from mmengine.config import Config
    cfg = Config(dict(test_dataloader=dict(dataset=dict(pipeline=pipeline)), **extra))
    assert zoo.input_size_of(cfg) == size


def test_input_size_unknown_is_refused(zoo):
    from mmengine.config import Config
    with pytest.raises(UserError, match='cannot tell the test size'):
        zoo.input_size_of(Config(dict(test_dataloader=dict(dataset=dict(pipeline=[])))))


def test_config_outside_the_repository_is_named_as_given(zoo, tmp_path):
    broken = tmp_path / 'broken.py'
    broken.write_text('model = dict(\n')
    with pytest.raises(UserError, match=f'cannot load config {broken}:'):
        zoo.main(['--configs', str(broken)])
