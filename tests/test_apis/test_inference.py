"""Inference the OpenMMLab way: our configs and checkpoints (training-time or fused) in mmseg's and
mmdet's inferencers, weights read safely and strictly, and demo/image_demo.py on top."""
import runpy

import numpy as np
import pytest
import torch
from PIL import Image

from repvgg_mm.apis import init_inferencer, init_model
from repvgg_mm.conversion.whole_model import convert_whole_model, write_conversion
from repvgg_mm.models.utils import fuse_repvgg_blocks, randomize_bn_
from repvgg_mm.utils.cli import run_tool
from repvgg_mm.utils.config import load_config
from repvgg_mm.utils.errors import EXIT_ERROR, CheckpointError

CONFIGS = {'seg': 'configs/toy/pspnet_repvgg_a0_toy.py',
           'det': 'configs/toy/retinanet_repvgg_a0_toy.py',
           'ins': 'configs/toy/mask_rcnn_repvgg_a0_toy.py'}


@pytest.fixture(scope='module')
def image(tmp_path_factory):
    rng = np.random.default_rng(0)
    path = tmp_path_factory.mktemp('img') / 'image.png'
    Image.fromarray(rng.integers(0, 256, size=(96, 96, 3), dtype=np.uint8)).save(path)
    return str(path)


def random_checkpoint(repo_root, kind, tmp_path, fused=False):
    model = randomize_bn_(init_model(str(repo_root / CONFIGS[kind])),
                          torch.Generator().manual_seed(0))
    if fused:
        model = fuse_repvgg_blocks(model)
    path = tmp_path / f'{kind}{"_fused" if fused else ""}.pth'
    torch.save({'state_dict': model.state_dict(), 'meta': {}}, path)
    return str(path), model


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


@pytest.mark.parametrize('kind', sorted(CONFIGS))
def test_image_demo_writes_a_png(kind, repo_root, tmp_path, image, capsys):
    path, _ = random_checkpoint(repo_root, kind, tmp_path)
    main = runpy.run_path(str(repo_root / 'demo' / 'image_demo.py'))['main']
    out = tmp_path / 'drawn.png'
    assert run_tool(main, [image, str(repo_root / CONFIGS[kind]), path, '--out-file',
                           str(out)]) == 0
    assert out.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
    assert Image.open(out).size == (96, 96)


def test_image_demo_bad_images_are_one_line(repo_root, tmp_path, capsys):
    main = runpy.run_path(str(repo_root / 'demo' / 'image_demo.py'))['main']
    text = tmp_path / 'notes.png'
    text.write_text('not an image')
    for img, message in ((tmp_path / 'missing.png', 'image not found'),
                         (text, 'cannot read image')):
        assert run_tool(main, [str(img), str(repo_root / CONFIGS['seg']), 'w.pth']) == EXIT_ERROR
        err = capsys.readouterr().err
        assert err.startswith('error: ') and err.count('\n') == 1 and message in err


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
