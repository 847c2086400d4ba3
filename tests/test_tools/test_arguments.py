"""Every numeric option of every tool: typed by repvgg_mm.utils.argtypes, 0 and -1 refused in one
line (exit 2) unless the option's type allows 0."""
import argparse

import pytest

from repvgg_mm.utils import argtypes
from repvgg_mm.utils.cli import ToolArgumentParser
from repvgg_mm.utils.fileio import clear_protected_inputs
from tests.helpers.tools import every_tool, tool_namespace

TOOLS = every_tool()


class _CapturedError(Exception):
    def __init__(self, parser):
        self.parser = parser


def tool_parser_of(tool: str, parse_args, monkeypatch) -> argparse.ArgumentParser:
    def capture(self, args=None, namespace=None):
        raise _CapturedError(self)
    with monkeypatch.context() as patch:
        patch.setattr(ToolArgumentParser, 'parse_args', capture)
        try:
            parse_args([])
        except _CapturedError as captured:
            return captured.parser
    raise AssertionError(f'{tool} does not parse with tool_parser')


def numeric_options(parser):
    for action in parser._actions:
        if action.option_strings and action.type is not None and action.type not in (
                argtypes.input_path, argtypes.output_path, argtypes.device, str):
            yield action


def positionals(parser):
    return ['x' for action in parser._actions if not action.option_strings
            and action.nargs not in ('?', '*')]


def parse(parse_args, argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        parse_args(argv)
    clear_protected_inputs()
    return exit_info.value.code, capsys.readouterr().err


@pytest.mark.parametrize('tool', TOOLS)
def test_numeric_options_refuse_zero_and_negative_values(tool, monkeypatch, capsys):
    parse_args = tool_namespace(tool)['parse_args']
    parser = tool_parser_of(tool, parse_args, monkeypatch)
    options = list(numeric_options(parser))
    for action in options:
        assert action.type not in (int, float), \
            f'{tool} {action.option_strings[0]}: a bare {action.type.__name__}; use argtypes'
        assert hasattr(action.type, 'minimum') or action.choices, action.option_strings
        count = action.nargs if isinstance(action.nargs, int) else 1
        allows_zero = getattr(action.type, 'minimum', None) == 0 and not getattr(
            action.type, 'low_open', False)
        for value in ('-1', '0'):
            if value == '0' and allows_zero:
                continue
            argv = positionals(parser) + [action.option_strings[0]] + [value] * count
            code, err = parse(parse_args, argv, capsys)
            assert code == 2, (tool, argv)
            assert err.startswith('error: argument ') and err.count('\n') == 1, (tool, err)


def test_ranges_and_sizes():
    with pytest.raises(argparse.ArgumentTypeError, match='>= 1, got 0'):
        argtypes.positive_int('0')
    with pytest.raises(argparse.ArgumentTypeError, match='an integer'):
        argtypes.positive_int('2.5')
    with pytest.raises(argparse.ArgumentTypeError, match='finite'):
        argtypes.non_negative_float('nan')
    with pytest.raises(argparse.ArgumentTypeError, match=r'in \[0.0, 1.0\]'):
        argtypes.unit_float('1.5')
    with pytest.raises(argparse.ArgumentTypeError, match='takes 1 or 2 values'):
        argtypes.check_size([32, 32, 3], '--input-size')
    assert argtypes.int_range(7, 9)('9') == 9


@pytest.mark.parametrize('value', ['banana', 'cuda:x', 'gpu'])
def test_devices_that_do_not_exist_are_refused(value):
    with pytest.raises(argparse.ArgumentTypeError):
        argtypes.device(value)


def test_cuda_without_a_gpu_is_refused():
    import torch
    if torch.cuda.is_available():
        assert argtypes.device('cuda:0') == 'cuda:0'
        with pytest.raises(argparse.ArgumentTypeError, match='device'):
            argtypes.device(f'cuda:{torch.cuda.device_count()}')
    else:
        with pytest.raises(argparse.ArgumentTypeError, match='no CUDA device'):
            argtypes.device('cuda:0')
    assert argtypes.device('cpu') == 'cpu'
