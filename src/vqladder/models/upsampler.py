"""Upsampler: generates one rung down — level-(k-1) symbols of a chunk from its level-k codes.

As Jukebox's upsamplers do, a causal transformer over the lower-level sequence cross-attends to the
upper-level codes (through a small bidirectional encoder), so decoding down the ladder can sample rather
than only take the deterministic VQ decoder's argmax. Level 1's upsampler produces tokens.

With ``prev_chunk`` the upsampler also sees the previous chunk's lower symbols (context across chunks, as
Jukebox's upsamplers see the previous window): they are embedded with the lower vocabulary and encoded with the
parent codes, so the cross-attention context is ``[previous chunk (l), parent codes (p)]``. A chunk with no
previous one (the start of a stream) gets a learned "no context" vector instead; training drops the context
for ``prev_dropout`` of the chunks, so that case is learned too.

Axes: b batch, p = parent_len codes of the chunk, l = length symbols below, d width, v lower vocabulary.
Training batches are ``cat([parent_codes, lower_symbols], 1)`` ([b, p + l]), or with ``prev_chunk``
``cat([parent_codes, previous_lower, lower_symbols], 1)`` ([b, p + 2l]; a previous chunk of -1s = none).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..config import Annotated, Check, NonNegInt, PosFloat, PosInt
from ..errors import VQLadderError
from ..nn import Block, KVCache, RMSNorm, check_heads, init_weights_, seeded
from .decoder import DecoderCore
from .registry import register
from .sampling import CachedStep, sample


@dataclass
class UpsamplerConfig:
    vocab_size: NonNegInt = 0               # lower symbols (tokens for level 1, else level k-1 codes); 0 = from data
    parent_vocab: NonNegInt = 0             # level-k codebook size; 0 = from the ladder
    length: NonNegInt = 0                   # lower symbols per chunk (the level's in_len); 0 = from the ladder
    parent_len: NonNegInt = 0               # codes per chunk (the level's out_len); 0 = from the ladder
    d_model: PosInt = 128                # width
    n_heads: PosInt = 2                  # heads
    enc_layers: NonNegInt = 1               # blocks over the parent codes
    dec_layers: PosInt = 3               # causal blocks with cross-attention over the lower symbols
    mlp_ratio: PosFloat = 4.0            # MLP width ratio
    prev_chunk: bool = False                # also condition on the previous chunk's lower symbols
    prev_dropout: Annotated[float, Check(min=0, max=1)] = 0.1  # share of training chunks shown no context
    seed: NonNegInt = 0                     # init seed

    def validate(self) -> None:
        check_heads("upsampler.", self.d_model, self.n_heads)


@register("upsampler", UpsamplerConfig)
class Upsampler(DecoderCore):
    def __init__(self, cfg: UpsamplerConfig):
        super().__init__()
        cfg.validate()
        for k in ("vocab_size", "parent_vocab", "length", "parent_len"):
            if getattr(cfg, k) < 1:
                raise VQLadderError(f"upsampler.{k} must be set (it is filled in from the ladder when 0)")
        self.config = cfg
        with seeded(cfg.seed):
            d = cfg.d_model
            self.parent_emb = nn.Embedding(cfg.parent_vocab, d)
            self.parent_pos = nn.Parameter(torch.zeros(cfg.parent_len, d))
            self.enc = nn.ModuleList(Block(d, cfg.n_heads, cfg.mlp_ratio) for _ in range(cfg.enc_layers))
            self.enc_norm = RMSNorm(d)
            self.tok_emb = nn.Embedding(cfg.vocab_size, d)
            if cfg.prev_chunk:
                self.prev_pos = nn.Parameter(torch.zeros(cfg.length, d))
                self.no_prev = nn.Parameter(torch.zeros(d))
            self.bos = nn.Parameter(torch.zeros(d))
            self.build_core(d, cfg.n_heads, cfg.dec_layers, cfg.mlp_ratio, cross=True)
            self.head = nn.Linear(d, cfg.vocab_size, bias=False)
            init_weights_(self, normal=("bos", "parent_pos", "prev_pos", "no_prev"))
        self._register_load_state_dict_pre_hook(_renamed_dec)

    def _check(self, parent: torch.Tensor, lower: torch.Tensor) -> None:
        c = self.config
        if parent.dim() != 2 or parent.shape[1] != c.parent_len:
            raise VQLadderError(f"upsampler expects {c.parent_len} parent codes per chunk, got shape {list(parent.shape)}")
        if parent.numel() and (int(parent.min()) < 0 or int(parent.max()) >= c.parent_vocab):
            raise VQLadderError(f"upsampler: parent code out of range [0, {c.parent_vocab})")
        if lower.shape[1] > c.length:
            raise VQLadderError(f"upsampler generates {c.length} symbols per chunk, got {lower.shape[1]}")

    def encode_parent(self, parent: torch.Tensor, prev: torch.Tensor | None = None) -> torch.Tensor:
        """The cross-attention context: parent[b, p] codes (and, with ``prev_chunk``, prev[b, l] symbols of the
        previous chunk; None or a row of -1s = no previous chunk) -> [b, (l +) p, d]."""
        x = self.parent_emb(parent) + self.parent_pos.to(self.parent_emb.weight.dtype)
        if self.config.prev_chunk:
            b, c = parent.shape[0], self.config
            none = self.no_prev.to(x.dtype).expand(b, c.length, -1)
            if prev is None:
                e = none
            else:
                if prev.shape != (b, c.length):
                    raise VQLadderError(f"upsampler: the previous chunk must be [{b}, {c.length}] symbols, "
                                        f"got {list(prev.shape)}")
                has = prev[:, :1] >= 0
                if self.training and c.prev_dropout > 0:
                    has = has & (torch.rand(b, 1, device=prev.device) >= c.prev_dropout)
                e = torch.where(has[:, :, None], self.tok_emb(prev.clamp_min(0)), none)
            x = torch.cat([e + self.prev_pos.to(x.dtype), x], 1)
        for blk in self.enc:
            x = blk(x)
        return self.enc_norm(x)

    def forward(self, parent: torch.Tensor, lower: torch.Tensor, ctx: torch.Tensor | None = None,
                cache: KVCache | None = None, prev: torch.Tensor | None = None) -> torch.Tensor:
        """parent[b, p], lower[b, t] (t <= length) -> logits[b, t + 1, v] (position i predicts symbol i+1).
        With a non-empty ``cache``: lower[b, t] are the new symbols only -> their logits[b, t, v]."""
        if cache is not None and cache.length:
            return self.head(self.run(self.tok_emb(lower), cache=cache))
        self._check(parent, lower)
        ctx = self.encode_parent(parent, prev) if ctx is None else ctx
        b = parent.shape[0]
        x = torch.cat([self.bos.expand(b, 1, -1).to(self.tok_emb.weight.dtype), self.tok_emb(lower)], 1)
        return self.head(self.run(x, context=ctx, cache=cache))

    def split(self, batch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
        """A training batch -> (parent, previous chunk or None, lower)."""
        p, c = self.config.parent_len, self.config
        if c.prev_chunk:
            return batch[:, :p], batch[:, p:p + c.length], batch[:, p + c.length:]
        return batch[:, :p], None, batch[:, p:]

    def loss(self, batch: torch.Tensor):
        parent, prev, lower = self.split(batch)
        logits = self(parent, lower[:, :-1], prev=prev).float()
        ce = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), lower.reshape(-1))
        with torch.no_grad():
            acc = (logits.argmax(-1) == lower).float().mean()
        return ce, {"ce": ce.detach(), "acc": acc}

    @torch.no_grad()
    def log_prob(self, parent: torch.Tensor, lower: torch.Tensor, prev: torch.Tensor | None = None) -> torch.Tensor:
        """Per-chunk log-probability (nats) of lower[b, l] given parent[b, p] (and the previous chunk)."""
        logits = self(parent, lower[:, :-1], prev=prev).float()
        return F.log_softmax(logits, -1).gather(-1, lower[:, :, None]).squeeze(-1).sum(1)

    def step_fn(self, parent: torch.Tensor, prev: torch.Tensor | None = None) -> CachedStep:
        """A KV-cached ``StepFn`` over the symbols of chunks with codes parent[b, p] (and previous chunks
        prev[b, l]; encoded once; a beam search over one chunk may pass parent[1, p])."""
        ctx = self.encode_parent(parent, prev)

        def prefill(prefix: torch.Tensor):
            b = prefix.shape[0]
            p, c = (parent, ctx) if parent.shape[0] == b else (parent[:1].expand(b, -1), ctx[:1].expand(b, -1, -1))
            cache = self.new_cache()
            return self(p, prefix, c, cache)[:, -1], cache
        return CachedStep(prefill, lambda sym, cache: self(parent, sym, cache=cache)[:, -1])

    @torch.no_grad()
    def generate(self, parent: torch.Tensor, temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0,
                 generator: torch.Generator | None = None, prev: torch.Tensor | None = None) -> torch.Tensor:
        """Sample lower[b, length] given parent[b, p] (and prev[b, l]; KV-cached: one position per symbol)."""
        return sample(self.step_fn(parent, prev), parent.shape[0], self.config.length, temperature, top_k, top_p,
                      generator=generator, device=parent.device)


def _renamed_dec(state_dict, prefix, *args):
    """Checkpoints written before the shared decoder core named the causal blocks ``dec``."""
    for k in [k for k in state_dict if k.startswith(prefix + "dec.")]:
        state_dict[prefix + "blocks." + k[len(prefix) + 4:]] = state_dict.pop(k)
