"""repvgg_mm.engine.distributed on its own: SyncBN -> BN without CUDA, launchers, one process."""
from pathlib import Path

import pytest
import torch
from mmengine.config import Config

from repvgg_mm.datasets.toy_dense import make_toy_dense
from repvgg_mm.engine import distributed, train
from repvgg_mm.utils.config import replace_sync_bn
from repvgg_mm.utils.errors import UserError

SEG_CONFIG = Path(__file__).resolve().parents[2] / 'configs' / 'toy' / 'pspnet_repvgg_a0_toy.py'


@pytest.fixture
def messages(monkeypatch):
    logged = []
    monkeypatch.setattr(distributed, 'print_log', lambda msg, **kwargs: logged.append(msg))
    return logged


def test_replace_sync_bn_reaches_nested_norm_configs():
    cfg = dict(backbone=dict(norm_cfg=dict(type='SyncBN', requires_grad=True)),
               heads=[dict(norm_cfg=dict(type='MMSyncBN')), dict(norm_cfg=dict(type='GN'))],
               neck=dict(norm_cfg=dict(type=torch.nn.SyncBatchNorm)))
    converted, count = replace_sync_bn(cfg)
    assert count == 3
    assert converted['backbone']['norm_cfg'] == dict(type='BN', requires_grad=True)
    assert converted['heads'][0]['norm_cfg']['type'] == 'BN'
    assert converted['heads'][1]['norm_cfg']['type'] == 'GN'
    assert converted['neck']['norm_cfg']['type'] == 'BN'
    assert cfg['backbone']['norm_cfg']['type'] == 'SyncBN'  # the input is left alone


def test_one_process_without_cuda_reverts_sync_bn_with_a_message(messages):
    cfg = Config(dict(model=dict(norm_cfg=dict(type='SyncBN')), launcher='none',
                      env_cfg=dict(dist_cfg=dict(backend='nccl'))))
    distributed.adapt_to_cpu(cfg)
    assert cfg.model.norm_cfg.type == 'BN'
    assert cfg.env_cfg.dist_cfg.backend == 'nccl'  # no process group, nothing else changes
    assert len(messages) == 1 and '1 SyncBN norm configs of the model built as BN' in messages[0]


def test_launchers_other_than_torchrun_need_cuda(messages):
    cfg = Config(dict(model=dict(), launcher='slurm'))
    with pytest.raises(UserError, match='--launcher slurm needs CUDA.*dist_train.sh'):
        distributed.adapt_to_cpu(cfg)


def test_ddp_wrapper_gets_no_device_ids():
    cfg = Config(dict(find_unused_parameters=True))
    distributed.cpu_ddp_wrapper(cfg)
    assert cfg.model_wrapper_cfg == dict(type='MMDistributedDataParallel', device_ids=None,
                                         broadcast_buffers=False, find_unused_parameters=True)
    cfg = Config(dict(model_wrapper_cfg=dict(type='MMDistributedDataParallel', device_ids=[0])))
    distributed.cpu_ddp_wrapper(cfg)
    assert cfg.model_wrapper_cfg.device_ids is None


def test_sync_bn_seg_config_trains_in_one_cpu_process(tmp_path, messages):
    data = str(tmp_path / 'data')
    make_toy_dense(data, num_train=4, num_val=2, size=64, progress=False)
    options = {f'{loader}.dataset.data_root': data for loader in ('train_dataloader',
                                                                  'val_dataloader')}
    options.update({'train_dataloader.batch_size': 2, 'train_cfg.max_iters': 1,
                    'train_cfg.val_interval': 1, 'default_hooks.checkpoint.interval': 1})
    options.update({f'model.{part}.norm_cfg.type': 'SyncBN'
                    for part in ('backbone', 'decode_head', 'auxiliary_head')})
    model = train(str(SEG_CONFIG), work_dir=str(tmp_path / 'work'), cfg_options=options)
    assert (tmp_path / 'work' / 'iter_1.pth').is_file()
    assert not any(isinstance(m, torch.nn.SyncBatchNorm) for m in model.modules())
    assert any('3 SyncBN norm configs of the model built as BN' in m for m in messages)
