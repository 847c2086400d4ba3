"""Deployment of fused RepVGG models: CPU speed, ONNX export and INT8 quantization."""
from .cpu_optimize import CPU_VARIANTS, DEFAULT_CPU_VARIANT, optimize_for_cpu
from .export_targets import TARGETS, ExportTarget, build_export_target
from .onnx_export import ExportAdapter, export_and_check, export_onnx
from .quantization import (
    convert_qat,
    fold_inserted_bn,
    insert_bn_after_fused_convs,
    prepare_qat,
    quantize_ptq,
)

__all__ = ['CPU_VARIANTS', 'DEFAULT_CPU_VARIANT', 'ExportAdapter', 'ExportTarget', 'TARGETS',
           'build_export_target', 'convert_qat', 'export_and_check', 'export_onnx',
           'fold_inserted_bn', 'insert_bn_after_fused_convs', 'optimize_for_cpu', 'prepare_qat',
           'quantize_ptq']
