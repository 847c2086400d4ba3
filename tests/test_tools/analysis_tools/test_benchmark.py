"""tools/analysis_tools/benchmark.py runs end to end in quick mode and writes its outputs (no
timing assertions)."""
import csv
import json
import os

import pytest

from tests.helpers.tools import tool_main


def test_quick_benchmark_writes_csv_and_png(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv('OMP_WAIT_POLICY', 'PASSIVE')  # the tool sets it by default; undo afterwards
    main = tool_main('analysis_tools/benchmark.py')
    assert main(['--quick', '--onnxruntime', '--work-dir', str(tmp_path)]) == 0
    with open(tmp_path / 'cls.csv') as handle:
        rows = {row['name']: row for row in csv.DictReader(handle)}
    onnx = {'RepVGG-A0 (fused, onnxruntime fp32)', 'RepVGG-A0 (fused, onnxruntime int8)'}
    assert {'RepVGG-A0 (train-time)', 'RepVGG-A0 (fused)', 'ResNet-18'} | onnx <= set(rows)
    for name in onnx:  # the fused network, timed on ONNX Runtime
        assert float(rows[name]['seconds']) > 0
        assert rows[name]['params'] == rows['RepVGG-A0 (fused)']['params']
    fused = rows['RepVGG-A0 (fused)']
    assert float(fused['seconds']) > 0 and float(fused['speedup']) > 0
    assert float(fused['paper_top1']) == pytest.approx(72.41)
    # deploy-time params of A0 (paper: 8.31 M) and fewer than the training-time model
    assert float(fused['params']) == pytest.approx(8.31e6, rel=0.01)
    assert float(fused['params']) < float(rows['RepVGG-A0 (train-time)']['params'])
    assert any(name.startswith('GEMM') for name in rows)
    assert (tmp_path / 'cls.png').read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
    assert 'RepVGG-A0 (fused)' in capsys.readouterr().out
    assert not [p for p in os.listdir(tmp_path) if p.startswith('.')]  # no temp files left


@pytest.mark.parametrize('mode, expected', [
    ('seg', {'PSPNet-RepVGG-A0 (train-time)', 'PSPNet-RepVGG-A0 (fused)', 'PSPNet-R50-d8'}),
    ('targets', {'RepVGG-A0 (fused, jit_freeze)', 'timm RepVGG-A0 (fused)',
                 'RepVGG-A0 (train step)', 'timm RepVGG-A0 (train step)'}),
])
def test_quick_dense_and_targets_modes(mode, expected, tmp_path, monkeypatch):
    monkeypatch.setenv('OMP_WAIT_POLICY', 'PASSIVE')
    main = tool_main('analysis_tools/benchmark.py')
    assert main(['--mode', mode, '--quick', '--work-dir', str(tmp_path)]) == 0
    with open(tmp_path / f'{mode}.csv') as handle:
        rows = {row['name']: row for row in csv.DictReader(handle)}
    assert expected <= set(rows)
    if mode == 'seg':  # same input size for all: the R50-d8 costs more than the fused A0
        assert (float(rows['PSPNet-R50-d8']['macs'])
                > float(rows['PSPNet-RepVGG-A0 (fused)']['macs']))
    else:
        with open(tmp_path / 'targets_targets.json') as handle:
            checks = json.load(handle)
        assert len(checks) == 5
        assert all(c['verdict'] in ('pass', 'parity', 'miss') and c['value'] > 0
                   for c in checks.values())
