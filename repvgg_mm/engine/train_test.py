"""The bodies of ``tools/train.py`` and ``tools/test.py``, for repvgg_mm, mmseg and mmdet configs
(launching several processes: :mod:`repvgg_mm.engine.distributed`).

The codebase comes from the config's ``default_scope``: ``repvgg_mm`` (classification),
``mmseg`` or ``mmdet``; seg/det configs get the behaviour of mmseg's/mmdet's own scripts. Runs use
:class:`~repvgg_mm.engine.runner.RepVGGRunner`, which reads checkpoints through the project's safe
reader and loads them strictly.
"""
import copy
import logging
import os.path as osp
import sys
from typing import Any, Callable, Optional

import torch
from mmengine.config import Config, ConfigDict
from mmengine.device import get_device
from mmengine.logging import print_log

from repvgg_mm.checkpoint import check_checkpoint_file
from repvgg_mm.datasets.checks import check_config_inputs, check_data_root
from repvgg_mm.utils.config import load_config, setup_codebase
from repvgg_mm.utils.console import WarningRouter
from repvgg_mm.utils.errors import UserError, first_line
from repvgg_mm.utils.fileio import write_error, write_json_atomic

from .compile import compile_kwargs
from .distributed import adapt_to_cpu, stop_with_launcher
from .runner import RepVGGRunner
from .work_dir import disk_error, run_files

CHECKPOINT_HOOK = 'repvgg_mm.RepVGGCheckpointHook'


def set_work_dir(cfg: Config, config_path: str, work_dir: Optional[str]) -> None:
    """CLI ``--work-dir`` > ``work_dir`` in the file > ``work_dirs/<config name>``."""
    if work_dir is not None:
        cfg.work_dir = work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(config_path))[0])


def enable_amp(cfg: Config) -> None:
    """Switch the optimizer wrapper to mmengine's ``AmpOptimWrapper`` (dynamic loss scale)."""
    wrapper_type = cfg.optim_wrapper.get('type', 'OptimWrapper')
    if wrapper_type == 'AmpOptimWrapper':
        print_log('AMP training is already enabled in the config.', logger='current',
                  level=logging.WARNING)
        return
    if wrapper_type != 'OptimWrapper':
        raise UserError(f'--amp needs optim_wrapper.type=OptimWrapper, not {wrapper_type}')
    from mmengine.device import is_cuda_available, is_mlu_available, is_npu_available
    if not (is_cuda_available() or is_npu_available() or is_mlu_available()):
        raise UserError('--amp needs a GPU (or NPU/MLU): mmengine AMP does not run on the CPU')
    cfg.optim_wrapper.type = 'AmpOptimWrapper'
    cfg.optim_wrapper.loss_scale = 'dynamic'


def enable_auto_scale_lr(cfg: Config) -> None:
    """Scale the learning rate by (GPUs x batch per GPU) / ``auto_scale_lr.base_batch_size``."""
    auto_scale_lr = cfg.get('auto_scale_lr') or {}
    if 'base_batch_size' not in auto_scale_lr:
        raise UserError('--auto-scale-lr needs auto_scale_lr=dict(base_batch_size=...) in the '
                        'config')
    cfg.auto_scale_lr.enable = True


def set_resume(cfg: Config, resume: Optional[str]) -> None:
    """``resume='auto'``: the latest checkpoint of the work dir (its ``last_checkpoint`` file),
    which must exist; a path: that checkpoint (read, and refused if missing, by the safe
    reader)."""
    if resume is None:
        return
    cfg.resume = True
    if resume != 'auto':
        cfg.load_from = resume
        return
    record = osp.join(cfg.work_dir, 'last_checkpoint')
    if not osp.isfile(record):
        raise UserError(f'--resume: nothing to resume in {cfg.work_dir} (no last_checkpoint file '
                        'there); give the checkpoint (--resume PATH) or the run\'s --work-dir, '
                        'or leave --resume out to start training')
    with open(record, encoding='utf-8') as handle:
        latest = handle.read().strip()
    if not latest or not osp.isfile(latest):
        raise UserError(f'--resume: {record} names {latest or "nothing"}, which is not a file; '
                        'give the checkpoint with --resume PATH')
    cfg.load_from = latest


