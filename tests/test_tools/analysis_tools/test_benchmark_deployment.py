"""tools/analysis_tools/benchmark_deployment.py refuses bad input before any training or
measurement, in one line, writing nothing."""
import os

import pytest

from repvgg_mm.utils.cli import run_tool
from repvgg_mm.utils.errors import EXIT_ERROR
from tests.helpers.tools import tool_namespace


@pytest.fixture
def tool(monkeypatch):
    namespace = tool_namespace('analysis_tools/benchmark_deployment.py')
    measured = []
    monkeypatch.setitem(namespace['main'].__globals__, 'measure_case',
                        lambda *args, **kwargs: measured.append(args))
    return namespace['main'], measured


@pytest.mark.parametrize('argv, message', [
    (['--cases', 'PSPNet-A0', '--checkpoint', 'RetinaNet-A0=x.pth'], 'NAME one of --cases'),
    (['--cases', 'PSPNet-A0', '--checkpoint', 'PSPNet-A0'], 'NAME=PATH'),
    (['--cases', 'PSPNet-A0', '--doc', '{tmp}/doc.md'], 'needs one <!-- deployment-table:start'),
    (['--cases', 'Nope'], "invalid choice: 'Nope'"),
])
def test_bad_input_is_one_line_and_nothing_runs(argv, message, tool, tmp_path, capsys):
    main, measured = tool
    (tmp_path / 'doc.md').write_text('# no markers\n')
    argv = [a.format(tmp=tmp_path) for a in argv] + ['--work-dir', str(tmp_path / 'out')]
    assert run_tool(main, argv) == EXIT_ERROR
    err = capsys.readouterr().err
    assert err.startswith('error: ') and err.count('\n') == 1 and message in err, err
    assert not measured and not os.path.exists(tmp_path / 'out')
    assert (tmp_path / 'doc.md').read_text() == '# no markers\n'
