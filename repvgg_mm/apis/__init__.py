"""Inference APIs (no training or conversion code lives here)."""
from .inference import init_inferencer, init_model

__all__ = ['init_inferencer', 'init_model']
