"""tools/convert_whole_model.py: a run that writes exactly two files, and every bad input refused
with a one-line error, a non-zero exit and no output (subprocesses of the real CLI, run at
once)."""
import hashlib
import os
import subprocess
import sys

import pytest
import torch
from mmengine.config import Config

from repvgg_mm.checkpoint import safe_load
from repvgg_mm.models import build_analysis_model, fuse_repvgg_blocks
from repvgg_mm.models.utils import iter_repvgg_blocks
from repvgg_mm.utils.cli import run_tool as run_cli
from repvgg_mm.utils.config import load_config
from repvgg_mm.utils.errors import EXIT_ERROR
from repvgg_mm.utils.fileio import TEMP_MARKER
from tests.helpers import (
    classifier_cfg,
    load_written,
    make_case,
    run_concurrently,
    runner_checkpoint,
    trained_model,
    write_config,
)
from tests.helpers.tools import TOOLS, tool_main

REPO = str(TOOLS.parent)
CLI = str(TOOLS / 'convert_whole_model.py')

OTHER_ARCH = dict(num_blocks=(1, 1, 1, 1), width_factor=(0.25, 0.25, 0.25, 0.5))


def digest(path) -> str:
    with open(path, 'rb') as f:
        return hashlib.sha256(f.read()).hexdigest()


def snapshot(folder) -> dict:
    """File name -> content hash of a folder (None if it does not exist)."""
    if not os.path.exists(folder):
        return None
    return {name: digest(os.path.join(folder, name)) for name in sorted(os.listdir(folder))}


@pytest.fixture(scope='module')
def inputs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp('cli')
    cfg, ckpt, model = make_case(tmp, 'cls', classifier_cfg(),
                                 checkpoint=lambda s: runner_checkpoint(s, ddp=True))
    paths = dict(tmp=tmp, cfg=cfg, ckpt=ckpt)
    paths['other_size'] = str(tmp / 'other_size.pth')  # 7 classes instead of 5
    torch.save(trained_model(classifier_cfg(num_classes=7)).state_dict(), paths['other_size'])
    paths['other_arch'] = str(tmp / 'other_arch.pth')
    torch.save(runner_checkpoint(trained_model(classifier_cfg(arch=OTHER_ARCH)).state_dict()),
               paths['other_arch'])
    paths['fused'] = str(tmp / 'fused.pth')
    torch.save(fuse_repvgg_blocks(model).state_dict(), paths['fused'])
    paths['not_ckpt'] = str(tmp / 'notes.pth')
    with open(paths['not_ckpt'], 'w') as f:
        f.write('not a checkpoint\n')
    paths['plain_cfg'] = write_config(dict(classifier_cfg(), model=dict(
        type='ImageClassifier', backbone=dict(type='ConvModule', in_channels=3, out_channels=8,
                                              kernel_size=3),
        head=dict(type='LinearClsHead', num_classes=5))), tmp / 'plain.py')
    paths['full'] = str(tmp / 'full')
    os.makedirs(paths['full'])
    with open(os.path.join(paths['full'], 'keep.txt'), 'w') as f:
        f.write('user file\n')
    return paths


# Run as real subprocesses (exit status, stderr); every other bad input runs main() in-process.
BAD_INPUTS = {
    # name: (config, checkpoint, out_dir, extra args, expected words of the error)
    'not a checkpoint': ('cfg', 'not_ckpt', 'tmp/o2', [], 'is not a PyTorch checkpoint'),
    'another size': ('cfg', 'other_size', 'tmp/o3', [], 'with another shape: head.fc.bias'),
    'already fused': ('cfg', 'fused', 'tmp/o5', [], 'is already fused'),
    'non-empty out dir': ('cfg', 'ckpt', 'full', [], 'not empty; pass --force'),
}


def _path(inputs, key):
    if key in inputs:
        return str(inputs[key])
    return str(inputs['tmp'] / key.split('/', 1)[1]) if key.startswith('tmp/') else key


@pytest.fixture(scope='module')
def cli_runs(inputs):
    """Every bad input and one good run (--force into a non-empty folder, --add-module-prefix)."""
    cases = {name: [_path(inputs, k) for k in case[:3]] + case[3]
             for name, case in BAD_INPUTS.items()}
    good_dir = inputs['tmp'] / 'good'
    os.makedirs(good_dir)
    (good_dir / 'keep.txt').write_text('user file\n')
    cases['good'] = [inputs['cfg'], inputs['ckpt'], str(good_dir), '--force', '--add-module-prefix',
                     '--sample-shape', '48', '64']
    watched = {name: (args[1], args[2]) for name, args in cases.items()}
    before = {name: [snapshot(p) if os.path.isdir(p) or not os.path.exists(p) else digest(p)
                     for p in paths] for name, paths in watched.items()}
    results = run_concurrently([[sys.executable, CLI, *args] for args in cases.values()], cwd=REPO)
    after = {name: [snapshot(p) if os.path.isdir(p) or not os.path.exists(p) else digest(p)
                    for p in paths] for name, paths in watched.items()}
    return {name: (result, before[name], after[name]) for name, result in zip(cases, results)}


