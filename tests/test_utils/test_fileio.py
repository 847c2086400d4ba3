"""Atomic writes: all or nothing, one-line errors, and temporary files of killed runs cleaned up."""
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from repvgg_mm.utils.errors import UserError
from repvgg_mm.utils.fileio import (
    atomic_output_dir,
    atomic_torch_save,
    atomic_write_all,
    remove_stale_temps,
    write_json_atomic,
)


def dead_pid() -> int:
    process = subprocess.Popen([sys.executable, '-c', 'pass'])
    process.wait()
    return process.pid


def test_stale_temps_of_dead_writers_are_removed(tmp_path):
    stale = tmp_path / f'.model.pth.{dead_pid()}.abcd.tmp.pth'
    alive = tmp_path / f'.model.pth.{os.getppid()}.efgh.tmp.pth'  # a running process
    other = tmp_path / '.hidden_user_file'
    for path in (stale, alive, other):
        path.write_bytes(b'x')
    assert remove_stale_temps(str(tmp_path)) == [str(stale)]
    assert not stale.exists() and alive.exists() and other.exists()
    atomic_torch_save({'w': torch.ones(1)}, str(tmp_path / 'model.pth'))
    assert sorted(os.listdir(tmp_path)) == sorted(['model.pth', alive.name, other.name])


def test_failed_writer_leaves_nothing_and_keeps_the_target(tmp_path):
    target = tmp_path / 'out.json'
    write_json_atomic({'a': 1}, str(target))

    def fail(tmp):
        with open(tmp, 'w') as handle:
            handle.write('partial')
        raise RuntimeError('PytorchStreamWriter failed writing file data/0: file write failed')

    with pytest.raises(UserError, match=r'cannot write .*out.json.*disk full'):
        atomic_write_all({str(target): fail})
    assert os.listdir(tmp_path) == ['out.json'] and target.read_text() == '{\n  "a": 1\n}'


def test_file_size_limit_is_a_one_line_error(tmp_path):
    """A full disk seen by torch.save (here: a file size limit, EFBIG) is one line, nothing left."""
    code = ('import resource, signal, sys, torch\n'
            'from repvgg_mm.utils.cli import run_tool\n'
            'from repvgg_mm.utils.fileio import atomic_torch_save\n'
            'signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n'
            'resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))\n'
            'sys.exit(run_tool(lambda argv: atomic_torch_save(torch.ones(100000), sys.argv[1]),'
            ' []))\n')
    result = subprocess.run([sys.executable, '-c', code, str(tmp_path / 'big.pth')],
                            capture_output=True, text=True)
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith('error: cannot write') and result.stderr.count('\n') == 1
    assert os.listdir(tmp_path) == []


def test_atomic_output_dir_is_all_or_nothing(tmp_path):
    target = tmp_path / 'model'
    with pytest.raises(RuntimeError, match='killed half way'):
        with atomic_output_dir(str(target)) as tmp:
            Path(tmp, 'a.onnx').write_text('partial')
            raise RuntimeError('killed half way')
    assert os.listdir(tmp_path) == []  # neither the folder nor its temporary twin
    with atomic_output_dir(str(target)) as tmp:
        Path(tmp, 'a.onnx').write_text('first')
    assert os.listdir(target) == ['a.onnx'] and oct(os.stat(target).st_mode)[-3:] != '700'
    with pytest.raises(UserError, match='exists'):
        with atomic_output_dir(str(target)):
            pass
    with pytest.raises(ValueError):  # a failed replacement keeps the old folder
        with atomic_output_dir(str(target), replace=True) as tmp:
            raise ValueError
    assert (target / 'a.onnx').read_text() == 'first'
    with atomic_output_dir(str(target), replace=True) as tmp:
        Path(tmp, 'b.onnx').write_text('second')
    assert os.listdir(target) == ['b.onnx'] and os.listdir(tmp_path) == ['model']
    stale = tmp_path / f'.model.{dead_pid()}.abcd.tmp'  # a folder of a killed writer
    stale.mkdir()
    (stale / 'a.onnx').write_text('x')
    with atomic_output_dir(str(tmp_path / 'other')):
        pass
    assert sorted(os.listdir(tmp_path)) == ['model', 'other']
