"""Transformer blocks. Axes: b batch, t query positions, s key positions, h heads, e head width, d model width.

Attention uses ``F.scaled_dot_product_attention`` (fused kernels on CPU and CUDA); positions use rotary
embeddings (RoPE) on queries and keys of self-attention. Pre-norm residual blocks with RMSNorm.
"""

from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F
from torch import nn


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float = 1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # the weight in the input's dtype: under bf16 autocast a float32 weight sends rms_norm to its slow,
        # unfused path (measured 2-core CPU: see benchmarks/bench_compressor.py)
        return F.rms_norm(x, (x.shape[-1],), self.weight.to(x.dtype), self.eps)


class Rotary(nn.Module):
    """RoPE tables, built lazily for the longest sequence seen (not saved in checkpoints)."""

    def __init__(self, head_dim: int, base: float = 10000.0):
        super().__init__()
        inv = 1.0 / (base ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim))
        self.register_buffer("inv_freq", inv, persistent=False)
        self._cache: tuple[int, torch.Tensor, torch.Tensor] | None = None

    def tables(self, t: int, device, dtype):
        if self._cache is None or self._cache[0] < t or self._cache[1].device != device:
            pos = torch.arange(max(t, 16), device=device, dtype=torch.float32)
            freqs = torch.outer(pos, self.inv_freq.to(device))
            self._cache = (len(pos), freqs.cos(), freqs.sin())
        _, cos, sin = self._cache
        return cos[:t].to(dtype), sin[:t].to(dtype)

    @staticmethod
    def apply(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        # x[b, h, t, e]; rotate pairs (first half, second half)
        x1, x2 = x.chunk(2, dim=-1)
        return torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1)


def check_heads(what: str, d_model: int, n_heads: int) -> None:
    """Attention splits ``d_model`` into ``n_heads`` heads whose width RoPE rotates in pairs: it must be even."""
    from ..errors import VQLadderError

    if d_model % n_heads or (d_model // n_heads) % 2:
        raise VQLadderError(f"{what}d_model={d_model} must split into n_heads={n_heads} even-width heads")


class Attention(nn.Module):
    def __init__(self, dim: int, n_heads: int, cross: bool = False, dropout: float = 0.0):
        super().__init__()
        assert dim % n_heads == 0, "d_model must be divisible by n_heads"
        self.h, self.e, self.cross, self.dropout = n_heads, dim // n_heads, cross, dropout
        self.q = nn.Linear(dim, dim, bias=False)
        self.kv = nn.Linear(dim, 2 * dim, bias=False)
        self.o = nn.Linear(dim, dim, bias=False)
        self.rotary = None if cross else Rotary(self.e)

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None, causal: bool = False,
                mask: torch.Tensor | None = None, cache: LayerCache | None = None) -> torch.Tensor:
        """With ``cache``, ``x`` holds only the new positions: self-attention appends their keys/values to the
        cache (RoPE at their absolute positions) and attends over everything cached; cross-attention computes
        the context's keys/values once and reuses them (``context`` may then be None)."""
        b, t, d = x.shape
        q = self.q(x).view(b, t, self.h, self.e).transpose(1, 2)
        if self.cross and cache is not None and cache.k is not None:
            k, v = cache.k, cache.v
        else:
            ctx = x if context is None else context
            k, v = self.kv(ctx).view(ctx.shape[0], ctx.shape[1], 2, self.h, self.e).permute(2, 0, 3, 1, 4)
        past = 0
        if self.rotary is not None:
            past = cache.length if cache is not None else 0
            cos, sin = self.rotary.tables(past + t, x.device, q.dtype)
            if past:  # cached positions: the new ones start at ``past``
                cos, sin = cos[past:], sin[past:]
            q, k = Rotary.apply(q, cos, sin), Rotary.apply(k, cos, sin)
        if cache is not None:
            if self.cross:
                if cache.k is None:
                    cache.k, cache.v = k, v
            else:
                k, v = cache.append(k, v)
        if causal and past and mask is None and t > 1:  # new queries after cached keys: bottom-right aligned
            mask = torch.ones(t, past + t, dtype=torch.bool, device=x.device).tril(past)
        causal = causal and not (past and t == 1)  # one new query may see everything cached
        drop = self.dropout if self.training else 0.0
        if x.device.type == "cpu" and max(t, k.shape[2]) <= SHORT_ATTENTION and drop == 0.0:
            y = _math_attention(q, k, v, mask, causal)
        else:
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=causal and mask is None,
                                               dropout_p=drop)
        return self.o(y.transpose(1, 2).reshape(b, t, d))


