"""Whole-model conversion: a training config + checkpoint into a deploy config + checkpoint
(:func:`convert_whole_model`, the body of ``tools/convert_whole_model.py``). In memory, a model is
fused by :func:`repvgg_mm.models.fuse_repvgg_blocks`; the original RepVGG API's names
(:func:`repvgg_model_convert`, :func:`whole_model_convert`) stay as aliases for its users.

:func:`convert_whole_model` does all the work in memory (build, strict load, fuse, verify, prove
untouched tensors); :func:`write_conversion` then writes both files atomically. Nothing is written
unless every check passed.
"""
import datetime
import os
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import mmengine
import torch
from mmengine.config import Config
from mmengine.logging import MMLogger
from torch import Tensor, nn

from repvgg_mm.checkpoint import (
    Weights,
    add_ddp_prefix,
    find_fused_keys,
    load_state_dict_strict,
    read_weights,
)
from repvgg_mm.models.utils import (
    count_parameters,
    fuse_repvgg_blocks,
    fused_state_dict,
    iter_repvgg_blocks,
    training_time_blocks,
)
from repvgg_mm.utils.config import build_model, config_from_text, config_scope, load_config
from repvgg_mm.utils.errors import CheckpointError, ConversionError
from repvgg_mm.utils.fileio import (
    atomic_torch_save,
    atomic_write_all,
    remove_stale_temps,
    same_file,
)
from repvgg_mm.version import __version__

from .deploy_config import deploy_config
from .equivalence import (
    DEFAULT_TOLERANCE,
    EquivalenceReport,
    assert_equivalent,
    check_equivalence,
    check_untouched_tensors,
    make_sample,
)

DEFAULT_SAMPLE_SHAPE = (128, 128)
DEPLOY_SUFFIX = '_deploy'
# The record this converter adds to the checkpoint's meta (the layout converter writes its own).
FUSION_META_KEY = 'repvgg_mm_fusion'


@dataclass
class ConversionResult:
    """A converted model, ready to be written."""
    deploy_cfg: Config
    state_dict: Dict[str, Tensor]
    meta: dict
    record: dict
    report: Optional[EquivalenceReport]


def output_paths(config: str, checkpoint: str, out_dir: str) -> Tuple[str, str]:
    """``OUT_DIR/<config name>_deploy.py`` and ``OUT_DIR/<checkpoint name>_deploy.pth``."""
    def stem(path):
        return os.path.splitext(os.path.basename(path))[0]
    return (os.path.join(out_dir, stem(config) + DEPLOY_SUFFIX + '.py'),
            os.path.join(out_dir, stem(checkpoint) + DEPLOY_SUFFIX + '.pth'))


def check_output_location(inputs: Sequence[str], out_dir: str, outputs: Sequence[str],
                          force: bool = False) -> None:
    """Refuse an OUT_DIR that is (or lies inside) a file, would overwrite an input, or is not empty
    (unless ``force``). Temporary files left by a killed earlier run are removed first."""
    existing = os.path.abspath(out_dir)
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        same = [p for p in inputs if same_file(p, existing)]
        where = 'is' if existing == os.path.abspath(out_dir) else 'lies inside'
        raise ConversionError(f'OUT_DIR {out_dir} {where} ' + (
            f'the input {same[0]}' if same else f'the file {existing}, not a directory'))
    for output in outputs:
        for path in inputs:
            if same_file(output, path):
                raise ConversionError(f'writing {output} would overwrite the input {path}; '
                                      'choose another OUT_DIR')
    for output in outputs:
        remove_stale_temps(output)
    if os.path.isdir(out_dir) and os.listdir(out_dir) and not force:
        raise ConversionError(f'OUT_DIR {out_dir} exists and is not empty; pass --force to write '
                              'into it')


def read_training_checkpoint(path: str, weights: str = 'auto') -> Weights:
    """Read ``path`` through the one reader (which refuses non-finite weights) and pick the
    weights to convert; refuse files that are fused already (decided from the weights, whatever
    wrote them)."""
    weights_ = read_weights(path, weights)
    fused = find_fused_keys(weights_.state)
    if fused:
        raise CheckpointError(f'{path} is already fused (deploy-time keys such as {fused[0]!r}); '
                              'it needs no conversion and is never fused twice')
    return weights_


