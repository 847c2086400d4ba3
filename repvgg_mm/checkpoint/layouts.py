"""Key layouts of published RepVGG checkpoints (ours, the original DingXiaoH/RepVGG, timm,
mmpretrain) and the maps between them.

Each layout is a row of two small tables: where the stem, stages and classifier sit, and how the
modules inside a block are named. A key is parsed into a layout-free ``(block, part, leaf)`` triple
and formatted in another layout, so the same tables serve both directions. Leaf names (``weight``,
``running_var`` ...) are the same everywhere. Classifier files of ours and mmpretrain put
``backbone.`` before the backbone keys; DDP files put ``module.`` before every key.
"""
import re
from dataclasses import dataclass
from typing import Dict, Iterable, List, Mapping, Optional, Tuple, Union

from torch import Tensor

from repvgg_mm.utils.errors import CheckpointError

OURS = 'repvgg_mm'
BACKBONE_PREFIX = 'backbone.'
DDP_PREFIX = 'module.'
CHECKPOINT_TARGETS = ('backbone', 'classifier')

# name, stem block, stage format, number of our stage1, classifier Linear, backbone prefix in
# classifier files.
_LAYOUT_ROWS = (
    (OURS, 'stem', 'stage{}', 1, 'head.fc', BACKBONE_PREFIX),
    ('original', 'stage0', 'stage{}', 1, 'linear', ''),
    ('timm', 'stem', 'stages.{}', 0, 'head.fc', ''),
    ('mmpretrain', 'stem', 'stage_{}', 1, 'head.fc', BACKBONE_PREFIX),
)
# Module paths inside a block: one row per part, one column per layout (order of _LAYOUT_ROWS).
_BLOCK_PARTS = (
    ('branch_3x3.conv', 'rbr_dense.conv', 'conv_kxk.conv', 'branch_3x3.conv'),
    ('branch_3x3.bn', 'rbr_dense.bn', 'conv_kxk.bn', 'branch_3x3.norm'),
    ('branch_1x1.conv', 'rbr_1x1.conv', 'conv_1x1.conv', 'branch_1x1.conv'),
    ('branch_1x1.bn', 'rbr_1x1.bn', 'conv_1x1.bn', 'branch_1x1.norm'),
    ('branch_identity', 'rbr_identity', 'identity', 'branch_norm'),
    ('branch_fused', 'rbr_reparam', 'reparam_conv', 'branch_reparam'),
    ('se.down.conv', 'se.down', 'attn.fc1', 'se_layer.conv1.conv'),
    ('se.up.conv', 'se.up', 'attn.fc2', 'se_layer.conv2.conv'),
)
FUSED_PART = 'branch_fused'
# Module names of a fused RepVGG conv in every layout (ours, original, timm, mmpretrain).
FUSED_MODULE_NAMES = next(row for row in _BLOCK_PARTS if row[0] == FUSED_PART)


@dataclass(frozen=True)
class Layout:
    """How one code base names a RepVGG's modules (see ``_LAYOUT_ROWS`` and ``_BLOCK_PARTS``)."""
    name: str
    stem: str
    stage: str
    first_stage: int
    head: str
    classifier_prefix: str
    parts: Tuple[str, ...]

    @property
    def stage_pattern(self) -> 're.Pattern':
        """Matches ``<stage>.<block index>.<rest>``."""
        stage = re.escape(self.stage).replace(r'\{\}', r'(\d+)')
        return re.compile(rf'{stage}\.(\d+)\.(.+)')


LAYOUTS: Dict[str, Layout] = {
    row[0]: Layout(*row, parts=tuple(part[column] for part in _BLOCK_PARTS))
    for column, row in enumerate(_LAYOUT_ROWS)}

# (block, part, leaf): block is 'stem' or (stage number from 1, index in stage); part is our name.
Canonical = Tuple[Union[str, Tuple[int, int]], str, str]


def get_layout(name: str) -> Layout:
    if name not in LAYOUTS:
        raise CheckpointError(f'unknown checkpoint layout {name!r}; choose one of '
                              f'{", ".join(LAYOUTS)}')
    return LAYOUTS[name]


