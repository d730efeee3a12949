"""Upsampler: generates one rung down — level-(k-1) symbols of a chunk from its level-k codes.

As Jukebox's upsamplers do, a causal transformer over the lower-level sequence cross-attends to the
upper-level codes (through a small bidirectional encoder), so decoding down the ladder can sample rather
than only take the deterministic VQ decoder's argmax. Level 1's upsampler produces tokens.

With ``prev_chunk`` the upsampler also sees the previous chunk's lower symbols (context across chunks, as
Jukebox's upsamplers see the previous window): they are embedded with the lower vocabulary and encoded with the
parent codes, so the cross-attention context is ``[previous chunk (l), parent codes (p)]``. A chunk with no
previous one (the start of a stream) gets a learned "no context" vector instead; training drops the context
for ``prev_dropout`` of the chunks, so that case is learned too.

Codes are local (code i of a chunk describes lower symbols [i*r, (i+1)*r), r = length / parent_len, for the
segment and pool compressors), so with ``local_codes`` (the default) every position of the causal stream also
gets its covering code's encoded vector, expanded to the r offsets under it by one linear map (as the
compressor's own segment decoder expands a code), on top of the cross-attention: the decoder reads the code it
is generating from without having to learn an alignment first. ``code_dropout`` replaces the codes of that share
of training chunks by a learned "no codes" vector, so the same model can also be scored *without* codes (the
code-value diagnostic: true codes, another chunk's codes, no codes).

FSQ codes are mixed-radix numbers of per-dimension levels. With ``parent_levels`` (and ``levels`` for lower
symbols that are codes) a code's embedding is its own table row *plus* the sum of one embedding per dimension's
level: similar codes share parameters, and each dimension's few embeddings see every chunk, where a table of
4,375 rows sees each row rarely (a cross-attention upsampler with only the table learned to ignore its codes in
a 500-step probe: the same held-out bits with true, another chunk's and no codes).

Axes: b batch, p = parent_len codes of the chunk, l = length symbols below, d width, v lower vocabulary.
Training batches are ``cat([parent_codes, lower_symbols], 1)`` ([b, p + l]), or with ``prev_chunk``
``cat([parent_codes, previous_lower, lower_symbols], 1)`` ([b, p + 2l]; a previous chunk of -1s = none).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from ..config import Annotated, Check, NonNegInt, PosInt, trunk
from ..errors import VQLadderError
from ..nn import Block, KVCache, RMSNorm, check_heads, init_weights_, seeded
from .decoder import DecoderCore
from .registry import register
from .sampling import CachedStep, sample


@dataclass
class UpsamplerConfig(trunk(128, 2)):
    LEGACY: ClassVar[dict] = {"local_codes": False}  # checkpoints from before these fields (load_model)
    vocab_size: NonNegInt = 0               # lower symbols (tokens for level 1, else level k-1 codes); 0 = from data
    parent_vocab: NonNegInt = 0             # level-k codebook size; 0 = from the ladder
    length: NonNegInt = 0                   # lower symbols per chunk (the level's in_len); 0 = from the ladder
    parent_len: NonNegInt = 0               # codes per chunk (the level's out_len); 0 = from the ladder
    enc_layers: NonNegInt = 1               # blocks over the parent codes
    dec_layers: PosInt = 3               # causal blocks with cross-attention over the lower symbols
    prev_chunk: bool = False                # also condition on the previous chunk's lower symbols
    prev_dropout: Annotated[float, Check(min=0, max=1)] = 0.1  # share of training chunks shown no context
    parent_levels: list[PosInt] = field(default_factory=list)  # FSQ levels of the parent codes ([] = a plain table)
    levels: list[PosInt] = field(default_factory=list)         # FSQ levels of the lower symbols when they are codes
    local_codes: bool = True                # each position also gets its covering code (needs length % parent_len == 0)
    code_dropout: Annotated[float, Check(min=0, max=1)] = 0.0  # share of training chunks shown no codes

    def validate(self) -> None:
        check_heads("upsampler.", self.d_model, self.n_heads)
        for name, lv, vocab in (("parent_levels", self.parent_levels, self.parent_vocab),
                                ("levels", self.levels, self.vocab_size)):
            if lv and vocab and math.prod(lv) != vocab:
                raise VQLadderError(f"upsampler.{name}={lv} make {math.prod(lv)} codes, not the {vocab} symbols")
        if self.local_codes and self.parent_len and self.length % self.parent_len:
            raise VQLadderError(f"upsampler.local_codes needs length={self.length} to be a multiple of "
                                f"parent_len={self.parent_len} (each code covers whole lower symbols); "
                                f"set upsampler.local_codes=false for global codes")


@register("upsampler", UpsamplerConfig)
class Upsampler(DecoderCore):
    """Generates one level's codes (or tokens) chunk by chunk from the codes one level up (cross-attention),
    optionally the previous chunk below and each position's covering code; KV-cached like every decoder."""

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
            self.parent_fac = FactorEmbedding(cfg.parent_levels, d) if cfg.parent_levels else None
            self.parent_pos = nn.Parameter(torch.zeros(cfg.parent_len, d))
            self.enc = nn.ModuleList(Block(d, cfg.n_heads, cfg.mlp_ratio) for _ in range(cfg.enc_layers))
            self.enc_norm = RMSNorm(d)
            self.tok_emb = nn.Embedding(cfg.vocab_size, d)
            self.tok_fac = FactorEmbedding(cfg.levels, d) if cfg.levels else None
            if cfg.prev_chunk:
                self.prev_pos = nn.Parameter(torch.zeros(cfg.length, d))
                self.no_prev = nn.Parameter(torch.zeros(d))
            self.bos = nn.Parameter(torch.zeros(d))
            if cfg.local_codes:  # one code vector -> the r positions under it
                self.local_out = nn.Linear(d, cfg.length // cfg.parent_len * d, bias=False)
            if cfg.code_dropout > 0:
                self.no_codes = nn.Parameter(torch.zeros(d))
            self.build_core(d, cfg.n_heads, cfg.dec_layers, cfg.mlp_ratio, cross=True)
            self.head = nn.Linear(d, cfg.vocab_size, bias=False)
            # the local code vectors start at the token embeddings' scale (0.02): at unit scale they drowned the
            # previous token and the upsampler learned slower than with cross-attention alone (a 1,500-step probe)
            init_weights_(self, normal=("bos", "parent_pos", "prev_pos", "no_prev", "no_codes"))
        self._register_load_state_dict_pre_hook(_renamed_dec)

    def _check(self, parent: torch.Tensor, lower: torch.Tensor) -> None:
        c = self.config
        if parent.dim() != 2 or parent.shape[1] != c.parent_len:
            raise VQLadderError(f"upsampler expects {c.parent_len} parent codes per chunk, got shape {list(parent.shape)}")
        if parent.numel() and (int(parent.min()) < 0 or int(parent.max()) >= c.parent_vocab):
            raise VQLadderError(f"upsampler: parent code out of range [0, {c.parent_vocab})")
        if lower.shape[1] > c.length:
            raise VQLadderError(f"upsampler generates {c.length} symbols per chunk, got {lower.shape[1]}")

    def encode_parent(self, parent: torch.Tensor, prev: torch.Tensor | None = None,
                      drop: torch.Tensor | None = None) -> torch.Tensor:
        """The cross-attention context: parent[b, p] codes (and, with ``prev_chunk``, prev[b, l] symbols of the
        previous chunk; None or a row of -1s = no previous chunk) -> [b, (l +) p, d]. ``drop[b]`` (bool): rows
        shown the learned "no codes" vector instead of their codes (needs ``code_dropout`` > 0 in training)."""
        x = self.parent_emb(parent)
        if self.parent_fac is not None:
            x = x + self.parent_fac(parent)
        if drop is None and self.training and self.config.code_dropout > 0:
            drop = torch.rand(parent.shape[0], device=parent.device) < self.config.code_dropout
        if drop is not None:
            if not hasattr(self, "no_codes"):
                raise VQLadderError("this upsampler was trained without upsampler.code_dropout: it cannot be scored "
                                    "without codes")
            x = torch.where(drop[:, None, None], self.no_codes.to(x.dtype), x)
        x = x + self.parent_pos.to(self.parent_emb.weight.dtype)
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
                e = torch.where(has[:, :, None], self.embed_lower(prev.clamp_min(0)), none)
            x = torch.cat([e + self.prev_pos.to(x.dtype), x], 1)
        for blk in self.enc:
            x = blk(x)
        return self.enc_norm(x)

    def embed_lower(self, ids: torch.Tensor) -> torch.Tensor:
        x = self.tok_emb(ids)
        return x if self.tok_fac is None else x + self.tok_fac(ids)

    def local(self, ctx: torch.Tensor) -> torch.Tensor | None:
        """The per-position code vectors [b, length, d] from an encoded context (None without ``local_codes``):
        position j (which predicts lower symbol j) gets the vector of code j // r at offset j % r."""
        if not self.config.local_codes:
            return None
        c = self.config
        return self.local_out(ctx[:, ctx.shape[1] - c.parent_len:]).reshape(ctx.shape[0], c.length, -1)

    def forward(self, parent: torch.Tensor, lower: torch.Tensor, ctx: torch.Tensor | None = None,
                cache: KVCache | None = None, prev: torch.Tensor | None = None,
                drop: torch.Tensor | None = None, local: torch.Tensor | None = None) -> torch.Tensor:
        """parent[b, p], lower[b, t] (t <= length) -> logits[b, t + 1, v] (position i predicts symbol i+1).
        With a non-empty ``cache``: lower[b, t] are the new symbols only -> their logits[b, t, v] (pass the
        ``local`` vectors the prefill used; a position past the chunk gets none)."""
        if cache is not None and cache.length:
            x = self.embed_lower(lower)
            if local is not None:
                s = cache.length
                add = local[:, s:s + x.shape[1]]
                if add.shape[1]:
                    x = x.clone()
                    x[:, :add.shape[1]] += add.to(x.dtype)
            return self.head(self.run(x, cache=cache))
        self._check(parent, lower)
        ctx = self.encode_parent(parent, prev, drop) if ctx is None else ctx
        local = self.local(ctx) if local is None else local
        b = parent.shape[0]
        x = torch.cat([self.bos.expand(b, 1, -1).to(self.tok_emb.weight.dtype), self.embed_lower(lower)], 1)
        if local is not None:
            x = x + local[:, :x.shape[1]].to(x.dtype)
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
    def log_prob(self, parent: torch.Tensor, lower: torch.Tensor, prev: torch.Tensor | None = None,
                 no_codes: bool = False) -> torch.Tensor:
        """Per-chunk log-probability (nats) of lower[b, l] given parent[b, p] (and the previous chunk);
        ``no_codes``: with the learned "no codes" vector in place of the codes."""
        return self.token_logp(parent, lower, prev, no_codes).sum(1)

    @torch.no_grad()
    def token_logp(self, parent: torch.Tensor, lower: torch.Tensor, prev: torch.Tensor | None = None,
                   no_codes: bool = False, hits: bool = False):
        """Per-symbol log-probabilities [b, l] (teacher-forced); with ``hits`` also whether each symbol is the
        argmax (teacher-forced accuracy)."""
        drop = torch.ones(parent.shape[0], dtype=torch.bool, device=parent.device) if no_codes else None
        logits = self(parent, lower[:, :-1], prev=prev, drop=drop).float()
        lp = F.log_softmax(logits, -1).gather(-1, lower[:, :, None]).squeeze(-1)
        return (lp, logits.argmax(-1) == lower) if hits else lp

    def step_fn(self, parent: torch.Tensor, prev: torch.Tensor | None = None) -> CachedStep:
        """A KV-cached ``StepFn`` over the symbols of chunks with codes parent[b, p] (and previous chunks
        prev[b, l]; encoded once; a beam search over one chunk may pass parent[1, p])."""
        ctx = self.encode_parent(parent, prev)
        local = self.local(ctx)

        def rows(t: torch.Tensor | None, b: int):
            return t if t is None or t.shape[0] == b else t[:1].expand(b, *t.shape[1:])

        def prefill(prefix: torch.Tensor):
            b = prefix.shape[0]
            cache = self.new_cache()
            return self(rows(parent, b), prefix, rows(ctx, b), cache, local=rows(local, b))[:, -1], cache
        return CachedStep(prefill, lambda sym, cache: self(parent, sym, cache=cache,
                                                           local=rows(local, sym.shape[0]))[:, -1])

    @torch.no_grad()
    def generate(self, parent: torch.Tensor, temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0,
                 generator: torch.Generator | None = None, prev: torch.Tensor | None = None) -> torch.Tensor:
        """Sample lower[b, length] given parent[b, p] (and prev[b, l]; KV-cached: one position per symbol)."""
        return sample(self.step_fn(parent, prev), parent.shape[0], self.config.length, temperature, top_k, top_p,
                      generator=generator, device=parent.device)


class FactorEmbedding(nn.Module):
    """Mixed-radix codes -> the sum of one embedding per digit (an FSQ code's per-dimension levels)."""

    def __init__(self, levels: list[int], d: int):
        super().__init__()
        levels = [int(v) for v in levels]
        self.register_buffer("_levels", torch.tensor(levels), persistent=False)
        self.register_buffer("_basis", torch.cumprod(torch.tensor([1] + levels[:-1]), 0), persistent=False)
        self.register_buffer("_offsets", torch.tensor([0] + levels[:-1]).cumsum(0), persistent=False)
        self.emb = nn.Embedding(sum(levels), d)

    def forward(self, codes: torch.Tensor) -> torch.Tensor:
        digits = (codes.long().unsqueeze(-1) // self._basis) % self._levels
        return self.emb(digits + self._offsets).sum(-2)


def _renamed_dec(state_dict, prefix, *args):
    """Checkpoints written before the shared decoder core named the causal blocks ``dec``."""
    for k in [k for k in state_dict if k.startswith(prefix + "dec.")]:
        state_dict[prefix + "blocks." + k[len(prefix) + 4:]] = state_dict.pop(k)
