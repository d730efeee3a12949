"""Shared quantizer interface.

Axis legend used in every quantizer file:
  b  batch        n  positions (latent slots)        d  model width (input/output of the quantizer)
  c  codebook vector width (VQ) or number of FSQ levels     k  codebook size     r  residual depth

``forward(z[b, n, d]) -> Quantized(z_q[b, n, d], codes[b, n] (or [b, n, r]), loss, stats)``.
Quantisation runs in fp32 even under autocast. ``stats`` holds, every step: ``usage`` (fraction of the
codebook used in this batch), ``perplexity`` (exp entropy of the batch's code histogram) and ``dead_codes``
(codes unused for the last ``dead_after`` training steps).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.distributed as dist
from torch import nn


@dataclass
class Quantized:
    z_q: torch.Tensor
    codes: torch.Tensor
    loss: torch.Tensor
    stats: dict = field(default_factory=dict)
    u: torch.Tensor | None = None  # FSQ: per-dimension level coordinates [b, n, c] before rounding (the rate term)


def distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def all_reduce_sum(t: torch.Tensor) -> torch.Tensor:
    if distributed():
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


def broadcast(t: torch.Tensor, src: int = 0) -> torch.Tensor:
    if distributed():
        dist.broadcast(t, src)
    return t


def code_histogram(codes: torch.Tensor, codebook_size: int) -> torch.Tensor:
    return torch.bincount(codes.reshape(-1), minlength=codebook_size).float()


def histogram_stats(hist: torch.Tensor) -> dict:
    """usage (fraction of codes with count > 0) and perplexity (exp entropy) of a code histogram."""
    total = hist.sum().clamp_min(1)
    p = hist / total
    ent = -(p * torch.log(p.clamp_min(1e-12))).sum()
    return {"usage": (hist > 0).float().mean(), "perplexity": torch.exp(ent)}


class BatchStandardize(nn.Module):
    """Per-channel standardisation of the quantizer input over the batch (batch norm without affine).

    Why: at high compression (256 -> 8) the decoder's first gradients ask every slot for the same input (the
    unigram), so the encoder moves all latents together and FSQ maps them to one code within a few steps.
    Removing the batch mean and scale from the quantizer input takes that direction away: codes cannot
    collapse to one value while the encoder's outputs differ at all. Training uses the batch statistics
    (summed over all ranks under DDP) and back-propagates through them, as batch norm does: the gradient
    then has no component along the common shift or scale, so the encoder is not pushed to shrink its
    spread (with the statistics detached it does, and the codes become amplified noise). Eval and
    ``encode`` use running averages, so a chunk's codes never depend on its batch mates. The momentum is high
    (0.3) on purpose: at 256 -> 8 the encoder's spread is small beside a drifting common offset, and a slow
    running mean lags it (in a probe run at 256 -> 8, momentum 0.05 gave held-out accuracy 0.010, below the
    trivial decoder's 0.046; 0.3 matched the training statistics).
    """

    def __init__(self, dim: int, momentum: float = 0.3, eps: float = 1e-5):
        super().__init__()
        self.momentum, self.eps = momentum, eps
        self.register_buffer("running_mean", torch.zeros(dim))
        self.register_buffer("running_var", torch.ones(dim))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        if self.training:
            c = h.shape[-1]
            flat = h.reshape(-1, c).float()
            s = torch.cat([flat.sum(0), (flat * flat).sum(0)])
            n = flat.shape[0]
            if distributed():  # synchronised, differentiable: every rank normalises with the global batch
                from torch.distributed.nn.functional import all_reduce

                s = all_reduce(s)
                n *= dist.get_world_size()
            mean = s[:c] / n
            var = (s[c:] / n - mean * mean).clamp_min(0)
            with torch.no_grad():
                self.running_mean.lerp_(mean.detach(), self.momentum)
                self.running_var.lerp_(var.detach(), self.momentum)
        else:
            mean, var = self.running_mean, self.running_var
        return (h - mean) * torch.rsqrt(var + self.eps)


class QuantizerBase(nn.Module):
    """Common parts: codebook size, bits per code, per-step code statistics."""

    def __init__(self, codebook_size: int, dead_after: int = 100, track_usage: bool = True):
        super().__init__()
        self.codebook_size = int(codebook_size)
        self.dead_after = dead_after
        if track_usage:  # a composite quantizer (residual) leaves this to its stages
            # steps since each code was last used (training steps only); identical on all ranks under DDP
            self.register_buffer("steps_unused", torch.zeros(self.codebook_size, dtype=torch.int32), persistent=True)

    @property
    def bits_per_code(self) -> float:
        return math.log2(self.codebook_size)

    def _stats(self, codes: torch.Tensor) -> dict:
        with torch.no_grad():
            hist = code_histogram(codes, self.codebook_size)
            if self.training:
                hist = all_reduce_sum(hist)
                self.steps_unused.add_(1).masked_fill_(hist > 0, 0)
            st = histogram_stats(hist)
            st["dead_codes"] = (self.steps_unused >= self.dead_after).sum().float()
        return st

    def decode_codes(self, codes: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def check_codes(self, codes: torch.Tensor) -> None:
        from ..errors import VQLadderError

        if codes.numel() and (int(codes.min()) < 0 or int(codes.max()) >= self.codebook_size):
            raise VQLadderError(
                f"code out of range: got values in [{int(codes.min())}, {int(codes.max())}], "
                f"valid codes are 0..{self.codebook_size - 1}"
            )
