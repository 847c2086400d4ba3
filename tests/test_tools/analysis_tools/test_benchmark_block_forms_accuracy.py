"""tools/analysis_tools/benchmark_block_forms_accuracy.py runs end to end in quick mode and writes
every number (no accuracy assertions: only what cannot be noise); bad input is refused first."""
import json

import pytest

from repvgg_mm.benchmark.block_forms import FORMS
from repvgg_mm.benchmark.form_accuracy import FormAccuracySettings
from repvgg_mm.utils.errors import UserError
from tests.helpers import write_fake_fashion_mnist
from tests.helpers.tools import tool_main


@pytest.mark.slow  # eight tiny mmengine Runner trainings (about half a minute)
def test_quick_accuracy_experiment(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv('OMP_WAIT_POLICY', 'PASSIVE')
    main = tool_main('analysis_tools/benchmark_block_forms_accuracy.py')
    root = write_fake_fashion_mnist(str(tmp_path / 'fmnist'), num_train=64, num_test=32)
    work_dir = tmp_path / 'work'
    assert main(['--quick', '--fashion-mnist-root', root, '--work-dir', str(work_dir)]) == 0
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


def test_accuracy_experiment_bad_input(tmp_path, capsys):
    main = tool_main('analysis_tools/benchmark_block_forms_accuracy.py')
    with pytest.raises(SystemExit) as exit_info:
        main(['--quick', '--seg-iters', '0', '--work-dir', str(tmp_path)])
    assert exit_info.value.code == 2
    assert 'argument --seg-iters: must be >= 1, got 0' in capsys.readouterr().err
    with pytest.raises(UserError, match='seg-iters must be at least 1'):
        FormAccuracySettings.quick(str(tmp_path), 'cfg.py', seg_iters=0).check()
    with pytest.raises(UserError, match='checkpoint not found: .*x.pth'):
        main(['--quick', '--sections', 'transfer', '--pretrained', str(tmp_path / 'x.pth'),
              '--work-dir', str(tmp_path)])
    with pytest.raises(UserError, match='dataset-fashion-mnist'):
        main(['--quick', '--fashion-mnist-root', str(tmp_path / 'none'),
              '--work-dir', str(tmp_path / 'w')])
    assert not (tmp_path / 'w').exists()  # refused before anything was written
