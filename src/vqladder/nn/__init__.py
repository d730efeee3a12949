"""Transformer building blocks: RMSNorm, RoPE, SDPA attention (self / cross, causal or not), SwiGLU MLP."""

from .layers import MLP, Attention, Block, KVCache, LayerCache, RMSNorm, Rotary, eval_mode, init_weights_  # noqa: F401
