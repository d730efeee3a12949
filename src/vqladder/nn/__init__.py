"""Transformer building blocks: RMSNorm, RoPE, SDPA attention (self / cross, causal or not), SwiGLU MLP."""

from .layers import MLP, Attention, Block, RMSNorm, Rotary, init_weights_  # noqa: F401
