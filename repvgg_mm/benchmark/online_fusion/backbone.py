"""Section ``backbone``: the RepVGG backbone's train step with frozen BN, online fusion off vs auto.

RepVGG (out_indices 0-3, norm_eval, frozen_stages=1) train step: forward, backward of a fixed
random weighting of all outputs, zero grads. Measured: time; bytes saved for backward, all of them
and split, from a second forward at another batch size, into activations (proportional to the
batch) and batch-independent tensors (the fused kernels' intermediates); the equivalence of
outputs and gradients, in float32 and (the control) in float64.
"""
import copy
from typing import Dict, List

import torch
from mmengine.logging import MMLogger
from torch import Tensor, nn

from repvgg_mm.models import RepVGG
from repvgg_mm.models.utils import randomize_bn_
from repvgg_mm.testing import named_arch
from repvgg_mm.utils.compare import max_relative_error
from repvgg_mm.utils.errors import UserError

from ..memory import SavedTensors, mib, persistent_tensors
from ..targets import ONLINE_FUSION_TARGETS as TARGETS
from ..targets import off_auto_ratio
from ..workloads import backbone_step, output_weights, weighted_loss
from .settings import (
    MODES,
    BranchCalls,
    repvgg_blocks,
    time_modes,
    timing_dict,
    twins,
)


class PreActivationSigns:
    """Records the sign of every block's pre-activation (the ReLU input) while active."""

    def __init__(self, model: nn.Module):
        self.signs: List[Tensor] = []
        self._handles = [block.act.register_forward_pre_hook(self._record)
                         for block in repvgg_blocks(model)]

    def _record(self, module, args):
        self.signs.append(args[0].detach() > 0)

    def remove(self) -> None:
        for handle in self._handles:
            handle.remove()


def relu_flips(a: List[Tensor], b: List[Tensor]) -> int:
    """Elements whose pre-activation sign differs between two runs (ReLU on in one, off in the
    other: a pre-activation within rounding of 0), each flip changing the gradients locally."""
    return sum(int((x != y).sum()) for x, y in zip(a, b))


def _weights(outputs, seed: int) -> List[Tensor]:
    return output_weights([o.shape for o in outputs], torch.Generator().manual_seed(seed))


def saved_forward_bytes(model: nn.Module, batch: int, s: dict) -> int:
    """Bytes a forward pass of ``batch`` random images saves for backward (graph then freed)."""
    inputs = torch.randn(batch, 3, s['size'], s['size'],
                         generator=torch.Generator().manual_seed(s['seed'] + 1))
    with SavedTensors(persistent_tensors(model, inputs)) as recorder:
        outputs = model(inputs)
    del outputs
    return recorder.nbytes


def split_saved(model: nn.Module, saved: int, s: dict) -> dict:
    """Split the bytes saved at batch ``s['batch']`` into activations (proportional to the batch)
    and batch-independent tensors (online fusion's kernel intermediates: padded 1x1 kernels,
    identity kernels, the summed kernel), from a second forward at another batch size."""
    batch = s['batch']
    other = 1 if batch > 1 else 2
    per_image = (saved - saved_forward_bytes(model, other, s)) / (batch - other)
    return dict(activations=per_image * batch, batch_independent=saved - per_image * batch,
                batches=[batch, other])


def step_outputs_grads(model: nn.Module, inputs: Tensor, weights: List[Tensor]):
    """Outputs and parameter gradients of one step (grads left zeroed)."""
    outputs = model(inputs)
    weighted_loss(outputs, weights).backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    model.zero_grad(set_to_none=True)
    return [o.detach() for o in outputs], grads


def equivalence(outputs: Dict[str, list], grads: Dict[str, dict], name: str) -> dict:
    """Max relative output error; max |grad_auto - grad_off| over the largest |grad_off|."""
    if set(grads['off']) != set(grads['auto']) or not grads['off']:
        raise UserError(f'{name}: the two modes train different parameters')
    output_error = max(max_relative_error(a, b) for a, b in zip(outputs['off'], outputs['auto']))
    largest = max(g.abs().max().item() for g in grads['off'].values())
    errors = {n: (grads['auto'][n] - g).abs().max().item() / largest
              for n, g in grads['off'].items()}
    worst = max(errors, key=errors.get)
    return dict(output=output_error, grad=errors[worst], worst_param=worst)


def float64_control(models: Dict[str, nn.Module], s: dict) -> dict:
    """The same comparison in float64 on a small input: rounding out of the way, what is left is
    the math (the fused kernel and its gradients are exact)."""
    size = s['fp64_size']
    generator = torch.Generator().manual_seed(s['seed'] + 2)
    inputs = torch.randn(1, 3, size, size, generator=generator, dtype=torch.float64)
    doubles = {mode: copy.deepcopy(m).double() for mode, m in models.items()}
    with torch.no_grad():
        weights = [w.double() for w in _weights(doubles['off'](inputs), s['seed'])]
    outputs, grads = {}, {}
    for mode, m in doubles.items():
        outputs[mode], grads[mode] = step_outputs_grads(m, inputs, weights)
    return dict(equivalence(outputs, grads, 'float64 control'), input=[1, 3, size, size])


