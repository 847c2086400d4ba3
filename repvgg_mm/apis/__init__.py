"""High-level APIs: inference from a config and a checkpoint or ONNX model (``init_model``,
``init_inferencer``) and the deployment pipeline (``export_model``, ``quantize_model``,
``evaluate``), as mmdeploy.apis offers them."""
from .deployment import evaluate, export_model, quantize_model
from .inference import init_inferencer, init_model

__all__ = ['evaluate', 'export_model', 'init_inferencer', 'init_model', 'quantize_model']
