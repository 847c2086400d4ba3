"""RepVGG backbone for OpenMMLab 2.x (classification, segmentation, detection)."""
import warnings
from typing import Dict, Mapping, Optional, Sequence, Tuple, Union

from mmengine.logging import print_log
from mmengine.model import BaseModule, Sequential
from torch import Tensor
from torch.nn.modules.batchnorm import _BatchNorm

from repvgg_mm.arch_settings import BASE_WIDTHS, arch_channels, resolve_arch
from repvgg_mm.registry import MODELS, WEIGHT_INITIALIZERS

from ..blocks import FusedBNBlock, LinearRepVGGBlock, QARepVGGBlock, RepVGGBlock
from ..blocks.from_repvgg import repvgg_source
from ..utils.weight_init import init_weights_cfg_last
from .mtsppf import MTSPPF

BLOCK_TYPES = {'repvgg': RepVGGBlock, 'qarepvgg': QARepVGGBlock, 'linear': LinearRepVGGBlock,
               'fused_bn': FusedBNBlock}
ONE_CONV_TYPES = ('linear', 'fused_bn')  # one conv + one BN per block in every mode


@MODELS.register_module()
class RepVGG(BaseModule):
    """RepVGG backbone (`RepVGG: Making VGG-style ConvNets Great Again`, CVPR 2021).

    A stem block (stride 2) followed by stages of :class:`RepVGGBlock`; the first block of each
    stage applies the stage's stride. ``forward`` returns a tuple of the outputs of
    ``out_indices``.

    Args:
        arch: one of ``ARCH_NAMES`` (A0 ... D2se), ``'yolox-pai-small'``, or a dict with
            ``num_blocks``, ``width_factor`` and optionally ``group_layer_map``, ``use_se`` /
            ``se_ratio`` or mmpretrain's ``se_cfg``, and ``stem_channels`` (see
            :func:`resolve_arch`).
        in_channels: input image channels.
        base_channels: stage widths before the arch's width factors: a sequence, or an int ``c``
            meaning ``c * 2**i`` for stage i (mmpretrain). The stem has
            ``min(stem_channels, int(base_0 * width_factor[0]))`` channels.
        out_indices: stages (0-based) whose outputs are returned.
        strides / dilations: per stage; output stride 8 is ``strides=(2, 2, 1, 1)`` with
            ``dilations=(1, 1, 2, 4)``.
        frozen_stages: -1 freezes nothing, 0 the stem, k the stem and stages 1..k.
        norm_eval: keep BN layers in eval mode (frozen statistics) while training.
        with_cp: gradient checkpointing in every block.
        deploy: build fused single-conv blocks (for fused checkpoints).
        conv_cfg / norm_cfg / act_cfg: mmcv layer configs.
        block_type: the training-time block; all of them fuse into the same deploy layout
            (with ``deploy=True`` they build identical networks):

            - ``'repvgg'`` (default, :class:`RepVGGBlock`): three branches, three BNs;
            - ``'qarepvgg'`` (:class:`QARepVGGBlock`): quantization friendly;
            - ``'linear'`` (:class:`LinearRepVGGBlock`): linear-scaling branches, one BN, trained
              as one conv + one BN (BN training included);
            - ``'fused_bn'`` (:class:`FusedBNBlock`): the fused conv with a BN inserted after it
              (the plain network trained directly).

            ``'linear'`` and ``'fused_bn'`` start from RepVGG weights: ``init_cfg`` Pretrained
            with a RepVGG file (any layout; ``'fused_bn'`` also a fused one) converts it on load
            (:meth:`state_dict_from_repvgg`), the same function in eval mode.
        online_fusion: ``'auto'`` (default) or ``'off'``, for every block: with frozen BNs
            (``norm_eval``, frozen stages) a training-time block runs as its one equivalent conv
            while training, with the same outputs and gradients (see :class:`RepVGGBlock`).
        add_ppf: pass the last stage's output through an :class:`MTSPPF` block (YOLOX-PAI) before
            returning it.
        pretrained: deprecated (mmseg's segmentor-level ``pretrained``): a path, the same as
            ``init_cfg=dict(type='Pretrained', checkpoint=path)``.
        init_cfg: e.g. ``dict(type='Pretrained', checkpoint=path, prefix='backbone.')`` (any
            RepVGG layout, strict; converted for ``'linear'`` / ``'fused_bn'`` blocks). Without
            one, :meth:`init_weights` makes every conv Kaiming-normal (fan_out, ReLU gain,
            bias 0) as mmcv's ConvModule does and every BN weight 1 / bias 0 (the linear block's
            scales 1); any other ``init_cfg`` is applied after that default, to every layer it
            names (stem, blocks, SE, MTSPPF).
    """

    def __init__(self, arch: Union[str, dict] = 'A0', in_channels: int = 3,
                 base_channels: Union[int, Sequence[int]] = BASE_WIDTHS,
                 out_indices: Sequence[int] = (3, ), strides: Sequence[int] = (2, 2, 2, 2),
                 dilations: Sequence[int] = (1, 1, 1, 1),
                 frozen_stages: int = -1, norm_eval: bool = False, with_cp: bool = False,
                 deploy: bool = False, conv_cfg=None, norm_cfg=dict(type='BN', requires_grad=True),
                 act_cfg=dict(type='ReLU'), block_type: str = 'repvgg',
                 online_fusion: str = 'auto', add_ppf: bool = False,
                 pretrained: Optional[str] = None, init_cfg=None):
        super().__init__(_pretrained_init_cfg(pretrained, init_cfg))
        self.arch = arch
        self.arch_setting = resolve_arch(arch)
        num_stages = len(self.arch_setting['num_blocks'])
        if not len(strides) == len(dilations) == num_stages:
            raise ValueError(f'strides {tuple(strides)} and dilations {tuple(dilations)} need one '
                             f'entry per stage ({num_stages})')
        out_indices = tuple(out_indices)
        if not out_indices or not all(0 <= i < num_stages for i in out_indices):
            raise ValueError(f'out_indices {out_indices} must lie in [0, {num_stages})')
        if not -1 <= frozen_stages <= num_stages:
            raise ValueError(f'frozen_stages must lie in [-1, {num_stages}], got {frozen_stages}')
        self.out_indices = out_indices
        self.strides, self.dilations = tuple(strides), tuple(dilations)
        self.frozen_stages, self.norm_eval = frozen_stages, norm_eval
        self.with_cp, self.deploy, self.add_ppf = with_cp, deploy, add_ppf

        self.stem_channels, self.stage_channels = arch_channels(self.arch_setting, base_channels)
        block_args = dict(use_se=self.arch_setting['use_se'],
                          se_ratio=self.arch_setting['se_ratio'], deploy=deploy, conv_cfg=conv_cfg,
                          norm_cfg=norm_cfg, act_cfg=act_cfg, with_cp=with_cp,
                          online_fusion=online_fusion)
        if block_type not in BLOCK_TYPES:
            raise ValueError(f'block_type must be one of {sorted(BLOCK_TYPES)}, got {block_type!r}')
        self.block_type = block_type
        block_cls = BLOCK_TYPES[block_type]
        self.stem = block_cls(in_channels, self.stem_channels, stride=2, **block_args)

        group_map = self.arch_setting['group_layer_map'] or {}
        layer_index = 1
        channels = self.stem_channels
        self.stage_names = []
        for i, (num_blocks, out_ch) in enumerate(zip(self.arch_setting['num_blocks'],
                                                     self.stage_channels)):
            blocks = []
            for j in range(num_blocks):
                blocks.append(block_cls(
                    channels, out_ch, stride=self.strides[i] if j == 0 else 1,
                    dilation=self.dilations[i], groups=group_map.get(layer_index, 1), **block_args))
                channels = out_ch
                layer_index += 1
            name = f'stage{i + 1}'
            self.add_module(name, Sequential(*blocks))  # mmengine's: init_weights reaches it
            self.stage_names.append(name)
        # YOLOX-PAI's pooling block on the last stage's output (it is not frozen with the stages)
        self.ppf = MTSPPF(channels, channels, conv_cfg=conv_cfg, norm_cfg=norm_cfg,
                          act_cfg=act_cfg) if add_ppf else None
        self._online_logged = None
        self._freeze_stages()

    @property
    def out_channels(self) -> Tuple[int, ...]:
        """Channels of each returned feature map (for neck/head ``in_channels``)."""
        return tuple(self.stage_channels[i] for i in self.out_indices)

    def forward(self, x: Tensor) -> Tuple[Tensor, ...]:
        x = self.stem(x)
        outs = []
        for i, name in enumerate(self.stage_names):
            x = getattr(self, name)(x)
            if self.ppf is not None and i == len(self.stage_names) - 1:
                x = self.ppf(x)
            if i in self.out_indices:
                outs.append(x)
        return tuple(outs)

    def _freeze_stages(self) -> None:
        modules = [self.stem] + [getattr(self, n) for n in self.stage_names]
        for module in modules[:self.frozen_stages + 1]:
            module.eval()
            for param in module.parameters():
                param.requires_grad = False

    def train(self, mode: bool = True):
        super().train(mode)
        self._freeze_stages()
        if mode and self.norm_eval:
            for module in self.modules():
                if isinstance(module, _BatchNorm):
                    module.eval()
        if mode:
            self._log_online_fusion()
        return self

    def _log_online_fusion(self) -> None:
        """Say (once per change) how many blocks will train fused online."""
        blocks = [m for m in self.modules() if isinstance(m, RepVGGBlock) and not m.deploy]
        online = sum(m.online_fusion == 'auto' and not any(n.training for n in m.norm_layers())
                     for m in blocks)
        if blocks and (online, len(blocks)) != self._online_logged:
            self._online_logged = (online, len(blocks))
            if online:
                reason = '(frozen BN)'
            elif any(m.online_fusion == 'auto' for m in blocks):
                reason = ('(BN trains: one conv + BN per block)'
                          if self.block_type in ONE_CONV_TYPES else '(BN trains: three branches)')
            else:
                reason = "(online_fusion='off')"
            print_log(f'online fusion: {online}/{len(blocks)} blocks {reason}', logger='current')

    def init_weights(self):
        if isinstance(self.init_cfg, dict) and self.init_cfg.get('type') == 'Pretrained':
            # the repvgg_mm scope's Pretrained: any RepVGG layout, safe reader, strict load
            args = {k: v for k, v in self.init_cfg.items() if k != 'type'}
            WEIGHT_INITIALIZERS.get('Pretrained')(**args)(self)
            self._is_init = True
            return
        init_weights_cfg_last(self)

    @property
    def converts_repvgg_weights(self) -> bool:
        """Whether pretrained RepVGG weights load through :meth:`state_dict_from_repvgg`."""
        return not self.deploy and hasattr(BLOCK_TYPES[self.block_type], 'state_from_repvgg')

    def state_dict_from_repvgg(self, state: Mapping[str, Tensor]) -> Dict[str, Tensor]:
        """This backbone's state dict from the state dict (our keys) of a RepVGG of the same arch:
        every block converted by its ``state_from_repvgg`` so that it computes the RepVGG block's
        function exactly in eval mode (each block training-time, or fused where the block type
        takes fused weights); keys outside the blocks (MTSPPF) as they are. The conversion
        computes in float64 and assumes the source BNs' ``eps`` is this backbone's (``norm_cfg``,
        default 1e-5, as in every published RepVGG). Raises ``ValueError`` naming the first
        block whose weights do not fit.
        """
        if not self.converts_repvgg_weights:
            raise TypeError(f'{self.block_type!r} blocks (deploy={self.deploy}) load RepVGG '
                            'weights as they are')
        rest, converted = dict(state), {}
        for name, block in self.named_modules():
            if not isinstance(block, RepVGGBlock):
                continue
            prefix = f'{name}.'
            own = {k[len(prefix):]: rest.pop(k) for k in list(rest) if k.startswith(prefix)}
            try:
                new = block.state_from_repvgg(repvgg_source(block, own))
            except (TypeError, ValueError) as exc:
                raise ValueError(f'block {name}: {exc}') from exc
            converted.update((prefix + k, v) for k, v in new.items())
        converted.update(rest)
        return converted

    def switch_to_deploy(self) -> None:
        """Fuse every block in place (idempotent)."""
        for module in self.modules():
            if isinstance(module, RepVGGBlock):
                module.switch_to_deploy()
        self.deploy = True


def _pretrained_init_cfg(pretrained: Optional[str], init_cfg):
    """``init_cfg`` from the deprecated ``pretrained`` argument, as mmseg's backbones take it."""
    if pretrained is None:
        return init_cfg
    if not isinstance(pretrained, str):
        raise TypeError(f'pretrained must be a path (str) or None, not {type(pretrained).__name__}')
    if init_cfg is not None:
        raise ValueError(f'give either pretrained ({pretrained!r}) or init_cfg ({init_cfg}), not '
                         'both; prefer init_cfg=dict(type=\'Pretrained\', checkpoint=...)')
    warnings.warn('RepVGG(pretrained=...) is deprecated: use init_cfg=dict(type=\'Pretrained\', '
                  'checkpoint=...)', DeprecationWarning, stacklevel=3)
    return dict(type='Pretrained', checkpoint=pretrained)
