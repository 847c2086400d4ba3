"""One command-line policy for every tool: `error: <one line>` on stderr, exit status 2, --debug."""
import pytest

from repvgg_mm.utils.cli import run_tool
from repvgg_mm.utils.errors import EXIT_ERROR, UserError

# A tool and arguments that make it fail on bad input, for every tool in tools/.
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
}


@pytest.mark.parametrize('tool', sorted(FAILING_RUNS))
def test_every_tool_reports_errors_in_one_line_with_status_2(tool, load_tool, tmp_path, capsys,
                                                              monkeypatch):
    (tmp_path / 'file.txt').write_text('a file where a folder is expected\n')
    monkeypatch.chdir(tmp_path)
    argv = [arg.format(tmp=tmp_path) for arg in FAILING_RUNS[tool]]
    main = load_tool(tool).main
    assert run_tool(main, argv) == EXIT_ERROR
    err = capsys.readouterr().err
    assert err.startswith('error: ') and err.count('\n') == 1, err


def test_debug_shows_the_traceback():
    def main(argv):
        raise UserError('bad input')
    with pytest.raises(UserError, match='bad input'):
        run_tool(main, ['--debug'])


def test_bugs_keep_their_traceback():
    def main(argv):
        raise KeyError('a bug, not bad input')
    with pytest.raises(KeyError):
        run_tool(main, [])


@pytest.mark.parametrize('option, message', [
    ('a=(1,2', 'Imbalanced brackets'),
    ('a=[1,[2,3]', 'Imbalanced brackets'),
    ("model.backbone.init_cfg=dict(type=Pretrained)", 'model.backbone.init_cfg.type=...'),
    ("a={'b': {'c': 1}}", 'dict values are not parsed'),
    ('no_equals_sign', 'KEY=VALUE'),
])
@pytest.mark.parametrize('tool', ['train.py', 'test.py', 'convert_whole_model.py'])
def test_broken_cfg_options_are_one_line(tool, option, message, load_tool, capsys):
    main = load_tool(tool).main
    positional = {'train.py': ['c.py'], 'test.py': ['c.py', 'w.pth'],
                  'convert_whole_model.py': ['c.py', 'w.pth', 'out']}[tool]
    assert run_tool(main, positional + ['--cfg-options', option]) == EXIT_ERROR
    err = capsys.readouterr().err
    assert err.startswith('error: ') and err.count('\n') == 1 and message in err, err