def fix_dataloader_workers(cfg: Config) -> None:
    """``persistent_workers`` is invalid with ``num_workers=0`` in PyTorch, and ``pin_memory``
    does nothing without an accelerator (torch warns on every loader): drop them there."""
    for key in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        loader = cfg.get(key)
        if not isinstance(loader, dict):
            continue
        if loader.get('num_workers', 0) == 0 and loader.get('persistent_workers'):
            loader.persistent_workers = False
        if loader.get('pin_memory') and not torch.cuda.is_available():
            loader.pin_memory = False


def add_custom_hook(cfg: Config, hook: dict) -> None:
    cfg.custom_hooks = list(cfg.get('custom_hooks') or []) + [hook]


def use_checkpoint_hook(cfg: Config) -> None:
    """Checkpoints through :class:`~repvgg_mm.engine.hooks.RepVGGCheckpointHook` (mmengine's hook
    with atomic files and the random states for an exact resume), said in the log."""
    hooks = cfg.get('default_hooks')
    if hooks is None:
        cfg.default_hooks = hooks = ConfigDict()
    checkpoint = hooks.get('checkpoint')
    if checkpoint is None:  # mmengine's default: CheckpointHook(interval=1)
        hooks['checkpoint'] = dict(type=CHECKPOINT_HOOK, interval=1)
    elif checkpoint.get('type') in ('CheckpointHook', 'mmengine.CheckpointHook'):
        checkpoint['type'] = CHECKPOINT_HOOK
    else:
        return
    print_log('checkpoints: repvgg_mm.RepVGGCheckpointHook (CheckpointHook with atomic files and '
              'the random states of every process, for an exact --resume)', logger='current')


def _raise_log_errors(logger: logging.Logger) -> None:
    """A log file that cannot be written (full disk) stops the run with one line naming it,
    instead of Python's ``--- Logging error ---`` tracebacks on every later message."""
    for handler in logger.handlers:
        if isinstance(handler, logging.FileHandler):
            def handle_error(record, path=handler.baseFilename):
                exc = sys.exc_info()[1]
                raise write_error(path, exc) from exc
            handler.handleError = handle_error


def build_runner(cfg: Config) -> RepVGGRunner:
    """A :class:`RepVGGRunner` for ``cfg`` (a config's own ``runner_type`` is refused: its
    checkpoint loading would bypass the safe reader)."""
    if cfg.get('runner_type') not in (None, 'RepVGGRunner', 'repvgg_mm.RepVGGRunner'):
        raise UserError(f'runner_type={cfg.runner_type!r} is not supported by the repvgg_mm tools '
                        '(they load checkpoints through repvgg_mm.RepVGGRunner)')
    adapt_to_cpu(cfg)  # no CUDA: gloo, CPU DDP, SyncBN -> BN (repvgg_mm/engine/distributed.py)
    use_checkpoint_hook(cfg)
    try:
        runner = RepVGGRunner.from_cfg(cfg)
    except (UserError, OSError):
        raise
    except Exception as exc:  # unknown types, bad arguments: a config mistake (--debug: traceback)
        raise UserError(f'cannot build the runner from the config: {first_line(exc)}') from exc
    _raise_log_errors(runner.logger)
    return runner


def run_loop(loop: Callable[[], Any], work_dir: str) -> Any:
    """Run ``runner.train``/``runner.test``; an image the data pipeline cannot decode (mmcv's
    LoadImageFromFile asserts) becomes a one-line error naming the file, a failed write (a full
    disk) one naming the file or the work dir."""
    try:
        return loop()
    except UserError:
        raise
    except OSError as exc:
        raise disk_error(work_dir, exc) from exc
    except AssertionError as exc:
        if 'failed to load image' in str(exc):
            raise UserError(str(exc).strip().splitlines()[0]) from exc
        raise