def _checked_steps(models: Dict[str, nn.Module], inputs: Tensor, weights: List[Tensor]):
    """One checked step per mode: outputs, gradients, saved bytes, online blocks, ReLU signs."""
    outputs, grads, saved, online, signs = {}, {}, {}, {}, {}
    for mode, m in models.items():
        calls, recorder_signs = BranchCalls(m), PreActivationSigns(m)
        with SavedTensors(persistent_tensors(m, inputs)) as recorder:
            outs = m(inputs)  # only the network's own saved tensors (not the loss's)
        weighted_loss(outs, weights).backward()
        calls.remove()
        recorder_signs.remove()
        outputs[mode] = [o.detach() for o in outs]
        grads[mode] = {n: p.grad.clone() for n, p in m.named_parameters() if p.grad is not None}
        saved[mode], online[mode], signs[mode] = recorder.nbytes, calls.online, recorder_signs.signs
        m.zero_grad(set_to_none=True)
        del outs
    return outputs, grads, saved, online, relu_flips(signs['off'], signs['auto'])


def backbone_result(name: str, s: dict, logger: MMLogger) -> dict:
    torch.manual_seed(s['seed'])
    generator = torch.Generator().manual_seed(s['seed'])
    model = RepVGG(named_arch(name), out_indices=(0, 1, 2, 3), norm_eval=True, frozen_stages=1)
    models = twins(randomize_bn_(model, generator))
    inputs = torch.randn(s['batch'], 3, s['size'], s['size'], generator=generator)
    for m in models.values():
        m.train()
    with torch.no_grad():
        weights = _weights(models['off'](inputs), s['seed'])
    outputs, grads, saved, online, flips = _checked_steps(models, inputs, weights)
    split = {mode: split_saved(m, saved[mode], s) for mode, m in models.items()}
    total_blocks = len(repvgg_blocks(models['auto']))
    fp32 = equivalence(outputs, grads, name)
    del outputs, grads
    fp64 = float64_control(models, s)

    steps = {mode: backbone_step(m, inputs, weights) for mode, m in models.items()}
    timings = time_modes(steps, s['repeats'], s['warmup'], logger, f'backbone {name}')
    ratio = off_auto_ratio(timings)
    saved_ratio = saved['auto'] / saved['off']
    activations = {mode: split[mode]['activations'] for mode in MODES}
    act_ratio = activations['auto'] / activations['off']

    def checked(key: str, value: float, **extra) -> dict:
        return dict(extra, value=value, target=TARGETS[key].value,
                    verdict=TARGETS[key].verdict(value))

    fp64_ok = TARGETS['output_error'].met(fp64['output']) and TARGETS['grad_error'].met(
        fp64['grad'])
    result = dict(
        input=[s['batch'], 3, s['size'], s['size']], blocks=total_blocks,
        online_blocks=online,
        trainable_params=sum(p.numel() for p in models['auto'].parameters()
                             if p.requires_grad),
        time={mode: timing_dict(t) for mode, t in timings.items()},
        speedup=dict(ratio, target=TARGETS['backbone_speedup'].value,
                     verdict=TARGETS['backbone_speedup'].verdict(ratio['ratio'])),
        saved_activations=dict(activations, ratio=act_ratio,
                               target=TARGETS['saved_ratio'].value,
                               verdict=TARGETS['saved_ratio'].verdict(act_ratio)),
        saved_total=dict(saved, ratio=saved_ratio, target=TARGETS['saved_ratio'].value,
                         verdict=TARGETS['saved_ratio'].verdict(saved_ratio)),
        saved_batch_independent={mode: split[mode]['batch_independent'] for mode in MODES},
        saved_split_batches=split['off']['batches'],
        output_max_rel_error=checked('output_error', fp32['output']),
        grad_max_diff_over_max_grad=checked('grad_error', fp32['grad'],
                                            worst_param=fp32['worst_param']),
        relu_flips=flips,
        float64_control=dict(fp64, verdict='pass' if fp64_ok else 'miss'))
    logger.info(f'backbone {name}: speed-up {ratio["ratio"]:.2f}x, saved activations '
                f'{mib(activations["off"]):.1f} -> {mib(activations["auto"]):.1f} MiB '
                f'({act_ratio:.2f}), all saved tensors {mib(saved["off"]):.1f} -> '
                f'{mib(saved["auto"]):.1f} MiB ({saved_ratio:.2f}), online blocks off '
                f'{online["off"]}/{total_blocks} auto {online["auto"]}/{total_blocks}, output '
                f'error {fp32["output"]:.2e}, grad error {fp32["grad"]:.2e} ({flips} ReLU '
                f'flips; float64: {fp64["output"]:.1e} / {fp64["grad"]:.1e})')
    return result


def backbone_section(s: dict, logger: MMLogger) -> dict:
    return {name: backbone_result(name, s, logger) for name in s['archs']}
