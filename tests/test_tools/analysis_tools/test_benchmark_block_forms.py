"""tools/analysis_tools/benchmark_block_forms.py runs end to end in quick mode and writes every
number (no timing assertions: only what cannot be noise); bad input is refused before anything is
written."""
import json

import pytest

from repvgg_mm.benchmark.block_forms import FORMS, BlockFormsSettings
from repvgg_mm.utils.errors import UserError
from tests.helpers.tools import tool_main


def test_quick_block_forms_benchmark(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv('OMP_WAIT_POLICY', 'PASSIVE')  # the tool sets it by default; undo afterwards
    main = tool_main('analysis_tools/benchmark_block_forms.py')
    assert main(['--quick', '--work-dir', str(tmp_path)]) == 0
    report = json.loads((tmp_path / 'block_forms.json').read_text())
    assert report['machine']['cpu'] and report['machine']['threads'] == 2
    results = [*report['backbone'].values(), *report['segmentors'].values()]
    assert list(report['backbone']) == ['tiny'] and len(report['segmentors']) == 2
    assert {r['head'] for r in report['segmentors'].values()} == {'PSPHead', 'UPerHead'}
    for result in results:
        # the three forms compute the same eval-mode function (converted weights)
        assert set(result['eval_max_rel_error']) == {'linear', 'fused_bn'}
        assert all(0 <= e < 1e-4 for e in result['eval_max_rel_error'].values())
        assert all(result['time'][form]['median_s'] > 0 for form in FORMS)
        assert all(result['saved_bytes'][form] > 0 for form in FORMS)
        # one conv per block saves fewer tensors than three branches with three BNs
        assert result['saved_bytes']['fused_bn'] < result['saved_bytes']['repvgg']
        assert result['speedup']['repvgg'] == 1.0 and result['saved_ratio']['repvgg'] == 1.0
        assert set(result['verdict'].values()) <= {'pass', 'miss'}
    out = capsys.readouterr().out
    assert '| workload | RepVGG block | linear-scaling | fused+BN |' in out
    assert report['machine']['cpu'] in out
    assert not [p for p in tmp_path.iterdir() if p.name.startswith('.')]  # no temp files left


@pytest.mark.parametrize('argv, message', [
    (['--repeats', '0'], 'argument --repeats: must be >= 1, got 0'),
    (['--seg-size', '-3'], 'argument --seg-size: must be >= 1, got -3'),
])
def test_benchmark_bad_numbers_are_usage_errors(tmp_path, argv, message, capsys):
    main = tool_main('analysis_tools/benchmark_block_forms.py')
    with pytest.raises(SystemExit) as exit_info:
        main(['--quick', '--work-dir', str(tmp_path / 'out'), *argv])
    assert exit_info.value.code == 2 and message in capsys.readouterr().err
    assert not (tmp_path / 'out').exists()


@pytest.mark.parametrize('settings, message', [
    (dict(repeats=0), 'repeats must be at least 1'),
    (dict(seg_size=-3), 'seg-size must be at least 1'),
    (dict(archs=()), 'nothing to measure'),
])
def test_settings_refuse_bad_values(settings, message):
    with pytest.raises(UserError, match=message):
        BlockFormsSettings.quick(**settings).check()


def test_benchmark_bad_input(tmp_path):
    main = tool_main('analysis_tools/benchmark_block_forms.py')
    with pytest.raises(UserError, match='nothing to measure'):
        main(['--quick', '--work-dir', str(tmp_path / 'out'), '--archs', '--no-segmentors'])
    assert not (tmp_path / 'out').exists()
