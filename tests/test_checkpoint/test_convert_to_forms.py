"""RepVGG weights (ours, original, timm, mmpretrain files) start the linear-scaling and the
fused+BN backbones through ``init_cfg=dict(type='Pretrained')``: the same function as the source
model in eval mode, strict about everything else."""
import copy

import pytest
import torch
from mmengine.config import Config

from repvgg_mm.checkpoint import export_state_dict
from repvgg_mm.models import RepVGG
from repvgg_mm.models.utils import fuse_repvgg_blocks
from repvgg_mm.utils.compare import NonFiniteError
from repvgg_mm.utils.config import build_model
from repvgg_mm.utils.errors import CheckpointError
from tests.helpers import (
    WRAPPERS,
    arch_of,
    classifier_state,
    outputs_rel_error,
    pspnet_cfg,
    randomize_,
)

FORMS = ('linear', 'fused_bn')
LAYOUTS = ('repvgg_mm', 'original', 'timm', 'mmpretrain')


def source_model(arch, generator, dtype=torch.float32, deploy=False):
    """A 'trained' RepVGG (random BN statistics and biases) and a Linear head."""
    backbone = randomize_(RepVGG(arch_of(arch), out_indices=(0, 1, 2, 3)).to(dtype), generator)
    if deploy:
        backbone.switch_to_deploy()
    head = randomize_(torch.nn.Linear(backbone.stage_channels[-1], 10).to(dtype), generator)
    return backbone, head


def write(tmp_path, backbone, head, layout='repvgg_mm', wrapper='runner', name='src.pth'):
    state = export_state_dict(classifier_state(backbone, head), layout, 'classifier')
    path = tmp_path / name
    torch.save(WRAPPERS[wrapper](state), path)
    return str(path)


def converted(arch, form, path, dtype=torch.float32, **kwargs):
    model = RepVGG(arch_of(arch), out_indices=(0, 1, 2, 3), block_type=form,
                   init_cfg=dict(type='Pretrained', checkpoint=path, prefix='backbone.'),
                   **kwargs).to(dtype)
    model.init_weights()
    return model.eval()


def images(generator, dtype=torch.float32, size=32):
    return torch.randn(2, 3, size, size, generator=generator).to(dtype)


@pytest.mark.parametrize('layout', LAYOUTS)
@pytest.mark.parametrize('form', FORMS)
def test_every_layout_converts_exactly_in_float64(tmp_path, generator, form, layout):
    source, head = source_model('grouped-se', generator, torch.float64)
    wrapper = list(WRAPPERS)[LAYOUTS.index(layout)]
    model = converted('grouped-se', form, write(tmp_path, source, head, layout, wrapper),
                      torch.float64)
    x = images(generator, torch.float64)
    assert outputs_rel_error(source, model, x) < 1e-10
    blocks = [m for m in model.modules() if hasattr(m, 'post_norm')]
    assert len(blocks) == 8
    with torch.no_grad():  # and it fuses into the plain deploy RepVGG the source fuses into
        fused = fuse_repvgg_blocks(model)
        deploy = RepVGG(arch_of('grouped-se'), out_indices=(0, 1, 2, 3), deploy=True).double()
        deploy.load_state_dict(fused.state_dict(), strict=True)
    assert outputs_rel_error(source, deploy, x) < 1e-10


@pytest.mark.parametrize('form', FORMS)
def test_a0_converts_to_float32_precision(tmp_path, generator, form):
    source, head = source_model('A0', generator)
    model = converted('A0', form, write(tmp_path, source, head, 'original', 'flat'))
    assert outputs_rel_error(source, model, images(generator, size=48)) < 1e-6


