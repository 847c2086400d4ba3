"""The docs/model_zoo.md table comes from tools/analysis_tools/model_zoo.py: every shipped config is
a row whose descriptive columns match the configs, and the tool measures and splices it."""
import json
import math

import pytest

from repvgg_mm.benchmark import model_zoo
from repvgg_mm.utils.errors import UserError
from tests.helpers.tools import tool_main


@pytest.fixture
def main():
    return tool_main('analysis_tools/model_zoo.py')


def readme_rows(text):
    """``config: cells`` of the table between the markers."""
    table = text.split('<!-- model-zoo:start -->')[1].split('<!-- model-zoo:end -->')[0]
    rows = {}
    for line in table.splitlines():
        if line.startswith('| `'):
            cells = [c.strip() for c in line.strip('|').split('|')]
            rows[cells[0].strip('`')] = cells
    return rows


def test_page_table_lists_every_config_as_the_configs_say(repo_root):
    rows = readme_rows((repo_root / model_zoo.PAGE).read_text())
    configs = model_zoo.shipped_configs(str(repo_root))
    assert sorted(rows) == configs  # regenerate with --page after changing configs
    for config in configs:
        info = model_zoo.describe(config, str(repo_root))
        assert rows[config][:7] == info.cells(), config
        train, fused = (float(v.rstrip('M')) for v in rows[config][7].split(' -> '))
        assert fused < train, config  # every config fuses to fewer parameters


def test_tool_measures_and_writes_the_page(main, tmp_path, capsys):
    readme = tmp_path / 'README.md'
    before, after = '# title\n\ntext before\n', '\ntext after\n'
    readme.write_text(f'{before}<!-- model-zoo:start -->\nold table\n<!-- model-zoo:end -->{after}')
    configs = ['configs/toy/upernet_repvgg_a0_toy.py', 'configs/toy/repvgg_a0_toy_cls.py']
    assert main(['--configs', *configs, '--repeats', '1', '--dense-size', '64', '64',
                 '--cls-size', '32', '32', '--page', str(readme),
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


def test_inputs_are_checked_before_the_first_measurement(tmp_path, monkeypatch):
    measured = []
    monkeypatch.setattr(model_zoo, 'measure', lambda *args, **kwargs: measured.append(args))
    main = tool_main('analysis_tools/model_zoo.py')  # binds the patched measure
    with pytest.raises(UserError, match='config file not found: .*missing.py'):
        main(['--configs', 'configs/toy/repvgg_a0_toy_cls.py', str(tmp_path / 'missing.py')])
    latin = tmp_path / 'README.md'
    latin.write_bytes('# caf\xe9\n<!-- model-zoo:start -->\n<!-- model-zoo:end -->\n'.encode(
        'latin-1'))
    with pytest.raises(UserError, match='is not UTF-8 text'):
        main(['--configs', 'configs/toy/repvgg_a0_toy_cls.py', '--page', str(latin)])
    assert not measured


def test_page_without_markers_is_refused_untouched(main, tmp_path):
    readme = tmp_path / 'README.md'
    readme.write_text('# no markers\n')
    with pytest.raises(UserError, match='needs one <!-- model-zoo:start -->'):
        main(['--configs', 'configs/toy/repvgg_a0_toy_cls.py', '--readme', str(readme)])
    assert readme.read_text() == '# no markers\n'


def test_config_outside_the_repository_is_named_as_given(main, tmp_path):
    broken = tmp_path / 'broken.py'
    broken.write_text('model = dict(\n')
    with pytest.raises(UserError, match=f'cannot load config {broken}:'):
        main(['--configs', str(broken)])
