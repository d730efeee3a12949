"""A small causal transformer language model: the LM reference (an upper bound on the entropy rate).

Its held-out cross-entropy (bits/token), measured on the same chunks the compressors see, is an upper bound on
the entropy rate measured by a small LM: a better LM lowers it, so it is a reference, not a hard floor.
Axes: b batch, n positions, d width, v vocab.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..config import NonNegInt, PosFloat, PosInt
from ..errors import VQLadderError
from ..nn import Block, RMSNorm, init_weights_
from .registry import register


@dataclass
class LMConfig:
    vocab_size: NonNegInt = 0               # 0 = from the data
    context: NonNegInt = 256             # tokens per training window (= the compressor's in_len); 0 = set by the ladder
    d_model: PosInt = 192                # width
    n_heads: PosInt = 3                  # heads
    n_layers: PosInt = 4                 # blocks
    mlp_ratio: PosFloat = 4.0            # MLP width ratio
    seed: NonNegInt = 0                     # init seed

    def validate(self) -> None:
        if self.d_model % self.n_heads or (self.d_model // self.n_heads) % 2:
            raise VQLadderError(f"lm.d_model={self.d_model} must split into n_heads={self.n_heads} even-width heads")


@register("causal_lm", LMConfig)
class CausalLM(nn.Module):
    def __init__(self, cfg: LMConfig):
        super().__init__()
        cfg.validate()
        if cfg.vocab_size < 2:
            raise VQLadderError("lm.vocab_size must be set (>= 2)")
        if cfg.context < 1:
            raise VQLadderError("lm.context must be set (>= 1)")
        self.config = cfg
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(cfg.seed)
            d = cfg.d_model
            self.tok_emb = nn.Embedding(cfg.vocab_size, d)
            self.blocks = nn.ModuleList(Block(d, cfg.n_heads, cfg.mlp_ratio) for _ in range(cfg.n_layers))
            self.norm = RMSNorm(d)
            self.head = nn.Linear(d, cfg.vocab_size, bias=False)
            init_weights_(self)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        x = self.tok_emb(tokens)
        for blk in self.blocks:
            x = blk(x, causal=True)
        return self.head(self.norm(x))

    def loss(self, tokens: torch.Tensor):
        logits = self(tokens[:, :-1]).float()
        ce = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), tokens[:, 1:].reshape(-1))
        with torch.no_grad():
            acc = (logits.argmax(-1) == tokens[:, 1:]).float().mean()
        return ce, {"ce": ce.detach(), "acc": acc}
