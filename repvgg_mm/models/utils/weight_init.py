"""The weight initialisation every RepVGG module shares: a documented default, then the user's
init_cfg over it."""
import logging
from collections import defaultdict

from mmengine.logging import print_log
from mmengine.model import BaseModule, constant_init, initialize, kaiming_init, update_init_info
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.modules.conv import _ConvNd


def default_init_(module: nn.Module) -> nn.Module:
    """The default of RepVGG modules, in place: every conv Kaiming-normal (fan_out, ReLU gain, bias
    0) as mmcv's ConvModule initialises its conv, every BN / GroupNorm weight 1 and bias 0."""
    for m in module.modules():
        if isinstance(m, _ConvNd):
            kaiming_init(m, mode='fan_out', nonlinearity='relu', bias=0, distribution='normal')
        elif isinstance(m, (_BatchNorm, nn.GroupNorm)):
            constant_init(m, 1, bias=0)
    return module


def init_weights_cfg_last(module: BaseModule) -> None:
    """``init_weights`` of RepVGG modules: children first, then ``module.init_cfg`` over them.

    mmengine's ``BaseModule.init_weights`` applies a module's ``init_cfg`` before its children's
    ``init_weights``, so mmcv ConvModule's own Kaiming init would undo e.g. a Constant init. Here
    each child initialises itself (its ``init_weights``, else :func:`default_init_`), then the
    module's ``init_cfg`` is applied (``Pretrained`` entries last, as mmengine does). mmengine's
    record of how each parameter was initialised is kept, and logged once by a top-level module.
    """
    if module.is_init:
        print_log(f'init_weights of {type(module).__name__} has been called more than once.',
                  logger='current', level=logging.WARNING)
        return
    top_level = not hasattr(module, '_params_init_info')
    if top_level:  # mmengine's bookkeeping, started here so that its log follows the init_cfg
        info = defaultdict(dict)
        for param in module.parameters():
            info[param].update(init_info=f'unchanged by init_weights of {type(module).__name__}',
                               tmp_mean_value=param.data.mean().cpu())
        for m in module.modules():
            m._params_init_info = info
    init_cfg, module.init_cfg = module.init_cfg, None
    try:
        BaseModule.init_weights(module)  # the children's own init_weights
    finally:
        module.init_cfg = init_cfg
    for child in module.children():
        if not hasattr(child, 'init_weights'):
            default_init_(child)
            update_init_info(child, init_info=f'default init of {type(module).__name__}')
    if init_cfg:
        cfgs = init_cfg if isinstance(init_cfg, list) else [init_cfg]
        pretrained = [cfg for cfg in cfgs if cfg.get('type') == 'Pretrained']
        initialize(module, [cfg for cfg in cfgs if cfg.get('type') != 'Pretrained'] + pretrained)
    if top_level:
        module._dump_init_info()
        for m in module.modules():
            del m._params_init_info