@pytest.mark.slow
@pytest.mark.parametrize('name', sorted(BAD_INPUTS))
def test_bad_input_is_refused(cli_runs, name):
    (code, stdout, stderr), before, after = cli_runs[name]
    assert code == EXIT_ERROR
    assert len(stderr.splitlines()) == 1 and stderr.startswith('error: '), stderr
    assert BAD_INPUTS[name][4] in stderr
    assert after == before  # the checkpoint and OUT_DIR are untouched; no partial output


@pytest.mark.slow
def test_good_run_writes_exactly_two_files(cli_runs, inputs):
    (code, stdout, stderr), _, _ = cli_runs['good']
    assert code == 0, stderr
    assert stderr == ''
    folder = inputs['tmp'] / 'good'
    assert sorted(os.listdir(folder)) == ['cls_deploy.pth', 'cls_deploy.py', 'keep.txt']
    for line in ('blocks fused      : 8', 'max abs diff', 'max rel diff', 'params            : '):
        assert line in stdout
    ckpt = safe_load(str(folder / 'cls_deploy.pth'))
    assert all(k.startswith('module.') for k in ckpt['state_dict'])
    assert ckpt['meta']['epoch'] == 3 and ckpt['meta']['repvgg_mm_fusion']['sample_shape'] == [
        1, 3, 48, 64]
    assert Config.fromfile(str(folder / 'cls_deploy.py')).model.backbone.deploy is True


