"""ONNX models scored by the stock tooling: the toy PSPNet, RetinaNet and Mask R-CNN configs (tiny
arch, random 'trained' weights) exported to model folders score and predict like the fused
PyTorch models through tools/test.py's body, and every bad input is one line.

Random weights give near-zero metrics, so the predictions themselves are compared (label maps,
boxes, scores, masks): ONNX Runtime and PyTorch differ by float rounding only.
"""
import os
import shutil

import mmengine
import numpy as np
import pytest
import torch
from mmdet.structures import DetDataSample
from PIL import Image

from repvgg_mm.apis import init_inferencer, init_model
from repvgg_mm.apis.deployment import export_model
from repvgg_mm.deploy import ONNXRuntimeModel, read_model_info
from repvgg_mm.deploy.model_folder import FP32_FILE, HEADS_FILE, INFO_FILE
from repvgg_mm.engine import test as run_test
from repvgg_mm.testing import TINY_ARCH
from repvgg_mm.utils.config import load_config
from repvgg_mm.utils.errors import UserError
from tests.helpers import runner_checkpoint, trained_model
from tests.helpers.toy_cases import file_sha256 as sha256

QUIET = {'log_level': 'WARNING'}

def scored(config, model, work_dir, out, **kwargs):
    return run_test(config, model, work_dir=str(work_dir), out=str(out), cfg_options=QUIET,
                    **kwargs)


def test_model_folders_describe_themselves(cases):
    expected = {'pspnet': ('segmentor', False), 'retinanet': ('single_stage_detector', True),
                'mask_rcnn': ('two_stage_detector', True)}
    for name, (_, checkpoint, folder) in cases.items():
        info = read_model_info(folder)
        kind, dynamic = expected[name]
        assert (info.kind, info.input['dynamic_hw']) == (kind, dynamic)
        assert info.source_checkpoint['sha256'] == sha256(checkpoint)
        assert info.check['checks'][0]['max_abs_diff'] <= 1e-4 * (
            1 + info.check['checks'][0]['output_scale'])
        classes = load_config(cases[name][0]).test_dataloader.dataset.metainfo.classes
        assert info.dataset_meta['classes'] == list(classes)
        assert len(info.dataset_meta['palette']) == len(classes)
        assert info.preprocess['type'] in ('SegDataPreProcessor', 'DetDataPreprocessor')
        files = {INFO_FILE, FP32_FILE, 'deploy_config.py'} | (
            {HEADS_FILE} if name == 'mask_rcnn' else set())
        assert set(os.listdir(folder)) == files
    # PSP pooling exports for the test size only; RetinaNet: 2 groups (scores, boxes) x 3 levels
    assert read_model_info(cases['pspnet'][2]).input['shape'] == ['batch', 3, 96, 96]
    assert read_model_info(cases['retinanet'][2]).output_groups == [3, 3]


def test_segmentor_scores_like_fused_pytorch(cases, tmp_path):
    config, checkpoint, folder = cases['pspnet']
    onnx = scored(config, folder, tmp_path / 'wd_onnx', tmp_path / 'onnx_png')
    torch_ = scored(config, checkpoint, tmp_path / 'wd_torch', tmp_path / 'torch_png', fuse=True)
    assert {'mIoU', 'aAcc'} <= set(onnx) and abs(onnx['mIoU'] - torch_['mIoU']) <= 0.01
    files = sorted(os.listdir(tmp_path / 'onnx_png'))
    assert len(files) == 3 and files == sorted(os.listdir(tmp_path / 'torch_png'))
    for file in files:
        a, b = (np.asarray(Image.open(tmp_path / d / file)) for d in ('onnx_png', 'torch_png'))
        assert a.shape == (96, 96) and (a != b).mean() <= 1e-3


