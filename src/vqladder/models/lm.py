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

from ..config import NonNegInt, PosInt, trunk
from ..errors import VQLadderError
from ..nn import KVCache, check_heads, init_weights_, seeded
from .decoder import DecoderCore
from .registry import register
from .sampling import CachedStep


@dataclass
class LMConfig(trunk(192, 3)):
    vocab_size: NonNegInt = 0               # 0 = from the data
    context: NonNegInt = 256             # tokens per training window (= the compressor's in_len); 0 = set by the ladder
    n_layers: PosInt = 4                 # blocks

    def validate(self) -> None:
        check_heads("lm.", self.d_model, self.n_heads)


@register("causal_lm", LMConfig)
class CausalLM(DecoderCore):
    """A causal transformer LM over ``vocab_size`` symbols; ``step_fn()`` is its KV-cached next-symbol function.

    >>> import torch
    >>> from vqladder import CausalLM, LMConfig, beam_search, greedy, sample
    >>> lm = CausalLM(LMConfig(vocab_size=50, context=32, d_model=32, n_heads=2, n_layers=1)).eval()
    >>> loss, metrics = lm.loss(torch.randint(0, 50, (2, 32)))
    >>> prefix = torch.zeros(3, 1, dtype=torch.long)
    >>> sample(lm.step_fn(), batch=3, length=10, temperature=0.8, prefix=prefix).shape
    torch.Size([3, 10])
    >>> greedy(lm.step_fn(), batch=3, length=5, prefix=prefix).shape
    torch.Size([3, 5])
    >>> best = beam_search(lm.step_fn(), length=6, beam_width=4, prefix=torch.zeros(1, dtype=torch.long))
    >>> best.sequence.shape, best.beams.shape
    (torch.Size([6]), torch.Size([4, 6]))
    """

    def __init__(self, cfg: LMConfig):
        super().__init__()
        cfg.validate()
        if cfg.vocab_size < 2:
            raise VQLadderError("lm.vocab_size must be set (>= 2)")
        if cfg.context < 1:
            raise VQLadderError("lm.context must be set (>= 1)")
        self.config = cfg
        with seeded(cfg.seed):
            d = cfg.d_model
            self.tok_emb = nn.Embedding(cfg.vocab_size, d)
            self.build_core(d, cfg.n_heads, cfg.n_layers, cfg.mlp_ratio)
            self.head = nn.Linear(d, cfg.vocab_size, bias=False)
            init_weights_(self)

    def forward(self, tokens: torch.Tensor, cache: KVCache | None = None) -> torch.Tensor:
        """tokens[b, t] -> next-token logits[b, t, v]; with ``cache``, ``tokens`` are the new positions only."""
        return self.head(self.run(self.tok_emb(tokens), cache=cache))

    def step_fn(self) -> CachedStep:
        """A KV-cached ``StepFn`` (prefix[b, t >= 1] -> next-token logits[b, v]) with a sliding window of the
        model's context."""
        def prefill(prefix):
            cache = self.new_cache()
            return self(prefix, cache)[:, -1], cache
        return CachedStep(prefill, lambda sym, cache: self(sym, cache)[:, -1], max_len=self.config.context)

    def loss(self, tokens: torch.Tensor):
        logits = self(tokens[:, :-1]).float()
        ce = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), tokens[:, 1:].reshape(-1))
        with torch.no_grad():
            acc = (logits.argmax(-1) == tokens[:, 1:]).float().mean()
        return ce, {"ce": ce.detach(), "acc": acc}