def train(config: str, work_dir: Optional[str] = None, resume: Optional[str] = None,
          amp: bool = False, auto_scale_lr: bool = False, cfg_options: Optional[dict] = None,
          launcher: str = 'none', verbose: bool = False):
    """Train from ``config`` (the body of ``tools/train.py``); returns the trained model.

    The terminal shows progress and results; the environment, the config, the hook table and
    the known upstream warnings go to the run's log file only, unless ``verbose``.
    """
    with WarningRouter(verbose):
        return _train(config, work_dir, resume, amp, auto_scale_lr, cfg_options, launcher)


def _train(config, work_dir, resume, amp, auto_scale_lr, cfg_options, launcher):
    cfg = load_config(config, cfg_options)
    setup_codebase(cfg)
    cfg.launcher = launcher
    set_work_dir(cfg, config, work_dir)
    if amp:
        enable_amp(cfg)
    if auto_scale_lr:
        enable_auto_scale_lr(cfg)
    set_resume(cfg, resume)
    fix_dataloader_workers(cfg)
    check_config_inputs(cfg, ('train', 'val'))
    compile_kwargs(cfg.get('compile'), get_device(), log=False)  # a bad value: before any write
    if launcher == 'pytorch':
        stop_with_launcher()
    with run_files(cfg.work_dir, lock=True):
        runner = build_runner(cfg)
        return run_loop(runner.train, cfg.work_dir)


def _trigger_visualization(cfg: Config, scope: str, show: bool, show_dir: Optional[str],
                           wait_time: float) -> None:
    hooks = cfg.get('default_hooks') or {}
    if 'visualization' not in hooks:
        raise UserError("--show/--show-dir need default_hooks.visualization "
                        "(e.g. dict(type='SegVisualizationHook'))")
    hook = hooks['visualization']
    hook['draw'] = True
    if show:
        hook['show'] = True
        hook['wait_time'] = wait_time
    if show_dir:
        if scope == 'mmseg':
            cfg.visualizer['save_dir'] = show_dir
        else:
            hook['test_out_dir'] = show_dir


def _default_det_tta(cfg: Config) -> None:
    """mmdet's default flip test-time augmentation when the config brings none."""
    if 'tta_model' not in cfg:
        cfg.tta_model = dict(type='DetTTAModel', tta_cfg=dict(
            nms=dict(type='nms', iou_threshold=0.5), max_per_img=100))
    if 'tta_pipeline' not in cfg:
        dataset = cfg.test_dataloader.dataset
        while 'dataset' in dataset:
            dataset = dataset['dataset']
        pipeline = copy.deepcopy(dataset.pipeline)
        pipeline[-1] = dict(type='TestTimeAug', transforms=[
            [dict(type='RandomFlip', prob=1.), dict(type='RandomFlip', prob=0.)],
            [dict(type='PackDetInputs', meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                                                   'scale_factor', 'flip', 'flip_direction'))]])
        cfg.tta_pipeline = pipeline


def _enable_tta(cfg: Config, scope: str) -> None:
    if scope == 'mmdet':
        _default_det_tta(cfg)
    elif 'tta_model' not in cfg or 'tta_pipeline' not in cfg:
        raise UserError('--tta needs tta_model and tta_pipeline in the config')
    cfg.model = ConfigDict(**cfg.tta_model, module=cfg.model)
    cfg.test_dataloader.dataset.pipeline = cfg.tta_pipeline


def _dump_metric(scope: str, out: str):
    if not out.endswith(('.pkl', '.pickle')):
        raise UserError(f'--out must name a .pkl file for {scope} configs, got {out}')
    if scope == 'mmdet':
        from mmdet.evaluation import DumpDetResults
        return DumpDetResults(out_file_path=out)
    from mmengine.evaluator import DumpResults
    return DumpResults(out_file_path=out)


