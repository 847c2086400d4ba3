"""Ways to run an inference model faster on a CPU with stock PyTorch, and a chooser between them.

Every variant takes an eval-mode ``nn.Module`` and an example input and returns a callable that
takes
an input like the example (other batch sizes allowed) and returns what the model returns. Variants:

- ``eager``: the module itself (run it under ``torch.inference_mode``).
- ``channels_last``: weights and inputs in NHWC, the layout oneDNN convolutions prefer.
- ``jit_freeze``: TorchScript trace + ``torch.jit.freeze`` + ``torch.jit.optimize_for_inference``
  (folds BN into convs, fuses conv+ReLU into oneDNN post-ops, pre-packs weights).
- ``fx_mkldnn``: ``torch.fx.experimental.optimization.optimize_for_inference`` (conv-BN folding and
  oneDNN layout conversion on an FX graph).
- ``compile``: ``torch.compile`` (inductor, C++ codegen) with weight freezing, which pre-packs
oneDNN
  weights and fuses conv+ReLU; compiling costs tens of seconds on 2 cores.
"""
import copy
import warnings
from typing import Callable, Dict

import torch
from mmengine.logging import MMLogger
from torch import Tensor, nn

CpuRunner = Callable[[Tensor], object]


def _eager(model: nn.Module, example: Tensor) -> CpuRunner:
    return model


class _ChannelsLastRunner(nn.Module):
    """Converts each input to NHWC before the NHWC-weight model runs."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: Tensor):
        return self.model(x.contiguous(memory_format=torch.channels_last))


def _channels_last(model: nn.Module, example: Tensor) -> CpuRunner:
    return _ChannelsLastRunner(copy.deepcopy(model).to(memory_format=torch.channels_last))


def _frozen_trace(model: nn.Module, example: Tensor):
    return torch.jit.freeze(torch.jit.trace(model, example, check_trace=False))


def _jit_freeze(model: nn.Module, example: Tensor) -> CpuRunner:
    # TorchScript is deprecated in favour of torch.compile but still ships; here it is as fast as
    # torch.compile and prepares in about a second instead of tens of seconds.
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter('ignore', FutureWarning)
        optimized = torch.jit.optimize_for_inference(_frozen_trace(model, example))
        try:
            # The first calls run the profiling executor's passes. oneDNN-layout graphs reject
            # some ops (adaptive pooling to sizes that do not divide the input, as in PSPNet's
            # pyramid): then keep a frozen graph without the oneDNN layout conversion.
            optimized(example)
            optimized(example)
        except RuntimeError as error:
            MMLogger.get_current_instance().warning(
                f'torch.jit.optimize_for_inference graph failed ({str(error).splitlines()[-1]}); '
                'using the frozen TorchScript graph without it')
            optimized = _frozen_trace(model, example)
            optimized(example)
            optimized(example)
    return optimized


def _fx_mkldnn(model: nn.Module, example: Tensor) -> CpuRunner:
    from torch.fx.experimental.optimization import optimize_for_inference
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter('ignore', FutureWarning)
        optimized = optimize_for_inference(copy.deepcopy(model))
        optimized(example)
    return optimized


def _compile(model: nn.Module, example: Tensor) -> CpuRunner:
    import torch._inductor.config as inductor_config
    compiled = torch.compile(model, backend='inductor', dynamic=False)
    # Freezing turns weights into constants so inductor can pre-pack them for oneDNN and fuse the
    # ReLU into the convolution; it must be on while the first call compiles.
    with inductor_config.patch(freezing=True), torch.no_grad():
        compiled(example)
    return compiled


CPU_VARIANTS: Dict[str, Callable[[nn.Module, Tensor], CpuRunner]] = {
    'eager': _eager,
    'channels_last': _channels_last,
    'jit_freeze': _jit_freeze,
    'fx_mkldnn': _fx_mkldnn,
    'compile': _compile,
}
# On the 2-core AVX-512 machine this project is developed on, jit_freeze and compile tie (1.2-1.4x
# the eager fused model, see docs/deployment.md); jit_freeze prepares in about a second.
DEFAULT_CPU_VARIANT = 'jit_freeze'


def optimize_for_cpu(model: nn.Module, example: Tensor, variant: str = DEFAULT_CPU_VARIANT
                     ) -> CpuRunner:
    """Return a faster CPU runner of ``model`` (put in eval mode) for inputs shaped like
    ``example``.

    ``variant`` is one of :data:`CPU_VARIANTS`; the default is the one that measured fastest here.
    Call the result under ``torch.inference_mode()`` or ``torch.no_grad()``.
    """
    if variant not in CPU_VARIANTS:
        raise KeyError(f'unknown CPU variant {variant!r}; choose one of {", ".join(CPU_VARIANTS)}')
    model.eval()
    return CPU_VARIANTS[variant](model, example)
