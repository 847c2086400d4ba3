"""``compile=`` of a config: what our Runner compiles, and with which ``torch.compile`` arguments.

mmengine compiles ``model.train_step``. On this torch that fails or gains nothing on our configs:
dynamo cannot trace ``optimizer.step()`` over the ``ConfigDict`` param groups that
``paramwise_cfg`` produces (``InternalTorchDynamoError: 'UserDefinedDictVariable' object has no
attribute 'items'``), and with plain groups it recompiles ``train_step`` and the optimizer step
at every iteration (guards on the data samples' metainfo and on the scheduled learning rate)
until the recompile limit sends both back to eager. :class:`~repvgg_mm.engine.runner.RepVGGRunner`
compiles the network's :data:`COMPILED_PARTS` instead: tensors in, tensors out, one graph per
input shape and train/eval mode.

On the CPU, inductor's layout optimization runs every convolution channels-last. The weight
gradient of a strided 1x1 convolution whose channels-last input has fewer channels than
oneDNN's channel block (16 in its AVX-512 kernel), such as the 1x1 branch of a RepVGG stem
on RGB images, then runs oneDNN's ``jit_1x1`` backward-weights kernel, which writes past its
workspace (uxlfoundation/oneDNN#6035): heap corruption, the process aborts. :func:`compile_kwargs`
switches layout optimization off there, so convolutions keep torch's default layout, for which
oneDNN pads the channels to its block.
"""
import copy
from typing import Any, Optional

from mmengine.logging import print_log

from repvgg_mm.utils.errors import UserError

#: the submodules of a network that ``compile=`` compiles (those it has)
COMPILED_PARTS = ('backbone', 'neck')
LAYOUT_OPTION = 'layout_optimization'
LAYOUT_REASON = ('oneDNN corrupts the heap in the weight gradient of channels-last strided 1x1 '
                 'convolutions with few input channels (uxlfoundation/oneDNN#6035)')


def compile_kwargs(compile_cfg: Any, device: str, log: bool = True) -> Optional[dict]:
    """``torch.compile`` keyword arguments for a config's ``compile`` value (``None``: no
    compiling) on ``device`` (``'cpu'``, ``'cuda'``, ...).

    With the inductor backend on the CPU, inductor's ``layout_optimization`` is off (logged); a
    ``mode`` becomes the inductor options it stands for (``torch._inductor.list_mode_options``),
    as ``torch.compile`` does not take both. An explicit ``layout_optimization=True`` there, or
    a value that is not a bool or a dict, is a :class:`UserError`.
    """
    if compile_cfg is None or compile_cfg is False:
        return None
    if compile_cfg is True:
        compile_cfg = {}
    if not isinstance(compile_cfg, dict):
        raise UserError(f'compile must be True, False or a dict of torch.compile arguments, got '
                        f'{compile_cfg!r}')
    kwargs = copy.deepcopy(dict(compile_cfg))
    if device != 'cpu' or kwargs.get('backend', 'inductor') != 'inductor':
        return kwargs
    mode, options = kwargs.pop('mode', None), kwargs.pop('options', None)
    if mode is not None and options is not None:
        raise UserError('compile: give mode or options, not both (torch.compile takes one)')
    if options is not None and not isinstance(options, dict):
        raise UserError(f'compile.options must be a dict of inductor options, got {options!r}')
    if mode is not None:
        from torch._inductor import list_mode_options
        try:
            options = list_mode_options(mode, kwargs.get('dynamic'))
        except RuntimeError as exc:  # unknown mode
            raise UserError(f'compile.mode: {exc}') from exc
    options = dict(options or {})
    if options.get(LAYOUT_OPTION):
        raise UserError(f'compile.options.{LAYOUT_OPTION}=True cannot train on the CPU: '
                        f'{LAYOUT_REASON}; remove it')
    options[LAYOUT_OPTION] = False
    if log:
            print_log(f'torch.compile on the CPU: inductor {LAYOUT_OPTION}=False, as '
                  f'{LAYOUT_REASON}', logger='current')
    return dict(kwargs, options=options)
