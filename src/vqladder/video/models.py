"""Video models: a per-frame patch autoencoder with discrete codes (level 1) and a block-causal next-frame
predictor that runs either over codes (latent prediction) or over raw pixel patches (the pixel baseline).

Axes: b batch, t frames, p patches (tokens) per frame, c channels, s frame size, q patch size, d width,
k codebook size. ``patchify`` / ``unpatchify`` convert frames[..., c, s, s] <-> patches[..., p, c*q*q].

* ``FrameAE`` (kind ``frame_ae``): patches -> linear + position embedding -> bidirectional blocks -> quantiser
  (one code per patch) -> blocks -> linear -> sigmoid pixels. ``encode(frames[b, c, s, s]) -> codes[b, p]``,
  ``decode(codes) -> frames``; loss = pixel MSE (+ quantiser loss).
* ``FramePredictor`` (kind ``frame_predictor``): tokens of frames 0..t (codes embedded, or pixel patches
  projected) with frame and patch position embeddings, attention block-causal over frames (a token sees every
  token of its own and earlier frames); the outputs at frame t predict frame t+1, all patches at once:
  cross-entropy over codes (``mode: latent``) or MSE on sigmoid pixels (``mode: pixel``). The two modes share
  every block; only the input and output layers differ, so the comparison is at matched size and compute.
  ``rollout(context, horizon)`` feeds its own predictions back (argmax codes / predicted pixels).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..config import NonNegInt, PosInt, trunk
from ..errors import VQLadderError
from ..models.decoder import DecoderCore
from ..models.registry import register
from ..nn import Block, KVCache, RMSNorm, check_heads, eval_mode, init_weights_, seeded
from ..quantize import QuantizerConfig, build_quantizer


def patchify(x: torch.Tensor, q: int) -> torch.Tensor:
    """frames[..., c, s, s] -> patches[..., (s/q)^2, c*q*q] (raster order of patches)."""
    *lead, c, s, _ = x.shape
    g = s // q
    x = x.reshape(*lead, c, g, q, g, q)
    n = len(lead)
    x = x.permute(*range(n), n + 1, n + 3, n, n + 2, n + 4)
    return x.reshape(*lead, g * g, c * q * q)


def unpatchify(p: torch.Tensor, q: int, c: int) -> torch.Tensor:
    """patches[..., (s/q)^2, c*q*q] -> frames[..., c, s, s]."""
    *lead, P, _ = p.shape
    g = int(round(P ** 0.5))
    n = len(lead)
    x = p.reshape(*lead, g, g, c, q, q).permute(*range(n), n + 2, n, n + 3, n + 1, n + 4)
    return x.reshape(*lead, c, g * q, g * q)


@dataclass
class FrameAEConfig(trunk(64, 2)):
    channels: PosInt = 1                 # 1 (grey) or 3 (colour)
    size: PosInt = 32                    # frame size in pixels
    patch: PosInt = 8                    # patch size: one code per patch
    enc_layers: NonNegInt = 2               # encoder blocks
    dec_layers: NonNegInt = 2               # decoder blocks
    quantizer: QuantizerConfig = field(default_factory=lambda: QuantizerConfig(kind="fsq", codebook_size=1024))

    def validate(self) -> None:
        if self.patch < 1 or self.size < self.patch:
            raise VQLadderError(f"frame size {self.size} is smaller than a patch of {self.patch} pixels")
        if self.size % self.patch:
            raise VQLadderError(f"frame size {self.size} is not a multiple of the patch size {self.patch}")
        check_heads("", self.d_model, self.n_heads)

    @property
    def tokens(self) -> int:
        return (self.size // self.patch) ** 2


@register("frame_ae", FrameAEConfig)
class FrameAE(nn.Module):
    def __init__(self, cfg: FrameAEConfig):
        super().__init__()
        cfg.validate()
        self.config = cfg
        with seeded(cfg.seed):
            d, D, P = cfg.d_model, cfg.channels * cfg.patch ** 2, cfg.tokens
            self.inp = nn.Linear(D, d)
            self.pos = nn.Parameter(torch.zeros(P, d))
            self.enc = nn.ModuleList(Block(d, cfg.n_heads, cfg.mlp_ratio) for _ in range(cfg.enc_layers))
            self.dec = nn.ModuleList(Block(d, cfg.n_heads, cfg.mlp_ratio) for _ in range(cfg.dec_layers))
            self.pos_dec = nn.Parameter(torch.zeros(P, d))
            self.norm_q, self.norm_out = RMSNorm(d), RMSNorm(d)
            self.out = nn.Linear(d, D)
            init_weights_(self, normal=("pos", "pos_dec"))
            self.quantizer = build_quantizer(cfg.quantizer, d, seed=cfg.seed)

    @property
    def bits_per_frame(self) -> float:
        return self.config.tokens * self.quantizer.bits_per_code

    def _check(self, frames: torch.Tensor) -> None:
        c, s = self.config.channels, self.config.size
        if frames.dim() != 4 or tuple(frames.shape[1:]) != (c, s, s):
            raise VQLadderError(f"expected frames [batch, {c}, {s}, {s}], got {list(frames.shape)}")

    def pre_quant(self, frames: torch.Tensor) -> torch.Tensor:
        x = self.inp(patchify(frames, self.config.patch)) + self.pos
        for blk in self.enc:
            x = blk(x)
        return self.norm_q(x)

    def post_quant(self, z: torch.Tensor) -> torch.Tensor:
        x = z + self.pos_dec
        for blk in self.dec:
            x = blk(x)
        p = torch.sigmoid(self.out(self.norm_out(x)).float())
        return unpatchify(p, self.config.patch, self.config.channels)

    def forward(self, frames: torch.Tensor):
        self._check(frames)
        q = self.quantizer(self.pre_quant(frames))
        return self.post_quant(q.z_q), q

    def loss(self, frames: torch.Tensor):
        """frames[b, c, s, s] (or [b, t, c, s, s], flattened) -> MSE + quantiser loss."""
        if frames.dim() == 5:
            frames = frames.flatten(0, 1)
        rec, q = self(frames)
        mse = F.mse_loss(rec, frames.float())
        return mse + q.loss, {"mse": mse.detach(), "q_loss": q.loss.detach(), **q.stats}

    @torch.no_grad()
    def encode(self, frames: torch.Tensor) -> torch.Tensor:
        """frames[b, c, s, s] -> codes[b, p]."""
        self._check(frames)
        with eval_mode(self):
            return self.quantizer(self.pre_quant(frames)).codes

    @torch.no_grad()
    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """codes[b, p] -> frames[b, c, s, s]."""
        if codes.dim() != 2 or codes.shape[1] != self.config.tokens:
            raise VQLadderError(f"expected codes [batch, {self.config.tokens}], got {list(codes.shape)}")
        return self.post_quant(self.quantizer.decode_codes(codes).to(self.out.weight.dtype))

    @torch.no_grad()
    def code_vectors(self, codes: torch.Tensor) -> torch.Tensor:
        """codes[..., p] -> the quantised vectors[..., p, d] the decoder sees (features for probes)."""
        shape = codes.shape
        return self.quantizer.decode_codes(codes.reshape(-1, shape[-1])).reshape(*shape, -1)


@dataclass
class PredictorConfig(trunk(128, 2)):
    mode: str = "latent"              # latent (predict codes) | pixel (regress pixel patches)
    frames: PosInt = 16                  # frames per clip (context length in frames)
    tokens: PosInt = 16                  # tokens (patches) per frame
    vocab: NonNegInt = 0                    # latent: codebook size of the codes
    in_dim: NonNegInt = 0                   # pixel: values per patch (channels x patch x patch)
    n_layers: PosInt = 4                 # blocks

    def validate(self) -> None:
        if self.mode not in ("latent", "pixel"):
            raise VQLadderError(f"predictor mode must be latent or pixel, got {self.mode!r}")
        if self.frames < 2 or self.tokens < 1:
            raise VQLadderError(f"predictor needs frames >= 2 and tokens >= 1, got {self.frames}, {self.tokens}")
        check_heads("", self.d_model, self.n_heads)


@register("frame_predictor", PredictorConfig)
class FramePredictor(DecoderCore):
    """Batches: latent mode codes[b, t, p] (int), pixel mode patches[b, t, p, in_dim] (float in [0, 1])."""

    def __init__(self, cfg: PredictorConfig):
        super().__init__()
        cfg.validate()
        if cfg.mode == "latent" and cfg.vocab < 2:
            raise VQLadderError("a latent predictor needs vocab (the codebook size)")
        if cfg.mode == "pixel" and cfg.in_dim < 1:
            raise VQLadderError("a pixel predictor needs in_dim (values per patch)")
        self.config = cfg
        with seeded(cfg.seed):
            d = cfg.d_model
            if cfg.mode == "latent":
                self.inp = nn.Embedding(cfg.vocab, d)
                self.head = nn.Linear(d, cfg.vocab, bias=False)
            else:
                self.inp = nn.Linear(cfg.in_dim, d)
                self.head = nn.Linear(d, cfg.in_dim)
            self.frame_emb = nn.Parameter(torch.zeros(cfg.frames, d))
            self.patch_emb = nn.Parameter(torch.zeros(cfg.tokens, d))
            self.build_core(d, cfg.n_heads, cfg.n_layers, cfg.mlp_ratio)
            init_weights_(self, normal=("frame_emb", "patch_emb"))

    def _mask(self, t: int, device) -> torch.Tensor:
        f = torch.arange(t, device=device).repeat_interleave(self.config.tokens)
        return f[:, None] >= f[None, :]  # block-causal over frames

    def _out(self, h: torch.Tensor, b: int, t: int, p: int) -> torch.Tensor:
        out = self.head(h).reshape(b, t, p, -1)
        return out if self.config.mode == "latent" else torch.sigmoid(out.float())

    def forward(self, x: torch.Tensor, cache: KVCache | None = None) -> torch.Tensor:
        """x: codes[b, t, p] or patches[b, t, p, in_dim] -> predictions for frames 1..t: logits[b, t, p, k] or
        pixels[b, t, p, in_dim] (position t predicts frame t+1). With a non-empty ``cache``, ``x`` holds the
        next frames only (they see every cached frame and each other's frame)."""
        b, t, p = x.shape[:3]
        t0 = cache.length // p if cache is not None else 0
        if t0 + t > self.config.frames or p != self.config.tokens:
            raise VQLadderError(f"predictor takes <= {self.config.frames} frames of {self.config.tokens} tokens, "
                                f"got {t0 + t} x {p}")
        h = (self.inp(x) + self.frame_emb[t0:t0 + t, None] + self.patch_emb).reshape(b, t * p, -1)
        mask = self._mask(t, x.device)
        if t0:
            mask = torch.cat([torch.ones(t * p, t0 * p, dtype=torch.bool, device=x.device), mask], 1)
        return self._out(self.run(h, cache=cache, mask=mask, causal=False), b, t, p)

    def loss(self, x: torch.Tensor):
        pred = self(x[:, :-1])
        if self.config.mode == "latent":
            ce = F.cross_entropy(pred.float().reshape(-1, pred.shape[-1]), x[:, 1:].reshape(-1))
            with torch.no_grad():
                acc = (pred.argmax(-1) == x[:, 1:]).float().mean()
            return ce, {"ce": ce.detach(), "acc": acc}
        mse = F.mse_loss(pred, x[:, 1:].float())
        return mse, {"mse": mse.detach()}

    @torch.no_grad()
    def rollout(self, context: torch.Tensor, horizon: int) -> torch.Tensor:
        """Feed back its own predictions: context[b, c, p(, in_dim)] -> the next ``horizon`` frames."""
        if context.shape[1] + horizon > self.config.frames:
            raise VQLadderError(f"context {context.shape[1]} + horizon {horizon} frames exceed the predictor's "
                                f"{self.config.frames} frames")
        frames = []
        with eval_mode(self):
            cache = self.new_cache()
            pred = self(context, cache)[:, -1:]
            for i in range(horizon):
                nxt = pred.argmax(-1) if self.config.mode == "latent" else pred.to(context.dtype)
                frames.append(nxt)
                if i + 1 < horizon:
                    pred = self(nxt, cache)
        return torch.cat(frames, 1)


# -- stages ----------------------------------------------------------------------------------------------------
@torch.no_grad()
def encode_clips(ae: FrameAE, frames: np.ndarray, batch: int = 512) -> np.ndarray:
    """frames[n, t, c, s, s] -> level-1 codes[n, t, p]."""
    n, t = frames.shape[:2]
    flat = torch.from_numpy(frames.reshape(n * t, *frames.shape[2:]))
    codes = torch.cat([ae.encode(flat[i:i + batch]) for i in range(0, len(flat), batch)])
    return codes.view(n, t, -1).numpy()


def to_tubelets(codes: np.ndarray, tubelet: int) -> np.ndarray:
    """codes[n, t, p] -> level-2 input rows[n * t/tubelet, p * tubelet], patch-major, so that each run of
    ``tubelet`` symbols is one patch over ``tubelet`` frames."""
    n, t, p = codes.shape
    g = t // tubelet
    x = codes.reshape(n, g, tubelet, p).transpose(0, 1, 3, 2)  # n, g, p, tubelet
    return x.reshape(n * g, p * tubelet)


def from_tubelets(rows: np.ndarray, n: int, tubelet: int, p: int) -> np.ndarray:
    g = rows.shape[0] // n
    return rows.reshape(n, g, p, tubelet).transpose(0, 1, 3, 2).reshape(n, g * tubelet, p)
