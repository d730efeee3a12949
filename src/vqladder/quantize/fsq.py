"""Finite scalar quantisation (Mentzer et al., 2023, "Finite Scalar Quantization: VQ-VAE Made Simple").

Axes: b batch, n positions, d input width, c = len(levels).
z[b,n,d] --project_in--> [b,n,c] --bound (tanh)--> round (straight-through) --> /half_width in [-1, 1]
--project_out--> z_q[b,n,d]. The code index is the mixed-radix number of the per-dimension levels, so the
codebook size is prod(levels) and no codebook is stored: FSQ has no codebook collapse by construction
and needs no auxiliary loss.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ..errors import VQLadderError
from .base import BatchStandardize, Quantized, QuantizerBase

# Recommended levels from the FSQ paper (Table 1) for 2^8, 2^10, 2^12, 2^14, 2^16, and exact-size
# choices with levels >= 4 for the odd powers in between.
RECOMMENDED_LEVELS = {
    2**8: [8, 6, 5],
    2**9: [8, 8, 8],
    2**10: [8, 5, 5, 5],
    2**11: [8, 8, 8, 4],
    2**12: [7, 5, 5, 5, 5],
    2**13: [8, 8, 8, 4, 4],
    2**14: [8, 8, 8, 6, 5],
    2**15: [8, 8, 8, 8, 8],
    2**16: [8, 8, 8, 5, 5, 5],
}


def levels_for(codebook_size: int) -> list[int]:
    """Recommended FSQ levels for a codebook size 2^8 … 2^16 (products are approximate for 2^8/2^10/…)."""
    if codebook_size in RECOMMENDED_LEVELS:
        return list(RECOMMENDED_LEVELS[codebook_size])
    raise VQLadderError(
        f"FSQ has no recommended levels for codebook size {codebook_size}; use one of "
        f"{', '.join(str(k) for k in RECOMMENDED_LEVELS)} or give quantizer.levels explicitly"
    )


def round_ste(z: torch.Tensor) -> torch.Tensor:
    return z + (z.round() - z).detach()


class FSQ(QuantizerBase):
    """Finite scalar quantiser of ``dim``-wide vectors onto ``prod(levels)`` codes; no codebook is stored.

    >>> import torch
    >>> from vqladder import FSQ
    >>> q = FSQ(dim=16, levels=[8, 5, 5, 5])           # 1,000 codes, 9.97 bits each
    >>> out = q(torch.randn(2, 4, 16))                 # Quantized(z_q, codes, loss, stats)
    >>> out.codes.shape, out.z_q.shape, q.codebook_size
    (torch.Size([2, 4]), torch.Size([2, 4, 16]), 1000)
    >>> bool((q.decode_codes(out.codes) - out.z_q).abs().max() < 1e-5)   # codes alone give back z_q
    True
    """

    def __init__(self, dim: int, levels: list[int], dead_after: int = 100, norm: str = "batch"):
        if not levels or any(int(l) < 2 for l in levels):
            raise VQLadderError(f"FSQ levels must be integers >= 2, got {levels}")
        super().__init__(math.prod(levels), dead_after)
        self.levels = [int(l) for l in levels]
        c = len(self.levels)
        self.register_buffer("_levels", torch.tensor(self.levels, dtype=torch.int64), persistent=False)
        basis = torch.cumprod(torch.tensor([1] + self.levels[:-1], dtype=torch.int64), 0)
        self.register_buffer("_basis", basis, persistent=False)
        self.project_in = nn.Linear(dim, c) if dim != c else nn.Identity()
        self.project_out = nn.Linear(c, dim) if dim != c else nn.Identity()
        self.norm = BatchStandardize(c) if norm == "batch" else nn.Identity()

    def bound(self, z: torch.Tensor, eps: float = 1e-3) -> torch.Tensor:
        L = self._levels.to(z.dtype)
        half_l = (L - 1) * (1 + eps) / 2
        offset = torch.where(self._levels % 2 == 0, 0.5, 0.0).to(z.dtype)
        shift = torch.atanh(offset / half_l)
        return torch.tanh(z + shift) * half_l - offset

    def _half_width(self, dtype):
        return (self._levels // 2).to(dtype)

    def codes_to_indices(self, zhat: torch.Tensor) -> torch.Tensor:
        hw = self._half_width(zhat.dtype)
        level_idx = (zhat * hw + hw).round().long()
        return (level_idx * self._basis).sum(-1)

    def indices_to_normalized(self, codes: torch.Tensor) -> torch.Tensor:
        level_idx = (codes.long().unsqueeze(-1) // self._basis) % self._levels
        hw = self._half_width(torch.float32)
        return (level_idx.float() - hw) / hw

    def forward(self, z: torch.Tensor) -> Quantized:
        with torch.autocast(device_type=z.device.type, enabled=False):
            h = self.norm(self.project_in(z.float()))
            bounded = self.bound(h)
            zhat = round_ste(bounded) / self._half_width(h.dtype)
            codes = self.codes_to_indices(zhat.detach())
            z_q = self.project_out(zhat)
        return Quantized(z_q, codes, z.new_zeros((), dtype=torch.float32), self._stats(codes),
                         u=bounded + self._half_width(h.dtype))

    def level_indices(self, codes: torch.Tensor) -> torch.Tensor:
        """codes[...] -> per-dimension level indices [..., c]."""
        return (codes.long().unsqueeze(-1) // self._basis) % self._levels

    def decode_codes(self, codes: torch.Tensor) -> torch.Tensor:
        self.check_codes(codes)
        with torch.autocast(device_type=codes.device.type, enabled=False):
            return self.project_out(self.indices_to_normalized(codes))
