"""tools/model_converters/convert_checkpoint.py end to end (subprocess) and its error paths
(in process)."""
import os
import subprocess
import sys

import pytest
import torch
from mmengine.runner import load_checkpoint

from repvgg_mm.checkpoint import export_state_dict, safe_load
from repvgg_mm.conversion.arch_matching import build_backbone, infer_arch
from repvgg_mm.registry import MODELS
from repvgg_mm.utils.cli import run_tool as run_cli
from repvgg_mm.utils.compare import max_relative_error
from repvgg_mm.utils.errors import EXIT_ERROR
from tests.helpers import (
    NUM_CLASSES,
    TINY_ARCHS,
    WRAPPERS,
    classifier_cfg,
    classifier_state,
    load_written,
    write_config,
)
from tests.helpers.tools import TOOLS, tool_namespace

ROOT = TOOLS.parent
TOOL = TOOLS / 'model_converters' / 'convert_checkpoint.py'


def run_tool(*args):
    return subprocess.run([sys.executable, str(TOOL), *map(str, args)], capture_output=True,
                          text=True, cwd=ROOT, env=dict(os.environ, OMP_NUM_THREADS='1'),
                          timeout=300)


@pytest.fixture(scope='module')
def tool():
    return tool_namespace('model_converters/convert_checkpoint.py')


