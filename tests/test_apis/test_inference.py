"""Inference the OpenMMLab way: our configs and checkpoints (training-time or fused) in mmseg's and
mmdet's inferencers, weights read safely and strictly (demo/image_demo.py: tests/test_demo)."""
import runpy

import pytest
import torch

from repvgg_mm.apis import init_inferencer, init_model
from repvgg_mm.conversion.whole_model import convert_whole_model, write_conversion
from repvgg_mm.models.utils import fuse_repvgg_blocks
from repvgg_mm.utils.cli import run_tool
from repvgg_mm.utils.compare import NonFiniteError
from repvgg_mm.utils.config import load_config
from repvgg_mm.utils.errors import EXIT_ERROR, CheckpointError
from tests.helpers.inference import CONFIGS, random_checkpoint


@pytest.mark.parametrize('kind', sorted(CONFIGS))
def test_inferencer_runs_our_weights(kind, repo_root, tmp_path, image):
    path, model = random_checkpoint(repo_root, kind, tmp_path)
    inferencer = init_inferencer(str(repo_root / CONFIGS[kind]), path)
    for key, value in model.state_dict().items():
        assert torch.equal(inferencer.model.state_dict()[key], value)
    result = inferencer(image, return_vis=True)
    if kind == 'seg':
        assert result['predictions'].shape == (96, 96)
        assert result['visualization'].shape == (96, 96, 3)
    else:
        keys = {'labels', 'scores', 'bboxes'} | ({'masks'} if kind == 'ins' else set())
        assert set(result['predictions'][0]) == keys
        assert result['visualization'][0].shape == (96, 96, 3)


def test_fused_checkpoint_predicts_the_same_segmentation(repo_root, tmp_path, image):
    train_path, model = random_checkpoint(repo_root, 'seg', tmp_path)
    fused_path = str(tmp_path / 'fused.pth')
    torch.save({'state_dict': fuse_repvgg_blocks(model).state_dict()}, fused_path)
    cfg = load_config(str(repo_root / CONFIGS['seg']))
    cfg.model.backbone.deploy = True
    deploy_cfg = tmp_path / 'deploy.py'
    cfg.dump(str(deploy_cfg))
    train = init_inferencer(str(repo_root / CONFIGS['seg']), train_path)(
        image, return_datasamples=True)
    fused = init_inferencer(str(deploy_cfg), fused_path)(image, return_datasamples=True)
    assert torch.equal(train.pred_sem_seg.data, fused.pred_sem_seg.data)


def test_wrong_weights_are_refused_strictly(repo_root, tmp_path):
    path, _ = random_checkpoint(repo_root, 'seg', tmp_path, fused=True)
    with pytest.raises(CheckpointError, match='missing'):
        init_inferencer(str(repo_root / CONFIGS['seg']), path)  # fused file, training config


def test_non_finite_weights_are_refused_for_inference(repo_root, tmp_path, image, capsys):
    """A NaN weight would draw an all-background prediction and exit 0: refused, named."""
    _, model = random_checkpoint(repo_root, 'seg', tmp_path)
    state = model.state_dict()
    state['decode_head.conv_seg.weight'][0, 0] = float('nan')
    path = tmp_path / 'nan.pth'
    torch.save({'state_dict': state}, path)
    with pytest.raises(NonFiniteError, match="'decode_head.conv_seg.weight' holds NaN"):
        init_inferencer(str(repo_root / CONFIGS['seg']), str(path))
    with pytest.raises(NonFiniteError, match='NaN'):
        init_model(str(repo_root / CONFIGS['seg']), str(path))
    main = runpy.run_path(str(repo_root / 'demo' / 'image_demo.py'))['main']
    out = tmp_path / 'drawn.png'
    assert run_tool(main, [image, str(repo_root / CONFIGS['seg']), str(path), '--out-file',
                           str(out)]) == EXIT_ERROR
    assert 'holds NaN or infinity' in capsys.readouterr().err and not out.exists()


def test_messages_name_the_fix_for_other_block_kinds(repo_root, tmp_path):
    _, model = random_checkpoint(repo_root, 'seg', tmp_path)
    qa_cfg = load_config(str(repo_root / CONFIGS['seg']))
    qa_cfg.model.backbone.block_type = 'qarepvgg'
    qa = init_model(qa_cfg)
    torch.save({'state_dict': qa.state_dict()}, tmp_path / 'qa.pth')
    with pytest.raises(CheckpointError, match="block_type='qarepvgg'"):
        init_model(str(repo_root / CONFIGS['seg']), str(tmp_path / 'qa.pth'))
    with pytest.raises(CheckpointError, match="block_type='repvgg'"):
        init_model(qa_cfg, str(tmp_path / 'seg.pth'))
    torch.save({'state_dict': fuse_repvgg_blocks(model).state_dict()}, tmp_path / 'fused.pth')
    with pytest.raises(CheckpointError, match='deploy config'):
        init_model(str(repo_root / CONFIGS['seg']), str(tmp_path / 'fused.pth'))


@pytest.mark.parametrize('kind', ['seg', 'ins'])
def test_stock_inference_apis_run_the_converted_files(kind, repo_root, tmp_path, image):
    """mmseg's init_model + inference_model and mmdet's init_detector + inference_detector load our
    configs (custom_imports) and the converter's deploy pair themselves, and predict the same."""
    train_ckpt, _ = random_checkpoint(repo_root, kind, tmp_path)
    train_cfg = str(repo_root / CONFIGS[kind])
    result = convert_whole_model(train_cfg, train_ckpt)
    deploy_cfg, deploy_ckpt = write_conversion(result, train_cfg, train_ckpt, str(tmp_path / 'out'))
    if kind == 'seg':
        from mmseg.apis import inference_model
        from mmseg.apis import init_model as init_stock
    else:
        from mmdet.apis import inference_detector as inference_model
        from mmdet.apis import init_detector as init_stock
    train, fused = (inference_model(init_stock(c, k, device='cpu'), image)
                    for c, k in ((train_cfg, train_ckpt), (deploy_cfg, deploy_ckpt)))
    if kind == 'seg':
        assert train.pred_sem_seg.data.shape[-2:] == (96, 96)
        assert torch.equal(train.pred_sem_seg.data, fused.pred_sem_seg.data)
    else:
        a, b = train.pred_instances, fused.pred_instances
        assert len(a) > 0 and torch.equal(a.labels, b.labels)
        assert torch.allclose(a.bboxes, b.bboxes, atol=1e-3)
        assert a.masks.shape[-2:] == (96, 96)
        assert (a.masks != b.masks).float().mean() < 1e-3  # thresholded at 0.5: a pixel may flip
