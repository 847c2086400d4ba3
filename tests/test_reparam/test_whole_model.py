"""Whole-model conversion (library): the Python API, nested/shared blocks, the evidence checks,
checkpoint layouts (DDP, Runner, EMA), a SyncBN Faster R-CNN. The dilated SyncBN PSPNet and the
EMA-trained RetinaNet are converted in test_convert_whole_model_stock.py (and scored by the stock
scripts there); the builders here are shared by test_convert_whole_model_*.py."""
import copy
import os

import pytest
import torch
from mmengine.config import Config
from mmengine.structures import InstanceData
from torch import nn

from repvgg_mm.checkpoint import CheckpointError, load_state_dict_strict, safe_load, strip_prefix
from repvgg_mm.models import RepVGGBlock
from repvgg_mm.reparam import (ConversionError, check_equivalence, check_untouched_tensors,
                               convert_whole_model, fused_state_dict, iter_repvgg_blocks,
                               repvgg_model_convert, select_training_weights, whole_model_convert,
                               write_conversion)
from repvgg_mm.reparam.equivalence import eval_copy, make_sample, network_outputs, outputs_difference
from repvgg_mm.reparam.model_config import build_model, deploy_config
from repvgg_mm.reparam.verify import randomize_bn_

# stem 16, stages 16/32/64/256; SE and a grouped layer exercise every part of a block.
TINY_ARCH = dict(num_blocks=(1, 2, 2, 1), width_factor=(0.25, 0.25, 0.25, 0.5))
TINY_SE_GROUPED = dict(TINY_ARCH, use_se=True, group_layer_map={3: 2})
IMPORTS = dict(imports=['repvgg_mm.models'], allow_failed_imports=False)
MEAN_STD = dict(mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375], bgr_to_rgb=True)
SAMPLE = (64, 64)
# The models here are tiny: one intra-op thread runs them in milliseconds, while two threads on a
# busy 2-core machine hand work back and forth for hundreds of milliseconds per forward pass.
ONE_THREAD_ENV = dict(OMP_NUM_THREADS='1', MKL_NUM_THREADS='1')


@pytest.fixture(scope='module', autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def classifier_cfg(arch=TINY_SE_GROUPED, num_classes=5, **backbone):
    return dict(default_scope='repvgg_mm', custom_imports=IMPORTS, model=dict(
        type='ImageClassifier', backbone=dict(type='RepVGG', arch=arch, **backbone),
        head=dict(type='LinearClsHead', num_classes=num_classes)))


def pspnet_cfg(norm='SyncBN', num_classes=4):
    norm_cfg = dict(type=norm, requires_grad=True)
    return dict(default_scope='mmseg', custom_imports=IMPORTS, model=dict(
        type='EncoderDecoder',
        data_preprocessor=dict(type='SegDataPreProcessor', pad_val=0, seg_pad_val=255, **MEAN_STD),
        backbone=dict(type='repvgg_mm.RepVGG', arch=TINY_ARCH, out_indices=(2, 3),
                      strides=(2, 2, 1, 1), dilations=(1, 1, 2, 4), norm_cfg=norm_cfg),
        decode_head=dict(type='PSPHead', in_channels=256, in_index=1, channels=16,
                         pool_scales=(1, 2, 3, 6), num_classes=num_classes, norm_cfg=norm_cfg,
                         align_corners=False,
                         loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False)),
        auxiliary_head=dict(type='FCNHead', in_channels=64, in_index=0, channels=8, num_convs=1,
                            num_classes=num_classes, norm_cfg=norm_cfg, align_corners=False,
                            loss_decode=dict(type='CrossEntropyLoss', loss_weight=0.4)),
        train_cfg=dict(), test_cfg=dict(mode='whole')))


def _det_preprocessor():
    return dict(type='DetDataPreprocessor', pad_size_divisor=32, **MEAN_STD)


def _box_coder(stds=(1.0, 1.0, 1.0, 1.0)):
    return dict(type='DeltaXYWHBBoxCoder', target_means=[0.0] * 4, target_stds=list(stds))


