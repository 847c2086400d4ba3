"""The deployment pipeline, as ``mmdeploy.apis`` offers it: a config + checkpoint into an ONNX model
folder (:func:`export_model`), its static INT8 model with a per-conv sensitivity analysis and the
partial quantization that keeps a metric drop bounded (:func:`quantize_model`), and the score of
any ONNX model by the config's own test dataloader and evaluator (:func:`evaluate`).

A training-time checkpoint is fused through :func:`repvgg_mm.conversion.convert_whole_model`
(build, strict load, fuse, proof of equivalence); a fused checkpoint is loaded strictly into the
deploy config's model. Outputs are written all or nothing (a temporary folder renamed at the end).
"""
import math
import os
import tempfile
import uuid
from typing import Dict, Optional, Sequence, Tuple, Union

import torch
from mmengine.config import Config
from mmengine.logging import MMLogger
from torch import nn

from repvgg_mm.checkpoint import (
    check_checkpoint_file,
    find_fused_keys,
    load_state_dict_strict,
    read_weights,
)
from repvgg_mm.conversion import convert_whole_model, deploy_config
from repvgg_mm.deploy.int8 import (
    ACTIVATION_TYPE,
    QUANT_OPTIONS,
    WEIGHT_TYPE,
    conv_sensitivity,
    preprocessed_inputs,
    quantize_onnx,
    quantized_convs,
    search_keep_fp32,
)
from repvgg_mm.deploy.model_folder import (
    FP32_FILE,
    INT8_FILE,
    ModelInfo,
    check_output_folder,
    export_to_folder,
    exported_part,
)
from repvgg_mm.deploy.onnx_export import DEFAULT_OPSET
from repvgg_mm.deploy.runtime import create_session
from repvgg_mm.engine import test as run_test
from repvgg_mm.models import build_analysis_model
from repvgg_mm.models.utils import training_time_blocks
from repvgg_mm.utils.config import load_config, setup_codebase
from repvgg_mm.utils.errors import UserError
from repvgg_mm.utils.fileio import atomic_output_dir, write_json_atomic
from repvgg_mm.utils.timing import time_interleaved, torch_threads

REPORT_FILE = 'quantize_report.json'
# the metric a config's evaluator reports first, per codebase (higher is better for all)
PRIMARY_METRICS = ('mIoU', 'coco/bbox_mAP', 'accuracy/top1')


def load_deploy_model(config: str, checkpoint: str, cfg_options: Optional[dict] = None,
                      logger: Optional[MMLogger] = None) -> Tuple[Config, nn.Module, dict]:
    """``(deploy config, fused model in eval mode, checkpoint meta)`` for a training-time or a
    fused checkpoint of ``config`` (weights read by the safe reader, loaded strictly)."""
    logger = logger or MMLogger.get_current_instance()
    cfg = load_config(config, cfg_options)
    setup_codebase(cfg)
    weights = read_weights(checkpoint)  # refuses NaN/inf weights
    if find_fused_keys(weights.state):
        deploy_cfg, _ = deploy_config(cfg)
        state = weights.state
        logger.info(f'{checkpoint} holds fused weights: loading them into the deploy model')
    else:
        result = convert_whole_model(config, checkpoint, cfg_options=cfg_options, logger=logger)
        deploy_cfg, state = result.deploy_cfg, result.state_dict
    model = build_analysis_model(deploy_cfg)
    if training_time_blocks(model):
        raise UserError(f'{config}: the deploy config still builds training-time RepVGG blocks')
    load_state_dict_strict(model, state, source=f'of {checkpoint}')
    return deploy_cfg, model.eval(), weights.meta


def _dataset_meta(cfg: Config, meta: dict) -> dict:
    """Class names (and palette) of the model: the checkpoint's ``dataset_meta``, else the
    config's test dataset ``metainfo``; a palette only where it has one colour per class."""
    test_set = (cfg.get('test_dataloader') or {}).get('dataset') or {}
    while isinstance(test_set.get('dataset'), dict):
        test_set = test_set['dataset']
    sources = [{k.lower(): v for k, v in (meta.get('dataset_meta') or {}).items()},
               dict(test_set.get('metainfo') or {})]
    classes = next((list(s['classes']) for s in sources if s.get('classes')), None)
    if not classes:
        return {}
    palette = next((s['palette'] for s in sources
                    if s.get('palette') and len(s['palette']) == len(classes)), None)
    return dict(classes=classes, **({'palette': [list(c) for c in palette]} if palette else {}))


