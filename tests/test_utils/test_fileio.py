"""Atomic writes: all or nothing, one-line errors, temporary files of killed runs cleaned up (and
nothing else), no write over an input of the run."""
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from repvgg_mm.utils.errors import UserError
from repvgg_mm.utils.fileio import (
    TEMP_MARKER,
    atomic_output,
    atomic_output_dir,
    atomic_torch_save,
    atomic_write_all,
    check_output_target,
    clear_protected_inputs,
    protect_inputs,
    remove_stale_temps,
    write_json_atomic,
    write_text_atomic,
)


def dead_pid() -> int:
    process = subprocess.Popen([sys.executable, '-c', 'pass'])
    process.wait()
    return process.pid


def test_stale_temps_of_dead_writers_are_removed(tmp_path):
    pid = dead_pid()
    stale = tmp_path / f'.model.pth.{TEMP_MARKER}.{pid}.abcd.pth'
    alive = tmp_path / f'.model.pth.{TEMP_MARKER}.{os.getppid()}.efgh.pth'  # a running process
    other_target = tmp_path / f'.other.pth.{TEMP_MARKER}.{pid}.ijkl.pth'
    # user files that look like temporaries of the old naming, or carry a dead PID
    users = [tmp_path / '.hidden_user_file', tmp_path / f'.results.{pid}.backup.tmp',
             tmp_path / f'.model.pth.{pid}.abcd.tmp.pth']
    for path in [stale, alive, other_target] + users:
        path.write_bytes(b'x')
    assert remove_stale_temps(str(tmp_path / 'model.pth')) == [str(stale)]
    atomic_torch_save({'w': torch.ones(1)}, str(tmp_path / 'model.pth'))
    assert sorted(os.listdir(tmp_path)) == sorted(
        ['model.pth', alive.name, other_target.name] + [p.name for p in users])


def test_an_empty_output_path_sweeps_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    user = tmp_path / f'.results.{dead_pid()}.backup.tmp'
    user.write_bytes(b'keep me')
    for path in ('', ' '):
        with pytest.raises(UserError, match='empty'):
            write_text_atomic(path, 'x')
    with pytest.raises(UserError, match='is a folder'):
        write_text_atomic(str(tmp_path), 'x')
    assert os.listdir(tmp_path) == [user.name] and user.read_bytes() == b'keep me'


def test_inputs_are_never_written_over(tmp_path):
    checkpoint = tmp_path / 'weights.pth'
    checkpoint.write_bytes(b'weights')
    (tmp_path / 'link.pth').symlink_to(checkpoint)
    os.link(checkpoint, tmp_path / 'hard.pth')
    protect_inputs(str(tmp_path / 'sub' / '..' / 'weights.pth'))
    try:
        for target in ('weights.pth', 'link.pth', 'hard.pth'):
            with pytest.raises(UserError, match='it is an input of this run'):
                write_text_atomic(str(tmp_path / target), 'png')
        write_text_atomic(str(tmp_path / 'other.png'), 'png')
    finally:
        clear_protected_inputs()
    assert checkpoint.read_bytes() == b'weights'
    with pytest.raises(UserError, match='input'):
        check_output_target(str(tmp_path / 'link.pth'), inputs=[str(checkpoint)])


def test_a_failed_write_removes_the_folders_it_made(tmp_path):
    target = tmp_path / 'a' / 'b' / 'out.onnx'
    with pytest.raises(RuntimeError, match='export failed'):
        with atomic_output(str(target)):
            raise RuntimeError('export failed')
    assert os.listdir(tmp_path) == []


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
    assert 'disk full or file size limit' in result.stderr
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
    pid = dead_pid()
    stale = tmp_path / f'.other.{TEMP_MARKER}.{pid}.abcd'  # a folder of a killed writer
    user = tmp_path / f'.model.{pid}.abcd.tmp'  # a user's folder that only looks like one
    for folder in (stale, user):
        folder.mkdir()
        (folder / 'a.onnx').write_text('x')
    with atomic_output_dir(str(tmp_path / 'other')):
        pass
    assert sorted(os.listdir(tmp_path)) == sorted(['model', 'other', user.name])