@pytest.mark.parametrize('name', ['retinanet', 'mask_rcnn'])
def test_detector_scores_like_fused_pytorch(cases, tmp_path, name):
    config, checkpoint, folder = cases[name]
    onnx = scored(config, folder, tmp_path / 'wd_onnx', tmp_path / 'onnx.pkl')
    torch_ = scored(config, checkpoint, tmp_path / 'wd_torch', tmp_path / 'torch.pkl', fuse=True)
    assert 'coco/bbox_mAP' in onnx and onnx.keys() == torch_.keys()
    for key in onnx:  # bbox (and segm) mAP, within 0.001
        assert abs(onnx[key] - torch_[key]) <= 1e-3, key
    ours, theirs = (mmengine.load(str(tmp_path / f)) for f in ('onnx.pkl', 'torch.pkl'))
    assert len(ours) == len(theirs) == 3
    for a, b in zip(ours, theirs):
        a, b = a['pred_instances'], b['pred_instances']
        assert len(a['scores']) > 0 and torch.equal(a['labels'], b['labels'])
        assert torch.allclose(a['bboxes'], b['bboxes'], atol=1e-3)
        assert torch.allclose(a['scores'], b['scores'], atol=1e-4)
        if name == 'mask_rcnn':
            assert a['masks'] == b['masks']  # COCO RLEs of the binary masks


def test_apis_accept_onnx(cases, tmp_path):
    config, checkpoint, folder = cases['retinanet']
    model = init_model(config, folder)
    assert isinstance(model, ONNXRuntimeModel) and model.kind == 'single_stage_detector'
    assert model.model.backbone is None and model.model.neck is None  # run by ONNX Runtime
    reference = init_model(config, checkpoint)
    data = dict(inputs=[torch.randint(0, 255, (3, 96, 96), dtype=torch.uint8)],
                data_samples=[_det_sample()])
    ours, = model.test_step(data)
    theirs, = reference.test_step(data)
    assert torch.allclose(ours.pred_instances.scores, theirs.pred_instances.scores, atol=1e-4)
    seg_config, _, seg_folder = cases['pspnet']
    inferencer = init_inferencer(seg_config, seg_folder)
    image = np.random.default_rng(0).integers(0, 255, (96, 96, 3), dtype=np.uint8)
    result = inferencer(image, return_vis=True)
    assert isinstance(inferencer.model, ONNXRuntimeModel)
    assert result['predictions'].shape == (96, 96) and result['visualization'].shape == (
        96, 96, 3)


def _det_sample():
    return DetDataSample(metainfo=dict(img_shape=(96, 96), ori_shape=(96, 96),
                                       scale_factor=(1.0, 1.0), pad_shape=(96, 96)))


def test_bad_onnx_files_are_one_line_errors(cases, tmp_path):
    config, _, folder = cases['pspnet']
    real = os.path.join(folder, FP32_FILE)
    corrupt, truncated, not_onnx = (tmp_path / n for n in ('corrupt.onnx', 'cut.onnx', 'x.onnx'))
    corrupt.write_bytes(os.urandom(4096))
    truncated.write_bytes(open(real, 'rb').read()[:20000])
    not_onnx.write_text('model = dict(type="EncoderDecoder")\n')
    for path in (corrupt, truncated, not_onnx):
        before = sha256(path)
        with pytest.raises(UserError, match='ONNX'):
            init_model(config, str(path))
        assert sha256(path) == before
    with pytest.raises(UserError, match='is not an ONNX model'):  # through tools/test.py's body
        run_test(config, str(corrupt), work_dir=str(tmp_path / 'wd'), cfg_options=QUIET)
    with pytest.raises(UserError, match='not found'):
        init_model(config, str(tmp_path / 'missing.onnx'))
    with pytest.raises(UserError, match='no deploy.json'):
        init_model(config, str(tmp_path))  # a folder that is not a model folder


