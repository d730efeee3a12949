"""Sequence compressor: N symbols -> M discrete codes -> N symbol logits (compression = N / M).

Axes: b batch, n = in_len symbols, m = out_len codes, r = n / m symbols per code, d model width, v vocab.

Three ways down from n to m (``downsample``):
  * ``pool`` — an hourglass (the earlier default): a bidirectional transformer over the n symbols (with an
    offset-in-segment embedding so pooling keeps order), mean-pool each run of r symbols into one slot,
    a transformer over the m slots, quantise. The decoder mirrors it: transformer over m codes, repeat each
    r times (+ offset embedding), transformer over n, logits. Code i describes symbols [i*r, (i+1)*r): codes
    are local, which is what stacking levels and variable-length segments need, and cost grows with n only
    in the outer blocks.
  * ``segment`` (default) — local-first: the r token embeddings of each segment (width ``tok_dim``) are concatenated and
    mixed by a residual MLP (``seg_layers`` blocks), so every transformer block then runs over the m segments,
    not the n tokens (``latent_layers`` context blocks on each side of the quantiser); the decoder mirrors it
    and projects each segment back to r token vectors. ``enc_layers`` / ``dec_layers`` add thin token-level
    blocks (width ``tok_dim``) where they pay. With ``latent_layers: 0`` it has no context at all: the
    CALM-style local autoencoder that the sweep trains as its reference.
  * ``query`` — TiTok-style: m learned latent tokens are appended to the n symbol embeddings and one
    transformer runs over n + m; the latents' outputs are quantised. Decoding appends n mask tokens to the
    m code vectors. Each code may describe any part of the chunk (global "gist" codes).

With ``decoder: autoregressive`` the outer decoder blocks are causal and also see the previous token
(teacher forcing in training); ``decode`` then generates greedily, one token per step, so held-out accuracy
can be reported both teacher-forced and free-running.

``encode(tokens[b, n]) -> codes[b, m]``, ``decode(codes[b, m]) -> logits[b, n, v]``,
``loss(tokens) -> (loss, metrics)``. Residual quantisers give codes[b, m, depth].

With ``rate_layers`` > 0 an FSQ compressor also trains a light causal context model of its codes
(``models.rate``): its held-out cross-entropy is the codes' *actual* rate beside the nominal ``M·log2 K / N``;
``rate_weight`` > 0 adds that rate (nats per token) to the objective, so the codes become predictable
(rate–distortion) instead of costing their full nominal bits under the level above.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from ..config import HalfOpenUnit, NonNegFloat, NonNegInt, PosInt, Unit, trunk
from ..errors import VQLadderError
from ..nn import MLP, Block, KVCache, RMSNorm, check_heads, eval_mode, init_weights_, seeded
from ..quantize import QuantizerConfig, build_quantizer
from .registry import register


def is_local(model: dict) -> bool:
    """Is this compressor config (a dict) a context-free local autoencoder: a segment model with no block that
    sees beyond its own segment?"""
    return model.get("downsample") == "segment" and not (model.get("latent_layers") or model.get("enc_layers")
                                                           or model.get("dec_layers"))


class SegmentMLP(nn.Module):
    """Pre-norm residual MLP over each segment vector (no attention: what stays inside one segment)."""

    def __init__(self, dim: int, ratio: float = 4.0):
        super().__init__()
        self.norm, self.mlp = RMSNorm(dim), MLP(dim, ratio)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.mlp(self.norm(x))


@dataclass
class CompressorConfig(trunk(256, 4)):
    vocab_size: NonNegInt = 0               # symbols in the input vocabulary; 0 = take it from the data
    in_len: PosInt = 256                 # N: symbols per chunk
    out_len: PosInt = 32                 # M: codes per chunk (compression = in_len / out_len)
    enc_layers: NonNegInt = 0               # blocks over the N symbols (encoder side; query needs >= 1)
    latent_layers: NonNegInt = 2            # blocks over the M slots, on each side of the quantiser
    dec_layers: NonNegInt = 0               # blocks over the N positions (decoder side; query needs >= 1)
    dropout: HalfOpenUnit = 0.0              # attention dropout
    downsample: str = "segment"       # segment (local-first) | pool (hourglass) | query (learned latents, global)
    seg_layers: NonNegInt = 2         # segment: residual MLP blocks per segment, each side of the context blocks
    tok_dim: PosInt = 64              # segment: width of the token embeddings / token-level blocks
    decoder: str = "parallel"         # parallel (all tokens at once) | autoregressive (codes + previous tokens)
    rate_layers: NonNegInt = 0        # > 0: a causal context model of the codes (this many blocks) measures their rate
    rate_dim: PosInt = 64             # its width
    rate_weight: NonNegFloat = 0.0    # weight of the codes' rate (nats/token) in the loss; needs rate_layers >= 1
    rate_warmup: Unit = 0.0           # fraction of training over which that weight ramps up from 0 (linearly)
    quantizer: QuantizerConfig = field(default_factory=QuantizerConfig)

    @property
    def compression(self) -> int:
        """Tokens per code position: ``in_len / out_len``."""
        return self.in_len // self.out_len

    @property
    def bits_per_token(self) -> float:
        """Nominal rate: ``out_len * depth * log2(codebook) / in_len`` (what the codes cost sent uniformly).

        >>> cfg = CompressorConfig(in_len=256, out_len=64, quantizer=QuantizerConfig(kind="fsq", codebook_size=4096))
        >>> round(cfg.bits_per_token, 4)                  # 64 * log2(4375) / 256: FSQ levels [7, 5, 5, 5, 5]
        3.0238
        """
        q = self.quantizer
        return self.out_len * q.depth * math.log2(q.effective_codebook_size()) / self.in_len

    def validate(self) -> None:
        if self.in_len < 1 or self.out_len < 1:
            raise VQLadderError(f"model.in_len and model.out_len must be positive, got {self.in_len}, {self.out_len}")
        if self.in_len % self.out_len:
            raise VQLadderError(
                f"model.in_len={self.in_len} is not divisible by model.out_len={self.out_len}"
            )
        if self.downsample not in ("pool", "segment", "query"):
            raise VQLadderError(f"model.downsample must be pool, segment or query, got {self.downsample!r}")
        if self.decoder not in ("parallel", "autoregressive"):
            raise VQLadderError(f"model.decoder must be parallel or autoregressive, got {self.decoder!r}")
        if self.downsample == "query" and not (self.enc_layers and self.dec_layers):
            raise VQLadderError("model.downsample=query needs model.enc_layers and model.dec_layers >= 1 (the latents "
                                "see the tokens only through them)")
        if self.decoder == "autoregressive" and self.downsample != "pool":
            raise VQLadderError("model.decoder=autoregressive needs model.downsample=pool")
        if self.downsample == "segment" and (self.enc_layers or self.dec_layers) and self.tok_dim % 32:
            raise VQLadderError(f"model.tok_dim={self.tok_dim} must be a multiple of 32 for token-level blocks "
                                f"(heads of width 32)")
        check_heads("model.", self.d_model, self.n_heads)
        if self.rate_weight > 0 and not self.rate_layers:
            raise VQLadderError("model.rate_weight > 0 needs model.rate_layers >= 1 (the context model of the codes)")
        if self.rate_layers and (self.quantizer.kind != "fsq" or self.quantizer.depth != 1):
            raise VQLadderError("model.rate_layers needs an FSQ quantizer of depth 1 (quantizer.kind: fsq)")
        if self.rate_layers and self.rate_dim % 32:
            raise VQLadderError(f"model.rate_dim={self.rate_dim} must be a multiple of 32 (heads of width 32)")


@register("sequence_compressor", CompressorConfig)
class SequenceCompressor(nn.Module):
    """``in_len`` tokens -> ``out_len`` discrete codes -> ``in_len`` token logits; ``loss(tokens)`` trains it.

    >>> import torch
    >>> from vqladder import CompressorConfig, QuantizerConfig, SequenceCompressor
    >>> cfg = CompressorConfig(vocab_size=256, in_len=64, out_len=8, d_model=32, n_heads=2,
    ...                        quantizer=QuantizerConfig(kind="fsq", codebook_size=1024))
    >>> model = SequenceCompressor(cfg)
    >>> tokens = torch.randint(0, 256, (2, 64))
    >>> loss, metrics = model.loss(tokens)             # train with vqladder.Trainer or your own loop
    >>> codes = model.encode(tokens)                   # [2, 8] codes
    >>> model.decode(codes).shape                      # token logits
    torch.Size([2, 64, 256])
    >>> round(model.bits_per_token, 3)                 # 8 * log2(1000) / 64
    1.246
    """

    def __init__(self, cfg: CompressorConfig):
        super().__init__()
        cfg.validate()
        if cfg.vocab_size < 2:
            raise VQLadderError("model.vocab_size must be set (>= 2); it is taken from the data when 0")
        self.config = cfg
        self._progress = 1.0  # fraction of training done (``set_progress``); outside a trainer the full rate weight
        # every default init (the quantizer's projections too) draws from a generator seeded by cfg.seed,
        # without touching the caller's global RNG: the same config builds the same weights
        with seeded(cfg.seed):
            self._build(cfg)
            if cfg.rate_layers:
                from .rate import CodeRateModel

                self.rate = CodeRateModel(self.quantizer.levels, cfg.out_len, cfg.rate_dim, cfg.rate_layers)

    def _build(self, cfg: CompressorConfig) -> None:
        d, n, m = cfg.d_model, cfg.in_len, cfg.out_len
        self.r = n // m
        blocks = lambda k: nn.ModuleList(Block(d, cfg.n_heads, cfg.mlp_ratio, dropout=cfg.dropout) for _ in range(k))
        if cfg.downsample == "segment":
            self._build_segment(cfg, blocks)
            return
        self.tok_emb = nn.Embedding(cfg.vocab_size, d)
        self.enc = blocks(cfg.enc_layers)
        self.enc_latent = blocks(cfg.latent_layers)
        self.dec_latent = blocks(cfg.latent_layers)
        self.dec = blocks(cfg.dec_layers)
        if cfg.downsample == "pool":
            self.enc_offset = nn.Parameter(torch.zeros(self.r, d))
            self.dec_offset = nn.Parameter(torch.zeros(self.r, d))
        else:
            self.latents = nn.Parameter(torch.zeros(m, d))
            self.mask_tok = nn.Parameter(torch.zeros(d))
        if cfg.decoder == "autoregressive":
            self.bos = nn.Parameter(torch.zeros(d))
            self.prev_emb = nn.Embedding(cfg.vocab_size, d)
        self.norm_q = RMSNorm(d)
        self.norm_out = RMSNorm(d)
        self.head = nn.Linear(d, cfg.vocab_size, bias=False)
        # Offset embeddings start at zero, so at init the stream is the token embedding itself and latents
        # differ from slot to slot (a position-independent common component would make every slot quantise
        # to the same code); residual branches start as the identity (init_weights_).
        init_weights_(self, zero=("offset",), normal=("latents", "mask_tok", "bos"))
        self.quantizer = build_quantizer(cfg.quantizer, d, seed=cfg.seed)

    def _build_segment(self, cfg: CompressorConfig, blocks) -> None:
        d, t, r = cfg.d_model, cfg.tok_dim, self.r
        tok_blocks = lambda k: nn.ModuleList(Block(t, t // 32, cfg.mlp_ratio, dropout=cfg.dropout) for _ in range(k))
        self.tok_emb = nn.Embedding(cfg.vocab_size, t)
        self.enc = tok_blocks(cfg.enc_layers)
        self.seg_in = nn.Linear(r * t, d, bias=False)
        self.enc_seg = nn.ModuleList(SegmentMLP(d, cfg.mlp_ratio) for _ in range(cfg.seg_layers))
        self.enc_latent = blocks(cfg.latent_layers)
        self.dec_latent = blocks(cfg.latent_layers)
        self.dec_seg = nn.ModuleList(SegmentMLP(d, cfg.mlp_ratio) for _ in range(cfg.seg_layers))
        self.seg_out = nn.Linear(d, r * t, bias=False)
        self.dec = tok_blocks(cfg.dec_layers)
        self.norm_q = RMSNorm(d)
        self.norm_out = RMSNorm(t)
        self.head = nn.Linear(t, cfg.vocab_size, bias=False)
        init_weights_(self)
        with torch.no_grad():  # keep the segment projections' outputs at unit scale (r * t inputs each)
            self.seg_in.weight.normal_(0.0, (r * t) ** -0.5)
            self.seg_out.weight.normal_(0.0, d ** -0.5)
        self.quantizer = build_quantizer(cfg.quantizer, d, seed=cfg.seed)

    # -- properties -------------------------------------------------------------------------------------------
    @property
    def bits_per_token(self) -> float:
        return self.config.out_len * self.quantizer.bits_per_code / self.config.in_len

    # -- encoder / decoder ------------------------------------------------------------------------------------
    def _check_tokens(self, tokens: torch.Tensor) -> None:
        if tokens.dim() != 2 or tokens.shape[1] != self.config.in_len:
            raise VQLadderError(f"expected token chunks of shape [batch, {self.config.in_len}], got {list(tokens.shape)}")

    def _run(self, blocks, x: torch.Tensor) -> torch.Tensor:
        for blk in blocks:
            x = blk(x)
        return x

    def pre_quant(self, tokens: torch.Tensor) -> torch.Tensor:
        """tokens[b, n] -> continuous latents[b, m, d] (before the quantiser)."""
        b, n = tokens.shape
        m, d = self.config.out_len, self.config.d_model
        x = self.tok_emb(tokens)
        if self.config.downsample == "segment":  # tokens -> per-segment vectors: the costly blocks run over m
            x = self._run(self.enc, x)
            x = self._run(self.enc_seg, self.seg_in(x.reshape(b, m, -1)))
        elif self.config.downsample == "pool":
            x = x + self.enc_offset.repeat(m, 1)
            x = self._run(self.enc, x)
            x = x.view(b, m, self.r, d).mean(2)
        else:
            x = torch.cat([x, self.latents.expand(b, -1, -1).to(x.dtype)], 1)
            x = self._run(self.enc, x)[:, n:]
        return self.norm_q(self._run(self.enc_latent, x))

    @property
    def autoregressive(self) -> bool:
        return self.config.decoder == "autoregressive"

    def _prev(self, tokens: torch.Tensor) -> torch.Tensor:
        """Embeddings of the previous token at each position (a learned BOS at position 0)."""
        b = tokens.shape[0]
        prev = self.prev_emb(tokens[:, :-1])
        return torch.cat([self.bos.expand(b, 1, -1).to(prev.dtype), prev], 1)

    def _pooled(self, z_q: torch.Tensor) -> torch.Tensor:
        """The pool decoder's input at every token position: its latent repeated over the r tokens under it, plus
        the offset of each position within its segment."""
        return self._run(self.dec_latent, z_q).repeat_interleave(self.r, dim=1) + self.dec_offset.repeat(z_q.shape[1], 1)

    def post_quant(self, z_q: torch.Tensor, tokens: torch.Tensor | None = None) -> torch.Tensor:
        """quantised latents[b, m, d] (+ the tokens, for teacher forcing) -> logits[b, n, v]."""
        b, n = z_q.shape[0], self.config.in_len
        if self.config.downsample == "pool":
            x = self._pooled(z_q)
            if self.autoregressive:
                x = x + self._prev(tokens)
                for blk in self.dec:
                    x = blk(x, causal=True)
            else:
                x = self._run(self.dec, x)
        elif self.config.downsample == "segment":
            x = self.seg_out(self._run(self.dec_seg, self._run(self.dec_latent, z_q))).reshape(b, n, -1)
            x = self._run(self.dec, x)
        else:
            x = self._run(self.dec_latent, z_q)
            x = torch.cat([self.mask_tok.expand(b, n, -1).to(x.dtype), x], 1)
            x = self._run(self.dec, x)[:, :n]
        return self.head(self.norm_out(x))

    @torch.no_grad()
    def generate(self, z_q: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Greedy free-running decoding of an autoregressive decoder: (tokens[b, n], logits[b, n, v]) from
        latents[b, m, d]. KV-cached: the latent part of every position is computed once, then one position per
        step goes through the causal blocks (the same numbers as a full teacher-forced pass over the tokens it
        chose: tested)."""
        if not self.autoregressive:
            raise VQLadderError("generate() is for an autoregressive decoder (model.decoder: autoregressive)")
        b, n = z_q.shape[0], self.config.in_len
        base = self._pooled(z_q)
        cache = KVCache(len(self.dec))
        tokens = torch.zeros(b, n, dtype=torch.long, device=z_q.device)
        logits = []
        prev = self.bos.expand(b, 1, -1).to(base.dtype)
        for t in range(n):
            x = base[:, t:t + 1] + prev
            for i, blk in enumerate(self.dec):
                x = blk(x, causal=True, cache=cache, layer=i)
            step = self.head(self.norm_out(x))[:, 0]
            tokens[:, t] = step.argmax(-1)
            logits.append(step)
            prev = self.prev_emb(tokens[:, t:t + 1]).to(base.dtype)
        return tokens, torch.stack(logits, 1)

    def forward(self, tokens: torch.Tensor):
        """-> (logits[b, n, v], Quantized)."""
        self._check_tokens(tokens)
        q = self.quantizer(self.pre_quant(tokens))
        return self.post_quant(q.z_q, tokens if self.autoregressive else None), q

    @torch.no_grad()
    def encode(self, tokens: torch.Tensor) -> torch.Tensor:
        """tokens[b, n] -> codes[b, m] (or [b, m, depth])."""
        self._check_tokens(tokens)
        with eval_mode(self):
            return self.quantizer(self.pre_quant(tokens)).codes

    @torch.no_grad()
    def encode_ids(self, ids: list[int], pad_id: int) -> tuple[torch.Tensor, int]:
        """Token ids of any length -> (codes[chunks, m(, depth)], padding): the last chunk is padded with
        ``pad_id`` to a whole chunk; ``padding`` says how many ids were added."""
        if not ids:
            raise VQLadderError("nothing to encode: the text is empty")
        n = self.config.in_len
        n_pad = (-len(ids)) % n
        x = torch.tensor(list(ids) + [pad_id] * n_pad, device=self.head.weight.device).view(-1, n)
        return self.encode(x), n_pad

    @torch.no_grad()
    def decode_ids(self, codes: list[int]) -> list[int]:
        """Flat codes of whole chunks (``out_len`` x depth each, position-major) -> the decoded token ids."""
        depth = getattr(self.quantizer, "depth", 1)
        per_chunk = self.config.out_len * depth
        if not codes or len(codes) % per_chunk:
            raise VQLadderError(f"got {len(codes)} codes; this model takes a multiple of {per_chunk} codes per chunk")
        c = torch.tensor(codes, device=self.head.weight.device)
        c = c.view(-1, self.config.out_len, *([depth] if depth > 1 else []))
        return self.decode(c).argmax(-1).reshape(-1).tolist()

    @torch.no_grad()
    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """codes[b, m] -> logits[b, n, v]. Out-of-range codes are a VQLadderError."""
        if codes.dim() < 2 or codes.shape[1] != self.config.out_len:
            raise VQLadderError(f"expected {self.config.out_len} codes per chunk, got shape {list(codes.shape)}")
        z_q = self.quantizer.decode_codes(codes).to(self.head.weight.dtype)
        if self.autoregressive:  # logits of the greedy free-running decoding (argmax = generated tokens)
            return self.generate(z_q)[1]
        return self.post_quant(z_q)

    def loss(self, tokens: torch.Tensor):
        """Reconstruction cross-entropy + quantiser loss; metrics are detached floats-as-tensors."""
        logits, q = self(tokens)
        ce = F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), tokens.reshape(-1))
        with torch.no_grad():  # train accuracy on the first chunks only (~2k tokens): the full argmax cost 5%
            k = max(1, 2048 // tokens.shape[1])
            acc = (logits[:k].argmax(-1) == tokens[:k]).float().mean()
        metrics = {"ce": ce.detach(), "acc": acc, "q_loss": q.loss.detach(), **q.stats}
        loss = ce + q.loss
        if getattr(self, "rate", None) is not None:
            model_nats, enc_nats = self.rate(q.u)
            n = tokens.numel()
            loss = loss + model_nats / n + self.rate_weight_now() * enc_nats / n
            metrics["rate_bits"] = model_nats.detach() / n / math.log(2)  # actual bits per token (train batch)
        return loss, metrics

    def set_progress(self, frac: float) -> None:
        """Called by the trainer before every step with the fraction of training done (step / planned steps), so
        ``rate_warmup`` can ramp the rate term; derived from the step, so a resumed run ramps identically."""
        self._progress = float(frac)

    def rate_weight_now(self) -> float:
        """``rate_weight``, ramped linearly from 0 over the first ``rate_warmup`` of training.

        >>> m = SequenceCompressor(CompressorConfig(vocab_size=16, in_len=8, out_len=2, d_model=32, n_heads=1,
        ...     rate_layers=1, rate_dim=32, rate_weight=0.4, rate_warmup=0.5, quantizer=QuantizerConfig(codebook_size=256)))
        >>> [(m.set_progress(f), round(m.rate_weight_now(), 2))[1] for f in (0.0, 0.25, 0.5, 0.9)]
        [0.0, 0.2, 0.4, 0.4]
        """
        w, ramp = self.config.rate_weight, self.config.rate_warmup
        if ramp <= 0:
            return w
        return w * min(1.0, self._progress / ramp)

    @torch.no_grad()
    def rate_nats(self, codes: torch.Tensor) -> torch.Tensor:
        """Per-chunk -log q (nats) of codes[b, m] under the jointly trained context model (``rate_layers``)."""
        if getattr(self, "rate", None) is None:
            raise VQLadderError("this compressor has no rate model (model.rate_layers: 0)")
        return self.rate.code_nats(self.quantizer.level_indices(codes))
