"""The block-forms benchmark and the accuracy experiment run end to end in quick mode and write
every number (no timing or accuracy assertions: only what cannot be noise)."""
import json

import pytest

from repvgg_mm.benchmark.block_forms import FORMS
from repvgg_mm.testing import write_fake_fashion_mnist


def test_quick_block_forms_benchmark(tmp_path, capsys, monkeypatch, load_tool):
    monkeypatch.setenv('OMP_WAIT_POLICY', 'PASSIVE')  # the tool sets it by default; undo afterwards
    tool = load_tool('analysis_tools/benchmark_block_forms.py')
    assert tool.main(['--quick', '--work-dir', str(tmp_path)]) == 0
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
    (['--repeats', '0'], 'repeats must be at least 1'),
    (['--seg-size', '-3'], 'seg-size must be at least 1'),
    (['--archs', '--no-segmentors'], 'nothing to measure'),
])
def test_benchmark_bad_input(load_tool, tmp_path, argv, message):
    tool = load_tool('analysis_tools/benchmark_block_forms.py')
    with pytest.raises(tool.UserError, match=message):
        tool.main(['--quick', '--work-dir', str(tmp_path / 'out'), *argv])
    assert not (tmp_path / 'out').exists()


@pytest.mark.slow  # eight tiny mmengine Runner trainings (about half a minute)
def test_quick_accuracy_experiment(tmp_path, capsys, monkeypatch, load_tool):
    monkeypatch.setenv('OMP_WAIT_POLICY', 'PASSIVE')
    tool = load_tool('analysis_tools/benchmark_block_forms_accuracy.py')
    root = write_fake_fashion_mnist(str(tmp_path / 'fmnist'), num_train=64, num_test=32)
    work_dir = tmp_path / 'work'
    assert tool.main(['--quick', '--fashion-mnist-root', root, '--work-dir', str(work_dir)]) == 0
    report = json.loads((work_dir / 'block_forms_accuracy.json').read_text())
    scratch = report['scratch']['forms']
    assert set(scratch) == set(FORMS)
    for result in scratch.values():
        assert 0 <= result['top1'] <= 100 and result['wall_s'] > 0
        assert abs(result['fused_top1'] - result['top1']) < 1e-6  # fusing changes nothing
    assert report['pretrained'] == scratch['repvgg']['checkpoint']
    runs = report['transfer']['runs']
    assert sorted(runs) == sorted([f'{form} from pretrained' for form in FORMS]
                                  + ['repvgg from scratch'])
    for run in runs.values():
        assert 0 <= run['mIoU'] <= 100 and run['wall_s'] > 0
    assert report['transfer']['data']['classes'][0] == 'background'
    out = capsys.readouterr().out
    assert '| from scratch, Fashion-MNIST | top-1 (%) |' in out and '| PSPNet fine-tuning' in out


def test_accuracy_experiment_bad_input(load_tool, tmp_path):
    tool = load_tool('analysis_tools/benchmark_block_forms_accuracy.py')
    with pytest.raises(tool.UserError, match='seg-iters must be at least 1'):
        tool.main(['--quick', '--seg-iters', '0', '--work-dir', str(tmp_path)])
    with pytest.raises(tool.UserError, match='--pretrained checkpoint not found'):
        tool.main(['--quick', '--sections', 'transfer', '--pretrained', str(tmp_path / 'x.pth'),
                   '--work-dir', str(tmp_path)])
    with pytest.raises(tool.UserError, match='dataset-fashion-mnist'):
        tool.main(['--quick', '--fashion-mnist-root', str(tmp_path / 'none'),
                   '--work-dir', str(tmp_path / 'w')])
    assert not (tmp_path / 'w').exists()  # refused before anything was written