def _training_model(cfg: Config, config: str, checkpoint: str, state: Dict[str, Tensor]):
    """Build the config's model, check it has training-time RepVGG blocks, load ``state``
    strictly."""
    model = build_model(cfg)
    todo = training_time_blocks(model)
    if not any(True for _ in iter_repvgg_blocks(model)):
        raise ConversionError(f'{config} builds no RepVGG block: nothing to fuse')
    if not todo:
        raise ConversionError(f'{config} already builds fused (deploy=True) RepVGG blocks; '
                              'pass the training-time config')
    try:
        load_state_dict_strict(model, state, source=f'of {checkpoint}')
    except CheckpointError as exc:
        raise ConversionError(f'{checkpoint} does not fit the model of {config} (another '
                              f'architecture or size?): {exc}') from exc
    return model.eval(), [name for name, _ in todo]


def _deploy_model(cfg: Config):
    """The deploy config and the model built from its dumped text (so the written file builds)."""
    deploy_cfg, flagged = deploy_config(cfg)
    model = build_model(config_from_text(deploy_cfg.pretty_text)).eval()
    left = training_time_blocks(model)
    if left:
        raise ConversionError(f'the deploy config still builds {len(left)} training-time RepVGG '
                              f'blocks (e.g. {left[0][0]!r}): no deploy switch reaches them')
    return deploy_cfg, flagged, model