def _parse_block_key(key: str, layout: Layout) -> Optional[Canonical]:
    """``(block, part, leaf)`` of a backbone key (no prefix) in ``layout``, or None."""
    if key.startswith(layout.stem + '.'):
        block, rest = 'stem', key[len(layout.stem) + 1:]
    else:
        match = layout.stage_pattern.fullmatch(key)
        if match is None:
            return None
        stage = int(match.group(1)) - layout.first_stage + 1
        if stage < 1:
            return None
        block, rest = (stage, int(match.group(2))), match.group(3)
    if '.' not in rest:
        return None
    module, leaf = rest.rsplit('.', 1)
    if module not in layout.parts:
        return None
    return block, _BLOCK_PARTS[layout.parts.index(module)][0], leaf


def _format_block_key(canonical: Canonical, layout: Layout) -> str:
    block, part, leaf = canonical
    module = layout.parts[LAYOUTS[OURS].parts.index(part)]
    if block == 'stem':
        return f'{layout.stem}.{module}.{leaf}'
    stage, index = block
    return f'{layout.stage.format(stage - 1 + layout.first_stage)}.{index}.{module}.{leaf}'


def _parse_head_key(key: str, layout: Layout) -> Optional[str]:
    """The leaf (``weight``/``bias``) of a classifier-head key of ``layout``, or None."""
    prefix = layout.head + '.'
    leaf = key[len(prefix):] if key.startswith(prefix) else ''
    return leaf if leaf in ('weight', 'bias') else None


def format_keys(keys: Iterable[str], limit: int = 8) -> str:
    """Sorted keys, the first ``limit`` of them spelled out."""
    keys = sorted(keys)
    more = f' ... (+{len(keys) - limit})' if len(keys) > limit else ''
    return ', '.join(keys[:limit]) + more


@dataclass
class ParsedState:
    """A state dict read in one layout: backbone tensors by canonical key, head tensors by leaf."""
    layout: Layout
    backbone: Dict[Canonical, Tensor]
    head: Dict[str, Tensor]
    unmatched: List[str]

    @property
    def is_deploy(self) -> bool:
        """Whether the blocks are fused (deploy-time keys)."""
        return any(part == FUSED_PART for _, part, _ in self.backbone)

    @property
    def has_head(self) -> bool:
        return sorted(self.head) == ['bias', 'weight']

    def to_layout(self, layout: str = OURS, target: str = 'backbone') -> Dict[str, Tensor]:
        """The tensors keyed as in ``layout``: the backbone alone, or backbone and head."""
        if target not in CHECKPOINT_TARGETS:
            raise ValueError(f'target must be one of {CHECKPOINT_TARGETS}, got {target!r}')
        out = get_layout(layout)
        backbone = {_format_block_key(c, out): v for c, v in self.backbone.items()}
        if target == 'backbone':
            return backbone
        if not self.has_head:
            raise CheckpointError(f'the {self.layout.name} checkpoint has no complete classifier '
                                  f'head ({self.layout.head}.weight and .bias); convert it as a '
                                  'backbone')
        state = {out.classifier_prefix + k: v for k, v in backbone.items()}
        state.update({f'{out.head}.{leaf}': self.head[leaf] for leaf in ('weight', 'bias')})
        return state


def strip_ddp_prefix(state: Mapping[str, Tensor]) -> Tuple[Dict[str, Tensor], bool]:
    """Drop the ``module.`` that DistributedDataParallel puts before keys; also say whether any
    key had it."""
    had = any(k.startswith(DDP_PREFIX) for k in state)
    return {k[len(DDP_PREFIX):] if k.startswith(DDP_PREFIX) else k: v
            for k, v in state.items()}, had


def add_ddp_prefix(state: Mapping[str, Tensor]) -> Dict[str, Tensor]:
    """Keys for loading into a DDP-wrapped model."""
    return {DDP_PREFIX + k: v for k, v in state.items()}