def retinanet_cfg(norm='BN', num_classes=3):
    return dict(default_scope='mmdet', custom_imports=IMPORTS, model=dict(
        type='RetinaNet', data_preprocessor=_det_preprocessor(),
        backbone=dict(type='repvgg_mm.RepVGG', arch=TINY_ARCH, out_indices=(1, 2, 3),
                      frozen_stages=0, norm_eval=True, norm_cfg=dict(type=norm)),
        neck=dict(type='FPN', in_channels=[32, 64, 256], out_channels=16, start_level=0,
                  add_extra_convs='on_input', num_outs=5),
        bbox_head=dict(
            type='RetinaHead', num_classes=num_classes, in_channels=16, stacked_convs=1,
            feat_channels=16,
            anchor_generator=dict(type='AnchorGenerator', octave_base_scale=4,
                                  scales_per_octave=3, ratios=[0.5, 1.0, 2.0],
                                  strides=[8, 16, 32, 64, 128]),
            bbox_coder=_box_coder(),
            loss_cls=dict(type='FocalLoss', use_sigmoid=True, gamma=2.0, alpha=0.25),
            loss_bbox=dict(type='L1Loss')),
        test_cfg=dict(nms_pre=200, min_bbox_size=0, score_thr=0.05,
                      nms=dict(type='nms', iou_threshold=0.5), max_per_img=20)))


def faster_rcnn_cfg(norm='SyncBN', num_classes=3):
    return dict(default_scope='mmdet', custom_imports=IMPORTS, model=dict(
        type='FasterRCNN', data_preprocessor=_det_preprocessor(),
        backbone=dict(type='repvgg_mm.RepVGG', arch=TINY_ARCH, out_indices=(0, 1, 2, 3),
                      frozen_stages=1, norm_eval=True, norm_cfg=dict(type=norm)),
        neck=dict(type='FPN', in_channels=[16, 32, 64, 256], out_channels=16, num_outs=5),
        rpn_head=dict(
            type='RPNHead', in_channels=16, feat_channels=16,
            anchor_generator=dict(type='AnchorGenerator', scales=[8], ratios=[0.5, 1.0, 2.0],
                                  strides=[4, 8, 16, 32, 64]),
            bbox_coder=_box_coder(), loss_cls=dict(type='CrossEntropyLoss', use_sigmoid=True),
            loss_bbox=dict(type='L1Loss')),
        roi_head=dict(
            type='StandardRoIHead',
            bbox_roi_extractor=dict(type='SingleRoIExtractor',
                                    roi_layer=dict(type='RoIAlign', output_size=7, sampling_ratio=0),
                                    out_channels=16, featmap_strides=[4, 8, 16, 32]),
            bbox_head=dict(type='Shared2FCBBoxHead', in_channels=16, fc_out_channels=32,
                           roi_feat_size=7, num_classes=num_classes,
                           bbox_coder=_box_coder((0.1, 0.1, 0.2, 0.2)),
                           loss_cls=dict(type='CrossEntropyLoss'), loss_bbox=dict(type='L1Loss'))),
        train_cfg=None,
        test_cfg=dict(
            rpn=dict(nms_pre=200, max_per_img=50, nms=dict(type='nms', iou_threshold=0.7),
                     min_bbox_size=0),
            rcnn=dict(score_thr=0.05, nms=dict(type='nms', iou_threshold=0.5), max_per_img=20))))


def write_config(cfg_dict: dict, path) -> str:
    Config(copy.deepcopy(cfg_dict)).dump(str(path))
    return str(path)


def trained_model(cfg_dict: dict, seed: int = 0) -> nn.Module:
    """The model of a config with 'trained' weights: random convs and random BN statistics."""
    torch.manual_seed(seed)
    model = build_model(Config(copy.deepcopy(cfg_dict)))
    return randomize_bn_(model, torch.Generator().manual_seed(seed)).eval()


def runner_checkpoint(state: dict, ddp: bool = False, **extra) -> dict:
    """A checkpoint as mmengine's Runner writes it (optionally from a DDP-wrapped model)."""
    prefix = 'module.' if ddp else ''
    return dict(meta=dict(epoch=3, iter=120, dataset_meta=dict(classes=('a', 'b', 'c'))),
                state_dict={prefix + k: v for k, v in state.items()},
                optimizer=dict(state={}, param_groups=[]), message_hub=dict(), **extra)


