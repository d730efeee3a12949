"""One causal decoder core behind every autoregressive model: the LM, the code prior, the upsampler and the
video frame predictor are thin configurations of it (their own embeddings and heads around the same blocks).

``DecoderCore`` owns ``blocks`` (pre-norm ``nn.Block``s, optionally with cross-attention) and the final
``norm``; ``run`` feeds them a sequence of embeddings, with an optional context for cross-attention, a mask,
and a ``KVCache`` so that generation only feeds the new positions. ``nn.check_heads`` is the width check every
configuration shares; ``nn.seeded`` builds a model's weights from its own seed.
Axes: b batch, t positions, d width.
"""

from __future__ import annotations

import torch
from torch import nn

from ..nn import Block, KVCache, RMSNorm


class DecoderCore(nn.Module):
    """The shared blocks + final norm. Subclasses add their embeddings and heads and call ``build_core``."""

    def build_core(self, d: int, n_heads: int, n_layers: int, mlp_ratio: float, cross: bool = False) -> None:
        self.blocks = nn.ModuleList(Block(d, n_heads, mlp_ratio, cross=cross) for _ in range(n_layers))
        self.norm = RMSNorm(d)

    def new_cache(self) -> KVCache:
        return KVCache(len(self.blocks))

    def run(self, x: torch.Tensor, context: torch.Tensor | None = None, cache: KVCache | None = None,
            mask: torch.Tensor | None = None, causal: bool = True) -> torch.Tensor:
        """x[b, t, d] embeddings (only the new positions when ``cache`` holds earlier ones) -> normed hidden."""
        for i, blk in enumerate(self.blocks):
            x = blk(x, context=context, causal=causal, mask=mask, cache=cache, layer=i)
        return self.norm(x)
