"""One command-line policy for every tool: `error: <one line>` on stderr and exit status 2 for bad
input, broken --cfg-options included, whether run as a script or through ``main``."""
import runpy
import sys

import pytest

from repvgg_mm.utils.cli import run_tool
from repvgg_mm.utils.errors import EXIT_ERROR
from tests.helpers.tools import A0, TOOLS, every_tool, tool_main

# A tool and arguments that make it fail on bad input, for every tool (the first test checks that
# none is missing).
FAILING_RUNS = {
    'train.py': ['missing_config.py'],
    'test.py': ['missing_config.py', 'missing.pth'],
    'convert_whole_model.py': ['missing_config.py', 'missing.pth', 'out'],
    'demo.py': ['--data-root', '{tmp}/file.txt'],
    'analysis_tools/benchmark.py': ['--mode', 'seg', '--input-size', '1', '2', '3'],
    'analysis_tools/verify_archs.py': ['--archs', 'A0', '--tolerance', '-1'],
    'analysis_tools/model_zoo.py': ['--configs', 'missing_config.py'],
    'deployment/export_onnx.py': ['--what', 'classifier', '--checkpoint', 'missing.pth'],
    'deployment/quantize.py': ['missing_config.py', 'missing.pth', 'out'],
    'analysis_tools/compare_blocks_int8.py': ['--data-root', 'missing_folder'],
    'model_converters/convert_checkpoint.py': ['missing.pth', '{tmp}/out.pth'],
    'dataset_converters/make_toy_dense.py': ['{tmp}/file.txt'],
    'dataset_converters/make_toy_classification.py': ['{tmp}/file.txt'],
    'misc/run_toy_classification.py': ['--data', '{tmp}/file.txt/sub'],
    'analysis_tools/benchmark_online_fusion.py': ['--quick', '--data-root', '{tmp}/file.txt'],
    'analysis_tools/benchmark_block_forms.py': ['--quick', '--work-dir', '{tmp}/file.txt'],
    'analysis_tools/benchmark_block_forms_accuracy.py': ['--quick', '--fashion-mnist-root',
                                                         '{tmp}/missing'],
    '../demo/image_demo.py': ['{tmp}/missing.png', 'missing_config.py', 'missing.pth'],
    'analysis_tools/benchmark_deployment.py': ['--cases', 'PSPNet-A0', '--checkpoint',
                                               'PSPNet-A0={tmp}/missing.pth'],
}


@pytest.mark.parametrize('tool', sorted(FAILING_RUNS))
def test_every_tool_reports_errors_in_one_line_with_status_2(tool, tmp_path, capsys, monkeypatch):
    (tmp_path / 'file.txt').write_text('a file where a folder is expected\n')
    monkeypatch.chdir(tmp_path)
    argv = [arg.format(tmp=tmp_path) for arg in FAILING_RUNS[tool]]
    main = tool_main(tool)
    assert run_tool(main, argv) == EXIT_ERROR
    err = capsys.readouterr().err
    assert err.startswith('error: ') and err.count('\n') == 1, err


def test_every_tool_has_a_failing_run():
    assert sorted(FAILING_RUNS) == sorted(every_tool())


@pytest.mark.parametrize('tool, args, message', [
    ('train.py', ['missing.py'], 'config file not found: missing.py'),
    ('test.py', [A0, 'missing.pth'], 'checkpoint not found: missing.pth'),
    ('train.py', [A0, '--cfg-options', 'train_dataloader.dataset.transforms.9.size=1'],
     'cannot apply --cfg-options'),
])
def test_user_errors_are_one_line(tool, args, message, monkeypatch, capsys):
    """The CLI entry points, run in this process (no interpreter start-up)."""
    monkeypatch.setattr(sys, 'argv', [tool, *args])
    with pytest.raises(SystemExit) as info:
        runpy.run_path(str(TOOLS / tool), run_name='__main__')
    assert info.value.code == 2
    stderr = capsys.readouterr().err.strip()
    assert len(stderr.splitlines()) == 1 and stderr.startswith('error: ') and message in stderr


@pytest.mark.parametrize('option, message', [
    ('a=(1,2', 'Imbalanced brackets'),
    ('a=[1,[2,3]', 'Imbalanced brackets'),
    ("model.backbone.init_cfg=dict(type=Pretrained)", 'model.backbone.init_cfg.type=...'),
    ("a={'b': {'c': 1}}", 'dict values are not parsed'),
    ('no_equals_sign', 'KEY=VALUE'),
])
@pytest.mark.parametrize('tool', ['train.py', 'test.py', 'convert_whole_model.py'])
def test_broken_cfg_options_are_one_line(tool, option, message, capsys):
    main = tool_main(tool)
    positional = {'train.py': ['c.py'], 'test.py': ['c.py', 'w.pth'],
                  'convert_whole_model.py': ['c.py', 'w.pth', 'out']}[tool]
    assert run_tool(main, positional + ['--cfg-options', option]) == EXIT_ERROR
    err = capsys.readouterr().err
    assert err.startswith('error: ') and err.count('\n') == 1 and message in err, err