def one_line_error(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith('error: '), stderr
    return lines[0]


@pytest.mark.slow
def test_original_fused_file_to_our_classifier(tmp_path, random_classifier, images):
    backbone, head = random_classifier('grouped-se', deploy=True)
    src, dst = tmp_path / 'RepVGG-tiny-deploy.pth', tmp_path / 'out' / 'tiny.pth'
    state = export_state_dict(classifier_state(backbone, head), 'original', 'classifier')
    torch.save(WRAPPERS['model+ddp'](state), src)

    result = run_tool(src, dst)
    assert result.returncode == 0, result.stderr
    assert ('original layout, fused (deploy) blocks, with classifier head, arch custom'
            in result.stdout)
    assert f'wrote {len(state)} tensors (classifier keys, repvgg_mm layout)' in result.stdout
    assert sorted(os.listdir(dst.parent)) == ['tiny.pth']  # no temporary file left behind

    classifier = MODELS.build(dict(
        type='repvgg_mm.ImageClassifier',
        backbone=dict(type='repvgg_mm.RepVGG', arch=TINY_ARCHS['grouped-se'], deploy=True),
        head=dict(type='repvgg_mm.LinearClsHead', num_classes=NUM_CLASSES))).eval()
    load_checkpoint(classifier, str(dst), strict=True)
    with torch.no_grad():
        expected = head(backbone(images)[-1].mean((2, 3)))
        assert torch.equal(classifier(images, mode='tensor'), expected)


@pytest.mark.slow
def test_refuses_to_overwrite(tmp_path, random_classifier):
    src, dst = tmp_path / 'timm.pth', tmp_path / 'exists.pth'
    torch.save(export_state_dict(classifier_state(*random_classifier('plain')), 'timm'), src)
    dst.write_bytes(b'keep me')
    result = run_tool(src, dst)
    assert result.returncode == EXIT_ERROR
    assert 'exists; pass --force' in one_line_error(result.stderr)
    assert dst.read_bytes() == b'keep me'

    before = src.read_bytes()
    result = run_tool(src, src, '--force')
    assert result.returncode == EXIT_ERROR
    assert 'refusing to overwrite the input' in one_line_error(result.stderr)
    assert src.read_bytes() == before


def test_error_paths_and_force(tool, tmp_path, random_classifier, capsys):
    backbone, head = random_classifier('plain')
    src, dst = tmp_path / 'mmpretrain.pth', tmp_path / 'out.pth'
    torch.save({'state_dict': export_state_dict(classifier_state(backbone, head), 'mmpretrain',
                                                'backbone')}, src)
    resnet, text = tmp_path / 'resnet.pth', tmp_path / 'notes.pth'
    torch.save({'conv1.weight': torch.ones(1), 'fc.weight': torch.ones(1)}, resnet)
    text.write_text('hello')
    cases = [([tmp_path / 'missing.pth', dst], 'checkpoint not found'),
             ([text, dst], 'is not a PyTorch checkpoint'),
             ([resnet, dst], 'unknown checkpoint layout'),
             ([src, dst, '--layout', 'timm'], 'no key of the checkpoint fits the timm'),
             ([src, dst, '--target', 'classifier'], 'no complete classifier head'),
             ([src, dst, '--arch', 'A0'], 'do not fit a training-time RepVGG-A0'),
             ([src, dst, '--arch', 'Z1'], "unknown RepVGG arch 'Z1'")]
    for argv, message in cases:
        assert run_cli(tool['main'], [str(a) for a in argv]) == EXIT_ERROR
        assert message in one_line_error(capsys.readouterr().err)
        assert not dst.exists()
    with pytest.raises(SystemExit) as exit_info:
        tool['main']([str(src), str(dst), '--layout', 'caffe'])
    assert exit_info.value.code == 2

    dst.write_bytes(b'old')
    assert tool['main']([str(src), str(dst), '--force']) == 0
    out = capsys.readouterr().out
    assert 'mmpretrain layout, training-time blocks, without classifier head' in out
    assert f'wrote {len(backbone.state_dict())} tensors (backbone keys' in out
    assert torch.load(dst)['meta']['repvgg_mm_layout_conversion']['converted_from'] == 'mmpretrain'


@pytest.mark.parametrize('arch,deploy', [('A0', False), ('B1g2', True), ('B1g4', False),
                                         ('D2se', True)])
def test_infer_arch(arch, deploy):
    assert infer_arch(build_backbone(arch, deploy, device='meta').state_dict()) == arch


def test_infer_arch_custom():
    assert infer_arch(build_backbone(TINY_ARCHS['se'], False, device='meta').state_dict()) is None


def test_original_file_to_fine_tune_config_to_whole_model_converter(tool, tmp_path,
                                                                    random_classifier, images,
                                                                    capsys):
    """The chain a user runs: an original-layout training file -> convert_checkpoint -> the
    checkpoint of a fine-tuning config -> convert_whole_model. Each tool keeps its own record."""
    backbone, head = random_classifier('grouped-se')
    src, ours = tmp_path / 'RepVGG-tiny-train.pth', tmp_path / 'ours.pth'
    torch.save(export_state_dict(classifier_state(backbone, head), 'original', 'classifier'), src)
    assert run_cli(tool['main'], [str(src), str(ours)]) == 0
    cfg = write_config(classifier_cfg(arch=TINY_ARCHS['grouped-se'], num_classes=NUM_CLASSES),
                       tmp_path / 'finetune.py')
    converter = tool_namespace('convert_whole_model.py')
    assert run_cli(converter['main'], [cfg, str(ours), str(tmp_path / 'deploy')]) == 0, \
        capsys.readouterr().err
    written = safe_load(tmp_path / 'deploy' / 'ours_deploy.pth')
    assert written['meta']['repvgg_mm_layout_conversion']['converted_from'] == 'original'
    assert written['meta']['repvgg_mm_fusion']['blocks_fused'] == 8
    deploy = load_written(str(tmp_path / 'deploy' / 'finetune_deploy.py'),
                          str(tmp_path / 'deploy' / 'ours_deploy.pth'))
    with torch.no_grad():
        expected = head(backbone(images)[-1].mean((2, 3)))
        assert max_relative_error(expected, deploy(images, mode='tensor')) < 1e-5
    # a fused file stays refused, whichever tool wrote it: decided from the weights
    assert run_cli(converter['main'], [cfg, str(tmp_path / 'deploy' / 'ours_deploy.pth'),
                                    str(tmp_path / 'again')]) == EXIT_ERROR
    assert 'is already fused' in capsys.readouterr().err