class LayerCache:
    """Keys and values one attention layer has seen: [b, heads, positions, head width]."""

    def __init__(self):
        self.k: torch.Tensor | None = None
        self.v: torch.Tensor | None = None

    @property
    def length(self) -> int:
        return 0 if self.k is None else self.k.shape[2]

    def append(self, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.k is not None:
            k, v = torch.cat([self.k, k], 2), torch.cat([self.v, v], 2)
        self.k, self.v = k, v
        return k, v

    def reorder(self, rows: torch.Tensor) -> None:
        if self.k is not None:
            self.k, self.v = self.k.index_select(0, rows), self.v.index_select(0, rows)


class KVCache:
    """A decoder's cache: one self-attention and one cross-attention ``LayerCache`` per block."""

    def __init__(self, n_layers: int):
        self.self_attn = [LayerCache() for _ in range(n_layers)]
        self.cross_attn = [LayerCache() for _ in range(n_layers)]

    @property
    def length(self) -> int:
        """Positions cached so far (the absolute position of the next one)."""
        return self.self_attn[0].length if self.self_attn else 0

    def reorder(self, rows: torch.Tensor) -> None:
        """Keep/duplicate batch rows (beam search: each new beam continues the beam ``rows[i]``)."""
        for c in self.self_attn + self.cross_attn:
            c.reorder(rows)


# On CPU, sequences up to this length use plain matmul attention: over 64 segments (3 heads of 64) it ran
# forward + backward in 7.2 ms against SDPA's CPU flash kernel's 13.6 ms; at 256 positions flash is as fast.
SHORT_ATTENTION = 128


def _math_attention(q, k, v, mask: torch.Tensor | None, causal: bool) -> torch.Tensor:
    """softmax(q k^T / sqrt(e)) v with SDPA's semantics (boolean mask: True = may attend; a float mask is added;
    causal: the lower triangle, top-left aligned, as SDPA's is_causal)."""
    att = (q @ k.transpose(-2, -1)) * q.shape[-1] ** -0.5
    if mask is not None:
        att = att.masked_fill(~mask, float("-inf")) if mask.dtype == torch.bool else att + mask
    elif causal:
        t, s = att.shape[-2:]
        att = att.masked_fill(torch.ones(t, s, dtype=torch.bool, device=att.device).triu(1), float("-inf"))
    return att.softmax(-1) @ v


class MLP(nn.Module):
    """SwiGLU feed-forward."""

    def __init__(self, dim: int, ratio: float = 4.0):
        super().__init__()
        hidden = int(dim * ratio * 2 / 3)
        hidden = (hidden + 63) // 64 * 64
        self.up = nn.Linear(dim, 2 * hidden, bias=False)
        self.down = nn.Linear(hidden, dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, g = self.up(x).chunk(2, dim=-1)
        return self.down(F.silu(g) * a)


class Block(nn.Module):
    """Pre-norm transformer block: self-attention, optional cross-attention, MLP."""

    def __init__(self, dim: int, n_heads: int, mlp_ratio: float = 4.0, cross: bool = False, dropout: float = 0.0):
        super().__init__()
        self.n1, self.attn = RMSNorm(dim), Attention(dim, n_heads, dropout=dropout)
        self.nx = RMSNorm(dim) if cross else None
        self.xattn = Attention(dim, n_heads, cross=True, dropout=dropout) if cross else None
        self.n2, self.mlp = RMSNorm(dim), MLP(dim, mlp_ratio)

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None, causal: bool = False,
                mask: torch.Tensor | None = None, cache: KVCache | None = None, layer: int = 0) -> torch.Tensor:
        """``mask``: optional boolean attention mask (True = may attend), broadcast to [b, heads, t, t];
        ``cache``/``layer``: this block's entries of a ``KVCache`` (``x`` then holds only the new positions)."""
        sc = cache.self_attn[layer] if cache is not None else None
        x = x + self.attn(self.n1(x), causal=causal, mask=mask, cache=sc)
        if self.xattn is not None and (context is not None or (cache is not None and cache.cross_attn[layer].k
                                                               is not None)):
            xc = cache.cross_attn[layer] if cache is not None else None
            x = x + self.xattn(self.nx(x), context=context, cache=xc)
        return x + self.mlp(self.n2(x))


def init_weights_(module: nn.Module, std: float = 0.02, zero: tuple[str, ...] = (), normal: tuple[str, ...] = ()) -> None:
    """Normal(0, std) for every matrix; zero for residual-branch output projections (``attn.o``,
    ``mlp.down``: each block starts as the identity) and for parameters whose names end with ``zero``; normal
    also for the vectors named in ``normal``. Draws from the global RNG: seed it (or fork it) first."""
    with torch.no_grad():
        for name, p in module.named_parameters():
            if name.endswith(("attn.o.weight", "mlp.down.weight") + tuple(zero)):
                p.zero_()
            elif p.dim() >= 2 or name.endswith(tuple(normal)):
                p.normal_(0.0, std)


@contextlib.contextmanager
def seeded(seed: int):
    """Build weights from ``seed`` without touching the caller's RNG stream."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


@contextlib.contextmanager
def eval_mode(module: nn.Module):
    """Run a block in eval mode (quantiser running statistics, no dropout) and restore the previous mode."""
    was = module.training
    module.eval()
    try:
        yield module
    finally:
        module.train(was)