def _versions() -> dict:
    return dict(repvgg_mm_version=__version__, mmengine_version=str(mmengine.__version__),
                torch_version=str(torch.__version__),
                time=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds'))


def _verification_record(report: Optional[EquivalenceReport], seed: int) -> dict:
    if report is None:
        return dict(verified=False)
    worst = report.worst_block()
    return dict(verified=True, sample_shape=list(report.sample_shape), seed=seed,
                max_abs_diff=report.outputs.max_abs, max_rel_diff=report.outputs.max_rel,
                worst_block=worst.name if worst else None,
                worst_block_rel_diff=worst.diff.max_rel if worst else None)


def convert_whole_model(config: str, checkpoint: str, *, cfg_options: Optional[dict] = None,
                        weights: str = 'auto', tolerance: float = DEFAULT_TOLERANCE,
                        sample_shape: Sequence[int] = DEFAULT_SAMPLE_SHAPE, seed: int = 0,
                        verify: bool = True, module_prefix: bool = False,
                        logger: Optional[MMLogger] = None) -> ConversionResult:
    """Fuse every RepVGG block of the model that ``config`` builds, with ``checkpoint``'s weights.

    Steps: build the training-time model and load the weights strictly (``weights``: 'auto', 'ema'
    or 'raw', see :mod:`repvgg_mm.checkpoint.reader`); build the deploy model from the dumped
    deploy config; copy all weights over, fusing the blocks; prove that every other tensor is
    bit-identical; unless ``verify=False``, run both models on a deterministic sample
    ``(1, C, *sample_shape)`` in eval mode and refuse, naming the first diverging block, when a
    relative error exceeds ``tolerance``. Nothing is written (see :func:`write_conversion`).
    """
    logger = logger or MMLogger.get_current_instance()
    cfg = load_config(config, cfg_options)
    source = read_training_checkpoint(checkpoint, weights)
    logger.info(f'{checkpoint}: {source.layout}; converting {source.selected} '
                f'({len(source.state)} tensors)')
    train_model, fused_names = _training_model(cfg, config, checkpoint, source.state)
    logger.info(f'built {type(train_model).__name__} (scope {config_scope(cfg)}) with '
                f'{len(fused_names)} RepVGG blocks and loaded the weights strictly')

    deploy_cfg, flagged, deploy_model = _deploy_model(cfg)
    _load_fused(train_model, deploy_model)
    deploy_state = deploy_model.state_dict()
    untouched = check_untouched_tensors(source.state, deploy_state, fused_names)
    logger.info(f'fused {len(fused_names)} blocks; {untouched} other tensors are bit-identical')

    report = None
    if verify:
        sample = make_sample(train_model, sample_shape, seed=seed)
        logger.info(f'verifying on a deterministic sample {tuple(sample.shape)} (seed {seed})')
        report = check_equivalence(train_model, deploy_model, sample, tolerance, seed)
        assert_equivalent(report)

    record = dict(
        tool='repvgg_mm.conversion.convert_whole_model', **_versions(),
        source_config=os.path.abspath(config), cfg_options=dict(cfg_options or {}),
        source_checkpoint=os.path.abspath(checkpoint), source_layout=source.layout,
        source_weights=source.selected, dropped_entries=source.dropped_entries,
        deploy_flags=flagged, blocks_fused=len(fused_names), fused_blocks=fused_names,
        params_before=count_parameters(train_model), params_after=count_parameters(deploy_model),
        untouched_tensors=untouched, tolerance=tolerance, module_prefix=module_prefix,
        **_verification_record(report, seed))
    meta = dict(source.meta, **{FUSION_META_KEY: record})
    state = dict(deploy_state)
    return ConversionResult(deploy_cfg, add_ddp_prefix(state) if module_prefix else state,
                            meta, record, report)


def write_conversion(result: ConversionResult, config: str, checkpoint: str, out_dir: str,
                     force: bool = False) -> Tuple[str, str]:
    """Write the deploy config and checkpoint into ``out_dir`` atomically; return their paths."""
    cfg_path, ckpt_path = output_paths(config, checkpoint, out_dir)
    check_output_location([config, checkpoint], out_dir, [cfg_path, ckpt_path], force)
    created = not os.path.isdir(out_dir)
    os.makedirs(out_dir, exist_ok=True)
    result.deploy_cfg.load_from = os.path.abspath(ckpt_path)
    result.record.update(deploy_config=os.path.basename(cfg_path),
                         deploy_checkpoint=os.path.basename(ckpt_path))
    try:
        atomic_write_all({
            cfg_path: result.deploy_cfg.dump,
            ckpt_path: lambda tmp: torch.save(dict(meta=result.meta, state_dict=result.state_dict),
                                              tmp)})
    except BaseException:
        if created and not os.listdir(out_dir):
            os.rmdir(out_dir)
        raise
    return cfg_path, ckpt_path


def summary_lines(result: ConversionResult) -> List[str]:
    """Human-readable summary of a conversion."""
    rec = result.record
    before, after = rec['params_before'], rec['params_after']
    lines = [
        f"blocks fused      : {rec['blocks_fused']}",
        f"params            : {before:,} -> {after:,} ({(after - before) / before:+.2%})",
        f"untouched tensors : {rec['untouched_tensors']} bit-identical",
        f"weights           : {rec['source_weights']} of a {rec['source_layout']}",
        f"deploy=True set at: {', '.join(rec['deploy_flags'])}",
    ]
    if rec['verified']:
        lines += [
            f"sample            : {tuple(rec['sample_shape'])}, seed {rec['seed']}, eval mode",
            f"max abs diff      : {rec['max_abs_diff']:.3g}",
            f"max rel diff      : {rec['max_rel_diff']:.3g} (tolerance {rec['tolerance']:g}; worst "
            f"block {rec['worst_block']} {rec['worst_block_rel_diff']:.3g})",
        ]
    else:
        lines.append('verification      : skipped (--no-verify)')
    return lines


def _load_fused(train_model: nn.Module, deploy_model: nn.Module) -> None:
    """Load ``train_model``'s weights, every RepVGG block fused, strictly into ``deploy_model``
    (the same network built with ``deploy=True``); every other tensor is copied unchanged."""
    state, _ = fused_state_dict(train_model)
    try:
        load_state_dict_strict(deploy_model, state, source='of the fused training-time model')
    except CheckpointError as exc:
        raise ConversionError('the deploy model does not match the fused training-time model: '
                              f'{exc}') from exc


# The original RepVGG API's names (DingXiaoH/RepVGG: repvgg.py and tools), kept as aliases for its
# users; repvgg_mm's names are fuse_repvgg_blocks (in memory) and convert_whole_model (files).

def whole_model_convert(train_model: nn.Module, deploy_model: nn.Module,
                        save_path: Optional[str] = None) -> nn.Module:
    """Alias of the original RepVGG API: copy all weights of ``train_model`` into the already
    built ``deploy_model`` (the same network with ``deploy=True`` on its RepVGG modules), fusing
    RepVGG blocks, and return it. Loading is strict (a readable error lists missing, unexpected
    or mismatched keys); every other tensor is copied unchanged. ``save_path``: also save
    ``deploy_model``'s state dict there (atomically). New code: :func:`convert_whole_model`
    (files) or :func:`repvgg_mm.models.fuse_repvgg_blocks` (in memory)."""
    _load_fused(train_model, deploy_model)
    if save_path is not None:
        atomic_torch_save(deploy_model.state_dict(), save_path)
    return deploy_model


def repvgg_model_convert(model: nn.Module, save_path: Optional[str] = None,
                         do_copy: bool = True) -> nn.Module:
    """Alias of the original RepVGG API: :func:`repvgg_mm.models.fuse_repvgg_blocks` (a deep copy
    of ``model`` unless ``do_copy=False``, every RepVGG block fused). ``save_path``: also save the
    fused model's flat state dict there (atomically), loadable with
    ``deploy_model.load_state_dict(torch.load(save_path))``."""
    model = fuse_repvgg_blocks(model, do_copy=do_copy)
    if save_path is not None:
        atomic_torch_save(model.state_dict(), save_path)
    return model