def _example(cfg: Config, model: nn.Module, input_size: Optional[Sequence[int]]) -> torch.Tensor:
    """One preprocessed test image, or a random input of ``input_size`` (H, W)."""
    if input_size:
        height, width = (input_size[0], input_size[0]) if len(input_size) == 1 else input_size
        if min(height, width) < 8:
            raise UserError(f'--input-size must be >= 8, got {list(input_size)}')
        return torch.randn(1, 3, height, width, generator=torch.Generator().manual_seed(0))
    return torch.from_numpy(preprocessed_inputs(cfg, model.data_preprocessor, 'test', 1)[0])


def _check_inputs(config: str, checkpoint: str, cfg_options: Optional[dict]) -> None:
    """Refuse a missing or broken config or checkpoint before any output is touched (with the
    messages of the config loader and the weights reader)."""
    load_config(config, cfg_options)
    check_checkpoint_file(checkpoint)


def export_model(config: str, checkpoint: str, out_dir: str, *,
                 input_size: Optional[Sequence[int]] = None, force: bool = False,
                 cfg_options: Optional[dict] = None, exporter: str = 'auto',
                 opset: int = DEFAULT_OPSET, logger: Optional[MMLogger] = None) -> ModelInfo:
    """Write the ONNX model folder of ``config`` + ``checkpoint`` to ``out_dir`` (see
    :mod:`repvgg_mm.deploy.model_folder`). The export example is the config's first test image
    unless ``input_size`` (H, W) is given."""
    logger = logger or MMLogger.get_current_instance()
    _check_inputs(config, checkpoint, cfg_options)
    replace = check_output_folder(out_dir, [config, checkpoint], force)
    cfg, model, meta = load_deploy_model(config, checkpoint, cfg_options, logger)
    example = _example(cfg, model, input_size)
    with atomic_output_dir(out_dir, replace=replace) as tmp:
        info = export_to_folder(tmp, cfg, model, example, source_checkpoint=checkpoint,
                                dataset_meta=_dataset_meta(cfg, meta), exporter=exporter,
                                opset=opset, logger=logger)
    logger.info(f'wrote the model folder {out_dir}')
    return info


def evaluate(config: str, model_path: str, cfg_options: Optional[dict] = None,
             quiet: bool = True) -> Dict[str, float]:
    """The metrics of an ONNX model (a ``.onnx`` file or a model folder) or a checkpoint, from
    the config's test dataloader and evaluator (``tools/test.py`` without writing anything)."""
    # mmengine keeps loggers and visualizers by name for the whole process: fresh names let one
    # process build many Runners (a config's named visualizer would keep the first work dir)
    run_name = f'evaluate_{uuid.uuid4().hex[:8]}'
    options = dict(cfg_options or {}, experiment_name=run_name)
    if isinstance(load_config(config, cfg_options).get('visualizer'), dict):
        options['visualizer.name'] = run_name
    if quiet:
        options['log_level'] = 'WARNING'
    with tempfile.TemporaryDirectory() as work_dir:
        metrics = run_test(config, model_path, work_dir=work_dir, cfg_options=options)
    return {k: float(v) for k, v in metrics.items() if isinstance(v, (int, float))}


def primary_metric(metrics: Dict[str, float], name: Optional[str] = None) -> str:
    """``name`` if the metrics have it, else the first of :data:`PRIMARY_METRICS` they have."""
    if name is not None:
        if name not in metrics:
            raise UserError(f'the evaluator reports no metric {name!r}; it reports '
                            f'{sorted(metrics)}')
        return name
    for candidate in PRIMARY_METRICS:
        if candidate in metrics:
            return candidate
    raise UserError(f'no known primary metric in {sorted(metrics)}; choose one with --metric')


