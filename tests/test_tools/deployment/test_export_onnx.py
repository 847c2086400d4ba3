"""tools/deployment/export_onnx.py: the heads of every config family exported and checked, a failed
check writes nothing, and a model folder is written all or nothing (never over an input)."""
import os
import shutil

import pytest

from repvgg_mm.deploy.model_folder import INFO_FILE
from repvgg_mm.utils.cli import run_tool
from repvgg_mm.utils.errors import ExportError
from tests.helpers.tools import tool_main
from tests.helpers.toy_cases import file_sha256 as sha256


@pytest.mark.parametrize('config, what, size, other_convs', [
    ('configs/toy/deeplabv3plus_repvgg_a0_toy.py', 'segmentor', 64, 15),
    # UPerNet's pyramid pooling exports when the stride-32 map divides by 1, 2, 3, 6: 192 -> 6x6
    ('configs/toy/upernet_repvgg_a0_toy.py', 'segmentor', 192, 13),
    ('configs/toy/mask_rcnn_repvgg_a0_toy.py', 'detector', 64, 6),  # backbone + FPN
    ('configs/detection/fcos_repvgg_a0_fpn_1x_coco.py', 'detector', 64, 8),
])
def test_export_tool_exports_the_new_heads(config, what, size, other_convs, repo_root, tmp_path,
                                           capsys):
    main = tool_main('deployment/export_onnx.py')
    assert main(['--what', what, '--config', str(repo_root / config), '--input-size',
                 str(size), '--exporter', 'torchscript', '--work-dir', str(tmp_path)]) == 0
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert line.startswith('OK: ') and f'{22 + other_convs} Conv nodes' in line  # A0: 22 blocks
    assert len(list(tmp_path.glob('*.onnx'))) == 1


def test_a_failed_check_writes_nothing(tmp_path, capsys):
    """--atol 0 --rtol 0: ONNX Runtime never matches PyTorch to the last bit; the rejected file and
    the folder made for it are gone."""
    main = tool_main('deployment/export_onnx.py')
    out = tmp_path / 'onnx'
    with pytest.raises(ExportError, match='the ONNX check failed, nothing written'):
        main(['--what', 'classifier', '--arch', 'A0', '--input-size', '32', '--atol', '0',
                   '--rtol', '0', '--exporter', 'torchscript', '--work-dir', str(out)])
    assert not out.exists()


def test_unexportable_input_size_is_one_line(repo_root, tmp_path):
    main = tool_main('deployment/export_onnx.py')
    config = str(repo_root / 'configs/toy/upernet_repvgg_a0_toy.py')
    with pytest.raises(ExportError, match='adaptive pooling exports only when'):
        main(['--what', 'segmentor', '--config', config, '--input-size', '64',
                   '--exporter', 'torchscript', '--work-dir', str(tmp_path)])
    assert not list(tmp_path.iterdir())  # nothing half written


def test_export_writes_all_or_nothing(cases, tmp_path, capsys):
    config, checkpoint, folder = cases['retinanet']
    main = tool_main('deployment/export_onnx.py')
    listing = sorted(os.listdir(folder))
    info = sha256(os.path.join(folder, INFO_FILE))
    inputs = {p: sha256(p) for p in (config, checkpoint)}
    # an existing folder without --force; a folder that is not a model folder, even with --force
    assert run_tool(main, [config, checkpoint, folder]) == 2
    other = tmp_path / 'work'
    other.mkdir()
    (other / 'notes.txt').write_text('mine')
    assert run_tool(main, [config, checkpoint, str(other), '--force']) == 2
    # a folder that holds the checkpoint, with --force (replacing it would delete the input)
    inside = tmp_path / 'inside'
    inside.mkdir()
    shutil.copy(os.path.join(folder, INFO_FILE), inside / INFO_FILE)
    shutil.copy(checkpoint, inside / 'w.pth')
    assert run_tool(main, [config, str(inside / 'w.pth'), str(inside), '--force']) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith('error:')]
    assert len(errors) == 3 and 'pass --force' in errors[0] and 'not a model folder' in errors[1]
    assert 'holds the input' in errors[2]
    assert sorted(os.listdir(folder)) == listing and sha256(os.path.join(folder, INFO_FILE)) == info
    assert os.listdir(other) == ['notes.txt'] and sorted(os.listdir(inside)) == [INFO_FILE, 'w.pth']
    assert {p: sha256(p) for p in (config, checkpoint)} == inputs
    assert not [n for n in os.listdir(os.path.dirname(folder)) if n.endswith('.tmp')]
