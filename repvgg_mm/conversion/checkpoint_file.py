"""Convert a RepVGG checkpoint file of any known layout into ours
(tools/model_converters/convert_checkpoint.py)."""
import os
from dataclasses import dataclass
from typing import Optional

from repvgg_mm.checkpoint import check_checkpoint_file, read_state_dict, read_weights
from repvgg_mm.checkpoint.layouts import CHECKPOINT_TARGETS, OURS
from repvgg_mm.utils.errors import CheckpointError
from repvgg_mm.utils.fileio import atomic_torch_save

from .arch_matching import check_fits_arch, infer_arch

# The record this converter adds to the meta of the file it writes.
LAYOUT_META_KEY = 'repvgg_mm_layout_conversion'


@dataclass(frozen=True)
class ConversionSummary:
    """What :func:`convert_checkpoint_file` read and wrote."""
    layout: str
    deploy: bool
    had_head: bool
    target: str
    arch: Optional[str]
    num_tensors: int


def check_output_path(src: str, dst: str, force: bool = False) -> None:
    """Refuse to overwrite the input, a folder, or (without ``force``) an existing file."""
    check_checkpoint_file(src)
    if os.path.isdir(dst):
        raise CheckpointError(f'the output {dst} is a folder; give a file name')
    if os.path.exists(dst):
        if os.path.samefile(src, dst):
            raise CheckpointError(f'refusing to overwrite the input {src}; choose another output')
        if not force:
            raise CheckpointError(f'{dst} exists; pass --force to overwrite it')


def convert_checkpoint_file(src: str, dst: str, layout: str = 'auto', target: str = 'auto',
                            arch: Optional[str] = None, force: bool = False) -> ConversionSummary:
    """Read ``src`` (layout given or detected), write it in our layout to ``dst`` atomically.

    ``target``: ``backbone`` (RepVGG keys), ``classifier`` (``backbone.*`` + ``head.fc.*``) or
    ``auto`` (classifier when the file has a head). With ``arch``, the weights must fit a RepVGG of
    that arch exactly; otherwise the arch is inferred when it is a standard one.
    """
    if target not in ('auto', ) + CHECKPOINT_TARGETS:
        raise CheckpointError(f'unknown target {target!r}; choose auto, backbone or classifier')
    check_output_path(src, dst, force)
    parsed = read_state_dict(read_weights(src).state, layout)
    target = ('classifier' if parsed.has_head else 'backbone') if target == 'auto' else target
    state = parsed.to_layout(OURS, target)
    backbone = parsed.to_layout(OURS, 'backbone')
    if arch is not None:
        check_fits_arch(backbone, arch, parsed.is_deploy,
                        head=parsed.head if target == 'classifier' else None, source=f'from {src}')
    else:
        arch = infer_arch(backbone)
    meta = dict(converted_from=parsed.layout.name, source=os.path.basename(src), target=target,
                deploy=parsed.is_deploy, arch=arch)
    atomic_torch_save({'state_dict': state, 'meta': {LAYOUT_META_KEY: meta}}, dst)
    return ConversionSummary(parsed.layout.name, parsed.is_deploy, parsed.has_head, target, arch,
                             len(state))
