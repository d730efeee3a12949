"""Variable-rate compressor: the content decides how many codes a chunk of tokens gets.

Axes: b batch, n = in_len tokens, s segments (padded to the largest count in the batch), d width, v vocab.

A chunk is cut into segments by a boundary method (``boundary``), one code per segment:

* ``fixed``    a segment every ``target_ratio`` tokens: the fixed-rate baseline (its boundaries cost no bits);
* ``entropy``  entropy patching as in the Byte Latent Transformer: a small causal LM (trained beforehand,
               frozen, stored inside this model) gives every position's next-token entropy; a segment starts
               where it exceeds one global threshold, calibrated on training chunks (``calibrate``) so that the
               average segment is ``target_ratio`` tokens long;
* ``learned``  dynamic chunking as in H-Net: a router scores ``p_t = (1 - cos(q_t, k_{t-1})) / 2`` on the
               encoder output, a segment starts where ``p_t >= 0.5``; H-Net's ratio loss steers the boundary
               rate towards ``1 / target_ratio`` and a straight-through confidence (value 1, gradient of
               ``p_t`` or ``1 - p_t``) lets the reconstruction loss train the router, end to end.

Position 0 always starts a segment and no segment is longer than ``max_segment`` tokens (a longer run is split
every ``max_segment`` tokens, vectorised). Encoder: token embedding -> bidirectional blocks over n -> mean-pool
each segment into one slot -> blocks over the slots (padding masked) -> quantiser. Decoder: blocks over the
quantised slots -> every token position takes its segment's vector plus embeddings of its offset in the segment
and of the segment's length (so the decoder reconstructs from codes *and* lengths) -> blocks over n -> logits.

Rate, per chunk with S segments and K codes: ``S log2 K`` for the codes plus, for entropy / learned, the
boundaries: ``log2 n`` (how many segments) + ``log2 C(n-1, S-1)`` (which positions start one), an enumerative
code that no encoding of the boundary set can beat on average without a model of it. ``bits_per_token`` and
``eval`` include both, so variable and fixed rates compare fairly.

As a ladder level, ``encode_stream`` / ``decode_stream`` turn a token stream into a stream of composite symbols
``code * max_segment + (length - 1)`` (vocabulary ``K * max_segment``) that a fixed-rate level can compress
further; the lengths in a chunk sum to ``in_len``, so the stream parses back into chunks without markers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..config import Annotated, Check, NonNegFloat, NonNegInt, OptNonNegInt, PosInt, trunk
from ..errors import VQLadderError
from ..nn import Block, RMSNorm, check_heads, eval_mode, init_weights_, seeded
from ..quantize import Quantized, QuantizerConfig, build_quantizer
from .lm import CausalLM, LMConfig
from .registry import register

BOUNDARY_METHODS = ("fixed", "entropy", "learned")


@dataclass
class VariableConfig(trunk(128, 2)):
    vocab_size: NonNegInt = 0               # input symbols; 0 = from the data
    in_len: PosInt = 256                 # n: tokens per chunk
    target_ratio: Annotated[float, Check(min=1)] = 8.0         # wanted average tokens per code (segment), 1 <= ratio <= in_len
    boundary: str = "learned"         # fixed | entropy | learned
    max_segment: NonNegInt = 0              # longest segment in tokens; 0 = min(in_len, 4 x target_ratio)
    ratio_weight: NonNegFloat = 1.0         # weight of the ratio loss (learned boundaries); 0.1 let the router drift to ~2x more segments
    pad_id: OptNonNegInt = -1               # a symbol that fills chunks after their content (the maze's END): its repeats
    #                                         count toward neither the ratio loss nor the entropy calibration; -1 = none
    enc_layers: NonNegInt = 2               # blocks over the n tokens (encoder)
    latent_layers: NonNegInt = 1            # blocks over the segments, each side of the quantiser
    dec_layers: NonNegInt = 2               # blocks over the n tokens (decoder)
    entropy_lm: LMConfig = field(default_factory=lambda: LMConfig(d_model=64, n_heads=2, n_layers=2))
    quantizer: QuantizerConfig = field(default_factory=QuantizerConfig)

    def validate(self) -> None:
        if self.in_len < 1:
            raise VQLadderError(f"model.in_len must be positive, got {self.in_len}")
        if not 1 <= self.target_ratio <= self.in_len:
            raise VQLadderError(f"model.target_ratio={self.target_ratio} must be between 1 and the chunk length "
                                f"in_len={self.in_len} (tokens per code)")
        if self.boundary not in BOUNDARY_METHODS:
            raise VQLadderError(f"unknown boundary method {self.boundary!r}; choose one of {', '.join(BOUNDARY_METHODS)}")
        if self.boundary == "fixed" and self.target_ratio != int(self.target_ratio):
            raise VQLadderError(f"fixed boundaries need a whole target_ratio, got {self.target_ratio}")
        if self.max_segment < 0 or self.max_segment > self.in_len:
            raise VQLadderError(f"model.max_segment={self.max_segment} must be in [0, in_len={self.in_len}]")
        check_heads("model.", self.d_model, self.n_heads)

    @property
    def segment_cap(self) -> int:
        return self.max_segment or min(self.in_len, int(math.ceil(4 * self.target_ratio)))


# -- segment arithmetic (pure tensor functions, no loops over tokens) -----------------------------------------
def segment_positions(starts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """starts[b, n] bool (position 0 must be True) -> (segment id[b, n], offset in segment[b, n])."""
    n = starts.shape[1]
    idx = torch.arange(n, device=starts.device).expand_as(starts)
    first = torch.cummax(torch.where(starts, idx, torch.zeros_like(idx)), dim=1).values
    return starts.long().cumsum(1) - 1, idx - first


def cap_segments(starts: torch.Tensor, cap: int) -> torch.Tensor:
    """Add starts so that no segment is longer than ``cap`` tokens (position 0 always starts one)."""
    starts = starts.clone()
    starts[:, 0] = True
    _, off = segment_positions(starts)
    return starts | (off % cap == 0)


def segment_lengths(starts: torch.Tensor) -> torch.Tensor:
    """starts[b, n] -> lengths[b, s_max] (0 past each row's last segment)."""
    seg, _ = segment_positions(starts)
    s_max = int(seg.max()) + 1
    return torch.zeros(starts.shape[0], s_max, dtype=torch.long, device=starts.device).scatter_add_(
        1, seg, torch.ones_like(seg))


def starts_from_lengths(lengths: torch.Tensor, n: int) -> torch.Tensor:
    """lengths[b, s] (0 = padding; each row sums to n) -> starts[b, n] bool."""
    if bool((lengths.sum(1) != n).any()):
        raise VQLadderError(f"segment lengths must sum to the chunk length {n}; got sums "
                            f"{sorted(set(lengths.sum(1).tolist()))}")
    ends = lengths.cumsum(1) - lengths  # start offset of every segment (padding maps to n)
    starts = torch.zeros(lengths.shape[0], n + 1, dtype=torch.bool, device=lengths.device)
    starts.scatter_(1, torch.where(lengths > 0, ends, torch.full_like(ends, n)), True)
    return starts[:, :n]


def pool_segments(h: torch.Tensor, seg: torch.Tensor, s_max: int) -> torch.Tensor:
    """Mean of h[b, n, d] over each segment -> [b, s_max, d] (zeros for padding slots)."""
    b, n, d = h.shape
    tot = torch.zeros(b, s_max, d, dtype=h.dtype, device=h.device).scatter_add_(1, seg[..., None].expand(b, n, d), h)
    cnt = torch.zeros(b, s_max, dtype=h.dtype, device=h.device).scatter_add_(1, seg, torch.ones_like(seg, dtype=h.dtype))
    return tot / cnt.clamp(min=1)[..., None]


def unpool_segments(z: torch.Tensor, seg: torch.Tensor) -> torch.Tensor:
    """Every position takes its segment's vector: z[b, s, d], seg[b, n] -> [b, n, d]."""
    return z.gather(1, seg[..., None].expand(-1, -1, z.shape[-1]))


def entropy_starts(entropy: torch.Tensor, threshold: float | torch.Tensor) -> torch.Tensor:
    """Entropy patching: a segment starts where the next-token entropy exceeds ``threshold`` (and at 0)."""
    starts = entropy > threshold
    starts[:, 0] = True
    return starts


def boundary_bits(segments: torch.Tensor, n: int) -> torch.Tensor:
    """Bits to send S segment starts among n positions (position 0 implied): log2 n + log2 C(n-1, S-1)."""
    s = segments.double()
    lc = torch.lgamma(torch.tensor(float(n), dtype=torch.float64)) - torch.lgamma(s) - torch.lgamma(n - s + 1)
    return (math.log(n) + lc) / math.log(2)


def content_mask(tokens: torch.Tensor, pad_id: int) -> torch.Tensor:
    """tokens[b, n] -> bool[b, n]: False where ``pad_id`` repeats the symbol before it (padding after the content;
    its first occurrence, e.g. a plan's END, is content). All True when ``pad_id < 0``."""
    if pad_id < 0:
        return torch.ones_like(tokens, dtype=torch.bool)
    rep = (tokens[:, 1:] == pad_id) & (tokens[:, :-1] == pad_id)
    return torch.cat([torch.ones_like(rep[:, :1]), ~rep], 1)


def ratio_loss(starts: torch.Tensor, p: torch.Tensor, target: float, mask: torch.Tensor | None = None) -> torch.Tensor:
    """H-Net's ratio loss: N/(N-1) ((N-1) F G + (1-F)(1-G)), F = fraction of starts, G = mean router probability
    (both over the ``mask``ed positions: the content, not its padding). Its gradient in G is N/(N-1) (N F - 1):
    it lowers the router's probabilities while more than 1/N of the positions start a segment and raises them
    while fewer do."""
    if mask is not None:
        starts, p = starts[mask], p[mask]
    f, g = starts.float().mean(), p.float().mean()
    if target <= 1:
        return (1 - g)  # every token its own segment
    return target / (target - 1) * ((target - 1) * f * g + (1 - f) * (1 - g))


@dataclass
class VariableQuantized(Quantized):
    """``Quantized`` of a variable-rate chunk, with its segmentation: segments per row, start flags, the
    router's boundary probabilities (learned boundaries) and the codes padded to [b, max segments]."""
    segments: torch.Tensor | None = None
    starts: torch.Tensor | None = None
    router_p: torch.Tensor | None = None
    padded_codes: torch.Tensor | None = None


@register("variable_compressor", VariableConfig)
class VariableCompressor(nn.Module):
    """See the module docstring. ``encode(tokens) -> (codes[b, s], lengths[b, s])`` (padding: code -1, length 0),
    ``decode(codes, lengths) -> logits[b, n, v]``, ``loss(tokens)``; ``forward`` returns (logits, Quantized)
    with ``segments[b]`` attached so that ``evaluate_compressor`` can count the rate."""

    def __init__(self, cfg: VariableConfig):
        super().__init__()
        cfg.validate()
        if cfg.vocab_size < 2:
            raise VQLadderError("model.vocab_size must be set (>= 2); it is taken from the data when 0")
        self.config = cfg
        with seeded(cfg.seed):
            self._build(cfg)

    def _build(self, cfg: VariableConfig) -> None:
        d, L = cfg.d_model, cfg.segment_cap
        self.cap = L
        blocks = lambda k: nn.ModuleList(Block(d, cfg.n_heads, cfg.mlp_ratio) for _ in range(k))
        self.tok_emb = nn.Embedding(cfg.vocab_size, d)
        self.enc, self.enc_latent = blocks(cfg.enc_layers), blocks(cfg.latent_layers)
        self.dec_latent, self.dec = blocks(cfg.latent_layers), blocks(cfg.dec_layers)
        self.offset_emb = nn.Embedding(L, d)
        self.length_emb = nn.Embedding(L + 1, d)
        self.norm_q, self.norm_out = RMSNorm(d), RMSNorm(d)
        self.head = nn.Linear(d, cfg.vocab_size, bias=False)
        if cfg.boundary == "learned":
            self.router_q = nn.Linear(d, d, bias=False)
            self.router_k = nn.Linear(d, d, bias=False)
        init_weights_(self)
        if cfg.boundary == "learned":  # as in H-Net: identity projections, p starts as the plain cosine distance
            with torch.no_grad():
                nn.init.eye_(self.router_q.weight)
                nn.init.eye_(self.router_k.weight)
        if cfg.boundary == "entropy":
            lm = LMConfig(**{**vars(cfg.entropy_lm), "vocab_size": cfg.vocab_size, "context": cfg.in_len,
                             "seed": cfg.seed})
            self.entropy_lm = CausalLM(lm).requires_grad_(False)
            self.register_buffer("threshold", torch.tensor(float("inf")))
        self.quantizer = build_quantizer(cfg.quantizer, d, seed=cfg.seed)

    # -- rate -------------------------------------------------------------------------------------------------
    def chunk_bits(self, segments: torch.Tensor) -> torch.Tensor:
        """Bits per chunk with ``segments[b]`` codes: codes + boundaries (0 for fixed boundaries)."""
        bits = segments.double() * self.quantizer.bits_per_code
        if self.config.boundary != "fixed":
            bits = bits + boundary_bits(segments, self.config.in_len)
        return bits

    @property
    def bits_per_token(self) -> float:
        """Nominal rate at the target ratio (the measured one is ``chunk_bits(segments) / in_len``)."""
        n = self.config.in_len
        s = torch.tensor([max(1.0, round(n / self.config.target_ratio))])
        return float(self.chunk_bits(s)[0]) / n

    # -- boundaries -------------------------------------------------------------------------------------------
    @torch.no_grad()
    def token_entropy(self, tokens: torch.Tensor) -> torch.Tensor:
        """Entropy (nats) of the entropy LM's prediction of each token from the ones before it in the chunk;
        position 0 (no context) gets +inf."""
        lm = self.entropy_lm
        lm.eval()
        logp = F.log_softmax(lm(tokens[:, :-1]).float(), -1)
        h = -(logp.exp() * logp).sum(-1)
        return torch.cat([torch.full_like(h[:, :1], float("inf")), h], 1)

    @torch.no_grad()
    def calibrate(self, chunks: torch.Tensor) -> float:
        """Entropy boundaries: set the global threshold so that training ``chunks[b, n]`` average
        ``target_ratio`` tokens per segment (before the max-segment cap). Returns the threshold."""
        if self.config.boundary != "entropy":
            raise VQLadderError("calibrate() is for entropy boundaries")
        keep = content_mask(chunks, self.config.pad_id)[:, 1:]  # positions 1..n-1 of each chunk's content
        h = self.token_entropy(chunks)[:, 1:][keep].float()
        length = keep.sum(1).float() + 1                           # content length of each chunk
        # starts wanted among those positions (the first of each chunk always starts one)
        frac = float((length / self.config.target_ratio - 1).sum() / (length - 1).sum().clamp(min=1))
        thr = float("inf") if frac <= 0 else float(torch.quantile(h[:1 << 24], 1 - min(frac, 1.0)))
        self.threshold.fill_(thr)
        return thr

    def router(self, h: torch.Tensor) -> torch.Tensor:
        """H-Net routing probability p[b, n] from encoder states h[b, n, d] (p_0 = 1)."""
        q = F.normalize(self.router_q(h[:, 1:]).float(), dim=-1)
        k = F.normalize(self.router_k(h[:, :-1]).float(), dim=-1)
        p = ((1 - (q * k).sum(-1)) / 2).clamp(0, 1)
        return torch.cat([torch.ones_like(p[:, :1]), p], 1)

    def boundaries(self, tokens: torch.Tensor, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """-> (starts[b, n] bool, router probabilities[b, n] or None)."""
        b, n = tokens.shape
        p = None
        if self.config.boundary == "fixed":
            r = int(self.config.target_ratio)
            starts = (torch.arange(n, device=tokens.device) % r == 0).expand(b, n)
        elif self.config.boundary == "entropy":
            if not torch.isfinite(self.threshold):
                raise VQLadderError("entropy boundaries are not calibrated (load the entropy LM, then calibrate())")
            starts = entropy_starts(self.token_entropy(tokens), self.threshold)
        else:
            p = self.router(h)
            starts = p >= 0.5
        return cap_segments(starts, self.cap), p

    # -- encoder / decoder ------------------------------------------------------------------------------------
    def _check_tokens(self, tokens: torch.Tensor) -> None:
        if tokens.dim() != 2 or tokens.shape[1] != self.config.in_len:
            raise VQLadderError(f"expected token chunks of shape [batch, {self.config.in_len}], got {list(tokens.shape)}")

    @staticmethod
    def _run(blocks, x, mask=None):
        for blk in blocks:
            x = blk(x, mask=mask)
        return x

    def _encode(self, tokens: torch.Tensor):
        h = self._run(self.enc, self.tok_emb(tokens))
        starts, p = self.boundaries(tokens, h)
        seg, off = segment_positions(starts)
        segments = seg[:, -1] + 1
        s_max = int(segments.max())
        valid = torch.arange(s_max, device=tokens.device) < segments[:, None]
        x = self._run(self.enc_latent, pool_segments(h, seg, s_max), valid[:, None, None, :])
        return self.norm_q(x), starts, p, valid, segments

    def _decode(self, z_q: torch.Tensor, starts: torch.Tensor, valid: torch.Tensor,
                confidence: torch.Tensor | None = None) -> torch.Tensor:
        seg, off = segment_positions(starts)
        lengths = torch.zeros_like(valid, dtype=torch.long).scatter_add_(1, seg, torch.ones_like(seg))
        x = self._run(self.dec_latent, z_q, valid[:, None, None, :])
        x = unpool_segments(x, seg)
        x = x + self.offset_emb(off.clamp(max=self.cap - 1)) + self.length_emb(lengths.gather(1, seg).clamp(max=self.cap))
        if confidence is not None:
            x = x * confidence[..., None].to(x.dtype)
        return self.head(self.norm_out(self._run(self.dec, x)))

    def _quantize(self, x: torch.Tensor, valid: torch.Tensor):
        q = self.quantizer(x[valid][None])  # only real segments reach the quantiser (and its statistics)
        z_q = torch.zeros(*x.shape[:2], q.z_q.shape[-1], dtype=q.z_q.dtype, device=x.device)
        z_q[valid] = q.z_q[0]
        codes = torch.full((*x.shape[:2], *q.codes.shape[2:]), -1, dtype=torch.long, device=x.device)
        codes[valid] = q.codes[0]
        return q, z_q, codes

    def forward(self, tokens: torch.Tensor):
        """-> (logits[b, n, v], Quantized) with ``.segments[b]``, ``.starts[b, n]``, ``.router_p`` attached;
        ``codes`` stay flat over the real segments ([1, total]) for code statistics."""
        self._check_tokens(tokens)
        x, starts, p, valid, segments = self._encode(tokens)
        q, z_q, codes = self._quantize(x, valid)
        conf = None
        if p is not None:
            c = torch.where(starts, p, 1 - p)
            conf = c + (1 - c).detach()  # straight-through: value 1, gradient into the router
        logits = self._decode(z_q, starts, valid, conf)
        return logits, VariableQuantized(q.z_q, q.codes, q.loss, q.stats, segments=segments, starts=starts,
                                         router_p=p, padded_codes=codes)

    @torch.no_grad()
    def encode(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """tokens[b, n] -> (codes[b, s], lengths[b, s]); padding past a row's last segment: code -1, length 0."""
        self._check_tokens(tokens)
        with eval_mode(self):
            x, starts, _, valid, _ = self._encode(tokens)
            _, _, codes = self._quantize(x, valid)
            return codes, segment_lengths(starts)

    @torch.no_grad()
    def decode(self, codes: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """(codes[b, s], lengths[b, s]) -> logits[b, n, v]; the lengths of a row must sum to in_len."""
        if codes.shape[:2] != lengths.shape[:2]:
            raise VQLadderError(f"codes {list(codes.shape)} and lengths {list(lengths.shape)} disagree")
        valid = lengths > 0
        if bool((codes[valid] < 0).any()) or bool((lengths[valid] > self.cap).any()):
            raise VQLadderError(f"bad codes or segment lengths (codes >= 0, 1 <= length <= {self.cap})")
        starts = starts_from_lengths(lengths, self.config.in_len)
        z = torch.zeros(*codes.shape[:2], self.config.d_model, device=codes.device)
        z[valid] = self.quantizer.decode_codes(codes[valid][None])[0].float()
        return self._decode(z.to(self.head.weight.dtype), starts, valid)

    def loss(self, tokens: torch.Tensor):
        """Reconstruction CE + quantiser loss (+ ratio loss for learned boundaries)."""
        logits, q = self(tokens)
        ce = F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), tokens.reshape(-1))
        loss = ce + q.loss
        n = self.config.in_len
        with torch.no_grad():
            seg = q.segments.float()
            metrics = {"ce": ce.detach(), "acc": (logits.argmax(-1) == tokens).float().mean(), "q_loss": q.loss.detach(),
                       "ratio": n / seg.mean(), "bits_per_token": (self.chunk_bits(q.segments) / n).mean().float(),
                       **q.stats}
        if q.router_p is not None:
            rl = ratio_loss(q.starts, q.router_p, self.config.target_ratio,
                            content_mask(tokens, self.config.pad_id) if self.config.pad_id >= 0 else None)
            loss = loss + self.config.ratio_weight * rl
            metrics["ratio_loss"] = rl.detach()
            metrics["router_p"] = q.router_p.detach().mean()
        return loss, metrics

    # -- streams (a variable-rate ladder level) ---------------------------------------------------------------
    @property
    def stream_vocab(self) -> int:
        return self.quantizer.codebook_size * self.cap

    @torch.no_grad()
    def encode_stream(self, stream: np.ndarray, batch_size: int = 64) -> np.ndarray:
        """Consecutive chunks of in_len tokens -> composite symbols ``code * max_segment + length - 1``."""
        n = self.config.in_len
        out = []
        dev = self.head.weight.device
        for s in range(0, len(stream) // n, batch_size):
            x = torch.from_numpy(np.asarray(stream[s * n:(s + batch_size) * n], dtype=np.int64)).view(-1, n).to(dev)
            codes, lengths = self.encode(x)
            if codes.dim() > 2:
                raise VQLadderError("composite streams need a single-stage quantiser (residual depth 1)")
            sym = codes * self.cap + lengths - 1
            out.append(sym[lengths > 0].cpu().numpy())
        return np.concatenate(out) if out else np.zeros(0, dtype=np.int64)

    @torch.no_grad()
    def decode_stream(self, symbols: np.ndarray, batch_size: int = 64, strict: bool = True) -> np.ndarray:
        """Composite symbols -> token stream (argmax reconstruction). ``strict``: the lengths must add up to
        whole chunks exactly (a stream from ``encode_stream``); otherwise a generated / reconstructed stream is
        repaired: a segment crossing a chunk end is cut there and a last partial chunk is dropped."""
        sym = torch.as_tensor(np.asarray(symbols, dtype=np.int64))
        if sym.numel() == 0 or int(sym.min()) < 0 or int(sym.max()) >= self.stream_vocab:
            raise VQLadderError(f"stream symbols must be in [0, {self.stream_vocab})")
        n = self.config.in_len
        codes, lengths = sym // self.cap, sym % self.cap + 1
        if strict:
            ends = lengths.cumsum(0)
            if int(ends[-1]) % n:
                raise VQLadderError(f"the stream's segment lengths add up to {int(ends[-1])} tokens, not whole "
                                    f"chunks of {n}")
            cuts = torch.nonzero(ends % n == 0).view(-1) + 1
            if len(cuts) != int(ends[-1]) // n:
                raise VQLadderError("a segment crosses a chunk boundary: not a stream from encode_stream")
            counts = torch.diff(torch.cat([torch.zeros(1, dtype=torch.long), cuts])).tolist()
            rows_c, rows_l = list(torch.split(codes, counts)), list(torch.split(lengths, counts))
        else:  # one step per segment (codes, not tokens)
            rows_c, rows_l, cur_c, cur_l, pos = [], [], [], [], 0
            for c, ln in zip(codes.tolist(), lengths.tolist()):
                ln = min(ln, n - pos)
                cur_c.append(c)
                cur_l.append(ln)
                pos += ln
                if pos == n:
                    rows_c.append(torch.tensor(cur_c))
                    rows_l.append(torch.tensor(cur_l))
                    cur_c, cur_l, pos = [], [], 0
            if not rows_c:
                raise VQLadderError(f"the stream holds less than one chunk of {n} tokens")
        dev = self.head.weight.device
        out = []
        for s in range(0, len(rows_c), batch_size):
            c = nn.utils.rnn.pad_sequence(rows_c[s:s + batch_size], batch_first=True, padding_value=-1)
            ln = nn.utils.rnn.pad_sequence(rows_l[s:s + batch_size], batch_first=True, padding_value=0)
            out.append(self.decode(c.to(dev), ln.to(dev)).argmax(-1).reshape(-1).cpu())
        return torch.cat(out).numpy()