def test_onnx_of_another_config_is_refused(cases, repo_root, tmp_path):
    psp_config, _, psp_folder = cases['pspnet']
    retina_config, _, retina_folder = cases['retinanet']
    with pytest.raises(UserError, match='holds a single_stage_detector but the config builds a '
                                        'segmentor'):
        init_model(psp_config, retina_folder)
    bare = tmp_path / 'retina.onnx'  # no folder beside it: only the graph can tell
    shutil.copy(os.path.join(retina_folder, FP32_FILE), bare)
    with pytest.raises(UserError, match='does not fit the config'):
        init_model(psp_config, str(bare))
    more_classes = load_config(psp_config, {'model.decode_head.num_classes': 5})
    with pytest.raises(UserError, match=r'does not fit the config: .*1x4x12x12.*1x5x12x12'):
        init_model(more_classes, psp_folder)
    heads_missing = tmp_path / 'mask_rcnn.onnx'  # a two-stage graph without its head weights
    shutil.copy(os.path.join(cases['mask_rcnn'][2], FP32_FILE), heads_missing)
    with pytest.raises(UserError, match='two-stage detector.*model folder'):
        init_model(cases['mask_rcnn'][0], str(heads_missing))
    with pytest.raises(UserError, match='--fuse and --tta apply to PyTorch'):
        run_test(retina_config, retina_folder, fuse=True)


def test_a_model_kind_the_wrapper_does_not_serve(cases):
    """mmdet's SOLO (an instance segmentor, not a detector with a box head) is refused."""
    solo = dict(
        type='SOLO', data_preprocessor=dict(type='DetDataPreprocessor', pad_size_divisor=32),
        backbone=dict(type='repvgg_mm.RepVGG', arch=TINY_ARCH, out_indices=(1, 2, 3)),
        neck=dict(type='FPN', in_channels=[32, 64, 256], out_channels=16, num_outs=3),
        mask_head=dict(type='SOLOHead', num_classes=3, in_channels=16, feat_channels=16,
                       stacked_convs=1, strides=[8, 16, 32], scale_ranges=((1, 48), (24, 96),
                                                                          (48, 512)),
                       num_grids=[12, 8, 4], norm_cfg=dict(type='GN', num_groups=8),
                       loss_mask=dict(type='DiceLoss', loss_weight=3.0),
                       loss_cls=dict(type='FocalLoss', use_sigmoid=True, loss_weight=1.0)),
        test_cfg=dict(nms_pre=50, score_thr=0.1, mask_thr=0.5, filter_thr=0.05, kernel='gaussian',
                      sigma=2.0, max_per_img=10))
    with pytest.raises(UserError, match='does not serve SOLO models'):
        ONNXRuntimeModel(model=solo, onnx=cases['retinanet'][2], scope='mmdet')


def test_classifier_scores_like_fused_pytorch(repo_root, toy_root, tmp_path):
    """Our ImageClassifier: logits from ONNX, softmax and label by the head's predict_by_feat;
    a bare .onnx file is enough (nothing runs in PyTorch but the head's softmax)."""
    options = {'model.backbone.arch': {'_delete_': True, **TINY_ARCH},
               **{f'{split}_dataloader.dataset.data_root': str(toy_root)
                  for split in ('train', 'val', 'test')},
               **{f'{split}_dataloader.num_workers': 0 for split in ('train', 'val', 'test')}}
    cfg = load_config(str(repo_root / 'configs/toy/repvgg_a0_toy_cls.py'), options)
    config, checkpoint = str(tmp_path / 'cls.py'), str(tmp_path / 'cls.pth')
    cfg.dump(config)
    torch.save(runner_checkpoint(trained_model(cfg.to_dict()).state_dict()), checkpoint)
    export_model(config, checkpoint, str(tmp_path / 'cls_onnx'))
    assert read_model_info(str(tmp_path / 'cls_onnx')).kind == 'classifier'
    bare = str(tmp_path / 'cls.onnx')
    shutil.copy(tmp_path / 'cls_onnx' / FP32_FILE, bare)
    onnx = scored(config, bare, tmp_path / 'wd_onnx', tmp_path / 'onnx.pkl')
    torch_ = scored(config, checkpoint, tmp_path / 'wd_torch', tmp_path / 'torch.pkl', fuse=True)
    assert 'accuracy/top1' in onnx and onnx == torch_
    ours, theirs = (mmengine.load(str(tmp_path / f)) for f in ('onnx.pkl', 'torch.pkl'))
    assert len(ours) == len(theirs) == 10  # 5 classes x 2 val images
    for a, b in zip(ours, theirs):
        assert a['pred_label'] == b['pred_label']
        assert torch.allclose(a['pred_score'], b['pred_score'], atol=1e-5)
