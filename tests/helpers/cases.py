"""Conversion test cases: configs and checkpoints written to disk, subprocesses run at once."""
import copy
import os
import subprocess

import torch
from mmengine.config import Config
from torch import nn

from repvgg_mm.checkpoint import load_state_dict_strict, read_weights
from repvgg_mm.conversion.equivalence import check_equivalence, make_sample
from repvgg_mm.conversion.whole_model import convert_whole_model, write_conversion
from repvgg_mm.models import build_analysis_model
from repvgg_mm.models.utils import iter_repvgg_blocks
from repvgg_mm.testing import TINY_ARCH
from repvgg_mm.utils.config import build_model

from .weights import runner_checkpoint

# Tiny models: one intra-op thread runs them in milliseconds, while two threads on a busy 2-core
# machine hand work back and forth for hundreds of milliseconds per forward pass.
ONE_THREAD_ENV = dict(OMP_NUM_THREADS='1', MKL_NUM_THREADS='1')
SAMPLE = (64, 64)


def write_config(cfg_dict: dict, path) -> str:
    Config(copy.deepcopy(cfg_dict)).dump(str(path))
    return str(path)


def trained_model(cfg_dict: dict, seed: int = 0) -> nn.Module:
    """The model of a config with 'trained' weights: random convs and random BN statistics."""
    return build_analysis_model(Config(copy.deepcopy(cfg_dict)), seed=seed)


def make_case(tmp_path, name: str, cfg_dict: dict, checkpoint=None, seed: int = 0):
    """Write ``name.py`` and ``name.pth`` (a Runner file unless ``checkpoint`` maps the state)."""
    model = trained_model(cfg_dict, seed)
    state = model.state_dict()
    ckpt = runner_checkpoint(state) if checkpoint is None else checkpoint(state)
    ckpt_path = tmp_path / f'{name}.pth'
    torch.save(ckpt, ckpt_path)
    return write_config(cfg_dict, tmp_path / f'{name}.py'), str(ckpt_path), model


def load_written(cfg_path: str, ckpt_path: str) -> nn.Module:
    """Build the written deploy config and load the written checkpoint strictly ('module.'
    dropped)."""
    model = build_model(Config.fromfile(cfg_path))
    load_state_dict_strict(model, read_weights(ckpt_path).state, source=ckpt_path)
    return model.eval()


def run_concurrently(commands, cwd, timeout=300):
    """Run command lines (lists) at once; return ``(returncode, stdout, stderr)`` per command."""
    env = dict(os.environ, **ONE_THREAD_ENV)
    procs = [subprocess.Popen(cmd, cwd=str(cwd), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, env=env) for cmd in commands]
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=timeout)
        results.append((proc.returncode, out, err))
    return results


def assert_same_outputs(train_model, deploy_model, shape=SAMPLE, tol=1e-4):
    sample = make_sample(train_model, shape, seed=1)
    report = check_equivalence(train_model, deploy_model, sample, tolerance=tol)
    assert report.ok, report.failure()
    return report


def convert_and_check(tmp_path, name, cfg_dict, checkpoint=None, **kwargs):
    """Convert a written case, check the written files reproduce it; return everything."""
    cfg_path, ckpt_path, train = make_case(tmp_path, name, cfg_dict, checkpoint)
    result = convert_whole_model(cfg_path, ckpt_path, sample_shape=SAMPLE, **kwargs)
    out_cfg, out_ckpt = write_conversion(result, cfg_path, ckpt_path, str(tmp_path / f'{name}_out'))
    assert sorted(os.listdir(tmp_path / f'{name}_out')) == sorted(
        [f'{name}_deploy.py', f'{name}_deploy.pth'])
    deploy = load_written(out_cfg, out_ckpt)
    assert all(b.deploy for _, b in iter_repvgg_blocks(deploy))
    assert_same_outputs(train, deploy)  # the written files reproduce the training-time model
    rec = result.record
    assert rec['blocks_fused'] == len(list(iter_repvgg_blocks(train))) == 1 + sum(
        TINY_ARCH['num_blocks'])
    assert rec['params_after'] < rec['params_before'] and rec['max_rel_diff'] < 1e-4
    assert read_weights(out_ckpt).meta['repvgg_mm_fusion']['deploy_config'] == \
        f'{name}_deploy.py'
    return train, deploy, result, out_cfg
