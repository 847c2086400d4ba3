"""tools/analysis_tools/benchmark_online_fusion.py runs end to end in quick mode and writes every
number (no timing assertions: only what cannot be timing noise)."""
import json

import pytest

from repvgg_mm.utils.errors import UserError
from tests.helpers.tools import tool_main

SECTIONS = ('backbone', 'detectors', 'segmentation', 'finetune')


@pytest.mark.slow  # re-runs itself in subprocesses (peak RSS of each detector and mode)
def test_quick_online_fusion_benchmark(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv('OMP_WAIT_POLICY', 'PASSIVE')  # the tool sets it by default; undo afterwards
    main = tool_main('analysis_tools/benchmark_online_fusion.py')
    assert main(['--quick', '--work-dir', str(tmp_path)]) == 0
    with open(tmp_path / 'online_fusion.json') as handle:
        report = json.load(handle)
    assert set(SECTIONS) <= set(report)
    assert report['machine']['cpu'] and report['machine']['threads'] == 2

    for result in report['backbone'].values():
        blocks = result['blocks']
        assert result['online_blocks'] == {'off': 0, 'auto': blocks}
        assert result['output_max_rel_error']['value'] <= 1e-5
        assert result['grad_max_diff_over_max_grad']['value'] <= 1e-3
        activations = result['saved_activations']
        assert 0 < activations['auto'] < activations['off'] and activations['ratio'] < 1
        assert result['saved_total']['off'] > 0 and result['saved_total']['auto'] > 0
        assert all(result['time'][mode]['median_s'] > 0 for mode in ('off', 'auto'))

    assert set(report['detectors']) == {'retinanet', 'faster_rcnn'}
    for result in report['detectors'].values():
        assert result['online_blocks'] == {'off': 0, 'auto': result['blocks']}
        assert result['speedup']['ratio'] > 0
    rss = report['detectors']['retinanet']['peak_rss']  # --quick: one detector's workers
    assert rss['off'] > 0 and rss['auto'] > 0 and isinstance(rss['auto_lower'], bool)
    assert rss['peak_reset_before_steps'] == {'off': True, 'auto': True}
    assert report['detectors']['faster_rcnn']['peak_rss'] is None

    seg = report['segmentation']
    assert seg['blocks'] > 0 and seg['online_blocks'] == {'off': 0, 'auto': 0}
    assert seg['online_line'] == f'online fusion: 0/{seg["blocks"]} blocks'

    finetune = report['finetune']
    assert finetune['blocks_set_auto']['auto'] > 0 and finetune['blocks_set_auto']['off'] == 0
    assert len(finetune['losses']['off']) == len(finetune['losses']['auto']) == 2
    assert finetune['last_loss_rel_diff']['value'] <= 1e-3

    out = capsys.readouterr().out
    assert '| workload | mode off | mode auto | ratio | target | pass/miss |' in out
    assert report['machine']['cpu'] in out and f'online fusion: 0/{seg["blocks"]} blocks' in out
    assert not [p for p in tmp_path.iterdir() if p.name.startswith('.')]  # no temp files left


def test_bad_input_is_one_line_error(capsys):
    main = tool_main('analysis_tools/benchmark_online_fusion.py')
    with pytest.raises(SystemExit) as exit_info:
        main(['--quick', '--repeats', '0'])
    assert exit_info.value.code == 2
    assert 'argument --repeats: must be >= 1' in capsys.readouterr().err
    with pytest.raises(UserError, match='not a folder'):
        main(['--quick', '--sections', 'finetune', '--data-root', '/nonexistent/toy'])
