"""Up-front checks that a config's input files exist, with one-line errors that say how to fix them.

Runner only notices a missing dataset or pretrained checkpoint deep inside dataset or weight
initialisation; these checks run on the config before anything is built::

    check_config_inputs(cfg)            # train + val data, then pretrained weights and load_from
    check_data_root(cfg, ('test', ))    # what a test run reads

(the checkpoints are checked by :func:`repvgg_mm.checkpoint.check_checkpoints`, next to the
reader).
"""
import os
from typing import Iterator, List, Sequence, Tuple

from repvgg_mm.checkpoint import check_checkpoints
from repvgg_mm.utils.errors import MissingInputError

PHASES = ('train', 'val', 'test')


def _is_remote(path: str) -> bool:
    return '://' in path


def _join(root: str, path: str) -> str:
    return path if not root or os.path.isabs(path) or _is_remote(path) else os.path.join(root, path)


def _leaf_datasets(dataset_cfg, key: str) -> Iterator[Tuple[dict, str]]:
    """``(cfg, config key)`` of the datasets that read files, looking through dataset wrappers."""
    if not isinstance(dataset_cfg, dict):
        return
    if isinstance(dataset_cfg.get('dataset'), dict):  # RepeatDataset, ClassBalancedDataset, ...
        yield from _leaf_datasets(dataset_cfg['dataset'], f'{key}.dataset')
    elif isinstance(dataset_cfg.get('datasets'), (list, tuple)):  # ConcatDataset
        for i, sub in enumerate(dataset_cfg['datasets']):
            yield from _leaf_datasets(sub, f'{key}.datasets.{i}')
    else:
        yield dataset_cfg, key


def dataset_input_paths(dataset_cfg, key: str = 'dataset') -> List[Tuple[str, str]]:
    """``(path, config key)`` of the folders/files a dataset config reads, joined as BaseDataset
    does: ``data_root`` itself, then every ``data_prefix`` entry and ``ann_file`` under it."""
    paths = []
    for leaf, leaf_key in _leaf_datasets(dataset_cfg, key):
        root = leaf.get('data_root') or ''
        if root and not _is_remote(root):
            paths.append((root, f'{leaf_key}.data_root'))
        prefixes = leaf.get('data_prefix') or {}
        for name, prefix in (prefixes.items() if isinstance(prefixes, dict) else ()):
            if isinstance(prefix, str) and prefix:
                paths.append((_join(root, prefix), f'{leaf_key}.data_prefix.{name}'))
        ann_file = leaf.get('ann_file')
        if isinstance(ann_file, str) and ann_file:
            paths.append((_join(root, ann_file), f'{leaf_key}.ann_file'))
    return [(p, k) for p, k in paths if not _is_remote(p)]


def _active_phases(cfg, phases: Sequence[str]) -> List[str]:
    unknown = set(phases) - set(PHASES)
    if unknown:
        raise ValueError(f'unknown phases {sorted(unknown)}; choose from {PHASES}')
    # A phase counts when its dataloader is configured and its loop is not switched off.
    return [p for p in phases
            if cfg.get(f'{p}_dataloader') and cfg.get(f'{p}_cfg', True) is not None]


def _evaluator_files(cfg, phase: str) -> List[Tuple[str, str]]:
    """``(path, config key)`` of annotation files an evaluator reads itself (e.g. CocoMetric)."""
    key = f'{phase}_evaluator'
    evaluator = cfg.get(key)
    metrics = evaluator if isinstance(evaluator, (list, tuple)) else [evaluator]
    found = []
    for i, metric in enumerate(metrics):
        ann_file = metric.get('ann_file') if isinstance(metric, dict) else None
        if isinstance(ann_file, str) and ann_file and not _is_remote(ann_file):
            found.append((ann_file, key if len(metrics) == 1 else f'{key}.{i}'))
    return found


def check_data_root(cfg, phases: Sequence[str] = ('train', 'val')) -> None:
    """Raise :class:`MissingInputError` naming the first missing dataset path of ``phases``.

    Checks every dataloader's ``data_root``, ``data_prefix`` entries and ``ann_file``, then the
    evaluators' own ``ann_file``. The message says which config key holds the path and the
    ``--cfg-options`` that move the dataset of every checked phase.
    """
    active = _active_phases(cfg, phases)
    for phase in active:
        loader_key = f'{phase}_dataloader'
        paths = dataset_input_paths(cfg[loader_key].get('dataset'), f'{loader_key}.dataset')
        paths += [(p, f'{k}.ann_file') for p, k in _evaluator_files(cfg, phase)]
        for path, key in paths:
            if os.path.exists(path):
                continue
            kind = 'file' if key.endswith('ann_file') else 'folder'
            raise MissingInputError(
                f'dataset {kind} not found: {path} (from {key}); put the dataset there or point '
                f'the config at it with --cfg-options {" ".join(_fix_options(cfg, active))}')


def _fix_options(cfg, phases: Sequence[str]) -> List[str]:
    """``KEY=DIR`` / ``KEY=FILE`` options that relocate the datasets of ``phases``."""
    options = []
    for phase in phases:
        loader_key = f'{phase}_dataloader'
        for _, key in _leaf_datasets(cfg[loader_key].get('dataset'), f'{loader_key}.dataset'):
            options.append(f'{key}.data_root=DIR')
        options += [f'{k}.ann_file=FILE' for _, k in _evaluator_files(cfg, phase)]
    return list(dict.fromkeys(options))


def check_config_inputs(cfg, phases: Sequence[str] = ('train', 'val')) -> None:
    """All up-front input checks of a run: datasets of ``phases``, then checkpoints."""
    check_data_root(cfg, phases)
    check_checkpoints(cfg)
