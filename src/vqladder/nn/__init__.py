"""Transformer building blocks: RMSNorm, RoPE, SDPA attention (self / cross, causal or not), SwiGLU MLP."""

from .layers import (  # noqa: F401
    MLP,
    Attention,
    Block,
    KVCache,
    LayerCache,
    RMSNorm,
    Rotary,
    check_heads,
    eval_mode,
    init_weights_,
    seeded,
)
