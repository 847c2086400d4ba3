"""tools/dataset_converters/make_toy_dense.py writes the toy dataset once, says so, and refuses a
folder that holds other data in one line."""
from repvgg_mm.utils.cli import run_tool
from repvgg_mm.utils.errors import EXIT_ERROR
from tests.helpers.tools import tool_main


def test_cli_writes_and_reports(tmp_path, capsys):
    main = tool_main('dataset_converters/make_toy_dense.py')
    out = tmp_path / 'toy'
    argv = [str(out), '--num-train', '2', '--num-val', '1', '--size', '48']
    assert main(argv) == 0
    assert 'wrote' in capsys.readouterr().out
    assert (out / 'annotations' / 'instances_val.json').is_file()
    assert main(argv) == 0
    assert 'nothing to do' in capsys.readouterr().out
    assert run_tool(main, [str(out), '--num-train', '3']) == EXIT_ERROR
    err = capsys.readouterr().err
    assert err.startswith('error: ') and err.count('\n') == 1
