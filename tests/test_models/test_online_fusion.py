"""Online fusion: with frozen BN a training-time block runs as one conv, with the same outputs and
the same gradients as its three branches (float64, random BN statistics), never a stale kernel."""
import copy

import pytest
import torch

from repvgg_mm.models import RepVGG, RepVGGBlock
from repvgg_mm.models.backbones import repvgg as repvgg_module
from repvgg_mm.models.utils import randomize_bn_
from repvgg_mm.testing import TINY_ARCH
from repvgg_mm.utils.compare import max_relative_error
from repvgg_mm.utils.config import build_model, load_config, replace_sync_bn
from tests.helpers import BLOCK_KINDS, TINY_ARCHS


def branch_calls(model):
    """Counts forward calls of the 3x3 branch convs (0 while a block runs fused online)."""
    calls = []
    for module in model.modules():
        if isinstance(module, RepVGGBlock) and not module.deploy:
            module.branch_3x3.conv.register_forward_hook(lambda *args: calls.append(1))
    return calls


def twin(model, online_fusion='off'):
    """A copy of ``model`` (same weights, same modes) with another online_fusion setting."""
    other = copy.deepcopy(model)
    for module in other.modules():
        if isinstance(module, RepVGGBlock):
            module.online_fusion = online_fusion
    return other


def outputs_and_grads(model, x):
    x = x.clone().requires_grad_(True)
    outputs = model(x)
    outputs = outputs if isinstance(outputs, tuple) else (outputs, )
    loss = sum((o * torch.linspace(-1, 1, o.numel(), dtype=o.dtype).reshape(o.shape)).sum()
               for o in outputs)
    loss.backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    return outputs, grads, x.grad.clone()


def assert_same(reference, online, x, tol):
    ref_out, ref_grads, ref_xgrad = outputs_and_grads(reference, x)
    calls = branch_calls(online)
    out, grads, xgrad = outputs_and_grads(online, x)
    assert not calls, 'online fusion did not engage'
    for a, b in zip(ref_out, out):
        assert max_relative_error(a, b) < tol
    assert set(grads) == set(ref_grads)
    largest = max(g.abs().max() for g in ref_grads.values())
    for name, grad in ref_grads.items():  # relative to the largest gradient, as the issue asks
        assert torch.isfinite(grads[name]).all()
        assert ((grads[name] - grad).abs().max() / largest).item() < tol, name
    assert max_relative_error(ref_xgrad, xgrad) < tol


@pytest.mark.parametrize('kind', sorted(BLOCK_KINDS))
def test_block_outputs_and_gradients_equal_the_branches(kind, generator):
    block = randomize_bn_(RepVGGBlock(**BLOCK_KINDS[kind]).double(), generator)
    block.train()
    for norm in block.norm_layers():
        norm.eval()  # frozen BN, the block itself in training mode
    x = torch.randn(2, BLOCK_KINDS[kind]['in_channels'], 9, 11, dtype=torch.float64,
                    generator=generator)
    assert_same(twin(block), block, x, tol=1e-10)


@pytest.mark.parametrize('arch', ['plain', 'grouped', 'se'])
@pytest.mark.parametrize('frozen_stages', [-1, 1])
def test_backbone_with_norm_eval_and_frozen_stages(arch, frozen_stages, generator):
    model = RepVGG(TINY_ARCHS[arch], out_indices=(0, 1, 2, 3), norm_eval=True,
                   frozen_stages=frozen_stages, strides=(2, 2, 1, 1), dilations=(1, 1, 2, 4))
    model = randomize_bn_(model.double(), generator).train()
    x = torch.randn(2, 3, 32, 40, dtype=torch.float64, generator=generator)
    assert_same(twin(model), model, x, tol=1e-10)


def test_float32_matches_within_float_noise(generator):
    model = randomize_bn_(RepVGG('A0', out_indices=(3, ), norm_eval=True, frozen_stages=1),
                          generator).train()
    x = torch.randn(1, 3, 64, 64, generator=generator)
    assert_same(twin(model), model, x, tol=1e-3)


def test_batch_statistics_keep_the_three_branches(generator):
    """norm_eval=False (segmentation configs that train BN): nothing changes."""
    model = randomize_bn_(RepVGG(TINY_ARCH), generator).train()
    calls = branch_calls(model)
    model(torch.randn(2, 3, 32, 32))
    assert len(calls) == 1 + sum(TINY_ARCH['num_blocks'])


def test_no_grad_and_off_keep_the_three_branches(generator):
    """Under no_grad the branches are the reference that fusing proofs compare with."""
    model = randomize_bn_(RepVGG(TINY_ARCH), generator).eval()
    calls = branch_calls(model)
    with torch.no_grad():
        model(torch.randn(1, 3, 32, 32))
    assert len(calls) == 1 + sum(TINY_ARCH['num_blocks'])
    off = RepVGG(TINY_ARCH, online_fusion='off').eval()
    calls = branch_calls(off)
    off(torch.randn(1, 3, 32, 32))
    assert len(calls) == 1 + sum(TINY_ARCH['num_blocks'])
    with pytest.raises(ValueError, match='online_fusion'):
        RepVGG(TINY_ARCH, online_fusion='always')


