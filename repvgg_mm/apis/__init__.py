"""Inference APIs (no training or conversion code lives here)."""
from .inference import init_model

__all__ = ['init_model']