def make_case(tmp_path, name: str, cfg_dict: dict, checkpoint=None, seed: int = 0):
    """Write ``name.py`` and ``name.pth`` (a Runner file unless ``checkpoint`` maps the state)."""
    model = trained_model(cfg_dict, seed)
    state = model.state_dict()
    ckpt = runner_checkpoint(state) if checkpoint is None else checkpoint(state)
    ckpt_path = tmp_path / f'{name}.pth'
    torch.save(ckpt, ckpt_path)
    return write_config(cfg_dict, tmp_path / f'{name}.py'), str(ckpt_path), model


def load_written(cfg_path: str, ckpt_path: str) -> nn.Module:
    """Build the written deploy config and load the written checkpoint strictly ('module.' dropped)."""
    model = build_model(Config.fromfile(cfg_path))
    state = strip_prefix(safe_load(ckpt_path)['state_dict'], prefix=None)
    load_state_dict_strict(model, state, source=ckpt_path)
    return model.eval()


def assert_same_outputs(train_model, deploy_model, shape=SAMPLE, tol=1e-4):
    sample = make_sample(train_model, shape, seed=1)
    report = check_equivalence(train_model, deploy_model, sample, tolerance=tol)
    assert report.ok, report.failure()
    return report


# ---------------------------------------------------------------- Python API (original README)

def test_repvgg_model_convert_and_whole_model_convert(tmp_path):
    cfg = classifier_cfg()
    train = trained_model(cfg)
    x = torch.randn(2, 3, 40, 56)
    fused = repvgg_model_convert(train, save_path=str(tmp_path / 'fused.pth'))
    assert fused is not train and all(not b.deploy for _, b in iter_repvgg_blocks(train))
    assert all(b.deploy for _, b in iter_repvgg_blocks(fused))
    deploy_cfg, flagged = deploy_config(Config(cfg))
    assert flagged == ['model.backbone'] and deploy_cfg.model.backbone.deploy is True
    deploy = build_model(deploy_cfg).eval()
    deploy.load_state_dict(torch.load(tmp_path / 'fused.pth', weights_only=True))  # flat, strict
    assert outputs_difference(train(x), deploy(x)).max_rel < 1e-5

    deploy2 = whole_model_convert(train, build_model(deploy_cfg).eval())
    assert outputs_difference(train(x), deploy2(x)).max_rel < 1e-5
    with pytest.raises(ConversionError, match='does not match'):
        whole_model_convert(train, build_model(Config(cfg)))  # not a deploy model
    in_place = repvgg_model_convert(train, do_copy=False)
    assert in_place is train and all(b.deploy for _, b in iter_repvgg_blocks(train))


class NestedNet(nn.Module):
    """Blocks in a ModuleDict, a ModuleList and a Sequential; one block is shared (called twice),
    one sits in a branch that the forward pass never uses."""

    def __init__(self, deploy=False):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8))
        self.parts = nn.ModuleDict(dict(
            body=nn.ModuleList([RepVGGBlock(8, 8, deploy=deploy),
                                nn.Sequential(RepVGGBlock(8, 16, stride=2, use_se=True,
                                                          se_ratio=4, deploy=deploy))]),
            unused=RepVGGBlock(16, 16, groups=4, deploy=deploy)))
        self.shared = RepVGGBlock(16, 16, dilation=2, deploy=deploy)
        self.head = nn.Conv2d(16, 2, 1)

    def forward(self, x):
        x = self.parts['body'][1](self.parts['body'][0](self.stem(x)))
        return self.head(self.shared(self.shared(x)))


def test_nested_shared_and_unused_blocks(generator):
    train = randomize_bn_(NestedNet(), generator).eval()
    state, names = fused_state_dict(train)
    assert sorted(names) == ['parts.body.0', 'parts.body.1.0', 'parts.unused', 'shared']
    deploy = NestedNet(deploy=True).eval()
    deploy.load_state_dict(state, strict=True)
    # stem conv (2) + BN (5), the SE layer inside a block (4), head (2)
    assert check_untouched_tensors(train.state_dict(), deploy.state_dict(), names) == 13
    report = assert_same_outputs(train, deploy, (20, 24))
    calls = [(b.name, b.call) for b in report.blocks]
    assert ('shared', 1) in calls and ('parts.unused', -1) in calls  # second call; probed alone