def test(config: str, checkpoint: str, work_dir: Optional[str] = None, out: Optional[str] = None,
         out_item: str = 'pred', show: bool = False, show_dir: Optional[str] = None,
         wait_time: float = 2, cfg_options: Optional[dict] = None, launcher: str = 'none',
         tta: bool = False, fuse: bool = False, backend: Optional[str] = None,
         verbose: bool = False) -> dict:
    """Test ``checkpoint`` with ``config`` (the body of ``tools/test.py``); returns the metrics.

    The checkpoint must fit the model exactly. ``fuse`` re-parameterises every RepVGG block after
    loading. ``out`` with ``out_item='pred'``: mmseg: a folder for the predicted label maps,
    otherwise a ``.pkl`` file of the predictions; with ``out_item='metrics'``: a ``.json`` file of
    the metrics. ``backend``: ``'pytorch'`` or ``'onnxruntime'``; by default a ``.onnx`` file or a
    model folder runs on ONNX Runtime (``repvgg_mm.ONNXRuntimeModel`` replaces the exported part
    of the config's model), anything else is a PyTorch checkpoint. The terminal: as
    :func:`train`'s.
    """
    with WarningRouter(verbose):
        return _test(config, checkpoint, work_dir, out, out_item, show, show_dir, wait_time,
                     cfg_options, launcher, tta, fuse, backend)


def _test(config, checkpoint, work_dir, out, out_item, show, show_dir, wait_time, cfg_options,
          launcher, tta, fuse, backend) -> dict:
    if out_item not in ('pred', 'metrics'):
        raise UserError(f"--out-item must be 'pred' or 'metrics', got {out_item!r}")
    if out is not None and out_item == 'metrics' and not out.endswith('.json'):
        raise UserError(f'--out-item metrics writes JSON: --out must end with .json, got {out}')
    dump_pred = out if out_item == 'pred' else None
    cfg = load_config(config, cfg_options)
    scope = setup_codebase(cfg)
    cfg.launcher = launcher
    set_work_dir(cfg, config, work_dir)
    if backend not in (None, 'pytorch', 'onnxruntime'):
        raise UserError(f"--backend must be 'pytorch' or 'onnxruntime', got {backend!r}")
    onnx = backend == 'onnxruntime' or backend is None and (
        checkpoint.lower().endswith('.onnx') or osp.isdir(checkpoint))
    if onnx and (fuse or tta):
        raise UserError('--fuse and --tta apply to PyTorch checkpoints, not ONNX models')
    if onnx:  # the wrapper checks the file against the model and reads no checkpoint
        if not osp.exists(checkpoint):
            raise UserError(f'ONNX model not found: {checkpoint}')
        cfg.model = ConfigDict(type='repvgg_mm.ONNXRuntimeModel', model=cfg.model,
                               onnx=checkpoint, scope=scope)
    else:
        check_checkpoint_file(checkpoint)  # before the data checks: the reader's own message
    cfg.load_from = None if onnx else checkpoint
    cfg.resume = False
    if show or show_dir:
        if scope == 'repvgg_mm':
            raise UserError('--show/--show-dir apply to segmentation and detection configs')
        _trigger_visualization(cfg, scope, show, show_dir, wait_time)
    if tta:
        if scope == 'repvgg_mm':
            raise UserError('--tta applies to segmentation and detection configs')
        _enable_tta(cfg, scope)
    if dump_pred is not None and scope == 'mmseg':
        cfg.test_evaluator['output_dir'] = out
        cfg.test_evaluator['keep_results'] = True
    if fuse:
        add_custom_hook(cfg, dict(type='repvgg_mm.RepVGGFuseHook'))
    fix_dataloader_workers(cfg)
    check_data_root(cfg, ('test', ))
    dump = _dump_metric(scope, out) if dump_pred is not None and scope != 'mmseg' else None
    with run_files(cfg.work_dir):
        runner = build_runner(cfg)
        if dump is not None:
            runner.test_evaluator.metrics.append(dump)
        metrics = run_loop(runner.test, cfg.work_dir)
    if out is not None and out_item == 'metrics' and _is_main_process():
        write_json_atomic(metrics, out)
    return metrics


def _is_main_process() -> bool:
    from mmengine.dist import is_main_process
    return is_main_process()