def find_fused_keys(state: Mapping[str, Tensor]) -> List[str]:
    """Keys of already fused (deploy-time) RepVGG convs, in any known layout."""
    return [k for k in state if any(f'.{name}.' in f'.{k}' for name in FUSED_MODULE_NAMES)]


def parse_state_dict(state: Mapping[str, Tensor], layout: Layout) -> ParsedState:
    """Read ``state`` (``module.`` already stripped) as ``layout``; unknown keys go to
    ``unmatched``.

    Backbone keys may carry ``backbone.`` (classifier files); if any key does, every other key must
    be the head's.
    """
    prefixed = any(k.startswith(BACKBONE_PREFIX) for k in state)
    parsed = ParsedState(layout, {}, {}, [])
    for key, value in state.items():
        head_leaf = _parse_head_key(key, layout)
        if head_leaf is not None:
            parsed.head[head_leaf] = value
            continue
        if prefixed and not key.startswith(BACKBONE_PREFIX):
            parsed.unmatched.append(key)
            continue
        canonical = _parse_block_key(key[len(BACKBONE_PREFIX):] if prefixed else key, layout)
        if canonical is None:
            parsed.unmatched.append(key)
        else:
            parsed.backbone[canonical] = value
    return parsed


def _check_complete(parsed: ParsedState, num_keys: int, closest: bool = False) -> ParsedState:
    name = f'{parsed.layout.name} RepVGG layout' + (' (the closest)' if closest else '')
    if not parsed.backbone:
        raise CheckpointError(f'no key of the checkpoint fits the {name} '
                              f'({format_keys(parsed.unmatched, 4)})')
    if parsed.unmatched:
        raise CheckpointError(f'{len(parsed.unmatched)} of {num_keys} keys do not fit the {name}: '
                              f'{format_keys(parsed.unmatched)}')
    return parsed


def read_state_dict(state: Mapping[str, Tensor], layout: str = 'auto') -> ParsedState:
    """Parse a RepVGG state dict (keys may carry ``module.``) in ``layout`` or the detected one.

    Detection picks the layout that recognises every key (ours first on ties). Raises
    :class:`CheckpointError` listing the keys that the (closest) layout does not recognise.
    """
    state, _ = strip_ddp_prefix(state)
    if not state:
        raise CheckpointError('the checkpoint holds no tensors')
    if layout != 'auto':
        return _check_complete(parse_state_dict(state, get_layout(layout)), len(state))
    candidates = [parse_state_dict(state, candidate) for candidate in LAYOUTS.values()]
    best = min(candidates, key=lambda parsed: len(parsed.unmatched))
    if not best.backbone:
        raise CheckpointError(f'unknown checkpoint layout: none of {", ".join(LAYOUTS)} recognises '
                              f'keys like {format_keys(state, 4)}')
    return _check_complete(best, len(state), closest=True)


def detect_layout(state: Mapping[str, Tensor]) -> str:
    """Name of the layout of a RepVGG state dict (see :func:`read_state_dict`)."""
    return read_state_dict(state).layout.name


def convert_state_dict(state: Mapping[str, Tensor], target: str = 'backbone', layout: str = 'auto'
                       ) -> Tuple[Dict[str, Tensor], str]:
    """Rename a RepVGG state dict of any known layout to ours; return it and the source layout.

    ``target='backbone'``: keys of :class:`~repvgg_mm.models.RepVGG` (a classifier head in the file
    is left out). ``target='classifier'``: ``backbone.*`` plus ``head.fc.weight|bias`` as in
    ``repvgg_mm.ImageClassifier``. Keys may carry ``module.``; train-time and fused (deploy) keys
    both work. A key that fits no part of the layout raises :class:`CheckpointError`.
    """
    parsed = read_state_dict(state, layout)
    return parsed.to_layout(OURS, target), parsed.layout.name


def export_state_dict(state: Mapping[str, Tensor], layout: str, target: str = 'backbone'
                      ) -> Dict[str, Tensor]:
    """Rename a state dict of our layout (backbone or classifier keys) to ``layout``."""
    return read_state_dict(state, OURS).to_layout(layout, target)