def test_first_diverging_block_is_named(generator):
    train = randomize_bn_(NestedNet(), generator).eval()
    deploy = whole_model_convert(train, NestedNet(deploy=True).eval())
    with torch.no_grad():
        deploy.parts['body'][1][0].branch_fused.bias.add_(0.5)  # a broken fuse
    sample = torch.randn(1, 3, 16, 16)
    report = check_equivalence(train, deploy, sample)
    assert not report.ok and report.first_diverging_block().name == 'parts.body.1.0'
    assert "first diverging block 'parts.body.1.0'" in report.failure()
    # The tolerance is configurable: float32 rounding alone exceeds 1e-12.
    tight = check_equivalence(train, whole_model_convert(train, NestedNet(deploy=True).eval()),
                              sample, tolerance=1e-12)
    assert not tight.ok and tight.first_diverging_block().name == 'parts.body.0'


def test_untouched_tensors_must_be_bit_identical(generator):
    train = randomize_bn_(NestedNet(), generator).eval()
    state, names = fused_state_dict(train)
    changed = dict(state, **{'head.bias': state['head.bias'] + 1e-7})
    with pytest.raises(ConversionError, match="changed, e.g. 'head.bias'"):
        check_untouched_tensors(train.state_dict(), changed, names)
    dropped = {k: v for k, v in state.items() if k != 'stem.1.running_var'}
    with pytest.raises(ConversionError, match='outside the fused blocks'):
        check_untouched_tensors(train.state_dict(), dropped, names)


# ---------------------------------------------------------------- checkpoint layouts

def _state():
    return {'backbone.w': torch.ones(2), 'head.b': torch.zeros(1)}


def _shifted(state, delta):
    return {k: v + delta for k, v in state.items()}


LAYOUT_CASES = {
    # name: (checkpoint, weights, expected offset of the selected tensors from _state())
    'flat': (lambda s: s, 'auto', 0),
    'flat DDP': (lambda s: {'module.' + k: v for k, v in s.items()}, 'auto', 0),
    'Runner': (lambda s: runner_checkpoint(s), 'auto', 0),
    'Runner DDP': (lambda s: runner_checkpoint(s, ddp=True), 'auto', 0),
    "nested under 'model'": (lambda s: dict(model=s, epoch=3), 'auto', 0),
    # mmengine EMAHook: 'state_dict' holds the average, 'ema_state_dict' the raw weights.
    'EMAHook auto': (lambda s: runner_checkpoint(s, ema_state_dict=dict(
        steps=torch.tensor(9), **{'module.' + k: v for k, v in _shifted(s, 5).items()})), 'auto', 0),
    'EMAHook ema': (lambda s: runner_checkpoint(s, ema_state_dict=dict(
        steps=torch.tensor(9), **{'module.' + k: v for k, v in _shifted(s, 5).items()})), 'ema', 0),
    'EMAHook raw': (lambda s: runner_checkpoint(s, ema_state_dict=dict(
        steps=torch.tensor(9), **{'module.' + k: v for k, v in _shifted(s, 5).items()})), 'raw', 5),
    # timm / other trainers: a separate averaged copy.
    'timm ema': (lambda s: dict(state_dict=s, state_dict_ema=_shifted(s, 2)), 'ema', 2),
    'timm raw': (lambda s: dict(state_dict=s, state_dict_ema=_shifted(s, 2)), 'raw', 0),
    # An ExponentialMovingAverage held inside the model: 'ema_model.module.' / 'ema_model.steps'.
    'embedded auto': (lambda s: dict(s, **{'ema_model.steps': torch.tensor(3)}, **{
        'ema_model.module.' + k: v for k, v in _shifted(s, 3).items()}), 'auto', 0),
    'embedded ema': (lambda s: runner_checkpoint(dict(s, **{'ema_model.steps': torch.tensor(3)}, **{
        'ema_model.module.' + k: v for k, v in _shifted(s, 3).items()}), ddp=True), 'ema', 3),
    # mmcv 1.x EMAHook buffers 'ema_<key with _>' (raw weights after its swap).
    'mmcv ema_ buffers raw': (lambda s: dict(s, **{
        'ema_' + k.replace('.', '_'): v for k, v in _shifted(s, 4).items()}), 'raw', 4),
    'mmcv ema_ buffers ema': (lambda s: dict(s, **{
        'ema_' + k.replace('.', '_'): v for k, v in _shifted(s, 4).items()}), 'ema', 0),
}


