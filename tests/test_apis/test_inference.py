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
from repvgg_mm.utils.compare import NonFiniteError
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


def test_image_demo_bad_images_are_one_line(repo_root, tmp_path, capsys, image):
    main = runpy.run_path(str(repo_root / 'demo' / 'image_demo.py'))['main']
    text = tmp_path / 'notes.png'
    text.write_text('not an image')
    empty = tmp_path / 'empty.png'
    empty.write_bytes(b'')
    truncated = tmp_path / 'truncated.jpg'
    Image.open(image).save(tmp_path / 'whole.jpg', quality=90)
    truncated.write_bytes((tmp_path / 'whole.jpg').read_bytes()[:600])
    Image.fromarray(np.zeros((1, 1, 3), dtype=np.uint8)).save(tmp_path / 'pixel.png')
    for img, message in ((tmp_path / 'missing.png', 'image not found'),
                         (tmp_path / 'pixel.png', 'is 1x1 pixels'),
                         (text, 'cannot read image'), (tmp_path, 'is a folder'),
                         (empty, 'is empty (0 bytes)'), (truncated, 'truncated')):
        assert run_tool(main, [str(img), str(repo_root / CONFIGS['seg']), 'w.pth']) == EXIT_ERROR
        err = capsys.readouterr().err
        assert err.startswith('error: ') and err.count('\n') == 1 and message in err, err
        assert err.count('error:') == 1, err


def test_image_demo_never_writes_over_its_inputs(repo_root, tmp_path, capsys, image):
    path, _ = random_checkpoint(repo_root, 'seg', tmp_path)
    (tmp_path / 'link.pth').symlink_to(path)
    main = runpy.run_path(str(repo_root / 'demo' / 'image_demo.py'))['main']
    before = {p: open(p, 'rb').read() for p in (path, image)}
    for out in (path, image, str(tmp_path / 'link.pth'), str(repo_root / CONFIGS['seg'])):
        assert run_tool(main, [image, str(repo_root / CONFIGS['seg']), path,
                               '--out-file', out]) == EXIT_ERROR
        err = capsys.readouterr().err
        assert 'it is an input of this run' in err and err.count('\n') == 1, err
    assert {p: open(p, 'rb').read() for p in before} == before


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


@pytest.mark.parametrize('options', [['model.backbone.arch=Z9'],
                                     ['model.backbone.online_fusion=maybe']])
def test_bad_model_values_are_one_line(options, repo_root, tmp_path, image, capsys):
    path, _ = random_checkpoint(repo_root, 'seg', tmp_path)
    main = runpy.run_path(str(repo_root / 'demo' / 'image_demo.py'))['main']
    assert run_tool(main, [image, str(repo_root / CONFIGS['seg']), path,
                           '--cfg-options', *options]) == EXIT_ERROR
    err = capsys.readouterr().err
    assert err.startswith('error: cannot build the model') and err.count('\n') == 1, err


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