def test_frozen_block_never_serves_a_stale_kernel(generator):
    model = randomize_bn_(RepVGG(TINY_ARCH, frozen_stages=4, norm_eval=True), generator).train()
    reference = twin(model)
    x = torch.randn(1, 3, 32, 32, generator=generator)
    assert all(not p.requires_grad for p in model.parameters())
    for _ in range(3):
        with torch.enable_grad():
            assert max_relative_error(reference(x)[-1], model(x)[-1]) < 1e-5
        with torch.no_grad():  # in-place changes: an optimizer step, a loaded checkpoint
            for ref_p, p in zip(reference.parameters(), model.parameters()):
                noise = torch.randn(p.shape, generator=generator) * 0.1
                p.add_(noise)
                ref_p.add_(noise)
            model.stage1[0].branch_1x1.bn.running_var.mul_(1.5)
            reference.stage1[0].branch_1x1.bn.running_var.mul_(1.5)
    model.load_state_dict(reference.state_dict())  # a reload bumps every version counter too
    assert max_relative_error(reference(x)[-1], model(x)[-1]) < 1e-5


def _mul_data(model):
    model.stem.branch_3x3.conv.weight.data.mul_(1.5)


def _assign_data(model):
    weight = model.stage1[0].branch_1x1.conv.weight
    weight.data = weight.data * -2.0


def _running_var_data(model):
    model.stage1[1].branch_identity.running_var.data.mul_(3.0)


def _vector_to_parameters(model):
    vector = torch.nn.utils.parameters_to_vector(model.parameters())
    torch.nn.utils.vector_to_parameters(vector * 0.5, model.parameters())


@pytest.mark.parametrize('write', [_mul_data, _assign_data, _running_var_data,
                                   _vector_to_parameters])
def test_writes_that_bypass_version_counters_are_seen(write, generator):
    """``.data`` writes and vector_to_parameters bump no version counter: the kernel of a frozen
    block must still follow them (online fusion recomputes it every forward)."""
    model = RepVGG(TINY_ARCH, out_indices=(0, 1, 2, 3), frozen_stages=1, norm_eval=True)
    model = randomize_bn_(model.double(), generator).train()
    reference = twin(model)
    x = torch.randn(1, 3, 32, 32, dtype=torch.float64, generator=generator)
    model(x), reference(x)  # a first step with the old weights
    for m in (model, reference):
        write(m)
    assert_same(reference, model, x, tol=1e-10)
    for a, b in zip(reference(x), model(x)):
        assert max_relative_error(a, b) < 1e-10


def test_switching_train_and_eval_back_and_forth(generator):
    model = randomize_bn_(RepVGG(TINY_ARCH, norm_eval=False), generator)
    x = torch.randn(2, 3, 32, 32, generator=generator)
    for mode, online in ((True, False), (False, True), (True, False), (False, True)):
        model.train(mode)
        calls = branch_calls(model)
        model(x)
        assert (len(calls) == 0) == online
        for module in model.modules():
            if isinstance(module, RepVGGBlock):
                module.branch_3x3.conv._forward_hooks.clear()


def test_with_cp_trace_and_deploy_work_unchanged(generator):
    model = randomize_bn_(RepVGG(TINY_ARCH, norm_eval=True, with_cp=True), generator).train()
    x = torch.randn(1, 3, 32, 32, generator=generator)
    keys = set(model.state_dict())
    reference = twin(model)
    assert_same(reference, model, x, tol=1e-5)
    traced = torch.jit.trace(model, x, check_trace=False)
    assert max_relative_error(reference(x)[-1], traced(x)[-1]) < 1e-5
    assert set(model.state_dict()) == keys
    model.switch_to_deploy()
    with torch.no_grad():
        assert max_relative_error(reference(x)[-1], model(x)[-1]) < 1e-5


def test_the_log_says_how_many_blocks_run_online(monkeypatch):
    messages = []
    monkeypatch.setattr(repvgg_module, 'print_log', lambda message, **kwargs: messages.append(
        message))
    model = RepVGG(TINY_ARCH, norm_eval=True)
    model.train()
    model.train()  # said once per change, not at every epoch
    RepVGG(TINY_ARCH, frozen_stages=2).train()
    logged = '\n'.join(messages)
    assert logged.count('online fusion: 8/8 blocks (frozen BN)') == 1
    assert 'online fusion: 5/8 blocks (frozen BN)' in logged  # stem + stages 1-2 (2 + 2)


def test_segmentation_config_that_trains_bn_stays_three_branch(repo_root):
    """configs/toy/pspnet_repvgg_a0_toy.py trains its BN (norm_eval=False): no block runs online."""
    cfg = load_config(str(repo_root / 'configs' / 'toy' / 'pspnet_repvgg_a0_toy.py'))
    cfg.model, _ = replace_sync_bn(cfg.model)
    model = build_model(cfg).train()
    assert model.backbone.norm_eval is False
    calls = branch_calls(model.backbone)
    model.backbone(torch.randn(2, 3, 32, 32))
    assert len(calls) == 22  # every block ran its branches


def test_sync_bn_in_eval_fuses_online(generator):
    model = RepVGG(TINY_ARCH, norm_cfg=dict(type='SyncBN'), norm_eval=True)
    model = randomize_bn_(model, generator).train()
    x = torch.randn(2, 3, 32, 32, generator=generator)
    reference = twin(model)
    assert_same(reference, model, x, tol=1e-4)
