"""Held-out evaluation: reconstruction metrics and codebook health."""

from .metrics import evaluate_compressor  # noqa: F401
