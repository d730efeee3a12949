"""The top-level prior ("planner"): a causal transformer over code sequences with a conditioning prefix.

Axes: b batch, c cond_len conditioning symbols, t code positions, d width, v code vocabulary.
Sequence fed to the transformer: ``[cond_1 … cond_c, BOS, code_1 … code_t]`` (conditioning symbols have
their own embedding table, so a goal, a return-to-go bucket, an end state or a prompt's codes can be given
as symbols). The output at BOS predicts code_1, at code_i predicts code_{i+1}; loss is on codes only.
Training batches are ``cat([cond, codes], 1)`` so the shared trainer and window samplers can feed them.
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
class PriorConfig(trunk(128, 2)):
    vocab_size: NonNegInt = 0               # codes (0 = the top level's codebook size)
    cond_vocab: NonNegInt = 0               # conditioning symbols (0 = unconditional)
    cond_len: NonNegInt = 0                 # conditioning symbols per sequence (fixed length; 0 = none)
    context: PosInt = 64                 # code positions per training window
    n_layers: PosInt = 4                 # blocks

    def validate(self) -> None:
        check_heads("prior.", self.d_model, self.n_heads)
        if (self.cond_len > 0) != (self.cond_vocab > 0):
            raise VQLadderError("prior.cond_len and prior.cond_vocab must both be 0 (unconditional) or both > 0")
        if self.context < 1:
            raise VQLadderError(f"prior.context must be >= 1, got {self.context}")


@register("code_prior", PriorConfig)
class CodePrior(DecoderCore):
    """Causal transformer over a sequence of codes after an optional conditioning prefix (goal, return, end state,
    prompt codes); ``step_fn()`` feeds ``sample``, ``greedy`` and ``beam_search`` as ``CausalLM``'s does."""

    def __init__(self, cfg: PriorConfig):
        super().__init__()
        cfg.validate()
        if cfg.vocab_size < 2:
            raise VQLadderError("prior.vocab_size must be set (>= 2)")
        self.config = cfg
        with seeded(cfg.seed):
            d = cfg.d_model
            self.code_emb = nn.Embedding(cfg.vocab_size, d)
            self.cond_emb = nn.Embedding(cfg.cond_vocab, d) if cfg.cond_vocab else None
            self.bos = nn.Parameter(torch.zeros(d))
            self.build_core(d, cfg.n_heads, cfg.n_layers, cfg.mlp_ratio)
            self.head = nn.Linear(d, cfg.vocab_size, bias=False)
            init_weights_(self, normal=("bos",))

    def _check(self, codes: torch.Tensor, cond: torch.Tensor | None) -> None:
        c = self.config
        if codes.numel() and (int(codes.min()) < 0 or int(codes.max()) >= c.vocab_size):
            raise VQLadderError(f"prior: code out of range [0, {c.vocab_size})")
        if c.cond_len:
            if cond is None or cond.shape[-1] != c.cond_len:
                raise VQLadderError(f"prior expects a conditioning prefix of {c.cond_len} symbols, got "
                                    f"{None if cond is None else cond.shape[-1]}")
            if int(cond.min()) < 0 or int(cond.max()) >= c.cond_vocab:
                raise VQLadderError(f"prior: conditioning symbol out of range [0, {c.cond_vocab})")
        elif cond is not None and cond.numel():
            raise VQLadderError("this prior is unconditional: it takes no conditioning prefix")
        if codes.shape[1] > c.context:
            raise VQLadderError(f"prior context is {c.context} codes, got {codes.shape[1]} "
                                f"(a prompt longer than the context?)")

    def forward(self, codes: torch.Tensor, cond: torch.Tensor | None = None,
                cache: KVCache | None = None) -> torch.Tensor:
        """codes[b, t] (t >= 0), cond[b, c] -> logits[b, t + 1, v] (position i predicts code i+1). With a
        non-empty ``cache``: codes[b, t] are the new codes only -> their logits[b, t, v]."""
        if cache is not None and cache.length:
            if cache.length - self.config.cond_len + codes.shape[1] > self.config.context + 1:
                raise VQLadderError(f"prior context is {self.config.context} codes")
            return self.head(self.run(self.code_emb(codes), cache=cache))
        self._check(codes, cond)
        b = codes.shape[0]
        parts = []
        if self.cond_emb is not None:
            parts.append(self.cond_emb(cond))
        parts.append(self.bos.expand(b, 1, -1).to(self.code_emb.weight.dtype))
        parts.append(self.code_emb(codes))
        x = self.run(torch.cat(parts, 1), cache=cache)
        return self.head(x[:, self.config.cond_len:])

    def split(self, batch: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor]:
        c = self.config.cond_len
        return (batch[:, :c] if c else None), batch[:, c:]

    def log_prob(self, codes: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        """Per-sequence log-probability (nats) of codes[b, t] given cond."""
        logits = self(codes[:, :-1] if codes.shape[1] else codes, cond).float()
        lp = F.log_softmax(logits, -1).gather(-1, codes[:, :, None]).squeeze(-1)
        return lp.sum(1)

    def loss(self, batch: torch.Tensor):
        cond, codes = self.split(batch)
        logits = self(codes[:, :-1], cond).float()
        ce = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), codes.reshape(-1))
        with torch.no_grad():
            acc = (logits.argmax(-1) == codes).float().mean()
        return ce, {"ce": ce.detach(), "acc": acc}

    def step_fn(self, cond: torch.Tensor | None = None) -> CachedStep:
        """A KV-cached ``StepFn``: prefix codes[b, t] -> next-code logits[b, v] (one cond[c] broadcast over the
        batch, or one per row, cond[b, c], for prefixes that keep their rows in order, as ``sample``'s do). Called
        with ``owner[b]`` (``beam_search_many``), ``cond[p, c]`` holds one prefix per problem and row i reads
        ``cond[owner[i]]``."""
        def prefill(prefix: torch.Tensor, owner: torch.Tensor | None = None):
            if owner is not None:
                cc = cond.view(-1, cond.shape[-1])[owner]
            else:
                cc = None if cond is None else cond if cond.dim() == 2 else cond.view(1, -1).expand(prefix.shape[0], -1)
            cache = self.new_cache()
            return self(prefix, cc, cache)[:, -1], cache
        return CachedStep(prefill, lambda sym, cache: self(sym, cache=cache)[:, -1])