def run_main(argv, capsys):
    code = run_cli(tool_main('convert_whole_model.py'), [str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


IN_PROCESS_CASES = {
    # name: expected words of the error
    'missing config': 'config file not found', 'missing checkpoint': 'checkpoint not found',
    'checkpoint is a folder': 'is a folder, not a file',
    'another architecture': 'does not fit the model', 'no RepVGG block': 'builds no RepVGG block',
    'out dir is the checkpoint': 'is the input', 'out dir inside an input': 'lies inside the input',
    'deploy config': 'already builds fused', 'no EMA weights': 'holds no EMA weights',
    'above the tolerance': "first diverging block 'backbone.stem'",
    'NaN weight': "'backbone.stage2.1.branch_1x1.conv.weight' holds NaN or infinity",
    'negative running variance': "fused RepVGG block 'backbone.stage1.0': 'branch_fused.weight' "
                                 'holds NaN or infinity',
}


def _broken_copy(inputs, tmp_path, key, value):
    state = safe_load(inputs['ckpt'])
    tensor = state['state_dict'][f'module.{key}']
    tensor.view(-1)[0] = value
    path = tmp_path / 'broken.pth'
    torch.save(state, path)
    return str(path)


@pytest.mark.parametrize('case', sorted(IN_PROCESS_CASES))
def test_more_bad_inputs_in_process(inputs, capsys, case, tmp_path):
    cfg, ckpt, out, extra = inputs['cfg'], inputs['ckpt'], tmp_path / 'out', []
    watched = ckpt
    if case == 'missing config':
        cfg = tmp_path / 'nope.py'
    elif case == 'missing checkpoint':
        ckpt = tmp_path / 'nope.pth'
    elif case == 'checkpoint is a folder':
        ckpt = inputs['tmp']
    elif case == 'another architecture':
        ckpt = inputs['other_arch']
    elif case == 'no RepVGG block':
        cfg = inputs['plain_cfg']
    elif case == 'out dir is the checkpoint':
        out = ckpt
    elif case == 'out dir inside an input':
        out = os.path.join(ckpt, 'sub')
    elif case == 'deploy config':
        deploy_cfg = classifier_cfg()
        deploy_cfg['model']['backbone']['deploy'] = True
        cfg = write_config(deploy_cfg, tmp_path / 'd.py')
    elif case == 'no EMA weights':
        extra = ['--ema']
    elif case == 'NaN weight':
        ckpt = watched = _broken_copy(inputs, tmp_path, 'backbone.stage2.1.branch_1x1.conv.weight',
                                      float('nan'))
    elif case == 'negative running variance':
        ckpt = watched = _broken_copy(inputs, tmp_path,
                                      'backbone.stage1.0.branch_3x3.bn.running_var', -5.0)
    else:
        extra = ['--tolerance', '1e-12']
    before = digest(watched)
    code, _, err = run_main([cfg, ckpt, out, *extra], capsys)
    assert code == EXIT_ERROR and len(err.splitlines()) == 1, err
    assert err.startswith('error: ') and IN_PROCESS_CASES[case] in err, err
    assert digest(watched) == before
    assert not os.path.exists(out) or out == ckpt


def test_cfg_options_reach_the_model(inputs, capsys, tmp_path):
    """--cfg-options make the 7-class checkpoint fit; the deploy config keeps the override
    (--no-verify: the key and bit-identity checks still run)."""
    code, out, err = run_main([inputs['cfg'], inputs['other_size'], tmp_path / 'o', '--no-verify',
                               '--cfg-options', 'model.head.num_classes=7'], capsys)
    assert code == 0, err
    assert 'verification      : skipped' in out
    assert 'untouched tensors : 34 bit-identical' in out  # head (2) + SE layers of 8 blocks (32)
    written = Config.fromfile(str(tmp_path / 'o' / 'cls_deploy.py'))
    assert written.model.head.num_classes == 7
    assert written.load_from == str(tmp_path / 'o' / 'other_size_deploy.pth')
    ckpt = safe_load(str(tmp_path / 'o' / 'other_size_deploy.pth'))
    record = ckpt['meta']['repvgg_mm_fusion']
    assert record['cfg_options'] == {'model.head.num_classes': 7} and record['verified'] is False
    assert not any(k.startswith('module.') for k in ckpt['state_dict'])
    assert len([k for k in ckpt['state_dict'] if k.endswith('branch_fused.weight')]) == len(
        list(iter_repvgg_blocks(trained_model(classifier_cfg()))))


def test_rerun_after_a_killed_write_needs_no_force(inputs, capsys, tmp_path):
    """A SIGKILLed conversion leaves a temporary file of our naming: the next run removes it."""
    out = tmp_path / 'out'
    out.mkdir()
    dead = subprocess.Popen([sys.executable, '-c', 'pass'])
    dead.wait()
    stale = out / f'.cls_deploy.pth.{TEMP_MARKER}.{dead.pid}.k2j4.pth'
    stale.write_bytes(b'half a checkpoint')
    code, _, err = run_main([inputs['cfg'], inputs['ckpt'], out, '--no-verify'], capsys)
    assert code == 0, err
    assert sorted(os.listdir(out)) == ['cls_deploy.pth', 'cls_deploy.py']


def _random_checkpoint(config, options, path):
    """A Runner checkpoint of random weights for the model ``config`` + ``options`` builds."""
    model = build_analysis_model(load_config(config, options), seed=0)
    torch.save(runner_checkpoint(model.state_dict()), path)


@pytest.mark.slow  # a random B1g2 PSPNet (46M backbone parameters) written, read and fused
@pytest.mark.parametrize('config, arch, options, blocks, channels', [
    ('configs/pspnet_repvgg_a0.py', 'B1g2',
     {'model.decode_head.channels': 16, 'model.auxiliary_head.channels': 8}, 28,
     {'decode_head.in_channels': 2048, 'auxiliary_head.in_channels': 512}),
    ('configs/detection/retinanet_repvgg_b1g2_fpn_1x_coco.py', 'A0',
     {'model.neck.out_channels': 16, 'model.bbox_head.in_channels': 16,
      'model.bbox_head.feat_channels': 16, 'model.bbox_head.stacked_convs': 1}, 22,
     {'neck.in_channels': [96, 192, 1280]}),
])
def test_another_arch_by_cfg_options_converts(config, arch, options, blocks, channels, tmp_path,
                                              capsys):
    """``--cfg-options model.backbone.arch=...`` on a segmentor and a detector config: the neck
    or head channels follow the arch, the fused files reproduce the model."""
    config = os.path.join(REPO, config)
    options = dict(options, **{'model.backbone.arch': arch})
    checkpoint = str(tmp_path / 'random.pth')
    _random_checkpoint(config, options, checkpoint)
    argv = [config, checkpoint, tmp_path / 'out', '--sample-shape', '64', '64', '--cfg-options',
            *(f'{k}={v}' for k, v in options.items())]
    code, out, err = run_main(argv, capsys)
    assert code == 0, err
    assert f'blocks fused      : {blocks}' in out
    stem = os.path.splitext(os.path.basename(config))[0]
    deploy_cfg = Config.fromfile(str(tmp_path / 'out' / f'{stem}_deploy.py'))
    assert deploy_cfg.model.backbone.arch == arch
    for key, value in channels.items():
        part, field = key.split('.')
        assert deploy_cfg.model[part][field] == value, key
    deploy = load_written(str(tmp_path / 'out' / f'{stem}_deploy.py'),
                          str(tmp_path / 'out' / 'random_deploy.pth'))
    assert len(list(iter_repvgg_blocks(deploy))) == blocks


def test_channels_that_fit_neither_arch_are_one_line(tmp_path, capsys):
    checkpoint = tmp_path / 'any.pth'
    torch.save({'w': torch.zeros(1)}, checkpoint)
    code, out, err = run_main([os.path.join(REPO, 'configs/pspnet_repvgg_a0.py'), checkpoint,
                               tmp_path / 'out', '--cfg-options', 'model.backbone.arch=B1g2',
                               'model.auxiliary_head.in_channels=100'], capsys)
    assert code == EXIT_ERROR and err.count('\n') == 1
    assert err.startswith('error: model.auxiliary_head.in_channels is 100: it fits neither')
    assert 'set it to 512' in err and not (tmp_path / 'out').exists()
