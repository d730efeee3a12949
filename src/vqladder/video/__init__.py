"""Pixel videos: generators with known state, frame and tubelet models, latent and pixel predictors, probes, the
recipe and its report view."""

from .models import FrameAE, FrameAEConfig, FramePredictor, PredictorConfig  # noqa: F401
