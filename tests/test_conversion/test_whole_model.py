"""Whole-model conversion (library): the Python API, nested/shared blocks, the evidence checks,
checkpoint layouts (DDP, Runner, EMA), a SyncBN Faster R-CNN. The dilated SyncBN PSPNet and the
EMA-trained RetinaNet are converted in test_convert_whole_model_stock.py (and scored by the stock
scripts there); the shared builders live in repvgg_mm.testing."""
import pytest
import torch
from mmengine.config import Config
from mmengine.structures import InstanceData
from torch import nn

from repvgg_mm.checkpoint import select_weights
from repvgg_mm.conversion import (
    check_equivalence,
    check_untouched_tensors,
    repvgg_model_convert,
    whole_model_convert,
)
from repvgg_mm.conversion.deploy_config import deploy_config
from repvgg_mm.conversion.equivalence import eval_copy, make_sample, network_outputs
from repvgg_mm.models import RepVGGBlock
from repvgg_mm.models.utils import fused_state_dict, iter_repvgg_blocks, randomize_bn_
from repvgg_mm.utils.compare import NonFiniteError, outputs_difference
from repvgg_mm.utils.config import build_model
from repvgg_mm.utils.errors import CheckpointError, ConversionError
from tests.helpers import (
    SAMPLE,
    assert_same_outputs,
    classifier_cfg,
    convert_and_check,
    faster_rcnn_cfg,
    runner_checkpoint,
    trained_model,
)

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
        steps=torch.tensor(9), **{'module.' + k: v for k, v in _shifted(s, 5).items()})),
        'auto', 0),
    'EMAHook ema': (lambda s: runner_checkpoint(s, ema_state_dict=dict(
        steps=torch.tensor(9), **{'module.' + k: v for k, v in _shifted(s, 5).items()})),
        'ema', 0),
    'EMAHook raw': (lambda s: runner_checkpoint(s, ema_state_dict=dict(
        steps=torch.tensor(9), **{'module.' + k: v for k, v in _shifted(s, 5).items()})),
        'raw', 5),
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
    selected = select_weights(make(_state()), weights)
    assert set(selected.state) == set(_state())
    for key, value in _state().items():
        assert torch.equal(selected.state[key], value + offset), case
    if case.startswith('Runner'):
        assert selected.meta['epoch'] == 3 and 'optimizer' in selected.dropped_entries


def test_checkpoint_layout_errors():
    with pytest.raises(CheckpointError, match='holds no EMA weights'):
        select_weights(runner_checkpoint(_state()), 'ema')
    with pytest.raises(CheckpointError, match='not a checkpoint'):
        select_weights([torch.ones(1)])
    with pytest.raises(CheckpointError, match='holds no weights'):
        select_weights(dict(meta=dict(), state_dict=dict()))


# ---------------------------------------------------------------- dense prediction, end to end

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


def test_equivalence_refuses_nan_and_names_the_first_block():
    """max(0.0, nan) is 0.0 in Python: a NaN must never pass the proof as 'max rel diff 0'."""
    train = trained_model(classifier_cfg())
    with torch.no_grad():
        train.backbone.stage2[1].branch_3x3.conv.weight[0, 0, 1, 1] = float('nan')
    fused = repvgg_model_convert(train)
    sample = make_sample(train, SAMPLE)
    with pytest.raises(NonFiniteError, match="output of RepVGG block 'backbone.stage2.1'"):
        check_equivalence(train, fused, sample)


def test_deploy_config_drops_pretrained_links():
    """mmseg's segmentor-level `pretrained` (copied into the backbone by mmseg) and the backbone's
    own would load training-time weights into fused blocks: both are dropped."""
    cfg = Config(dict(default_scope='mmseg', model=dict(
        type='EncoderDecoder', pretrained='in1k.pth',
        backbone=dict(type='repvgg_mm.RepVGG', arch='A0', pretrained='other.pth'),
        decode_head=dict(type='PSPHead', pretrained_like='kept'))))
    deploy_cfg, flagged = deploy_config(cfg)
    assert deploy_cfg.model.pretrained is None and deploy_cfg.model.backbone.pretrained is None
    assert deploy_cfg.model.backbone.deploy is True
    assert deploy_cfg.model.decode_head.pretrained_like == 'kept'
    assert flagged == ['model.backbone (pretrained dropped)', 'model.pretrained (dropped)']


def test_qarepvgg_classifier_converts_to_a_plain_deploy_config(tmp_path):
    """The whole-model converter needs nothing new for QARepVGG: the same deploy switch, the same
    proof, a deploy checkpoint that a deploy RepVGG of the same arch loads strictly."""
    cfg = classifier_cfg()
    cfg['model']['backbone']['block_type'] = 'qarepvgg'
    train, deploy, result, out_cfg = convert_and_check(tmp_path, 'qa', cfg)
    assert result.record['max_rel_diff'] < 1e-5
    plain = classifier_cfg()
    plain['model']['backbone']['deploy'] = True
    plain_model = build_model(Config(plain))
    plain_model.load_state_dict(deploy.state_dict(), strict=True)
