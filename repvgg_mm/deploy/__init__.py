"""Deployment of fused RepVGG models: CPU speed, ONNX export, the ONNX Runtime model wrapper and
static INT8 with onnxruntime.quantization."""
from .cpu_optimize import CPU_VARIANTS, DEFAULT_CPU_VARIANT, optimize_for_cpu
from .export_targets import EXPORT_TARGETS, ExportTarget, build_export_target
from .int8 import (
    ConvSensitivity,
    conv_sensitivity,
    preprocessed_inputs,
    quantize_onnx,
    quantized_convs,
    search_keep_fp32,
)
from .model_folder import (
    KINDS,
    ModelInfo,
    check_output_folder,
    export_to_folder,
    model_kind,
    read_model_info,
)
from .onnx_export import ExportAdapter, export_and_check, export_onnx
from .runtime import ONNXRuntimeModel, create_session, is_onnx_model

__all__ = ['CPU_VARIANTS', 'ConvSensitivity', 'DEFAULT_CPU_VARIANT', 'ExportAdapter',
           'EXPORT_TARGETS', 'ExportTarget', 'KINDS', 'ModelInfo', 'ONNXRuntimeModel',
           'build_export_target', 'check_output_folder', 'conv_sensitivity', 'create_session',
           'export_and_check', 'export_onnx', 'export_to_folder', 'is_onnx_model', 'model_kind',
           'optimize_for_cpu', 'preprocessed_inputs', 'quantize_onnx', 'quantized_convs',
           'read_model_info', 'search_keep_fp32']