def measure_latency(models: Dict[str, Union[str, nn.Module]], example: torch.Tensor,
                    threads: Optional[int] = None, repeats: int = 7, warmup: int = 2
                    ) -> Dict[str, float]:
    """Median milliseconds per call of ONNX models (paths) and PyTorch modules on ``example``,
    timed in interleaved rounds in this process."""
    array = example.numpy()
    workloads = {}
    for name, model in models.items():
        if isinstance(model, str):
            session = create_session(model, threads)
            feed = {session.get_inputs()[0].name: array}
            workloads[name] = (lambda s=session, f=feed: s.run(None, f))
        else:
            def run(m=model):
                with torch.inference_mode():
                    m(example)
            workloads[name] = run
    with torch_threads(threads):
        timings = time_interleaved(workloads, repeats, warmup)
    return {name: 1000.0 * timing.median for name, timing in timings.items()}


def quantize_model(config: str, checkpoint: str, out_dir: str, *, calib: int = 32,
                   calib_split: str = 'train', keep_fp32: Optional[int] = None,
                   max_drop: Optional[float] = None, val: bool = False,
                   metric: Optional[str] = None, input_size: Optional[Sequence[int]] = None,
                   threads: Optional[int] = None, latency_repeats: int = 7, force: bool = False,
                   cfg_options: Optional[dict] = None, logger: Optional[MMLogger] = None
                   ) -> dict:
    """Export ``config`` + ``checkpoint`` to a model folder in ``out_dir`` with its static INT8
    model; returns (and writes as ``quantize_report.json``) the report.

    Calibration: the first ``calib`` images of the ``calib_split`` dataloader (test pipeline).
    ``keep_fp32=K`` keeps the K convs of highest sensitivity in floating point; ``max_drop=D``
    (with ``val``) searches the smallest such K whose metric drop on the config's test split stays
    within D (in the metric's own units: mIoU points, mAP fraction, top-1 points). ``val`` scores
    the FP32 and INT8 models with the config's evaluator. Latencies: the exported part on one test
    input, PyTorch eager vs ONNX Runtime FP32 vs INT8, interleaved medians.
    """
    logger = logger or MMLogger.get_current_instance()
    if calib < 1:
        raise UserError(f'--calib must be >= 1, got {calib}')
    if keep_fp32 is not None and keep_fp32 < 0:
        raise UserError(f'--keep-fp32 must be >= 0, got {keep_fp32}')
    if max_drop is not None:
        if keep_fp32 is not None:
            raise UserError('--keep-fp32 and --max-drop exclude each other')
        if not val:
            raise UserError('--max-drop needs --val (the search scores the test split)')
        if not math.isfinite(max_drop) or max_drop < 0:
            raise UserError(f'--max-drop must be a finite number >= 0, got {max_drop}')
    if latency_repeats < 1:
        raise UserError(f'--latency-repeats must be >= 1, got {latency_repeats}')
    _check_inputs(config, checkpoint, cfg_options)
    replace = check_output_folder(out_dir, [config, checkpoint], force)
    cfg, model, meta = load_deploy_model(config, checkpoint, cfg_options, logger)
    calibration = preprocessed_inputs(cfg, model.data_preprocessor, calib_split, calib)
    example = _example(cfg, model, input_size)
    with atomic_output_dir(out_dir, replace=replace) as tmp:
        info = export_to_folder(tmp, cfg, model, example, source_checkpoint=checkpoint,
                                dataset_meta=_dataset_meta(cfg, meta), logger=logger)
        fp32, int8 = os.path.join(tmp, FP32_FILE), os.path.join(tmp, INT8_FILE)
        info.onnx['int8'] = INT8_FILE
        logger.info(f'INT8: calibrating on {len(calibration)} {calib_split} images')
        quantize_onnx(fp32, int8, calibration)
        sensitivity = conv_sensitivity(fp32, int8, calibration)
        ranked = [s.name for s in sensitivity]
        if keep_fp32 is not None and keep_fp32 > len(ranked):
            raise UserError(f'--keep-fp32 {keep_fp32} exceeds the {len(ranked)} INT8 convs')
        keep, last, name, metrics, tried = keep_fp32 or 0, 0, None, {}, {}

        def quantize(k: int) -> None:
            nonlocal last
            if k != last:
                quantize_onnx(fp32, int8, calibration, keep_fp32=ranked[:k])
                last = k

        if val:
            info.write(tmp)  # the runtime wrapper reads the folder (two-stage head weights)
            metrics['fp32'] = evaluate(config, fp32, cfg_options)
            name = primary_metric(metrics['fp32'], metric)

            def score(k: int) -> float:
                if k not in tried:
                    quantize(k)
                    tried[k] = evaluate(config, int8, cfg_options)
                    logger.info(f'INT8 with {k} convs kept in FP32: {name} {tried[k][name]:.4f} '
                                f'(FP32 {metrics["fp32"][name]:.4f})')
                return tried[k][name]

            if max_drop is not None:
                keep, _ = search_keep_fp32(score, len(ranked), metrics['fp32'][name], max_drop)
            score(0)
            score(keep)
            metrics['int8 full'], metrics['int8'] = tried[0], tried[keep]
        quantize(keep)
        latency = measure_latency({'pytorch fp32': exported_part(model), 'onnxruntime fp32': fp32,
                                   'onnxruntime int8': int8}, example, threads, latency_repeats)
        report = dict(
            config=os.path.abspath(config), checkpoint=os.path.abspath(checkpoint),
            recipe=dict(format='QDQ', weights=f'{WEIGHT_TYPE} per-channel symmetric',
                        activations=f'{ACTIVATION_TYPE} per-tensor asymmetric, MinMax',
                        options=QUANT_OPTIONS),
            calibration=dict(split=calib_split, images=len(calibration)),
            quantized_convs=len(ranked), kept_fp32=ranked[:keep],
            int8_convs=len(quantized_convs(int8)),
            sensitivity=[dict(conv=s.name, noise_to_signal=s.noise_to_signal,
                              sqnr_db=s.sqnr_db if math.isfinite(s.sqnr_db) else None)
                         for s in sensitivity],
            metric=name, max_drop=max_drop, metrics=metrics,
            search={str(k): v[name] for k, v in sorted(tried.items())} if val else {},
            latency_ms=dict(latency, input_shape=list(example.shape), threads=threads,
                            repeats=latency_repeats))
        info.quantization = dict(int8=INT8_FILE, kept_fp32=ranked[:keep],
                                 calibration=report['calibration'], recipe=report['recipe'])
        info.write(tmp)
        write_json_atomic(report, os.path.join(tmp, REPORT_FILE))
    return report