@pytest.mark.parametrize('case', sorted(LAYOUT_CASES))
def test_checkpoint_layouts(case):
    make, weights, offset = LAYOUT_CASES[case]
    selected = select_training_weights(make(_state()), weights)
    assert set(selected.state) == set(_state())
    for key, value in _state().items():
        assert torch.equal(selected.state[key], value + offset), case
    if case.startswith('Runner'):
        assert selected.meta['epoch'] == 3 and 'optimizer' in selected.dropped_entries


def test_checkpoint_layout_errors():
    with pytest.raises(CheckpointError, match='holds no EMA weights'):
        select_training_weights(runner_checkpoint(_state()), 'ema')
    with pytest.raises(CheckpointError, match='not a checkpoint'):
        select_training_weights([torch.ones(1)])
    with pytest.raises(CheckpointError, match='holds no weights'):
        select_training_weights(dict(meta=dict(), state_dict=dict()))


# ---------------------------------------------------------------- dense prediction, end to end

def convert_and_check(tmp_path, name, cfg_dict, checkpoint=None, **kwargs):
    cfg_path, ckpt_path, train = make_case(tmp_path, name, cfg_dict, checkpoint)
    result = convert_whole_model(cfg_path, ckpt_path, sample_shape=SAMPLE, **kwargs)
    out_cfg, out_ckpt = write_conversion(result, cfg_path, ckpt_path, str(tmp_path / f'{name}_out'))
    assert sorted(os.listdir(tmp_path / f'{name}_out')) == sorted(
        [f'{name}_deploy.py', f'{name}_deploy.pth'])
    deploy = load_written(out_cfg, out_ckpt)
    assert all(b.deploy for _, b in iter_repvgg_blocks(deploy))
    assert_same_outputs(train, deploy)  # the written files reproduce the training-time model
    rec = result.record
    assert rec['blocks_fused'] == len(list(iter_repvgg_blocks(train))) == 7
    assert rec['params_after'] < rec['params_before'] and rec['max_rel_diff'] < 1e-4
    assert safe_load(out_ckpt)['meta']['repvgg_mm_conversion']['deploy_config'] == f'{name}_deploy.py'
    return train, deploy, result, out_cfg


def test_faster_rcnn_syncbn_flat_ddp_file(tmp_path):
    train, deploy, result, _ = convert_and_check(
        tmp_path, 'frcnn', faster_rcnn_cfg(norm='SyncBN'),
        checkpoint=lambda s: {'module.' + k: v for k, v in s.items()})
    assert result.record['source_layout'] == "flat state dict, 'module.' keys"
    feats, rpn_out, roi_out = network_outputs(eval_copy(deploy), make_sample(deploy, SAMPLE),
                                              proposals=FIXED_PROPOSALS)
    assert len(feats) == 5 and roi_out[0].shape[-1] == 3 + 1


FIXED_PROPOSALS = [InstanceData(bboxes=torch.tensor([[2., 3., 40., 50.], [10., 10., 60., 30.]]))]


def test_unscoped_nested_deploy_flags():
    cfg = Config(dict(default_scope='repvgg_mm', model=dict(
        type='Wrapper', parts=[dict(type='RepVGGBlock', in_channels=4, out_channels=4),
                               dict(blocks=(dict(type='repvgg_mm.RepVGG', arch='A0',
                                                 init_cfg=dict(type='Pretrained', checkpoint='x')),
                                            ))],
        other=dict(type='mmseg.RepVGG'), conv=dict(type='Conv2d'))))
    deploy_cfg, flagged = deploy_config(cfg)
    assert flagged == ['model.parts[0]', 'model.parts[1].blocks[0] (Pretrained init_cfg dropped)']
    assert deploy_cfg.model.parts[1]['blocks'][0]['init_cfg'] is None
    assert 'deploy' not in deploy_cfg.model.other and 'deploy' not in deploy_cfg.model.conv


# ---------------------------------------------------------------- shared by test_convert_*.py

def run_concurrently(commands, cwd, timeout=300):
    """Run command lines (lists) at once; return ``(returncode, stdout, stderr)`` per command."""
    import subprocess
    env = dict(os.environ, **ONE_THREAD_ENV)
    procs = [subprocess.Popen(cmd, cwd=str(cwd), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, env=env) for cmd in commands]
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=timeout)
        results.append((proc.returncode, out, err))
    return results