@pytest.mark.parametrize('form', FORMS)
def test_training_mode_starts_near_the_source(tmp_path, generator, form):
    """The inserted BN's statistics come from the source's branch BNs: the mean of the branch sum
    exactly, its variance as if the branches were uncorrelated. On the data those statistics came
    from, a batch-statistics forward starts nearer the source than a BN that knows nothing."""
    source = RepVGG(arch_of('plain'), out_indices=(0, 1, 2, 3)).train()
    x = images(generator, size=64)
    with torch.no_grad():  # running statistics of this very data, as after training on it
        for module in source.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.momentum = None  # cumulative average
        for _ in range(3):
            source(x)
    source.eval()
    model = converted('plain', form, write(tmp_path, source, torch.nn.Linear(256, 10)))
    assert outputs_rel_error(source, model, x) < 1e-5  # float32 rounding (exactness: above)
    with torch.no_grad():
        kernel, _ = source.stem.get_equivalent_kernel_bias()
        u = torch.nn.functional.conv2d(x, kernel, stride=2, padding=1)  # the stem's branch sum
        norm = model.stem.post_norm
        assert torch.allclose(norm.running_mean, u.mean((0, 2, 3)), rtol=1e-4, atol=1e-4)
        ratio = norm.running_var / u.var((0, 2, 3))
        assert 0.5 < ratio.min() and ratio.max() < 2
        start = model.train()(x)[0]
        naive = copy.deepcopy(model)
        for module in naive.modules():  # an inserted BN that knows nothing of the data
            if isinstance(module, torch.nn.BatchNorm2d):
                module.reset_parameters()
        blind = naive.train()(x)[0]
        reference = source(x)[0]
    error, blind_error = (torch.dist(out, reference) / reference.norm() for out in (start, blind))
    assert torch.isfinite(error) and error < 0.75 * blind_error


def test_fused_file_starts_the_fused_bn_form_but_not_the_linear_one(tmp_path, generator):
    reference, head = source_model('se', generator, torch.float64)
    fused = copy.deepcopy(reference)
    fused.switch_to_deploy()
    path = write(tmp_path, fused, head, 'timm', 'ddp')
    model = converted('se', 'fused_bn', path, torch.float64)
    assert outputs_rel_error(reference, model, images(generator, torch.float64)) < 1e-10
    with pytest.raises(CheckpointError, match="no branches left.*block_type='fused_bn'"):
        converted('se', 'linear', path)


def test_linear_form_checkpoint_loads_as_it_is(tmp_path, generator):
    source, head = source_model('grouped', generator)
    first = converted('grouped', 'linear', write(tmp_path, source, head))
    path = tmp_path / 'linear.pth'
    torch.save({'state_dict': {f'backbone.{k}': v for k, v in first.state_dict().items()}}, path)
    again = converted('grouped', 'linear', str(path))
    assert outputs_rel_error(first, again, images(generator)) == 0


def test_strict_about_the_arch(tmp_path, generator):
    source, head = source_model('plain', generator)
    path = write(tmp_path, source, head, 'mmpretrain')
    with pytest.raises(CheckpointError, match=r"into the 'linear' blocks.*block stem: .*"
                                              r'with another shape: branch_1x1.bn.bias'):
        converted(dict(arch_of('plain'), width_factor=(0.5, 0.25, 0.25, 0.5)), 'linear', path)
    with pytest.raises(CheckpointError, match='block stage2.2: .*missing: branch_1x1.bn.bias'):
        converted(dict(arch_of('plain'), num_blocks=(2, 3, 2, 1)), 'fused_bn', path)
    with pytest.raises(CheckpointError, match='unexpected: stage2.1.branch_1x1'):
        converted(dict(arch_of('plain'), num_blocks=(2, 1, 2, 1)), 'fused_bn', path)


def test_non_finite_results_are_refused(tmp_path, generator):
    source, head = source_model('plain', generator)
    with torch.no_grad():
        source.stage2[0].branch_1x1.bn.running_var[3] = -5.0  # sqrt of a negative variance
    path = write(tmp_path, source, head)
    with pytest.raises(NonFiniteError, match="'stage2.0.conv.weight' holds NaN"):
        converted('plain', 'fused_bn', path)


def test_segmentor_config_switch_converts_a_published_file(tmp_path, generator):
    """mmseg's PSPNet (output stride 8: dilated stages) with block_type='linear' | 'fused_bn' and
    the original-layout file of a RepVGG classifier: the backbone computes the source's
    function."""
    cfg = pspnet_cfg(norm='BN')
    geometry = {k: cfg['model']['backbone'][k] for k in ('out_indices', 'strides', 'dilations')}
    trained, head = source_model('plain', generator)
    source = RepVGG(arch_of('plain'), **geometry)
    source.load_state_dict(trained.state_dict())
    path = write(tmp_path, source, head, 'original', 'flat', 'RepVGG-tiny-train.pth')
    x = images(generator)
    for form in FORMS:
        cfg['model']['backbone'].update(
            block_type=form, init_cfg=dict(type='Pretrained', checkpoint=path, prefix='backbone.'))
        segmentor = build_model(Config(copy.deepcopy(cfg)))
        segmentor.init_weights()
        assert segmentor.backbone.block_type == form
        assert outputs_rel_error(source.eval(), segmentor.backbone.eval(), x) < 1e-6