def report_table(report: dict) -> str:
    """The printed summary of :func:`quantize_model`."""
    lat = report['latency_ms']
    rows = [f"INT8 convs: {report['int8_convs']} of {report['quantized_convs']}; kept in FP32: "
            f"{len(report['kept_fp32'])} " + (f"({', '.join(report['kept_fp32'])})"
                                              if report['kept_fp32'] else ''),
            '| model | ' + (f"{report['metric']} | " if report['metric'] else '')
            + f"latency ms ({'x'.join(map(str, lat['input_shape']))}) |",
            '|---|' + ('---|' if report['metric'] else '') + '---|']
    names = {'pytorch fp32': None, 'onnxruntime fp32': 'fp32', 'onnxruntime int8': 'int8'}
    for label, key in names.items():
        value = report['metrics'].get(key, {}).get(report['metric']) if key else None
        cells = [label] + ([f'{value:.4f}' if value is not None else '-']
                           if report['metric'] else []) + [f'{lat[label]:.2f}']
        rows.append('| ' + ' | '.join(cells) + ' |')
    if report['metric'] and 'int8 full' in report['metrics']:
        rows.append(f"full INT8 (no conv kept): {report['metric']} "
                    f"{report['metrics']['int8 full'][report['metric']]:.4f}")
    if report['search']:
        rows.append('scored (convs kept in FP32: metric): ' + ', '.join(
            f'{k}: {v:.4f}' for k, v in report['search'].items()))
    top = report['sensitivity'][:5]
    rows.append('most sensitive convs (SQNR dB): ' + ', '.join(
        f"{s['conv']} {s['sqnr_db']:.1f}" if s['sqnr_db'] is not None else f"{s['conv']} inf"
        for s in top))
    return '\n'.join(rows)
